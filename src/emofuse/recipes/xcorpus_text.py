"""Cross-corpus text emotion recognition: leave-one-corpus-out (LOCO) over dair-ai emotion,
MELD and GoEmotions on the canonical labels, every choice made by nested LOCO inside the
training corpora; and the joint text model (v2) trained on all of them.

Suite ``xcorpus-text`` (``configs/xcorpus-text.yaml``): for each held-out corpus *T*, train on
the *train* splits of the other corpora and test once on *T*'s *test* split, over the canonical
labels both sides share (:func:`emofuse.protocols.cross_corpus`; each cell lists its classes,
the chance level and the classes dropped on each side with their counts).

Data. Each corpus on its official split, texts cleaned as the text recipe does
(:func:`emofuse.recipes.text.prepare_inputs`) and embedded by the frozen MiniLM encoder through
the feature cache (the same chunks as ``ter-*``, so those suites and reruns reuse them).
GoEmotions is multi-label: ``goemotions_multilabel: same_group`` (default) keeps a row when all
its labels fall in one Ekman group (the loader's canonical ``label``: a one-label row, or e.g.
``joy,love`` -> happy) and drops rows whose labels span groups; ``single`` keeps one-label rows
only. dair-ai's ``love`` has no counterpart in the other corpora: it is dropped (counted) unless
a candidate says ``love: happy`` (training side only; GoEmotions' own Ekman grouping puts
``love`` under joy), and it is never scored.

Model: a head on the 384-d sentence embedding, the product's ``minilm_mlp`` (runs in numpy):
``lr`` is one linear layer fitted as an L2-regularised logistic regression (scikit-learn,
lbfgs), ``mlp`` the existing MLP head (one hidden GELU layer, dropout, AdamW, early stopping on
the training corpora's dev splits). Sample weights: ``class_balance`` p gives each class the
weight ``count ** -p`` (0 none, 1 balanced), counted within each corpus when ``corpus_balance``
is ``equal`` (then every corpus weighs the same in total) and over the pooled data when it is
``none``.

Selection (per cell, *T* held out): each candidate is fitted on the train split of each
training corpus but one and scored on the dev split of the one left out (macro-F1 over the
classes shared with the cell, and with the training side); the candidate with the best mean
over the left-out training corpora wins (ties: the first in grid order). The chosen candidate's
out-of-corpus dev probabilities fit the temperature (NLL, each left-out corpus weighted
equally): the test corpus chooses nothing and calibrates nothing. ECE (15 equal-width bins of
the top probability) before and after temperature scaling.

Parameters are typed (:class:`emofuse.recipes.text_params.JointParams`, checked when the config
loads); the heads and calibration live in :mod:`.xcorpus_text_heads`, the result and its
Markdown in :mod:`.xcorpus_text_report`, the joint model folder in :mod:`.xcorpus_text_joint`.

Joint model (``configs/models/text-v2.yaml``, ``emofuse train``): the same selection with all
corpora (each left out in turn: fitted on the others' train splits, scored on its dev split),
then the chosen candidate fitted on every train split; the temperature from the LOCO
out-of-corpus dev probabilities, folded into the last layer (``softmax(z / T)`` is
``softmax`` of the layer with weights and bias divided by ``T``), so that the model folder
predicts calibrated probabilities with the product's torch-free text path.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocols
from ..config import RunConfig, parse_config
from ..corpora import Record
from ..errors import ConfigError
from ..evaluate.metrics import classification_metrics
from ..evaluate.results import results_dir
from ._suite import Suite, limit_threads
from .text_params import CORPORA, JointParams, MLPSettings, TextFeatureParams
from .text_task import load_task, prepare_inputs
from .xcorpus_text_heads import (Candidate, apply_temperature, candidates, ece, fit_head,
                                 fit_temperature, head_proba, sample_weights)
from .xcorpus_text_report import plot_heatmap, result

__all__ = [
    "XcorpusText",
    "XcorpusTextSuite",
    "CORPORA",
    "PARTS",
    "Candidate",
    "TextContext",
    "TextTable",
    "apply_temperature",
    "candidates",
    "check",
    "ece",
    "fit_head",
    "fit_temperature",
    "head_proba",
    "joint_model",
    "load_table",
    "run_cell",
    "run_suite",
    "sample_weights",
    "select",
    "setup",
]

PARTS: tuple[str, ...] = ("train", "val", "test")
#: GoEmotions labels named like their Ekman group (``goemotions: namesake``).
NAMESAKE = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")


# -- data ----------------------------------------------------------------------------------


@dataclasses.dataclass
class TextTable:
    """Embedded texts of several corpora, one row per labelled item."""

    x: np.ndarray
    labels: np.ndarray
    corpus: np.ndarray
    part: np.ndarray
    texts: list[str]
    records: list[Record] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, np.float32)
        self.labels = np.asarray(self.labels, dtype=object)
        self.corpus = np.asarray(self.corpus, dtype=object)
        self.part = np.asarray(self.part, dtype=object)
        n = len(self.x)
        if not (len(self.labels) == len(self.corpus) == len(self.part) == len(self.texts) == n):
            raise ValueError("TextTable: x, labels, corpus, part and texts differ in length")

    def rows(self, corpora: Sequence[str], part: str, classes: Sequence[str] | None = None
             ) -> np.ndarray:
        """Row indices of ``corpora`` in ``part`` (and of ``classes`` when given)."""
        m = np.isin(self.corpus, list(corpora)) & (self.part == part)
        if classes is not None:
            m &= np.isin(self.labels, list(classes))
        return np.flatnonzero(m)

    def labels_of(self, corpora: Sequence[str], part: str) -> set[str]:
        return set(self.labels[self.rows(corpora, part)].tolist())


def _corpus_config(corpus: str, root: str | Path | None, features: TextFeatureParams
                   ) -> RunConfig:
    return parse_config({
        "suite": f"xcorpus-text-{corpus}", "task": {"modality": "text"},
        "data": {"corpus": corpus, "root": str(root) if root else None,
                 "options": {"scheme": "original"} if corpus == "goemotions" else {}},
        "protocol": {"kind": "official"},
        "features": {"name": "text_clean", "params": features.model_dump()},
        "model": {"name": "joint"}})


def _keep(rec: Record, rule: str) -> bool:
    if rec.corpus != "goemotions":
        return rec.label is not None
    if rule == "single":
        return rec.label is not None and len(rec.extra.get("labels") or []) == 1
    return rec.label is not None


def load_table(corpora: Sequence[str], *,
               features: TextFeatureParams | Mapping[str, Any] | None = None,
               roots: Mapping[str, str | Path | None] | None = None,
               goemotions_multilabel: str = "same_group", quick: bool = False,
               log: Callable[[str], None] | None = print) -> tuple[TextTable, dict[str, Any]]:
    """Labelled items of ``corpora`` on their official splits with their MiniLM embeddings.

    Returns the table and, per corpus, what was loaded: items per part, class counts and, for
    GoEmotions, how many multi-label rows were kept (one Ekman group) or dropped."""
    from ..features.text import embed_texts

    if goemotions_multilabel not in ("same_group", "single"):
        raise ConfigError("model.params.goemotions_multilabel: 'same_group' or 'single', not "
                          f"{goemotions_multilabel!r}")
    feats = TextFeatureParams.of(features or {}, where="features.params")
    roots = dict(roots or {})
    xs, labels, corp, parts, texts, recs = [], [], [], [], [], []
    info: dict[str, Any] = {}
    for c in corpora:
        t0 = time.perf_counter()
        cfg = _corpus_config(c, roots.get(c), feats)
        task = load_task(cfg, quick=quick)
        inputs = prepare_inputs(task, feats)
        ci: dict[str, Any] = {"items": {}, "classes": {}}
        for p in PARTS:
            rs = task.records[p]
            # the whole part is embedded (the chunks ter-* caches), then the kept rows taken
            emb = embed_texts(inputs.texts[p])
            keep = [i for i, r in enumerate(rs) if _keep(r, goemotions_multilabel)]
            if c == "goemotions":
                multi = [r for r in rs if len(r.extra.get("labels") or []) > 1]
                ci.setdefault("multilabel_rows", {})[p] = {
                    "total": len(multi), "kept_one_group": sum(
                        1 for r in multi if _keep(r, goemotions_multilabel)),
                    "dropped": sum(1 for r in multi if not _keep(r, goemotions_multilabel))}
                ci.setdefault("unlabelled_dropped", {})[p] = sum(
                    1 for r in rs if len(r.extra.get("labels") or []) == 1 and r.label is None)
            xs.append(emb[keep])
            labels += [rs[i].label for i in keep]
            corp += [c] * len(keep)
            parts += [p] * len(keep)
            texts += [inputs.texts[p][i] for i in keep]
            recs += [rs[i] for i in keep]
            ci["items"][p] = len(keep)
            ci["classes"][p] = dict(sorted(_count([rs[i].label for i in keep]).items()))
        info[c] = ci
        if log:
            log(f"  {c}: " + ", ".join(f"{p} {n}" for p, n in ci["items"].items())
                + f" ({time.perf_counter() - t0:.0f} s)")
    x = np.concatenate(xs) if xs else np.zeros((0, 384), np.float32)
    return TextTable(x, labels, corp, parts, texts, recs), info


def _count(values: Sequence[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


# -- training sets, selection, cells ----------------------------------------------------------


@dataclasses.dataclass
class TextContext:
    """What every fit, selection and cell of a cross-corpus text run shares: the embedded
    table, the seed, the MLP settings, whether fitted heads are cached, the log."""

    table: TextTable
    seed: int = 0
    mlp: MLPSettings | None = None
    cache: bool = True
    log: Callable[[str], None] | None = None


def _training_rows(ctx: TextContext, corpora: Sequence[str], part: str, classes: Sequence[str],
                   cand: Candidate) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``corpora`` in ``part`` whose (possibly remapped) label is in ``classes``;
    returns the rows and their class indices."""
    t = ctx.table
    rows = t.rows(corpora, part)
    labs = t.labels[rows].copy()
    if cand.love == "happy":
        labs[(labs == "love") & (t.corpus[rows] == "dair")] = "happy"
    keep = np.isin(labs, list(classes))
    if cand.goemotions == "namesake":
        keep &= np.array([t.corpus[i] != "goemotions" or set(
            t.records[i].extra.get("labels") or ()) <= set(NAMESAKE) for i in rows], bool)
    idx = {c: i for i, c in enumerate(classes)}
    return rows[keep], np.array([idx[v] for v in labs[keep]], np.int64)


def fit_on(ctx: TextContext, corpora: Sequence[str], classes: Sequence[str], cand: Candidate,
           *, targets: Callable[[np.ndarray, np.ndarray, np.ndarray],
                                tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
           ) -> dict[str, Any]:
    """``cand`` fitted on the train splits of ``corpora`` over ``classes`` (the MLP stops
    early on their dev splits). A candidate with its own ``fit_on(ctx, corpora, classes)``
    fits itself (``xcorpus-text-ft``'s fine-tuned encoder). ``targets(rows, y, w)`` may
    replace the training rows, classes and weights (row indices into ``rows``: soft labels
    as weighted rows, ``xcorpus-text-distil``)."""
    if hasattr(cand, "fit_on"):
        return cand.fit_on(ctx, corpora, classes)
    t = ctx.table
    rows, y = _training_rows(ctx, corpora, "train", classes, cand)
    if len(set(t.corpus[rows])) == 1:   # one corpus: corpus balancing changes nothing
        cand = dataclasses.replace(cand, corpus_balance="none")
    w = sample_weights(t.corpus[rows], y, cand)
    x = t.x[rows]
    if targets is not None:
        r, y, w = targets(rows, y, w)
        x = x[r]
    val = None
    if cand.head == "mlp":
        vrows, vy = _training_rows(ctx, corpora, "val", classes, cand)
        val = (t.x[vrows], vy, sample_weights(t.corpus[vrows], vy, cand))
    head = fit_head(x, y, w, len(classes), cand, val=val, seed=ctx.seed, mlp=ctx.mlp,
                    cache=ctx.cache)
    head["classes"] = list(classes)
    return head


def _scored(ctx: TextContext, head: Mapping[str, Any], corpus: str, part: str,
            classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of ``head`` on ``corpus``/``part`` restricted (renormalised) to
    ``classes`` (a subset of the head's), and the targets. A head with ``proba_texts``
    scores the rows' texts (a fine-tuned encoder), any other the rows' embeddings."""
    t = ctx.table
    rows = t.rows([corpus], part, classes)
    cols = [head["classes"].index(c) for c in classes]
    if "proba_texts" in head:
        p = np.array(head["proba_texts"]([t.texts[i] for i in rows]), np.float64)[:, cols]
    else:
        p = head_proba(head, t.x[rows])[:, cols]
    p /= np.maximum(p.sum(1, keepdims=True), 1e-300)
    y = np.array([list(classes).index(v) for v in t.labels[rows]], np.int64)
    return p, y


def select(ctx: TextContext, train_corpora: Sequence[str], classes: Sequence[str],
           cands: Sequence[Candidate], *, metric: str = "macro_f1") -> dict[str, Any]:
    """Nested LOCO inside ``train_corpora``: each is left out in turn, every candidate is
    fitted on the others' train splits and scored on its dev split over the classes shared
    with ``classes`` and the training side. Best mean wins; returns the scores, the choice
    and its held-out (probabilities, targets) for the temperature."""
    t = ctx.table
    folds = []
    for s in train_corpora:
        rest = [c for c in train_corpora if c != s]
        have = t.labels_of(rest, "train")
        folds.append((s, rest, [c for c in classes if c in have and c in t.labels_of([s], "val")]))
    scores = np.full((len(cands), len(folds)), np.nan)
    held: list[list[tuple[str, np.ndarray, np.ndarray]]] = [[] for _ in cands]
    for j, (s, rest, inner) in enumerate(folds):
        if len(inner) < 2:
            continue
        for i, cand in enumerate(cands):
            head = fit_on(ctx, rest, inner, cand)
            p, y = _scored(ctx, head, s, "val", inner)
            scores[i, j] = classification_metrics(y, p.argmax(1), classes=inner)[metric]
            held[i].append((s, p, y))
    mean = np.array([np.nanmean(r) if np.isfinite(r).any() else -1.0 for r in scores])
    best = int(np.argmax(mean))
    if ctx.log:
        ctx.log(f"    selection over {len(cands)} candidates x {len(folds)} left-out corpora "
                f"({', '.join(train_corpora)}): {cands[best].short()} "
                f"(mean dev {metric} {100 * mean[best]:.2f})")
    return {"scores": scores, "mean": mean, "best": best, "held": held[best],
            "folds": [{"left_out": s, "trained_on": rest, "classes": inner}
                      for s, rest, inner in folds]}


def _choose(ctx: TextContext, corpora: Sequence[str], classes: Sequence[str],
            cands: Sequence[Candidate]) -> tuple[dict[str, Any], Candidate, float, dict[str, Any]]:
    """Nested selection over ``corpora``, the temperature from its out-of-corpus dev
    probabilities, and the chosen candidate fitted on every one of them."""
    sel = select(ctx, corpora, classes, cands)
    cand = cands[sel["best"]]
    temperature = fit_temperature([p for _, p, _ in sel["held"]],
                                  [y for _, _, y in sel["held"]])
    return sel, cand, temperature, fit_on(ctx, corpora, classes, cand)


def _summary(sel: Mapping[str, Any], cands: Sequence[Candidate]) -> dict[str, Any]:
    """A selection as the result shows it (dev macro-F1 per candidate and left-out corpus)."""
    return {"folds": sel["folds"], "candidates": [c.short() for c in cands],
            "dev_macro_f1": [[None if not np.isfinite(v) else round(float(v), 4)
                              for v in row] for row in sel["scores"]],
            "mean": [round(float(v), 4) for v in sel["mean"]],
            "chosen_mean": round(float(sel["mean"][sel["best"]]), 4)}


def _metrics(y: np.ndarray, proba: np.ndarray, classes: Sequence[str], bins: int
             ) -> dict[str, Any]:
    m = classification_metrics(y, proba.argmax(1), classes=classes, proba=proba)
    m["ece"] = ece(proba, y, bins=bins)
    return m


def run_cell(ctx: TextContext, train_corpora: Sequence[str], test_corpus: str,
             cands: Sequence[Candidate], *, bins: int = 15, labels: Sequence[str] | None = None
             ) -> dict[str, Any]:
    """One LOCO cell: shared classes, nested selection, temperature from the left-out training
    corpora, the chosen candidate fitted on the training corpora and scored on the test split
    of ``test_corpus`` once."""
    t = ctx.table
    tr_recs = [t.records[i] for i in t.rows(train_corpora, "train")]
    te_recs = [t.records[i] for i in t.rows([test_corpus], "test")]
    split, dropped = protocols.cross_corpus(tr_recs, te_recs)      # leakage-checked
    classes = [c for c in split.info["labels"] if labels is None or c in labels]
    if len(classes) < 2:
        raise ConfigError(f"xcorpus-text: {test_corpus} shares fewer than 2 classes with "
                          f"{'+'.join(train_corpora)}")
    t0 = time.perf_counter()
    sel, cand, temperature, head = _choose(ctx, train_corpora, classes, cands)
    proba, y = _scored(ctx, head, test_corpus, "test", classes)
    m = _metrics(y, proba, classes, bins)
    cal = apply_temperature(proba, temperature)
    ece_ts = ece(cal, y, bins=bins)
    train_texts = {t.texts[i] for i in t.rows(train_corpora, "train")}
    test_rows = t.rows([test_corpus], "test", classes)
    seen = sum(1 for i in test_rows if t.texts[i] in train_texts)
    counts = np.bincount(y, minlength=len(classes))
    cell = {
        "train": list(train_corpora), "test": test_corpus, "classes": classes,
        "chance_ua": 1.0 / len(classes), "majority_wa": float(counts.max() / max(1, len(y))),
        "dropped": dropped, "n_train": int(head["info"]["train_items"]), "n_test": len(y),
        "test_texts_seen_in_training": int(seen),
        "macro_f1": m["macro_f1"], "ua": m["ua"], "wa": m["wa"],
        "weighted_f1": m["weighted_f1"], "roc_auc": m.get("roc_auc"),
        "per_class": m["per_class"], "confusion": m["confusion"],
        "ece": m["ece"], "ece_ts": ece_ts, "temperature": temperature,
        "chosen": cand.to_dict(), "chosen_short": cand.short(),
        "selection": _summary(sel, cands),
        "fit": {k: v for k, v in head["info"].items()},
        "wall_s": round(time.perf_counter() - t0, 1),
        "_metrics": m,
    }
    if ctx.log:
        ctx.log(f"  {'+'.join(train_corpora)} -> {test_corpus} ({len(classes)} classes, chance "
                f"{100 / len(classes):.1f}): macro-F1 {100 * m['macro_f1']:.2f}, UA "
                f"{100 * m['ua']:.2f}, ECE {100 * m['ece']:.1f} -> {100 * ece_ts:.1f} "
                f"(T {temperature:g})")
    return cell


def joint_model(ctx: TextContext, corpora: Sequence[str], cands: Sequence[Candidate],
                labels: Sequence[str], *, bins: int = 15, test: bool = True) -> dict[str, Any]:
    """The model trained on all ``corpora``: LOCO selection over them (dev splits), the chosen
    candidate fitted on every train split over ``labels`` present there, the temperature from
    the LOCO out-of-corpus dev probabilities; in-corpus dev (and ``test``) figures per corpus."""
    t = ctx.table
    present = set().union(*(t.labels_of([c], "train") for c in corpora))
    classes = [c for c in labels if c in present]
    sel, cand, temperature, head = _choose(ctx, corpora, classes, cands)
    figures: dict[str, Any] = {}
    for part in ("val", "test") if test else ("val",):
        for c in corpora:
            shared = [k for k in classes if k in t.labels_of([c], part)]
            if len(shared) < 2:
                continue
            p, y = _scored(ctx, head, c, part, shared)
            p = apply_temperature(p, temperature)
            m = _metrics(y, p, shared, bins)
            figures[f"{'dev' if part == 'val' else 'test'}_{c}"] = {
                "classes": shared, "n": len(y),
                **{k: m[k] for k in ("macro_f1", "ua", "wa", "weighted_f1", "ece")},
                "per_class": m["per_class"], "confusion": m["confusion"]}
    loco = {f["left_out"]: {"classes": f["classes"],
                            "dev_macro_f1": None if not np.isfinite(sel["scores"][sel["best"], j])
                            else round(float(sel["scores"][sel["best"], j]), 4)}
            for j, f in enumerate(sel["folds"])}
    for s, p, y in sel["held"]:
        loco[s]["ece"] = round(ece(p, y, bins=bins), 4)
        loco[s]["ece_ts"] = round(ece(apply_temperature(p, temperature), y, bins=bins), 4)
    if ctx.log:
        ctx.log(f"  joint model on {'+'.join(corpora)}: {cand.short()}, T {temperature:g}; "
                + ", ".join(f"{k} wF1 {100 * v['weighted_f1']:.2f} mF1 "
                            f"{100 * v['macro_f1']:.2f}" for k, v in figures.items()))
    return {"candidate": cand, "classes": classes, "head": head, "temperature": temperature,
            "selection": _summary(sel, cands),
            "loco_dev": loco, "figures": figures}


# -- the suite -------------------------------------------------------------------------------


def check(cfg: RunConfig) -> None:
    """Refuse a config that is not text on MiniLM embeddings (``features.name`` text_clean);
    limit the threads to ``train.num_threads``."""
    if cfg.task.modality != "text" or cfg.features.name != "text_clean":
        raise ConfigError(f"{cfg.suite}: task.modality must be text and features.name "
                          "text_clean (MiniLM embeddings of the cleaned texts)")
    limit_threads(cfg)


def setup(cfg: RunConfig, *, quick: bool = False) -> tuple[JointParams, list[Candidate]]:
    """The typed ``model.params`` of a cross-corpus config and its candidates (``quick``: the
    first two), the config checked and the threads limited (:func:`check`)."""
    check(cfg)
    p = JointParams.of(cfg.model)
    cands = candidates(p.grid)
    return p, cands[:2] if quick else cands


class XcorpusTextSuite(Suite, modality="text"):
    """Base of the cross-corpus text suites: the config's check, the candidates, the corpora's
    embedded table, the heatmap and the result."""

    #: what the heads are fitted on, as the result's notes say
    inputs = "frozen MiniLM sentence embeddings"

    def grid_candidates(self) -> list[Candidate]:
        """The candidates of ``model.params.grid`` (quick: the first two), the config checked
        and the threads limited (:func:`check`)."""
        check(self.cfg)
        cands = candidates(self.p.grid)
        return cands[:2] if self.quick else cands

    def load(self) -> tuple[TextTable, dict[str, Any]]:
        """The embedded table of ``model.params.corpora`` and what was loaded."""
        p = self.p
        return load_table(p.corpora, features=self.cfg.features, roots=p.roots,
                          goemotions_multilabel=p.goemotions_multilabel, quick=self.quick,
                          log=self.log)

    def context(self, table: TextTable) -> TextContext:
        return TextContext(table, seed=self.seeds[0], mlp=self.p.mlp, log=self.log)

    def loco(self, cands: Sequence[Any]) -> dict[str, Any]:
        """Every LOCO cell and the joint model (when ``model.params.joint``) over ``cands``;
        the result (:meth:`loco_result`)."""
        p = self.p
        table, loaded = self.load()
        ctx = self.context(table)
        cells = [run_cell(ctx, [c for c in p.corpora if c != test], test, cands,
                          bins=p.ece_bins, labels=p.labels) for test in p.corpora]
        joint = joint_model(ctx, p.corpora, cands, p.labels, bins=p.ece_bins) if p.joint \
            else None
        return self.loco_result(cells, joint, loaded)

    def loco_result(self, cells: list[dict[str, Any]], joint: Mapping[str, Any] | None,
                    loaded: Mapping[str, Any]) -> dict[str, Any]:
        """The result of the cells (and joint model); writes the heatmap PNG."""
        name = self.cfg.suite + ("-quick" if self.quick else "")
        png = plot_heatmap(cells, results_dir() / f"{name}.png",
                           title=f"{name}: held-out corpus, F1 per class (%)")
        return result(self.cfg, self.p, cells, joint, loaded, self.timer, png, self.quick,
                      inputs=self.inputs)


class XcorpusText(XcorpusTextSuite, name="xcorpus-text",
                  params={"model": JointParams, "features": TextFeatureParams}):
    """Leave-one-corpus-out text emotion recognition over dair-ai, MELD and GoEmotions
    (canonical labels): nested LOCO selection, calibration; macro-F1"""

    def body(self) -> dict[str, Any]:
        if self.log:
            self.log(f"xcorpus-text: loading {', '.join(self.p.corpora)}")
        return self.loco(self.grid_candidates())


#: the ``xcorpus-text`` suite: result dict; writes the heatmap PNG to the results folder
run_suite = xcorpus_text = XcorpusText.run
