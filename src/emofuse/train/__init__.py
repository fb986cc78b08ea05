"""Training harness: seeding, :func:`fit` (Lightning with early stopping, checkpoints and
resuming); saving a model as safetensors with a card is :mod:`emofuse.models.checkpoint`
(re-exported here).

Names are imported on first use, so ``from emofuse.train import load_model`` does not import
Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["fit", "FitResult", "seed_everything", "save_model", "load_model", "read_card"]

_WHERE = {"fit": ".trainer", "FitResult": ".trainer", "seed_everything": ".trainer",
          "save_model": "..models.checkpoint", "load_model": "..models.checkpoint",
          "read_card": "..models.checkpoint"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
