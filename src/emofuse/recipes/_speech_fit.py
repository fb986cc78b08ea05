"""Fitting one member of a speech run on one fold, and scoring it.

A *member* is one model of a run (a config's model, or one entry of an ensemble's
``members``, :class:`~emofuse.recipes._speech_data.MemberSpec`); :func:`fit_member` trains it
on the training part of a fold, stops early (or picks hyper-parameters) on the validation part
drawn from the training fold, and returns a
:class:`~emofuse.inference.speech_models.Member` plus its validation probabilities;
:func:`member_proba` scores whole utterances. The data live in :mod:`._speech_data`, the
Lightning training of networks in :mod:`._speech_torch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..corpora import Record
from ..errors import ConfigError
from ..inference.speech_models import Member, vector_stats, window_bounds
from ..models import build_model
from ..models.classical import grid_search
from ._speech_data import (SETTINGS, MemberSpec, SpeechData, labels_of, member_matrix, speed_copies,
                           with_copies)
from ._speech_torch import (adamw_cosine, class_weights, log_val_ua, net_params, train_one)

__all__ = [
    "SETTINGS",
    "Fitted",
    "MemberSpec",
    "SpeechData",
    "adamw_cosine",
    "as_output_norm",
    "class_weights",
    "fit_member",
    "full_proba",
    "log_val_ua",
    "member_proba",
    "raw_view",
]



@dataclass
class Fitted:
    """A trained member, its validation probabilities and facts for the result's notes."""

    member: Member
    val_proba: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def fit_member(spec: MemberSpec, data: SpeechData, train: Sequence[Record],
               val: Sequence[Record], *, classes: Sequence[str], setting: str, seed: int,
               train_cfg: TrainConfig, quick: bool = False) -> Fitted:
    """Train ``spec`` on ``train`` in ``setting`` (``inductive``/``spknorm``), choosing epochs
    or hyper-parameters on ``val`` (part of the training fold)."""
    if setting not in SETTINGS:
        raise ConfigError(f"unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
    if spec.kind == "classical":
        return _fit_classical(spec, data, train, val, classes=classes, setting=setting)
    return _fit_network(spec, data, train, val, classes=classes, setting=setting, seed=seed,
                        train_cfg=train_cfg, quick=quick)


def _fit_classical(spec: MemberSpec, data: SpeechData, train: Sequence[Record],
                   val: Sequence[Record], *, classes: Sequence[str], setting: str) -> Fitted:
    import warnings

    xt, rt = member_matrix(spec, data, train, setting)
    xv, rv = member_matrix(spec, data, val, setting)
    yt, yv = labels_of(rt, classes), labels_of(rv, classes)
    ct = speed_copies(spec, data, rt, setting, classes)
    cv = speed_copies(spec, data, rv, setting, classes)
    params, info = dict(spec.params), {}
    if spec.grid:
        x_all, y_all = np.concatenate([xt, xv]), np.concatenate([yt, yv])
        groups = [data.speaker_of(r.id) for r in [*rt, *rv]]
        params, score = grid_search(spec.name, x_all, y_all, groups, grid=spec.grid,
                                    base=spec.params)
        info = {"chosen": params, "inner_cv_ua": round(score, 4)}
    if spec.speeds:
        info["speed_copies"] = {"speeds": spec.speeds, "train": len(ct[1]), "val": len(cv[1])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # for validation probabilities
        first = build_model(spec.name, **params).fit(*with_copies(xt, yt, ct))
        val_p = full_proba(first, xv, len(classes))
        both = with_copies(np.concatenate([xt, xv]), np.concatenate([yt, yv]), ct)
        final = build_model(spec.name, **params).fit(*with_copies(*both, cv))
    feature = _feature_card(spec, data.sr)
    member = Member("classical", list(classes), final, {"name": spec.name, "params": params},
                    feature, setting, data.sr)
    return Fitted(member, val_p, info)


def full_proba(clf: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` spread over all classes (a class absent in training gets 0)."""
    p = clf.predict_proba(x)
    out = np.zeros((len(x), n_classes))
    out[:, np.asarray(clf.classes_, dtype=int)] = p
    return out


def _feature_card(spec: MemberSpec, sr: int) -> dict[str, Any]:
    from ..features.speech import feature_settings

    return feature_settings(spec.feature or "", spec.feature_params, sr=sr)


def _fit_network(spec: MemberSpec, data: SpeechData, train: Sequence[Record],
                 val: Sequence[Record], *, classes: Sequence[str], setting: str, seed: int,
                 train_cfg: TrainConfig, quick: bool) -> Fitted:
    nets, val_ps, infos = [], [], []
    for k in range(max(1, spec.n_models)):
        net, val_p, info = train_one(spec, data, train, val, classes=classes, setting=setting,
                                      seed=seed * 1000 + k, train_cfg=train_cfg, quick=quick)
        nets.append(net)
        val_ps.append(val_p)
        infos.append(info)
    feature = _feature_card(spec, data.sr) if spec.kind == "vector" else None
    members = [Member(spec.kind, list(classes), n,
                      {"name": spec.name, "params": {**net_params(spec, setting),
                                                     **({"dim": n.dim} if spec.kind == "vector"
                                                        else {})}},
                      feature, setting, data.sr) for n in nets]
    member = members[0] if len(members) == 1 else _SeedEnsemble(members)
    return Fitted(member, np.mean(val_ps, axis=0), {"runs": infos})


class _SeedEnsemble(Member):
    """Several networks of one spec (different seeds), probabilities averaged."""

    def __init__(self, members: list[Member]) -> None:
        m = members[0]
        super().__init__(m.kind, m.labels, m.model, m.spec, m.feature, m.setting, m.sr)
        self.members = members

    def speaker_stats(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        if self.output_norm:
            return super().speaker_stats(waves)
        return self.members[0].speaker_stats(waves)

    def _raw_proba(self, waves: Sequence[np.ndarray], *, stats: np.ndarray | None = None,
                   vectors: np.ndarray | None = None) -> np.ndarray:
        return np.mean([m._raw_proba(waves, stats=stats, vectors=vectors)
                        for m in self.members], axis=0)


def raw_view(member: Member) -> Member:
    """A copy of an ``output_norm`` member that gives its inductive probabilities."""
    import copy

    raw = copy.copy(member)
    raw.setting, raw.output_norm = "inductive", False
    return raw


def as_output_norm(fitted: Fitted, val_speakers: Sequence[str]) -> Fitted:
    """The ``spknorm`` version of an inductively trained network: its class log-probabilities
    are standardised per speaker; validation probabilities likewise, per validation speaker."""
    import copy

    from ..inference.speech_models import normalise_log_proba

    member = copy.copy(fitted.member)
    member.setting, member.output_norm = "spknorm", True
    if isinstance(member, _SeedEnsemble):
        member.members = [dataclasses.replace(m, setting="spknorm", output_norm=True)
                          for m in member.members]
    val = np.array(fitted.val_proba, dtype=np.float64)
    spk = np.asarray(val_speakers)
    for s in set(spk.tolist()):
        rows = spk == s
        val[rows] = normalise_log_proba(val[rows], vector_stats(np.log(val[rows] + 1e-6)))
    return Fitted(member, val, {**fitted.info, "spknorm": "output (reused inductive network)"})


def member_proba(member: Member, data: SpeechData, records: Sequence[Record], *,
                 window_s: float, stats: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Class probabilities of whole utterances: waveform members average over windows of
    ``window_s`` (hop half of it); vector/classical members score the cached vectors.
    ``stats`` maps a speaker to the statistics a ``spknorm`` member needs."""
    spk = [data.speaker_of(r.id) for r in records]
    if member.output_norm:
        from ..inference.speech_models import normalise_log_proba

        raw = member_proba(raw_view(member), data, records, window_s=window_s)
        if stats is None:
            return raw
        return np.concatenate([normalise_log_proba(raw[i:i + 1], stats[s])
                               for i, s in enumerate(spk)])
    if member.kind != "waveform":
        vec = data.vectors(member.feature["feature"], member.feature["params"])
        x = np.stack([vec[r.id] for r in records])
        if member.setting == "spknorm":
            assert stats is not None
            x = np.stack([(x[i] - stats[s][0]) / stats[s][1] for i, s in enumerate(spk)])
        return member.proba([], vectors=x)
    win = int(window_s * data.sr)
    out = np.zeros((len(records), len(member.labels)))
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(spk):
        groups.setdefault(s if member.setting == "spknorm" else "", []).append(i)
    for s, idx in groups.items():
        windows, owner = [], []
        for i in idx:
            y = data.waves[records[i].id]
            for a, b in window_bounds(len(y), win, win // 2):
                windows.append(y[a:b])
                owner.append(i)
        st = stats[s] if (stats is not None and member.setting == "spknorm") else None
        p = member.proba(windows, stats=st)
        owner_arr = np.asarray(owner)
        for i in idx:
            out[i] = p[owner_arr == i].mean(axis=0)
    return out
