"""Augmentation ablations: suite ``aug-text`` (real data only vs real + each generator / all).

Design (``configs/aug-text.yaml``), on a text corpus' official split:

1. **Core.** ``core_per_class`` training sentences per class are drawn once (``protocol.seed``);
   every training subset below contains them.
2. **Pool.** Each generator is fitted on the core only (few-shot examples, sentences to
   paraphrase) and makes a candidate pool once; the per-class counts are shared out by the
   planner (``budget`` in proportion to each class's gap to the largest class of the training
   labels). Pools are cached on disk as synthetic sets with manifests and re-used.
3. **Runs.** For every fraction (class-stratified, core included) and seed, a logistic
   regression on frozen MiniLM embeddings is fitted on the real subset ("real"); the same model
   is the filter: a candidate is kept when it assigns the intended class (probability >=
   ``filter.min_confidence``) and is no near-copy of a subset sentence. The balancing planner
   (``balance``) says how many items each class needs and :func:`~emofuse.augment.allocate`
   shares them among an arm's generators (limited by what each kept); the same model is refitted
   on real + synthetic and both are scored once on the test part.
4. **Arms** (``arms``): a list of generators, or ``{generators, class_weight, filter,
   baseline}``: ``class_weight: balanced`` fits the model with balanced class weights (with no
   generators: the no-generator way to balance); ``filter: balanced`` filters with the
   class-weighted twin of the real-data model (the plain one rarely predicts rare classes and so
   rejects their candidates); ``baseline`` names the arm it is compared with (default ``real``).

So everything an augmented model sees comes from its own training subset; dev/test never reach
a generator. Metrics ``<metric>_<arm>_f<percent>`` (``per_fold`` = per seed); the unsuffixed
metrics are the primary arm at the primary fraction. ``comparisons`` holds, per arm and fraction,
the paired differences to "real" (per seed), a paired t-test, a Wilcoxon signed-rank test and a
paired bootstrap 95 % CI over test items (mean over seeds).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from ..config import Params, RunConfig
from ..errors import ConfigError
from ..evaluate.metrics import classification_metrics
from ..evaluate.results import build_result
from ._aug_params import (Balance, Classifier, Fraction, Primary, check_baselines, dump_arms,
                          generator_kwargs)
from ._aug_stats import bootstrap_diff, paired_tests
from ._common import Timer
from ._suite import Suite

__all__ = ["AugText", "aug_text", "stratified_subset", "paired_tests", "bootstrap_diff",
           "AugTextParams"]

_METRICS = ("accuracy", "ua", "macro_f1")

#: texts -> embeddings; None = :func:`emofuse.features.text.embed_texts` (tests replace it)
EMBED: Callable[[list[str]], np.ndarray] | None = None


def _embed(texts: list[str]) -> np.ndarray:
    if EMBED is not None:
        return EMBED(texts)
    from ..features.text import embed_texts

    return embed_texts(texts)


class TextGenerator(Params):
    """One generator of the candidate pool."""

    name: str = Field(min_length=1)                         #: registered generator
    params: dict[str, Any] = Field(default_factory=dict)    #: its keyword parameters
    budget: int = Field(default=100, ge=0)                  #: candidates asked for
    quick_budget: int = Field(default=12, ge=0)             #: at most this many in --quick

    @model_validator(mode="after")
    def _known_params(self) -> Self:
        generator_kwargs(self.name, self.params, where="params")
        return self


class TextArm(Params):
    """An arm: a list of generators, or this mapping."""

    generators: list[str] = Field(default_factory=list)     #: pools it draws from
    class_weight: Literal["balanced"] | None = None         #: balanced class weights
    baseline: str = "real"                                  #: the arm it is compared with
    #: filter with the real-data model or its class-weighted twin (None: ``filter.model``)
    filter: Literal["real", "balanced"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _list_form(cls, v: Any) -> Any:
        return {"generators": list(v)} if isinstance(v, (list, tuple)) else v


class TextFilter(Params):
    """The quality filter of the candidates."""

    min_confidence: float = Field(default=0.0, ge=0, le=1)  #: least probability of the class
    model: Literal["real", "balanced"] = "real"             #: the arms' default filter


class AugTextParams(Params):
    """``model.params`` of ``aug-text``."""

    classifier: Classifier = Field(default_factory=Classifier)
    fractions: list[Fraction] = Field(default_factory=lambda: [0.1, 0.25, 1.0], min_length=1)
    core_per_class: int = Field(default=10, ge=1)   #: generators' few-shot core per class
    generators: dict[str, TextGenerator] = Field(default_factory=lambda: {
        "eda": TextGenerator(name="eda_text", params={}, budget=200)})
    arms: dict[str, TextArm] = Field(default_factory=lambda: {
        "real": TextArm(), "eda": TextArm(generators=["eda"])})
    filter: TextFilter = Field(default_factory=TextFilter)
    balance: Balance = Field(default_factory=Balance)
    dedupe_threshold: float = Field(default=0.05, ge=0)   #: near-copy cosine distance
    bootstrap: int = Field(default=1000, ge=1)            #: bootstrap resamples
    primary: Primary = Field(default_factory=Primary)   #: None: the second arm, smallest
    pool_dir: str | None = None                           #: pools' folder (None: the cache)

    @model_validator(mode="after")
    def _arms_consistent(self) -> Self:
        if "real" not in self.arms:
            raise ValueError("arms needs the 'real' arm (real data only)")
        for arm, spec in self.arms.items():
            if spec.filter is None:
                spec.filter = self.filter.model
            if bad := [g for g in spec.generators if g not in self.generators]:
                raise ValueError(f"arms.{arm}: unknown generator(s) {bad}")
        check_baselines(self.arms)
        if self.arms["real"].generators or self.arms["real"].class_weight:
            raise ValueError("arms.real must be real data only, unweighted ([])")
        return self


def stratified_subset(y: np.ndarray, fraction: float, *, core: np.ndarray, seed: int
                      ) -> np.ndarray:
    """Sorted indices of a class-stratified ``fraction`` of ``y`` that contains ``core``."""
    rng = np.random.default_rng(seed)
    in_core = np.zeros(len(y), bool)
    in_core[np.asarray(core, int)] = True
    out = [np.flatnonzero(in_core)]
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n_core = int(in_core[idx].sum())
        want = max(int(round(fraction * len(idx))), n_core)
        rest = idx[~in_core[idx]]
        n_more = min(len(rest), want - n_core)
        if n_more > 0:
            out.append(rng.choice(rest, n_more, replace=False))
    return np.sort(np.concatenate(out)).astype(int)


def _core(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        out += rng.choice(idx, min(per_class, len(idx)), replace=False).tolist()
    return np.array(sorted(out), int)


def _torch_threads(cfg: RunConfig) -> None:
    """torch's threads limited to ``train.num_threads`` (nothing when it is unset)."""
    if cfg.train.num_threads:
        import torch

        torch.set_num_threads(cfg.train.num_threads)


def _fit_lr(X: np.ndarray, y: np.ndarray, n_classes: int, C: float, max_iter: int,
            class_weight: str | None = None) -> Any:
    from ..augment.text import EmotionFilter

    f = EmotionFilter([str(i) for i in range(n_classes)], C=C, max_iter=max_iter,
                      class_weight=class_weight)
    return f.fit(X, y)


# -- pools ------------------------------------------------------------------------------------


def _pool_dir(cfg: RunConfig, p: AugTextParams, quick: bool) -> Path:
    if p.pool_dir:
        return Path(p.pool_dir)
    from ..paths import cache_dir

    # keyed by content (spec, counts, core ids, seed), so suites on one corpus share pools
    return cache_dir() / "augment" / (cfg.data.corpus + ("-quick" if quick else ""))


def _make_pools(cfg: RunConfig, p: AugTextParams, task: Any, core: np.ndarray, *,
                quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Candidate pool of every generator (fitted on the core), from the cache when there."""
    from ..augment import build_generator, load_set, plan_balance, write_set
    from ..augment.manifest import SyntheticSet

    classes = task.classes
    y = task.y["train"]
    counts = {c: int(np.sum(y == i)) for i, c in enumerate(classes)}
    core_recs = [task.records["train"][i] for i in core]
    root = _pool_dir(cfg, p, quick)
    pools = {}
    for gname, spec in p.generators.items():
        budget = min(spec.budget, spec.quick_budget) if quick else spec.budget
        want = plan_balance(counts, strategy="budget", budget=budget).needed
        # the keys given in the config (as before the typed schema: the cached pools stay valid)
        key = json.dumps({"spec": spec.model_dump(exclude_unset=True), "want": want, "core": [r.id for r in core_recs],
                          "seed": cfg.protocol.seed}, sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        folder = root / f"{gname}-{digest}"
        if (folder / "manifest.json").is_file():
            sset = load_set(folder)
            log(f"pool {gname}: {len(sset.items)} candidates reused from {folder}")
        else:
            gen = build_generator(spec.name, **spec.params)
            t0, c0 = time.perf_counter(), time.process_time()
            gen.fit(core_recs, seed=cfg.protocol.seed)
            items = gen.generate(want, seed=cfg.protocol.seed)
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            for it in items:
                it.generator = gname
            sset = SyntheticSet(gname, "text", {**gen.settings(), "generator": spec.name,
                                                "requested": want}, cfg.protocol.seed,
                                SyntheticSet.fitted(task.corpus, "train/core",
                                                    [r.id for r in core_recs],
                                                    core_per_class=p.core_per_class),
                                items, seconds=round(secs, 2),
                                extra={"key": digest, "cpu_s": round(cpu, 1), "load_s": getattr(
                                    getattr(gen, "_backend", None), "load_seconds", None)})
            write_set(sset, folder)
            log(f"pool {gname}: {len(items)} candidates generated in {secs:.0f} s -> {folder}")
        pools[gname] = {"set": sset, "folder": str(folder), "requested": want}
    return pools


# -- the suite --------------------------------------------------------------------------------


class AugText(Suite, name="aug-text", modality="text", params={"model": AugTextParams},
              quick_seeds=2):
    """text augmentation ablation: real vs real + SmolLM2 generation/paraphrase (+ EDA
    control) at 10/25/100 % of dair's training data"""

    def body(self) -> dict[str, Any]:
        from ..augment import allocate, plan_balance
        from ..augment.quality import quality_report
        from ..augment.text import dedupe
        from .text import feature_options, load_task, prepare_inputs

        cfg, p, log, quick, seeds = self.cfg, self.p, self.log, self.quick, self.seeds
        _torch_threads(cfg)
        task = load_task(cfg, quick=quick)
        if task.multilabel:
            raise ConfigError("aug-text needs a single-label corpus")
        classes, K = task.classes, len(task.classes)
        inputs = prepare_inputs(task, feature_options(cfg.features.params))
        t0 = time.perf_counter()
        emb = {part: _embed(inputs.texts[part]) for part in ("train", "test")}
        embed_s = time.perf_counter() - t0
        y_tr, y_te = task.y["train"], task.y["test"]
        core = _core(y_tr, p.core_per_class, cfg.protocol.seed)
        pools = _make_pools(cfg, p, task, core, quick=quick, log=log)
        index = {c: i for i, c in enumerate(classes)}
        pool_emb, pool_y, pool_text = {}, {}, {}
        for g, pool in pools.items():
            items = pool["set"].items
            texts = [it.text or "" for it in items]
            pool_text[g] = texts
            pool_emb[g] = _embed(texts) if texts else np.zeros((0, emb["train"].shape[1]))
            pool_y[g] = np.array([index[it.label] for it in items], int)
            # within-pool de-duplication (the subset copy check comes per run)
            pool["unique"] = dedupe(texts, pool_emb[g], threshold=p.dedupe_threshold)
        C, max_iter = p.classifier.C, p.classifier.max_iter
        arms = list(p.arms)
        runs: dict[tuple[str, float], list[dict[str, Any]]] = {}
        quality: dict[str, Any] = {}
        fit_s: list[float] = []
        memo: dict[str, Any] = {}
        for frac in p.fractions:
            memo.clear()
            for seed in seeds:
                sub = stratified_subset(y_tr, frac, core=core, seed=1000 * seed + 17)
                Xs, ys = emb["train"][sub], y_tr[sub]
                real_key = hashlib.sha256(sub.tobytes()).hexdigest()
                if real_key in memo:
                    real = memo[real_key]
                else:
                    t1 = time.perf_counter()
                    real = _fit_lr(Xs, ys, K, C, max_iter)
                    fit_s.append(time.perf_counter() - t1)
                    memo[real_key] = real
                plan = plan_balance({c: int(np.sum(ys == i)) for i, c in enumerate(classes)},
                                    **p.balance.kwargs())
                filters = {"real": real}
                if any(a.filter == "balanced" for a in p.arms.values()):
                    bkey = real_key + "|balanced"
                    if bkey not in memo:
                        t1 = time.perf_counter()
                        memo[bkey] = _fit_lr(Xs, ys, K, C, max_iter, "balanced")
                        fit_s.append(time.perf_counter() - t1)
                    filters["balanced"] = memo[bkey]
                kept: dict[tuple[str, str], np.ndarray] = {}
                for g in pools:
                    base_mask = pools[g]["unique"] & dedupe(
                        pool_text[g], pool_emb[g], real_emb=Xs,
                        threshold=p.dedupe_threshold) if len(pool_y[g]) else np.zeros(0, bool)
                    for fname, filt in filters.items():
                        if len(pool_y[g]) == 0:
                            kept[(g, fname)] = np.zeros(0, int)
                            continue
                        mask, score = filt.keep(pool_emb[g], pool_y[g])
                        mask &= score >= p.filter.min_confidence
                        kept[(g, fname)] = np.flatnonzero(mask & base_mask)
                    if frac == max(p.fractions) and seed == seeds[0] and len(pool_y[g]):
                        k = kept[(g, "real")]
                        quality[g] = {
                            "candidates": int(len(pool_y[g])),
                            "kept": int(len(k)),
                            "kept_per_class": {c: int(np.sum(pool_y[g][k] == i))
                                               for i, c in enumerate(classes)},
                            "gates_candidates": quality_report(
                                pool_emb[g], pool_y[g], Xs, ys, classes,
                                proba=real.predict_proba(pool_emb[g])),
                            "gates_kept": quality_report(
                                pool_emb[g][k], pool_y[g][k], Xs, ys, classes,
                                proba=real.predict_proba(pool_emb[g][k]))
                            if len(k) >= 2 else {}}
                        if "balanced" in filters:
                            kb = kept[(g, "balanced")]
                            quality[g]["kept_balanced_filter"] = int(len(kb))
                            quality[g]["kept_balanced_filter_per_class"] = {
                                c: int(np.sum(pool_y[g][kb] == i))
                                for i, c in enumerate(classes)}
                rng = np.random.default_rng(seed)
                for arm in arms:
                    gens = p.arms[arm].generators
                    cw = p.arms[arm].class_weight
                    fname = p.arms[arm].filter
                    if not gens and not cw:
                        model, added = real, {c: 0 for c in classes}
                        chosen_n = 0
                    else:
                        cap = {g: {c: int(np.sum(pool_y[g][kept[(g, fname)]] == i))
                                   for i, c in enumerate(classes)} for g in gens}
                        alloc = allocate(plan.needed, {g: 1.0 for g in gens}, capacity=cap)
                        Xa, ya = [Xs], [ys]
                        added = {c: 0 for c in classes}
                        for g in gens:
                            for i, c in enumerate(classes):
                                n = alloc[g][c]
                                if n <= 0:
                                    continue
                                kg = kept[(g, fname)]
                                cand = kg[pool_y[g][kg] == i]
                                pick = rng.choice(cand, n, replace=False)
                                Xa.append(pool_emb[g][pick])
                                ya.append(pool_y[g][pick])
                                added[c] += n
                        chosen_n = sum(added.values())
                        key = hashlib.sha256(sub.tobytes() + str(cw).encode() + b"|".join(
                            x.tobytes() for x in Xa[1:])).hexdigest()
                        if key in memo:  # the same data (e.g. 100 %: every seed) -> same fit
                            model = memo[key]
                        else:
                            t1 = time.perf_counter()
                            model = _fit_lr(np.concatenate(Xa), np.concatenate(ya), K, C,
                                            max_iter, cw)
                            fit_s.append(time.perf_counter() - t1)
                            memo[key] = model
                    proba = model.predict_proba(emb["test"])
                    pred = proba.argmax(1)
                    m = classification_metrics(y_te, pred, classes=classes)
                    runs.setdefault((arm, frac), []).append(
                        {"seed": seed, "pred": pred, "metrics": m, "added": added,
                         "n_real": int(len(sub)), "n_synthetic": chosen_n})
                log(f"  fraction {frac:g} seed {seed}: " + "; ".join(
                    f"{a} UA {100 * runs[(a, frac)][-1]['metrics']['ua']:.2f}" for a in arms))
        return _result(cfg, task, runs, pools, quality, seeds, self.timer,
                       arms=dump_arms(p.arms), fracs=list(p.fractions),
                       primary=(p.primary.arm, p.primary.fraction),
                       core_per_class=p.core_per_class, bootstrap=p.bootstrap,
                       settings={"classifier": p.classifier.model_dump(),
                                 "core_per_class": p.core_per_class,
                                 "filter": p.filter.model_dump(),
                                 "balance": p.balance.kwargs(),
                                 "dedupe_threshold": p.dedupe_threshold,
                                 "bootstrap": p.bootstrap},
                       embed_s=embed_s, fit_s=fit_s, quick=quick)


aug_text = AugText.run


def _pct(f: float) -> str:
    return f"f{int(round(100 * f))}"


def _result(cfg: RunConfig, task: Any, runs: dict, pools: dict, quality: dict,
            seeds: list[int], timer: Timer, *, arms: Mapping[str, Mapping[str, Any]],
            fracs: list[float], primary: tuple[str | None, float | None],
            core_per_class: int | None, bootstrap: int, settings: dict[str, Any],
            embed_s: float, fit_s: list[float], quick: bool) -> dict[str, Any]:
    """The result of an ablation: ``arms`` (plain mappings with ``generators``,
    ``class_weight``, ``baseline``, ``filter``), ``primary`` = (arm, fraction), None: the
    second arm, the smallest fraction."""
    classes, K = task.classes, len(task.classes)
    y_te = task.y["test"]
    arm_specs, arms = arms, list(arms)
    prim_arm = primary[0] or (arms[1] if len(arms) > 1 else arms[0])
    prim_frac = primary[1] or min(fracs)
    metrics: dict[str, Any] = {}

    def put(name: str, vals: list[float]) -> None:
        v = np.asarray(vals, float)
        metrics[name] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1
                         else 0.0, "per_fold": [float(x) for x in v]}

    for m in _METRICS:
        put(m, [r["metrics"][m] for r in runs[(prim_arm, prim_frac)]])
    for frac in fracs:
        for arm in arms:
            for m in _METRICS:
                put(f"{m}_{arm}_{_pct(frac)}", [r["metrics"][m] for r in runs[(arm, frac)]])
    comparisons: dict[str, Any] = {}
    per_class_recall: dict[str, Any] = {}
    for frac in fracs:
        for arm in arms:
            base = runs[(arm_specs[arm]["baseline"], frac)]
            rs = runs[(arm, frac)]
            per_class_recall[f"{arm}_{_pct(frac)}"] = {
                c: float(np.mean([r["metrics"]["per_class"][c]["recall"] for r in rs]))
                for c in classes}
            if arm == "real":
                continue
            comp = {m: paired_tests([r["metrics"][m] for r in base],
                                    [r["metrics"][m] for r in rs]) for m in _METRICS}
            comp["bootstrap"] = bootstrap_diff(
                y_te, [r["pred"] for r in base], [r["pred"] for r in rs], K,
                n=100 if quick else int(bootstrap), seed=0)
            comp["added_per_class_mean"] = {c: float(np.mean([r["added"][c] for r in rs]))
                                            for c in classes}
            comp["baseline"] = arm_specs[arm]["baseline"]
            comp["n_real"] = int(np.mean([r["n_real"] for r in rs]))
            comp["n_synthetic_mean"] = float(np.mean([r["n_synthetic"] for r in rs]))
            comparisons[f"{arm}_{_pct(frac)}"] = comp
    prim = runs[(prim_arm, prim_frac)]
    conf = np.sum([r["metrics"]["confusion"] for r in prim], axis=0).tolist()
    per_class = {c: {k: float(np.mean([r["metrics"]["per_class"][c][k] for r in prim]))
                     for k in ("precision", "recall", "f1")} | {
                         "support": prim[0]["metrics"]["per_class"][c]["support"]}
                 for c in classes}
    generation = {g: {"candidates": len(pl["set"].items), "requested": pl["requested"],
                      "seconds": pl["set"].seconds, "cpu_s": pl["set"].extra.get("cpu_s"),
                      "llm_load_s": pl["set"].extra.get("load_s"),
                      "folder": pl["folder"], "settings": pl["set"].settings}
                  for g, pl in pools.items()}
    result = build_result(
        suite=cfg.suite, corpus=task.corpus,
        protocol=(f"official split of {task.corpus}; class-stratified training subsets "
                  f"{', '.join(f'{100 * f:g} %' for f in fracs)} (each contains the "
                  f"{core_per_class}-per-class core the generators were fitted on); "
                  f"test part scored once per run; per_fold = one entry per seed"),
        classes=classes, metrics=metrics, per_class=per_class, confusion=conf, seeds=seeds,
        started=timer.started, duration_s=timer.seconds,
        primary={"arm": prim_arm, "fraction": prim_frac},
        arms={a: arm_specs[a] for a in arms}, fractions=fracs,
        comparisons=comparisons, per_class_recall=per_class_recall, quality=quality,
        generation=generation, timing={"embedding_s": round(embed_s, 1),
                                       "classifier_fit_mean_s": round(float(np.mean(fit_s)), 2),
                                       "classifier_fits": len(fit_s)},
        settings=settings)
    result["notes"] = render_notes(result)
    return result


def render_notes(result: Mapping[str, Any]) -> str:
    """Markdown tables of the ablation (goes into the result's ``notes``)."""
    classes, arms, fracs = result["classes"], list(result["arms"]), result["fractions"]
    M = result["metrics"]
    L = [f"Primary figures (unsuffixed metrics): arm **{result['primary']['arm']}** at "
         f"{100 * result['primary']['fraction']:g} % of the training data.", "",
         "## Ablation (test %, mean ± std over seeds)", "",
         "Arms: " + "; ".join(f"**{a}** = " + (" + ".join(s["generators"]) or "real only")
                              + (f", class weights {s['class_weight']}" if s["class_weight"]
                                 else "")
                              + (f", filter {s['filter']}" if s["generators"] else "")
                              for a, s in result["arms"].items()) + ".", "",
         "| fraction | arm | n real | + synthetic | accuracy | UA | macro-F1 | vs | ΔUA (paired t p"
         " / Wilcoxon p) | ΔUA bootstrap 95 % CI |", "|---|---|---|---|---|---|---|---|---|---|"]

    def f(name: str) -> str:
        m = M[name]
        return f"{100 * m['mean']:.2f} ± {100 * m['std']:.2f}"

    def pv(x: Any) -> str:
        return "–" if x is None else f"{x:.3g}"

    for frac in fracs:
        tag = _pct(frac)
        for arm in arms:
            comp = result["comparisons"].get(f"{arm}_{tag}")
            if comp:
                d = comp["ua"]
                b = comp["bootstrap"]
                delta = (f"{100 * d['diff_mean']:+.2f} ({pv(d['t_p'])} / {pv(d['wilcoxon_p'])})")
                ci = f"[{100 * b['ua_ci_low']:+.2f}, {100 * b['ua_ci_high']:+.2f}]"
                nreal, nsyn = comp["n_real"], f"{comp['n_synthetic_mean']:.0f}"
                vs = comp["baseline"]
            else:
                delta, ci, nsyn, vs = "–", "–", "0", "–"
                nreal = next((c["n_real"] for k, c in result["comparisons"].items()
                              if k.endswith(tag)), "")
            L.append(f"| {100 * frac:g} % | {arm} | {nreal} | {nsyn} | "
                     f"{f(f'accuracy_{arm}_{tag}')} | {f(f'ua_{arm}_{tag}')} | "
                     f"{f(f'macro_f1_{arm}_{tag}')} | {vs} | {delta} | {ci} |")
    L += ["", "## Per-class recall (test %, mean over seeds)", "",
          "| fraction | arm | " + " | ".join(classes) + " |", "|---|---" + "|---" * len(classes)
          + "|"]
    for frac in fracs:
        for arm in arms:
            r = result["per_class_recall"][f"{arm}_{_pct(frac)}"]
            L.append(f"| {100 * frac:g} % | {arm} | " + " | ".join(f"{100 * r[c]:.1f}"
                                                                   for c in classes) + " |")
    L += ["", "## Synthetic items added per class (mean over seeds)", "",
          "| fraction | arm | " + " | ".join(classes) + " |", "|---|---" + "|---" * len(classes)
          + "|"]
    for key, comp in result["comparisons"].items():
        arm, tag = key.rsplit("_", 1)
        L.append(f"| {tag[1:]} % | {arm} | " + " | ".join(
            f"{comp['added_per_class_mean'][c]:.0f}" for c in classes) + " |")
    L += ["", "## Generation and quality gates (pool vs the full training set, filter = real-"
          "data model at the largest fraction, seed of the first run)", "",
          "| generator | candidates | wall s (CPU s) | kept: filter real / balanced | confidence "
          "| agreement | diversity (real) "
          "| nearest-real dist. mean / p05 | near copies | Fréchet (real vs real) |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for g, gen in result["generation"].items():
        q = result["quality"].get(g, {})
        for which in ("gates_candidates", "gates_kept"):
            o = (q.get(which) or {}).get("overall") or {}
            if not o:
                continue
            name = g if which == "gates_candidates" else f"{g} (kept)"
            n = gen["candidates"] if which == "gates_candidates" else q.get("kept")
            L.append(
                f"| {name} | {n} | "
                + (f"{gen['seconds']:.0f} ({gen.get('cpu_s') or '–'})"
                   if which == "gates_candidates" else "") + " | "
                + (f"{q.get('kept', '')} / {q.get('kept_balanced_filter', '–')}"
                   if which == "gates_candidates" else "") + " | "
                f"{o.get('confidence', float('nan')):.3f} | {o.get('agreement', float('nan')):.3f} | "
                f"{o.get('diversity', float('nan')):.3f} ({o.get('real_diversity', float('nan')):.3f}) | "
                f"{o.get('nearest_real_mean', float('nan')):.3f} / {o.get('nearest_real_p05', float('nan')):.3f} | "
                f"{o.get('near_copies', float('nan')):.3f} | {o.get('frechet', float('nan')):.3f} "
                f"({o.get('frechet_real_vs_real', float('nan')):.3f}) |")
    t = result["timing"]
    L += ["", f"Embedding (MiniLM, cached): {t['embedding_s']} s; logistic-regression fits: "
          f"{t['classifier_fits']}, {t['classifier_fit_mean_s']} s each on average."]
    return "\n".join(L)
