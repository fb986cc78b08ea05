"""Speech emotion models (PyTorch), each registered by name and built from a config's params.

Waveform models take ``(batch, samples)`` float32 audio at 16 kHz and compute their log-mel
input themselves (:class:`LogMel`), so a saved model needs nothing but audio:

===================  ======================================================================
name                 model
===================  ======================================================================
``bilstm_attn``      BiLSTM over log-mel frames with attention pooling
``cnn2d``            2-D CNN over log-mel
``wavegram_logmel``  learned 1-D conv front end on the waveform (filter 11, stride 5, three
                     dilated blocks with downsampling, channels regrouped into frequency bins)
                     joined with a log-mel branch, as PANNs' Wavegram-Logmel-CNN
``fercnn``           1-D CNN over a fused hand-crafted feature vector (DV-EmotionNet)
===================  ======================================================================

Every waveform model's ``forward(wave, stats=None, mix=None)`` accepts optional per-item
normalisation statistics ``stats`` ``(batch, 2, n_mels)`` (mean and std of each mel band, used
when the front end's ``norm`` is ``"speaker"``) and a mixup pair ``mix = (perm, lam)`` applied
to the normalised features during training. ``fercnn.forward(x, mix=None)`` takes
``(batch, dim)`` vectors and standardises them with its stored ``mean``/``std`` buffers.

SpecAugment is attached by the trainer as ``model.spec_augment`` (a parameter-free module that
acts only in training mode); it is not part of a saved model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..augment import online
from ..media.limits import SPEECH_SR
from . import register_model

__all__ = ["LogMel", "BiLSTMAttention", "CNN2D", "WavegramLogmelCNN", "FERCNN",
           "WAVEFORM_MODELS", "VECTOR_MODELS"]

Norm = Literal["utterance", "utterance_scalar", "speaker", "none"]
Mix = tuple[torch.Tensor, torch.Tensor]

#: Registered names of models whose input is the waveform / a feature vector.
WAVEFORM_MODELS = ("bilstm_attn", "cnn2d", "wavegram_logmel")
VECTOR_MODELS = ("fercnn",)


def _mix(x: torch.Tensor, mix: Mix | None) -> torch.Tensor:
    """Mixup of a batch with its permutation (:func:`emofuse.augment.online.mix`)."""
    return x if mix is None else online.mix(x, perm=mix[0], lam=mix[1])


class LogMel(nn.Module):
    """Log-mel front end (dB, as :func:`emofuse.features.speech.logmel`) plus normalisation.

    Parameters
    ----------
    sr, n_fft, hop_length, n_mels, fmin, fmax, top_db
        Spectrogram settings (``top_db`` clips each utterance to its peak minus ``top_db``).
    norm
        ``"utterance"``: each mel band standardised over the utterance's own frames;
        ``"utterance_scalar"``: the whole spectrogram standardised by one mean and std;
        ``"speaker"``: bands standardised by the ``stats`` passed to :meth:`forward` (those of
        the speaker's unlabelled utterances), falling back to ``"utterance"`` without them;
        ``"none"``: dB values as they are (a learned batch norm follows in every model).
    """

    def __init__(self, *, sr: int = SPEECH_SR, n_fft: int = 512, hop_length: int = 160,
                 n_mels: int = 64, fmin: float = 20.0, fmax: float | None = None,
                 top_db: float | None = 80.0, norm: Norm = "utterance") -> None:
        super().__init__()
        import librosa

        if norm not in ("utterance", "utterance_scalar", "speaker", "none"):
            raise ValueError(f"norm must be utterance, utterance_scalar, speaker or none, "
                             f"got {norm!r}")
        self.n_fft, self.hop_length, self.n_mels = n_fft, hop_length, n_mels
        self.top_db, self.norm = top_db, norm
        basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                    fmax=fmax or sr / 2)
        self.register_buffer("mel_basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` waveform -> ``(B, n_mels, frames)`` log-mel in dB (not normalised)."""
        if wave.shape[-1] < self.n_fft // 2 + 1:  # very short input: pad to one frame
            wave = F.pad(wave, (0, self.n_fft // 2 + 1 - wave.shape[-1]))
        spec = torch.stft(wave, self.n_fft, self.hop_length, window=self.window,
                          center=True, pad_mode="constant", return_complex=True)
        mel = torch.matmul(self.mel_basis, spec.real ** 2 + spec.imag ** 2)
        db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        if self.top_db is not None:
            peak = db.amax(dim=(1, 2), keepdim=True)
            db = torch.maximum(db, peak - self.top_db)
        return db

    def normalise(self, db: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """Apply this front end's ``norm`` to a ``(B, M, T)`` dB spectrogram."""
        if self.norm == "speaker" and stats is not None:
            return (db - stats[:, 0, :, None]) / stats[:, 1, :, None].clamp(min=1e-3)
        if self.norm in ("utterance", "speaker"):
            mu, sd = db.mean(dim=2, keepdim=True), db.std(dim=2, keepdim=True)
            return (db - mu) / sd.clamp(min=1e-3)
        if self.norm == "utterance_scalar":
            mu, sd = db.mean(dim=(1, 2), keepdim=True), db.std(dim=(1, 2), keepdim=True)
            return (db - mu) / sd.clamp(min=1e-3)
        return db

    def forward(self, wave: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        return self.normalise(self.spectrogram(wave), stats)


class _WaveformModel(nn.Module):
    """Shared front end (log-mel + normalisation + SpecAugment hook + input batch norm)."""

    def __init__(self, *, n_mels: int, norm: Norm, sr: int, **frontend: float) -> None:
        super().__init__()
        self.frontend = LogMel(sr=sr, n_mels=n_mels, norm=norm, **frontend)
        self.bn0 = nn.BatchNorm1d(n_mels)
        self.spec_augment: nn.Module = nn.Identity()

    def logmel(self, wave: torch.Tensor, stats: torch.Tensor | None,
               mix: Mix | None) -> torch.Tensor:
        """Normalised, (in training) augmented and mixed log-mel ``(B, M, T)``."""
        x = self.frontend(wave, stats)
        x = self.spec_augment(x)
        return self.bn0(_mix(x, mix))


@register_model("bilstm_attn")
class BiLSTMAttention(_WaveformModel):
    """BiLSTM over log-mel frames with additive attention pooling (the speech branch of the
    generative multimodal framework).

    Parameters
    ----------
    n_classes
        Outputs.
    n_mels, norm, sr
        Front end (see :class:`LogMel`).
    subsample
        Average-pool the frames by this factor before the LSTM (3: 30 ms steps).
    hidden, layers
        LSTM size per direction and depth.
    attention
        Size of the attention's hidden layer.
    dropout
        Dropout on the pooled vector (and between LSTM layers).
    """

    def __init__(self, *, n_classes: int, n_mels: int = 64, norm: Norm = "utterance",
                 sr: int = SPEECH_SR, subsample: int = 3, hidden: int = 96, layers: int = 1,
                 attention: int = 64, dropout: float = 0.3) -> None:
        super().__init__(n_mels=n_mels, norm=norm, sr=sr)
        self.subsample = subsample
        self.lstm = nn.LSTM(n_mels, hidden, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.att = nn.Sequential(nn.Linear(2 * hidden, attention), nn.Tanh(),
                                 nn.Linear(attention, 1, bias=False))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, wave: torch.Tensor, stats: torch.Tensor | None = None,
                mix: Mix | None = None) -> torch.Tensor:
        x = self.logmel(wave, stats, mix)
        if self.subsample > 1 and x.shape[-1] >= self.subsample:
            x = F.avg_pool1d(x, self.subsample)
        h, _ = self.lstm(x.transpose(1, 2))           # (B, T, 2H)
        w = torch.softmax(self.att(h), dim=1)          # (B, T, 1)
        return self.out(self.drop((w * h).sum(dim=1)))


class _ConvBlock2d(nn.Module):
    """(conv 3x3 -> BN -> ReLU) x ``convs`` then average pooling."""

    def __init__(self, c_in: int, c_out: int, *, convs: int = 1,
                 pool: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        pool = (min(self.pool[0], x.shape[-2]), min(self.pool[1], x.shape[-1]))
        return F.avg_pool2d(x, pool) if pool != (1, 1) else x


def _conv_stack(c_in: int, channels: Sequence[int], **block: Any) -> tuple[list[nn.Module], int]:
    """:class:`_ConvBlock2d` layers taking ``c_in`` channels through each of ``channels`` in
    turn (``block``: their settings), and the channel count at the end."""
    blocks: list[nn.Module] = []
    for c in channels:
        blocks.append(_ConvBlock2d(c_in, c, **block))
        c_in = c
    return blocks, c_in


def _pooled_head(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, T)`` -> ``(B, 2C)``: mean over frequency, then mean + max over time."""
    x = x.mean(dim=2)
    return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)


@register_model("cnn2d")
class CNN2D(_WaveformModel):
    """2-D CNN over log-mel: a strided 3x3 stem, conv blocks with 2x2 average pooling, mean
    over frequency, mean + max over time, dropout, linear.

    Parameters
    ----------
    n_classes
        Outputs.
    channels
        Output channels of the stem (which divides frequency and time by ``stem_stride``) and
        of each block after it (each halves frequency and time).
    convs
        3x3 convolutions per block.
    stem_stride, stem_kernel
        Stride and kernel size of the stem convolution (kernel default: 3, or
        ``stem_stride + 1`` for strides above 2).
    n_mels, norm, sr
        Front end (see :class:`LogMel`).
    dropout
        Dropout before the classifier.
    """

    def __init__(self, *, n_classes: int, channels: Sequence[int] = (16, 32, 64, 128),
                 convs: int = 1, stem_stride: int = 2, stem_kernel: int | None = None,
                 n_mels: int = 64, norm: Norm = "utterance", sr: int = SPEECH_SR,
                 dropout: float = 0.3) -> None:
        super().__init__(n_mels=n_mels, norm=norm, sr=sr)
        # a strided stem keeps the full-resolution maps (slow on CPU) out of the network; its
        # kernel covers the stride so that no bin is skipped
        k = stem_kernel or (3 if stem_stride <= 2 else stem_stride + 1)
        stem = nn.Sequential(
            nn.Conv2d(1, channels[0], k, stride=stem_stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
        blocks, c_in = _conv_stack(channels[0], channels[1:], convs=convs)
        self.blocks = nn.Sequential(stem, *blocks)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * c_in, n_classes)

    def forward(self, wave: torch.Tensor, stats: torch.Tensor | None = None,
                mix: Mix | None = None) -> torch.Tensor:
        x = self.logmel(wave, stats, mix).unsqueeze(1)   # (B, 1, M, T)
        return self.out(self.drop(_pooled_head(self.blocks(x))))


class _WaveBlock(nn.Module):
    """PANNs' ConvPreWavBlock: conv k3 -> BN -> ReLU -> conv k3 (dilation 2) -> BN -> ReLU ->
    max pooling."""

    def __init__(self, c_in: int, c_out: int, pool: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_out, c_out, 3, padding=2, dilation=2, bias=False),
            nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        return F.max_pool1d(x, min(self.pool, x.shape[-1])) if self.pool > 1 else x


@register_model("wavegram_logmel")
class WavegramLogmelCNN(_WaveformModel):
    """Wavegram-Logmel CNN (after PANNs, Kong et al. 2020), small enough for CPU training.

    The wavegram branch is a 1-D convolution (filter 11, stride 5) on the waveform and three
    dilated blocks with max pooling ``wave_pools`` (5 x 4 x 4 x 2 = 160 samples = the 10 ms
    hop of the log-mel), whose ``wave_channels[-1]`` channels are regrouped into
    ``n_mels // 2`` frequency bins; one 2-D block maps it to ``channels[0]`` maps, pooled in
    time. The log-mel branch's first block gives the same shape; both are concatenated along
    channels and go through the remaining blocks of :class:`CNN2D`.
    """

    def __init__(self, *, n_classes: int, channels: Sequence[int] = (16, 32, 64, 128),
                 wave_channels: Sequence[int] = (32, 48, 64), wave_pools: Sequence[int] = (4, 4, 2),
                 n_mels: int = 64, norm: Norm = "utterance", sr: int = SPEECH_SR,
                 dropout: float = 0.3) -> None:
        super().__init__(n_mels=n_mels, norm=norm, sr=sr)
        if len(wave_channels) != 3 or len(wave_pools) != 3:
            raise TypeError("wave_channels and wave_pools need three entries (three blocks)")
        bins = n_mels // 2
        if wave_channels[-1] % bins:
            raise TypeError(f"wave_channels[-1] ({wave_channels[-1]}) must be a multiple of "
                            f"n_mels // 2 ({bins}) to regroup channels into frequency bins")
        self.bins = bins
        self.pre_conv = nn.Sequential(nn.Conv1d(1, wave_channels[0], 11, stride=5, padding=5,
                                                bias=False),
                                      nn.BatchNorm1d(wave_channels[0]), nn.ReLU(inplace=True))
        blocks, c_in = [], wave_channels[0]
        for c, p in zip(wave_channels, wave_pools):
            blocks.append(_WaveBlock(c_in, c, p))
            c_in = c
        self.wave_blocks = nn.Sequential(*blocks)
        self.wave_norm = nn.BatchNorm2d(wave_channels[-1] // bins)
        self.wave_block2d = _ConvBlock2d(wave_channels[-1] // bins, channels[0], pool=(1, 2))
        self.mel_block = _ConvBlock2d(1, channels[0], pool=(2, 2))
        rest, c_in = _conv_stack(2 * channels[0], channels[1:])
        self.blocks = nn.Sequential(*rest)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * c_in, n_classes)

    def forward(self, wave: torch.Tensor, stats: torch.Tensor | None = None,
                mix: Mix | None = None) -> torch.Tensor:
        mel = self.mel_block(self.logmel(wave, stats, mix).unsqueeze(1))   # (B, C, M/2, T/2)
        peak = wave.abs().amax(dim=1, keepdim=True).clamp(min=1e-4)        # gain invariance
        a = self.wave_blocks(self.pre_conv((wave / peak).unsqueeze(1)))    # (B, Cw, T')
        b, c, t = a.shape
        a = a.reshape(b, c // self.bins, self.bins, t)                     # (B, g, M/2, T')
        a = self.wave_block2d(self.wave_norm(_mix(a, mix)))                # (B, C, M/2, T'/2)
        t = min(a.shape[-1], mel.shape[-1])
        x = torch.cat([mel[..., :t], a[..., :t]], dim=1)
        return self.out(self.drop(_pooled_head(self.blocks(x))))


@register_model("fercnn")
class FERCNN(nn.Module):
    """FERCNN of DV-EmotionNet: a 1-D CNN over a fused hand-crafted feature vector.

    Conv1D layers of ``channels`` (kernel 5, ReLU, max pooling 5 / stride 2 after each),
    dropout, dense ``dense`` with ReLU, linear output (softmax in the loss).

    Parameters
    ----------
    n_classes, dim
        Outputs and input vector length.
    channels, kernel, dense, dropout
        As described above (defaults: 256, 128, 64, 64, 32; 5; 256; 0.2).
    """

    def __init__(self, *, n_classes: int, dim: int,
                 channels: Sequence[int] = (256, 128, 64, 64, 32),
                 kernel: int = 5, dense: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        layers: list[nn.Module] = []
        c_in, length = 1, dim
        for c in channels:
            layers += [nn.Conv1d(c_in, c, kernel, padding=kernel // 2), nn.BatchNorm1d(c),
                       nn.ReLU(inplace=True), nn.MaxPool1d(5, stride=2, padding=2)]
            c_in, length = c, (length - 1) // 2 + 1
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Flatten(),
                                  nn.Linear(c_in * length, dense), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(dense, n_classes))

    def set_scaler(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Store the input standardisation (training statistics)."""
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def forward(self, x: torch.Tensor, stats: torch.Tensor | None = None,
                mix: Mix | None = None) -> torch.Tensor:
        x = _mix((x - self.mean) / self.std, mix)
        return self.head(self.body(x.unsqueeze(1)))
