"""The results format (``benchmarks/results/<suite>.json``), its Markdown rendering and the
collected report ``docs/results.md``.

Required keys: ``suite``, ``corpus``, ``protocol``, ``classes``, ``metrics`` (name ->
``{"mean", "std", "per_fold"}``, fractions in 0..1), ``per_class``, ``confusion``, ``seeds``,
``git_commit``, ``command``, ``started``, ``duration_s``, ``machine``, ``versions``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = ["REQUIRED_KEYS", "build_result", "validate_result", "write_result", "render_markdown",
           "collect_report", "git_commit", "machine_info", "versions", "read_result"]

REQUIRED_KEYS = ("suite", "corpus", "protocol", "classes", "metrics", "per_class", "confusion",
                 "seeds", "git_commit", "command", "started", "duration_s", "machine", "versions")
_VERSIONED = ("emofuse", "numpy", "scipy", "scikit-learn", "torch", "lightning", "librosa",
              "opensmile", "soundfile", "sentence-transformers", "transformers", "opencv-python-headless")


def git_commit(cwd: str | Path | None = None) -> str:
    """Current commit hash, with ``+dirty`` when the work tree has changes; ``unknown`` outside git.

    Changes under ``benchmarks/results`` do not count: a suite writes its plots there while it
    runs, before its result records the commit."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ":/", ":(top,exclude)benchmarks/results"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


_PINNED: list[str] = []


@contextlib.contextmanager
def pinned_commit() -> Iterator[str]:
    """Take :func:`git_commit` now for every result built inside: a run's provenance is the
    code it started from, not whatever HEAD (or the work tree) is by the time it ends."""
    _PINNED.append(git_commit())
    try:
        yield _PINNED[-1]
    finally:
        _PINNED.pop()


def machine_info() -> dict[str, Any]:
    """Host facts that matter for timings."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": sys.version.split()[0],
                            "processor": platform.machine(), "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape results."""
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def build_result(*, suite: str, corpus: str, protocol: str, classes: Sequence[str],
                 metrics: dict[str, Any], per_class: dict[str, Any], confusion: list,
                 seeds: Sequence[int], started: _dt.datetime | str, duration_s: float,
                 command: str | None = None, **extra: Any) -> dict[str, Any]:
    """Assemble a validated result dict; provenance keys are filled in here."""
    result: dict[str, Any] = {
        "suite": suite, "corpus": corpus, "protocol": protocol, "classes": list(classes),
        "metrics": metrics, "per_class": per_class, "confusion": confusion,
        "seeds": list(seeds), "git_commit": _PINNED[-1] if _PINNED else git_commit(),
        "command": command or shlex.join(["emofuse", *sys.argv[1:]]),
        "started": started if isinstance(started, str) else started.isoformat(timespec="seconds"),
        "duration_s": round(float(duration_s), 2), "machine": machine_info(),
        "versions": versions(),
    }
    result.update(extra)
    validate_result(result)
    return result


def validate_result(result: dict[str, Any]) -> None:
    """Raise :class:`DataError` listing every missing key or out-of-range metric."""
    problems = [f"missing key {k!r}" for k in REQUIRED_KEYS if k not in result]
    for name, m in (result.get("metrics") or {}).items():
        if not isinstance(m, dict) or not {"mean", "std", "per_fold"} <= set(m):
            problems.append(f"metric {name!r} needs mean, std and per_fold")
            continue
        vals = [m["mean"], *m["per_fold"]]
        if not name.endswith(("_s", "_ms", "_per_s")) and any(
                isinstance(v, (int, float)) and not math.isnan(v) and not 0 <= v <= 1
                for v in vals):
            problems.append(f"metric {name!r} has values outside 0..1 (fractions, not percent)")
    if problems:
        raise DataError(result.get("suite"), "invalid result: " + "; ".join(problems))


def read_result(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read result ({exc})") from None
    validate_result(data)
    return data


def _pct(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def render_markdown(result: dict[str, Any]) -> str:
    """Readable Markdown of one result (percentages, mean ± std, per fold, per class, confusion)."""
    lines = [f"# {result['suite']}", "",
             f"- corpus: **{result['corpus']}**; protocol: **{result['protocol']}**",
             f"- classes ({len(result['classes'])}): {', '.join(result['classes'])}",
             f"- seeds: {result['seeds']}; started {result['started']}; "
             f"duration {result['duration_s']:.0f} s",
             f"- commit `{result['git_commit']}`; command: `{result['command']}`", ""]
    if result.get("notes"):
        lines += [str(result["notes"]), ""]
    lines += ["## Metrics (%)", "", "| metric | mean ± std | per fold |", "|---|---|---|"]
    for name, m in result["metrics"].items():
        unit = name.endswith(("_s", "_ms", "_per_s"))
        fmt = (lambda v: f"{v:.3g}") if unit else _pct
        lines.append(f"| {name} | {fmt(m['mean'])} ± {fmt(m['std'])} | "
                     f"{' '.join(fmt(v) for v in m['per_fold'])} |")
    if result.get("per_class"):
        lines += ["", "## Per class (pooled over folds, %)", "",
                  "| class | precision | recall | F1 | ROC-AUC | support |", "|---|---|---|---|---|---|"]
        for c, d in result["per_class"].items():
            lines.append(f"| {c} | {_pct(d['precision'])} | {_pct(d['recall'])} | "
                         f"{_pct(d['f1'])} | {_pct(d.get('roc_auc', float('nan')))} | "
                         f"{d['support']} |")
    if result.get("confusion"):
        cls = result["classes"]
        lines += ["", "## Confusion (rows: true, columns: predicted; summed over folds)", "",
                  "| | " + " | ".join(cls) + " |", "|---" * (len(cls) + 1) + "|"]
        for c, row in zip(cls, result["confusion"]):
            lines.append(f"| **{c}** | " + " | ".join(str(v) for v in row) + " |")
    if result.get("confusion_png"):
        lines += ["", f"![confusion matrix]({Path(result['confusion_png']).name})"]
    v = result.get("versions", {})
    lines += ["", "## Environment", "", f"- machine: {result.get('machine')}",
              "- versions: " + ", ".join(f"{k} {x}" for k, x in v.items()), ""]
    return "\n".join(lines)


_RESULTS_DIR: ContextVar[Path] = ContextVar("emofuse_results_dir",
                                           default=Path("benchmarks/results"))


def results_dir() -> Path:
    """Where the running benchmark writes its results and plots (``benchmarks/results`` unless
    :func:`results_to` says otherwise)."""
    return _RESULTS_DIR.get()


_LEAKS: ContextVar[list[str] | None] = ContextVar("emofuse_leaks", default=None)


def mark_leaking(reason: str) -> None:
    """Record that the running benchmark uses a split that leaks (allowed by
    ``protocol.allow_leak``); :func:`leaking_result` then labels its results LEAKING."""
    leaks = _LEAKS.get()
    if leaks is not None and reason not in leaks:
        leaks.append(reason)


def leaking_result(result: dict[str, Any], reasons: Sequence[str]) -> dict[str, Any]:
    """``result`` renamed ``<suite>-LEAKING`` with a protocol that says so."""
    if not reasons or result["suite"].endswith("-LEAKING"):
        return result
    return {**result, "suite": f"{result['suite']}-LEAKING",
            "protocol": f"LEAKING ({'; '.join(reasons)}): {result['protocol']}",
            "leaking": list(reasons)}


@contextmanager
def results_to(path: str | Path, leaks: list[str] | None = None) -> Iterator[Path]:
    """Send the plots of the suites run inside the block to ``path`` (``emofuse bench
    --results``); leaking splits used inside the block are appended to ``leaks``."""
    token = _RESULTS_DIR.set(Path(path))
    ltoken = _LEAKS.set(leaks if leaks is not None else [])
    try:
        yield Path(path)
    finally:
        _RESULTS_DIR.reset(token)
        _LEAKS.reset(ltoken)


def write_result(result: dict[str, Any], out_dir: str | Path = "benchmarks/results"
                 ) -> tuple[Path, Path]:
    """Write ``<suite>.json`` and ``<suite>.md`` atomically; return both paths."""
    validate_result(result)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out_dir / f"{result['suite']}.json", out_dir / f"{result['suite']}.md"
    for path, text in ((jpath, json.dumps(result, indent=2, sort_keys=False) + "\n"),
                       (mpath, render_markdown(result))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return jpath, mpath


def collect_report(results_dir: str | Path = "benchmarks/results",
                   out: str | Path = "docs/results.md") -> Path:
    """Gather every result into one Markdown page with a summary table and each suite's section."""
    results_dir, out = Path(results_dir), Path(out)
    results = []
    for p in sorted(results_dir.glob("*.json")):
        try:
            results.append(read_result(p))
        except DataError as exc:
            results.append({"suite": p.stem, "_error": str(exc)})
    lines = ["# emofuse results", "",
             "Generated by `emofuse report` from `benchmarks/results/*.json`. Figures in %. "
             "`ua` = unweighted accuracy (mean per-class recall), `wa` = accuracy; metrics "
             "suffixed `_spknorm` use per-speaker normalisation with each speaker's unlabelled "
             "data (test speakers included) and are not comparable with inductive figures.", "",
             "| suite | corpus | protocol | key metrics (mean ± std) | commit |",
             "|---|---|---|---|---|"]
    for r in results:
        if "_error" in r:
            lines.append(f"| {r['suite']} | – | – | unreadable: {r['_error']} | – |")
            continue
        keys = [k for k in ("ua", "ua_spknorm", "wa", "accuracy", "macro_f1", "weighted_f1")
                if k in r["metrics"]][:4]
        figs = "; ".join(f"{k} {_pct(r['metrics'][k]['mean'])} ± {_pct(r['metrics'][k]['std'])}"
                         for k in keys)
        lines.append(f"| [{r['suite']}](#{r['suite']}) | {r['corpus']} | {r['protocol']} | "
                     f"{figs} | `{r['git_commit'][:10]}` |")
    for r in results:
        if "_error" not in r:
            lines += ["", render_markdown(r).replace("# ", "## ", 1).replace("\n## ", "\n### ")]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out
