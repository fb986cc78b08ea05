"""Fold files: the EmoBox CSVs and our own ``fold,split,id,label`` files."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..corpora._base import Record
from ..errors import DataError
from ..labels import CORPUS_LABELS, normalise_label
from ._core import _PART_NAMES, PARTS, Split, _checked, _few, _index


def emobox_folds(corpus: str, records: Sequence[Record], *, path: str | Path | None = None,
                 max_unmatched: float = 0.01, allow_leak: bool = False) -> list[Split]:
    """The EmoBox benchmark folds of ``corpus``, matched to ``records``.

    Parameters
    ----------
    corpus
        Corpus name (``"ravdess"``, ``"savee"``); names the fold file and its label map.
    records
        The corpus' records. An utterance matches a record by the base name of
        ``record.audio`` (without extension) or by ``record.id``.
    path
        The fold CSV (``fold,split,utterance,emotion``) or its folder; default
        ``<protocols_root>/<corpus>_emobox_folds.csv``.
    max_unmatched
        Largest fraction of the file's utterances that may match no record (or disagree on the
        label) before it is an error; fewer are dropped with a warning and listed in
        ``info["unmatched"]`` / ``info["label_mismatch"]``.

    Raises
    ------
    DataError
        If the file is missing or malformed, or too many utterances do not match.
    """
    from ..paths import protocols_root

    file = Path(path) if path is not None else protocols_root()
    if file.is_dir() or path is None:
        file = file / f"{corpus}_emobox_folds.csv"
    if not file.is_file():
        raise DataError(file, f"no EmoBox fold file for {corpus!r}")
    folds = _read_fold_rows(file)
    index = _index(records)
    lookup = _utterance_lookup(records)
    utterances = {u for parts in folds.values() for rows in parts.values() for u, _ in rows}
    unmatched: set[str] = set()
    mismatch: set[str] = set()
    out: list[Split] = []
    for fold, parts in sorted(folds.items()):
        ids: dict[str, list[str]] = {p: [] for p in PARTS}
        for part, rows in parts.items():
            for utt, label in rows:
                rid = lookup.get(utt)
                if rid is None:
                    unmatched.add(utt)
                elif not _same_label(corpus, label, index[rid]):
                    mismatch.add(utt)
                else:
                    ids[part].append(rid)
        out.append(Split(f"{corpus}/emobox/{fold}", ids["train"], ids["test"], ids["val"],
                         "emobox", fold, info={"file": str(file)}))
    _report_unmatched(file, len(utterances), unmatched, mismatch, max_unmatched)
    for split in out:
        if unmatched:
            split.info["unmatched"] = sorted(unmatched)
        if mismatch:
            split.info["label_mismatch"] = sorted(mismatch)
        _checked(split, records, allow_leak)
    return out


def write_folds(splits: Iterable[Split], path: str | Path, *,
                records: Iterable[Record] | None = None) -> Path:
    """Write splits as CSV ``fold,split,id,label`` (labels from ``records`` when given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = list(records) if records is not None else None
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["fold", "split", "id", "label"])
        writer.writeheader()
        for split in splits:
            writer.writerows(split.to_rows(records))
    return path


def read_folds(path: str | Path, *, protocol: str = "file") -> list[Split]:
    """Read a fold file written by :func:`write_folds` (or an EmoBox CSV) back into splits.

    The file's labels are kept in ``info["labels"]`` (id -> label).
    """
    path = Path(path)
    out = []
    for fold, parts in sorted(_read_fold_rows(path).items()):
        ids = {p: [i for i, _ in parts.get(p, [])] for p in PARTS}
        labels = {i: lab for rows in parts.values() for i, lab in rows if lab}
        out.append(Split(f"{path.stem}/{fold}", ids["train"], ids["test"], ids["val"],
                         protocol, fold, info={"file": str(path), "labels": labels}))
    return out


def _read_fold_rows(path: Path) -> dict[int, dict[str, list[tuple[str, str]]]]:
    """fold -> part -> [(id, label)] of a fold CSV (``id``/``utterance``, ``label``/``emotion``)."""
    if not path.is_file():
        raise DataError(path, "fold file does not exist")
    out: dict[int, dict[str, list[tuple[str, str]]]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or ())
        id_col = next((c for c in ("id", "utterance") if c in cols), None)
        label_col = next((c for c in ("label", "emotion") if c in cols), None)
        if not {"fold", "split"} <= cols or id_col is None:
            found = ",".join(reader.fieldnames or [])
            raise DataError(path, f"expected columns fold,split,id[,label] (or EmoBox's "
                            f"fold,split,utterance,emotion), found {found}")
        for line, row in enumerate(reader, start=2):
            part = _PART_NAMES.get((row["split"] or "").strip().lower())
            try:
                fold = int(row["fold"])
            except (TypeError, ValueError):
                fold = None
            rid = (row[id_col] or "").strip()
            if part is None or fold is None or not rid:
                raise DataError(path, f"line {line}: bad row {dict(row)} (fold must be an "
                                f"integer, split train/val/test, id non-empty)")
            label = (row.get(label_col) or "").strip() if label_col else ""
            out.setdefault(fold, {}).setdefault(part, []).append((rid, label))
    if not out:
        raise DataError(path, "fold file has no rows")
    return out


def _same_label(corpus: str, file_label: str, record: Record) -> bool:
    """Whether a fold file's label agrees with the record (unknown spellings are not judged)."""
    if not file_label or record.label is None:
        return True
    table = CORPUS_LABELS.get(corpus, {})
    canon = table[file_label] if file_label in table else normalise_label(file_label)
    return canon is None or canon == record.label


def _utterance_lookup(records: Iterable[Record]) -> dict[str, str]:
    """Utterance name (audio base name, or id) -> record id; ambiguous names are left out."""
    lookup: dict[str, str] = {}
    ambiguous: set[str] = set()
    for r in records:
        for key in {r.id, Path(r.audio).stem if r.audio else None} - {None}:
            if key in lookup and lookup[key] != r.id:
                ambiguous.add(key)
            lookup.setdefault(key, r.id)
    for key in ambiguous:
        del lookup[key]
    return lookup


def _report_unmatched(file: Path, total: int, unmatched: set[str], mismatch: set[str],
                      max_unmatched: float) -> None:
    """Raise when too many fold-file utterances are unusable, warn when a few are."""
    problems = []
    if unmatched:
        problems.append(f"{len(unmatched)} of {total} utterances match no record "
                        f"(e.g. {_few(sorted(unmatched))})")
    if mismatch:
        problems.append(f"{len(mismatch)} utterances have another label than their record "
                        f"(e.g. {_few(sorted(mismatch))})")
    if not problems:
        return
    text = "; ".join(problems)
    if len(unmatched | mismatch) > max_unmatched * total:
        raise DataError(file, f"{text}; wrong corpus or root folder?")
    warnings.warn(f"{file}: {text}; they are left out of the folds", stacklevel=3)
