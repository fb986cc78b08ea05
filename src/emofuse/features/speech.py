"""Speech features (keyword-only pure functions over a mono float32 waveform).

Frame-level outputs are ``(n_features, n_frames)``; utterance-level outputs are 1-D vectors.
Defaults: 16 kHz, 25 ms windows (512-point FFT), 10 ms hop.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["logmel", "mfcc", "prosody", "egemaps", "utterance_stats", "EGEMAPS_DIM",
           "pitch_autocorr"]

EGEMAPS_DIM = 88
_EPS = 1e-10


def logmel(y: np.ndarray, *, sr: int = 16000, n_mels: int = 64, n_fft: int = 512,
           hop_length: int = 160, fmin: float = 20.0, fmax: float | None = None,
           top_db: float | None = 80.0) -> np.ndarray:
    """Log-mel spectrogram in dB, ``(n_mels, frames)`` float32."""
    import librosa

    m = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length,
                                       n_mels=n_mels, fmin=fmin, fmax=fmax or sr / 2, power=2.0)
    return librosa.power_to_db(m, ref=1.0, amin=_EPS, top_db=top_db).astype(np.float32)


def mfcc(y: np.ndarray, *, sr: int = 16000, n_mfcc: int = 40, n_mels: int = 64,
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


def pitch_autocorr(y: np.ndarray, *, sr: int = 16000, frame_length: int = 640,
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


def prosody(y: np.ndarray, *, sr: int = 16000, hop_length: int = 160,
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


def egemaps(y: np.ndarray, *, sr: int = 16000) -> np.ndarray:
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
