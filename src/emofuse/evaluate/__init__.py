"""Evaluation: metrics, the results format, reports and plots."""

from .metrics import aggregate_folds, classification_metrics, summarise
from .results import build_result, collect_report, render_markdown, validate_result, write_result

__all__ = ["classification_metrics", "summarise", "aggregate_folds", "build_result",
           "validate_result", "write_result", "render_markdown", "collect_report"]
