"""The joint text model at MiniLM's cost: a student head on MiniLM inputs (the embedding, and
optionally its zero-shot prototype similarities) trained on the soft labels of a teacher that
also reads SmolLM2-135M's prompted states (the joint model of ``xcorpus-text-llm``), so that
the product does not run the language model per sentence.

Suite ``xcorpus-text-distil`` (``configs/xcorpus-text-distil.yaml``); model folder
``configs/models/text.yaml`` (``emofuse train``, ``model.name: distil``). ``model.params``
are those of ``xcorpus-text-transfer`` (the *student's* feature sets, which may not read the
language model) plus:

- ``teacher``: one feature set and one head (fixed, not searched): fitted on the same train
  rows as the student, wherever the student is fitted (each fold of the selection, each cell,
  the joint model), so the held-out corpus never trains the teacher either;
- ``alpha``: the grid of the soft-label weight: the student's target for a row is
  ``alpha * teacher probabilities + (1 - alpha) * one-hot label`` (0: the plain head).

A soft target is fitted exactly by expanding each row into one weighted row per class
(weight: the row's sample weight times the target's probability; targets below
:data:`MIN_TARGET` are dropped): the cross-entropy of soft labels is the weighted
cross-entropy of those rows, for the logistic regression and the MLP alike (the MLP stops
early on the dev splits' hard labels).

Rows: every train split cut to ``train_cap`` (stratified, seed 0), ``joint_uncapped`` corpora
whole, in the cells and the joint model alike (the teacher's language-model states are computed
for those train rows only). Selection and the joint model's keep rule: as
``xcorpus-text-transfer`` (:func:`.xcorpus_text_transfer.select_features`,
:func:`.xcorpus_text_transfer.joint_over_sets`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..config import Params
from ..errors import ConfigError
from .text_params import GridSpec, TextFeatureParams, Unit
from .xcorpus_text import Candidate, TextContext, TextTable, fit_on, head_proba
from .xcorpus_text_transfer import (FeatureSet, TransferParams, XcorpusTextTransfer,
                                    cap_train, feature_matrix, feature_tables,
                                    joint_over_sets, llm_states)

__all__ = ["DistilParams", "TeacherSpec", "DistilCandidate", "soft_rows",
           "XcorpusTextDistil", "MIN_TARGET", "run_suite"]

#: soft targets below this probability are not expanded into a row
MIN_TARGET = 1e-3


class TeacherSpec(Params):
    """``model.params.teacher``: the teacher's input and head (one of each, not searched)."""

    features: FeatureSet
    head: GridSpec = Field(default_factory=GridSpec)

    @field_validator("head")
    @classmethod
    def _one(cls, v: GridSpec) -> GridSpec:
        if len(v.combinations()) != 1:
            raise ValueError("the teacher's head is one candidate, not a grid")
        return v

    def candidate(self) -> Candidate:
        return Candidate(**self.head.combinations()[0])


class DistilParams(TransferParams):
    """``model.params`` of ``xcorpus-text-distil`` (see the module)."""

    teacher: TeacherSpec
    alpha: list[Unit] = Field(default_factory=lambda: [0.0, 0.5, 1.0], min_length=1)

    @model_validator(mode="after")
    def _student_inputs(self) -> DistilParams:
        if bad := [f.name for f in self.feature_sets if f.llm]:
            raise ValueError(f"student feature set(s) {bad} read the language model: the "
                             "student's inputs are MiniLM's (the teacher's may be anything)")
        for st in self.teacher.features.llm:
            from ..features.llm_text import STATE

            layer = int(STATE.match(st).group(2))  # type: ignore[union-attr]
            if layer not in self.llm.layers:
                raise ValueError(f"teacher: {st} reads layer {layer}, not among llm.layers "
                                 f"{self.llm.layers}")
        return self


def soft_rows(y: np.ndarray, w: np.ndarray, q: np.ndarray | None, alpha: float, *,
              min_target: float = MIN_TARGET) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, classes and weights of the expanded training set whose weighted cross-entropy is
    that of the soft targets ``alpha * q + (1 - alpha) * onehot(y)`` with row weights ``w``."""
    n = len(y)
    if q is None or alpha == 0:
        return np.arange(n), np.asarray(y, np.int64), np.asarray(w, np.float64)
    t = alpha * np.asarray(q, np.float64)
    t[np.arange(n), y] += 1.0 - alpha
    r, k = np.nonzero(t >= min_target)
    return r, k.astype(np.int64), np.asarray(w, np.float64)[r] * t[r, k]


@dataclasses.dataclass(frozen=True)
class DistilCandidate:
    """A student head (``base``) trained on ``alpha``-mixed soft labels of the teacher; fits
    itself (:meth:`fit_on`, the hook of :func:`.xcorpus_text.fit_on`)."""

    base: Candidate
    alpha: float
    teacher: Candidate
    #: the teacher's inputs, row for row the student's table
    teacher_ctx: TextContext | None = dataclasses.field(default=None, compare=False,
                                                        repr=False)
    teacher_name: str = ""

    # what the model folder reads of a candidate: the student's
    head = property(lambda self: self.base.head)
    dropout = property(lambda self: self.base.dropout)
    weight_decay = property(lambda self: self.base.weight_decay)
    love = property(lambda self: self.base.love)

    def short(self) -> str:
        return f"{self.base.short()} a{self.alpha:g}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.base.to_dict(), "alpha": self.alpha,
                "teacher": {"features": self.teacher_name, **self.teacher.to_dict()}}

    def fit_on(self, ctx: TextContext, corpora: Sequence[str], classes: Sequence[str]
               ) -> dict[str, Any]:
        """The teacher fitted on the train splits of ``corpora`` over ``classes``, then the
        student on the same rows with the mixed soft targets (:func:`soft_rows`)."""
        info: dict[str, Any] = {}

        def soft(rows: np.ndarray, y: np.ndarray, w: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            q = self._teacher_proba(ctx, rows, corpora, classes) if self.alpha > 0 else None
            if q is not None:
                info["teacher"] = {"features": self.teacher_name, "head": self.teacher.short(),
                                   "train_agreement": round(float((q.argmax(1) == y).mean()),
                                                            4)}
            r, k, wk = soft_rows(y, w, q, self.alpha)
            info.update(train_items=int(len(rows)), expanded_rows=int(len(r)))
            return r, k, wk

        head = fit_on(ctx, corpora, classes, self.base, targets=soft)
        head["info"] = {**head["info"], **info, "alpha": self.alpha}
        return head

    def _teacher_proba(self, ctx: TextContext, rows: np.ndarray, corpora: Sequence[str],
                       classes: Sequence[str]) -> np.ndarray:
        """The teacher, fitted on the train splits of ``corpora``, on the student's ``rows``."""
        tctx = self.teacher_ctx
        if tctx is None or len(tctx.table.labels) != len(ctx.table.labels):
            raise ConfigError("distillation: the teacher's table must hold the student's rows")
        tx = tctx.table.x[rows]
        if not np.isfinite(tx).all():
            raise ConfigError("distillation: the teacher's inputs are missing for some "
                              "training rows (language-model states not computed)")
        return head_proba(fit_on(tctx, corpora, classes, self.teacher), tx)


class XcorpusTextDistil(XcorpusTextTransfer, name="xcorpus-text-distil",
                        params={"model": DistilParams, "features": TextFeatureParams}):
    """xcorpus-text with a MiniLM student distilled from a teacher that reads SmolLM2 states:
    the soft-label weight, the student's inputs and head chosen by nested LOCO; macro-F1"""

    inputs = "MiniLM inputs (student), soft labels of a teacher reading SmolLM2 states"

    def tables(self) -> tuple[TextTable, dict[str, Any], dict[str, TextContext],
                              dict[str, list[DistilCandidate]]]:
        """The rows (capped), what was loaded, the student's contexts and its candidates."""
        p = self.p
        full, loaded = self.load()
        table = cap_train(full, p.train_cap, exempt=p.joint_uncapped) if p.train_cap else full
        tfs = p.teacher.features
        llm = llm_states(table, p.llm, log=self.log, parts=("train",)) if tfs.llm else None
        tctx = self.context(dataclasses.replace(
            table, x=feature_matrix(table.x, tfs, labels=p.labels, llm=llm)))
        sets = p.feature_sets[:2] if self.quick else p.feature_sets
        ctxs = {n: self.context(t) for n, t in
                feature_tables(table, sets, labels=p.labels).items()}
        grid = self.grid_candidates()
        alphas = p.alpha[-2:] if self.quick else p.alpha
        teacher = p.teacher.candidate()
        cands = {fs.name: [DistilCandidate(b, float(a), teacher, tctx, tfs.name)
                           for a in alphas for b in grid] for fs in sets}
        return table, loaded, ctxs, cands

    def body(self) -> dict[str, Any]:
        p = self.p
        table, loaded, ctxs, cands = self.tables()
        cells = self.cells(table, ctxs, cands)
        joint = self.joint_model(table, ctxs, cands) if p.joint else None
        out = self.loco_result(cells, joint, loaded)
        out["feature_sets"] = [fs.model_dump(exclude_none=True) for fs in p.feature_sets]
        out["teacher"] = p.teacher.model_dump(exclude_none=True)
        out["alpha"] = list(p.alpha)
        out["train_used"] = {c: len(table.rows([c], "train")) for c in p.corpora}
        out["notes"] = _note(p, out["train_used"]) + out["notes"]
        return out

    def joint_model(self, table: TextTable, ctxs: Mapping[str, TextContext],
                    cands: Mapping[str, Sequence[DistilCandidate]]) -> dict[str, Any]:
        """The joint student: chosen by LOCO over every corpus under ``joint_keep``
        (:func:`.xcorpus_text_transfer.joint_over_sets`), fitted on every train split."""
        p = self.p
        joint = joint_over_sets(ctxs, cands, p.corpora, p.labels, bins=p.ece_bins,
                                keep=p.joint_keep)
        joint["train_used"] = {c: len(table.rows([c], "train")) for c in p.corpora}
        return joint

    def joint_alone(self) -> tuple[dict[str, Any], TextTable, FeatureSet, dict[str, Any]]:
        """The joint student without the LOCO cells (``emofuse train``)."""
        table, loaded, ctxs, cands = self.tables()
        joint = self.joint_model(table, ctxs, cands)
        fs = next(f for f in self.p.feature_sets if f.name == joint["features"])
        return joint, ctxs[fs.name].table, fs, loaded


def _note(p: DistilParams, used: Mapping[str, int]) -> str:
    t = p.teacher
    return (f"Distillation: the student (inputs: the feature sets below, none reading the "
            f"language model) is trained on `alpha * teacher + (1 - alpha) * label` (alpha in "
            f"{', '.join(f'{a:g}' for a in p.alpha)}, chosen with the inputs and the head by "
            f"the nested rule; 0 is the plain head). Teacher, fixed: `{t.features.name}` "
            f"(MiniLM, prototypes {t.features.prototypes}, SmolLM2 states "
            f"{', '.join(t.features.llm) or 'none'}) with `{t.candidate().short()}`, fitted "
            "on the same train rows as the student wherever the student is fitted (every "
            "selection fold, cell and the joint model): the held-out corpus trains neither. "
            "Soft targets are fitted as one weighted row per class. Training rows, cells and "
            "joint model alike: " + ", ".join(f"{c} {n}" for c, n in used.items())
            + f" (train splits cut to {p.train_cap} items, stratified, seed 0; "
            f"{', '.join(p.joint_uncapped) or 'none'} whole).\n\n")


#: the ``xcorpus-text-distil`` suite: result dict; writes the heatmap PNG
run_suite = xcorpus_text_distil = XcorpusTextDistil.run
