"""Speech features (keyword-only pure functions over a mono float32 waveform).

Frame-level outputs are ``(n_features, n_frames)``; utterance-level outputs are 1-D vectors.
Defaults: 16 kHz, 25 ms windows (512-point FFT), 10 ms hop.

Every extractor is registered by name (``modality="speech"``) and called as
``fn(y, sr=..., **params)``; :func:`extract` computes one for an audio file through the
:class:`~emofuse.features.cache.FeatureCache`:

>>> x = extract("a.flac", "egemaps")                                  # doctest: +SKIP
>>> xs, errors = extract_many(paths, "fused", params={"n_mfcc": 20})  # doctest: +SKIP

=================  ================================================================  ==========
name               what                                                              shape
=================  ================================================================  ==========
``logmel``         log-mel spectrogram in dB (``n_mels`` 64 or 128)                  (M, T)
``mfcc``           MFCCs with first and second deltas                                (3 K, T)
``prosody``        RMS energy, zero-crossing rate, F0 (autocorrelation or pYIN),     (4, T)
                   voicing
``egemaps``        the 88 eGeMAPS v02 functionals (openSMILE)                        (88,)
``lld_stats``      utterance statistics of MFCC (+ deltas) and prosody LLDs          (8 K'+17,)
``logmel_stats``   statistics of log-mel bands (raw and loudness-removed)            (16 M,)
``fused``          ``egemaps`` + ``lld_stats`` (+ ``logmel_stats``): the fused       (88+...,)
                   hand-crafted vector
``concat``         several utterance-level features side by side (``parts``), e.g.   (sum,)
                   ``fused`` and the ``ge2e`` speaker-encoder states
=================  ================================================================  ==========
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, EmofuseError
from ..media.limits import SPEECH_SR
from . import get_feature, register_feature
from .cache import FeatureCache

__all__ = ["logmel", "mfcc", "prosody", "egemaps", "utterance_stats", "lld_stats", "fused",
           "logmel_stats",
           "prosody_stats", "EGEMAPS_DIM", "pitch_autocorr", "extract", "extract_many",
           "feature_settings", "stack_features", "speed_perturb", "normalize_gain"]

EGEMAPS_DIM = 88
_EPS = 1e-10


@register_feature("logmel", modality="speech")
def logmel(y: np.ndarray, *, sr: int = SPEECH_SR, n_mels: int = 64, n_fft: int = 512,
           hop_length: int = 160, fmin: float = 20.0, fmax: float | None = None,
           top_db: float | None = 80.0) -> np.ndarray:
    """Log-mel spectrogram in dB, ``(n_mels, frames)`` float32."""
    import librosa

    m = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length,
                                       n_mels=n_mels, fmin=fmin, fmax=fmax or sr / 2, power=2.0)
    return librosa.power_to_db(m, ref=1.0, amin=_EPS, top_db=top_db).astype(np.float32)


@register_feature("mfcc", modality="speech")
def mfcc(y: np.ndarray, *, sr: int = SPEECH_SR, n_mfcc: int = 40, n_mels: int = 64,
         n_fft: int = 512, hop_length: int = 160, deltas: bool = True) -> np.ndarray:
    """MFCCs, with first and second deltas stacked when ``deltas`` (``(3 * n_mfcc, frames)``)."""
    import librosa

    mel_db = logmel(y, sr=sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, top_db=None)
    c = librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc)
    if deltas:
        width = min(9, c.shape[1] - (1 - c.shape[1] % 2)) if c.shape[1] >= 3 else 0
        if width >= 3:
            c = np.vstack([c, librosa.feature.delta(c, width=width),
                           librosa.feature.delta(c, order=2, width=width)])
        else:
            c = np.vstack([c, np.zeros_like(c), np.zeros_like(c)])
    return c.astype(np.float32)


def pitch_autocorr(y: np.ndarray, *, sr: int = SPEECH_SR, frame_length: int = 640,
                   hop_length: int = 160, fmin: float = 60.0, fmax: float = 500.0,
                   threshold: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    """F0 by normalised autocorrelation per frame.

    Returns ``(f0_hz, voicing)``: ``f0`` is 0 in unvoiced frames; ``voicing`` is the peak
    normalised autocorrelation in [0, 1].
    """
    import librosa

    if len(y) < frame_length:
        y = np.pad(y, (0, frame_length - len(y)))
    frames = librosa.util.frame(y, frame_length=frame_length, hop_length=hop_length).T
    frames = frames - frames.mean(axis=1, keepdims=True)
    n = 2 * frame_length
    spec = np.fft.rfft(frames, n=n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=n, axis=1)[:, :frame_length]
    ac = ac / np.maximum(ac[:, :1], _EPS)
    lo, hi = int(sr / fmax), min(int(sr / fmin), frame_length - 1)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(lag)), lag]
    voiced = peak >= threshold
    f0 = np.where(voiced, sr / np.maximum(lag, 1), 0.0)
    return f0.astype(np.float32), np.clip(peak, 0, 1).astype(np.float32)


@register_feature("prosody", modality="speech")
def prosody(y: np.ndarray, *, sr: int = SPEECH_SR, hop_length: int = 160,
            pitch: Literal["autocorr", "pyin"] = "autocorr", fmin: float = 60.0,
            fmax: float = 500.0) -> np.ndarray:
    """Prosodic and energy LLDs per frame: RMS energy (dB), zero-crossing rate, F0 (Hz, 0 when
    unvoiced), voicing probability. ``(4, frames)``."""
    import librosa

    rms = librosa.feature.rms(y=y, frame_length=640, hop_length=hop_length)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=640, hop_length=hop_length)[0]
    if pitch == "pyin":
        f0, _, vprob = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=sr, frame_length=1024,
                                    hop_length=hop_length)
        f0 = np.nan_to_num(f0, nan=0.0)
    else:
        f0, vprob = pitch_autocorr(y, sr=sr, hop_length=hop_length, fmin=fmin, fmax=fmax)
    n = min(len(rms), len(zcr), len(f0))
    out = np.vstack([20 * np.log10(rms[:n] + 1e-5), zcr[:n], f0[:n], vprob[:n]])
    return out.astype(np.float32)


_SMILE = None


@register_feature("egemaps", modality="speech")
def egemaps(y: np.ndarray, *, sr: int = SPEECH_SR) -> np.ndarray:
    """The 88 eGeMAPS v02 functionals computed by openSMILE, ``(88,)`` float32."""
    global _SMILE
    import opensmile

    if _SMILE is None:
        _SMILE = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                 feature_level=opensmile.FeatureLevel.Functionals)
    if len(y) < sr // 10:  # openSMILE needs a few frames; pad very short input with silence
        y = np.pad(y, (0, sr // 10 - len(y)))
    f = _SMILE.process_signal(y, sr).to_numpy(dtype=np.float32).reshape(-1)
    return np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)


def utterance_stats(lld: np.ndarray) -> np.ndarray:
    """Utterance statistics of frame-level features ``(k, frames)``: mean, std, min, max,
    10th/50th/90th percentiles and mean delta; ``(8 * k,)``."""
    x = np.asarray(lld, dtype=np.float64)
    if x.shape[1] == 0:
        return np.zeros(8 * x.shape[0], np.float32)
    d = np.diff(x, axis=1) if x.shape[1] > 1 else np.zeros_like(x)
    p = np.percentile(x, [10, 50, 90], axis=1)
    out = np.concatenate([x.mean(1), x.std(1), x.min(1), x.max(1), p[0], p[1], p[2],
                          np.abs(d).mean(1)])
    return out.astype(np.float32)


def prosody_stats(lld: np.ndarray) -> np.ndarray:
    """17 utterance statistics of :func:`prosody` LLDs ``(4, frames)``.

    RMS energy (dB): mean, std, 10/50/90th percentiles, mean absolute delta; zero-crossing rate:
    mean, std; F0 over voiced frames only, in semitones re 27.5 Hz: mean, std, 10/50/90th
    percentiles, mean absolute delta; voiced-frame ratio; voicing: mean, std.
    """
    x = np.asarray(lld, dtype=np.float64)
    out = np.zeros(17)
    if x.ndim != 2 or x.shape[0] != 4 or x.shape[1] == 0:
        return out.astype(np.float32)
    rms, zcr, f0, vp = x
    out[0:2] = rms.mean(), rms.std()
    out[2:5] = np.percentile(rms, [10, 50, 90])
    out[5] = np.abs(np.diff(rms)).mean() if len(rms) > 1 else 0.0
    out[6:8] = zcr.mean(), zcr.std()
    voiced = f0 > 0
    if voiced.any():
        st = 12 * np.log2(f0[voiced] / 27.5)
        out[8:10] = st.mean(), st.std()
        out[10:13] = np.percentile(st, [10, 50, 90])
        out[13] = np.abs(np.diff(st)).mean() if len(st) > 1 else 0.0
    out[14] = voiced.mean()
    out[15:17] = vp.mean(), vp.std()
    return out.astype(np.float32)


@register_feature("lld_stats", modality="speech")
def lld_stats(y: np.ndarray, *, sr: int = SPEECH_SR, n_mfcc: int = 20, n_mels: int = 64,
              pitch: Literal["autocorr", "pyin"] = "autocorr") -> np.ndarray:
    """Utterance statistics of low-level descriptors: :func:`utterance_stats` of MFCCs with
    deltas (``8 * 3 * n_mfcc``) and :func:`prosody_stats` (17); ``(24 * n_mfcc + 17,)``."""
    c = mfcc(y, sr=sr, n_mfcc=n_mfcc, n_mels=n_mels, deltas=True)
    return np.concatenate([utterance_stats(c),
                           prosody_stats(prosody(y, sr=sr, pitch=pitch))]).astype(np.float32)


@register_feature("logmel_stats", modality="speech")
def logmel_stats(y: np.ndarray, *, sr: int = SPEECH_SR, n_mels: int = 64) -> np.ndarray:
    """Spectral-envelope statistics: :func:`utterance_stats` of the log-mel bands and of the
    log-mel bands minus each frame's mean over bands (loudness removed); ``(16 * n_mels,)``."""
    m = logmel(y, sr=sr, n_mels=n_mels)
    return np.concatenate([utterance_stats(m), utterance_stats(m - m.mean(axis=0, keepdims=True))])


@register_feature("fused", modality="speech")
def fused(y: np.ndarray, *, sr: int = SPEECH_SR, n_mfcc: int = 20, n_mels: int = 64,
          pitch: Literal["autocorr", "pyin"] = "autocorr", logmel_bands: int = 0) -> np.ndarray:
    """The fused hand-crafted vector: :func:`egemaps`, :func:`lld_stats` and, when
    ``logmel_bands`` > 0, :func:`logmel_stats` with that many bands
    (``(88 + 24 * n_mfcc + 17 + 16 * logmel_bands,)``; 585 with the defaults)."""
    parts = [egemaps(y, sr=sr), lld_stats(y, sr=sr, n_mfcc=n_mfcc, n_mels=n_mels, pitch=pitch)]
    if logmel_bands:
        parts.append(logmel_stats(y, sr=sr, n_mels=logmel_bands))
    return np.concatenate(parts)


@register_feature("concat", modality="speech")
def concat(y: np.ndarray, *, sr: int = SPEECH_SR,
           parts: Sequence[Mapping[str, Any]] = ()) -> np.ndarray:
    """Utterance-level features side by side, in the order of ``parts``
    (``[{"name": ..., "params": {...}}, ...]``); :func:`extract` caches each part on its own,
    so a part already computed for another model is reused."""
    return np.concatenate([_vector(name, get_feature(name).fn(y, sr=sr, **p))
                           for name, p in concat_parts(parts)])


def concat_parts(parts: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(name, params)`` of each part of a :func:`concat` feature, validated.

    Raises
    ------
    ConfigError
        When ``parts`` is not a non-empty list of ``{name, params}`` speech features.
    """
    if not isinstance(parts, Sequence) or isinstance(parts, str) or not parts:
        raise ConfigError("concat: 'parts' must be a non-empty list of {name, params}")
    out = []
    for i, part in enumerate(parts):
        if not isinstance(part, Mapping) or "name" not in part \
                or set(part) - {"name", "params"}:
            raise ConfigError(f"concat: parts[{i}] must be {{name, params}}, got {part!r}")
        name, params = str(part["name"]), part.get("params") or {}
        if name == "concat" or get_feature(name).modality != "speech":
            raise ConfigError(f"concat: parts[{i}] {name!r} is not a speech feature")
        if not isinstance(params, Mapping) or "speed" in params:
            raise ConfigError(f"concat: parts[{i}].params must be a mapping without 'speed'")
        out.append((name, dict(params)))
    return out


def _vector(name: str, x: Any) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim != 1:
        raise ConfigError(f"concat: part {name!r} is not an utterance-level vector "
                          f"(shape {x.shape})")
    return x


def speed_perturb(y: np.ndarray, speed: float) -> np.ndarray:
    """The waveform played ``speed`` times faster (resampled, Kaldi-style speed perturbation):
    tempo, pitch and formants all scale by ``speed``, which mimics a speaker with a shorter
    (``> 1``) or longer (``< 1``) vocal tract. ``speed == 1`` returns ``y`` unchanged."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    if speed == 1:
        return y
    ratio = Fraction(1 / float(speed)).limit_denominator(100)
    return resample_poly(np.asarray(y, np.float32), ratio.numerator,
                         ratio.denominator).astype(np.float32)


def normalize_gain(y: np.ndarray, *, target_dbfs: float = -23.0) -> np.ndarray:
    """``y`` scaled to a root-mean-square level of ``target_dbfs`` (dB full scale); silence
    (RMS below -100 dBFS) is returned unchanged. Corpora are recorded at levels tens of dB
    apart, and the Whisper log-mel front end is not gain-invariant."""
    y = np.asarray(y, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    if rms < 1e-5:
        return y
    return (y * np.float32(10 ** (target_dbfs / 20) / rms)).astype(np.float32)


#: ``params`` of a speech feature that act on the waveform before the extractor sees it
WAVEFORM_PARAMS = ("trim", "gain", "speed")


def compute_feature(y: np.ndarray, name: str, *, params: Mapping[str, Any] | None = None,
                    sr: int = SPEECH_SR) -> np.ndarray:
    """Feature ``name`` of a waveform, its waveform settings applied first: ``trim``
    (``"vad"``: leading and trailing non-speech cut off, :func:`~emofuse.features.vad.
    trim_silence`; default ``"none"``), then ``gain`` (``"rms"``: :func:`normalize_gain`
    to -23 dBFS; default ``"none"``), then ``speed`` (default 1: :func:`speed_perturb`,
    training copies that simulate other speakers). What training (:func:`extract`) and the
    product's predictor both compute."""
    kwargs = dict(params or {})
    trim = kwargs.pop("trim", "none")
    gain = kwargs.pop("gain", "none")
    speed = float(kwargs.pop("speed", 1.0))
    if trim == "vad":
        from .vad import trim_silence

        y = trim_silence(y, sr=sr)
    elif trim != "none":
        raise ConfigError(f"feature {name!r}: trim is 'none' or 'vad', not {trim!r}")
    if gain == "rms":
        y = normalize_gain(y)
    elif gain != "none":
        raise ConfigError(f"feature {name!r}: gain is 'none' or 'rms', not {gain!r}")
    return get_feature(name).fn(speed_perturb(y, speed), sr=sr, **kwargs)


# --------------------------------------------------------------------------------------------
# Cached extraction from files


def feature_settings(name: str, params: Mapping[str, Any] | None = None, *,
                     sr: int = SPEECH_SR) -> dict[str, Any]:
    """The cache settings (and model-card ``features`` entry) of extractor ``name``."""
    feat = get_feature(name)
    if feat.modality != "speech":
        raise EmofuseError(f"feature {name!r} is a {feat.modality} feature, not a speech one")
    return {"feature": name, "version": feat.version, "sr": int(sr),
            "params": dict(params or {})}


def extract(path: str | os.PathLike, name: str, *, params: Mapping[str, Any] | None = None,
            sr: int = SPEECH_SR, cache: FeatureCache | None = None) -> np.ndarray:
    """Feature ``name`` of the audio file ``path`` (decoded mono at ``sr``), cached.

    ``params`` may hold the waveform settings of :func:`compute_feature` (``trim``, ``gain``,
    ``speed``).

    Raises
    ------
    MediaError
        When the file cannot be decoded; :class:`~emofuse.errors.DataError` when the
        extractor fails on its content.
    """
    from ..errors import DataError, MediaError
    from ..media import load_audio

    settings = feature_settings(name, params, sr=sr)
    fn: Callable[..., Any] = get_feature(name).fn
    kwargs = dict(settings["params"])
    if fn is concat:  # each part cached on its own (shared with models that use it alone)
        extra = {k: kwargs[k] for k in WAVEFORM_PARAMS if k in kwargs}
        return np.concatenate([
            _vector(part, extract(path, part, params={**p, **extra}, sr=sr, cache=cache))
            for part, p in concat_parts(kwargs.get("parts"))])

    def compute(p: str | os.PathLike) -> np.ndarray:
        y, _ = load_audio(p, sr=sr)
        try:
            return compute_feature(y, name, params=kwargs, sr=sr)
        except (TypeError, ConfigError):
            raise
        except Exception as exc:  # a library failing on odd content: report this one file
            raise DataError(p, f"feature {name!r} failed ({type(exc).__name__}: {exc})") from exc

    if not Path(path).is_file():
        raise MediaError(path, "file does not exist" if not Path(path).exists()
                         else "not a file")
    try:
        return (cache or FeatureCache()).get_or_compute(path, settings, compute)
    except OSError as exc:  # unreadable while hashing
        raise MediaError(path, f"cannot be read ({exc.strerror or exc})") from None


def extract_many(paths: Iterable[str | os.PathLike], name: str, *,
                 params: Mapping[str, Any] | None = None, sr: int = SPEECH_SR,
                 cache: FeatureCache | None = None
                 ) -> tuple[list[np.ndarray | None], list[dict[str, str]]]:
    """:func:`extract` for many files; a file that fails gives ``None`` and an entry
    ``{"path", "reason"}`` in the second list, and the batch goes on."""
    cache = cache or FeatureCache()
    out: list[np.ndarray | None] = []
    errors: list[dict[str, str]] = []
    for p in paths:
        try:
            out.append(extract(p, name, params=params, sr=sr, cache=cache))
        except EmofuseError as exc:
            out.append(None)
            errors.append({"path": str(p), "reason": getattr(exc, "problem", str(exc))})
    return out, errors


def stack_features(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Stack equal-shaped feature vectors into ``(n, d)`` float32."""
    return np.stack([np.asarray(a, dtype=np.float32) for a in arrays])
