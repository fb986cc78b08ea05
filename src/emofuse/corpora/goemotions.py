"""GoEmotions (Demszky et al. 2020): 58k Reddit comments, 27 emotions + neutral, multi-label.

The common split form: ``<scheme>/{train,dev,test}.tsv`` (43,410 / 5,426 / 5,427 rows), lines
``text \\t label ids \\t comment id`` with comma-separated ids into that folder's
``labels.txt`` (one name per line). Schemes (option ``scheme``): ``original`` (the 28 labels,
default), ``ekman`` (anger, disgust, fear, joy, neutral, sadness, surprise) and ``group``
(sentiment: ambiguous, negative, neutral, positive). The root may be the corpus folder or one
scheme folder itself (which then decides the scheme).

Multi-label: ``extra["labels"]`` always lists the native names. ``label_native`` is the single
label of a one-label row, else ``None``; ``label`` is its canonical label, or for several labels
their shared Ekman group, else ``None``. The ``group`` scheme holds sentiments, not emotions:
its ``label`` is always ``None``. ``CorpusScan.summary()`` counts every listed label of a
multi-label row, so its class counts add up to more than the row count. The record id is the
comment id.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DataError
from ..labels import CORPUS_LABELS, GOEMOTIONS_28, unify
from ._base import Anomaly, Corpus, CorpusScan, Record
from ._text import clean_text, decode_utf8, invalid_bytes_anomaly

__all__ = ["GoEmotions", "SCHEMES", "SPLITS"]

SCHEMES = ("original", "ekman", "group")
SPLITS = ("train", "dev", "test")


class _BadRow(ValueError):
    """A TSV line that cannot become a record (message: the problem)."""


def _folder_and_scheme(root: Path, asked: str | None) -> tuple[Path, str]:
    """The folder holding the TSVs and its scheme; ``root`` may be a scheme folder itself."""
    if asked is not None and asked not in SCHEMES:
        raise ConfigError(f"goemotions: scheme must be one of {', '.join(SCHEMES)}, not {asked!r}")
    if any((root / f"{s}.tsv").is_file() for s in SPLITS):
        own = root.name if root.name in SCHEMES else None
        if asked and own and asked != own:
            raise ConfigError(f"goemotions: root {root} is the {own!r} folder but "
                              f"scheme={asked!r} was asked")
        return root, own or asked or "original"
    scheme = asked or "original"
    folder = root / scheme
    if not folder.is_dir():
        raise DataError(root, f"no GoEmotions {{train,dev,test}}.tsv here or in {scheme}/")
    return folder, scheme


def _label_names(folder: Path, scheme: str, anomalies: list[Anomaly]) -> list[str]:
    path = folder / "labels.txt"
    if path.is_file():
        names = [ln.strip() for ln in decode_utf8(path.read_bytes()).splitlines() if ln.strip()]
        if names:
            return names
    if scheme == "original":
        anomalies.append(Anomaly(str(path), "missing or empty: using the 28 standard GoEmotions "
                                 "labels", skipped=False))
        return list(GOEMOTIONS_28)
    raise DataError(path, "missing or empty: label ids of this scheme cannot be named")


def _canonical(names: list[str], scheme: str) -> str | None:
    """Canonical label of a row: its one label's, or the Ekman group all its labels share."""
    if scheme == "group" or not all(n in CORPUS_LABELS["goemotions"] for n in names):
        return None
    groups = {unify("goemotions", n) for n in names}
    return groups.pop() if len(groups) == 1 else None


def _parse_ids(field: str, names: list[str]) -> list[str]:
    ids = [t.strip() for t in field.split(",") if t.strip()]
    if not ids:
        raise _BadRow("no label")
    bad = [t for t in ids if not t.isdigit() or int(t) >= len(names)]
    if bad:
        raise _BadRow(f"unknown label id(s) {', '.join(bad)} (labels.txt has {len(names)})")
    return [names[int(t)] for t in dict.fromkeys(ids)]


class GoEmotions(Corpus, name="goemotions", modalities=("text",), subdir="text/goemotions",
                 description="GoEmotions: Reddit comments, 28 labels (multi-label), "
                             "Ekman/sentiment groups"):
    """GoEmotions loader. Option ``scheme``: ``"original"`` (default), ``"ekman"``, ``"group"``."""

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        folder, scheme = _folder_and_scheme(root, self.options.get("scheme"))
        anomalies: list[Anomaly] = []
        names = _label_names(folder, scheme, anomalies)
        unknown = [n for n in names if scheme != "group" and n not in CORPUS_LABELS[self.name]]
        if unknown:
            anomalies.append(Anomaly(str(folder / "labels.txt"), f"label(s) {', '.join(unknown)} "
                                     "are not GoEmotions labels: no canonical label",
                                     skipped=False))
        records: dict[str, Record] = {}
        for split in SPLITS:
            path = folder / f"{split}.tsv"
            if not path.is_file():
                anomalies.append(Anomaly(str(path), "split file missing"))
                continue
            for rec in self._read_split(path, split, names, scheme, anomalies):
                if rec.id in records:
                    anomalies.append(Anomaly(str(path), f"line {rec.extra['line']}: comment id "
                                             f"{rec.id} already in {records[rec.id].split}"))
                else:
                    records[rec.id] = rec
        return CorpusScan(self.name, str(root), list(records.values()), anomalies)

    def _read_split(self, path: Path, split: str, names: list[str], scheme: str,
                    anomalies: list[Anomaly]) -> list[Record]:
        out: list[Record] = []
        for n, line in enumerate(decode_utf8(path.read_bytes()).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec, bad_bytes = self._record(line, n, split, names, scheme)
            except _BadRow as exc:
                anomalies.append(Anomaly(str(path), f"line {n}: {exc}"))
                continue
            if bad_bytes:
                anomalies.append(invalid_bytes_anomaly(path, f"line {n}"))
            out.append(rec)
        return out

    def _record(self, line: str, n: int, split: str, names: list[str],
                scheme: str) -> tuple[Record, bool]:
        parts = line.rsplit("\t", 2)
        if len(parts) != 3:
            raise _BadRow(f"missing field(s): {len(parts)} tab-separated field(s) instead of 3 "
                          "(text, label ids, comment id)")
        (text, bad_bytes), labels, cid = clean_text(parts[0]), parts[1], parts[2].strip()
        if not text:
            raise _BadRow("empty text")
        native = _parse_ids(labels, names)
        single = native[0] if len(native) == 1 else None
        return Record(id=cid or f"{split}-{n:06d}", corpus=self.name, label_native=single,
                      label=_canonical(native, scheme), split=split, text=text,
                      extra={"labels": native, "scheme": scheme, "line": n}), bad_bytes
