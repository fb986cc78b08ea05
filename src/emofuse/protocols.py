"""Evaluation protocols (how records are split into train / validation / test) and the leakage
check every protocol passes by default.

A :class:`Split` holds record ids per part. Builders are pure functions over lists of
:class:`~emofuse.corpora.Record`:

* :func:`official_split` - the corpus' own train/dev/test (FER2013 Training/PublicTest/
  PrivateTest; MELD, GoEmotions, dair train/dev/test).
* :func:`speaker_kfold` - speaker-independent (group-aware), stratified k-fold.
* :func:`leave_one_speaker_out` - one fold per speaker.
* :func:`emobox_folds` - the exact EmoBox folds from ``<protocols_root>/<corpus>_emobox_folds.csv``.
* :func:`cross_corpus` - train on one corpus, test on another, over their shared labels.
* :func:`random_split` - item-level stratified split; flagged ``leaking=True`` (speakers cross).

:meth:`Split.with_validation` (built on :func:`validation_split`) carves a speaker-grouped
validation set out of a training part only, never out of the test part.

:func:`check_leakage` looks for a group (``record.group``: the dialogue for MELD, else the
speaker), a record id, or identical content (``extra["content_hash"]``) on both sides of
train/test, train/val and val/test, and raises :class:`~emofuse.errors.LeakageError` unless told
the leak is known. Fold files (``fold,split,id,label`` CSV, the shape of the EmoBox CSVs) are
written by :func:`write_folds` and read back by :func:`read_folds`.

Folds are numbered from 1, as in EmoBox. Ids inside each part keep the order of the input records.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .corpora._base import Record
from .errors import ConfigError, DataError, LabelError, LeakageError
from .labels import CANONICAL, CORPUS_LABELS, normalise_label, shared_labels

__all__ = [
    "PARTS",
    "Split",
    "LeakageReport",
    "official_split",
    "speaker_kfold",
    "leave_one_speaker_out",
    "emobox_folds",
    "validation_split",
    "cross_corpus",
    "random_split",
    "check_leakage",
    "drop_cross_duplicates",
    "write_folds",
    "read_folds",
    "make_splits",
]

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


# --------------------------------------------------------------------------------------------
# Split


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


# --------------------------------------------------------------------------------------------
# Leakage


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


# --------------------------------------------------------------------------------------------
# Protocols


def official_split(records: Sequence[Record], *, allow_leak: bool = False) -> Split:
    """The corpus' own split, from each record's ``split`` field.

    FER2013 ``Training``/``PublicTest``/``PrivateTest`` and ``train``/``dev``/``test``
    (MELD, GoEmotions, dair) become train/val/test (case does not matter).

    Raises
    ------
    DataError
        If a record has no or an unknown ``split``, or there is no train or test part.
    LeakageError
        If the split leaks (FER2013 repeats images across its parts: see
        :func:`drop_cross_duplicates`) and ``allow_leak`` is not set.
    """
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    bad: list[str] = []
    for r in records:
        part = _PART_NAMES.get((r.split or "").strip().lower())
        if part is None:
            bad.append(f"{r.id} ({r.split!r})")
        else:
            parts[part].append(r.id)
    name = f"{_corpus_name(records)}/official"
    if bad:
        raise DataError(None, f"{name}: {len(bad)} records have no known official split "
                        f"(e.g. {_few(bad)}); known: {', '.join(sorted(_PART_NAMES))}")
    for part in ("train", "test"):
        if not parts[part]:
            raise DataError(None, f"{name}: no record is in the official {part} part")
    return _checked(Split(name, parts["train"], parts["test"], parts["val"], "official"),
                    records, allow_leak)


def speaker_kfold(records: Sequence[Record], *, k: int = 5, seed: int = 0,
                  stratify: bool = True, allow_leak: bool = False) -> list[Split]:
    """Speaker-independent k-fold: every group (``record.group``) is tested in exactly one fold.

    Parameters
    ----------
    records
        Records with a speaker (or dialogue) each.
    k
        Number of folds (at most the number of groups).
    seed
        Shuffling seed; the same seed gives the same folds.
    stratify
        Balance label proportions across folds (``StratifiedGroupKFold``), else ``GroupKFold``.

    Raises
    ------
    DataError
        If a record has no group or there are fewer groups than folds.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    if k < 2:
        raise ConfigError(f"speaker k-fold needs k >= 2, got {k}")
    records = list(records)
    groups = _require_groups(records, "speaker k-fold", lambda r: r.group)
    n_groups = len(set(groups))
    if n_groups < k:
        raise DataError(None, f"{_corpus_name(records)}: {n_groups} speakers/dialogues, "
                        f"too few for {k} speaker-independent folds")
    splitter = (StratifiedGroupKFold if stratify else GroupKFold)(
        n_splits=k, shuffle=True, random_state=seed)
    labels = [_label_of(r) for r in records]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        folds = list(splitter.split(np.zeros(len(records)), labels, groups))
    name = _corpus_name(records)
    out = []
    for fold, (_, test_idx) in enumerate(folds, start=1):
        if not len(test_idx):
            raise DataError(None, f"{name}: speaker k-fold left fold {fold} empty; use a "
                            f"smaller k")
        test = set(test_idx.tolist())
        split = _partition(f"{name}/speaker-kfold/{fold}", records, test, "speaker-kfold",
                           fold, info={"k": k, "seed": seed, "stratify": stratify,
                                       "test_groups": sorted({groups[i] for i in test})})
        out.append(_checked(split, records, allow_leak))
    return out


def leave_one_speaker_out(records: Sequence[Record], *, by: str = "speaker",
                          allow_leak: bool = False) -> list[Split]:
    """One fold per speaker (sorted by name): that speaker is the test part, the rest train.

    ``by="group"`` holds out one :attr:`Record.group` per fold instead, e.g. one IEMOCAP session
    (leave-one-session-out), where both speakers of a session share its dialogues.

    Raises
    ------
    DataError
        If a record has no speaker (group) or there are fewer than two.
    """
    if by not in ("speaker", "group"):
        raise ConfigError(f"leave-one-out by {by!r}: expected 'speaker' or 'group'")
    records = list(records)
    what = "leave-one-speaker-out" if by == "speaker" else "leave-one-group-out"
    key = (lambda r: r.speaker) if by == "speaker" else (lambda r: r.group)
    speakers = _require_groups(records, what, key)
    unique = sorted(set(speakers))
    if len(unique) < 2:
        raise DataError(None, f"{_corpus_name(records)}: {what} needs at least two "
                        f"{by}s, found {len(unique)}")
    name = _corpus_name(records)
    tag = "loso" if by == "speaker" else "logo"
    out = []
    for fold, spk in enumerate(unique, start=1):
        test = {i for i, s in enumerate(speakers) if s == spk}
        split = _partition(f"{name}/{tag}/{spk}", records, test, tag, fold,
                           info={"test_groups": [spk]})
        out.append(_checked(split, records, allow_leak))
    return out


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
    from .paths import protocols_root

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


def cross_corpus(train_records: Sequence[Record], test_records: Sequence[Record], *,
                 labels: Sequence[str] | None = None,
                 allow_leak: bool = False) -> tuple[Split, dict[str, dict[str, int]]]:
    """Train on one corpus (or several), test on another, over the canonical labels both share.

    Parameters
    ----------
    train_records, test_records
        The two sides; record ids must not collide between them.
    labels
        Canonical labels to keep; default: every label present on both sides
        (:func:`emofuse.labels.shared_labels`). Each must be present on both sides.

    Returns
    -------
    split, dropped
        The split (kept labels in ``info["labels"]``) and ``{"train": {label: n}, "test":
        {...}}``: how many records of each label were left out (``"(none)"``: no label).

    Raises
    ------
    LabelError
        If a requested label is missing on one side or nothing is shared.
    DataError
        If a record id occurs on both sides.
    """
    train_records, test_records = list(train_records), list(test_records)
    present = [{r.label for r in side if r.label} for side in (train_records, test_records)]
    names = [_corpus_name(train_records), _corpus_name(test_records)]
    if labels is None:
        keep = shared_labels(*present)
    else:
        keep = [_canonical(lab) for lab in labels]
        for side, have, name in zip(("train", "test"), present, names):
            missing = [lab for lab in keep if lab not in have]
            if missing:
                raise LabelError(f"cross-corpus {side} side ({name}) has no record labelled "
                                 f"{', '.join(missing)}")
    if not keep:
        raise LabelError(f"{names[0]} and {names[1]} share no canonical label")
    kept = set(keep)
    sides = {"train": train_records, "test": test_records}
    dropped = {side: dict(sorted(collections.Counter(
        r.label or _NO_LABEL for r in recs if r.label not in kept).items()))
        for side, recs in sides.items()}
    ids = {side: [r.id for r in recs if r.label in kept] for side, recs in sides.items()}
    clash = set(r.id for r in train_records) & set(r.id for r in test_records)
    if clash:
        raise DataError(None, f"cross-corpus {names[0]} -> {names[1]}: {len(clash)} record ids "
                        f"occur on both sides (e.g. {_few(sorted(clash))}); ids must be unique")
    split = Split(f"{names[0]}->{names[1]}/cross-corpus", ids["train"], ids["test"],
                  protocol="cross-corpus", info={"labels": keep, "dropped": dropped})
    return _checked(split, train_records + test_records, allow_leak), dropped


def random_split(records: Sequence[Record], *, test_size: float = 0.2, seed: int = 0) -> Split:
    """Item-level split, stratified by label. Speakers cross sides: flagged ``leaking=True``.

    Kept only as the leaky reference for a leakage audit; never report it as a result.
    """
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be in (0, 1), got {test_size}")
    records = list(records)
    held = _stratified_draw([_label_of(r) for r in records], test_size, seed)
    return _partition(f"{_corpus_name(records)}/random", records, held, "random", 1,
                      info={"test_size": test_size, "seed": seed}, leaking=True)


def make_splits(protocol: str, records: Sequence[Record], *, corpus: str | None = None,
                **options: Any) -> list[Split]:
    """Build the splits of ``protocol`` by name (for the command line).

    ``protocol`` is one of ``emobox`` (needs ``corpus``), ``speaker-kfold``, ``loso``,
    ``official`` or ``random``; ``options`` go to the builder.
    """
    key = protocol.lower().replace("_", "-")
    builders: dict[str, Callable[..., Split | list[Split]]] = {
        "emobox": lambda: emobox_folds(corpus or _corpus_name(records), records, **options),
        "speaker-kfold": lambda: speaker_kfold(records, **options),
        "kfold": lambda: speaker_kfold(records, **options),
        "loso": lambda: leave_one_speaker_out(records, **options),
        "logo": lambda: leave_one_speaker_out(records, by="group", **options),
        "official": lambda: official_split(records, **options),
        "random": lambda: random_split(records, **options),
    }
    if key not in builders:
        raise ConfigError(f"unknown protocol {protocol!r}; known: {', '.join(builders)}")
    result = builders[key]()
    return result if isinstance(result, list) else [result]


# --------------------------------------------------------------------------------------------
# Fold files


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


# --------------------------------------------------------------------------------------------
# Helpers


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
