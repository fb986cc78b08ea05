"""Typed parameter pieces shared by the augmentation suites (``aug-text``, ``aug-face``,
``aug-speech-aaec``, ``aug-speech-tts``, ``aug-speech-diffusion``).

Each suite declares its own :class:`~emofuse.config.Params` schema of ``model.params`` built
from these pieces; the defaults are those of the code before the schemas, so every committed
configuration behaves as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..config import Params

__all__ = ["Arm", "Classifier", "Balance", "Lda", "Primary", "Fraction", "generator_kwargs",
           "check_baselines", "dump_arms"]

#: a share of the training data, in (0, 1]
Fraction = Annotated[float, Field(gt=0, le=1)]


class Classifier(Params):
    """The logistic regression fitted on embeddings (:class:`~emofuse.augment.text.EmotionFilter`)."""

    C: float = Field(default=1.0, gt=0)       #: inverse regularisation strength
    max_iter: int = Field(default=2000, gt=0)  #: solver iterations


class Balance(Params):
    """Keyword arguments of :func:`emofuse.augment.plan_balance` (the balancing planner)."""

    strategy: Literal["max", "fraction", "fixed", "budget"] = "max"
    fraction: float = Field(default=1.0, gt=0)   #: target share of the largest class
    per_class: int | None = Field(default=None, ge=0)   #: ``fixed``: items added per class
    budget: int | None = Field(default=None, ge=0)      #: ``budget``: items shared out
    cap: int | None = Field(default=None, ge=0)         #: most items added to one class

    def kwargs(self) -> dict[str, Any]:
        """The planner's keyword arguments (unset ones left to its defaults)."""
        return self.model_dump(exclude_none=True)


class Lda(Params):
    """The shrinkage LDA of the speech suites (``build_model("lda", ...)``)."""

    shrinkage: float | Literal["auto"] = 0.5   #: in [0, 1], or ``auto`` (Ledoit-Wolf)
    balanced: bool = True                       #: equal class priors


class Arm(Params):
    """Base of an arm's schema: an arm written as ``null`` is the empty mapping."""

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, v: Any) -> Any:
        return {} if v is None else v


class Primary(Params):
    """The arm and training fraction of a suite's unsuffixed metrics (None: the suite's
    choice, e.g. its second or last arm, the smallest fraction)."""

    arm: str | None = None
    fraction: float | None = None


def generator_kwargs(name: str, value: Mapping[str, Any] | None, *, where: str = "",
                     exclude: Sequence[str] = ()) -> dict[str, Any]:
    """``value`` checked as keyword parameters of generator ``name`` (its constructor's
    keyword names but ``exclude``, those the suite sets; a ``ValueError`` names unknown ones
    and the known ones)."""
    from ..augment import _REGISTRY, list_generators

    value = dict(value or {})
    if name not in list_generators():
        raise ValueError(f"unknown generator {name!r}; known: "
                         f"{', '.join(list_generators())}")
    try:
        sig = inspect.signature(_REGISTRY.get(name))
    except (TypeError, ValueError):   # no introspectable signature: the generator checks
        return value
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return value
    known = [k for k, p in sig.parameters.items()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and k not in exclude]
    if bad := sorted(set(value) - set(known)):
        raise ValueError(f"{where + ': ' if where else ''}unknown {name} parameter(s) "
                         f"{', '.join(bad)}; known: "
                         f"{', '.join(known)}")
    return value


def check_baselines(arms: Mapping[str, Any]) -> None:
    """Every arm's ``baseline`` names an arm (``ValueError`` otherwise)."""
    for arm, spec in arms.items():
        if spec.baseline not in arms:
            raise ValueError(f"arms.{arm}.baseline: {spec.baseline!r} is not an arm")


def dump_arms(arms: Mapping[str, Params]) -> dict[str, dict[str, Any]]:
    """The arms as plain mappings (result JSON, notes)."""
    return {a: s.model_dump() for a, s in arms.items()}
