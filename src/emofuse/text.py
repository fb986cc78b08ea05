"""Temporary shim, removed after the import sweep: the text predictor lives in
:mod:`emofuse.inference.text`."""

from __future__ import annotations

from typing import Any

from .inference.text import (MAX_CHARS, MLPHead, TextPrediction, check_text, predict_texts)
from .inference.text import TextPredictor as _TextPredictor

__all__ = ["TextPrediction", "TextPredictor", "MLPHead", "predict_texts", "check_text",
           "MAX_CHARS"]


class TextPredictor(_TextPredictor):
    """Temporary: ``predict`` of a list of texts keeps its former meaning
    (:meth:`~emofuse.inference.text.TextPredictor.analyse`, a list of predictions)."""

    def predict(self, items: Any, *, contexts: Any = None) -> Any:
        if isinstance(items, str):
            return super().predict(items)
        return self.analyse(items, contexts=contexts)
