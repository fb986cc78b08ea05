"""Speech augmentation with the adversarial-autoencoder classifier: suite ``aug-speech-aaec``.

The AAEC paper's self-comparison on RAVDESS speech (``configs/aug-speech-aaec.yaml``):
**AAEC**, **AAE_C** (no discriminator), **AAE+C** (the classifier trained afterwards on the
frozen autoencoder's outputs), **AAEC'** (plain decoder, ``X' = Decoder(Z)``) and the
**classifier alone**, all in :mod:`emofuse.augment.aaec` (one generator class, ``variant``).

Protocol: speaker-independent folds (EmoBox RAVDESS folds, ``model.params.folds`` may pick a
subset); in every fold the validation part is a speaker-disjoint piece of the training fold
(:func:`~emofuse.recipes._common.run_folds`), used only to choose the fine-tuning checkpoint.
At a ``fraction`` < 1, a class-stratified subset of the training part (and of the validation
part), drawn per seed and shared by all variants, is all a run sees (at least one item per
class). The autoencoder, the discriminator and so the synthetic data are fitted on the
training part of the fold only; the test fold is scored once per run.

Inputs: frame-level features (``features``: 40 MFCCs without deltas by default) through the
feature cache, leading/trailing silence trimmed, average-pooled to ``steps`` time steps
(:func:`~emofuse.augment.aaec.sequence_features`).

Metrics: ``macro_f1``, ``ua`` (UAR) and ``combined`` = 0.66 F1 + 0.34 UAR with the suffix
``_<variant>_f<percent>`` (``per_fold`` = per fold, averaged over seeds; ``per_seed`` = per
seed, averaged over folds); the unsuffixed ones are the primary variant at the primary
fraction. ``fit_<variant>_f<percent>_s``: the training time of each run (one thread).
``generation`` describes one synthetic set written with its manifest (AAEC of the first fold and
seed at 100 %) and its quality gates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..config import Params, RunConfig
from ..corpora import Record
from ..evaluate.metrics import summarise
from ._aug_params import Fraction, generator_kwargs
from ._common import FoldOutput, run_folds
from ._suite import Suite

__all__ = ["AugSpeechAaec", "aug_speech_aaec", "AugAaecParams", "render_notes"]

#: AAECGenerator parameters the suite sets itself (not in ``aaec`` / ``quick``)
_SET_BY_SUITE = ("variant", "feature", "feature_params", "steps", "trim_db", "num_threads")


def _aaec_kwargs(v: dict[str, Any]) -> dict[str, Any]:
    return generator_kwargs("aaec", v, exclude=_SET_BY_SUITE)


class AaecSynthetic(Params):
    """The synthetic set written once (first fold and seed at 100 %)."""

    variant: str = "aaec"                     #: the variant whose generator makes it
    per_class: int = Field(default=24, gt=0)  #: items per class


class AaecPrimary(Params):
    """The variant and fraction of the unsuffixed metrics."""

    variant: str = "aaec"
    fraction: float = 1.0


class AugAaecParams(Params):
    """``model.params`` of ``aug-speech-aaec``."""

    variants: list[str] = Field(default_factory=lambda: [
        "aaec", "aae_c", "aae_plus_c", "aaec_plain", "classifier"], min_length=1)
    fractions: list[Fraction] = Field(default_factory=lambda: [1.0, 0.1], min_length=1)
    folds: list[int] | None = None            #: None: every fold of the protocol
    steps: int = Field(default=32, gt=0)      #: time steps the sequences are pooled to
    trim_db: float | None = 35.0              #: silence trimmed below the loudest frame (dB)
    #: AAECGenerator parameters (epochs, sizes, k1/k2/k3...)
    aaec: dict[str, Any] = Field(default_factory=dict)
    #: --quick overrides of ``aaec``
    quick: dict[str, Any] = Field(default_factory=lambda: {"epochs": 2, "finetune_epochs": 1})
    synthetic: AaecSynthetic = Field(default_factory=AaecSynthetic)
    primary: AaecPrimary = Field(default_factory=AaecPrimary)

    @field_validator("aaec", "quick")
    @classmethod
    def _generator_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _aaec_kwargs(v)

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, v: list[str]) -> list[str]:
        from ..augment.aaec import VARIANTS

        if bad := [x for x in v if x not in VARIANTS]:
            raise ValueError(f"unknown {bad}; known: {', '.join(VARIANTS)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.primary.variant not in self.variants or \
                self.primary.fraction not in self.fractions:
            raise ValueError("primary: a variant and a fraction of the run")
        return self


def _tag(variant: str, fraction: float) -> str:
    return f"_{variant}_f{int(round(100 * fraction))}"


def _subset(records: Sequence[Record], classes: Sequence[str], fraction: float, seed: int
            ) -> list[Record]:
    """Class-stratified ``fraction`` of ``records`` (at least one per class present)."""
    from .augment import _core, stratified_subset

    if fraction >= 1 or not records:
        return list(records)
    y = np.array([classes.index(r.label) for r in records])
    core = _core(y, 1, seed)
    idx = stratified_subset(y, fraction, core=core, seed=seed)
    return [records[i] for i in idx]


class AugSpeechAaec(Suite, name="aug-speech-aaec", modality="speech",
                    params={"model": AugAaecParams}, quick_seeds=1):
    """RAVDESS speech: adversarial-autoencoder classifier (AAEC) self-comparison (AAEC, AAE_C,
    AAE+C, AAEC', classifier alone) at 100/10 % of the training data, EmoBox folds"""

    def body(self) -> dict[str, Any]:
        import torch

        from ..augment.aaec import AAECGenerator, sequence_features

        cfg, p, log, quick, seeds = self.cfg, self.p, self.log, self.quick, self.seeds
        threads = int(cfg.train.num_threads or 1)
        torch.set_num_threads(threads)
        gen_params = {**p.aaec, **(p.quick if quick else {})}
        records, classes, splits = self.fold_records()
        t0 = time.perf_counter()
        seqs, skipped = sequence_features(records, feature=cfg.features.name,
                                          params=cfg.features.params, steps=p.steps,
                                          trim_db=p.trim_db)
        feature_s = time.perf_counter() - t0
        kept = set(seqs)
        splits = self.usable_folds(splits, kept, folds=p.folds)
        recs = [r for r in records if r.id in kept]
        log(f"{len(recs)} utterances, {len(classes)} classes, folds "
            f"{[s.fold for s in splits]}, seeds {seeds}; features {feature_s:.0f} s")
        parts: dict[str, list[FoldOutput]] = {}
        runs: dict[str, list[dict[str, Any]]] = {}
        keep_gen: dict[str, Any] = {}
        for frac in p.fractions:
            for variant in p.variants:
                tag = _tag(variant, frac)

                def fit_predict(train: list[Record], val: list[Record], test: list[Record],
                                seed: int, *, variant: str = variant, frac: float = frac,
                                tag: str = tag) -> tuple[np.ndarray, dict[str, Any]]:
                    tr = _subset(train, classes, frac, seed)
                    va = _subset(val, classes, frac, seed)
                    gen = AAECGenerator(variant=variant, feature=cfg.features.name,
                                        feature_params=cfg.features.params,
                                        steps=p.steps, trim_db=p.trim_db,
                                        num_threads=threads, **gen_params)
                    c0 = time.process_time()
                    gen.fit_arrays(np.stack([seqs[r.id] for r in tr]), [r.label for r in tr],
                                   [r.id for r in tr], seed=seed, classes=classes,
                                   X_val=np.stack([seqs[r.id] for r in va]) if va else None,
                                   y_val=[r.label for r in va] if va else None)
                    cpu = time.process_time() - c0
                    proba = gen.predict_proba(np.stack([seqs[r.id] for r in test]))
                    info = {"variant": variant, "fraction": frac, "fit_s": gen.info["fit_s"],
                            "fit_cpu_s": round(cpu, 2), "n_fit": len(tr), "n_val_used": len(va),
                            **{k: v for k, v in gen.info.items() if k != "fit_s"}}
                    if variant == p.synthetic.variant and frac == 1.0 and "gen" not in keep_gen:
                        keep_gen.update(gen=gen, seed=seed, test=[r.id for r in test],
                                        train=tr)
                    return proba, info

                def flog(msg: str, tag: str = tag) -> None:
                    log(f"[{tag[1:]}]{msg}")

                outs = run_folds(splits, recs, classes, fit_predict, seeds=seeds,
                                 val_fraction=cfg.train.val_fraction, log=flog)
                parts[tag] = outs
                runs[tag] = [{"fold": o.fold, "seed": o.seed, **o.info} for o in outs]
        generation = _synthetic_set(cfg, p, keep_gen, classes, seqs, quick=quick, log=log)
        prim = _tag(p.primary.variant, p.primary.fraction)
        result = self.result(protocol=_protocol(cfg, splits, p), classes=classes,
                             parts={"": parts[prim], **parts}, primary="",
                             variants=list(p.variants), fractions=list(p.fractions),
                             folds=[s.fold for s in splits], runs=runs, generation=generation,
                             skipped=skipped, timing={"features_s": round(feature_s, 1)},
                             settings={"steps": p.steps, "trim_db": p.trim_db,
                                       "features": {"name": cfg.features.name,
                                                    "params": dict(cfg.features.params)},
                                       "aaec": AAECGenerator(**gen_params).settings()},
                             primary_run={"variant": p.primary.variant,
                                          "fraction": p.primary.fraction})
        _add_combined(result, ["", *parts])
        for tag, rs in runs.items():
            result["metrics"][f"fit{tag}_s"] = summarise([r["fit_s"] for r in rs])
        result["notes"] = render_notes(result)
        return result


aug_speech_aaec = AugSpeechAaec.run


def _protocol(cfg: RunConfig, splits: Sequence[Any], p: AugAaecParams) -> str:
    return (f"{cfg.protocol.kind} folds {[s.fold for s in splits]} of {cfg.data.corpus} "
            f"(speaker-independent); validation = speaker-disjoint {cfg.train.val_fraction:g} "
            f"of each training fold; training fractions {list(p.fractions)} "
            "(class-stratified per seed, the same for every variant)")


def _add_combined(result: dict[str, Any], suffixes: Sequence[str]) -> None:
    """``combined<suffix>`` = 0.66 macro-F1 + 0.34 UAR, per fold and per seed."""
    from ..augment.aaec import combined_score

    M = result["metrics"]
    for sfx in suffixes:
        f1, ua = M[f"macro_f1{sfx}"], M[f"ua{sfx}"]
        out = summarise([combined_score(a, b) for a, b in zip(f1["per_fold"], ua["per_fold"])])
        out["per_seed"] = [combined_score(a, b) for a, b in zip(f1["per_seed"], ua["per_seed"])]
        M[f"combined{sfx}"] = out


def _synthetic_set(cfg: RunConfig, p: AugAaecParams, keep: Mapping[str, Any],
                   classes: Sequence[str], seqs: Mapping[str, np.ndarray], *, quick: bool,
                   log: Callable[[str], None]) -> dict[str, Any]:
    """Generate ``synthetic.per_class`` items per class with the kept generator, write them as
    a synthetic set (manifest, ``files/*.npy``), check ``fitted_on`` against the test fold and
    compute the quality gates (in the space of per-step mean and std of the standardised
    sequence)."""
    from ..augment.aaec import feature_set_quality, make_feature_set, write_feature_set
    from ..augment.manifest import to_records
    from ..paths import cache_dir

    gen = keep.get("gen")
    if gen is None:
        return {}
    n = p.synthetic.per_class
    t0 = time.perf_counter()
    items = gen.generate({c: n for c in classes if c in gen.classes}, seed=int(keep["seed"]))
    secs = time.perf_counter() - t0
    syn = np.stack([it.extra["features"] for it in items])
    syn_y = np.array([classes.index(it.label) for it in items])
    real = np.stack([seqs[r.id] for r in keep["train"]])
    real_y = np.array([classes.index(r.label) for r in keep["train"]])

    quality = feature_set_quality(gen, syn, syn_y, real, real_y, classes)
    sset = make_feature_set(gen, items, corpus=cfg.data.corpus,
                            part=f"{cfg.protocol.kind} training fold (validation removed)",
                            seed=int(keep["seed"]), seconds=round(secs, 2))
    sset.quality = quality
    folder = cache_dir() / "augment" / (f"{cfg.data.corpus}-aaec" + ("-quick" if quick else ""))
    folder = folder / f"{gen.variant}-seed{keep['seed']}-{sset.fitted_on['sha256'][:12]}"
    write_feature_set(sset, folder)
    to_records(sset, folder=folder, test_ids=keep["test"])   # raises if fitted on test items
    log(f"synthetic set: {len(items)} items -> {folder}")
    o = quality.get("overall", {})
    return {"variant": gen.variant, "items": len(items), "per_class": n, "seconds": round(secs, 3),
            "folder": str(folder), "fitted_on_n": sset.fitted_on["n"],
            "fitted_on_sha256": sset.fitted_on["sha256"],
            "quality": {k: o.get(k) for k in ("confidence", "agreement", "diversity",
                                              "real_diversity", "nearest_real_mean",
                                              "nearest_real_p05", "near_copies", "frechet",
                                              "frechet_real_vs_real")}}


def _pm(m: Mapping[str, Any], key: str = "per_seed") -> str:
    v = np.asarray(m.get(key) or m["per_fold"], float)
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return f"{100 * v.mean():.2f} ± {100 * sd:.2f}"


def render_notes(result: Mapping[str, Any]) -> str:
    """Markdown: the variants table (mean ± std over seeds, and over folds), times, sizes."""
    from ..augment.aaec import LABELS

    M = result["metrics"]
    s = result["settings"]
    a = s["aaec"]
    L = ["## AAEC self-comparison (test %, speaker-independent)", "",
         f"Folds {result['folds']}, seeds {result['seeds']}. Each cell: mean ± std over seeds "
         "(each seed's value = mean over the folds); in brackets ± std over folds (each fold's "
         "value = mean over the seeds). combined = 0.66 F1 + 0.34 UAR. Fit time = wall "
         "seconds of one training run (one torch thread, the machine shared with other jobs).",
         "",
         "| train data | variant | macro-F1 | UAR | combined | combined (± folds) | "
         "Δcombined vs classifier alone (per-seed mean) | fit s / run |",
         "|---|---|---|---|---|---|---|---|"]
    for frac in result["fractions"]:
        base = M.get(f"combined{_tag('classifier', frac)}")
        for v in result["variants"]:
            t = _tag(v, frac)
            c = M[f"combined{t}"]
            if base is not None and v != "classifier":
                d = np.asarray(c["per_seed"]) - np.asarray(base["per_seed"])
                delta = f"{100 * d.mean():+.2f} ± {100 * (d.std(ddof=1) if len(d) > 1 else 0):.2f}"
            else:
                delta = "–"
            L.append(f"| {100 * frac:g} % | {LABELS.get(v, v)} | {_pm(M[f'macro_f1{t}'])} | "
                     f"{_pm(M[f'ua{t}'])} | {_pm(c)} | ({_pm(c, 'per_fold')}) | {delta} | "
                     f"{M[f'fit{t}_s']['mean']:.1f} |")
    g = result.get("generation") or {}
    L += ["", "## Sizes and schedule", "",
          f"Input: {s['features']['name']} {s['features']['params']}, silence trimmed at "
          f"{s['trim_db']} dB below the loudest frame, average-pooled to {s['steps']} steps. "
          f"Encoder BiGRU {a['gru_hidden']} per direction, dense {a['enc_dims']} (Z = "
          f"{a['enc_dims'][-1]}-d); decoder dense {list(reversed(a['enc_dims']))[1:]} -> "
          f"sequence; discriminator {a['disc_dims']}; classifier conv {a['cls_channels']} "
          f"(kernel 3, max-pool 2 after the first) + BiGRU {a['cls_gru']}, heads real/fake + "
          f"emotion (the paper's 512/256/128 widths scaled down 4 x for one CPU thread). "
          f"Schedule: {a['epochs']} epochs of rounds (batch {a['batch_size']}) with k1={a['k1']}, "
          f"k2={a['k2']}, k3={a['k3']}, Adam lr {a['lr']}; then {a['finetune_epochs']} epochs of "
          f"fine-tuning on real data (lr x {a['finetune_lr']}), checkpoint chosen on the "
          f"validation part by the combined score. AE step on X': {a['ae_cls_weight']} x emotion "
          f"CE + {a['ae_adv_weight']} x 'looks real' BCE.", ""]
    if g:
        q = g["quality"]

        def f(x: Any) -> str:
            return "–" if x is None else f"{x:.3f}"

        L += ["## A synthetic set (AAEC, first fold and seed, 100 %)", "",
              f"{g['items']} items ({g['per_class']} per class) in {g['seconds']} s, fitted on "
              f"{g['fitted_on_n']} training items (sha256 {g['fitted_on_sha256'][:12]}...); "
              f"written with its manifest to `{g['folder']}`. Quality gates in the space of "
              "per-feature mean and std over time of the standardised sequence: confidence "
              f"{f(q['confidence'])}, agreement (AAEC classifier) {f(q['agreement'])}, "
              f"diversity {f(q['diversity'])} (real {f(q['real_diversity'])}), nearest-real "
              f"distance mean {f(q['nearest_real_mean'])} / p05 {f(q['nearest_real_p05'])}, "
              f"near copies {f(q['near_copies'])}, Fréchet {f(q['frechet'])} (real vs real "
              f"{f(q['frechet_real_vs_real'])}).", ""]
    return "\n".join(L)
