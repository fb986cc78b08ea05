"""MELD, the Multimodal EmotionLines Dataset (Poria et al. 2019): utterances of *Friends*.

``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv`` (9,989 / 1,109 / 2,610
rows), columns ``Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID,
Season, Episode, StartTime, EndTime``. Emotions: neutral, joy, surprise, anger, sadness,
disgust, fear; sentiment: neutral, positive, negative. Dialogue ids restart in each split, so
``extra["dialogue"]`` is ``"<split>:<Dialogue_ID>"`` (the group that must not cross a split);
``extra["utterance"]`` is the Utterance_ID, the record id ``<split>_dia<D>_utt<U>``.

The official CSVs hold mojibake (``â\\x80\\x99`` for ``’``): it is repaired. Clips, when present,
are the official folders ``train_splits/``, ``dev_splits_complete/``,
``output_repeated_splits_test/`` (or ``train/``, ``dev/``, ``test/``; also under ``MELD.Raw/``)
with files ``dia{D}_utt{U}.mp4``; a found clip becomes ``video`` and ``audio`` (it carries sound).
"""

from __future__ import annotations

import collections
import csv
import io
import os
import re
from pathlib import Path

from ..errors import DataError
from ..labels import CORPUS_LABELS, unify
from ._base import Anomaly, Corpus, CorpusScan, Record, read_bytes
from ._text import clean_text, decode_utf8, invalid_bytes_anomaly

# Lived here before; still importable from this module for existing callers.

__all__ = ["Meld", "SPLIT_FILES", "CLIP_DIRS"]

SPLIT_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv",
               "test": "test_sent_emo.csv"}
CLIP_DIRS = {"train": ("train_splits", "train"),
             "dev": ("dev_splits_complete", "dev_splits", "dev"),
             "test": ("output_repeated_splits_test", "test_splits", "test")}
_REQUIRED = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
_TIME = re.compile(r"^(\d+):(\d{2}):(\d{2})[,.](\d{1,3})$")


def _seconds(stamp: str) -> float | None:
    m = _TIME.match(stamp.strip())
    if not m:
        return None
    h, mi, s, ms = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def _int_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def _clip_index(root: Path, split: str) -> dict[str, Path]:
    """``dia{D}_utt{U}`` -> mp4 of the first clip folder of ``split`` found under ``root``."""
    for base in (root, root / "MELD.Raw"):
        for name in CLIP_DIRS[split]:
            folder = base / name
            if folder.is_dir():
                with os.scandir(folder) as it:
                    return {Path(e.name).stem: Path(e.path) for e in it
                            if e.name.lower().endswith(".mp4") and not e.name.startswith(".")}
    return {}


class _BadRow(ValueError):
    """A CSV row that cannot become a record (message: the problem)."""


class Meld(Corpus, name="meld", modalities=("text", "audio", "video"), subdir="text/meld",
           description="MELD: multi-party Friends dialogues, 7 emotions + sentiment, "
                       "train/dev/test"):

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        found = {s: root / f for s, f in SPLIT_FILES.items() if (root / f).is_file()}
        if not found:
            raise DataError(root, f"no MELD CSV ({', '.join(SPLIT_FILES.values())})")
        anomalies = [Anomaly(str(root / f), "split file missing")
                     for s, f in SPLIT_FILES.items() if s not in found]
        records: list[Record] = []
        for split, path in found.items():
            split_records = self._read_split(path, split, anomalies)
            self._attach_clips(root, split, split_records, anomalies, check=check_media)
            records.extend(split_records)
        return CorpusScan(self.name, str(root), records, anomalies)

    def _read_split(self, path: Path, split: str, anomalies: list[Anomaly]) -> list[Record]:
        data = read_bytes(path, anomalies)
        if data is None:
            return []
        reader = csv.DictReader(io.StringIO(decode_utf8(data), newline=""))
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            anomalies.append(Anomaly(str(path), f"not a MELD CSV: no column "
                                     f"{', '.join(missing)}"))
            return []
        records: dict[str, Record] = {}
        line = reader.line_num
        for row in reader:
            where, line = f"line {line + 1}", reader.line_num
            try:
                rec, bad_bytes = self._record(row, split)
            except _BadRow as exc:
                anomalies.append(Anomaly(str(path), f"{where}: {exc}"))
                continue
            if bad_bytes:
                anomalies.append(invalid_bytes_anomaly(path, where))
            if rec.id in records:
                anomalies.append(Anomaly(str(path), f"{where}: dialogue "
                                         f"{rec.extra['dialogue']} utterance "
                                         f"{rec.extra['utterance']} appears twice"))
                continue
            records[rec.id] = rec
        return list(records.values())

    def _record(self, row: dict[str, str | None], split: str) -> tuple[Record, bool]:
        absent = [c for c in _REQUIRED if row.get(c) is None]
        if absent:
            raise _BadRow(f"missing field(s) {', '.join(absent)}")
        cleaned = {k: clean_text(v) for k, v in row.items() if isinstance(k, str) and v}
        f: dict[str, str] = collections.defaultdict(str, {k: v for k, (v, _) in cleaned.items()})
        emotion = f["Emotion"].lower()
        if emotion not in CORPUS_LABELS[self.name]:
            raise _BadRow(f"unknown emotion {emotion!r} "
                          f"(expected {', '.join(CORPUS_LABELS[self.name])})")
        dia, utt = _int_or_none(f["Dialogue_ID"]), _int_or_none(f["Utterance_ID"])
        if dia is None or utt is None:
            raise _BadRow(f"Dialogue_ID {f['Dialogue_ID']!r} / Utterance_ID "
                          f"{f['Utterance_ID']!r} are not both integers")
        if not f["Utterance"]:
            raise _BadRow("empty Utterance")
        extra = {"dialogue": f"{split}:{dia}", "utterance": utt,
                 "sentiment": f["Sentiment"].lower() or None,
                 "season": _int_or_none(f["Season"]), "episode": _int_or_none(f["Episode"]),
                 "start_time": f["StartTime"] or None, "end_time": f["EndTime"] or None,
                 "start": _seconds(f["StartTime"]), "end": _seconds(f["EndTime"]),
                 "sr_no": _int_or_none(f["Sr No."])}
        rec = Record(id=f"{split}_dia{dia}_utt{utt}", corpus=self.name, label_native=emotion,
                     label=unify(self.name, emotion), speaker=f["Speaker"] or None,
                     split=split, text=f["Utterance"], extra=extra)
        return rec, any(bad for _, bad in cleaned.values())

    def _attach_clips(self, root: Path, split: str, records: list[Record],
                      anomalies: list[Anomaly], *, check: bool) -> None:
        clips = _clip_index(root, split)
        for rec in records:
            clip = clips.get(rec.id.split("_", 1)[1])
            if clip is None:
                continue
            problem = _clip_problem(clip) if check else None
            if problem:
                anomalies.append(Anomaly(str(clip), f"{problem}; {rec.id} kept as text only",
                                         skipped=False))
                continue
            rec.video = rec.audio = str(clip)


def _clip_problem(path: Path) -> str | None:
    """Cheap check of an mp4: not empty and an ISO-BMFF box at the start."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError as exc:
        return f"cannot read clip ({exc.strerror})"
    if not head:
        return "clip is empty (0 bytes)"
    if head[4:8] not in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "not an MP4 clip (no ISO-BMFF header)"
    return None
