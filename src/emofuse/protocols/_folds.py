"""Protocol builders: official, speaker k-fold, leave-one-speaker-out, cross-corpus, random."""

from __future__ import annotations

import collections
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..corpora._base import Record
from ..errors import ConfigError, DataError, LabelError
from ..labels import shared_labels
from ._core import (
    _NO_LABEL,
    _PART_NAMES,
    PARTS,
    Split,
    _canonical,
    _checked,
    _corpus_name,
    _few,
    _label_of,
    _partition,
    _require_groups,
    _stratified_draw,
)
from ._files import emobox_folds


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
