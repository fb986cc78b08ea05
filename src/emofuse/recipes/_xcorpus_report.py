"""Report of the cross-corpus speech suites: the heatmap, the Markdown tables and the result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig, dump_config
from ..evaluate.metrics import aggregate_folds, summarise
from ..evaluate.results import build_result
from ._common import Timer
from ._xcorpus_data import Table, _ordered
from ._xcorpus_grid import SETTINGS

# --------------------------------------------------------------------------------------------
# Plot and result


def plot_heatmap(loco: Mapping[str, Any], corpora: Sequence[str], extra_test: Sequence[str],
                 path: str | Path, *, title: str = "") -> Path:
    """Train set (rows: each corpus alone, then all other corpora) -> test corpus (columns)
    UA, one panel per setting; the chance level in each cell's corner."""
    from ..evaluate.plots import _plt, save_figure

    plt = _plt()
    settings = list(loco["cells"])
    cols = list(corpora) + list(extra_test)
    rows = list(corpora) + ["all other corpora"]
    fig, axes = plt.subplots(1, len(settings), figsize=(4.6 * len(settings) + 0.6, 4.4),
                             squeeze=False)
    for ax, setting in zip(axes[0], settings):
        mat = np.full((len(rows), len(cols)), np.nan)
        chance = np.full_like(mat, np.nan)
        for i, a in enumerate(corpora):
            for j, b in enumerate(cols):
                v = loco["pairs"].get(setting, {}).get(a, {}).get(b)
                if v is not None:
                    mat[i, j] = v
        for cell in loco["cells"][setting]:
            j = cols.index(cell["test"])
            mat[-1, j] = cell["ua"]
            chance[-1, j] = cell["chance"]
        im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("test corpus")
        ax.set_ylabel("trained on")
        ax.set_title(f"{setting}: UA")
        for i in range(len(rows)):
            for j in range(len(cols)):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{100 * mat[i, j]:.0f}", ha="center", va="center",
                            fontsize=8, color="white" if mat[i, j] < 0.5 else "black",
                            fontweight="bold" if i == len(rows) - 1 else "normal")
                    if np.isfinite(chance[i, j]):
                        ax.text(j + 0.45, i + 0.4, f"{100 * chance[i, j]:.0f}", ha="right",
                                va="bottom", fontsize=5, color="lightgray")
        ax.axhline(len(rows) - 1.5, color="white", lw=1)
    fig.colorbar(im, ax=axes[0][-1], fraction=0.046)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _pct(v: float) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _cells_markdown(loco: Mapping[str, Any], corpora: Sequence[str], targets: Sequence[str],
                    target_goals: Mapping[str, float]) -> str:
    lines = []
    for setting, cells in loco["cells"].items():
        suffix = SETTINGS[setting]
        loco4 = [c["ua"] for c in cells if c["test"] in targets]
        goal = target_goals.get(setting)
        lines += [f"### {setting}", "",
                  f"LOCO mean UA over {', '.join(targets)}: **{_pct(float(np.mean(loco4)))}**"
                  + (f" (target {100 * goal:.0f})" if goal else "")
                  + f"; largest ECE after temperature scaling over the cells "
                  f"{_pct(max(c['ece_ts'] for c in cells))} (target 8.0); wall "
                  f"{loco['wall_s'][setting]:.0f} s.", "",
                  ("| test corpus | trained on | classes (chance %) | dropped | n | UA | WA | "
                  "macro-F1 | ECE | ECE after T | T | chosen (inner UA) |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in cells:
            dropped = "; ".join(f"{side}: " + ", ".join(f"{k} {v}" for k, v in d.items())
                                for side, d in c["dropped"].items() if d) or "none"
            lines.append(
                f"| {c['test']} | {'+'.join(c['train'])} | {', '.join(c['classes'])} "
                f"({_pct(c['chance'])}) | {dropped} | {c['n_test']} | **{_pct(c['ua'])}** | "
                f"{_pct(c['wa'])} | {_pct(c['macro_f1'])} | {_pct(c['ece'])} | "
                f"{_pct(c['ece_ts'])} | {c['temperature']:g} | {c['chosen_short']} "
                f"({_pct(c['selection']['chosen_inner_ua'])}) |")
        lines += ["", "Per-class recall (%):", "",
                  "| test corpus | " + " | ".join(_ordered({k for c in cells
                                                            for k in c["classes"]})) + " |",
                  "|---" * (1 + len({k for c in cells for k in c["classes"]})) + "|"]
        allc = _ordered({k for c in cells for k in c["classes"]})
        for c in cells:
            lines.append(f"| {c['test']} | " + " | ".join(
                _pct(c["recall"][k]) if k in c["recall"] else "–" for k in allc) + " |")
        names = cells[0]["selection"]["candidates"]
        lines += ["", ("Nested selection: inner LOCO UA (%), the mean over the training corpora "
                  "held out in turn, per candidate and cell (chosen in bold):"), "",
                  "| candidate | " + " | ".join(c["test"] for c in cells) + " |",
                  "|---" * (1 + len(cells)) + "|"]
        for i, name in enumerate(names):
            vals = []
            for c in cells:
                v = _pct(c["selection"]["inner_mean"][i])
                vals.append(f"**{v}**" if i == c["selection"]["chosen_index"] else v)
            lines.append(f"| {name} | " + " | ".join(vals) + " |")
        lines += ["", (f"Confusions (rows true, columns predicted; metric suffix "
                  f"`{suffix or '(none)'}`):"), ""]
        for c in cells:
            lines.append(f"- {c['test']} ({', '.join(c['classes'])}): {c['confusion']}")
        lines.append("")
    return "\n".join(lines)


def _union_confusion(cells: Sequence[Mapping[str, Any]], classes: Sequence[str]
                     ) -> list[dict[str, Any]]:
    """Each cell's metrics mapped into the union class list (for pooled per-class figures)."""
    out = []
    for c in cells:
        conf = np.zeros((len(classes), len(classes)), int)
        idx = [classes.index(k) for k in c["classes"]]
        conf[np.ix_(idx, idx)] = np.asarray(c["confusion"])
        pc = {k: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for k in classes}
        pc.update(c["_metrics"]["per_class"])
        out.append({**c["_metrics"], "confusion": conf.tolist(), "per_class": pc})
    return out


def _result(cfg: RunConfig, loco: Mapping[str, Any], table: Table, corpora: list[str],
            targets: list[str], extra: list[str], skipped: list, timer: Timer, png: Path,
            target_ua: Mapping[str, float], quick: bool) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    union = _ordered({k for cells in loco["cells"].values() for c in cells
                      if c["test"] in corpora for k in c["classes"]})
    main = None
    cells_out: dict[str, list[dict[str, Any]]] = {}
    for setting, cells in loco["cells"].items():
        sfx = SETTINGS[setting]
        loco_cells = [c for c in cells if c["test"] in corpora]
        for k in ("ua", "wa", "macro_f1", "ece", "ece_ts"):
            metrics[f"{k}{sfx}"] = summarise([c[k] for c in loco_cells])
            metrics[f"{k}{sfx}_targets"] = summarise([c[k] for c in loco_cells
                                                      if c["test"] in targets])
        metrics[f"ece_ts{sfx}_max"] = {**summarise([max(c["ece_ts"] for c in cells)]),
                                       "per_fold": [c["ece_ts"] for c in cells]}
        for c in cells:
            if c["test"] in extra:
                for k in ("ua", "wa", "ece", "ece_ts"):
                    metrics[f"{k}{sfx}_{c['test']}"] = summarise([c[k]])
        agg = aggregate_folds(_union_confusion(loco_cells, union), suffix=sfx)
        if main is None:
            main = agg
        cells_out[setting] = [{k: v for k, v in c.items() if not k.startswith("_")}
                              for c in cells]
    assert main is not None
    goals = dict(target_ua)
    notes = _notes(corpora, targets, extra, loco, goals, quick)
    return build_result(
        suite=cfg.suite, corpus="+".join(corpora) + ("" if not extra else
                                                     f" (+{'+'.join(extra)} test only)"),
        protocol="leave-one-corpus-out, nested LOCO selection", classes=union, metrics=metrics,
        per_class=main["per_class"], confusion=main["confusion"],
        seeds=list(cfg.train.seeds), started=timer.started, duration_s=timer.seconds,
        folds=corpora, targets=targets, extra_test=extra, settings=list(loco["cells"]),
        cells=cells_out, pairs=loco["pairs"], wall_s=loco["wall_s"], heatmap_png=str(png),
        items={c: int((table.corpus == c).sum()) for c in corpora + extra},
        skipped=skipped, notes=notes, config=dump_config(cfg))


def _notes(corpora, targets, extra, loco, goals, quick) -> str:
    head = (
        ("**Quick smoke run on a tiny subset; the figures mean nothing.**\n\n" if quick else "")
        + f"Leave-one-corpus-out over {', '.join(corpora)}: each cell trains on the other "
        "corpora and tests on the held-out one over the canonical labels both sides share "
        "(classes, chance level and the classes dropped on each side are listed per cell)"
        + (f"; {', '.join(extra)} is a test-only corpus for a model trained on all of them"
           if extra else "")
        + ". Metrics without a suffix are the **inductive** setting (nothing from the test "
        "corpus), `_folder` standardises the test corpus with its own unlabelled statistics, "
        "`_enrol` each test speaker with that speaker's unlabelled statistics. `per_fold` "
        f"lists the cells in the order {', '.join(corpora)}; `*_targets` average over "
        f"{', '.join(targets)}. Every choice (layers, normalisation, NAP, augmentation, "
        "balancing, C) is made per cell by nested LOCO inside the training corpora, and the "
        "temperature is fitted on those held-out training corpora: the test corpus chooses "
        "nothing. `ece` / `ece_ts`: expected calibration error (15 bins) before / after "
        "temperature scaling. The heatmap (`heatmap_png`) adds single-corpus -> corpus cells "
        "trained with the candidate chosen for that test corpus.\n\n")
    return head + _cells_markdown(loco, corpora, targets, goals)
