"""Cross-modal augmentation, emotional speech from text: suite ``aug-speech-tts``.

Design (``configs/aug-speech-tts.yaml``), RAVDESS speech on the EmoBox folds:

1. **Pool.** The ``tts`` generator (:mod:`emofuse.augment.tts`) speaks built-in neutral
   carrier sentences with per-emotion prosody, ``pool.per_class`` clips per class and engine
   (piper, espeak-ng), once. It sees no corpus data at all, so the synthetic speech cannot
   depend on any test fold: one pool serves every fold (its manifest's ``fitted_on`` is empty,
   and :func:`~emofuse.augment.manifest.to_records` checks it against each test fold). Pools
   are cached on disk as synthetic sets (WAV files + manifest), keyed by their settings.
2. **Model.** The bundled speech recipe's classifier (``configs/ser-ravdess-lda.yaml``): a
   standardiser + shrinkage LDA with equal class priors over the ``fused`` hand-crafted vector
   (``logmel_bands: 64``), inductive setting (features cached by content, shared with the
   ``ser-ravdess*`` suites; the speed-perturbed training copies are left out).
3. **Runs.** For every fold, fraction and seed: a speaker-stratified subset of the training
   fold (each speaker x class cell keeps ``fraction`` of its clips, randomised rounding, at
   least one clip per class) trains "real"; every other arm adds ``per_class`` synthetic clips
   per class (drawn per seed from its engines' pools, shared out between the engines; only to
   ``classes`` when an arm names them) and is fitted on real + synthetic. Both are scored once
   on the test fold. An arm's ``setting: spknorm`` standardises every speaker's vectors by that
   speaker's mean and std over all its clips (unlabelled, test speakers included, as in the
   speech recipe; each TTS voice or piper pseudo-speaker counts as a speaker); ``baseline``
   names the arm it is compared with (default ``real``).

Metrics ``<metric>_<arm>_f<percent>`` (``per_fold`` = per fold, mean over seeds; ``per_seed`` =
per seed, mean over folds); the unsuffixed metrics are the primary arm at the primary fraction.
``comparisons`` (per arm and fraction): paired differences to "real" per seed, paired t-test
and Wilcoxon over seeds and over fold x seed pairs, and a paired bootstrap 95 % CI over test
items (all folds pooled); the statistics are :func:`emofuse.recipes.augment.paired_tests` and
:func:`~emofuse.recipes.augment.bootstrap_diff`, as in ``aug-text``. ``quality``: the gates of
:mod:`emofuse.augment.quality` on each engine's pool, in the space of the first ``pca``
principal components of the fused vector standardised on the first fold's training part, with
the confidence of that fold's real-data model (100 %).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig, dump_config
from ..corpora import Record
from ..errors import ConfigError
from ..evaluate.metrics import classification_metrics
from ..evaluate.results import build_result
from . import suite
from ._common import Timer, model_params, require_modality

__all__ = ["aug_speech_tts", "speaker_stratified", "DEFAULTS", "render_notes"]

DEFAULTS: dict[str, Any] = {
    "lda": {"shrinkage": 0.5, "balanced": True},
    "fractions": [0.1, 0.25, 1.0],
    "folds": None,                       # None: every fold of the protocol
    "pool": {"per_class": 60, "seed": 0, "generator": {}},
    "arms": {"real": {}, "tts": {"engines": ["piper", "espeak"], "per_class": 40}},
    "primary": {"arm": "tts", "fraction": 0.1},
    "bootstrap": 1000,
    "pca": 64,
    "quick": {"pool_per_class": 2, "per_class": 2, "fractions": [0.5, 1.0], "seeds": 2},
    "pool_dir": None,
}
_METRICS = ("ua", "accuracy", "macro_f1")


def _params(cfg: RunConfig) -> dict[str, Any]:
    from ..augment.tts import ENGINES

    p = model_params(cfg, DEFAULTS, nested=('pool',))
    if "real" not in p["arms"] or p["arms"]["real"] not in ({}, None):
        raise ConfigError("model.params.arms needs 'real: {}' (real data only)")
    arms = {}
    for arm, spec in p["arms"].items():
        spec = dict(spec or {})
        if extra := sorted(set(spec) - {"engines", "per_class", "classes", "setting",
                                        "baseline"}):
            raise ConfigError(f"model.params.arms.{arm}: unknown key(s) {extra}; an arm is "
                              "{engines: [piper, espeak], per_class: N, classes: [...], "
                              "setting: inductive|spknorm, baseline: ARM}")
        spec.setdefault("setting", "inductive")
        spec.setdefault("baseline", "real")
        if spec["setting"] not in ("inductive", "spknorm"):
            raise ConfigError(f"model.params.arms.{arm}.setting: 'inductive' or 'spknorm', not "
                              f"{spec['setting']!r}")
        spec.setdefault("engines", [] if arm == "real" else list(ENGINES))   # [] = real only
        spec.setdefault("per_class", 40 if spec["engines"] else 0)
        spec.setdefault("classes", None)       # None: every class gets synthetic clips
        if bad := [e for e in spec["engines"] if e not in ENGINES]:
            raise ConfigError(f"model.params.arms.{arm}.engines: unknown {bad}; known: "
                              f"{', '.join(ENGINES)}")
        arms[arm] = spec
    for arm, spec in arms.items():
        if spec["baseline"] not in arms:
            raise ConfigError(f"model.params.arms.{arm}.baseline: {spec['baseline']!r} is not "
                              "an arm")
    p["arms"] = arms
    if not all(0 < f <= 1 for f in p["fractions"]):
        raise ConfigError("model.params.fractions must be in (0, 1]")
    return p


def speaker_stratified(records: Sequence[Record], classes: Sequence[str], fraction: float,
                       seed: int) -> list[Record]:
    """``fraction`` of every (speaker, class) cell of ``records`` (randomised rounding, so small
    cells keep ``fraction`` of their clips on average), at least one clip per class present."""
    if fraction >= 1:
        return list(records)
    rng = np.random.default_rng(seed)
    cells: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(records):
        cells.setdefault((str(r.speaker), str(r.label)), []).append(i)
    keep: list[int] = []
    for key in sorted(cells):
        idx = cells[key]
        n = fraction * len(idx)
        k = int(np.floor(n)) + int(rng.random() < n - np.floor(n))
        if k:
            keep += rng.choice(idx, k, replace=False).tolist()
    have = {records[i].label for i in keep}
    for c in classes:
        if c not in have:
            pool = [i for i, r in enumerate(records) if r.label == c]
            if pool:
                keep.append(int(rng.choice(pool)))
    return [records[i] for i in sorted(keep)]


def _tag(arm: str, frac: float) -> str:
    return f"{arm}_f{int(round(100 * frac))}"


# -- the pool ---------------------------------------------------------------------------------


def _pool(cfg: RunConfig, p: Mapping[str, Any], classes: Sequence[str], engine: str, *,
          quick: bool, log: Callable[[str], None]) -> tuple[Any, Path]:
    """The synthetic set of ``engine`` (from the cache when there)."""
    from ..augment import build_generator, load_set
    from ..augment.tts import PROSODY, make_tts_set
    from ..paths import cache_dir

    n = int(p["quick"]["pool_per_class"]) if quick else int(p["pool"]["per_class"])
    seed = int(p["pool"]["seed"])
    gparams = {**p["pool"]["generator"], "engines": [engine]}
    key = json.dumps({"params": gparams, "n": n, "seed": seed, "classes": list(classes),
                      "prosody": PROSODY, "version": 1}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    root = Path(p["pool_dir"]) if p["pool_dir"] else cache_dir() / "augment"
    folder = root / f"{cfg.data.corpus}-tts{'-quick' if quick else ''}" / f"{engine}-{digest}"
    if (folder / "manifest.json").is_file():
        sset = load_set(folder)
        log(f"pool {engine}: {len(sset.items)} clips reused from {folder}")
        return sset, folder
    gen = build_generator("tts", **gparams)
    sset = make_tts_set(gen, {c: n for c in classes}, folder, seed=seed, corpus=cfg.data.corpus,
                        log=log)
    return sset, folder


def _pool_features(sset: Any, folder: Path, feature: str, params: Mapping[str, Any],
                   classes: Sequence[str], cache: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from ..features.speech import extract

    xs, ys, ids = [], [], []
    for it in sset.items:
        xs.append(np.asarray(extract(folder / it.path, feature, params=params, cache=cache),
                             np.float32))
        ys.append(classes.index(it.label))
        ids.append(it.id)
    return np.stack(xs), np.asarray(ys, int), ids


# -- the suite --------------------------------------------------------------------------------


@suite("aug-speech-tts", modality="speech",
       description="RAVDESS speech: real data only vs real + emotional TTS (piper, espeak-ng) "
                   "at 10/25/100 % of each training fold, shrinkage LDA on the fused vector, "
                   "EmoBox folds")
def aug_speech_tts(cfg: RunConfig, *, quick: bool = False,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    from ..augment.manifest import to_records
    from ..models import build_model
    from ._speech_fit import SpeechData
    from .speech import _fold_records, _usable_folds

    require_modality(cfg, "speech")
    p = _params(cfg)
    seeds = list(cfg.train.seeds)
    fracs = list(p["fractions"])
    if quick:
        seeds = seeds[: int(p["quick"]["seeds"])]
        fracs = list(p["quick"]["fractions"])
    feature, fparams = cfg.features.name, dict(cfg.features.params)
    with Timer() as timer:
        records, classes, splits = _fold_records(cfg, quick=quick)
        data = SpeechData(records)
        t0 = time.perf_counter()
        vec = data.vectors(feature, fparams)
        real_feat_s = time.perf_counter() - t0
        kept = set(vec)
        splits = _usable_folds(splits, kept, folds=p["folds"], quick=quick)
        by_id = {r.id: r for r in data.records if r.id in kept}
        log(f"{len(by_id)} utterances, {len(classes)} classes, folds {[s.fold for s in splits]},"
            f" seeds {seeds}, fractions {fracs}; real features {real_feat_s:.0f} s")

        # pools: one per engine, generated once (no corpus data), features cached by content
        engines = sorted({e for a in p["arms"].values() for e in a["engines"]})
        pools: dict[str, dict[str, Any]] = {}
        for e in engines:
            sset, folder = _pool(cfg, p, classes, e, quick=quick, log=log)
            for s in splits:   # the set names no test item (it names none at all)
                to_records(sset, folder=folder, test_ids=s.test)
            t1, c1 = time.perf_counter(), time.process_time()
            X, y, ids = _pool_features(sset, folder, feature, fparams, classes, data.cache)
            pools[e] = {"set": sset, "folder": str(folder), "X": X, "y": y, "ids": ids,
                        "feature_s": round(time.perf_counter() - t1, 2),
                        "feature_cpu_s": round(time.process_time() - c1, 2)}
            log(f"pool {e}: {len(y)} clips, features {pools[e]['feature_s']} s")
        spk = any(a["setting"] == "spknorm" for a in p["arms"].values())
        vec_n = _speaker_normalised(vec, {i: str(r.speaker) for i, r in by_id.items()}) \
            if spk else {}
        for e, pl in pools.items():
            if spk:
                who = {it.id: f"{e}:{it.extra.get('speaker')}" for it in pl["set"].items}
                xn = _speaker_normalised(dict(zip(pl["ids"], pl["X"])), who)
                pl["Xn"] = np.stack([xn[i] for i in pl["ids"]])

        lda = dict(p["lda"])
        memo: dict[str, Any] = {}
        fit_s: list[float] = []

        def fit(X: np.ndarray, y: np.ndarray, key: str) -> Any:
            if key not in memo:
                t1 = time.perf_counter()
                with warnings.catch_warnings():   # one-clip classes in tiny subsets
                    warnings.simplefilter("ignore")
                    memo[key] = build_model("lda", **lda).fit(X, y)
                fit_s.append(time.perf_counter() - t1)
            return memo[key]

        runs: dict[tuple[str, float], list[dict[str, Any]]] = {}
        real_full: dict[tuple[int, str], Any] = {}
        for split in splits:
            train = [by_id[i] for i in split.train]
            test = [by_id[i] for i in split.test]
            X_tes = {"inductive": np.stack([vec[r.id] for r in test])}
            if vec_n:
                X_tes["spknorm"] = np.stack([vec_n[r.id] for r in test])
            y_te = np.array([classes.index(r.label) for r in test])
            for frac in fracs:
                for seed in seeds:
                    sub = speaker_stratified(train, classes, frac, seed * 1000 + split.fold)
                    ys = np.array([classes.index(r.label) for r in sub])
                    sub_key = hashlib.sha256("|".join(r.id for r in sub).encode()).hexdigest()
                    for arm, spec in p["arms"].items():
                        setting = spec["setting"]
                        src = vec_n if setting == "spknorm" else vec
                        Xs = np.stack([src[r.id] for r in sub])
                        key = f"{setting}|{sub_key}"
                        if not spec["engines"]:
                            model = fit(Xs, ys, key)
                            added = {c: 0 for c in classes}
                            if frac == 1.0:
                                real_full[(split.fold, setting)] = model
                        else:
                            Xa, ya, added, chosen = _draw(
                                pools, spec, classes, seed, arm, quick=quick,
                                quick_n=int(p["quick"]["per_class"]),
                                x_key="Xn" if setting == "spknorm" else "X")
                            model = fit(np.concatenate([Xs, Xa]), np.concatenate([ys, ya]),
                                        key + "|" + ",".join(chosen))
                        pred = _full_proba(model, X_tes[setting], len(classes)).argmax(1)
                        m = classification_metrics(y_te, pred, classes=classes)
                        runs.setdefault((arm, frac), []).append(
                            {"fold": split.fold, "seed": seed, "pred": pred, "y": y_te,
                             "metrics": m, "added": added, "n_real": len(sub),
                             "n_synthetic": int(sum(added.values()))})
                log(f"  fold {split.fold} fraction {frac:g}: " + "; ".join(
                    f"{a} UA {100 * _fold_mean(runs[(a, frac)], split.fold):.2f}"
                    for a in p["arms"]))
        f1 = splits[0].fold
        quality = _quality(pools, splits[0], by_id, vec, classes,
                           real_full.get((f1, "inductive")), n_pca=int(p["pca"]))
        if vec_n:
            quality["spknorm"] = _quality(pools, splits[0], by_id, vec_n, classes,
                                          real_full.get((f1, "spknorm")), n_pca=int(p["pca"]),
                                          x_key="Xn")
    return _result(cfg, p, classes, runs, pools, quality, seeds, fracs, splits, timer,
                   fit_s=fit_s, real_feat_s=real_feat_s, quick=quick)


def _fold_mean(rs: Sequence[Mapping[str, Any]], fold: int) -> float:
    return float(np.mean([r["metrics"]["ua"] for r in rs if r["fold"] == fold]))


def _speaker_normalised(vectors: Mapping[str, np.ndarray], speaker: Mapping[str, str]
                        ) -> dict[str, np.ndarray]:
    """Every vector standardised by the mean and std of all its speaker's vectors (unlabelled;
    the ``spknorm`` setting of the speech recipe; a TTS voice counts as a speaker)."""
    from ..speech import vector_stats

    groups: dict[str, list[str]] = {}
    for i in vectors:
        groups.setdefault(speaker[i], []).append(i)
    out = {}
    for ids in groups.values():
        st = vector_stats(np.stack([vectors[i] for i in ids]))
        for i in ids:
            out[i] = ((vectors[i] - st[0]) / st[1]).astype(np.float32)
    return out


def _draw(pools: Mapping[str, Any], spec: Mapping[str, Any], classes: Sequence[str], seed: int,
          arm: str, *, quick: bool, quick_n: int, x_key: str = "X"
          ) -> tuple[np.ndarray, np.ndarray, dict[str, int], list[str]]:
    """``per_class`` synthetic clips per class (of ``classes`` when the arm names them), shared
    out between the arm's engines in turn, drawn per seed (the same for every fold and
    fraction)."""
    per = quick_n if quick else int(spec["per_class"])
    h = int(hashlib.sha256(f"{arm}|{seed}".encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(h)
    engs = list(spec["engines"])
    Xa, ya, chosen = [], [], []
    added = {c: 0 for c in classes}
    only = spec.get("classes")
    for ci, c in enumerate(classes):
        if only and c not in only:
            continue
        share = [per // len(engs) + (1 if k < per % len(engs) else 0) for k in range(len(engs))]
        for e, n in zip(engs, share):
            idx = np.flatnonzero(pools[e]["y"] == ci)
            n = min(n, len(idx))
            if n <= 0:
                continue
            pick = rng.choice(idx, n, replace=False)
            Xa.append(pools[e][x_key][pick])
            ya.append(pools[e]["y"][pick])
            chosen += [pools[e]["ids"][i] for i in pick]
            added[c] += int(n)
    if not Xa:
        return np.zeros((0, 0), np.float32), np.zeros(0, int), added, chosen
    return np.concatenate(Xa), np.concatenate(ya), added, chosen


def _full_proba(clf: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    p = clf.predict_proba(x)
    out = np.zeros((len(x), n_classes))
    out[:, np.asarray(clf.classes_, dtype=int)] = p
    return out


def _quality(pools: Mapping[str, Any], split: Any, by_id: Mapping[str, Record],
             vec: Mapping[str, np.ndarray], classes: Sequence[str], real_model: Any, *,
             n_pca: int, x_key: str = "X") -> dict[str, Any]:
    """Quality gates of each engine's pool (and of both) against the first fold's training
    part, in PCA space of the standardised fused vector; confidence from that fold's 100 %
    real-data model, plus what it predicts for the synthetic clips of each class."""
    from ..augment.quality import quality_report

    train = [by_id[i] for i in split.train]
    R = np.stack([vec[r.id] for r in train]).astype(np.float64)
    ry = np.array([classes.index(r.label) for r in train])
    mu, sd = R.mean(0), R.std(0) + 1e-8
    Z = (R - mu) / sd
    k = int(min(n_pca, Z.shape[1], len(Z) - 1))
    _, _, vt = np.linalg.svd(Z - Z.mean(0), full_matrices=False)
    W = vt[:k].T

    def emb(X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, np.float64) - mu) / sd - Z.mean(0)) @ W

    sets = {e: (pl[x_key], pl["y"]) for e, pl in pools.items()}
    if len(pools) > 1:
        sets["all"] = (np.concatenate([pl[x_key] for pl in pools.values()]),
                       np.concatenate([pl["y"] for pl in pools.values()]))
    out: dict[str, Any] = {"space": f"first {k} principal components of the standardised "
                           f"fused vector (fold {split.fold} training part)",
                           "fold": split.fold}
    real_emb = emb(R)
    for name, (X, y) in sets.items():
        proba = _full_proba(real_model, X, len(classes)) if real_model is not None else None
        rep = quality_report(emb(X), y, real_emb, ry, classes, proba=proba)
        if proba is not None:
            conf = np.zeros((len(classes), len(classes)), int)
            for t, q in zip(y, proba.argmax(1)):
                conf[t, q] += 1
            rep["predicted_as"] = conf.tolist()
        out[name] = rep
    return out


# -- result -----------------------------------------------------------------------------------


def _summ(vals: Sequence[float]) -> dict[str, Any]:
    v = np.asarray(vals, float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def _result(cfg: RunConfig, p: Mapping[str, Any], classes: Sequence[str],
            runs: Mapping[tuple[str, float], list[dict[str, Any]]], pools: Mapping[str, Any],
            quality: Mapping[str, Any], seeds: list[int], fracs: list[float],
            splits: Sequence[Any], timer: Timer, *, fit_s: list[float], real_feat_s: float,
            quick: bool) -> dict[str, Any]:
    from .augment import bootstrap_diff, paired_tests

    arms = list(p["arms"])
    folds = [s.fold for s in splits]
    prim_arm = p["primary"].get("arm") or arms[-1]
    prim_frac = p["primary"].get("fraction") or min(fracs)
    if prim_frac not in fracs:
        prim_frac = min(fracs)
    metrics: dict[str, Any] = {}

    def per_seed(rs: list[dict], m: str) -> list[float]:
        return [float(np.mean([r["metrics"][m] for r in rs if r["seed"] == s])) for s in seeds]

    def per_fold(rs: list[dict], m: str) -> list[float]:
        return [float(np.mean([r["metrics"][m] for r in rs if r["fold"] == f])) for f in folds]

    def put(name: str, rs: list[dict], m: str) -> None:
        ps, pf = per_seed(rs, m), per_fold(rs, m)
        metrics[name] = {**_summ(ps), "per_fold": pf, "per_seed": ps}

    for m in _METRICS:
        put(m, runs[(prim_arm, prim_frac)], m)
    for frac in fracs:
        for arm in arms:
            for m in _METRICS:
                put(f"{m}_{_tag(arm, frac)}", runs[(arm, frac)], m)
    comparisons: dict[str, Any] = {}
    recall: dict[str, Any] = {}
    K = len(classes)
    for frac in fracs:
        for arm in arms:
            base = runs[(p["arms"][arm]["baseline"], frac)]
            rs = runs[(arm, frac)]
            recall[_tag(arm, frac)] = {
                c: float(np.mean([r["metrics"]["per_class"][c]["recall"] for r in rs]))
                for c in classes}
            if arm == "real":
                continue
            comp: dict[str, Any] = {m: paired_tests(per_seed(base, m), per_seed(rs, m))
                                    for m in _METRICS}
            key = lambda r: (r["fold"], r["seed"])  # noqa: E731
            b_by = {key(r): r for r in base}
            pairs = [(b_by[key(r)]["metrics"]["ua"], r["metrics"]["ua"]) for r in rs]
            comp["ua_fold_seed"] = paired_tests([a for a, _ in pairs], [b for _, b in pairs])
            comp["neutral_recall"] = paired_tests(
                [r["metrics"]["per_class"]["neutral"]["recall"] for r in base]
                if "neutral" in classes else [0.0],
                [r["metrics"]["per_class"]["neutral"]["recall"] for r in rs]
                if "neutral" in classes else [0.0])
            y_all = np.concatenate([r["y"] for r in base if r["seed"] == seeds[0]])
            pa = [np.concatenate([r["pred"] for r in base if r["seed"] == s]) for s in seeds]
            pb = [np.concatenate([r["pred"] for r in rs if r["seed"] == s]) for s in seeds]
            comp["bootstrap"] = bootstrap_diff(y_all, pa, pb, K,
                                               n=100 if quick else int(p["bootstrap"]), seed=0)
            comp["n_real_mean"] = float(np.mean([r["n_real"] for r in rs]))
            comp["n_synthetic"] = float(np.mean([r["n_synthetic"] for r in rs]))
            comp["added_per_class"] = rs[0]["added"]
            comp["baseline"] = p["arms"][arm]["baseline"]
            comparisons[_tag(arm, frac)] = comp
    prim = runs[(prim_arm, prim_frac)]
    conf = np.sum([r["metrics"]["confusion"] for r in prim], axis=0).tolist()
    per_class = {c: {k: float(np.mean([r["metrics"]["per_class"][c][k] for r in prim]))
                     for k in ("precision", "recall", "f1")} | {
                         "support": int(sum(r["metrics"]["per_class"][c]["support"]
                                            for r in prim if r["seed"] == seeds[0]))}
                 for c in classes}
    generation = {}
    for e, pl in pools.items():
        s = pl["set"]
        t = (s.extra.get("timing") or {}).get(e, {})
        generation[e] = {"clips": len(s.items), "per_class": s.counts(kept_only=False),
                         "seconds": s.seconds, "cpu_s": s.extra.get("cpu_s"),
                         "audio_s": t.get("audio_s"), "synthesis_wall_s": t.get("wall_s"),
                         "synthesis_cpu_s": t.get("cpu_s"), "feature_s": pl["feature_s"],
                         "feature_cpu_s": pl["feature_cpu_s"], "folder": pl["folder"],
                         "created": s.created, "seed": s.seed,
                         "fitted_on_n": s.fitted_on.get("n", 0),
                         "mean_duration_s": float(np.mean([it.extra.get("duration_s", 0)
                                                           for it in s.items]))}
    result = build_result(
        suite=cfg.suite, corpus=cfg.data.corpus,
        protocol=(f"{cfg.protocol.kind} folds {folds} of {cfg.data.corpus} (speaker-independent);"
                  f" speaker-stratified training subsets "
                  f"{', '.join(f'{100 * f:g} %' for f in fracs)} per seed; synthetic clips "
                  "from text only (no corpus data), the same pool for every fold; per_fold = "
                  "per fold (mean over seeds), per_seed = per seed (mean over folds)"),
        classes=classes, metrics=metrics, per_class=per_class, confusion=conf, seeds=seeds,
        started=timer.started, duration_s=timer.seconds,
        primary={"arm": prim_arm, "fraction": prim_frac}, arms=dict(p["arms"]),
        fractions=fracs, folds=folds, comparisons=comparisons, per_class_recall=recall,
        quality=quality, generation=generation,
        timing={"real_features_s": round(real_feat_s, 1), "lda_fits": len(fit_s),
                "lda_fit_mean_s": round(float(np.mean(fit_s)), 2) if fit_s else None},
        settings={"lda": dict(p["lda"]), "features": {"name": cfg.features.name,
                                                      "params": dict(cfg.features.params)},
                  "pool": dict(p["pool"]), "bootstrap": p["bootstrap"], "pca": p["pca"]},
        config=dump_config(cfg))
    result["notes"] = render_notes(result)
    return result


def render_notes(result: Mapping[str, Any]) -> str:
    """Markdown tables of the ablation (the result's ``notes``)."""
    classes, arms, fracs = result["classes"], list(result["arms"]), result["fractions"]
    M, C = result["metrics"], result["comparisons"]

    def pm(name: str) -> str:
        m = M[name]
        return f"{100 * m['mean']:.2f} ± {100 * m['std']:.2f}"

    def pv(x: Any) -> str:
        return "–" if x is None else f"{x:.3g}"

    L = [f"Primary figures (unsuffixed metrics): arm **{result['primary']['arm']}** at "
         f"{100 * result['primary']['fraction']:g} % of each training fold.", "",
         "The synthetic speech is generated from text alone (built-in neutral carrier "
         "sentences, prosody per emotion): it depends on no training or test item, so one pool "
         "serves every fold and cannot leak the test fold.", "",
         f"## Ablation (test %, folds {result['folds']}, seeds {result['seeds']})", "",
         "Mean ± std over seeds (each seed's value = mean over the folds); Δ against the arm "
         "in column *vs*. Setting *spknorm*: every speaker's vectors (a TTS voice or "
         "pseudo-speaker counts as one) standardised by that speaker's mean and std over all "
         "its clips, unlabelled, test speakers included (the speech recipe's spknorm). Arms: "
         + "; ".join(
             f"**{a}** = " + ("real only" if not s["engines"] else
                              f"real + {s['per_class']} synthetic clips per class "
                              + (f"of {', '.join(s['classes'])} " if s.get("classes") else "")
                              + f"({' + '.join(s['engines'])})")
             + (", spknorm" if s.get("setting") == "spknorm" else "")
             for a, s in result["arms"].items()) + ".", "",
         "| train data | arm | n real | + synthetic | UA | accuracy | macro-F1 | **neutral "
         "recall** | vs | ΔUA (t p / Wilcoxon p, seeds) | p fold x seed (t / W) | ΔUA "
         "bootstrap 95 % CI |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for frac in fracs:
        for arm in arms:
            t = _tag(arm, frac)
            comp = C.get(t)
            nr = result["per_class_recall"][t].get("neutral")
            if comp:
                d, fs, b = comp["ua"], comp["ua_fold_seed"], comp["bootstrap"]
                delta = f"{100 * d['diff_mean']:+.2f} ({pv(d['t_p'])} / {pv(d['wilcoxon_p'])})"
                pfs = f"{pv(fs['t_p'])} / {pv(fs['wilcoxon_p'])}"
                ci = f"[{100 * b['ua_ci_low']:+.2f}, {100 * b['ua_ci_high']:+.2f}]"
                nreal, nsyn = f"{comp['n_real_mean']:.0f}", f"{comp['n_synthetic']:.0f}"
                vs = comp.get("baseline", "real")
            else:
                delta = pfs = ci = vs = "–"
                nsyn = "0"
                nreal = next((f"{c['n_real_mean']:.0f}" for k, c in C.items()
                              if k.endswith(f"_f{int(round(100 * frac))}")), "")
            L.append(f"| {100 * frac:g} % | {arm} | {nreal} | {nsyn} | {pm(f'ua_{t}')} | "
                     f"{pm(f'accuracy_{t}')} | {pm(f'macro_f1_{t}')} | "
                     f"{'–' if nr is None else f'{100 * nr:.1f}'} | {vs} | {delta} | {pfs} | "
                     f"{ci} |")
    L += ["", "## Per-class recall (test %, mean over folds and seeds; RAVDESS **neutral** is "
          "the smallest class: 96 clips vs 192)", "",
          "| train data | arm | " + " | ".join(f"**{c}**" if c == "neutral" else c
                                              for c in classes) + " |",
          "|---|---" + "|---" * len(classes) + "|"]
    for frac in fracs:
        for arm in arms:
            r = result["per_class_recall"][_tag(arm, frac)]
            L.append(f"| {100 * frac:g} % | {arm} | " + " | ".join(
                (f"**{100 * r[c]:.1f}**" if c == "neutral" else f"{100 * r[c]:.1f}")
                for c in classes) + " |")
    g = result["generation"]
    L += ["", "## Generation (once; the machine's 2 cores shared with other jobs)", "",
          "| engine | clips | audio s | synthesis wall s (CPU s) | features wall s (CPU s) in this "
          "run (cached by content after the first extraction) |",
          "|---|---|---|---|---|"]
    for e, x in g.items():
        L.append(f"| {e} | {x['clips']} | {x['audio_s']} | {x['synthesis_wall_s']} "
                 f"({x['synthesis_cpu_s']}) | {x['feature_s']} ({x['feature_cpu_s']}) |")
    q = result["quality"]
    L += _quality_tables(q, classes, "")
    if isinstance(q.get("spknorm"), dict):
        L += _quality_tables(q["spknorm"], classes, ", speaker-normalised vectors (spknorm)")
    t = result["timing"]
    L += ["", f"LDA fits: {t['lda_fits']} ({t['lda_fit_mean_s']} s each on average); real "
          f"features from the cache in {t['real_features_s']} s."]
    return "\n".join(L)


def _quality_tables(q: Mapping[str, Any], classes: Sequence[str], title: str) -> list[str]:
    """The quality-gate tables of one space."""

    def f3(x: Any) -> str:
        return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"

    L = ["", f"## Quality gates{title} ({q.get('space', '')}; confidence = the "
          f"fold-{q.get('fold')} real-data model at 100 %)", "",
          "| pool | n | confidence | agreement | diversity (real) | nearest-real dist. mean / "
          "p05 | near copies | Fréchet (real vs real) |", "|---|---|---|---|---|---|---|---|"]
    for name, rep in q.items():
        if not isinstance(rep, dict) or "overall" not in rep:
            continue
        o = rep["overall"]
        L.append(f"| {name} | {o.get('n')} | {f3(o.get('confidence'))} | "
                 f"{f3(o.get('agreement'))} | {f3(o.get('diversity'))} "
                 f"({f3(o.get('real_diversity'))}) | {f3(o.get('nearest_real_mean'))} / "
                 f"{f3(o.get('nearest_real_p05'))} | {f3(o.get('near_copies'))} | "
                 f"{f3(o.get('frechet'))} ({f3(o.get('frechet_real_vs_real'))}) |")
    L += ["", "Agreement per class (share of a class's synthetic clips that the real-data "
          "model assigns to that class):", "",
          "| pool | " + " | ".join(classes) + " | most often predicted as |",
          "|---" + "|---" * (len(classes) + 1) + "|"]
    for name, rep in q.items():
        if not isinstance(rep, dict) or "per_class" not in rep:
            continue
        pc = rep["per_class"]
        conf = np.asarray(rep.get("predicted_as") or np.zeros((len(classes),) * 2))
        top = conf.sum(0)
        most = ", ".join(f"{classes[i]} {int(top[i])}" for i in np.argsort(-top)[:3]
                         if top[i] > 0)
        L.append(f"| {name} | " + " | ".join(f3((pc.get(c) or {}).get("agreement"))
                                             for c in classes) + f" | {most} |")
    return L
