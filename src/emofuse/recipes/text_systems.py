"""The systems of a text suite (``model.params.systems``): scikit-learn models chosen on dev
over their grid, torch models (MLP head on frozen MiniLM embeddings, fine-tuned MiniLM) with
early stopping on dev, and dev-weighted ensembles. Every fit is cached in the run folder of its
settings, so reruns and ``emofuse train`` reuse it."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig
from ..errors import ConfigError
from ..paths import cache_dir
from .text_params import (MODEL_PARAMS, SKLEARN, TORCH, EnsembleParams, FinetuneParams,
                          MLPParams, ModelParams, SystemSpec, TextSuiteParams)
from .text_task import Inputs, TextTask, feature_options, prepare_inputs, score

__all__ = ["SystemRun", "fit_torch", "run_system", "ensemble", "run_systems", "select_metric",
           "run_dir", "train_settings"]


@dataclass
class SystemRun:
    """Dev and test probabilities of one system for one seed, and what was chosen."""

    seed: int
    dev: np.ndarray
    test: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _fit_sklearn(name: str, params: ModelParams, task: TextTask, inputs: Inputs,
                 metric: str, *, quick: bool = False) -> tuple[Any, dict[str, Any], float]:
    """Fit every grid point on train, keep the best on dev: (model, params, dev score)."""
    from ..models import build_model

    keep = inputs.keep
    train_texts = [t for t, k in zip(inputs.texts["train"], keep) if k]
    best: tuple[float, Any, dict[str, Any]] | None = None
    for point in params.points(first=quick):
        p = point.given()
        extra = {"classes": task.classes} if name == "lexicon_rule" else {}
        model = build_model(name, **p, **extra)
        fit_opts = {} if task.multilabel or name == "lexicon_rule" else \
            {"n_classes": len(task.classes)}
        model.fit(train_texts, task.y["train"][keep], multilabel=task.multilabel, **fit_opts)
        s = score(task, task.y["val"], model.predict_proba(inputs.texts["val"]), metric)
        if best is None or s > best[0]:
            best = (s, model, p)
    assert best is not None
    return best[1], best[2], best[0]


def run_dir(task: TextTask, system: str, spec: Mapping[str, Any], inputs: Inputs,
            seed: int) -> Path:
    """Checkpoint folder of one fit, keyed by everything that shapes it."""
    sizes = {p: len(v) for p, v in task.records.items()}
    key = json.dumps({"corpus": task.corpus, "sizes": sizes, "spec": spec,
                      "options": inputs.options.model_dump(), "classes": task.classes,
                      "first": [rs[0].id for rs in task.records.values() if rs]},
                     sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / "runs" / "text" / task.corpus / f"{system}-{digest}" / f"seed{seed}"


def _store_outputs(out_dir: Path, run: SystemRun) -> None:
    """Keep a run's dev/test probabilities and info next to its checkpoints."""
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "outputs.npz", dev=run.dev, test=run.test)
    (out_dir / "outputs.json").write_text(json.dumps(run.info, default=str))


def _load_outputs(out_dir: Path, seed: int) -> SystemRun | None:
    """The stored outputs of a finished run (``None`` when absent or unreadable)."""
    try:
        with np.load(out_dir / "outputs.npz", allow_pickle=False) as z:
            dev, test = z["dev"], z["test"]
        info = json.loads((out_dir / "outputs.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    return SystemRun(seed, dev, test, {**info, "reused": True})


def _fit_lightning(module: Any, train_loader: Any, val_loader: Any, *, cfg: RunConfig,
                   out_dir: Path, seed: int, settings: _Training, mode: str) -> dict[str, Any]:
    """:func:`emofuse.train.fit` with a time budget; a finished run is reused as it is."""
    import torch

    from ..models.text import TimeBudget
    from ..train import fit
    from ..train.trainer import checkpoint_complete

    done = out_dir / "done.json"
    if done.is_file() and not checkpoint_complete(out_dir / "best.ckpt"):
        import logging

        logging.getLogger(__name__).warning("%s is missing or damaged; training again",
                                            out_dir / "best.ckpt")
        done.unlink(missing_ok=True)
    if done.is_file():
        state = torch.load(out_dir / "best.ckpt", map_location="cpu", weights_only=True)
        module.load_state_dict(state["state_dict"])
        return {**json.loads(done.read_text()), "reused": True}
    budget = [TimeBudget(settings.max_minutes)] if settings.max_minutes else []
    cpu0 = time.process_time()
    res = fit(module, train_loader, val_loader, max_epochs=settings.epochs,
              patience=settings.patience, out_dir=out_dir, seed=seed, monitor=settings.monitor,
              mode=mode, progress=False, num_threads=cfg.train.num_threads,
              deterministic=cfg.train.deterministic, callbacks=budget, **cfg.train.hardware())
    info = {"train_seconds": round(res.seconds, 1),
            "cpu_seconds": round(time.process_time() - cpu0, 1),
            "threads": torch.get_num_threads(), "epochs": res.epochs_run,
            "best_score": res.best_score, "stopped_early": res.stopped_early,
            "budget_hit": bool(budget and budget[0].stopped)}
    done.write_text(json.dumps(info))
    return info


def _embeddings(task: TextTask, inputs: Inputs) -> dict[str, np.ndarray]:
    """MiniLM embeddings per part; with ``context_turns`` the mean embedding of the previous
    turns is appended (zeros at a dialogue's start)."""
    from ..features.text import embed_texts

    out = {}
    for p, texts in inputs.texts.items():
        e = embed_texts(texts)
        if inputs.options.context_turns:
            ctx = np.zeros_like(e)
            for i, prev in enumerate(inputs.previous[p]):
                if prev:
                    ctx[i] = e[prev].mean(0)
            e = np.concatenate([e, ctx], axis=1)
        out[p] = e
    return out


@dataclass(frozen=True)
class _Training:
    """Training settings of one torch fit (a system's, else the ``train`` section's)."""

    epochs: int
    batch_size: int
    patience: int
    max_minutes: float | None
    max_len: int
    monitor: str


def train_settings(params: MLPParams | FinetuneParams, cfg: RunConfig, *, quick: bool = False
                   ) -> _Training:
    """The training settings of one grid point of a torch system (``quick``: one epoch, no
    time budget)."""
    def own(value: Any, default: Any) -> Any:
        return default if value is None else value

    return _Training(epochs=1 if quick else own(params.epochs, cfg.train.max_epochs),
                     batch_size=own(params.batch_size, cfg.train.batch_size),
                     patience=own(params.patience, cfg.train.patience),
                     max_minutes=None if quick else params.max_minutes,
                     max_len=params.max_len, monitor=params.monitor)


def fit_torch(name: str, params: MLPParams | FinetuneParams, task: TextTask, inputs: Inputs, *,
              cfg: RunConfig, seed: int, out_dir: Path, quick: bool = False
              ) -> tuple[Any, dict[str, Any], Callable[[str], np.ndarray]]:
    """Train a ``minilm_mlp`` or ``minilm_finetune`` system (one grid point) for one seed.

    Returns the module, its training info and ``predict(part) -> probabilities``.
    """
    from ..models import build_model
    from ..models.text import array_loader, class_weights, predict_module, token_loader, tokenize
    from ..train import seed_everything

    tp = train_settings(params, cfg, quick=quick)
    mp = params.model_kwargs(lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    keep = inputs.keep
    y_train = task.y["train"][keep]
    n = len(task.classes)
    weights = (class_weights(y_train, n) if cfg.train.class_weighted and not task.multilabel
               else None)
    mode = "min" if tp.monitor.endswith("loss") else "max"
    seed_everything(seed, cfg.train.deterministic)
    if name == "minilm_mlp":
        emb = _embeddings(task, inputs)
        module = build_model(name, in_dim=emb["train"].shape[1], n_classes=n,
                             multilabel=task.multilabel, class_weights=weights, **mp)
        train_loader = array_loader(emb["train"][keep], y_train, batch_size=tp.batch_size,
                                    shuffle=True, seed=seed)
        val_loader = array_loader(emb["val"], task.y["val"], batch_size=256)

        def loader(part: str) -> Any:
            return array_loader(emb[part], batch_size=256)
    else:
        ids = {p: tokenize(t, contexts=inputs.contexts[p], max_len=tp.max_len)
               for p, t in inputs.texts.items()}
        train_ids = [i for i, k in zip(ids["train"], keep) if k]
        steps = -(-len(train_ids) // tp.batch_size) * tp.epochs
        module = build_model(name, n_classes=n, multilabel=task.multilabel,
                             class_weights=weights, total_steps=steps, **mp)
        train_loader = token_loader(train_ids, y_train, batch_size=tp.batch_size,
                                    shuffle=True, seed=seed)
        val_loader = token_loader(ids["val"], task.y["val"], batch_size=64)

        def loader(part: str) -> Any:
            return token_loader(ids[part], batch_size=64)
    info = _fit_lightning(module, train_loader, val_loader, cfg=cfg, out_dir=out_dir, seed=seed,
                          settings=tp, mode=mode)
    info["train_items"] = int(keep.sum())
    return module, info, lambda part: predict_module(module, loader(part))


def run_system(name: str, spec: SystemSpec, task: TextTask, inputs: Inputs, *,
               cfg: RunConfig, seeds: Sequence[int], metric: str, quick: bool = False,
               log: Callable[[str], None] = print) -> list[SystemRun]:
    """Fit system ``name`` (one run per seed; deterministic ones once) and predict dev/test."""
    model, params = spec.model, spec.params
    runs = []
    if model in SKLEARN:
        out_dir = run_dir(task, name, {"model": model, "params": params.given(),
                                       "metric": metric, "quick": quick}, inputs, 0)
        run = _load_outputs(out_dir, seeds[0])
        if run is None:
            t0 = time.perf_counter()
            fitted, chosen, _ = _fit_sklearn(model, params, task, inputs, metric, quick=quick)
            info = {"chosen": chosen, "train_seconds": round(time.perf_counter() - t0, 1),
                    "deterministic": True, "train_items": int(inputs.keep.sum())}
            run = SystemRun(seeds[0], fitted.predict_proba(inputs.texts["val"]),
                            fitted.predict_proba(inputs.texts["test"]), info)
            _store_outputs(out_dir, run)
        runs.append(run)
    else:
        assert model in TORCH and isinstance(params, (MLPParams, FinetuneParams))
        grid = params.points(first=quick)
        for seed in seeds:
            best: SystemRun | None = None
            for p in grid:
                out_dir = run_dir(task, name, {"model": model, "params": p.given()}, inputs,
                                  seed)
                run = _load_outputs(out_dir, seed)
                if run is None:
                    _, info, predict = fit_torch(model, p, task, inputs, cfg=cfg, seed=seed,
                                                 out_dir=out_dir, quick=quick)
                    run = SystemRun(seed, predict("val"), predict("test"),
                                    {**info, "chosen": p.given()})
                    _store_outputs(out_dir, run)
                run.info["dev_score"] = score(task, task.y["val"], run.dev, metric)
                if best is None or run.info["dev_score"] > best.info["dev_score"]:
                    best = run
            assert best is not None
            runs.append(best)
    for r in runs:
        r.info.setdefault("dev_score", score(task, task.y["val"], r.dev, metric))
        log(f"  {name} seed {r.seed}: dev {metric} {100 * r.info['dev_score']:.2f} "
            f"({r.info.get('train_seconds', 0):.0f} s)")
    return runs


def ensemble(members: Sequence[list[SystemRun]], task: TextTask, metric: str,
             step: float = 0.1) -> list[SystemRun]:
    """Weighted mean of members' probabilities, weights chosen on dev (grid of ``step``).

    Runs are paired by seed position (a single deterministic run joins every seed).
    """
    n = max(len(m) for m in members)
    grid = [w for w in itertools.product(np.arange(0, 1 + 1e-9, step), repeat=len(members))
            if abs(sum(w) - 1) < 1e-6]
    out = []
    for k in range(n):
        runs = [m[k % len(m)] for m in members]
        best = max(grid, key=lambda w: score(
            task, task.y["val"], sum(wi * r.dev for wi, r in zip(w, runs)), metric))
        dev = sum(wi * r.dev for wi, r in zip(best, runs))
        test = sum(wi * r.test for wi, r in zip(best, runs))
        out.append(SystemRun(runs[0].seed, dev, test, {
            "weights": [round(float(w), 2) for w in best],
            "train_seconds": sum(r.info.get("train_seconds", 0) for r in runs),
            "cpu_seconds": sum(r.info.get("cpu_seconds", 0) for r in runs),
            "dev_score": score(task, task.y["val"], dev, metric)}))
    return out


def systems_of(cfg: RunConfig, params: TextSuiteParams) -> dict[str, SystemSpec]:
    """The config's systems; without any, ``model.name`` is the one system (its defaults)."""
    if params.systems:
        return params.systems
    if cfg.model.name not in MODEL_PARAMS:
        raise ConfigError(f"model.params.systems is empty and model.name {cfg.model.name!r} is "
                          f"not a text model ({', '.join(MODEL_PARAMS)}): name the systems")
    return {cfg.model.name: SystemSpec(model=cfg.model.name)}


def run_systems(cfg: RunConfig, task: TextTask, *, quick: bool = False,
                log: Callable[[str], None] = print) -> tuple[dict[str, list[SystemRun]], str]:
    """Run every system of ``cfg.model.params.systems``; return the runs and the primary name."""
    params = TextSuiteParams.of(cfg.model)
    systems = systems_of(cfg, params)
    metric = select_metric(params, task)
    inputs_cache: dict[str, Inputs] = {}
    results: dict[str, list[SystemRun]] = {}
    for name, spec in systems.items():
        if spec.model == "ensemble":
            continue
        opts = feature_options(cfg.features, spec.features)
        key = opts.model_dump_json()
        if key not in inputs_cache:
            inputs_cache[key] = prepare_inputs(task, opts)
            if opts.filter_unemotional:
                keep = inputs_cache[key].keep
                log(f"  emotional-content filter keeps {keep.sum()}/{len(keep)} training items")
        seeds = list(spec.seeds or cfg.train.seeds)[: 1 if quick else None]
        log(f"{name} ({spec.model}):")
        results[name] = run_system(name, spec, task, inputs_cache[key], cfg=cfg, seeds=seeds,
                                   metric=metric, quick=quick, log=log)
    for name, spec in systems.items():
        if isinstance(spec.params, EnsembleParams):
            results[name] = ensemble([results[m] for m in spec.params.members], task, metric)
            log(f"{name}: weights {results[name][0].info['weights']} dev {metric} "
                f"{100 * results[name][0].info['dev_score']:.2f}")
    primary = cfg.model.name
    if primary == "best_dev":
        primary = max(results, key=lambda s: np.mean([r.info["dev_score"]
                                                      for r in results[s]]))
    elif primary not in results:
        primary = next(iter(results))
    return results, primary


def select_metric(params: TextSuiteParams, task: TextTask) -> str:
    """What the systems maximise on dev: ``select_metric``, else macro-F1 (multi-label) or
    accuracy."""
    return params.select_metric or ("macro_f1" if task.multilabel else "accuracy")
