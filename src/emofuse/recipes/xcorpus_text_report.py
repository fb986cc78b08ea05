"""The report of the cross-corpus text suite (``xcorpus-text``): its result (metrics, targets
met or not, the pooled confusion), the Markdown notes (cells, per-class F1, confusions, nested
selection, joint model) and the heatmap of per-class F1 per held-out corpus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig, dump_config
from ..evaluate.metrics import aggregate_folds, summarise
from ..evaluate.results import build_result
from ..labels import CANONICAL
from ._common import Timer
from .text_params import JointParams, Targets

__all__ = ["result", "plot_heatmap", "ordered"]


def ordered(labels: set[str] | Sequence[str]) -> list[str]:
    """Labels in canonical order, then any others sorted."""
    s = set(labels)
    return [c for c in CANONICAL if c in s] + sorted(s - set(CANONICAL))


def result(cfg: RunConfig, p: JointParams, cells: list[dict[str, Any]],
           joint: Mapping[str, Any] | None, loaded: Mapping[str, Any], timer: Timer,
           png: Path, quick: bool, *, inputs: str = "frozen MiniLM sentence embeddings"
           ) -> dict[str, Any]:
    """The suite's result (JSON-ready) from its cells and joint model; ``inputs`` says what
    the heads are fitted on."""
    corpora, targets = p.corpora, p.targets
    metrics: dict[str, Any] = {}
    for k in ("macro_f1", "ua", "wa", "weighted_f1", "ece", "ece_ts"):
        metrics[k] = summarise([c[k] for c in cells])
    metrics["ece_ts_max"] = {**summarise([max(c["ece_ts"] for c in cells)]),
                             "per_fold": [c["ece_ts"] for c in cells]}
    for c in cells:
        for k in ("macro_f1", "ua", "wa", "weighted_f1", "ece", "ece_ts"):
            metrics[f"{k}_{c['test']}"] = summarise([c[k]])
    if joint:
        for k, v in joint["figures"].items():
            if k.startswith("test_"):
                for m in ("weighted_f1", "macro_f1"):
                    metrics[f"joint_{k}_{m}"] = summarise([v[m]])
    union = ordered({k for c in cells for k in c["classes"]})
    from .xcorpus import _union_confusion

    pooled = aggregate_folds(_union_confusion(cells, union))
    metrics["train_s"] = summarise([timer.seconds])
    mean = metrics["macro_f1"]["mean"]
    worst = max(c["ece_ts"] for c in cells)
    status = {
        "loco_macro_f1": {"value": mean, "target": targets.loco_macro_f1,
                          "aim": targets.loco_macro_f1_aim,
                          "met": None if targets.loco_macro_f1 is None
                          else bool(mean >= targets.loco_macro_f1)},
        "ece_ts_max": {"value": worst, "target": targets.ece_ts,
                       "met": None if targets.ece_ts is None else bool(worst <= targets.ece_ts)}}
    if joint and "test_meld" in joint["figures"] and targets.meld_weighted_f1 is not None:
        v = joint["figures"]["test_meld"]["weighted_f1"]
        status["joint_meld_test_weighted_f1"] = {"value": v,
                                                 "target": targets.meld_weighted_f1,
                                                 "met": bool(v >= targets.meld_weighted_f1)}
    cells_out = [{k: v for k, v in c.items() if not k.startswith("_")} for c in cells]
    joint_out = None
    if joint:
        joint_out = {k: v for k, v in joint.items() if k not in ("head", "candidate")}
        joint_out["candidate"] = joint["candidate"].to_dict()
        joint_out["candidate_short"] = joint["candidate"].short()
        joint_out["fit"] = joint["head"]["info"]
    notes = _notes(corpora, p, quick, inputs) + _loaded_markdown(loaded) + _cells_markdown(
        cells, targets) + (
        "\n" + _joint_markdown(joint, targets) if joint else "")
    return build_result(
        suite=cfg.suite, corpus="+".join(corpora),
        protocol="leave-one-corpus-out (train splits of the others -> test split of the held-out "
                 "corpus, shared canonical labels); nested LOCO selection and temperature on "
                 "the training corpora's dev splits",
        classes=union, metrics=metrics, per_class=pooled["per_class"],
        confusion=pooled["confusion"], seeds=list(cfg.train.seeds), started=timer.started,
        duration_s=timer.seconds, folds=corpora, cells=cells_out, joint=joint_out,
        targets=targets.given(), status=status, loaded=loaded, heatmap_png=png.name,
        goemotions_multilabel=p.goemotions_multilabel, notes=notes, config=dump_config(cfg))


def _loaded_markdown(loaded: Mapping[str, Any]) -> str:
    """Items per corpus and split; GoEmotions rows left out when loading."""
    lines = ["Items loaded (labelled, canonical): " + "; ".join(
        f"{c} " + ", ".join(f"{p} {n}" for p, n in v["items"].items())
        for c, v in loaded.items()) + "."]
    go = loaded.get("goemotions") or {}
    if go.get("multilabel_rows"):
        lines.append("GoEmotions multi-label rows (kept: one Ekman group / dropped): " + "; ".join(
            f"{p} {d['kept_one_group']} / {d['dropped']}" for p, d in go["multilabel_rows"].items())
            + " (the dropped ones are not in any cell's counts below).")
    return " ".join(lines) + "\n\n"


def _notes(corpora: Sequence[str], p: JointParams, quick: bool, inputs: str) -> str:
    rule = ("a multi-label row is kept when all its labels fall in one Ekman group (the "
            "loader's canonical label), dropped otherwise"
            if p.goemotions_multilabel == "same_group"
            else "only one-label rows are kept")
    return (("**Quick smoke run on a tiny subset; the figures mean nothing.**\n\n" if quick
             else "")
            + f"Leave-one-corpus-out over {', '.join(corpora)} ({inputs}): each cell trains "
            "on the *train* splits of the other corpora and is scored once on the *test* split "
            "of the held-out corpus, over the canonical labels both sides share; the table "
            "lists each cell's classes, chance level and the "
            f"classes dropped on each side with their counts. GoEmotions: {rule}. "
            "`per_fold` lists the cells in the order "
            f"{', '.join(corpora)}. Every choice of the grid (head: logistic regression or MLP, "
            "class and corpus balancing, regularisation) is made per cell by nested LOCO "
            "inside the training corpora (fitted on the train split of one, scored on the dev "
            "split of the other), and the temperature is fitted on those out-of-corpus dev "
            "probabilities: the held-out corpus chooses nothing. `ece` / `ece_ts`: expected "
            "calibration error (15 bins) before / after temperature scaling. "
            "`joint_test_<corpus>_*`: the joint model trained on every corpus (the v2 text "
            "model's recipe) on each corpus' own test split (in-corpus, not cross-corpus).\n\n")


def plot_heatmap(cells: Sequence[Mapping[str, Any]], path: str | Path, *, title: str = ""
                 ) -> Path:
    """Per-class F1 of each LOCO cell (rows: held-out corpus), then its macro-F1, UA and
    ECE after temperature scaling; blank where a class is not scored."""
    from ..evaluate.plots import _plt, save_figure

    plt = _plt()
    classes = ordered({k for c in cells for k in c["classes"]})
    cols = classes + ["macro-F1", "UA", "ECE (T)"]
    mat = np.full((len(cells), len(cols)), np.nan)
    for i, c in enumerate(cells):
        for j, k in enumerate(classes):
            if k in c["classes"]:
                mat[i, j] = c["per_class"][k]["f1"]
        mat[i, -3:] = c["macro_f1"], c["ua"], c["ece_ts"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.75 * len(cols), 1.2 + 0.6 * len(cells)))
    im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(cells)),
                  [f"{c['test']} ({len(c['classes'])} cl.)" for c in cells])
    ax.set_ylabel("held-out corpus")
    for i in range(len(cells)):
        for j in range(len(cols)):
            if np.isfinite(mat[i, j]):
                ax.text(j, i, f"{100 * mat[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if mat[i, j] < 0.5 else "black")
    ax.axvline(len(classes) - 0.5, color="white", lw=2)
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)


def _pct(v: Any) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.2f}"


def _cells_markdown(cells: Sequence[Mapping[str, Any]], targets: Targets) -> str:
    mean = float(np.mean([c["macro_f1"] for c in cells]))
    lines = [f"LOCO mean macro-F1 (shared labels): **{_pct(mean)}**"
             + (f" (target >= {100 * targets.loco_macro_f1:.0f}"
                if targets.loco_macro_f1 is not None else "")
             + (f", aim >= {100 * targets.loco_macro_f1_aim:.0f}"
                if targets.loco_macro_f1_aim is not None else "")
             + (")" if targets.loco_macro_f1 is not None else "")
             + f"; worst ECE after temperature scaling {_pct(max(c['ece_ts'] for c in cells))}"
             + (f" (target <= {100 * targets.ece_ts:.0f})" if targets.ece_ts is not None else "")
             + ".", "",
             ("| held out (test split) | trained on | classes (chance UA %, majority WA %) | "
             "dropped (train side; test side) | n test | macro-F1 | UA | WA | weighted F1 | "
             "ECE | ECE after T | T | chosen (mean dev macro-F1) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        dropped = "; ".join(", ".join(f"{k} {v}" for k, v in c["dropped"][s].items()) or "none"
                            for s in ("train", "test"))
        lines.append(
            f"| {c['test']} | {'+'.join(c['train'])} | {', '.join(c['classes'])} "
            f"({_pct(c['chance_ua'])}, {_pct(c['majority_wa'])}) | {dropped} | {c['n_test']} | "
            f"**{_pct(c['macro_f1'])}** | {_pct(c['ua'])} | {_pct(c['wa'])} | "
            f"{_pct(c['weighted_f1'])} | {_pct(c['ece'])} | {_pct(c['ece_ts'])} | "
            f"{c['temperature']:g} | {c['chosen_short']} "
            f"({_pct(c['selection']['chosen_mean'])}) |")
    allc = ordered({k for c in cells for k in c["classes"]})
    lines += ["", "Per-class F1 (%):", "", "| held out | " + " | ".join(allc) + " |",
              "|---" * (1 + len(allc)) + "|"]
    for c in cells:
        lines.append(f"| {c['test']} | " + " | ".join(
            _pct(c["per_class"][k]["f1"]) if k in c["classes"] else "–" for k in allc) + " |")
    lines += ["", "Confusions (rows true, columns predicted):", ""]
    for c in cells:
        lines.append(f"- {c['test']} ({', '.join(c['classes'])}): {c['confusion']}")
    lines += ["", "Nested selection (dev macro-F1 %, left-out training corpus; mean):", ""]
    for c in cells:
        lines += [f"*{c['test']} held out* — columns: " + ", ".join(
            f"{f['left_out']} ({len(f['classes'])} cl., trained on {'+'.join(f['trained_on'])})"
            for f in c["selection"]["folds"]), ""]
        lines += _selection_table(c["selection"], c["chosen_short"]) + [""]
    return "\n".join(lines)


def _joint_markdown(joint: Mapping[str, Any], targets: Targets) -> str:
    sel = joint["selection"]
    chosen = joint.get("chosen_short") or joint["candidate"].short()
    lines = ["### Joint model (trained on every corpus: the text model v2 recipe)", "",
             (f"Chosen by LOCO over all corpora (dev splits): **{chosen}**, "
             f"mean dev macro-F1 {_pct(sel['chosen_mean'])}; temperature "
             f"{joint['temperature']:g} (LOCO out-of-corpus dev probabilities)."), ""]
    if keep := sel.get("keep"):
        lines += [(f"Keep rule: a candidate is eligible iff its {keep['corpus']} dev "
                   f"{keep['metric'].replace('_', ' ')} (fitted on every train split, no "
                   f"temperature) is at least {_pct(keep['min'])}; the eligible one with the "
                   "best LOCO mean wins (none eligible: the best such dev figure). "
                   f"{sum(keep['eligible'])} of {len(keep['eligible'])} eligible; their "
                   f"{keep['corpus']} dev figures: "
                   + ", ".join(f"{n} {_pct(v)}" for n, v in zip(sel["candidates"], keep["dev"]))
                   + "."), ""]
    if used := joint.get("train_used"):
        lines += ["Joint model's train rows: " + ", ".join(f"{c} {n}" for c, n in used.items())
                  + ".", ""]
    lines += _selection_table(sel, chosen)
    lines += ["", ("In-corpus figures of the joint model (temperature applied; classes of the "
              "model present in that corpus):"), "",
              "| split | classes | n | macro-F1 | UA | WA | weighted F1 | ECE |",
              "|---|---|---|---|---|---|---|---|"]
    for k, v in joint["figures"].items():
        lines.append(f"| {k} | {', '.join(v['classes'])} | {v['n']} | {_pct(v['macro_f1'])} | "
                     f"{_pct(v['ua'])} | {_pct(v['wa'])} | **{_pct(v['weighted_f1'])}** | "
                     f"{_pct(v['ece'])} |")
    if targets.meld_weighted_f1 is not None:
        lines += ["", (f"Target: MELD test weighted F1 >= "
                  f"{100 * targets.meld_weighted_f1:.0f}.")]
    return "\n".join(lines)


def _selection_table(sel: Mapping[str, Any], chosen: str) -> list[str]:
    """Markdown rows of a selection: dev macro-F1 of each candidate per left-out corpus."""
    folds = [f["left_out"] for f in sel["folds"]]
    lines = ["| candidate | " + " | ".join(folds) + " | mean |", "|---" * (2 + len(folds)) + "|"]
    for name, row, m in zip(sel["candidates"], sel["dev_macro_f1"], sel["mean"]):
        mark = "**" if name == chosen else ""
        lines.append(f"| {mark}{name}{mark} | " + " | ".join(_pct(v) for v in row)
                     + f" | {mark}{_pct(m)}{mark} |")
    return lines
