"""Face augmentation ablation: suite ``aug-face`` (real vs real + class-conditional GAN faces).

Design (``configs/aug-face.yaml``), FER2013's official usages (Training fits, PrivateTest is
scored once per run; PublicTest is not used: every setting is fixed in advance):

1. **Core.** A class-stratified ``core_fraction`` of Training is drawn once
   (``protocol.seed``); every training subset below contains it.
2. **Pool.** The ``cgan_face`` generator (:mod:`emofuse.augment.face`) is fitted on the core
   only and samples ``pool_per_class`` faces per class once; the pool is a synthetic set on
   disk (PNGs, manifest, weights, grid), cached by content and re-used. So the generator never
   sees a face outside any run's own training data, and never a PublicTest/PrivateTest face.
3. **Model.** A cheap classifier: histograms of oriented gradients (6x6-pixel cells, 9 bins,
   our own numpy code), PCA fitted on the core, standardised, multinomial logistic regression.
4. **Runs.** For every fraction (class-stratified, core included) and seed, "real" is fitted
   on the subset; an arm adds ``source`` items (``cgan``: pool faces drawn per seed;
   ``flip``: horizontally flipped copies of the subset's own faces, the non-generative
   control) per class, ``per_class`` each or, with ``per_class: plan``, what the balancing
   planner (``balance``) says each class needs (capped by ``cap``); ``classes`` limits an arm
   to some classes; ``class_weight: balanced`` fits with balanced class weights; ``baseline``
   names the arm it is compared with (default ``real``).

Statistics as in ``aug-text`` (:func:`emofuse.recipes.augment.paired_tests`,
:func:`~emofuse.recipes.augment.bootstrap_diff`); the notes are rendered by
:func:`emofuse.recipes.augment.render_notes` plus a disgust-recall table and the pool's quality
gates (:mod:`emofuse.augment.quality`, in the HOG-PCA space, confidence of the real-data model at
100 %).
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
from ..evaluate.metrics import classification_metrics
from ._aug_params import (Arm, Balance, Classifier, Fraction, Primary, check_baselines, dump_arms,
                          generator_kwargs)
from ._common import Timer
from .face import FaceFeatureParams, FaceSuite

__all__ = ["AugFace", "aug_face", "hog", "AugFaceParams", "DEFAULTS"]


class FaceArm(Arm):
    """An arm of the ablation."""

    source: Literal["cgan", "flip"] | None = None     #: where added faces come from (None: none)
    per_class: Literal["plan"] | int = "plan"          #: added per class, or the planner's need
    classes: list[str] | None = None                   #: only these classes get added faces
    class_weight: Literal["balanced"] | None = None    #: balanced class weights
    baseline: str = "real"                             #: the arm it is compared with


class Hog(Params):
    """Histograms of oriented gradients (:func:`hog`)."""

    cell: int = Field(default=6, gt=0)   #: cell side in pixels
    bins: int = Field(default=9, gt=0)   #: orientation bins


class FaceGenerator(Params):
    """The face generator fitted on the core."""

    name: str = "cgan_face"                                  #: registered generator
    params: dict[str, Any] = Field(default_factory=dict)     #: its keyword parameters

    @model_validator(mode="after")
    def _known_params(self) -> Self:
        generator_kwargs(self.name, self.params, where="params")
        return self


class FaceQuick(Params):
    """``--quick``: a tiny generator fit, pool and run."""

    iterations: int = Field(default=4, gt=0)
    pool_per_class: int = Field(default=6, gt=0)
    cap: int = Field(default=6, ge=0)
    seeds: int = Field(default=2, gt=0)
    fractions: list[Fraction] = Field(default_factory=lambda: [0.5, 1.0], min_length=1)


class AugFaceParams(Params):
    """``model.params`` of ``aug-face``."""

    hog: Hog = Field(default_factory=Hog)
    pca: int = Field(default=160, gt=0)                   #: PCA components (fitted on the core)
    classifier: Classifier = Field(default_factory=lambda: Classifier(max_iter=300))
    fractions: list[Fraction] = Field(default_factory=lambda: [0.1, 0.25, 1.0], min_length=1)
    core_fraction: Fraction = 0.1                         #: the generator's training core
    generator: FaceGenerator = Field(default_factory=FaceGenerator)
    pool_per_class: int = Field(default=1000, gt=0)       #: faces sampled per class, once
    arms: dict[str, FaceArm] = Field(default_factory=lambda: {
        "real": FaceArm(), "cgan": FaceArm(source="cgan", per_class="plan")})
    balance: Balance = Field(default_factory=lambda: Balance(strategy="fraction", fraction=0.3))
    cap: int = Field(default=1000, ge=0)                  #: most faces added to one class
    bootstrap: int = Field(default=1000, ge=1)
    primary: Primary = Field(default_factory=lambda: Primary(arm="cgan", fraction=0.1))
    quick: FaceQuick = Field(default_factory=FaceQuick)
    pool_dir: str | None = None                           #: the pool's folder (None: cache)

    @model_validator(mode="after")
    def _arms_consistent(self) -> Self:
        if "real" not in self.arms:
            raise ValueError("arms needs the 'real' arm (real data only)")
        check_baselines(self.arms)
        if self.arms["real"].source or self.arms["real"].class_weight:
            raise ValueError("arms.real must be real data only, unweighted")
        return self


#: the defaults as a plain mapping (``emofuse augment face`` builds its encoder from it)
DEFAULTS: dict[str, Any] = AugFaceParams().model_dump()


def hog(x: np.ndarray, *, cell: int = 6, bins: int = 9) -> np.ndarray:
    """Unsigned-gradient orientation histograms of ``(n, h, w)`` images per ``cell``-pixel
    cell (square-rooted, L2-normalised per image): ``(n, (h/cell)*(w/cell)*bins)``."""
    x = np.asarray(x, np.float32)
    out = []
    for k in range(0, len(x), 2048):
        a = x[k:k + 2048]
        gx = np.zeros_like(a)
        gy = np.zeros_like(a)
        gx[:, :, 1:-1] = a[:, :, 2:] - a[:, :, :-2]
        gy[:, 1:-1] = a[:, 2:] - a[:, :-2]
        mag = np.hypot(gx, gy)
        b = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) / np.pi * bins).astype(int), bins - 1)
        n, h, w = a.shape
        ch, cw = h // cell, w // cell
        hist = np.zeros((n, ch, cw, bins), np.float32)
        mag = mag[:, :ch * cell, :cw * cell].reshape(n, ch, cell, cw, cell)
        b = b[:, :ch * cell, :cw * cell].reshape(n, ch, cell, cw, cell)
        for j in range(bins):
            hist[..., j] = (mag * (b == j)).sum((2, 4))
        f = np.sqrt(hist.reshape(n, -1))
        out.append(f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-6))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class _Encoder:
    """HOG -> PCA (fitted on the core) -> standardised; our own embedding of faces."""

    def __init__(self, p: AugFaceParams | Mapping[str, Any], core_x: np.ndarray) -> None:
        from sklearn.decomposition import PCA

        p = AugFaceParams.of(p)
        self.hog_opts = p.hog.model_dump()
        h = hog(core_x, **self.hog_opts)
        self.pca = PCA(min(p.pca, len(h) - 1, h.shape[1]), random_state=0).fit(h)
        z = self.pca.transform(h)
        self.mu, self.sd = z.mean(0), z.std(0) + 1e-6

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((self.pca.transform(hog(x, **self.hog_opts)) - self.mu) / self.sd
                ).astype(np.float32)


def _fit(X: np.ndarray, y: np.ndarray, K: int, p: AugFaceParams | Mapping[str, Any],
         cw: str | None) -> Any:
    from .augment import _fit_lr

    c = AugFaceParams.of(p).classifier
    return _fit_lr(X, y, K, c.C, c.max_iter, cw)


def _pool(cfg: RunConfig, p: AugFaceParams, x: np.ndarray, y: np.ndarray, ids: list[str],
          classes: list[str], corpus: str, *, quick: bool, log: Callable[[str], None]) -> Any:
    from ..augment import build_generator, load_set
    from ..augment.face import make_face_set
    from ..paths import cache_dir

    name, params = p.generator.name, dict(p.generator.params)
    per_class = p.pool_per_class
    if quick:
        params["iterations"] = p.quick.iterations
        per_class = p.quick.pool_per_class
    key = json.dumps({"gen": name, "params": params, "per_class": per_class,
                      "ids": sorted(ids), "seed": cfg.protocol.seed}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    root = Path(p.pool_dir) if p.pool_dir else cache_dir() / "augment" / (
        corpus + ("-quick" if quick else ""))
    folder = root / f"cgan-{digest}"
    if (folder / "manifest.json").is_file():
        log(f"pool: reused {folder}")
        sset = load_set(folder)
    else:
        gen = build_generator(name, **params)
        log(f"fitting {name} on the core ({len(x)} faces)")
        gen.fit_arrays(x, y, classes, ids=ids, seed=cfg.protocol.seed, log=log)
        sset = make_face_set(gen, {c: per_class for c in classes}, folder,
                             seed=cfg.protocol.seed, corpus=corpus, part="Training/core",
                             core_fraction=p.core_fraction)
        log(f"pool: {len(sset.items)} faces, fit {gen.fit_seconds} s -> {folder}")
    from ..media.image import load_image

    imgs = np.stack([load_image(str(folder / it.path), mode="L") for it in sset.items])
    labels = np.array([classes.index(it.label) for it in sset.items], int)
    return sset, folder, imgs, labels


class AugFace(FaceSuite, name="aug-face",
              params={"features": FaceFeatureParams, "model": AugFaceParams}):
    """face augmentation ablation on FER2013: real vs real + projection-cGAN faces (+
    flip-duplicate control, class weighting) at 10/25/100 % of Training"""

    def quick_seed_count(self) -> int:
        return self.p.quick.seeds

    def body(self) -> dict[str, Any]:
        from ..augment import plan_balance
        from ..augment.quality import quality_report
        from .augment import _core, _pct, _torch_threads, stratified_subset

        cfg, p, log, quick, seeds = self.cfg, self.p, self.log, self.quick, self.seeds
        fracs, cap = (list(p.quick.fractions), p.quick.cap) if quick else (list(p.fractions),
                                                                            p.cap)
        _torch_threads(cfg)
        records, classes = self.fer_records()
        K = len(classes)
        _, _, _, (train_recs, _, test_recs), arrays = self.fer_parts(records, classes)
        (tx, ty, _), _, (ex, ey, _) = arrays
        train_ids = [r.id for r in train_recs]  # arrays keep every training image (no skips)
        core = _core(ty, 1, cfg.protocol.seed) if quick else stratified_subset(
            ty, p.core_fraction, core=np.zeros(0, int), seed=cfg.protocol.seed)
        sset, folder, pool_x, pool_y = _pool(cfg, p, tx[core], ty[core],
                                             [train_ids[i] for i in core], classes,
                                             cfg.data.corpus, quick=quick, log=log)
        t0 = time.perf_counter()
        enc = _Encoder(p, tx[core])
        Etr, Ete, Epool = enc(tx), enc(ex), enc(pool_x)
        Eflip = enc(tx[:, :, ::-1])
        embed_s = time.perf_counter() - t0
        runs: dict[tuple[str, float], list[dict[str, Any]]] = {}
        memo: dict[str, Any] = {}
        fit_s: list[float] = []
        real_full = None
        for frac in fracs:
            for seed in seeds:
                sub = stratified_subset(ty, frac, core=core, seed=1000 * seed + 17)
                ys = ty[sub]
                counts = {c: int(np.sum(ys == i)) for i, c in enumerate(classes)}
                plan = plan_balance(counts, **p.balance.kwargs())
                rng = np.random.default_rng(seed)
                for arm, spec in p.arms.items():
                    Xa, ya = [Etr[sub]], [ys]
                    added = {c: 0 for c in classes}
                    if spec.source:
                        for i, c in enumerate(classes):
                            if spec.classes and c not in spec.classes:
                                continue
                            n = plan.needed.get(c, 0) if spec.per_class == "plan" else int(
                                spec.per_class)
                            if spec.source == "cgan":
                                cand = np.flatnonzero(pool_y == i)
                                E = Epool
                            else:
                                cand = sub[ys == i]
                                E = Eflip
                            n = min(int(n), cap, len(cand))
                            if n <= 0:
                                continue
                            pick = rng.choice(cand, n, replace=False)
                            Xa.append(E[pick])
                            ya.append(np.full(n, i))
                            added[c] = n
                    key = hashlib.sha256(sub.tobytes() + str(spec.class_weight).encode()
                                         + b"|".join(a.tobytes() for a in Xa[1:])).hexdigest()
                    if key not in memo:
                        t1 = time.perf_counter()
                        memo[key] = _fit(np.concatenate(Xa), np.concatenate(ya), K, p,
                                         spec.class_weight)
                        fit_s.append(time.perf_counter() - t1)
                    model = memo[key]
                    pred = model.predict_proba(Ete).argmax(1)
                    m = classification_metrics(ey, pred, classes=classes)
                    runs.setdefault((arm, frac), []).append(
                        {"seed": seed, "pred": pred, "metrics": m, "added": added,
                         "n_real": int(len(sub)), "n_synthetic": int(sum(added.values()))})
                    if arm == "real" and frac == max(fracs):
                        real_full = model
                log(f"  fraction {frac:g} seed {seed}: " + "; ".join(
                    f"{a} UA {100 * runs[(a, frac)][-1]['metrics']['ua']:.2f}"
                    for a in p.arms))
            memo.clear()
        quality = {"cgan": {"candidates": int(len(pool_y)), "kept": int(len(pool_y)),
                            "gates_candidates": quality_report(
            Epool, pool_y, Etr, ty, classes, proba=real_full.predict_proba(Epool))}}
        from ..evaluate.results import results_dir

        grid = results_dir() / f"aug-face{'-quick' if quick else ''}-grid.png"
        grid.parent.mkdir(parents=True, exist_ok=True)
        grid.write_bytes((folder / "grid.png").read_bytes())
        return _result(cfg, p, classes, ey, runs, sset, folder, quality, seeds, fracs,
                       self.timer, embed_s=embed_s, fit_s=fit_s, quick=quick, grid=str(grid),
                       pct=_pct)


aug_face = AugFace.run


def _result(cfg: RunConfig, p: AugFaceParams, classes: list[str], y_te: np.ndarray,
            runs: dict, sset: Any, folder: Path, quality: dict, seeds: list[int],
            fracs: list[float], timer: Timer, *, embed_s: float, fit_s: list[float],
            quick: bool, grid: str, pct: Callable[[float], str]) -> dict[str, Any]:
    from types import SimpleNamespace

    from . import augment as aug

    task = SimpleNamespace(classes=classes, corpus=cfg.data.corpus, y={"test": y_te})
    arms = {a: {"generators": [s["source"]] if s["source"] else [],
                "class_weight": s["class_weight"], "baseline": s["baseline"],
                "filter": "none", "per_class": s["per_class"], "classes": s["classes"]}
            for a, s in dump_arms(p.arms).items()}
    prim_frac = p.primary.fraction if p.primary.fraction in fracs else min(fracs)
    pools = {"cgan": {"set": sset, "folder": str(folder), "requested": sset.settings.get(
        "requested")}}
    sset.extra.setdefault("cpu_s", sset.extra.get("fit_s"))
    settings = {"hog": p.hog.model_dump(), "pca": p.pca, "classifier": p.classifier.model_dump(),
                "core_fraction": p.core_fraction, "pool_per_class": p.pool_per_class,
                "balance": p.balance.kwargs(), "cap": p.cap, "bootstrap": p.bootstrap,
                "generator": p.generator.model_dump()}
    result = aug._result(cfg, task, runs, pools, quality, seeds, timer, arms=arms, fracs=fracs,
                         primary=(p.primary.arm, prim_frac), core_per_class=None,
                         bootstrap=100 if quick else p.bootstrap, settings=settings,
                         embed_s=embed_s, fit_s=fit_s, quick=quick)
    result["protocol"] = (
        f"FER2013 official usages: class-stratified subsets of Training "
        f"({', '.join(f'{100 * f:g} %' for f in fracs)}), each containing the "
        f"{100 * p.core_fraction:g} % core the cGAN was fitted on; PrivateTest scored once per "
        f"run; PublicTest unused (fixed settings); per_fold = one entry per seed")
    result["generator_fit_s"] = sset.extra.get("fit_s")
    result["grid_png"] = grid
    d = "disgust"
    notes = result["notes"].replace("Embedding (MiniLM, cached)", "HOG-PCA embedding of every "
                                    "face (real, flipped, pool)").replace(
        " | kept: filter real / balanced |", " | kept (no filter) |").replace(
        "filter = real-data model at the largest fraction, seed of the first run",
        "no filter; confidence = real-data model at the largest fraction, first seed")
    L = [notes, "", "## Disgust recall (test %, mean ± std over seeds; Δ vs baseline)",
         "", "| fraction | arm | disgust recall | Δ |", "|---|---|---|---|"]
    if d in classes:
        for frac in fracs:
            for arm in arms:
                rs = runs[(arm, frac)]
                v = np.array([r["metrics"]["per_class"][d]["recall"] for r in rs])
                b = np.array([r["metrics"]["per_class"][d]["recall"]
                              for r in runs[(arms[arm]["baseline"], frac)]])
                delta = "–" if arm == "real" else f"{100 * (v - b).mean():+.1f}"
                L.append(f"| {100 * frac:g} % | {arm} | {100 * v.mean():.1f} ± "
                         f"{100 * (v.std(ddof=1) if len(v) > 1 else 0):.1f} | {delta} |")
    L += ["", f"Generator: {sset.generator} fitted on {sset.fitted_on.get('n')} core faces in "
          f"{sset.extra.get('fit_s')} s (one CPU thread); pool {len(sset.items)} faces; "
          f"sample grid: {Path(grid).name}. Classifier: HOG + PCA + logistic regression; "
          "quality gates in that HOG-PCA space (our own encoder)."]
    result["notes"] = "\n".join(L)
    return result
