"""Quality gates, result and Markdown notes of the speech augmentation suites
(``aug-speech-tts``, ``aug-speech-diffusion``): the statistics of ``aug-text``
(:func:`emofuse.recipes.augment.paired_tests`, :func:`~emofuse.recipes.augment.bootstrap_diff`)
per fold and seed, and the tables of the ablation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import RunConfig, dump_config
from ..corpora import Record
from ..evaluate.results import build_result
from ._common import Timer
from ._speech_fit import full_proba as _full_proba  # aug_tts, aug_diffusion import it here

__all__ = ["render_notes"]

_METRICS = ("ua", "accuracy", "macro_f1")

def _tag(arm: str, frac: float) -> str:
    return f"{arm}_f{int(round(100 * frac))}"


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


def _result(cfg: RunConfig, classes: Sequence[str],
            runs: Mapping[tuple[str, float], list[dict[str, Any]]], pools: Mapping[str, Any],
            quality: Mapping[str, Any], seeds: list[int], fracs: list[float],
            splits: Sequence[Any], timer: Timer, *, arms: Mapping[str, Mapping[str, Any]],
            primary: tuple[str | None, float | None], bootstrap: int,
            settings: Mapping[str, Any], pca: int, fit_s: list[float], real_feat_s: float,
            quick: bool) -> dict[str, Any]:
    """The result of a speech ablation: ``arms`` as plain mappings (``engines``,
    ``per_class``, ``classes``, ``setting``, ``baseline``), ``primary`` = (arm, fraction),
    None: the last arm, the smallest fraction; ``settings``: ``lda`` and ``pool``."""
    from ._aug_stats import bootstrap_diff, paired_tests

    arm_specs, arms = arms, list(arms)
    folds = [s.fold for s in splits]
    prim_arm = primary[0] or arms[-1]
    prim_frac = primary[1] or min(fracs)
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
            base = runs[(arm_specs[arm]["baseline"], frac)]
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
                                               n=100 if quick else int(bootstrap), seed=0)
            comp["n_real_mean"] = float(np.mean([r["n_real"] for r in rs]))
            comp["n_synthetic"] = float(np.mean([r["n_synthetic"] for r in rs]))
            comp["added_per_class"] = rs[0]["added"]
            comp["baseline"] = arm_specs[arm]["baseline"]
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
        primary={"arm": prim_arm, "fraction": prim_frac}, arms=dict(arm_specs),
        fractions=fracs, folds=folds, comparisons=comparisons, per_class_recall=recall,
        quality=quality, generation=generation,
        timing={"real_features_s": round(real_feat_s, 1), "lda_fits": len(fit_s),
                "lda_fit_mean_s": round(float(np.mean(fit_s)), 2) if fit_s else None},
        settings={"lda": dict(settings["lda"]), "features": {"name": cfg.features.name,
                                                      "params": dict(cfg.features.params)},
                  "pool": dict(settings["pool"]), "bootstrap": bootstrap, "pca": pca},
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
