"""FER2013 (Goodfellow et al. 2013, ICML "Challenges in Representation Learning").

35,887 grayscale 48x48 faces in 7 classes, read in either of its two common forms:

* the original ``fer2013.csv`` (Kaggle's ``icml_face_data.csv`` too): columns ``emotion``,
  ``pixels``, ``Usage``. ``emotion`` is an id (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
  5 surprise, 6 neutral), ``pixels`` 2,304 space-separated values of a row-major 48x48 image,
  ``Usage`` Training (28,709), PublicTest (3,589) or PrivateTest (3,589). Records have
  ``image=None``, the pixels as ``extra["pixels"]`` (uint8, (48, 48)) and the 0-based data row
  as ``extra["row"]``.
* the image-folder form ``train/<emotion>/`` and ``test/<emotion>/`` (emotion folders angry,
  disgust, fear, happy, neutral, sad, surprise) whose file names keep the usage:
  ``Training_*``, ``PublicTest_*``, ``PrivateTest_*``. A name without the prefix takes its usage
  from the folder (``train`` -> Training, ``test`` -> PublicTest, reported, since PublicTest and
  PrivateTest cannot then be told apart). The record id is the path below the root.

``split`` is the usage, as the corpus names it. Every record carries ``extra["content_hash"]``:
a hash of the decoded pixels (CSV) or of the file bytes (images). About 1,850 images repeat
another image's pixels, often across usages and sometimes with another label;
:func:`duplicate_groups` finds them.
"""

from __future__ import annotations

import collections
import csv
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..labels import CORPUS_LABELS, unify
from ._base import IMAGE_EXTS, Anomaly, Corpus, CorpusScan, Record, iter_files
from ._image import content_hash, read_image

# Lived here before; still importable from this module for existing callers.

__all__ = ["Fer2013", "EMOTIONS", "USAGES", "parse_pixels", "duplicate_groups"]

#: Native label of each CSV emotion id (index = id).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: The corpus' own split names.
USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
SIDE = 48
CSV_NAMES = ("fer2013.csv", "fer2013/fer2013.csv", "icml_face_data.csv")
# usage implied by a folder name; "test" is a guess (it holds PublicTest and PrivateTest)
_FOLDER_USAGE = {"train": "Training", "training": "Training", "test": "PublicTest",
                 "publictest": "PublicTest", "privatetest": "PrivateTest"}
_GUESSED_FOLDERS = frozenset({"test"})


def parse_pixels(text: str) -> np.ndarray:
    """A CSV ``pixels`` field as a uint8 (48, 48) array; ``ValueError`` says what is wrong."""
    with warnings.catch_warnings():
        # numpy warns (instead of failing) on text it cannot read to the end
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.int32, sep=" ")
        except (DeprecationWarning, ValueError):
            raise ValueError("pixels field holds something other than integers") from None
    if values.size != SIDE * SIDE:
        raise ValueError(f"{values.size} pixel values instead of {SIDE * SIDE}")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError("pixel values outside 0-255")
    return values.astype(np.uint8).reshape(SIDE, SIDE)


def duplicate_groups(records: Iterable[Record]) -> list[list[Record]]:
    """Groups (two or more records) sharing ``extra["content_hash"]``, largest first."""
    groups: dict[str, list[Record]] = collections.defaultdict(list)
    for r in records:
        h = r.extra.get("content_hash")
        if h:
            groups[h].append(r)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0].id))


def _find_csv(root: Path) -> Path | None:
    if root.is_file():
        return root
    return next((root / n for n in CSV_NAMES if (root / n).is_file()), None)


def _usage_of(path: Path) -> tuple[str | None, str | None, str | None]:
    """Usage of an image, a problem with this file, and a note shared by its folder.

    The folder note (usage guessed from the folder, or unknown) is reported once per folder.
    """
    prefix = path.name.split("_", 1)[0]
    folder = path.parent.parent.name
    from_folder = _FOLDER_USAGE.get(folder.lower())
    if prefix in USAGES:
        if from_folder and (from_folder == "Training") != (prefix == "Training"):
            return prefix, f"named {prefix}_* but lies in folder {folder}/", None
        return prefix, None, None
    if from_folder is None:
        return None, None, ("no usage prefix (Training_, PublicTest_, PrivateTest_) and no "
                            "train/test folder: split left empty")
    if folder.lower() in _GUESSED_FOLDERS:
        return from_folder, None, (f"no usage prefix: usage taken as {from_folder} from folder "
                                   f"{folder}/ (PublicTest and PrivateTest cannot be told apart)")
    return from_folder, None, None


class Fer2013(Corpus, name="fer2013", modalities=("image",), subdir="fer2013",
              description="FER2013: 35,887 grayscale 48x48 faces, 7 classes, 3 usages"):
    """FER2013 loader. Option ``form``: ``"auto"`` (CSV when present, else images),
    ``"csv"`` or ``"images"``."""

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        form = self.options.get("form", "auto")
        if form not in ("auto", "csv", "images"):
            raise ConfigError(f"fer2013: form must be 'auto', 'csv' or 'images', not {form!r}")
        anomalies: list[Anomaly] = []
        csv_path = _find_csv(root) if form != "images" else None
        if csv_path is not None:
            records = self._scan_csv(csv_path, anomalies)
        elif form == "csv":
            raise DataError(root, f"no {' or '.join(CSV_NAMES)} found")
        else:
            records = self._scan_images(root, anomalies, decode=check_media)
            if not records and not anomalies:
                raise DataError(root, "neither fer2013.csv nor <usage>/<emotion>/ images found")
        return CorpusScan(self.name, str(root), records, anomalies)

    # -- CSV form ---------------------------------------------------------------------------
    def _scan_csv(self, path: Path, anomalies: list[Anomaly]) -> list[Record]:
        records: list[Record] = []
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in ("emotion", "pixels", "usage") if c not in header]
            if missing:
                raise DataError(path, f"not a FER2013 CSV: no column {', '.join(missing)} "
                                      f"(header: {', '.join(header) or 'empty'})")
            cols = [header.index(c) for c in ("emotion", "pixels", "usage")]
            for i, row in enumerate(reader):
                if not row:
                    continue
                where = f"data row {i} (line {reader.line_num})"
                try:
                    records.append(self._csv_record(i, [row[c] if c < len(row) else None
                                                        for c in cols]))
                except ValueError as exc:
                    anomalies.append(Anomaly(str(path), f"{where}: {exc}"))
        return records

    def _csv_record(self, i: int, fields: list[str | None]) -> Record:
        emotion, pixels, usage = (None if v is None else v.strip() for v in fields)
        if emotion is None or pixels is None or usage is None:
            raise ValueError("missing field(s): the row has too few columns")
        if not emotion.isdigit() or int(emotion) >= len(EMOTIONS):
            raise ValueError(f"unknown emotion id {emotion!r} (expected 0-6)")
        if usage not in USAGES:
            raise ValueError(f"unknown Usage {usage!r} (expected {', '.join(USAGES)})")
        arr = parse_pixels(pixels)
        native = EMOTIONS[int(emotion)]
        return Record(id=f"row-{i:05d}", corpus=self.name, label_native=native,
                      label=unify(self.name, native), split=usage,
                      extra={"row": i, "pixels": arr, "content_hash": content_hash(arr.tobytes())})

    # -- image-folder form ------------------------------------------------------------------
    def _scan_images(self, root: Path, anomalies: list[Anomaly], *, decode: bool) -> list[Record]:
        records: list[Record] = []
        notes: dict[tuple[str, str], list[Path]] = collections.defaultdict(list)
        by_name: dict[str, list[Path]] = collections.defaultdict(list)
        for path in iter_files(root, IMAGE_EXTS):
            emotion = path.parent.name.lower()
            if emotion not in CORPUS_LABELS[self.name]:
                anomalies.append(Anomaly(str(path), f"folder {path.parent.name!r} is not a "
                                         f"FER2013 emotion ({', '.join(EMOTIONS)})"))
                continue
            image = read_image(path, anomalies, decode=decode)
            if image is None:
                continue
            data, size = image
            if size is not None and size != (SIDE, SIDE):
                anomalies.append(Anomaly(str(path), f"image is {size[0]}x{size[1]}, not "
                                         f"{SIDE}x{SIDE} (resized on load)", skipped=False))
            usage, problem, note = _usage_of(path)
            if problem:
                anomalies.append(Anomaly(str(path), problem, skipped=False))
            if note:
                notes[(str(path.parent.parent), note)].append(path)
            by_name[path.name].append(path)
            records.append(Record(
                id=path.relative_to(root).with_suffix("").as_posix(), corpus=self.name,
                label_native=emotion, label=unify(self.name, emotion), split=usage,
                image=str(path), extra={"content_hash": content_hash(data)}))
        for (folder, note), paths in notes.items():
            anomalies.append(Anomaly(folder, f"{len(paths)} file(s), e.g. {paths[0].name}: "
                                     f"{note}", skipped=False))
        for name, paths in by_name.items():
            for p in paths[1:]:
                anomalies.append(Anomaly(str(p), f"file name {name} is also used by "
                                         f"{paths[0]} (records keep distinct ids)",
                                         skipped=False))
        return records
