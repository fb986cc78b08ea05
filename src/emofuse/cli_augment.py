"""``emofuse augment``: synthetic training data (balancing plan, text and face generation, set
summaries).

:func:`register` adds the sub-app to the main Typer app (``emofuse.cli`` calls it)::

    emofuse augment plan --corpus dair --plot plan.png
    emofuse augment text --corpus dair --fraction 0.1 --per-class 50 --out synthetic/dair-llm
    emofuse augment face --fraction 0.1 --per-class 100 --out synthetic/fer-cgan
    emofuse augment speech --holdout Actor_01,Actor_02 --per-class 10 --out synthetic/ravdess-ddpm
    emofuse augment tts --engines piper,espeak --per-class 20 --out synthetic/tts
    emofuse augment aaec --holdout Actor_01,Actor_02 --per-class 24 --out synthetic/ravdess-aaec
    emofuse augment show synthetic/dair-llm
    emofuse augment list
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .errors import ConfigError, DataError

__all__ = ["register", "augment_app"]

out = Console(width=None if sys.stdout.isatty() else 120)

augment_app = typer.Typer(no_args_is_help=True,
                          help="Generative augmentation: balancing plans and synthetic sets.")

CorpusOpt = Annotated[str, typer.Option("--corpus", "-c", help="Corpus name (see `emofuse data list`).")]
RootOpt = Annotated[Optional[Path], typer.Option("--root", "-r", help="Corpus folder (default: its folder under $EMOFUSE_DATA or ../shared/data).")]
StrategyOpt = Annotated[str, typer.Option(help="Balancing: max (raise every class to the largest x --target), fraction, fixed (--per-class each), budget.")]
TargetOpt = Annotated[float, typer.Option("--target", help="With max/fraction: the share of the largest class every class is raised to.")]
SpeechCorpusOpt = Annotated[str, typer.Option("--corpus", "-c", help="A speech corpus (see `emofuse data list`).")]
HoldoutOpt = Annotated[str, typer.Option(help="Comma-separated speakers left out of the fit (a test fold's speakers, e.g. Actor_01,Actor_02).")]
FitFractionOpt = Annotated[float, typer.Option("--fraction", help="Fit on a class-stratified share of the training data.")]
FitSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the subset, the fit and the sampling.")]


def _train_records(corpus: str, root: Path | None) -> list:
    """The labelled training records of a corpus (its official train part when it has one)."""
    from .corpora import load_corpus

    scan = load_corpus(corpus, root, check_media=False)
    recs = [r for r in scan.records if r.label is not None]
    if any(r.split for r in recs):
        recs = [r for r in recs if r.split == "train"]
    if not recs:
        raise DataError(root, f"{corpus}: no labelled training records")
    return recs


def _subset(recs: list, fraction: float, seed: int) -> list:
    if not 0 < fraction <= 1:
        raise ConfigError(f"--fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return recs
    import numpy as np

    from .recipes.augment import stratified_subset

    labels = sorted({r.label for r in recs})
    y = np.array([labels.index(r.label) for r in recs])
    idx = stratified_subset(y, fraction, core=np.zeros(0, int), seed=seed)
    return [recs[i] for i in idx]


def _split_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _speech_training(corpus: str, root: Path | None, holdout: str, fraction: float,
                     seed: int) -> tuple[list, str]:
    """Training speech of ``corpus`` without the ``holdout`` speakers, subsampled; and the
    description of that part for the manifest."""
    gone = set(_split_list(holdout))
    recs = [r for r in _train_records(corpus, root) if r.audio and str(r.speaker) not in gone]
    if not recs:
        raise DataError(root, f"{corpus}: no labelled training speech left")
    part = (f"train (fraction {fraction:g}, seed {seed}"
            + (f"; held out: {', '.join(sorted(gone))}" if gone else "") + ")")
    return _subset(recs, fraction, seed), part


@augment_app.command("list")
def list_cmd() -> None:
    """List the registered generators."""
    from .augment import list_generators

    for name in list_generators():
        out.print(name)


@augment_app.command("plan")
def plan_cmd(corpus: CorpusOpt, root: RootOpt = None, strategy: StrategyOpt = "max",
             target: TargetOpt = 1.0,
             per_class: Annotated[Optional[int], typer.Option(help="At most this many synthetic items per class (fixed: exactly this many).")] = None,
             budget: Annotated[Optional[int], typer.Option(help="With --strategy budget: the total to share out.")] = None,
             fraction: Annotated[float, typer.Option(help="Plan for a class-stratified share of the training data.")] = 1.0,
             seed: Annotated[int, typer.Option(help="Seed of the training subset.")] = 0,
             plot: Annotated[Optional[Path], typer.Option(help="Write a bar chart of the class counts before/after (PNG).")] = None,
             ) -> None:
    """Print the class-balancing plan of a corpus' training part (and plot it)."""
    from .augment import class_counts, plan_balance, plot_plan
    from .recipes._common import class_list

    recs = _subset(_train_records(corpus, root), fraction, seed)
    counts = class_counts(recs, class_list(recs))
    plan = plan_balance(counts, strategy=strategy, fraction=target, per_class=per_class,
                        budget=budget)
    out.print(f"{corpus}: {len(recs)} training items; strategy {strategy}; "
              f"{plan.total_needed} synthetic items needed")
    out.print(plan.table(), soft_wrap=True, markup=False)
    if plot:
        plot_plan(plan, plot, title=f"{corpus} ({strategy})")
        out.print(f"wrote {plot}")


@augment_app.command("text")
def text_cmd(corpus: CorpusOpt,
             out_dir: Annotated[Path, typer.Option("--out", help="Folder of the synthetic set (manifest.json, items.csv, plan.png).")],
             root: RootOpt = None,
             generator: Annotated[str, typer.Option(help="llm (SmolLM2 generation), paraphrase (SmolLM2 paraphrase) or eda (control, no model).")] = "llm",
             fraction: FitFractionOpt = 1.0,
             per_class: Annotated[int, typer.Option(help="At most this many synthetic items per class.")] = 50,
             strategy: StrategyOpt = "max", target: TargetOpt = 1.0,
             seed: Annotated[int, typer.Option(help="Seed of the subset and the sampling.")] = 0,
             shots: Annotated[int, typer.Option(help="Few-shot training examples per prompt (llm).")] = 5,
             min_confidence: Annotated[float, typer.Option(help="Filter: least probability of the intended class from a classifier trained on the real training data.")] = 0.0,
             filter_model: Annotated[str, typer.Option("--filter", help="Filter classifier: balanced (class-weighted, keeps rare classes) or real (fitted as the data is).")] = "balanced",
             ) -> None:
    """Generate a filtered synthetic text set from the training part only, with its manifest."""
    from .augment import build_generator, class_counts, plan_balance, plot_plan, write_set
    from .augment.text import make_text_set
    from .recipes._common import class_list
    from .recipes.augment import _embed

    kinds = {"llm": ("llm_text", {"mode": "generate", "shots": shots}),
             "paraphrase": ("llm_text", {"mode": "paraphrase"}), "eda": ("eda_text", {})}
    if filter_model not in ("balanced", "real"):
        raise ConfigError(f"--filter must be balanced or real, not {filter_model!r}")
    if generator not in kinds:
        raise ConfigError(f"--generator must be one of {', '.join(kinds)}, not {generator!r}")
    recs = [r for r in _subset(_train_records(corpus, root), fraction, seed) if r.text]
    classes = class_list(recs)
    plan = plan_balance(class_counts(recs, classes), strategy=strategy, fraction=target,
                        per_class=per_class)
    out.print(plan.table(), markup=False)
    name, params = kinds[generator]
    gen = build_generator(name, **params)
    sset = make_text_set(gen, recs, plan.needed, classes, seed=seed, corpus=corpus,
                         part=f"train (fraction {fraction:g}, seed {seed})", embed=_embed,
                         min_confidence=min_confidence, log=out.print,
                         filter_class_weight="balanced" if filter_model == "balanced" else None)
    sset.settings["plan"] = plan.to_dict()
    write_set(sset, out_dir)
    plot_plan(plan, out_dir / "plan.png", added=sset.counts(),
              title=f"{corpus}: real vs real + {sset.generator}")
    _summary(sset)
    out.print(f"wrote {out_dir / 'manifest.json'}, {out_dir / 'items.csv'}, {out_dir / 'plan.png'}")


@augment_app.command("face")
def face_cmd(out_dir: Annotated[Path, typer.Option("--out", help="Folder of the synthetic set (files/*.png, manifest.json, items.csv, grid.png, generator/).")],
             corpus: Annotated[str, typer.Option("--corpus", "-c", help="A face corpus with an official Training part.")] = "fer2013",
             root: RootOpt = None,
             fraction: FitFractionOpt = 0.1,
             per_class: Annotated[int, typer.Option(help="Faces to generate per class.")] = 100,
             iterations: Annotated[int, typer.Option(help="Training steps of the cGAN.")] = 2500,
             width: Annotated[int, typer.Option(help="Base channel count of the cGAN.")] = 16,
             seed: FitSeedOpt = 0,
             ) -> None:
    """Fit the face cGAN (cgan_face) on training faces only and write a synthetic set with its
    manifest, a sample grid (rows = classes) and quality gates (HOG-PCA space)."""
    import numpy as np

    from .augment import build_generator
    from .augment.face import make_face_set
    from .augment.quality import quality_report
    from .corpora import load_corpus
    from .recipes.aug_face import DEFAULTS, _Encoder, _fit
    from .recipes.face import load_faces

    scan = load_corpus(corpus, root, check_media=False)
    recs = [r for r in scan.records if r.label is not None
            and (r.split or "train").lower() in ("train", "training")]
    if not recs:
        raise DataError(root, f"{corpus}: no labelled training faces")
    recs = _subset(recs, fraction, seed)
    x, kept, skipped = load_faces(recs, detect=False)
    if not len(x):
        raise DataError(root, f"{corpus}: no readable training faces")
    classes = sorted({r.label for r in kept})
    y = np.array([classes.index(r.label) for r in kept])
    gen = build_generator("cgan_face", iterations=iterations, width=width)
    out.print(f"{corpus}: fitting cgan_face on {len(x)} training faces ({iterations} steps)")
    gen.fit_arrays(x, y, classes, ids=[r.id for r in kept], seed=seed,
                   log=lambda m: out.print(m, markup=False))
    sset = make_face_set(gen, {c: per_class for c in classes}, out_dir, seed=seed, corpus=corpus,
                         part=f"Training (fraction {fraction:g}, seed {seed})")
    p = {**DEFAULTS, "pca": min(int(DEFAULTS["pca"]), max(1, len(x) // 2))}
    enc = _Encoder(p, x)
    er, es = enc(x), enc(gen.last_images)
    sy = np.array([classes.index(it.label) for it in sset.items])
    clf = _fit(er, y, len(classes), p, None)
    sset.quality = {"candidates": quality_report(es, sy, er, y, classes,
                                                 proba=clf.predict_proba(es))}
    from .augment import write_set

    write_set(sset, out_dir)
    _summary(sset)
    out.print(f"wrote {out_dir / 'manifest.json'}, {out_dir / 'grid.png'} "
              f"(fit {gen.fit_seconds} s)")


def _summary(sset) -> None:
    kept, allc = sset.counts(), sset.counts(kept_only=False)
    out.print(f"{sset.generator}: {len(sset.items)} candidates, {sum(kept.values())} kept "
              f"({sset.seconds} s); per class kept/candidates: " + ", ".join(
                  f"{c} {kept.get(c, 0)}/{n}" for c, n in allc.items()))
    q = sset.quality or {}
    o = (q.get("kept") or q.get("candidates") or q).get("overall") or {}
    if o:
        out.print("quality: " + ", ".join(f"{k} {v:.3f}" for k, v in o.items()
                                          if isinstance(v, float)))


@augment_app.command("speech")
def speech_cmd(out_dir: Annotated[Path, typer.Option("--out", help="Folder of the synthetic set (files/*.wav, manifest.json, items.csv, mels.png, generator/).")],
               corpus: SpeechCorpusOpt = "ravdess", root: RootOpt = None, holdout: HoldoutOpt = "",
               fraction: FitFractionOpt = 0.1,
               per_class: Annotated[int, typer.Option(help="Clips to generate per class.")] = 10,
               steps: Annotated[int, typer.Option(help="Training steps of the diffusion model.")] = 600,
               ddim_steps: Annotated[int, typer.Option(help="DDIM sampling steps.")] = 25,
               seed: FitSeedOpt = 0,
               ) -> None:
    """Fit the log-mel diffusion model (ddpm_logmel) on training speech only and write Griffin-Lim
    WAV clips with their manifest, a log-mel grid (mels.png) and the weights (generator/)."""
    from .augment import build_generator
    from .augment.speech import make_ddpm_set, plot_mels

    gen = build_generator("ddpm_logmel", steps=steps, ddim_steps=ddim_steps)
    recs, part = _speech_training(corpus, root, holdout, fraction, seed)
    out.print(f"{corpus}: fitting ddpm_logmel on {len(recs)} training clips ({steps} steps)")
    gen.fit(recs, seed=seed, log=lambda m: out.print(m, markup=False))
    sset = make_ddpm_set(gen, {c: per_class for c in gen.classes}, out_dir, seed=seed,
                         corpus=corpus, part=part)
    gen.save(Path(out_dir) / "generator", data={"corpus": corpus, "part": part})
    plot_mels(gen, Path(out_dir) / "mels.png", seed=seed)
    _summary(sset)
    out.print(f"wrote {out_dir / 'manifest.json'}, {out_dir / 'mels.png'} (fit "
              f"{gen.info['fit_s']} s)")


@augment_app.command("tts")
def tts_cmd(out_dir: Annotated[Path, typer.Option("--out", help="Folder of the synthetic set (files/*.wav, manifest.json, items.csv).")],
            engines: Annotated[str, typer.Option(help="Comma-separated TTS engines: piper, espeak.")] = "piper,espeak",
            classes: Annotated[str, typer.Option(help="Comma-separated emotions (default: every emotion of the prosody table).")] = "",
            per_class: Annotated[int, typer.Option(help="Clips per class, shared out between the engines in turn.")] = 20,
            llm_per_class: Annotated[int, typer.Option(help="Also speak this many SmolLM2-generated sentences per class (0: the built-in carrier sentences only).")] = 0,
            seed: Annotated[int, typer.Option(help="Seed of the sentence, speaker and prosody-jitter draws.")] = 0,
            ) -> None:
    """Emotional speech from text (piper with the shipped voice, espeak-ng) with prosody set per
    emotion; needs no corpus data, so it cannot leak a test set."""
    from .augment import build_generator
    from .augment.tts import PROSODY, engine_status, make_tts_set

    names = _split_list(engines)
    bad = {e: why for e, why in engine_status(names).items() if why}
    if bad:
        raise ConfigError("; ".join(f"{e}: {why}" for e, why in bad.items()))
    labels = _split_list(classes) or list(PROSODY)
    if per_class < 1:
        raise ConfigError(f"--per-class must be >= 1, got {per_class}")
    llm = {"per_class": llm_per_class} if llm_per_class > 0 else None
    gen = build_generator("tts", engines=names, llm=llm)
    sset = make_tts_set(gen, {c: per_class for c in labels}, out_dir, seed=seed,
                        log=lambda m: out.print(m, markup=False))
    _summary(sset)
    out.print(f"wrote {Path(out_dir) / 'manifest.json'}")


@augment_app.command("aaec")
def aaec_cmd(out_dir: Annotated[Path, typer.Option("--out", help="Folder of the synthetic set (files/*.npy feature sequences, manifest.json, items.csv).")],
             corpus: SpeechCorpusOpt = "ravdess", root: RootOpt = None, holdout: HoldoutOpt = "",
             fraction: FitFractionOpt = 1.0,
             per_class: Annotated[int, typer.Option(help="Feature sequences to generate per class.")] = 24,
             variant: Annotated[str, typer.Option(help="aaec, aae_c, aae_plus_c or aaec_plain (see docs/augmentation.md).")] = "aaec",
             epochs: Annotated[int, typer.Option(help="Epochs of alternating AE / discriminator / classifier rounds.")] = 12,
             seed: FitSeedOpt = 0,
             ) -> None:
    """Fit the adversarial-autoencoder classifier (AAEC) on training speech only and write
    generated MFCC sequences X' with their manifest and quality gates."""
    import time

    import numpy as np

    from .augment.aaec import (AAECGenerator, feature_set_quality, make_feature_set,
                               write_feature_set)

    gen = AAECGenerator(variant=variant, epochs=epochs)      # bad options fail before any work
    recs, part = _speech_training(corpus, root, holdout, fraction, seed)
    out.print(f"{corpus}: fitting AAEC ({variant}) on {len(recs)} training clips")
    gen.fit(recs, seed=seed)
    t0 = time.perf_counter()
    items = gen.generate({c: per_class for c in gen.classes}, seed=seed)
    secs = round(time.perf_counter() - t0, 2)
    syn = np.stack([it.extra["features"] for it in items])
    syn_y = np.array([gen.classes.index(it.label) for it in items])
    real = gen._train["X"] * gen.std + gen.mean
    sset = make_feature_set(gen, items, corpus=corpus, part=part, seed=seed, seconds=secs)
    sset.quality = feature_set_quality(gen, syn, syn_y, real, gen._train["y"], gen.classes)
    write_feature_set(sset, out_dir)
    _summary(sset)
    out.print(f"wrote {Path(out_dir) / 'manifest.json'} (fit {gen.info.get('fit_s')} s)")


@augment_app.command("show")
def show_cmd(folder: Annotated[Path, typer.Argument(help="A synthetic set folder.")],
             n: Annotated[int, typer.Option(help="Examples to print per class.")] = 3) -> None:
    """Summarise a synthetic set: provenance, counts, quality gates and a few examples."""
    from .augment import load_set

    sset = load_set(folder)
    f = sset.fitted_on
    out.print(f"{folder}: generator {sset.generator} ({sset.modality}), seed {sset.seed}; "
              f"fitted on {f.get('corpus')} {f.get('part')} ({f.get('n')} items, "
              f"sha256 {str(f.get('sha256'))[:12]})")
    _summary(sset)
    shown: dict[str, int] = {}
    for it in sset.kept():
        if shown.get(it.label, 0) < n:
            shown[it.label] = shown.get(it.label, 0) + 1
            out.print(f"  [{it.label}] {it.text or it.path}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``augment`` to the main app."""
    app.add_typer(augment_app, name="augment")
