"""What one member of a speech run is (:class:`MemberSpec`, built from its typed
``model.params``) and the corpus data every fold of a run shares (:class:`SpeechData`: decoded
audio, augmented copies, cached feature vectors, per-speaker statistics), with the feature
matrices a member trains on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..corpora import Record
from ..errors import ConfigError, EmofuseError
from ..features.cache import FeatureCache
from ..inference.speech_models import band_stats, vector_stats
from ..media.limits import SPEECH_SR
from ..models.classical import CLASSICAL_MODELS
from ..models.speech import VECTOR_MODELS, WAVEFORM_MODELS
from ._speech_params import (SETTINGS, AugmentParams, FeatureRef, FitParams, MemberParams,
                             ModelKeys, SpecAugmentParams)

__all__ = ["SETTINGS", "MemberSpec", "SpeechData", "labels_of", "member_matrix", "speed_copies",
           "with_copies"]


@dataclass
class MemberSpec:
    """Everything needed to train one member (a config's model, or one entry of an
    ensemble's ``members``).

    Attributes
    ----------
    name, params
        Registered model and its constructor parameters.
    feature, feature_params
        Vector feature (``vector``/``classical`` members): extractor name and parameters.
    grid
        Classical members: hyper-parameter grid searched by speaker-grouped CV on the
        training fold.
    crop_s ... settings
        The member's :class:`~emofuse.recipes._speech_params.FitParams` (see there): training
        crop, scoring window, waveform and spectrogram augmentation, mixup, seed ensemble
        size, refit, epochs, how a network is speaker-normalised, speed-perturbed copies of
        classical members, and the settings the member takes part in.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    feature: str | None = None
    feature_params: dict[str, Any] = field(default_factory=dict)
    crop_s: float = 3.0
    window_s: float = 6.0
    augment: AugmentParams | None = None
    spec_augment: SpecAugmentParams | None = None
    mixup: float = 0.0
    grid: dict[str, list[Any]] | None = None
    n_models: int = 1
    refit: bool = False
    epochs: int | None = None
    spknorm: str = "input"
    speeds: list[float] = field(default_factory=list)
    settings: list[str] | None = None

    def active(self, setting: str) -> bool:
        """Whether this member takes part in ``setting``."""
        return not self.settings or setting in self.settings

    @property
    def kind(self) -> str:
        if self.name in WAVEFORM_MODELS:
            return "waveform"
        if self.name in VECTOR_MODELS:
            return "vector"
        if self.name in CLASSICAL_MODELS:
            return "classical"
        raise ConfigError(f"model {self.name!r} is not a speech model; known: "
                          f"{', '.join(WAVEFORM_MODELS + VECTOR_MODELS + CLASSICAL_MODELS)}")

    @property
    def keys(self) -> ModelKeys:
        """The constructor parameters the recipe itself reads (``norm``, ``columns``)."""
        return ModelKeys.of(self.params, where="model.params")

    @classmethod
    def of(cls, member: MemberParams | Mapping[str, Any], *, default_feature: str,
           default_feature_params: Mapping[str, Any], where: str) -> MemberSpec:
        """Build from a typed member (or its mapping ``{name, params, features, fit, grid}``);
        a :class:`ConfigError` names what does not fit the model's kind."""
        m = MemberParams.of(member, where=where)
        fit: FitParams = m.fit
        feats = m.features or FeatureRef()
        spec = cls(name=m.name, params=dict(m.params),
                   feature=feats.name if feats.name is not None else default_feature,
                   feature_params=dict(feats.params if feats.params is not None
                                       else default_feature_params),
                   grid=m.grid, crop_s=fit.crop_s, window_s=fit.window_s, augment=fit.augment,
                   spec_augment=fit.spec_augment if fit.spec_augment is not None
                   and fit.spec_augment.model_fields_set else None,   # {}: off, as before
                   mixup=fit.mixup, n_models=fit.n_models,
                   refit=fit.refit, epochs=fit.epochs, spknorm=fit.spknorm,
                   speeds=list(fit.speeds),
                   settings=list(fit.settings) if fit.settings is not None else None)
        spec.kind  # noqa: B018  (validates the name)
        if spec.spknorm == "output" and spec.kind == "classical":
            raise ConfigError(f"{where}.fit.spknorm: classical models are normalised at the "
                              "input only")
        if spec.speeds and spec.kind != "classical":
            raise ConfigError(f"{where}.fit.speeds: positive speed factors, for classical "
                              "members only")
        if spec.kind == "waveform" and spec.keys.norm == "speaker":
            raise ConfigError(f"{where}.params.norm: 'speaker' is set by the spknorm setting; "
                              "give the inductive normalisation (utterance, "
                              "utterance_scalar or none)")
        return spec


class SpeechData:
    """Decoded audio, augmented copies, cached feature vectors and per-speaker statistics of
    one corpus, kept in memory for every fold of a run.

    Records whose audio cannot be decoded are dropped and listed in :attr:`skipped`.
    """

    def __init__(self, records: Sequence[Record], *, sr: int = SPEECH_SR,
                 cache: FeatureCache | None = None) -> None:
        from ..media import load_audio

        self.sr = sr
        self.cache = cache or FeatureCache()
        self.waves: dict[str, np.ndarray] = {}
        self.skipped: list[dict[str, str]] = []
        kept = []
        for r in records:
            try:
                self.waves[r.id] = load_audio(r.audio, sr=sr)[0]
                kept.append(r)
            except EmofuseError as exc:
                self.skipped.append({"id": r.id, "path": str(r.audio), "reason": str(exc)})
        self.records = kept
        self.by_id = {r.id: r for r in kept}
        self._copies: dict[tuple, dict[str, list[np.ndarray]]] = {}
        self._vectors: dict[tuple, dict[str, np.ndarray]] = {}
        self._stats: dict[tuple, dict[str, np.ndarray]] = {}

    def copies(self, augment: AugmentParams | None, ids: Sequence[str]
               ) -> dict[str, list[np.ndarray]]:
        """Augmented copies of the utterances ``ids`` (made once per settings and utterance;
        the seed depends on the utterance only, so every fold sees the same copies)."""
        from ..train.augment_audio import WaveAugment

        if augment is None or not augment.copies:
            return {}
        params = augment.wave_params()
        n = augment.copies
        key = (n, repr(sorted(params.items())))
        store = self._copies.setdefault(key, {})
        aug = WaveAugment.from_params(params)
        for i in ids:
            if i not in store:
                seed = int.from_bytes(i.encode()[-8:].rjust(8, b"\0"), "little") % 2**31
                store[i] = aug.copies(self.waves[i], sr=self.sr, n=n, seed=seed)
        return store

    def vectors(self, feature: str, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Cached feature vectors of every record (a record that fails is dropped and listed
        in :attr:`skipped`)."""
        from ..features.speech import extract

        key = (feature, repr(sorted(params.items())))
        if key not in self._vectors:
            out = {}
            for r in self.records:
                try:
                    out[r.id] = np.asarray(extract(r.audio, feature, params=params, sr=self.sr,
                                                   cache=self.cache), np.float32)
                except EmofuseError as exc:
                    self.skipped.append({"id": r.id, "path": str(r.audio), "reason": str(exc)})
            self._vectors[key] = out
        return self._vectors[key]

    def speed_vectors(self, feature: str, params: Mapping[str, Any], speed: float
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Cached feature vectors of every record's waveform perturbed to ``speed``
        (:func:`~emofuse.features.speech.speed_perturb`) and the per-speaker statistics of
        those vectors; a record that fails is left out (it only loses its training copy)."""
        from ..features.speech import extract

        key = ("speed", feature, repr(sorted(params.items())), float(speed))
        if key not in self._vectors:
            out = {}
            for r in self.records:
                try:
                    out[r.id] = np.asarray(extract(r.audio, feature,
                                                   params={**params, "speed": float(speed)},
                                                   sr=self.sr, cache=self.cache), np.float32)
                except EmofuseError:
                    continue
            groups: dict[str, list[str]] = {}
            for rid in out:
                groups.setdefault(self.speaker_of(rid), []).append(rid)
            self._vectors[key] = out
            self._stats[key] = {s: vector_stats(np.stack([out[i] for i in ids]))
                                for s, ids in groups.items()}
        return self._vectors[key], self._stats[key]

    def speaker_stats(self, spec: MemberSpec, net: Any = None) -> dict[str, np.ndarray]:
        """Per-speaker normalisation statistics for ``spec`` (``(2, d)`` each) from every
        utterance of the speaker, unlabelled: mel bands (waveform) or feature entries."""
        if spec.kind == "waveform":
            key: tuple = ("bands", net.frontend.n_mels, net.frontend.top_db)
        else:
            key = ("vec", spec.feature, repr(sorted(spec.feature_params.items())))
        if key not in self._stats:
            groups: dict[str, list[str]] = {}
            for r in self.records:
                groups.setdefault(r.speaker or f"id:{r.id}", []).append(r.id)
            if spec.kind == "waveform":
                self._stats[key] = {s: band_stats(net, [self.waves[i] for i in ids])
                                    for s, ids in groups.items()}
            else:
                vec = self.vectors(spec.feature or "", spec.feature_params)
                self._stats[key] = {s: vector_stats(np.stack([vec[i] for i in ids if i in vec]))
                                    for s, ids in groups.items()
                                    if any(i in vec for i in ids)}
        return self._stats[key]

    def speaker_of(self, rid: str) -> str:
        r = self.by_id[rid]
        return r.speaker or f"id:{r.id}"



def labels_of(records: Sequence[Record], classes: Sequence[str]) -> np.ndarray:
    """Class indices of ``records``."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[r.label] for r in records], dtype=np.int64)


def member_matrix(spec: MemberSpec, data: SpeechData, records: Sequence[Record], setting: str
                  ) -> tuple[np.ndarray, list[Record]]:
    """The feature vectors of ``records`` that have one (speaker-standardised in
    ``spknorm``) and those records."""
    vec = data.vectors(spec.feature or "", spec.feature_params)
    recs = [r for r in records if r.id in vec]
    x = np.stack([vec[r.id] for r in recs]) if recs else np.zeros((0, 0), np.float32)
    if setting == "spknorm" and len(recs):
        stats = data.speaker_stats(spec)
        x = np.stack([(x[i] - stats[data.speaker_of(r.id)][0]) / stats[data.speaker_of(r.id)][1]
                      for i, r in enumerate(recs)])
    return x.astype(np.float32), recs


def speed_copies(spec: MemberSpec, data: SpeechData, records: Sequence[Record],
                 setting: str, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Training vectors of the speed-perturbed copies of ``records`` (``spec.speeds``) and
    their labels; ``spknorm``: each (speaker, speed) standardised by its own statistics."""
    xs, ys = [], []
    for speed in spec.speeds:
        vec, stats = data.speed_vectors(spec.feature or "", spec.feature_params, speed)
        recs = [r for r in records if r.id in vec]
        if not recs:
            continue
        x = np.stack([vec[r.id] for r in recs])
        if setting == "spknorm":
            x = np.stack([(x[i] - stats[data.speaker_of(r.id)][0])
                          / stats[data.speaker_of(r.id)][1] for i, r in enumerate(recs)])
        xs.append(x.astype(np.float32))
        ys.append(labels_of(recs, classes))
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def with_copies(x: np.ndarray, y: np.ndarray, copies: tuple[np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` with the copies' rows appended."""
    if not len(copies[1]):
        return x, y
    return np.concatenate([x, copies[0]]), np.concatenate([y, copies[1]])
