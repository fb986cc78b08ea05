"""The candidate grid of the cross-corpus speech recipe (one :class:`Candidate` per point) and
its settings."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any


from ..errors import ConfigError

#: setting -> metric suffix
SETTINGS = {"inductive": "", "folder": "_folder", "enrol": "_enrol"}
_GRID_KEYS = ("layers", "part", "combine", "norm", "scale", "utt", "nap", "augment", "balance",
              "C")
_DEFAULT = {"layers": None, "part": "meanstd", "combine": "concat", "norm": "global",
            "scale": "group", "utt": "none", "nap": 0, "augment": 0, "balance": "class", "C": 0.01}

# --------------------------------------------------------------------------------------------
# Candidates


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One point of a selection grid.

    layers
        Whisper hidden-state indices to use (``None``: every column of the table).
    part
        ``meanstd``, ``mean`` or ``std`` half of each layer block.
    combine
        ``concat`` the layer blocks or ``average`` them (one block).
    norm
        Inductive setting: how the training corpora are standardised (``global``, ``corpus``
        or ``speaker``); the folder and enrol settings fix it (corpus, speaker).
    scale
        ``group``: each group (corpus, speaker) divided by its own standard deviations;
        ``pooled``: only its mean removed, then divided by the training groups' average
        standard deviations (steadier for groups of a few utterances).
    utt
        ``none`` or ``l2``: each utterance's standardised layer blocks scaled to unit RMS.
    nap
        Directions of the training speakers' mean vectors projected out (0: none).
    augment
        Speaker-offset copies of each training utterance (its speaker's mean replaced by a
        random other training speaker's).
    balance
        ``class`` (each class the same total weight) or ``corpus_class`` (each corpus the
        same, and each class within it).
    C
        Inverse L2 penalty of the logistic regression.
    """

    layers: tuple[int, ...] | None = None
    part: str = "meanstd"
    combine: str = "concat"
    norm: str = "global"
    scale: str = "group"
    utt: str = "none"
    nap: int = 0
    augment: int = 0
    balance: str = "class"
    C: float = 0.01

    def rep_key(self) -> tuple:
        """Everything but C: candidates sharing it share their transformed features."""
        return dataclasses.astuple(dataclasses.replace(self, C=0.0))

    def short(self, setting: str = "inductive") -> str:
        """One line, e.g. ``L3+4 meanstd concat norm=corpus bal=class C=0.01`` (``norm`` only
        in the inductive setting, where it is a choice)."""
        lay = "all" if self.layers is None else "+".join(map(str, self.layers))
        parts = [f"L{lay}", self.part]
        if self.layers and len(self.layers) > 1:
            parts.append(self.combine)
        if setting == "inductive":
            parts.append(f"norm={self.norm}")
        if self.scale != "group":
            parts.append(f"scale={self.scale}")
        if self.utt != "none":
            parts.append(f"utt={self.utt}")
        if self.nap:
            parts.append(f"nap={self.nap}")
        if self.augment:
            parts.append(f"aug={self.augment}")
        parts += [f"bal={self.balance}", f"C={self.C:g}"]
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = None if self.layers is None else list(self.layers)
        return d


def _check_candidate(c: Candidate, where: str) -> None:
    bad = []
    if c.part not in ("meanstd", "mean", "std"):
        bad.append(f"part {c.part!r} (meanstd, mean, std)")
    if c.combine not in ("concat", "average"):
        bad.append(f"combine {c.combine!r} (concat, average)")
    if c.norm not in ("global", "corpus", "speaker"):
        bad.append(f"norm {c.norm!r} (global, corpus, speaker)")
    if c.scale not in ("group", "pooled"):
        bad.append(f"scale {c.scale!r} (group, pooled)")
    if c.utt not in ("none", "l2"):
        bad.append(f"utt {c.utt!r} (none, l2)")
    if c.balance not in ("class", "corpus_class", "none"):
        bad.append(f"balance {c.balance!r} (class, corpus_class, none)")
    if c.nap < 0 or c.augment < 0 or not c.C > 0:
        bad.append("nap and augment must be >= 0 and C > 0")
    if c.layers is not None and (not c.layers or any(not 0 <= x <= 7 for x in c.layers)):
        bad.append(f"layers {list(c.layers)} (Whisper hidden states 0..7)")
    if bad:
        raise ConfigError(f"{where}: " + "; ".join(bad))


def candidates(grid: Mapping[str, Any] | None, *, where: str = "grid") -> list[Candidate]:
    """The candidates of ``grid`` (each key a list of values, or one value), in product order
    of :data:`_GRID_KEYS` (the last key, C, varies fastest)."""
    grid = dict(grid or {})
    if bad := sorted(set(grid) - set(_GRID_KEYS)):
        raise ConfigError(f"{where}: unknown keys {bad}; allowed: {', '.join(_GRID_KEYS)}")
    axes = []
    for k in _GRID_KEYS:
        v = grid.get(k, _DEFAULT[k])
        if k == "layers":
            if v is None or (isinstance(v, list) and v and not isinstance(v[0], list)
                             and v[0] is not None):
                v = [v]               # one layer list given alone
        elif not isinstance(v, list):
            v = [v]
        if not v:
            raise ConfigError(f"{where}.{k}: empty list")
        axes.append(v)
    out = []
    for vals in itertools.product(*axes):
        d = dict(zip(_GRID_KEYS, vals))
        d["layers"] = None if d["layers"] is None else tuple(int(x) for x in d["layers"])
        d["nap"], d["augment"], d["C"] = int(d["nap"]), int(d["augment"]), float(d["C"])
        c = Candidate(**d)
        _check_candidate(c, where)
        out.append(c)
    return out
