"""What every ``emofuse`` command shares: the consoles, verbosity, and option validators.

Option values are checked when the command line is parsed, so a bad value is a usage error
(one line, exit code 2) before any model is loaded.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["out", "err", "state", "set_verbosity", "QuietOpt", "VerboseOpt", "positive",
           "in_range", "threads_option", "max_threads"]

# Pipes and CI logs get 120 columns rather than rich's default 80.
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


@dataclass
class _State:
    quiet: bool = False
    verbose: bool = False


#: Verbosity of the running command (``-q`` / ``-v``, given before or after the command name).
state = _State()


def set_verbosity(*, quiet: bool = False, verbose: bool = False, reset: bool = False) -> None:
    """``-q``: results and errors only. ``-v``: progress logs and tracebacks of internal errors.

    The root callback passes ``reset=True`` so one invocation's flags never leak into the next
    one run in the same process (tests, notebooks); a subcommand's flags add to the root's."""
    if quiet and verbose:
        raise typer.BadParameter("choose one of -q/--quiet and -v/--verbose")
    if reset:
        state.quiet = state.verbose = False
    state.quiet = state.quiet or quiet
    state.verbose = state.verbose or verbose
    level = logging.ERROR if state.quiet else logging.INFO if state.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    if state.quiet:
        warnings.filterwarnings("ignore")
    # a warning is one line for a user ("warning: FILE: problem"); -v keeps Python's format
    # with the source line, for developers
    warnings.formatwarning = _PY_FORMAT if state.verbose else _one_line


_PY_FORMAT = warnings.formatwarning


def _one_line(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001
    return f"warning: {message}\n"


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print results and errors only.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Print progress logs, and tracebacks of internal errors.")]


def max_threads() -> int:
    """CPU cores this process may use (its affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def in_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
             unit: str = ""):
    """Typer callback: the value (or ``None``) must be finite and within ``[lo, hi]``
    (``(lo, hi]`` with ``lo_open``)."""

    def check(value):
        if value is None:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise typer.BadParameter(f"must be a finite number, not {value}")
        below = lo is not None and (value <= lo if lo_open else value < lo)
        above = hi is not None and value > hi
        if below or above:
            left = "(" if lo_open else "["
            span = f"{left}{'' if lo is None else lo}, {'' if hi is None else hi}]"
            raise typer.BadParameter(f"must be in {span}{unit}, not {value}")
        return value

    return check


def positive(value):
    """Typer callback: a finite number > 0 (or ``None``)."""
    return in_range(0, lo_open=True)(value)


def threads_option(value: int | None) -> int | None:
    """Typer callback for ``--threads``: 1 .. the cores this machine gives the process."""
    if value is None:
        return value
    n = max_threads()
    if not 1 <= value <= n:
        raise typer.BadParameter(f"must be between 1 and {n} (this machine's cores), not {value}")
    return value


def apply_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in torch and onnxruntime (validated by :func:`threads_option`)."""
    if not threads:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules or _torch_available():
        import torch

        torch.set_num_threads(threads)


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None
