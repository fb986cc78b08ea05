"""Training harness: seeding, :func:`fit` (Lightning with early stopping, checkpoints and
resuming) and model export to safetensors with a model card.

Names are imported on first use, so ``from emofuse.train import load_model`` does not import
Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["fit", "FitResult", "seed_everything", "save_model", "load_model", "read_card"]

_WHERE = {"fit": "trainer", "FitResult": "trainer", "seed_everything": "trainer",
          "save_model": "checkpoint", "load_model": "checkpoint",
          "read_card": "checkpoint"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
