"""A saved model's network as ONNX, run with onnxruntime without importing torch.

Importing torch costs 1-3 s, most of a fresh process' first prediction. A model folder may
therefore hold ``model.onnx`` beside ``model.safetensors``; the card's ``onnx`` entry records
its file, sha256 and the parity with PyTorch measured when it was written (within
:data:`emofuse.export.PARITY_ATOL`). Predictors use it when onnxruntime is installed and fall
back to PyTorch otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .paths import file_sha256

__all__ = ["OnnxNet", "load_onnx", "session_options", "ONNX_FILE"]

#: File name of the ONNX copy in a model folder.
ONNX_FILE = "model.onnx"


def _threads() -> int:
    """torch's thread count when torch is already imported, else ``$OMP_NUM_THREADS``, else 1."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def session_options(threads: int | None = None) -> Any:
    """onnxruntime options for a shared CPU: ``threads`` intra-op threads, no spinning."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or _threads())
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class OnnxNet:
    """``net(x)`` -> logits for a float32 array, like the PyTorch module it was exported from."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), sess_options=session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: np.ascontiguousarray(x, np.float32)})[0]

    def eval(self) -> OnnxNet:
        return self


def load_onnx(folder: str | os.PathLike, card: dict[str, Any]) -> OnnxNet | None:
    """The ONNX copy of a model folder, or ``None`` when the card has none, onnxruntime is
    missing, ``$EMOFUSE_ONNX=0``, or the file does not match the card's checksum."""
    import importlib.util

    entry = card.get("onnx")
    if not isinstance(entry, dict) or os.environ.get("EMOFUSE_ONNX", "1") == "0":
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    path = Path(folder) / str(entry.get("file", ONNX_FILE))
    if not path.is_file() or file_sha256(path) != entry.get("sha256"):
        return None
    return OnnxNet(path)
