"""Class-balancing planner: how many synthetic samples each class needs, how many each
generator contributes, and a plot of the class counts before and after.

>>> plan = plan_balance({"joy": 10, "surprise": 2, "love": 4}, strategy="max")
>>> plan.needed
{'joy': 0, 'surprise': 8, 'love': 6}
>>> plan_balance({"a": 10, "b": 2}, strategy="fraction", fraction=0.5).needed
{'a': 0, 'b': 3}
>>> allocate({"a": 0, "b": 10}, {"llm": 1.0, "eda": 1.0}, capacity={"llm": {"b": 3}})
{'llm': {'a': 0, 'b': 3}, 'eda': {'a': 0, 'b': 7}}
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["Plan", "class_counts", "plan_balance", "allocate", "plot_plan", "STRATEGIES"]

STRATEGIES = ("max", "fraction", "fixed", "budget")


def class_counts(records: Iterable[Any], classes: Sequence[str] | None = None) -> dict[str, int]:
    """Items per class (``label`` of records, or plain labels); ``classes`` fixes the order
    and includes absent classes with 0."""
    c = Counter(getattr(r, "label", r) for r in records)
    c.pop(None, None)
    order = list(classes) if classes else sorted(c)
    return {k: int(c.get(k, 0)) for k in order}


@dataclass
class Plan:
    """Real counts, target counts and the synthetic samples needed per class."""

    counts: dict[str, int]
    targets: dict[str, int]
    strategy: str
    settings: dict[str, Any]

    @property
    def needed(self) -> dict[str, int]:
        return {c: max(0, self.targets[c] - n) for c, n in self.counts.items()}

    @property
    def total_needed(self) -> int:
        return sum(self.needed.values())

    def after(self, added: Mapping[str, int] | None = None) -> dict[str, int]:
        """Counts after adding ``added`` (default: everything needed)."""
        add = self.needed if added is None else added
        return {c: n + int(add.get(c, 0)) for c, n in self.counts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "settings": self.settings, "counts": self.counts,
                "targets": self.targets, "needed": self.needed}

    def table(self, added: Mapping[str, int] | None = None) -> str:
        """Plain-text table: class, real, target, needed, after."""
        after = self.after(added)
        width = max([5, *map(len, self.counts)])
        lines = [f"{'class':<{width}}  {'real':>7}  {'target':>7}  {'needed':>7}  {'after':>7}"]
        for c, n in self.counts.items():
            lines.append(f"{c:<{width}}  {n:>7}  {self.targets[c]:>7}  {self.needed[c]:>7}  "
                         f"{after[c]:>7}")
        return "\n".join(lines)


def plan_balance(counts: Mapping[str, int], *, strategy: str = "max", fraction: float = 1.0,
                 per_class: int | None = None, budget: int | None = None,
                 cap: int | None = None) -> Plan:
    """Target counts per class.

    ``max``: raise every class to the largest one, times ``fraction`` (never lower a class);
    ``fraction``: raise every class to ``fraction`` x the largest (an alias with explicit
    fraction); ``fixed``: add ``per_class`` to every class; ``budget``: share ``budget``
    samples among the classes in proportion to their gap to the largest. ``cap`` bounds the
    samples added to any one class.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown balancing strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not 0 < fraction <= 10:
        raise ConfigError(f"fraction must be in (0, 10], got {fraction}")
    counts = {c: int(n) for c, n in counts.items()}
    if any(n < 0 for n in counts.values()):
        raise ConfigError("class counts must be >= 0")
    top = max(counts.values(), default=0)
    if strategy in ("max", "fraction"):
        goal = int(math.ceil(fraction * top))
        targets = {c: max(n, goal) for c, n in counts.items()}
    elif strategy == "fixed":
        if per_class is None or per_class < 0:
            raise ConfigError("strategy 'fixed' needs per_class >= 0")
        targets = {c: n + per_class for c, n in counts.items()}
    else:
        if budget is None or budget < 0:
            raise ConfigError("strategy 'budget' needs budget >= 0")
        gaps = {c: top - n for c, n in counts.items()}
        share = _largest_remainder(gaps, budget) if sum(gaps.values()) else \
            _largest_remainder({c: 1 for c in counts}, budget)
        targets = {c: n + share[c] for c, n in counts.items()}
    if per_class is not None and strategy != "fixed":
        targets = {c: min(t, counts[c] + per_class) for c, t in targets.items()}
    if cap is not None:
        targets = {c: min(t, counts[c] + cap) for c, t in targets.items()}
    settings = {"fraction": fraction, "per_class": per_class, "budget": budget, "cap": cap}
    return Plan(counts, targets, strategy, settings)


def _largest_remainder(weights: Mapping[str, float], total: int) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights`` into integers summing to ``total``."""
    wsum = float(sum(weights.values()))
    if total <= 0 or wsum <= 0:
        return {k: 0 for k in weights}
    raw = {k: total * w / wsum for k, w in weights.items()}
    out = {k: int(math.floor(v)) for k, v in raw.items()}
    rest = total - sum(out.values())
    for k in sorted(raw, key=lambda k: (out[k] - raw[k], k))[:rest]:
        out[k] += 1
    return out


def allocate(needed: Mapping[str, int], weights: Mapping[str, float], *,
             capacity: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, dict[str, int]]:
    """How many samples of each class each generator contributes.

    ``needed`` per class is shared among generators in proportion to ``weights``; a generator
    that cannot supply its share (``capacity[gen][class]``, e.g. the items it has after
    filtering) leaves the rest to the others, and what nobody can supply stays unfilled.
    """
    gens = [g for g, w in weights.items() if w > 0]
    out = {g: {c: 0 for c in needed} for g in weights}
    cap = {g: dict((capacity or {}).get(g, {})) for g in gens}
    for c, n in needed.items():
        left, active = int(n), list(gens)
        while left > 0 and active:
            share = _largest_remainder({g: weights[g] for g in active}, left)
            full = []
            for g in active:
                room = cap[g].get(c, math.inf) - out[g][c] if g in (capacity or {}) else math.inf
                take = int(min(share[g], room))
                out[g][c] += take
                left -= take
                if take < share[g]:
                    full.append(g)
            if not full:
                break
            active = [g for g in active if g not in full]
    return out


def plot_plan(plan: Plan, path: str | Path, *, added: Mapping[str, int] | None = None,
              title: str = "") -> Path:
    """Bar chart of the class counts before (real) and after (real + synthetic)."""
    from ..evaluate.plots import plot_class_counts

    return plot_class_counts({"real": plan.counts, "real + synthetic": plan.after(added)}, path,
                             title=title or f"class balance ({plan.strategy})",
                             classes=list(plan.counts))
