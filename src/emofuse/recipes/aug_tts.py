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
from typing import Any, Literal, Self

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..config import Params, RunConfig
from ..corpora import Record
from ..evaluate.metrics import classification_metrics
from ._aug_params import (Arm, Fraction, Lda, Primary, check_baselines, dump_arms,
                          generator_kwargs)
from ._aug_speech_report import _full_proba, _quality, _result, render_notes
from ._suite import Suite

__all__ = ["SpeechAugSuite", "AugSpeechTts", "aug_speech_tts", "speaker_stratified", "AugTtsParams", "SpeechArm", "TtsPool",
           "SpeechQuick", "render_notes"]


class SpeechArm(Arm):
    """An arm: synthetic clips added to every run's real subset."""

    engines: list[str] | None = None    #: pools drawn from (None: none for real, else all)
    per_class: int | None = Field(default=None, ge=0)   #: clips per class (None: 40, real 0)
    classes: list[str] | None = None    #: only these classes get clips (None: every class)
    setting: Literal["inductive", "spknorm"] = "inductive"   #: per-speaker standardisation
    baseline: str = "real"              #: the arm it is compared with

    @field_validator("engines")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        from ..augment.tts import ENGINES

        if v and (bad := [e for e in v if e not in ENGINES]):
            raise ValueError(f"unknown {bad}; known: {', '.join(ENGINES)}")
        return v


class TtsPool(Params):
    """The emotional-TTS pool of each engine, generated once from text alone."""

    per_class: int = Field(default=60, gt=0)   #: clips per class and engine
    seed: int = Field(default=0, ge=0)
    generator: dict[str, Any] = Field(default_factory=dict)   #: ``tts`` generator parameters

    @field_validator("generator")
    @classmethod
    def _generator_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "engines" in v:
            raise ValueError("generator.engines: set per arm (arms.*.engines)")
        return generator_kwargs("tts", v)


class SpeechQuick(Params):
    """``--quick``: tiny pools, doses, fractions and seeds."""

    pool_per_class: int = Field(default=2, gt=0)
    per_class: int = Field(default=2, ge=0)
    fractions: list[Fraction] = Field(default_factory=lambda: [0.5, 1.0], min_length=1)
    seeds: int = Field(default=2, gt=0)


class AugTtsParams(Params):
    """``model.params`` of ``aug-speech-tts``."""

    lda: Lda = Field(default_factory=Lda)
    fractions: list[Fraction] = Field(default_factory=lambda: [0.1, 0.25, 1.0], min_length=1)
    folds: list[int] | None = None            #: None: every fold of the protocol
    pool: TtsPool = Field(default_factory=TtsPool)
    arms: dict[str, SpeechArm] = Field(default_factory=lambda: {
        "real": SpeechArm(), "tts": SpeechArm(engines=["piper", "espeak"], per_class=40)})
    primary: Primary = Field(default_factory=lambda: Primary(arm="tts", fraction=0.1))
    bootstrap: int = Field(default=1000, ge=1)
    pca: int = Field(default=64, gt=0)        #: quality gates' principal components
    quick: SpeechQuick = Field(default_factory=SpeechQuick)
    pool_dir: str | None = None               #: pools' folder (None: the cache)

    @model_validator(mode="after")
    def _arms_consistent(self) -> Self:
        from ..augment.tts import ENGINES

        if "real" not in self.arms or self.arms["real"].model_fields_set:
            raise ValueError("arms needs 'real: {}' (real data only)")
        for arm, spec in self.arms.items():
            if spec.engines is None:
                spec.engines = [] if arm == "real" else list(ENGINES)
            if spec.per_class is None:
                spec.per_class = 40 if spec.engines else 0
        check_baselines(self.arms)
        return self


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




def _pool(cfg: RunConfig, classes: Sequence[str], engine: str, *, pool: TtsPool,
          quick_per_class: int, pool_dir: str | None, quick: bool,
          log: Callable[[str], None]) -> tuple[Any, Path]:
    """The synthetic set of ``engine`` (from the cache when there): ``pool.per_class`` clips
    per class (``quick_per_class`` in --quick)."""
    from ..augment import build_generator, load_set
    from ..augment.tts import PROSODY, make_tts_set
    from ..paths import cache_dir

    n = quick_per_class if quick else pool.per_class
    seed = pool.seed
    gparams = {**pool.generator, "engines": [engine]}
    key = json.dumps({"params": gparams, "n": n, "seed": seed, "classes": list(classes),
                      "prosody": PROSODY, "version": 1}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    root = Path(pool_dir) if pool_dir else cache_dir() / "augment"
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


class SpeechAugSuite(Suite):
    """The speech augmentation suites' shared start: smoke-run seeds and fractions from the
    typed params (``quick.seeds``, ``quick.fractions``), and the real utterances' feature
    vectors on the folds left once unreadable files are dropped."""

    def quick_seed_count(self) -> int:
        return self.p.quick.seeds

    @property
    def fractions(self) -> list[float]:
        return list(self.p.quick.fractions) if self.quick else list(self.p.fractions)

    def real_vectors(self) -> tuple[Any, dict[str, np.ndarray], list[str], list[Any],
                                    dict[str, Record], float]:
        """``(data, vectors by id, classes, usable folds, records by id, feature seconds)``."""
        from ._speech_fit import SpeechData

        records, classes, splits = self.fold_records()
        data = SpeechData(records)
        t0 = time.perf_counter()
        vec = data.vectors(self.cfg.features.name, dict(self.cfg.features.params))
        seconds = time.perf_counter() - t0
        splits = self.usable_folds(splits, set(vec), folds=self.p.folds)
        by_id = {r.id: r for r in data.records if r.id in vec}
        return data, vec, classes, splits, by_id, seconds


class AugSpeechTts(SpeechAugSuite, name="aug-speech-tts", modality="speech",
                   params={"model": AugTtsParams}):
    """RAVDESS speech: real data only vs real + emotional TTS (piper, espeak-ng) at 10/25/100 %
    of each training fold, shrinkage LDA on the fused vector, EmoBox folds"""

    def body(self) -> dict[str, Any]:
        from ..augment.manifest import to_records
        from ..models import build_model

        cfg, p, log, quick, seeds = self.cfg, self.p, self.log, self.quick, self.seeds
        fracs, feature, fparams = self.fractions, cfg.features.name, dict(cfg.features.params)
        data, vec, classes, splits, by_id, real_feat_s = self.real_vectors()
        log(f"{len(by_id)} utterances, {len(classes)} classes, folds {[s.fold for s in splits]},"
            f" seeds {seeds}, fractions {fracs}; real features {real_feat_s:.0f} s")

        # pools: one per engine, generated once (no corpus data), features cached by content
        engines = sorted({e for a in p.arms.values() for e in a.engines or ()})
        pools: dict[str, dict[str, Any]] = {}
        for e in engines:
            sset, folder = _pool(cfg, classes, e, pool=p.pool,
                                 quick_per_class=p.quick.pool_per_class, pool_dir=p.pool_dir,
                                 quick=quick, log=log)
            for s in splits:   # the set names no test item (it names none at all)
                to_records(sset, folder=folder, test_ids=s.test)
            t1, c1 = time.perf_counter(), time.process_time()
            X, y, ids = _pool_features(sset, folder, feature, fparams, classes, data.cache)
            pools[e] = {"set": sset, "folder": str(folder), "X": X, "y": y, "ids": ids,
                        "feature_s": round(time.perf_counter() - t1, 2),
                        "feature_cpu_s": round(time.process_time() - c1, 2)}
            log(f"pool {e}: {len(y)} clips, features {pools[e]['feature_s']} s")
        spk = any(a.setting == "spknorm" for a in p.arms.values())
        vec_n = _speaker_normalised(vec, {i: str(r.speaker) for i, r in by_id.items()}) \
            if spk else {}
        for e, pl in pools.items():
            if spk:
                who = {it.id: f"{e}:{it.extra.get('speaker')}" for it in pl["set"].items}
                xn = _speaker_normalised(dict(zip(pl["ids"], pl["X"])), who)
                pl["Xn"] = np.stack([xn[i] for i in pl["ids"]])

        lda = p.lda.model_dump()
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
                    for arm, spec in p.arms.items():
                        setting = spec.setting
                        src = vec_n if setting == "spknorm" else vec
                        Xs = np.stack([src[r.id] for r in sub])
                        key = f"{setting}|{sub_key}"
                        if not spec.engines:
                            model = fit(Xs, ys, key)
                            added = {c: 0 for c in classes}
                            if frac == 1.0:
                                real_full[(split.fold, setting)] = model
                        else:
                            Xa, ya, added, chosen = _draw(
                                pools, classes, seed, arm, engines=spec.engines,
                                per_class=p.quick.per_class if quick else spec.per_class,
                                only=spec.classes, x_key="Xn" if setting == "spknorm" else "X")
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
                    for a in p.arms))
        f1 = splits[0].fold
        quality = _quality(pools, splits[0], by_id, vec, classes,
                           real_full.get((f1, "inductive")), n_pca=p.pca)
        if vec_n:
            quality["spknorm"] = _quality(pools, splits[0], by_id, vec_n, classes,
                                          real_full.get((f1, "spknorm")), n_pca=p.pca,
                                          x_key="Xn")
        return _result(cfg, classes, runs, pools, quality, seeds, fracs, splits, self.timer,
                       arms=dump_arms(p.arms), primary=(p.primary.arm, p.primary.fraction),
                       bootstrap=p.bootstrap,
                       settings={"lda": p.lda.model_dump(), "pool": p.pool.model_dump()},
                       pca=p.pca, fit_s=fit_s, real_feat_s=real_feat_s, quick=quick)


aug_speech_tts = AugSpeechTts.run


def _fold_mean(rs: Sequence[Mapping[str, Any]], fold: int) -> float:
    return float(np.mean([r["metrics"]["ua"] for r in rs if r["fold"] == fold]))


def _speaker_normalised(vectors: Mapping[str, np.ndarray], speaker: Mapping[str, str]
                        ) -> dict[str, np.ndarray]:
    """Every vector standardised by the mean and std of all its speaker's vectors (unlabelled;
    the ``spknorm`` setting of the speech recipe; a TTS voice counts as a speaker)."""
    from ..inference.speech_models import vector_stats

    groups: dict[str, list[str]] = {}
    for i in vectors:
        groups.setdefault(speaker[i], []).append(i)
    out = {}
    for ids in groups.values():
        st = vector_stats(np.stack([vectors[i] for i in ids]))
        for i in ids:
            out[i] = ((vectors[i] - st[0]) / st[1]).astype(np.float32)
    return out


def _draw(pools: Mapping[str, Any], classes: Sequence[str], seed: int, arm: str, *,
          engines: Sequence[str], per_class: int, only: Sequence[str] | None,
          x_key: str = "X") -> tuple[np.ndarray, np.ndarray, dict[str, int], list[str]]:
    """``per_class`` synthetic clips per class (of ``only`` when the arm names classes),
    shared out between the arm's ``engines`` in turn, drawn per seed (the same for every fold
    and fraction)."""
    per = int(per_class)
    h = int(hashlib.sha256(f"{arm}|{seed}".encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(h)
    engs = list(engines)
    Xa, ya, chosen = [], [], []
    added = {c: 0 for c in classes}
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

