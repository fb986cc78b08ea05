"""Extended Cohn-Kanade, CK+ (Lucey et al. 2010), in its common ``CK+48`` form.

``CK+48/<emotion>/S010_004_00000017.png``: 48x48 grayscale crops of the last (peak) frames of
each labelled sequence; emotion folders anger, contempt, disgust, fear, happy, sadness,
surprise. In the file name ``S010`` is the subject (the record's ``speaker``), ``004`` the
sequence of that subject and ``00000017`` the frame: ``extra["sequence"]`` is ``"S010_004"``
(sequence numbers restart per subject), ``extra["frame"]`` the frame number. The root may be
the ``CK+48`` folder itself or the folder containing it. CK+ has no official split: ``split``
is ``None`` and subject-independent folds are the rule (the record's group is the subject).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError
from ..labels import CORPUS_LABELS, unify
from ._base import IMAGE_EXTS, Anomaly, Corpus, CorpusScan, Record, iter_files
from ._image import content_hash, read_image

__all__ = ["CKPlus"]

_NAME = re.compile(r"^(S\d{3})_(\d{3})_(\d{8})$")
FOLDER = "CK+48"


def _base(root: Path) -> Path:
    """The folder holding the emotion folders: ``root`` or ``root/CK+48``."""
    emotions = CORPUS_LABELS["ckplus"]
    for cand in (root, root / FOLDER):
        if cand.is_dir() and any((cand / e).is_dir() for e in emotions):
            return cand
    raise DataError(root, f"no CK+ emotion folders ({', '.join(emotions)}) here or in "
                          f"{FOLDER}/")


class CKPlus(Corpus, name="ckplus", modalities=("image",), subdir="ckplus",
             description="CK+ (CK+48 crops): 123 subjects, 7 posed expressions incl. contempt"):

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        base = _base(root)
        anomalies: list[Anomaly] = []
        records: dict[str, Record] = {}
        for path in iter_files(base, IMAGE_EXTS):
            rec = self._record(path, anomalies, decode=check_media)
            if rec is None:
                continue
            if rec.id in records:
                anomalies.append(Anomaly(str(path), f"frame {rec.id} is already listed as "
                                         f"{records[rec.id].label_native}"))
                continue
            records[rec.id] = rec
        return CorpusScan(self.name, str(root), list(records.values()), anomalies)

    def _record(self, path: Path, anomalies: list[Anomaly], *, decode: bool) -> Record | None:
        emotion = path.parent.name.lower()
        if emotion not in CORPUS_LABELS[self.name]:
            anomalies.append(Anomaly(str(path), f"folder {path.parent.name!r} is not a CK+ "
                                     f"emotion ({', '.join(CORPUS_LABELS[self.name])})"))
            return None
        m = _NAME.match(path.stem)
        if not m:
            anomalies.append(Anomaly(str(path), "name does not follow CK+ "
                                     "S<subject>_<sequence>_<frame> (e.g. S010_004_00000017)"))
            return None
        image = read_image(path, anomalies, decode=decode)
        if image is None:
            return None
        data, _ = image
        subject, seq, frame = m.groups()
        return Record(id=path.stem, corpus=self.name, label_native=emotion,
                      label=unify(self.name, emotion), speaker=subject, image=str(path),
                      extra={"sequence": f"{subject}_{seq}", "frame": int(frame),
                             "content_hash": content_hash(data)})
