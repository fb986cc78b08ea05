"""Generative augmentation with a class-conditional log-mel diffusion model: suite
``aug-speech-diffusion``.

Design (``configs/aug-speech-diffusion.yaml``), RAVDESS speech on the EmoBox folds, the
classifier, subsets, statistics and result tables of ``aug-speech-tts``
(:mod:`emofuse.recipes.aug_tts`):

1. **Core and generator.** Per fold, a fixed speaker-stratified ``core`` share of the
   *training* fold (seed ``pool.seed``) is the only data the ``ddpm_logmel`` generator
   (:mod:`emofuse.augment.speech`) is fitted on; every run's training subset contains it, so
   the generator never sees a clip its run's classifier does not (and never a test clip: the
   pool's manifest is checked against the test fold). The generator (safetensors + card) and
   its pool (``pool.per_class`` Griffin-Lim WAV clips per class, manifest) are cached on disk,
   keyed by the settings and the core's ids.
2. **Runs.** For every fold, fraction and seed: the core plus a speaker-stratified share of
   the rest of the training fold (``fraction`` of the whole; the smallest fraction equal to
   ``core`` means the core alone, the same for every seed); arms add ``per_class`` clips per
   class (of ``classes`` only when given) drawn per seed from the fold's pool.
3. **Quality** on the first fold's pool (the gates of :mod:`emofuse.augment.quality` in the PCA
   space of the fused vector, confidence of that fold's 100 % real-data model); nearest-real
   distances are also taken to the core alone (the generator's training data: memorisation).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..config import Params, RunConfig
from ..corpora import Record
from ..evaluate.metrics import classification_metrics
from ._aug_params import Arm, Fraction, Lda, Primary, generator_kwargs
from ._aug_speech_report import _full_proba, _quality, _result
from .aug_tts import (SpeechAugSuite, SpeechQuick, TtsPool, _draw, _fold_mean, _pool_features,
                      speaker_stratified)

__all__ = ["AugSpeechDiffusion", "aug_speech_diffusion", "with_core", "AugDiffusionParams"]

POOL = "ddpm"
ENGINES = (POOL, "piper", "espeak")


def _ddpm_kwargs(v: dict[str, Any]) -> dict[str, Any]:
    return generator_kwargs("ddpm_logmel", v)


class DiffArm(Arm):
    """An arm: clips of the fold's DDPM pool (and/or the TTS pools) added per class."""

    per_class: int = Field(default=10, ge=0)   #: clips per class
    classes: list[str] | None = None           #: only these classes get clips
    engines: list[str] = Field(default_factory=lambda: [POOL])   #: ddpm, piper, espeak

    @field_validator("engines")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        if not v or set(v) - set(ENGINES):
            raise ValueError(f"{v}; choose from {', '.join(ENGINES)}")
        return v


class DiffPool(Params):
    """The pool of each fold's DDPM."""

    per_class: int = Field(default=20, gt=0)   #: clips per class
    seed: int = Field(default=0, ge=0)         #: core draw, fit and sampling


class DiffQuick(SpeechQuick):
    """``--quick``: tiny pools, doses, fractions, seeds and generator."""

    generator: dict[str, Any] = Field(default_factory=lambda: {
        "steps": 3, "griffin_lim_iter": 2, "ddim_steps": 3, "crops": 1})

    @field_validator("generator")
    @classmethod
    def _generator_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _ddpm_kwargs(v)


class AugDiffusionParams(Params):
    """``model.params`` of ``aug-speech-diffusion``."""

    lda: Lda = Field(default_factory=Lda)
    fractions: list[Fraction] = Field(default_factory=lambda: [0.1, 0.25, 1.0], min_length=1)
    core: Fraction = 0.1                     #: the generator's share of each training fold
    folds: list[int] | None = None           #: None: every fold of the protocol
    generator: dict[str, Any] = Field(default_factory=dict)   #: ``ddpm_logmel`` parameters
    pool: DiffPool = Field(default_factory=DiffPool)
    #: the emotional-TTS pools of aug-speech-tts (same settings, so its cached pools are reused)
    tts_pool: TtsPool = Field(default_factory=TtsPool)
    arms: dict[str, DiffArm] = Field(default_factory=lambda: {
        "real": DiffArm(), "ddpm": DiffArm(per_class=10)})
    primary: Primary = Field(default_factory=lambda: Primary(arm=POOL, fraction=0.1))
    bootstrap: int = Field(default=1000, ge=1)
    pca: int = Field(default=64, gt=0)       #: quality gates' principal components
    quick: DiffQuick = Field(default_factory=DiffQuick)
    pool_dir: str | None = None              #: pools' folder (None: the cache)

    @field_validator("generator")
    @classmethod
    def _generator_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _ddpm_kwargs(v)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if "real" not in self.arms or self.arms["real"].model_fields_set:
            raise ValueError("arms needs 'real: {}' (real data only)")
        # real data only (built unvalidated: engines [] is refused for every other arm)
        self.arms["real"] = DiffArm.model_construct(engines=[], per_class=0, classes=None)
        if not self.core <= min(self.fractions):
            raise ValueError("need 0 < core <= every fraction <= 1")
        return self

    def arm_dicts(self) -> dict[str, dict[str, Any]]:
        """The arms as the speech result reads them (every one inductive, vs real)."""
        return {a: {"engines": s.engines, "per_class": s.per_class, "classes": s.classes,
                    "setting": "inductive", "baseline": "real"} for a, s in self.arms.items()}


def with_core(train: Sequence[Record], core: Sequence[Record], classes: Sequence[str],
              fraction: float, core_fraction: float, seed: int) -> list[Record]:
    """The ``core`` plus a speaker-stratified share of the rest of ``train``, about
    ``fraction`` of ``train`` in all (the core alone when ``fraction <= core_fraction``)."""
    if fraction >= 1:
        return list(train)
    ids = {r.id for r in core}
    rest = [r for r in train if r.id not in ids]
    share = (fraction - core_fraction) / (1 - core_fraction)
    more = speaker_stratified(rest, classes, share, seed) if share > 1e-9 else []
    return list(core) + more


def _fold_pool(cfg: RunConfig, p: AugDiffusionParams, classes: Sequence[str], core: list[Record],
               split: Any, *, quick: bool, log: Callable[[str], None]) -> tuple[Any, Path]:
    """Fit the generator on ``core`` and generate the fold's pool (from the cache when
    there)."""
    from ..augment import build_generator, load_set
    from ..augment.manifest import ids_digest
    from ..augment.speech import make_ddpm_set
    from ..paths import cache_dir

    n = p.quick.pool_per_class if quick else p.pool.per_class
    seed = p.pool.seed
    gparams = {**p.generator, **(p.quick.generator if quick else {})}
    key = json.dumps({"params": gparams, "n": n, "seed": seed, "classes": list(classes),
                      "core": ids_digest(r.id for r in core), "version": 2}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    root = Path(p.pool_dir) if p.pool_dir else cache_dir() / "augment"
    folder = (root / f"{cfg.data.corpus}-ddpm{'-quick' if quick else ''}"
              / f"fold{split.fold}-{digest}")
    if (folder / "manifest.json").is_file():
        sset = load_set(folder)
        log(f"fold {split.fold}: pool of {len(sset.items)} clips reused from {folder}")
        return sset, folder
    gen = build_generator("ddpm_logmel", **gparams)
    gen.fit(core, seed=seed, log=log)
    log(f"fold {split.fold}: generator fitted on {len(core)} core clips in "
        f"{gen.info['fit_s']} s ({gen.info['parameters']} parameters)")
    sset = make_ddpm_set(gen, {c: n for c in classes}, folder, seed=seed,
                         corpus=cfg.data.corpus,
                         part=f"fold {split.fold} training part, core {p.core:g} "
                              f"(speaker-stratified, seed {seed})", log=log)
    gen.save(folder / "generator", data={"corpus": cfg.data.corpus, "fold": split.fold,
                                         "part": sset.fitted_on["part"]})
    return sset, folder


class AugSpeechDiffusion(SpeechAugSuite, name="aug-speech-diffusion", modality="speech",
                         params={"model": AugDiffusionParams}):
    """RAVDESS speech: real data only vs real + class-conditional log-mel DDPM (DDIM,
    Griffin-Lim) fitted per fold on a training core, at 10/25/100 % of each training fold,
    shrinkage LDA on the fused vector, EmoBox folds"""

    def body(self) -> dict[str, Any]:
        from ..augment.manifest import to_records

        cfg, p, log, quick, seeds = self.cfg, self.p, self.log, self.quick, self.seeds
        fracs, feature, fparams = self.fractions, cfg.features.name, dict(cfg.features.params)
        data, vec, classes, splits, by_id, real_feat_s = self.real_vectors()
        log(f"{len(by_id)} utterances, {len(classes)} classes, folds {[s.fold for s in splits]},"
            f" seeds {seeds}, fractions {fracs}, core {p.core:g}")
        tts_pools = _tts_pools(cfg, p, classes, feature, fparams, data.cache, quick=quick,
                               log=log)
        memo: dict[str, Any] = {}
        fit_s: list[float] = []
        runs: dict[tuple[str, float], list[dict[str, Any]]] = {}
        generation: dict[str, Any] = {}
        first: dict[str, Any] = {}
        for split in splits:
            train = [by_id[i] for i in split.train]
            core = speaker_stratified(train, classes, p.core, p.pool.seed * 1000 + split.fold)
            sset, folder = _fold_pool(cfg, p, classes, core, split, quick=quick, log=log)
            to_records(sset, folder=folder, test_ids=split.test)    # refuses a leaking set
            t1, c1 = time.perf_counter(), time.process_time()
            X, y, ids = _pool_features(sset, folder, feature, fparams, classes, data.cache)
            pools = {POOL: {"set": sset, "X": X, "y": y, "ids": ids}, **tts_pools}
            generation[f"fold{split.fold}"] = {
                "clips": len(sset.items), "core_clips": len(core), "folder": str(folder),
                "fit_s": sset.extra.get("fit_s"), "fit_cpu_s": sset.extra.get("fit_cpu_s"),
                "parameters": sset.extra.get("parameters"),
                "final_loss": sset.extra.get("final_loss"),
                "ddim_s": sset.extra.get("sample_s"),
                "griffin_lim_s": sset.extra.get("griffin_lim_s"),
                "feature_s": round(time.perf_counter() - t1, 2),
                "feature_cpu_s": round(time.process_time() - c1, 2),
                "fitted_on_n": sset.fitted_on["n"], "created": sset.created}
            X_te = np.stack([vec[i] for i in split.test])
            y_te = np.array([classes.index(by_id[i].label) for i in split.test])
            for frac in fracs:
                for seed in seeds:
                    sub = with_core(train, core, classes, frac, p.core,
                                    seed * 1000 + split.fold)
                    _arms(p, classes, sub, vec, pools, seed, frac, split.fold, X_te, y_te,
                          runs, memo, fit_s, quick=quick)
                log(f"  fold {split.fold} fraction {frac:g}: " + "; ".join(
                    f"{a} UA {100 * _fold_mean(runs[(a, frac)], split.fold):.2f}"
                    for a in p.arms))
            if not first:
                first = {"split": split, "pools": pools, "core": core}
        quality = _diffusion_quality(first, by_id, vec, classes, runs, memo, n_pca=p.pca)
        result = _result(cfg, classes, runs, {}, quality, seeds, fracs, splits, self.timer,
                         arms=p.arm_dicts(), primary=(p.primary.arm, p.primary.fraction),
                         bootstrap=p.bootstrap,
                         settings={"lda": p.lda.model_dump(), "pool": p.pool.model_dump()},
                         pca=p.pca, fit_s=fit_s, real_feat_s=real_feat_s, quick=quick)
        result["generation"] = generation
        result["settings"]["generator"] = {**first["pools"][POOL]["set"].settings}
        result["settings"]["core"] = p.core
        result["protocol"] = result["protocol"].replace(
            "synthetic clips from text only (no corpus data), the same pool for every fold",
            f"synthetic clips from a DDPM fitted per fold on a fixed speaker-stratified "
            f"{100 * p.core:g} % core of the training fold that every subset contains")
        result["notes"] = render_notes(result)
        return result


aug_speech_diffusion = AugSpeechDiffusion.run


def _tts_pools(cfg: RunConfig, p: AugDiffusionParams, classes: Sequence[str], feature: str,
               fparams: Mapping[str, Any], cache: Any, *, quick: bool,
               log: Callable[[str], None]) -> dict[str, Any]:
    """The emotional-TTS pools the arms name (text only: one pool serves every fold), with the
    settings of ``aug-speech-tts`` so that its cached pools are reused."""
    from .aug_tts import _pool

    wanted = sorted({e for a in p.arms.values() for e in a.engines} - {POOL})
    out = {}
    for engine in wanted:
        sset, folder = _pool(cfg, classes, engine, pool=p.tts_pool,
                             quick_per_class=p.quick.pool_per_class, pool_dir=p.pool_dir,
                             quick=quick, log=log)
        X, y, ids = _pool_features(sset, folder, feature, fparams, classes, cache)
        out[engine] = {"set": sset, "X": X, "y": y, "ids": ids}
    return out


def _arms(p: AugDiffusionParams, classes: Sequence[str], sub: Sequence[Record],
          vec: Mapping[str, np.ndarray], pools: Mapping[str, Any], seed: int, frac: float,
          fold: int, X_te: np.ndarray, y_te: np.ndarray,
          runs: dict[tuple[str, float], list[dict[str, Any]]], memo: dict[str, Any],
          fit_s: list[float], *, quick: bool) -> None:
    """Fit and score every arm on one subset (real LDA fits shared between folds' arms by the
    subset's ids)."""
    from ..models import build_model

    Xs = np.stack([vec[r.id] for r in sub])
    ys = np.array([classes.index(r.label) for r in sub])
    base = f"{fold}|" + hashlib.sha256("|".join(r.id for r in sub).encode()).hexdigest()
    for arm, spec in p.arms.items():
        X, y, key, added = Xs, ys, base, {c: 0 for c in classes}
        if spec.engines:
            Xa, ya, added, chosen = _draw(
                pools, classes, seed, arm, engines=spec.engines,
                per_class=p.quick.per_class if quick else spec.per_class, only=spec.classes)
            if len(ya):
                X, y = np.concatenate([Xs, Xa]), np.concatenate([ys, ya])
            key = base + "|" + ",".join(chosen)
        if key not in memo:
            t1 = time.perf_counter()
            with warnings.catch_warnings():   # one-clip classes in tiny subsets
                warnings.simplefilter("ignore")
                memo[key] = build_model("lda", **p.lda.model_dump()).fit(X, y)
            fit_s.append(time.perf_counter() - t1)
        if arm == "real" and frac >= 1:
            memo[f"real_full|{fold}"] = memo[key]
        pred = _full_proba(memo[key], X_te, len(classes)).argmax(1)
        runs.setdefault((arm, frac), []).append(
            {"fold": fold, "seed": seed, "pred": pred, "y": y_te,
             "metrics": classification_metrics(y_te, pred, classes=classes), "added": added,
             "n_real": len(sub), "n_synthetic": int(sum(added.values()))})


def _diffusion_quality(first: Mapping[str, Any], by_id: Mapping[str, Record],
                       vec: Mapping[str, np.ndarray], classes: Sequence[str],
                       runs: Any, memo: Mapping[str, Any], *, n_pca: int) -> dict[str, Any]:
    """The gates of the first fold's pool (vs that fold's training part), plus nearest
    distances to the core alone (the generator's training data: memorisation check)."""
    from ..augment.quality import nearest_real

    split, pools, core = first["split"], first["pools"], first["core"]
    out = _quality(pools, split, by_id, vec, classes, memo.get(f"real_full|{split.fold}"),
                   n_pca=n_pca)
    R = np.stack([vec[r.id] for r in by_id.values() if r.id in set(split.train)]).astype(float)
    mu, sd = R.mean(0), R.std(0) + 1e-8
    C = (np.stack([vec[r.id] for r in core]) - mu) / sd
    S = (pools[POOL]["X"] - mu) / sd
    others = (np.stack([vec[i] for i in split.train if i not in {r.id for r in core}]) - mu) / sd
    out["memorisation"] = {
        "space": "standardised fused vector (fold training statistics)",
        "synthetic_to_core_mean": float(nearest_real(S, C).mean()),
        "rest_of_train_to_core_mean": float(nearest_real(others, C).mean()),
        "note": "synthetic clips much closer to the core than real held-out training clips "
                "are would indicate copies of the generator's training data"}
    return out


def render_notes(result: Mapping[str, Any]) -> str:
    """The aug-speech-tts tables with the diffusion's own intro and generation table."""
    from .aug_tts import render_notes as tts_notes

    text = tts_notes({**result, "generation": {}})
    core = result["settings"]["core"]
    text = text.replace(
        "The synthetic speech is generated from text alone (built-in neutral carrier "
        "sentences, prosody per emotion): it depends on no training or test item, so one pool "
        "serves every fold and cannot leak the test fold.",
        f"The synthetic speech comes from a class-conditional DDPM over log-mel segments "
        f"(DDIM sampling, Griffin-Lim inversion to WAV), fitted per fold on a fixed "
        f"speaker-stratified {100 * core:g} % core of the training fold only; every run's "
        f"training subset contains that core (at {100 * core:g} % the subset *is* the core, "
        "the same for every seed: there the seeds vary only the synthetic draw). No test "
        "clip reaches the generator (checked against each test fold's ids)."
        + (" Arms naming piper or espeak add emotional-TTS clips from the pools of "
           "aug-speech-tts (text only, one pool for every fold); an arm with several "
           "generators shares its clips per class between them in turn."
           if any(set(a["engines"]) - {POOL} for a in result["arms"].values()) else ""))
    text = re.sub(r" Setting \*spknorm\*:.*?\(the speech recipe's spknorm\)\.", "", text)
    head, _, tail = text.partition("## Generation")
    _, _, tail = tail.partition("## Quality gates")
    g = result["generation"]
    gs = result["settings"].get("generator", {})
    L = ["## Generation (per fold, one thread; the machine's 2 cores shared with other jobs)",
         "", f"Generator: {next(iter(g.values()), {}).get('parameters')} parameters, "
             f"{gs.get('steps')} AdamW steps of batch {gs.get('batch')}, T = {gs.get('T')} "
             f"(cosine), DDIM {gs.get('ddim_steps')} steps (eta {gs.get('eta')}), "
             f"classifier-free guidance {gs.get('guidance')}, {gs.get('n_mels')} mel bands x "
             f"{gs.get('frames')} frames (hop {gs.get('hop')}), Griffin-Lim "
             f"{gs.get('griffin_lim_iter')} iterations.", "",
         "| fold | core clips | fit wall s (CPU s) | final loss | clips | DDIM s | "
         "Griffin-Lim s | features s |", "|---|---|---|---|---|---|---|---|"]
    for f, x in g.items():
        L.append(f"| {f} | {x['core_clips']} | {x['fit_s']} ({x['fit_cpu_s']}) | "
                 f"{x['final_loss']} | {x['clips']} | {x['ddim_s']} | {x['griffin_lim_s']} | "
                 f"{x['feature_s']} |")
    m = result["quality"].get("memorisation") or {}
    if m:
        L += ["", f"Memorisation check ({m['space']}): mean distance of a synthetic clip to "
                  f"its nearest core clip {m['synthetic_to_core_mean']:.2f}, of a real "
                  f"non-core training clip {m['rest_of_train_to_core_mean']:.2f}."]
    return head + "\n".join(L) + "\n\n## Quality gates" + tail
