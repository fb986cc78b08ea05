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
  emotion), corpus-independent; alone or appended to the embedding.

Selection, per cell: every (feature set, candidate) is fitted on the train split of one training
corpus and scored on the dev split of the other, both ways (the rule of
:func:`.xcorpus_text.select`); the best mean wins (ties: the first feature set, then the first
candidate). The chosen pair is then fitted on both training corpora, the temperature comes from
its out-of-corpus dev probabilities, and the held-out corpus' test split is scored once
(:func:`.xcorpus_text.run_cell`). The held-out corpus chooses and calibrates nothing. The joint
(all-corpora) model is not part of this suite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from .. import protocols
from ..config import Params, RunConfig
from .text_params import GridSpec, JointParams, TextFeatureParams
from .xcorpus_text import (Candidate, TextContext, TextTable, XcorpusTextSuite, candidates,
                           run_cell, select)
from .xcorpus_text import check as check_text

__all__ = ["XcorpusTextTransfer", "FeatureSet", "TransferParams", "feature_matrix",
           "feature_tables", "select_features", "run_suite", "check"]


class FeatureSet(Params):
    """One input of the head (``model.params.feature_sets``)."""

    name: str = Field(min_length=1)   #: shown in the selection tables
    minilm: bool = True               #: the 384-d MiniLM embedding
    #: zero-shot prototype similarities: none, one per template (all), or per emotion
    prototypes: Literal["none", "all", "mean", "max", "meanmax"] = "none"
    centre: bool = False              #: prototypes minus each row's mean over the templates
    #: this set's grid (a block or a list of blocks); None: model.params.grid
    grid: list[GridSpec] | None = None

    @field_validator("grid", mode="before")
    @classmethod
    def _blocks(cls, v: Any) -> Any:
        return [v] if isinstance(v, Mapping) else v


class TransferParams(JointParams):
    """``model.params`` of ``xcorpus-text-transfer``: those of ``xcorpus-text`` (the joint
    model excepted) and the feature sets the nested selection chooses from."""

    feature_sets: list[FeatureSet] = Field(
        default_factory=lambda: [FeatureSet(name="minilm")], min_length=1)
    joint: Literal[False] = False     #: no joint model in this suite

    @field_validator("feature_sets")
    @classmethod
    def _valid(cls, v: list[FeatureSet]) -> list[FeatureSet]:
        names = [f.name for f in v]
        if len(set(names)) != len(names):
            raise ValueError(f"feature set names repeat: {', '.join(names)}")
        if bad := [f.name for f in v if not f.minilm and f.prototypes == "none"]:
            raise ValueError(f"feature set(s) without any input: {', '.join(bad)}")
        return v


def feature_matrix(x: np.ndarray, fs: FeatureSet, *, labels: Sequence[str]) -> np.ndarray:
    """The input of feature set ``fs`` from MiniLM embeddings ``x`` (prototypes of
    ``labels``)."""
    from ..features.text_prototypes import prototype_features

    blocks = [np.asarray(x, np.float32)] if fs.minilm else []
    if fs.prototypes != "none":
        blocks.append(prototype_features(x, labels=labels, pooling=fs.prototypes,
                                         centre=fs.centre))
    return np.concatenate(blocks, 1) if len(blocks) > 1 else blocks[0]


def feature_tables(table: TextTable, sets: Sequence[FeatureSet], *, labels: Sequence[str]
                   ) -> dict[str, TextTable]:
    """One table per feature set (the same rows, ``x`` replaced)."""
    return {fs.name: dataclasses.replace(table, x=feature_matrix(table.x, fs, labels=labels))
            for fs in sets}


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

    def body(self) -> dict[str, Any]:
        p, quick, log = self.p, self.quick, self.log
        default = self.grid_candidates()
        sets = p.feature_sets[:2] if quick else p.feature_sets
        table, loaded = self.load()
        tables = feature_tables(table, sets, labels=p.labels)
        ctxs = {n: self.context(t) for n, t in tables.items()}
        cands = {fs.name: _set_candidates(fs, default, quick=quick) for fs in sets}
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
        out = self.loco_result(cells, None, loaded)
        out["feature_sets"] = [fs.model_dump(exclude_none=True) for fs in sets]
        out["notes"] = _NOTE + out["notes"]
        return out


_NOTE = ("Feature sets (chosen per cell by the same nested rule, together with the head): "
         "`minilm` the frozen MiniLM embedding; `prototypes` cosine similarities with fixed "
         "descriptions of each emotion (emofuse.features.text_prototypes, written before any "
         "figure), per template (`all`) or pooled per emotion; a candidate is named "
         "`feature set: head`.\n\n")

#: the ``xcorpus-text-transfer`` suite: result dict; writes the heatmap PNG
run_suite = xcorpus_text_transfer = XcorpusTextTransfer.run
