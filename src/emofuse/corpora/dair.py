"""dair-ai "emotion" (Saravia et al. 2018): English tweets, 6 emotions, single-label.

The original form: ``train.txt``, ``val.txt``, ``test.txt`` (16,000 / 2,000 / 2,000 lines),
each line ``text;label`` with label names sadness, joy, love, anger, fear, surprise; ``val``
becomes split ``"dev"``. The Hugging Face exports are read too: ``<split>.csv`` with a
``text,label`` header and ``<split>.jsonl`` / ``<split>.jsonl.gz`` objects with ``text`` and
``label`` (split names train, validation, test), the label an id (0 sadness, 1 joy, 2 love,
3 anger, 4 fear, 5 surprise) or a name. The record id is ``<split>-<line number>``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError
from ..labels import CORPUS_LABELS, unify
from ._base import Anomaly, Corpus, CorpusScan, Record
from ._text import clean_text, decode_utf8, invalid_bytes_anomaly

__all__ = ["Dair", "LABELS", "SPLIT_STEMS"]

#: Native label of each Hugging Face label id (index = id).
LABELS: tuple[str, ...] = ("sadness", "joy", "love", "anger", "fear", "surprise")
#: Our split -> file stems that hold it, in order of preference.
SPLIT_STEMS = {"train": ("train",), "dev": ("val", "validation", "dev"), "test": ("test",)}
_EXTS = (".txt", ".csv", ".jsonl", ".jsonl.gz")

# one parsed line: (line number, text, raw label) or (line number, None, problem)
_Row = tuple[int, str | None, str]


def _find(root: Path, split: str) -> Path | None:
    for stem in SPLIT_STEMS[split]:
        for ext in _EXTS:
            if (root / f"{stem}{ext}").is_file():
                return root / f"{stem}{ext}"
    return None


def _rows_txt(text: str) -> Iterator[_Row]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        body, sep, label = line.rpartition(";")
        if not sep:
            yield n, None, "missing field: no ';' between text and label"
        else:
            yield n, body, label


def _rows_csv(text: str) -> Iterator[_Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not {"text", "label"} <= set(reader.fieldnames or ()):
        yield 1, None, f"CSV header {reader.fieldnames} lacks text and label"
        return
    line = reader.line_num
    for row in reader:
        n, line = line + 1, reader.line_num
        if row["text"] is None or row["label"] is None:
            yield n, None, "missing field(s): the row has too few columns"
        else:
            yield n, row["text"], row["label"]


def _rows_jsonl(text: str) -> Iterator[_Row]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield n, None, f"invalid JSON ({exc.msg})"
            continue
        if not isinstance(obj, dict) or "text" not in obj or "label" not in obj:
            yield n, None, "missing field(s): an object with text and label was expected"
        else:
            yield n, str(obj["text"]), str(obj["label"])


def _read(path: Path) -> Iterator[_Row]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    text = decode_utf8(data)
    if path.suffix == ".txt":
        return _rows_txt(text)
    return _rows_csv(text) if path.suffix == ".csv" else _rows_jsonl(text)


def _native(label: str) -> str:
    """Native label name of a raw label (a name or a Hugging Face id)."""
    label = label.strip()
    if label.isdigit() and int(label) < len(LABELS):
        return LABELS[int(label)]
    if label.lower() in CORPUS_LABELS["dair"]:
        return label.lower()
    raise ValueError(f"unknown label {label!r} (expected {', '.join(LABELS)} or ids 0-5)")


class Dair(Corpus, name="dair", modalities=("text",), subdir="text/dair_emotion",
           description="dair-ai emotion: English tweets, 6 emotions, train/val/test"):

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        files = {s: p for s in SPLIT_STEMS if (p := _find(root, s)) is not None}
        if not files:
            raise DataError(root, "no dair-ai emotion split files (train.txt, val.txt, "
                                  "test.txt or the .csv/.jsonl exports)")
        anomalies = [Anomaly(str(root / f"{SPLIT_STEMS[s][0]}.txt"), "split file missing")
                     for s in SPLIT_STEMS if s not in files]
        records: list[Record] = []
        for split, path in files.items():
            try:
                rows = list(_read(path))
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                anomalies.append(Anomaly(str(path), f"cannot read file ({exc})"))
                continue
            for n, text, label in rows:
                rec = self._record(path, split, n, text, label, anomalies)
                if rec is not None:
                    records.append(rec)
        return CorpusScan(self.name, str(root), records, anomalies)

    def _record(self, path: Path, split: str, n: int, text: str | None, label: str,
                anomalies: list[Anomaly]) -> Record | None:
        where = f"line {n}"
        if text is None:
            anomalies.append(Anomaly(str(path), f"{where}: {label}"))
            return None
        text, bad_bytes = clean_text(text)
        try:
            native = _native(label)
        except ValueError as exc:
            anomalies.append(Anomaly(str(path), f"{where}: {exc}"))
            return None
        if not text:
            anomalies.append(Anomaly(str(path), f"{where}: empty text"))
            return None
        if bad_bytes:
            anomalies.append(invalid_bytes_anomaly(path, where))
        return Record(id=f"{split}-{n:06d}", corpus=self.name, label_native=native,
                      label=unify(self.name, native), split=split, text=text)
