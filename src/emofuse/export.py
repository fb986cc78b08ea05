"""ONNX export of trained models, with a parity check against PyTorch in onnxruntime.

>>> reports = export_models("default", "onnx/")           # doctest: +SKIP
>>> [(r.modality, r.path.name, r.max_abs_diff) for r in reports]   # doctest: +SKIP

A model can be exported when its predictor exposes ``module`` (a ``torch.nn.Module`` mapping
the model input to logits) and ``example_input()`` (a batch of that input); feature extraction
stays in Python. A predictor may also give ``onnx_module()`` (an export-friendly equivalent of
``module``, checked against it) and ``onnx_dynamic_axes`` (``{"input": {axis: name}}``).
The exported graph returns the logits under the output name ``logits``; the parity check
compares softmax probabilities of PyTorch and onnxruntime on the example, on perturbed copies
of it and on other lengths along dynamic axes, and fails above ``atol`` (1e-4 by default).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EmofuseError

__all__ = ["ExportReport", "export_onnx", "check_onnx_parity", "halve_onnx_weights",
           "export_models", "write_onnx_copy", "PARITY_ATOL"]

#: Largest difference of probabilities allowed between PyTorch and onnxruntime.
PARITY_ATOL = 1e-4


@dataclass
class ExportReport:
    """One exported model: where it went and how closely onnxruntime matches PyTorch."""

    modality: str
    name: str
    path: Path | None
    max_abs_diff: float | None = None
    ok: bool = False
    skipped: str | None = None
    inputs: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = None if self.path is None else str(self.path)
        return d


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def export_onnx(module: Any, example: Any, path: str | os.PathLike, *, opset: int = 17,
                dynamic_axes: dict[int, str] | None = None, fold: bool = True) -> Path:
    """Write ``module`` (eval mode) as ONNX, input ``input`` and output ``logits``.

    ``dynamic_axes`` names the input axes that may change size (default: the batch axis 0);
    ``fold=False`` keeps the weights as they are (no constant folding, e.g. of batch norms into
    convolutions: onnxruntime does that when it loads the graph).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    axes = {"input": dict(dynamic_axes or {0: "batch"}), "logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, not gone
        try:
            torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["input"],
                              output_names=["logits"], dynamic_axes=axes, opset_version=opset,
                              do_constant_folding=fold)
        except Exception as exc:
            raise EmofuseError(f"{path}: ONNX export failed ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return path


def halve_onnx_weights(path: str | os.PathLike, *, min_size: int = 1024) -> Path:
    """Store the float32 weights of ``path`` with at least ``min_size`` values as float16,
    each followed by a ``Cast`` back to float32: the file halves, the arithmetic stays float32
    (onnxruntime folds the casts when it loads the graph)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        if values.size < min_size:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(values.astype(np.float16), f"{name}__f16"))
        casts.append(helper.make_node("Cast", [f"{name}__f16"], [name], to=TensorProto.FLOAT,
                                      name=f"{name}__cast"))
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def check_onnx_parity(module: Any, path: str | os.PathLike, inputs: list[Any], *,
                      atol: float = PARITY_ATOL) -> float:
    """Largest absolute difference of softmax probabilities, PyTorch vs onnxruntime.

    Raises :class:`EmofuseError` when it exceeds ``atol``.
    """
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    module = module.eval()
    for x in inputs:
        with torch.inference_mode():
            ref = _softmax(module(x).numpy())
        got = _softmax(sess.run(["logits"], {"input": x.numpy()})[0])
        worst = max(worst, float(np.abs(ref - got).max()))
    if worst > atol:
        raise EmofuseError(f"{path}: onnxruntime differs from PyTorch by {worst:.2e} "
                           f"(allowed {atol:.0e})")
    return worst


def _parity_inputs(example: Any, axes: dict[int, str], n: int = 4) -> list[Any]:
    """The example, the first item alone, a batch of perturbed copies and, for each other
    dynamic axis, the example cut to two thirds and repeated to twice its length."""
    import torch

    g = torch.Generator().manual_seed(0)
    out = [example, example[:1]]
    if example.is_floating_point():
        scale = example.std().clamp_min(1e-3)
        out.append(torch.cat([example + 0.1 * scale * torch.randn(example.shape, generator=g)
                              for _ in range(n)]))
    for axis in axes:
        if axis == 0:
            continue
        size = example.shape[axis]
        out.append(example.narrow(axis, 0, max(1, 2 * size // 3)))
        out.append(torch.cat([example, example.flip(axis)], dim=axis))
    return out


def export_models(model: str | os.PathLike, out_dir: str | os.PathLike, *,
                  opset: int = 17, check: bool = True,
                  atol: float = PARITY_ATOL) -> list[ExportReport]:
    """Export every exportable model behind ``model`` (a bundled name or a model folder).

    Writes ``<out_dir>/<modality>.onnx`` and ``<modality>.card.json`` (the model card plus an
    ``onnx`` section: opset, input shape and the parity figure). Models without an exportable
    module are reported as skipped.
    """
    from .inference import Recognizer

    rec = Recognizer.load(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for modality, info in rec.models.items():
        pred = rec.predictor(modality)
        module = getattr(pred, "module", None)
        make_example = getattr(pred, "example_input", None)
        if module is None or make_example is None:
            reports.append(ExportReport(modality, info.name, None,
                                        skipped="the predictor has no torch module to export"))
            continue
        example = make_example()
        axes = dict((getattr(pred, "onnx_dynamic_axes", None) or {}).get("input")
                    or {0: "batch"})
        to_export = pred.onnx_module() if hasattr(pred, "onnx_module") else module
        path = export_onnx(to_export, example, out / f"{modality}.onnx", opset=opset,
                           dynamic_axes=axes)
        report = ExportReport(modality, info.name, path, ok=not check)
        if check:
            inputs = _parity_inputs(example, axes)
            report.max_abs_diff = check_onnx_parity(module, path, inputs, atol=atol)
            report.ok, report.inputs = True, sum(int(x.shape[0]) for x in inputs)
        report.details = {"opset": opset, "input_shape": list(example.shape),
                          "dynamic_axes": {str(k): v for k, v in axes.items()},
                          "input_dtype": str(example.dtype).replace("torch.", "")}
        card = {**info.card, "onnx": {**report.details, "input": "input", "output": "logits",
                                      "parity_max_abs_diff": report.max_abs_diff,
                                      "parity_atol": atol if check else None}}
        (out / f"{modality}.card.json").write_text(json.dumps(card, indent=2,
                                                              ensure_ascii=False) + "\n")
        reports.append(report)
    return reports


def write_onnx_copy(module: Any, example: Any, folder: str | os.PathLike, *,
                    dynamic_axes: dict[int, str] | None = None,
                    weights_dtype: str = "float32") -> dict[str, Any]:
    """Export ``module`` to ``folder/model.onnx``, check its parity with PyTorch on the example
    and perturbed copies, and return the card entry ``{"file", "sha256", "parity_max_abs"}``.
    ``weights_dtype="float16"`` stores the large weights in half precision (see
    :func:`halve_onnx_weights`; the module's own weights should be float16-rounded too)."""
    from ._onnx import ONNX_FILE
    from .paths import file_sha256

    if weights_dtype not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be float32 or float16, not {weights_dtype!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    half = weights_dtype == "float16"
    # float16: the module's own (rounded) weights are stored, not products folded from them,
    # which a second rounding would move away from the module
    path = export_onnx(module, example, folder / ONNX_FILE, dynamic_axes=dynamic_axes,
                       fold=not half)
    if half:
        halve_onnx_weights(path)
    worst = check_onnx_parity(module, path, _parity_inputs(example, dict(dynamic_axes or
                                                                          {0: "batch"})))
    os.chmod(path, 0o644)
    return {"file": ONNX_FILE, "sha256": file_sha256(path), "parity_max_abs": float(worst)}
