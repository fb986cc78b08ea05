"""Splits, their leakage check and the helpers every protocol builder shares."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..corpora._base import Record
from ..errors import ConfigError, DataError, LabelError, LeakageError
from ..labels import CANONICAL, normalise_label

#: The parts of a split, in file order.
PARTS: tuple[str, ...] = ("train", "val", "test")
#: Pairs of parts that must not share a group, an item or identical content.
_PAIRS: tuple[tuple[str, str], ...] = (("train", "test"), ("train", "val"), ("val", "test"))
#: Spellings of a part in corpora and fold files -> part.
_PART_NAMES: dict[str, str] = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "publictest": "val",
    "test": "test", "privatetest": "test",
}
_NO_LABEL = "(none)"
_EXAMPLES = 3


@dataclass
class Split:
    """Record ids of one fold, per part.

    Attributes
    ----------
    name
        Human-readable name, e.g. ``"ravdess/emobox/1"``.
    train, test, val
        Record ids of each part (``val`` may be empty).
    protocol
        ``"emobox"``, ``"speaker-kfold"``, ``"loso"``, ``"official"``, ``"cross-corpus"``,
        ``"random"``, ``"file"`` ...
    fold
        Fold number, from 1.
    leaking
        True when the protocol knowingly lets speakers cross sides (the random split).
    info
        Protocol details: held-out groups, labels kept, unmatched ids, leakage report ...
    """

    name: str
    train: list[str]
    test: list[str]
    val: list[str] = field(default_factory=list)
    protocol: str = "custom"
    fold: int = 1
    leaking: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def ids(self, part: str) -> list[str]:
        """Ids of ``part`` (``"train"``, ``"val"`` or ``"test"``)."""
        if part not in PARTS:
            raise ConfigError(f"unknown split part {part!r}; expected one of {', '.join(PARTS)}")
        return getattr(self, part)

    def parts(self) -> dict[str, list[str]]:
        """The non-empty parts, in :data:`PARTS` order."""
        return {p: self.ids(p) for p in PARTS if self.ids(p)}

    def select(self, records: Iterable[Record], part: str) -> list[Record]:
        """Records of ``part``, in the order of the split's ids.

        Raises
        ------
        DataError
            If an id of the part is not among ``records``.
        """
        ids = self.ids(part)
        index = _index(records)
        _require_ids(ids, index, f"{self.name} ({part})")
        return [index[i] for i in ids]

    def with_validation(self, records: Iterable[Record], *, fraction: float = 0.15,
                        seed: int = 0, allow_leak: bool = False) -> Split:
        """A copy whose training part is split into train + a group-aware validation part.

        Only the training part is used (see :func:`validation_split`); the test part is left
        as it is. The result passes :func:`check_leakage`.
        """
        records = list(records)
        fit, val = validation_split(self.select(records, "train"), fraction=fraction, seed=seed)
        new = dataclasses.replace(self, train=fit, val=val, info=dict(self.info))
        new.info["validation"] = {"fraction": fraction, "seed": seed}
        return _checked(new, records, allow_leak)

    def to_rows(self, records: Iterable[Record] | None = None) -> list[dict[str, str]]:
        """Rows ``{fold, split, id, label}``; labels come from ``records`` when given."""
        index = _index(records) if records is not None else {}
        return [{"fold": str(self.fold), "split": part, "id": rid,
                 "label": _label_of(index[rid]) if rid in index else ""}
                for part, ids in self.parts().items() for rid in ids]

    def summary(self) -> dict[str, Any]:
        """Sizes of each part and the split's identity, JSON-ready."""
        return {"name": self.name, "protocol": self.protocol, "fold": self.fold,
                "leaking": self.leaking, **{p: len(ids) for p, ids in self.parts().items()}}


@dataclass(frozen=True)
class LeakageReport:
    """What crosses between the parts of a split.

    Attributes
    ----------
    split
        Name of the split checked.
    shared_groups
        ``"train/test"`` -> groups (speakers or dialogues) present on both sides.
    shared_ids
        ``"train/test"`` -> record ids present on both sides.
    duplicates
        ``"train/test"`` -> ``(held-out id, id on the other side)`` pairs of identical content
        (one pair per held-out item whose ``extra["content_hash"]`` also occurs on the other side).
    """

    split: str
    shared_groups: dict[str, list[str]]
    shared_ids: dict[str, list[str]]
    duplicates: dict[str, list[tuple[str, str]]]

    @property
    def n_shared_groups(self) -> int:
        """Distinct groups found on two sides (any pair of parts)."""
        return len({g for gs in self.shared_groups.values() for g in gs})

    @property
    def n_duplicates(self) -> int:
        """Distinct held-out items identical to an item on the other side (any pair)."""
        return len({held for pairs in self.duplicates.values() for held, _ in pairs})

    @property
    def n_shared_ids(self) -> int:
        """Distinct record ids found on two sides."""
        return len({i for ids in self.shared_ids.values() for i in ids})

    @property
    def ok(self) -> bool:
        """True when nothing crosses."""
        return not (self.n_shared_groups or self.n_duplicates or self.n_shared_ids)

    def message(self) -> str:
        """One line per problem, with a few examples each."""
        lines = []
        for pair, ids in self.shared_ids.items():
            if ids:
                lines.append(f"{pair}: {len(ids)} record ids on both sides (e.g. {_few(ids)})")
        for pair, groups in self.shared_groups.items():
            if groups:
                lines.append(f"{pair}: {len(groups)} speakers/dialogues on both sides "
                             f"(e.g. {_few(groups)})")
        for pair, dups in self.duplicates.items():
            if dups:
                a, b = pair.split("/")
                ex = ", ".join(f"{h} = {o}" for h, o in dups[:_EXAMPLES])
                lines.append(f"{pair}: {len(dups)} {b} items identical to {a} items by "
                             f"content hash (e.g. {ex})")
        return "\n".join(lines) if lines else "no leakage"

    def to_dict(self) -> dict[str, Any]:
        """Counts per pair plus a few examples, JSON-ready."""
        return {
            "split": self.split, "ok": self.ok, "shared_groups": self.n_shared_groups,
            "duplicates": self.n_duplicates, "shared_ids": self.n_shared_ids,
            "per_pair": {
                pair: {"groups": len(self.shared_groups.get(pair, [])),
                       "duplicates": len(self.duplicates.get(pair, [])),
                       "ids": len(self.shared_ids.get(pair, [])),
                       "group_examples": self.shared_groups.get(pair, [])[:_EXAMPLES]}
                for pair in sorted({*self.shared_groups, *self.duplicates, *self.shared_ids})},
        }


def check_leakage(split: Split, records: Iterable[Record], *,
                  allow_leak: bool = False) -> LeakageReport:
    """Find groups, ids and identical content on both sides of a split.

    Parameters
    ----------
    split
        The split to audit.
    records
        Records covering every id of the split (more are fine).
    allow_leak
        Return the report instead of raising when something crosses. A split flagged
        ``leaking=True`` (the random split) is never refused either.

    Returns
    -------
    LeakageReport
        Shared groups (``record.group``: dialogue, else speaker; compared within a corpus),
        shared record ids and content-hash duplicates for train/test, train/val and val/test.

    Raises
    ------
    LeakageError
        If anything crosses and neither ``allow_leak`` nor ``split.leaking`` is set.
    DataError
        If an id of the split is not among ``records``.
    """
    index = _index(records)
    parts = split.parts()
    for part, ids in parts.items():
        _require_ids(ids, index, f"{split.name} ({part})")
    multi = len({index[i].corpus for ids in parts.values() for i in ids}) > 1
    groups = {p: _groups(ids, index, multi) for p, ids in parts.items()}
    hashes = {p: _hashes(ids, index) for p, ids in parts.items()}
    id_sets = {p: set(ids) for p, ids in parts.items()}
    shared_groups: dict[str, list[str]] = {}
    shared_ids: dict[str, list[str]] = {}
    duplicates: dict[str, list[tuple[str, str]]] = {}
    for a, b in _PAIRS:
        if a not in parts or b not in parts:
            continue
        pair = f"{a}/{b}"
        shared_groups[pair] = sorted(groups[a][g] for g in groups[a].keys() & groups[b].keys())
        shared_ids[pair] = [i for i in parts[b] if i in id_sets[a]]
        duplicates[pair] = [(i, hashes[a][h][0]) for h, ids_b in hashes[b].items()
                            if h in hashes[a] for i in ids_b if i not in id_sets[a]]
    report = LeakageReport(split.name, shared_groups, shared_ids, duplicates)
    if not report.ok and not (allow_leak or split.leaking):
        raise LeakageError(f"split {split.name!r} leaks between its parts (pass "
                           f"allow_leak=True to accept it knowingly):\n{report.message()}")
    return report


def drop_cross_duplicates(split: Split, records: Iterable[Record], *,
                          allow_leak: bool = False) -> Split:
    """Copy of ``split`` without the val/test items whose content also occurs in an earlier part.

    Meant for corpora with repeated items across the official split (FER2013). The number of
    items dropped per part is kept in ``info["dropped_duplicates"]``.
    """
    records = list(records)
    index = _index(records)
    seen: set[str] = set()
    kept: dict[str, list[str]] = {}
    dropped: dict[str, int] = {}
    for part in PARTS:
        ids = split.ids(part)
        _require_ids(ids, index, f"{split.name} ({part})")
        keep = [i for i in ids if part == "train" or _hash_of(index[i]) not in seen]
        kept[part], dropped[part] = keep, len(ids) - len(keep)
        seen.update(h for i in ids if (h := _hash_of(index[i])) is not None)
    new = dataclasses.replace(split, **kept, info=dict(split.info))
    new.info["dropped_duplicates"] = {p: n for p, n in dropped.items() if p != "train"}
    return _checked(new, records, allow_leak)


def _index(records: Iterable[Record]) -> dict[str, Record]:
    """id -> record; ids must be unique."""
    index: dict[str, Record] = {}
    dup: list[str] = []
    for r in records:
        if r.id in index:
            dup.append(r.id)
        index[r.id] = r
    if dup:
        raise DataError(None, f"{len(dup)} record ids occur more than once (e.g. {_few(dup)}); "
                        f"splits need unique ids")
    return index


def _require_ids(ids: Iterable[str], index: Mapping[str, Record], where: str) -> None:
    missing = [i for i in ids if i not in index]
    if missing:
        raise DataError(None, f"{where}: {len(missing)} ids are not among the records given "
                        f"(e.g. {_few(missing)})")


def _require_groups(records: Sequence[Record], what: str,
                    key: Callable[[Record], str | None]) -> list[str]:
    groups = [key(r) for r in records]
    missing = [r.id for r, g in zip(records, groups) if not g]
    if missing:
        raise DataError(None, f"{_corpus_name(records)}: {what} needs a speaker on every record; "
                        f"{len(missing)} have none (e.g. {_few(missing)})")
    return groups  # type: ignore[return-value]


def _partition(name: str, records: Sequence[Record], test: set[int], protocol: str, fold: int,
               *, info: dict[str, Any], leaking: bool = False) -> Split:
    """Split with the records at indices ``test`` as test part and the rest as train."""
    train_ids = [r.id for i, r in enumerate(records) if i not in test]
    test_ids = [r.id for i, r in enumerate(records) if i in test]
    return Split(name, train_ids, test_ids, protocol=protocol, fold=fold, leaking=leaking,
                 info=info)


def _checked(split: Split, records: Iterable[Record], allow_leak: bool) -> Split:
    """Run :func:`check_leakage` and keep its counts in ``split.info["leakage"]``."""
    split.info["leakage"] = check_leakage(split, records, allow_leak=allow_leak).to_dict()
    return split


def _groups(ids: Iterable[str], index: Mapping[str, Record], multi: bool) -> dict[Any, str]:
    """(corpus, group) -> display name, for the records of ``ids`` that have a group."""
    out: dict[Any, str] = {}
    for i in ids:
        r = index[i]
        g = r.group
        if g:
            out[(r.corpus, g)] = f"{r.corpus}:{g}" if multi else str(g)
    return out


def _hash_of(r: Record) -> str | None:
    h = r.extra.get("content_hash")
    return str(h) if h else None


def _hashes(ids: Iterable[str], index: Mapping[str, Record]) -> dict[str, list[str]]:
    """content hash -> ids carrying it (first id first)."""
    out: dict[str, list[str]] = {}
    for i in ids:
        h = _hash_of(index[i])
        if h is not None:
            out.setdefault(h, []).append(i)
    return out


def _label_of(r: Record) -> str:
    return r.label or r.label_native or ""


def _corpus_name(records: Iterable[Record]) -> str:
    names = sorted({r.corpus for r in records})
    return "+".join(names) if names else "empty"


def _few(items: Sequence[Any]) -> str:
    items = list(items)
    more = f", ... (+{len(items) - _EXAMPLES})" if len(items) > _EXAMPLES else ""
    return ", ".join(str(x) for x in items[:_EXAMPLES]) + more


def _canonical(label: str) -> str:
    canon = label if label in CANONICAL else normalise_label(label)
    if canon is None:
        raise LabelError(f"{label!r} is not a canonical label; known: {', '.join(CANONICAL)}")
    return canon


def _stratified_draw(labels: Sequence[str], fraction: float, seed: int) -> set[int]:
    """Indices drawn at random, ``fraction`` of each label (rounded), reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    held: set[int] = set()
    for lab in sorted(by_label):
        idx = by_label[lab]
        n = int(round(len(idx) * fraction))
        held.update(int(idx[j]) for j in rng.permutation(len(idx))[:n])
    if not held or len(held) == len(labels):
        raise DataError(None, f"a {fraction:.0%} draw from {len(labels)} records leaves one "
                        f"side empty")
    return held


def validation_split(records: Sequence[Record], *, fraction: float = 0.15,
                     seed: int = 0) -> tuple[list[str], list[str]]:
    """Split a training part into (fit ids, validation ids), group-aware and stratified.

    Pass the records of a training part only, never the test part. Records are grouped by
    ``record.group``; records without one are grouped by ``extra["content_hash"]``, else stand
    alone. With few groups the validation part is one group (e.g. one of 3 SAVEE speakers), so
    it may be larger than ``fraction``.

    Raises
    ------
    DataError
        If there are fewer than two groups.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    records = list(records)
    keys = [r.group or _hash_of(r) or f"id:{r.id}" for r in records]
    n_groups = len(set(keys))
    if n_groups < 2:
        raise DataError(None, f"{_corpus_name(records)}: cannot hold out a group-aware "
                        f"validation part from {n_groups} speaker/dialogue group")
    labels = [_label_of(r) for r in records]
    if n_groups == len(records):  # no grouping: a plain stratified draw is exact and fast
        held = _stratified_draw(labels, fraction, seed)
    else:
        n_splits = min(n_groups, max(2, round(1.0 / fraction)))
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*least populated class.*")
            tests = [t for _, t in splitter.split(np.zeros(len(records)), labels, keys)]
        target = fraction * len(records)
        held = set(min((t for t in tests if len(t)), key=lambda t: abs(len(t) - target))
                   .tolist())
    fit = [r.id for i, r in enumerate(records) if i not in held]
    val = [r.id for i, r in enumerate(records) if i in held]
    return fit, val
