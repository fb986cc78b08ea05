"""Cross-corpus text emotion recognition with features chosen for transfer: the
``xcorpus-text`` protocol (:mod:`.xcorpus_text`: leave one corpus out over dair-ai, MELD and
GoEmotions, shared canonical labels, nested LOCO selection, temperature from the training
corpora) where the nested selection also chooses the *features*.

Suite ``xcorpus-text-transfer`` (``configs/xcorpus-text-transfer.yaml``). ``model.params`` are
those of ``xcorpus-text`` plus ``feature_sets``: named inputs of the head, each with its own
grid (default: the top-level ``grid``):

- ``minilm``: the frozen MiniLM sentence embedding (384-d, unit norm), as ``xcorpus-text``;
- ``prototypes``: zero-shot prototype similarities (:mod:`emofuse.features.text_prototypes`:
  cosine similarity with fixed descriptions of each emotion, per template or pooled per
  emotion), corpus-independent; alone or appended to the embedding;
- ``llm``: hidden states of SmolLM2-135M-Instruct prompted with the sentence
  (:mod:`emofuse.features.llm_text`): the last token's state (``last<k>``) or the mean state
  (``mean<k>``) of hidden layer *k* (-1: the last), appended.

Suite ``xcorpus-text-llm`` (``configs/xcorpus-text-llm.yaml``) is this suite with
``train_cap``: every corpus' train split cut to a stratified sample (seed 0) before anything
else, so that the language model's forward passes fit a CPU budget; every feature set, the
MiniLM one too, is then fitted on the same rows.

Selection, per cell: every (feature set, candidate) is fitted on the train split of one training
corpus and scored on the dev split of the other, both ways (the rule of
:func:`.xcorpus_text.select`); the best mean wins (ties: the first feature set, then the first
candidate). The chosen pair is then fitted on both training corpora, the temperature comes from
its out-of-corpus dev probabilities, and the held-out corpus' test split is scored once
(:func:`.xcorpus_text.run_cell`). The held-out corpus chooses and calibrates nothing. With
``joint: true`` the suite also trains the joint (all-corpora) model, feature set and head
chosen together by LOCO over all corpora (:func:`joint_over_sets`), and scores it on every
corpus' own dev and test split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .. import protocols
from ..config import Params, RunConfig
from ..errors import ConfigError
from ..features.llm_text import STATE, state_blocks
from .text_params import GridSpec, JointParams, TextFeatureParams
from .xcorpus_text import (Candidate, TextContext, TextTable, XcorpusTextSuite, _scored,
                           candidates, fit_on, joint_model, run_cell, select)
from .xcorpus_text import check as check_text

__all__ = ["XcorpusTextTransfer", "XcorpusTextLLM", "FeatureSet", "KeepRule", "LLMSettings",
           "TransferParams", "cap_train", "feature_matrix", "feature_tables", "llm_states",
           "model_inputs",
           "select_features", "run_suite", "check"]

class FeatureSet(Params):
    """One input of the head (``model.params.feature_sets``)."""

    name: str = Field(min_length=1)   #: shown in the selection tables
    minilm: bool = True               #: the 384-d MiniLM embedding
    #: zero-shot prototype similarities: none, one per template (all), or per emotion
    prototypes: Literal["none", "all", "mean", "max", "meanmax"] = "none"
    centre: bool = False              #: prototypes minus each row's mean over the templates
    #: SmolLM2 states appended: ``last<k>`` / ``mean<k>`` (layer k among ``llm.layers``)
    llm: list[str] = Field(default_factory=list)
    #: this set's grid (a block or a list of blocks); None: model.params.grid
    grid: list[GridSpec] | None = None

    @field_validator("grid", mode="before")
    @classmethod
    def _blocks(cls, v: Any) -> Any:
        return [v] if isinstance(v, Mapping) else v

    @field_validator("llm")
    @classmethod
    def _states(cls, v: list[str]) -> list[str]:
        if bad := [x for x in v if not STATE.match(x)]:
            raise ValueError(f"llm states {bad}: each is last<layer> or mean<layer>, e.g. "
                             "last-1, mean18")
        return v


class LLMSettings(Params):
    """The language model's forward pass (``model.params.llm``): SmolLM2-135M-Instruct, the
    one shipped (:func:`emofuse.augment.text.smollm2_gguf`), prompted with
    :data:`emofuse.features.llm_text.PROMPT`."""

    #: hidden states extracted (0: the embeddings, -1: the last); feature sets pick among them
    layers: list[int] = Field(default_factory=lambda: [6, 12, 18, 24, -1], min_length=1)
    batch_size: int = Field(default=32, ge=1)


class KeepRule(Params):
    """``model.params.joint_keep``: the joint model must keep one corpus' in-corpus figure.
    A candidate is eligible iff, fitted on every train split, its ``metric`` on the dev split of
    ``corpus`` (no temperature) is at least ``min``; the eligible one with the best LOCO dev
    mean wins, and if none is eligible the one with the best such dev figure."""

    corpus: str = Field(min_length=1)
    metric: Literal["weighted_f1", "macro_f1"] = "weighted_f1"
    min: float = Field(ge=0, le=1)


class TransferParams(JointParams):
    """``model.params`` of ``xcorpus-text-transfer``: those of ``xcorpus-text`` (the joint
    model excepted) and the feature sets the nested selection chooses from."""

    feature_sets: list[FeatureSet] = Field(
        default_factory=lambda: [FeatureSet(name="minilm")], min_length=1)
    #: the suite also trains and scores the joint model (feature set and head chosen by LOCO
    #: over all corpora, :func:`joint_over_sets`)
    joint: bool = False
    #: per corpus, at most this many train items (a stratified sample, seed 0); None: all
    train_cap: int | None = Field(default=None, ge=2)
    #: corpora whose whole train split the joint model uses (the LOCO cells stay capped)
    joint_uncapped: list[str] = Field(default_factory=list)
    #: the joint model's grid, for every feature set (None: each set's own grid)
    joint_grid: list[GridSpec] | None = None
    #: the joint model keeps one corpus' in-corpus dev figure (:class:`KeepRule`)
    joint_keep: KeepRule | None = None
    llm: LLMSettings = Field(default_factory=LLMSettings)

    @field_validator("joint_grid", mode="before")
    @classmethod
    def _joint_blocks(cls, v: Any) -> Any:
        return [v] if isinstance(v, Mapping) else v

    @field_validator("feature_sets")
    @classmethod
    def _valid(cls, v: list[FeatureSet]) -> list[FeatureSet]:
        names = [f.name for f in v]
        if len(set(names)) != len(names):
            raise ValueError(f"feature set names repeat: {', '.join(names)}")
        if bad := [f.name for f in v if not f.minilm and f.prototypes == "none" and not f.llm]:
            raise ValueError(f"feature set(s) without any input: {', '.join(bad)}")
        return v

    @model_validator(mode="after")
    def _llm_layers(self) -> TransferParams:
        for fs in self.feature_sets:
            for st in fs.llm:
                layer = int(STATE.match(st).group(2))  # type: ignore[union-attr]
                if layer not in self.llm.layers:
                    raise ValueError(f"feature set {fs.name!r}: {st} reads layer {layer}, "
                                     f"not among llm.layers {self.llm.layers}")
        extra = set(self.joint_uncapped) | ({self.joint_keep.corpus} if self.joint_keep else set())
        if bad := sorted(extra - set(self.corpora)):
            raise ValueError(f"joint_uncapped / joint_keep name corpora not in corpora: {bad}")
        return self


def feature_matrix(x: np.ndarray, fs: FeatureSet, *, labels: Sequence[str],
                   llm: Mapping[str, Any] | None = None) -> np.ndarray:
    """The input of feature set ``fs`` from MiniLM embeddings ``x`` (prototypes of
    ``labels``) and the rows' LLM states ``llm`` (:func:`llm_states`; needed when ``fs.llm``
    names any)."""
    from ..features.text_prototypes import prototype_features

    blocks = [np.asarray(x, np.float32)] if fs.minilm else []
    if fs.prototypes != "none":
        blocks.append(prototype_features(x, labels=labels, pooling=fs.prototypes,
                                         centre=fs.centre))
    if fs.llm:
        if llm is None:
            raise ConfigError(f"feature set {fs.name!r} needs the LLM states")
        blocks += state_blocks(llm, layers=llm["layers"], names=fs.llm)
    return np.concatenate(blocks, 1) if len(blocks) > 1 else blocks[0]


def model_inputs(fs: FeatureSet, p: TransferParams) -> dict[str, Any]:
    """What a saved model's card says its input is (``features.inputs``, read by
    :class:`emofuse.inference.text.TextPredictor`): the MiniLM embedding, the prototypes and
    the language model's states of feature set ``fs``, in :func:`feature_matrix`'s order."""
    from ..augment.text import SmolLM2Backend
    from ..features.llm_text import LLM_TEXT_VERSION, PROMPT
    from ..labels import BASIC7

    out: dict[str, Any] = {"set": fs.name, "minilm": fs.minilm, "prototypes": None, "llm": None}
    if fs.prototypes != "none":
        out["prototypes"] = {"pooling": fs.prototypes, "centre": fs.centre,
                             "labels": list(p.labels)}
    if fs.llm:
        out["llm"] = {"model": SmolLM2Backend.name, "version": LLM_TEXT_VERSION,
                      "prompt": PROMPT, "max_len": 96, "layers": list(p.llm.layers),
                      "states": list(fs.llm), "score_labels": list(BASIC7),
                      "storage": "float16 (as cached in training)"}
    return out


def feature_tables(table: TextTable, sets: Sequence[FeatureSet], *, labels: Sequence[str],
                   llm: Mapping[str, Any] | None = None) -> dict[str, TextTable]:
    """One table per feature set (the same rows, ``x`` replaced)."""
    return {fs.name: dataclasses.replace(table, x=feature_matrix(table.x, fs, labels=labels,
                                                                 llm=llm))
            for fs in sets}


def cap_train(table: TextTable, cap: int, *, seed: int = 0,
              exempt: Sequence[str] = ()) -> TextTable:
    """``table`` with every corpus' train split cut to at most ``cap`` rows (a sample
    stratified by label, ``seed``), those of ``exempt`` corpora whole; other splits and the row
    order kept."""
    from sklearn.model_selection import train_test_split

    keep = np.ones(len(table.labels), bool)
    for c in np.unique(table.corpus):
        if c in exempt:
            continue
        rows = table.rows([c], "train")
        if len(rows) > cap:
            kept, _ = train_test_split(rows, train_size=cap, random_state=seed,
                                       stratify=table.labels[rows])
            keep[np.setdiff1d(rows, kept)] = False
    idx = np.flatnonzero(keep)
    recs = [table.records[i] for i in idx] if len(table.records) == len(keep) else []
    return TextTable(table.x[idx], table.labels[idx], table.corpus[idx], table.part[idx],
                     [table.texts[i] for i in idx], recs)


def llm_states(table: TextTable, settings: LLMSettings, *,
               log: Callable[[str], None] | None = None,
               parts: Sequence[str] | None = None) -> dict[str, Any]:
    """SmolLM2-135M-Instruct's prompted states of every row (:func:`llm_text_features`, cached;
    one call per corpus and split, rows in table order): ``{"mean", "last"}`` ``(n, k*d)``
    and ``layers``. With ``parts``, only the rows of those splits; the others are NaN."""
    import time

    import torch

    from ..augment.text import SmolLM2Backend, _load_smollm2, smollm2_gguf
    from ..features.llm_text import llm_text_features
    from ..labels import BASIC7

    tok, model = _load_smollm2(str(smollm2_gguf()))
    layers = list(settings.layers)
    n = len(table.labels)
    out: dict[str, Any] = {"layers": layers}
    for c in dict.fromkeys(table.corpus.tolist()):
        for part in dict.fromkeys(table.part.tolist()):
            if parts is not None and part not in parts:
                continue
            rows = table.rows([c], part)
            if not len(rows):
                continue
            t0 = time.perf_counter()
            with torch.inference_mode():
                f = llm_text_features([table.texts[i] for i in rows], tokenizer=tok,
                                      model=model, model_id=SmolLM2Backend.name,
                                      labels=list(BASIC7), layers=layers,
                                      batch_size=settings.batch_size)
            for kind in ("mean", "last"):
                if kind not in out:
                    out[kind] = np.full((n, f[kind].shape[1]), np.nan if parts else 0.0,
                                        np.float32)
                out[kind][rows] = f[kind]
            if log:
                log(f"  smollm2 states: {c} {part} {len(rows)} items "
                    f"({time.perf_counter() - t0:.0f} s)")
    return out


def _set_candidates(fs: FeatureSet, default: Sequence[Candidate], *, quick: bool
                    ) -> list[Candidate]:
    if fs.grid is None:
        return list(default)
    cands = candidates(fs.grid, where=f"model.params.feature_sets.{fs.name}")
    return cands[:2] if quick else cands


def select_features(ctxs: Mapping[str, TextContext], cands: Mapping[str, Sequence[Candidate]],
                    train_corpora: Sequence[str], classes: Sequence[str]
                    ) -> tuple[str, Candidate, dict[str, Any]]:
    """Nested LOCO over every (feature set, candidate): the winner and the joined scores
    (rows named ``set: candidate``)."""
    best: tuple[float, str, Candidate] | None = None
    names, scores, means, folds = [], [], [], None
    for name, ctx in ctxs.items():
        sel = select(ctx, train_corpora, classes, cands[name])
        folds = sel["folds"]
        names += [f"{name}: {c.short()}" for c in cands[name]]
        scores.append(sel["scores"])
        means.append(sel["mean"])
        m = float(sel["mean"][sel["best"]])
        if best is None or m > best[0]:
            best = (m, name, cands[name][sel["best"]])
    assert best is not None
    s, mean = np.concatenate(scores), np.concatenate(means)
    summary = {"folds": folds, "candidates": names,
               "dev_macro_f1": [[None if not np.isfinite(v) else round(float(v), 4)
                                 for v in row] for row in s],
               "mean": [round(float(v), 4) for v in mean], "chosen_mean": round(best[0], 4)}
    return best[1], best[2], summary


def joint_over_sets(ctxs: Mapping[str, TextContext], cands: Mapping[str, Sequence[Candidate]],
                    corpora: Sequence[str], labels: Sequence[str], *, bins: int = 15,
                    keep: KeepRule | None = None) -> dict[str, Any]:
    """The joint model over feature sets: every (feature set, candidate) scored by LOCO over
    all ``corpora`` (train splits of the others -> dev split of the one left out), the best
    fitted on every train split (:func:`.xcorpus_text.joint_model`, its temperature from the
    winner's out-of-corpus dev probabilities); the joined selection table. With ``keep``
    (:class:`KeepRule`) only candidates that keep that corpus' in-corpus dev figure compete."""
    table = next(iter(ctxs.values())).table
    present = set().union(*(table.labels_of([c], "train") for c in corpora))
    classes = [c for c in labels if c in present]
    name, cand, summary = select_features(ctxs, cands, corpora, classes)
    if keep is not None:
        name, cand = _keep_choice(ctxs, cands, corpora, classes, keep, summary)
    joint = joint_model(ctxs[name], corpora, [cand], labels, bins=bins)
    joint.update(features=name, chosen_short=f"{name}: {cand.short()}", selection=summary)
    return joint


def _keep_choice(ctxs: Mapping[str, TextContext], cands: Mapping[str, Sequence[Candidate]],
                 corpora: Sequence[str], classes: Sequence[str], keep: KeepRule,
                 summary: dict[str, Any]) -> tuple[str, Candidate]:
    """The :class:`KeepRule` choice among every (feature set, candidate); its figures are
    added to ``summary`` (``keep``) and ``chosen_mean`` becomes the winner's LOCO mean."""
    from ..evaluate.metrics import classification_metrics

    pairs = [(n, c) for n in ctxs for c in cands[n]]
    dev = []
    for n, c in pairs:
        ctx = ctxs[n]
        shared = [k for k in classes if k in ctx.table.labels_of([keep.corpus], "val")]
        p, y = _scored(ctx, fit_on(ctx, corpora, classes, c), keep.corpus, "val", shared)
        dev.append(float(classification_metrics(y, p.argmax(1), classes=shared)[keep.metric]))
    mean = np.asarray(summary["mean"], float)
    ok = np.asarray(dev) >= keep.min
    i = int(np.flatnonzero(ok)[np.argmax(mean[ok])]) if ok.any() else int(np.argmax(dev))
    summary["keep"] = {**keep.model_dump(), "dev": [round(v, 4) for v in dev],
                       "eligible": ok.tolist(), "any_eligible": bool(ok.any())}
    summary["chosen_mean"] = round(float(mean[i]), 4)
    return pairs[i]


def _classes(table: TextTable, train_corpora: Sequence[str], test_corpus: str,
             labels: Sequence[str]) -> list[str]:
    """The classes of a cell, as :func:`.xcorpus_text.run_cell` computes them."""
    tr = [table.records[i] for i in table.rows(train_corpora, "train")]
    te = [table.records[i] for i in table.rows([test_corpus], "test")]
    split, _ = protocols.cross_corpus(tr, te)
    return [c for c in split.info["labels"] if c in labels]


def check(cfg: RunConfig) -> TransferParams:
    """The typed ``model.params`` of a config of this suite; checks the task and the feature
    (:func:`.xcorpus_text.check`) and limits the threads."""
    check_text(cfg)
    return TransferParams.of(cfg.model)


class XcorpusTextTransfer(XcorpusTextSuite, name="xcorpus-text-transfer",
                          params={"model": TransferParams, "features": TextFeatureParams}):
    """xcorpus-text with transfer features (zero-shot prototypes) chosen by nested LOCO with
    the head; macro-F1"""

    inputs = "the feature sets below, chosen with the head"

    def body(self) -> dict[str, Any]:
        p, quick, log = self.p, self.quick, self.log
        default = self.grid_candidates()
        sets = p.feature_sets[:2] if quick else p.feature_sets
        full, loaded = self.load()
        table, used = full, None
        if p.train_cap:
            table = cap_train(full, p.train_cap)
            used = {c: len(table.rows([c], "train")) for c in p.corpora}
        llm = llm_states(table, p.llm, log=log) if any(fs.llm for fs in sets) else None
        tables = feature_tables(table, sets, labels=p.labels, llm=llm)
        ctxs = {n: self.context(t) for n, t in tables.items()}
        cands = {fs.name: _set_candidates(fs, default, quick=quick) for fs in sets}
        cells = self.cells(table, ctxs, cands)
        joint = self._joint(full, ctxs, cands, sets, quick=quick)[0] if p.joint else None
        out = self.loco_result(cells, joint, loaded)
        out["feature_sets"] = [fs.model_dump(exclude_none=True) for fs in sets]
        note = _NOTE
        if used is not None:
            out["train_used"] = used
            note += (f"Training rows: every corpus' train split cut to at most {p.train_cap} "
                     f"items (stratified by label, seed 0) before anything else, for every "
                     f"feature set: " + ", ".join(f"{c} {n}" for c, n in used.items())
                     + " (the counts below are before the cut).\n\n")
        if llm is not None:
            out["llm"] = p.llm.model_dump()
            note += _LLM_NOTE
        out["notes"] = note + out["notes"]
        return out

    def cells(self, table: TextTable, ctxs: Mapping[str, TextContext],
              cands: Mapping[str, Sequence[Candidate]]) -> list[dict[str, Any]]:
        """Every LOCO cell: the feature set and head chosen by the nested rule
        (:func:`select_features`), then scored once on the held-out corpus."""
        p, log = self.p, self.log
        cells = []
        for test in p.corpora:
            train = [c for c in p.corpora if c != test]
            classes = _classes(table, train, test, p.labels)
            name, cand, summary = select_features(ctxs, cands, train, classes)
            cell = run_cell(ctxs[name], train, test, [cand], bins=p.ece_bins, labels=p.labels)
            cell.update(features=name, chosen={**cell["chosen"], "features": name},
                        chosen_short=f"{name}: {cand.short()}", selection=summary)
            cells.append(cell)
            if log:
                log(f"  -> {test}: chose {cell['chosen_short']}")
        return cells

    def _joint(self, full: TextTable, ctxs: Mapping[str, TextContext] | None,
               cands: Mapping[str, Sequence[Candidate]], sets: Sequence[FeatureSet], *,
               quick: bool) -> tuple[dict[str, Any], dict[str, TextContext]]:
        """The joint model and its contexts: on the LOCO cells' rows (``ctxs``, when given),
        or with ``joint_uncapped`` corpora whole; over ``joint_grid`` when given; under
        ``joint_keep`` when given."""
        p = self.p
        if ctxs is None or (p.train_cap and p.joint_uncapped):
            table = cap_train(full, p.train_cap, exempt=p.joint_uncapped) if p.train_cap \
                else full
            llm = llm_states(table, p.llm, log=self.log) if any(fs.llm for fs in sets) else None
            ctxs = {n: self.context(t) for n, t in
                    feature_tables(table, sets, labels=p.labels, llm=llm).items()}
        if p.joint_grid is not None:
            grid = candidates(p.joint_grid, where="model.params.joint_grid")
            cands = {n: grid[:2] if quick else grid for n in cands}
        joint = joint_over_sets(ctxs, cands, p.corpora, p.labels, bins=p.ece_bins,
                                keep=p.joint_keep)
        if p.train_cap:
            t = next(iter(ctxs.values())).table
            joint["train_used"] = {c: len(t.rows([c], "train")) for c in p.corpora}
        return joint, dict(ctxs)

    def joint_alone(self) -> tuple[dict[str, Any], TextTable, FeatureSet, dict[str, Any]]:
        """The joint model without the LOCO cells (``emofuse train``): the model, the table of
        its feature set (the rows it was fitted on), that set and what was loaded."""
        p = self.p
        sets = p.feature_sets[:2] if self.quick else p.feature_sets
        default = self.grid_candidates()
        full, loaded = self.load()
        cands = {fs.name: _set_candidates(fs, default, quick=self.quick) for fs in sets}
        joint, ctxs = self._joint(full, None, cands, sets, quick=self.quick)
        fs = next(f for f in sets if f.name == joint["features"])
        return joint, ctxs[fs.name].table, fs, loaded


_NOTE = ("Feature sets (chosen per cell by the same nested rule, together with the head): "
         "`minilm` the frozen MiniLM embedding; `prototypes` cosine similarities with fixed "
         "descriptions of each emotion (emofuse.features.text_prototypes, written before any "
         "figure), per template (`all`) or pooled per emotion; a candidate is named "
         "`feature set: head`.\n\n")

_LLM_NOTE = ("`last<k>` / `mean<k>`: SmolLM2-135M-Instruct (the shipped GGUF, dequantised "
             "to float32) prompted with 'Text: {text}\\nThe emotion expressed is', the last "
             "token's / the mean hidden state of layer k (-1: the last; emofuse.features."
             "llm_text), appended to the set's other inputs; the logistic regression "
             "standardises its inputs with the statistics of the rows it is fitted on.\n\n")


class XcorpusTextLLM(XcorpusTextTransfer, name="xcorpus-text-llm",
                     params={"model": TransferParams, "features": TextFeatureParams}):
    """xcorpus-text with SmolLM2-135M hidden states as extra features, chosen by nested LOCO
    with the head (training splits capped); macro-F1"""


#: the ``xcorpus-text-transfer`` suite: result dict; writes the heatmap PNG
run_suite = xcorpus_text_transfer = XcorpusTextTransfer.run
