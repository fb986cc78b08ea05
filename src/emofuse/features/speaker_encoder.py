"""Hidden states of a pretrained speaker encoder as utterance features.

The encoder is the GE2E speaker-verification LSTM (Wan et al. 2018) whose weights ship inside
the Apache-2.0 ``Resemblyzer`` package (``pretrained.pt``, 17 MB; trained on LibriSpeech,
VoxCeleb 1 and 2: thousands of speakers). The package itself is not imported (it needs
``webrtcvad``); its weights file is read with ``torch.load(weights_only=True)`` into three
single-layer LSTMs, so that every layer's outputs are available. Emotion is carried by the
lower and middle layers more than by the final, speaker-discriminative embedding; the feature
is the mean and standard deviation over frames of the chosen layers' outputs.

>>> x = ge2e(y, sr=16000, layers=(2,))      # (512,): layer 3 mean and std   # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..media.limits import SPEECH_SR
from . import register_feature

__all__ = ["ge2e", "ge2e_weights_path", "GE2E_SR", "GE2E_HIDDEN"]

#: Sampling rate, mel bands, window and hop of the encoder's input (Resemblyzer's hparams).
GE2E_SR, _N_MELS, _N_FFT, _HOP = SPEECH_SR, 40, 400, 160
#: Width of every LSTM layer and of the embedding.
GE2E_HIDDEN = 256
_LAYERS = 3
_TARGET_DBFS = -30.0
_NET: dict[str, Any] = {}
_LOCK = threading.Lock()


def ge2e_weights_path() -> Path:
    """``pretrained.pt`` inside the installed ``Resemblyzer`` package (found, not imported).

    Raises
    ------
    DataError
        When the package is missing (``pip install --no-deps Resemblyzer``).
    """
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(None, "the ge2e speech feature needs the 'Resemblyzer' package for its "
                        "weights file: pip install --no-deps Resemblyzer==0.1.4")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise DataError(path, "weights file missing from the installed 'Resemblyzer' package")
    return path


def _network() -> dict[str, Any]:
    """The three LSTM layers and the embedding projection, loaded once per process."""
    with _LOCK:
        if not _NET:
            import torch

            path = ge2e_weights_path()
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
            except Exception as exc:  # noqa: BLE001 - a damaged file, whatever torch says
                raise DataError(path, f"cannot read the GE2E weights: {exc}") from exc
            layers = []
            for i in range(_LAYERS):
                lstm = torch.nn.LSTM(_N_MELS if i == 0 else GE2E_HIDDEN, GE2E_HIDDEN,
                                     batch_first=True)
                lstm.load_state_dict({f"{k}_l0": state[f"lstm.{k}_l{i}"] for k in
                                      ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
                layers.append(lstm.eval())
            linear = torch.nn.Linear(GE2E_HIDDEN, GE2E_HIDDEN)
            linear.load_state_dict({"weight": state["linear.weight"],
                                    "bias": state["linear.bias"]})
            _NET.update(layers=layers, linear=linear.eval())
    return _NET


def _mel(y: np.ndarray, sr: int) -> np.ndarray:
    """The encoder's input: volume raised to -30 dBFS (never lowered), 40-band power mel
    spectrogram (not log), ``(frames, 40)``."""
    import librosa

    y = np.asarray(y, np.float32)
    if sr != GE2E_SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=GE2E_SR)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0
    if rms > 0:
        gain = 10 ** ((_TARGET_DBFS - 20 * np.log10(rms)) / 20)
        y = y * max(1.0, gain)
    if len(y) < _N_FFT:
        y = np.pad(y, (0, _N_FFT - len(y)))
    m = librosa.feature.melspectrogram(y=y, sr=GE2E_SR, n_fft=_N_FFT, hop_length=_HOP,
                                       n_mels=_N_MELS)
    return m.astype(np.float32).T


@register_feature("ge2e", modality="speech")
def ge2e(y: np.ndarray, *, sr: int = SPEECH_SR, layers: Sequence[int] = (2,),
         embedding: bool = False) -> np.ndarray:
    """Mean and standard deviation over frames of the GE2E LSTM layers ``layers`` (0-2), then
    the L2-normalised speaker embedding when ``embedding``:
    ``(512 * len(layers) + 256 * embedding,)`` float32."""
    import torch

    layers = [int(i) for i in layers]
    if not layers and not embedding:
        raise ConfigError("ge2e: choose at least one layer (0, 1, 2) or embedding: true")
    if bad := [i for i in layers if not 0 <= i < _LAYERS]:
        raise ConfigError(f"ge2e: layers are 0, 1 or 2, got {bad}")
    net = _network()
    h = torch.from_numpy(_mel(y, sr))[None]
    outs, feats = [], []
    with torch.inference_mode():
        for lstm in net["layers"][:max(layers + [_LAYERS - 1 if embedding else 0]) + 1]:
            h, (hn, _) = lstm(h)
            outs.append((h[0], hn[-1]))
        for i in layers:
            o = outs[i][0]
            feats += [o.mean(0), o.std(0, unbiased=len(o) > 1)]
        if embedding:
            e = torch.relu(net["linear"](outs[_LAYERS - 1][1]))
            feats.append((e / e.norm().clamp_min(1e-8))[0])
    return torch.cat(feats).numpy().astype(np.float32)
