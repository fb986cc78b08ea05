"""Data of the fusion recipes: clip-level feature blocks per modality (clean, with white noise
at a given SNR, or noisy training copies), the normalisation settings (``inductive``,
``spknorm``) and the records and folds of the audio-visual suites.

A block is ``openface_au`` (the corpus' clip-level OpenFace action units, face) or the name of a
registered speech feature computed from the record's audio through the feature cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..augment.online import clip_rng, white_noise
from ..corpora import Record
from ..errors import ConfigError, DataError, EmofuseError
from ..features.cache import FeatureCache
from ..media.limits import SPEECH_SR
from ._fusion_params import AVFeatureParams, NoiseSpec

__all__ = ["FACE_BLOCKS", "SETTINGS", "SETTING_NOTES", "CONDITIONS", "ModalityData", "AVData",
           "modality_data", "block_features", "block_modality",
           "load_av_data", "av_records", "quick_records", "quick_config", "snr_table"]

#: Feature blocks read from tables rather than computed from audio.
FACE_BLOCKS = ("openface_au",)


# --------------------------------------------------------------------------------------------
# Feature blocks


def _audio_block(path: str, name: str, *, params: Mapping[str, Any], sr: int,
                 noise: NoiseSpec | None, cache: FeatureCache) -> np.ndarray:
    """Speech feature ``name`` of one file, clean or with white noise (cached either way)."""
    from ..features import get_feature
    from ..features.speech import extract, feature_settings
    from ..media import load_audio

    if noise is None:
        return np.asarray(extract(path, name, params=params, sr=sr, cache=cache))
    settings = {**feature_settings(name, params, sr=sr), "noise": noise.settings()}
    fn = get_feature(name).fn

    def compute(p: str) -> np.ndarray:
        y, _ = load_audio(p, sr=sr)
        y = white_noise(y, snr_db=noise.snr_db, rng=clip_rng(p, seed=noise.seed))
        try:
            return fn(y, sr=sr, **dict(params))
        except Exception as exc:  # a library failing on odd content: report this one file
            raise DataError(p, f"feature {name!r} on noisy audio failed "
                            f"({type(exc).__name__}: {exc})") from exc

    return np.asarray(cache.get_or_compute(path, settings, compute))


def _au_rows(records: Sequence[Record]) -> dict[str, dict[str, np.ndarray]]:
    from ..corpora.ravdess import read_au_table

    tables: dict[str, dict[str, np.ndarray]] = {}
    for r in records:
        if r.au and r.au not in tables:
            try:
                tables[r.au] = {k: np.asarray(v, np.float32)
                                for k, v in read_au_table(r.au).items()}
            except (OSError, ValueError, KeyError) as exc:
                raise DataError(r.au, f"cannot read the action-unit table ({exc})") from exc
    return tables


def block_features(records: Sequence[Record], block: str, *,
                   params: Mapping[str, Any] | None = None, sr: int = SPEECH_SR,
                   noise: NoiseSpec | Mapping[str, Any] | None = None,
                   cache: FeatureCache | None = None,
                   ) -> tuple[list[np.ndarray | None], list[dict[str, str]]]:
    """One feature block for every record: a vector, or ``None`` (modality absent or failed);
    ``noise`` (a :class:`NoiseSpec` or its mapping) corrupts the audio first.

    Returns the vectors and the problems ``[{"id", "path", "reason"}]`` of records whose file
    failed (a record merely lacking the modality is not a problem).
    """
    cache = cache or FeatureCache()
    noise = None if not noise else NoiseSpec.of(noise, where="features.params.noise")
    out: list[np.ndarray | None] = []
    problems: list[dict[str, str]] = []
    if block == "openface_au":
        tables = _au_rows(records)
        for r in records:
            key = r.extra.get("au_id", r.id)
            row = tables.get(r.au, {}).get(key) if r.au else None
            if r.au and row is None:
                problems.append({"id": r.id, "path": r.au, "reason": f"no AU row for {key}"})
            out.append(row)
        return out, problems
    for r in records:
        if not r.audio:
            out.append(None)
            continue
        try:
            out.append(_audio_block(r.audio, block, params=params or {}, sr=sr, noise=noise,
                                    cache=cache))
        except EmofuseError as exc:
            out.append(None)
            problems.append({"id": r.id, "path": r.audio,
                             "reason": getattr(exc, "problem", str(exc))})
    return out, problems


def block_modality(block: str) -> str:
    """``face`` for table blocks, ``audio`` for speech features."""
    return "face" if block in FACE_BLOCKS else "audio"


@dataclass
class ModalityData:
    """Clip-level features of ``ids`` per modality: ``X[m]`` ``(n, d_m)`` (zeros where absent),
    ``present[m]`` ``(n,)`` bool, and where each feature block sits (``slices[block] =
    (modality, column slice)``)."""

    ids: list[str]
    X: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    blocks: dict[str, list[str]]
    problems: list[dict[str, str]] = field(default_factory=list)
    slices: dict[str, tuple[str, slice]] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.X)

    def subset(self, idx: Sequence[int] | np.ndarray) -> ModalityData:
        idx = np.asarray(idx, dtype=int)
        return ModalityData([self.ids[i] for i in idx], {m: x[idx] for m, x in self.X.items()},
                            {m: p[idx] for m, p in self.present.items()}, self.blocks,
                            self.problems, self.slices)

    def mask(self) -> np.ndarray:
        """``(n, M)`` presence mask in modality order."""
        return np.stack([self.present[m] for m in self.X], axis=1)


def modality_data(records: Sequence[Record], modalities: Mapping[str, Sequence[str]], *,
                  block_params: Mapping[str, Mapping[str, Any]] | None = None, sr: int = SPEECH_SR,
                  noise: NoiseSpec | Mapping[str, Any] | None = None,
                  cache: FeatureCache | None = None) -> ModalityData:
    """Concatenate each modality's feature blocks for ``records``.

    ``noise`` corrupts the audio of every audio block. A modality is absent for a record when
    any of its blocks is missing or failed.
    """
    if not modalities:
        raise ConfigError("features.params.modalities: give at least one modality")
    cache = cache or FeatureCache()
    X: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    problems: list[dict[str, str]] = []
    slices: dict[str, tuple[str, slice]] = {}
    for m, blocks in modalities.items():
        if not blocks:
            raise ConfigError(f"features.params.modalities.{m}: list at least one feature block")
        cols, ok = [], np.ones(len(records), bool)
        for b in blocks:
            vecs, probs = block_features(records, b, params=dict(block_params or {}).get(b),
                                         sr=sr,
                                         noise=noise if block_modality(b) == "audio" else None,
                                         cache=cache)
            problems += probs
            dims = {v.shape for v in vecs if v is not None}
            if len(dims) > 1:
                raise DataError(None, f"feature block {b!r} has vectors of several shapes {dims}")
            if not dims:
                cols.append(np.zeros((len(records), 0), np.float32))
                ok[:] = False
                continue
            (shape,) = dims
            mat = np.zeros((len(records), int(np.prod(shape))), np.float32)
            for i, v in enumerate(vecs):
                if v is None:
                    ok[i] = False
                else:
                    mat[i] = np.nan_to_num(np.asarray(v, np.float32).reshape(-1))
            cols.append(mat)
        start = 0
        for b, c in zip(blocks, cols):
            slices[b] = (m, slice(start, start + c.shape[1]))
            start += c.shape[1]
        X[m] = np.concatenate(cols, axis=1)
        X[m][~ok] = 0.0
        present[m] = ok
    return ModalityData([r.id for r in records], X, present,
                        {m: list(b) for m, b in modalities.items()}, problems, slices)


# --------------------------------------------------------------------------------------------
# Settings: what the normalisation may see

#: setting -> metric suffix
SETTINGS = {"inductive": "", "spknorm": "_spknorm"}
SETTING_NOTES = {
    "inductive": "inductive: every feature is z-scored with the mean and standard deviation of "
                 "the training fold's clips (training actors only); test actors are never used "
                 "for any statistic",
    "spknorm": "speaker-normalised (`_spknorm`): each actor's features are first z-scored with "
               "that actor's own clips, unlabelled, for the test actors too (transductive in "
               "their unlabelled audio and video), then z-scored with the training fold's "
               "statistics",
}
#: the conditions the attention fusion is tested under
CONDITIONS = ("clean", "audio_masked", "face_masked", "audio_noise")


@dataclass
class AVData:
    """Everything a fold needs: the records' labels and speakers, the clean features, the
    features of noisy audio (test condition) and of noisy training copies (augmentation)."""

    records: list[Record]
    classes: list[str]
    y: np.ndarray
    speakers: np.ndarray
    clean: ModalityData
    noisy: ModalityData | None
    augment: list[ModalityData]
    index: dict[str, int]
    #: ``own``: noisy/augmented copies are speaker-normalised with their own statistics;
    #: ``clean``: with the speaker's clean clips (enrolment statistics)
    spk_reference: str = "own"
    _spk: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return self.clean.modalities

    def rows(self, records: Sequence[Record]) -> np.ndarray:
        return np.array([self.index[r.id] for r in records], dtype=int)

    def _base(self, which: str, data: ModalityData, setting: str) -> dict[str, np.ndarray]:
        if setting == "inductive":
            return data.X
        if setting != "spknorm":
            raise ConfigError(f"unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
        if which not in self._spk:
            from ..fusion.normalise import speaker_normalise

            clean = which != "clean" and self.spk_reference == "clean"
            self._spk[which] = {
                m: speaker_normalise(x, self.speakers, present=data.present[m],
                                     reference=self.clean.X[m] if clean else None,
                                     reference_present=self.clean.present[m] if clean else None)
                for m, x in data.X.items()}
        return self._spk[which]

    def view(self, setting: str, fit_rows: np.ndarray) -> dict[str, Any]:
        """Normalised matrices of all rows for one fold: ``clean``/``noisy`` ``{m: (n, d)}``
        and ``variants`` ``{m: (V, n, d)}``, standardised with the clean ``fit_rows``
        (``scalers``: the fitted :class:`~emofuse.fusion.normalise.Standardiser` per modality)."""
        from ..fusion.normalise import Standardiser

        base = self._base("clean", self.clean, setting)
        scalers = {m: Standardiser().fit(x[fit_rows], self.clean.present[m][fit_rows])
                   for m, x in base.items()}
        out: dict[str, Any] = {"clean": {m: scalers[m].transform(x, self.clean.present[m])
                                         for m, x in base.items()}, "scalers": scalers}
        if self.noisy is not None:
            nb = self._base("noisy", self.noisy, setting)
            out["noisy"] = {m: scalers[m].transform(x, self.noisy.present[m])
                            for m, x in nb.items()}
        variants: dict[str, list[np.ndarray]] = {}
        for k, aug in enumerate(self.augment):
            ab = self._base(f"augment{k}", aug, setting)
            for m, x in ab.items():
                variants.setdefault(m, []).append(scalers[m].transform(x, aug.present[m]))
        out["variants"] = {m: np.stack(v) for m, v in variants.items()}
        return out

    def mask(self, rows: np.ndarray | None = None) -> np.ndarray:
        m = self.clean.mask()
        return m if rows is None else m[rows]


def load_av_data(records: Sequence[Record], classes: Sequence[str],
                 fparams: AVFeatureParams | Mapping[str, Any],
                 *, with_noise: bool = True, with_augment: bool = True,
                 cache: FeatureCache | None = None, log: Any = print) -> AVData:
    """Features of ``records`` for the fusion recipes (computed once, cached on disk)."""
    cache = cache or FeatureCache()
    p = AVFeatureParams.of(fparams, where="features.params")
    mods = p.modalities
    kw = {"block_params": p.block_kwargs(), "sr": p.sr, "cache": cache}
    audio_mods = {m: b for m, b in mods.items() if any(block_modality(x) == "audio" for x in b)}
    clean = modality_data(records, mods, **kw)
    noisy = None
    if with_noise and p.noise is not None and audio_mods:
        noisy = modality_data(records, mods, noise=p.noise, **kw)
    augment = []
    if with_augment and p.augment is not None and audio_mods:
        for noise in p.augment.noises():
            augment.append(modality_data(records, audio_mods, noise=noise, **kw))
    if log:
        log(f"features: {', '.join(f'{m} {x.shape[1]}' for m, x in clean.X.items())}; "
            f"{len(clean.problems)} problems; noisy test copy: {noisy is not None}; "
            f"augmentation copies: {len(augment)}")
    reference = p.spknorm_reference
    index = {c: i for i, c in enumerate(classes)}
    return AVData(list(records), list(classes), np.array([index[r.label] for r in records]),
                  np.array([r.speaker or r.id for r in records], dtype=object), clean, noisy,
                  augment, {r.id: i for i, r in enumerate(records)}, reference)

class AVRecords(NamedTuple):
    """What an audio-visual suite runs on."""

    records: list[Record]
    classes: list[str]
    splits: list[Any]
    seeds: list[int]
    protocol: str


def av_records(cfg: Any, *, quick: bool = False) -> AVRecords:
    """The records with audio or action units of ``cfg``'s corpus, its classes, folds, seeds and
    protocol name; ``quick``: 6 actors, one clip per actor and class, 2 speaker folds, the first
    seed (3 actors per training fold leave room for validation actors)."""
    from .. import protocols
    from ._common import class_list, load_records, make_splits

    _, records = load_records(cfg)
    records = [r for r in records if r.audio or r.au]
    classes = class_list(records, cfg.data.labels)
    if quick:
        records = quick_records(records, n_speakers=6)
        return AVRecords(records, classes,
                         protocols.speaker_kfold(records, k=2, seed=cfg.protocol.seed),
                         list(cfg.train.seeds[:1]), "speaker_kfold (k=2, quick subset)")
    return AVRecords(records, classes, make_splits(cfg, records), list(cfg.train.seeds),
                     cfg.protocol.kind)


def quick_config(cfg: Any, seeds: Sequence[int]) -> Any:
    """A copy of ``cfg`` that records the seeds a quick run used."""
    cfg = cfg.model_copy(deep=True)
    cfg.train.seeds = list(seeds)
    return cfg


def quick_records(records: Sequence[Record], n_speakers: int = 4) -> list[Record]:
    """One clip per (speaker, class) for the first ``n_speakers`` speakers (smoke runs)."""
    speakers = sorted({r.speaker for r in records if r.speaker})[:n_speakers]
    seen, out = set(), []
    for r in records:
        if r.speaker in speakers and (r.speaker, r.label) not in seen:
            seen.add((r.speaker, r.label))
            out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# The audio reliability signal: a blind SNR estimate from the waveform


def snr_table(records: Sequence[Record],
              conditions: Mapping[str, NoiseSpec | Mapping[str, Any] | None], *,
              sr: int = SPEECH_SR, cache: FeatureCache | None = None) -> dict[str, np.ndarray]:
    """:func:`~emofuse.fusion.reliability.estimate_snr` of every record's audio under each
    condition (``None``: clean; else ``{"snr_db", "seed"}``, the same white noise as the
    features), ``{condition: (n,)}`` (NaN where the audio is missing); cached per clip."""
    from ..fusion.reliability import estimate_snr
    from ..media import load_audio

    cache = cache or FeatureCache()
    names = list(conditions)
    noises = [None if conditions[c] is None else
              NoiseSpec.of(conditions[c], where=f"features.params.noise ({c})") for c in names]
    spec = [None if n is None else {"snr_db": float(n.snr_db), "seed": int(n.seed)}
            for n in noises]
    settings = {"feature": "snr_estimate", "version": 1, "sr": int(sr), "noise": spec}

    def compute(p: str) -> np.ndarray:
        y, _ = load_audio(p, sr=sr)
        out = []
        for s in spec:
            z = y if s is None else white_noise(y, snr_db=s["snr_db"],
                                                rng=clip_rng(p, seed=s["seed"]))
            out.append(estimate_snr(z, sr=sr))
        return np.asarray(out, np.float64)

    table = np.full((len(records), len(names)), np.nan)
    for i, r in enumerate(records):
        if not r.audio:
            continue
        try:
            table[i] = np.asarray(cache.get_or_compute(r.audio, settings, compute))
        except Exception as exc:
            if not isinstance(exc, (OSError, DataError)):
                raise
    return {c: table[:, j] for j, c in enumerate(names)}
