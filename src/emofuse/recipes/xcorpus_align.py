"""Cross-corpus speech with domain alignment: suite ``xcorpus-speech-align``.

The leave-one-corpus-out matrix, settings, nested selection, temperature and figures of
:mod:`emofuse.recipes.xcorpus` (``xcorpus-speech``), with a larger candidate pool per
setting: the logistic-regression candidates of ``model.params.grid`` (the same grid keys as
``xcorpus-speech``) *and* the aligned-MLP candidates of ``model.params.align``
(:mod:`emofuse.models.domain_align`: a small MLP, optionally domain-adversarial (gradient
reversal on a corpus or speaker discriminator), MMD- or CORAL-aligned on its hidden layer, or
an adversarial autoencoder whose latent codes are pushed to one prior in every corpus). Each
aligned candidate first standardises the features exactly as the LR candidate with the same
``layers`` / ``norm`` / ``balance`` does (:func:`emofuse.recipes.xcorpus.transform`), then
reduces them to ``pca`` principal components of the training rows.

The nested LOCO selection picks among all candidates of a setting per cell (the held-out test
corpus never chooses), so the suite reports what a user of the chosen recipe would get.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..config import Params
from ..errors import ConfigError
from ..models.domain_align import AlignSpec, fit_aligned, pca_basis
from ._suite import limit_threads
from .xcorpus import (
    Candidate,
    Table,
    XcorpusSpeechSuite,
    _weights,
    candidates,
    fit_predict,
    run_loco,
    transform,
)

__all__ = ["XcorpusSpeechAlign", "AlignCandidate", "AlignGridParams", "AlignSuiteParams",
           "align_candidates", "fit_align", "run_suite"]

Setting = Literal["inductive", "folder", "enrol"]


class AlignGridParams(Params):
    """Aligned-MLP candidates of one setting: the product of the list-valued keys."""

    layers: list[list[int] | None] = Field(default_factory=lambda: [[3, 4]], min_length=1)
    """Whisper layer sets, concatenated (None: every column)."""
    norm: list[Literal["global", "corpus", "speaker"]] = Field(
        default_factory=lambda: ["global"], min_length=1)   #: standardisation (inductive)
    balance: list[Literal["class", "corpus_class", "none"]] = Field(
        default_factory=lambda: ["class"], min_length=1)    #: loss weights
    method: list[Literal["none", "dann", "mmd", "coral", "aae"]] = Field(
        default_factory=lambda: ["none"], min_length=1)     #: alignment
    domain: list[Literal["corpus", "speaker"]] = Field(
        default_factory=lambda: ["corpus"], min_length=1)   #: what is aligned
    lam: list[float] = Field(default_factory=lambda: [0.1], min_length=1)   #: its weight
    hidden: list[int] = Field(default_factory=lambda: [256], min_length=1)  #: hidden width
    dropout: list[float] = Field(default_factory=lambda: [0.2], min_length=1)
    epochs: list[int] = Field(default_factory=lambda: [20], min_length=1)
    latent: int = Field(default=64, gt=0)   #: code width of the adversarial autoencoder
    pca: int = Field(default=256, ge=0)     #: principal components kept (0: all columns)
    rec: float = Field(default=1.0, ge=0)   #: autoencoder reconstruction weight
    batch: int = Field(default=256, gt=0)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)


class AlignSuiteParams(Params):
    """``model.params`` of ``xcorpus-speech-align``."""

    corpora: list[str] = Field(min_length=3)          #: LOCO corpora (nested: >= 3)
    targets: list[str] | None = None                  #: corpora of the stated LOCO mean
    extra_test: dict[str, str | None] = Field(default_factory=dict)  #: test-only -> sub-folder
    settings: list[Setting] = Field(default_factory=lambda: ["inductive", "folder", "enrol"],
                                    min_length=1)
    #: setting -> logistic-regression grid (keys of :func:`emofuse.recipes.xcorpus.candidates`)
    grid: dict[Setting, dict[str, Any]] = Field(default_factory=dict)
    #: setting -> aligned-MLP grid, or a list of grids (their candidates in turn)
    align: dict[Setting, AlignGridParams | list[AlignGridParams]] = Field(default_factory=dict)
    enrol_prior: float = Field(default=5.0, ge=0)     #: pseudo-utterances of the prior
    ece_bins: int = Field(default=15, gt=0)
    pairs: bool = True                                #: single-corpus heatmap cells
    target_ua: dict[Setting, float] = Field(default_factory=dict)   #: stated LOCO targets


@dataclasses.dataclass(frozen=True)
class AlignCandidate:
    """An aligned-MLP candidate: ``base`` gives the features and their standardisation (its
    ``C`` is unused), ``spec`` the network, ``domain`` what is aligned."""

    base: Candidate
    spec: AlignSpec
    domain: str = "corpus"

    def rep_key(self) -> tuple:
        return ("align", dataclasses.astuple(self.base), dataclasses.astuple(self.spec),
                self.domain)

    def short(self, setting: str = "inductive") -> str:
        s = self.spec
        head = self.base.short(setting).rsplit(" C=", 1)[0]
        al = "" if s.method == "none" else f" {self.domain} lam={s.lam:g}"
        return (f"{head} MLP{s.hidden} pca={s.pca} ep={s.epochs} do={s.dropout:g} "
                f"{s.method}{al}")

    def to_dict(self) -> dict[str, Any]:
        return {**self.base.to_dict(), "model": "mlp", **dataclasses.asdict(self.spec),
                "domain": self.domain}


def align_candidates(grid: AlignGridParams | Sequence[AlignGridParams] | None, *,
                     quick: bool = False, where: str = "model.params.align"
                     ) -> list[AlignCandidate]:
    """The candidates of ``grid`` (or of each grid of a list in turn) in product order
    (``lam`` varies fastest); a method without alignment (``none``) appears once per other
    combination. ``quick``: epochs cut to 2."""
    if grid is None:
        return []
    grids = [grid] if isinstance(grid, AlignGridParams) else list(grid)
    out: list[AlignCandidate] = []
    seen = set()
    for g, (lay, norm, bal, hid, do, ep, meth, dom, lam) in (
            (one, v) for one in grids for v in itertools.product(
                one.layers, one.norm, one.balance, one.hidden, one.dropout, one.epochs,
                one.method, one.domain, one.lam)):
        if meth == "none":
            dom, lam = "corpus", 0.0
        (base,) = candidates({"layers": lay, "norm": norm, "balance": bal}, where=where)
        try:
            spec = AlignSpec(method=meth, hidden=hid, latent=g.latent, pca=g.pca, lam=lam,
                             rec=g.rec, epochs=min(ep, 2) if quick else ep, batch=g.batch,
                             lr=g.lr, weight_decay=g.weight_decay, dropout=do)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        c = AlignCandidate(base, spec, dom)
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


_CACHE: dict[tuple, tuple] = {}


def _prepared(table: Table, train: np.ndarray, test: np.ndarray, c: AlignCandidate,
              setting: str, enrol_prior: float, seed: int) -> tuple:
    """Standardised and PCA-reduced train/test rows (one entry cached: the candidates of a
    fold share it)."""
    key = (id(table), train.tobytes(), test.tobytes(),
           c.base.rep_key(), setting, enrol_prior, c.spec.pca,
           seed)
    if key not in _CACHE:
        _CACHE.clear()
        ztr, zte, _ = transform(table, train, test, c.base, setting, enrol_prior=enrol_prior)
        basis = pca_basis(ztr, c.spec.pca, seed=seed)
        mean, proj = basis
        if proj is not None:
            ztr, zte = (ztr - mean) @ proj, (zte - mean) @ proj
            basis = (np.zeros(proj.shape[1], np.float32), None)
        _CACHE[key] = (ztr, zte, basis)
    return _CACHE[key]


def fit_align(table: Table, train: np.ndarray, test: np.ndarray, classes: Sequence[str],
              cands: Sequence[Candidate | AlignCandidate], setting: str, *, seed: int = 0,
              enrol_prior: float = 5.0) -> list[np.ndarray]:
    """:func:`emofuse.recipes.xcorpus.fit_predict` for LR candidates; for one
    :class:`AlignCandidate`, the aligned MLP's ``(len(test), len(classes))`` probabilities
    (0 for a class absent from training)."""
    if not isinstance(cands[0], AlignCandidate):
        return fit_predict(table, train, test, classes, cands, setting, seed=seed,
                           enrol_prior=enrol_prior)
    if len(cands) != 1:
        raise ValueError("fit_align: one aligned candidate at a time")
    c = cands[0]
    train = train[np.isin(table.labels[train], list(classes))]
    ztr, zte, basis = _prepared(table, train, test, c, setting, enrol_prior, seed)
    ytr = table.labels[train]
    present = [k for k in classes if k in set(ytr.tolist())]
    full = np.zeros((len(test), len(classes)))
    if len(present) < 2:
        full[:, [classes.index(k) for k in present]] = 1.0
        return [full]
    y = np.array([present.index(v) for v in ytr])
    dom = table.corpus[train] if c.domain == "corpus" else table.speaker[train]
    w = _weights(ytr, table.corpus[train], c.base.balance)
    model = fit_aligned(ztr, y, dom, n_classes=len(present), spec=c.spec, sample_weight=w,
                        seed=seed, basis=basis)
    full[:, [classes.index(k) for k in present]] = model.predict_proba(zte)
    return [full]


def _grids(p: AlignSuiteParams, quick: bool) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in p.settings:
        lr = candidates(p.grid.get(s), where=f"model.params.grid.{s}")
        al = align_candidates(p.align.get(s), quick=quick, where=f"model.params.align.{s}")
        out[s] = (lr[:1] + al[:1]) if quick else (lr + al)
    return out


class XcorpusSpeechAlign(XcorpusSpeechSuite, name="xcorpus-speech-align",
                         params={"model": AlignSuiteParams}):
    """xcorpus-speech with domain-aligned MLP candidates (DANN, MMD, CORAL, adversarial
    autoencoder) beside logistic regression, nested LOCO selection among all"""

    def body(self) -> dict[str, Any]:
        cfg, p = self.cfg, self.p
        if cfg.model.name != "align":
            raise ConfigError("xcorpus-speech-align: model.name must be 'align' (logistic "
                              "regression and aligned-MLP candidates)")
        extra = dict(p.extra_test)
        grids = _grids(p, self.quick)
        limit_threads(cfg)
        table, skipped = self.load(p.corpora, extra)
        loco = run_loco(table, p.corpora, grids, extra_test=list(extra), pairs=p.pairs,
                        seed=self.seeds[0], enrol_prior=p.enrol_prior, bins=p.ece_bins,
                        log=self.log, fit=fit_align)
        _CACHE.clear()
        result = self.loco_result(loco, table, list(p.corpora), list(p.targets or p.corpora),
                                  list(extra), skipped, target_ua=p.target_ua)
        result["notes"] = _NOTE + result["notes"]
        return result


_NOTE = ("Candidates per setting: the logistic-regression grid of `xcorpus-speech` and aligned "
         "small MLPs (`MLP<hidden> pca=<components> ep=<epochs> do=<dropout> <method>`: `none` "
         "plain MLP, `dann` gradient reversal on a corpus/speaker discriminator, `mmd` / "
         "`coral` hidden-layer alignment across the training corpora (or speakers), `aae` "
         "adversarial-autoencoder codes pushed to one prior in every corpus; `lam` its "
         "weight). The nested LOCO selection picks among all of them per cell.\n\n")

#: the ``xcorpus-speech-align`` suite: result dict; writes the heatmap PNG
run_suite = xcorpus_speech_align = XcorpusSpeechAlign.run
