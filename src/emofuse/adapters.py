"""Temporary shim, removed after the import sweep: the predictors live in
:mod:`emofuse.inference` (``LateFusion`` and ``TorchFeaturePredictor`` in
:mod:`emofuse.inference.generic`)."""

from __future__ import annotations

from .inference.generic import LateFusion, TorchFeaturePredictor
from .inference.protocol import softmax

__all__ = ["LateFusion", "TorchFeaturePredictor", "softmax"]
