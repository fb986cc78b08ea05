"""ONNX export: onnxruntime gives PyTorch's probabilities within 1e-4."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from emofuse.errors import EmofuseError  # noqa: E402
from emofuse.export import PARITY_ATOL, check_onnx_parity, export_models, export_onnx  # noqa: E402

from ._tiny_models import make_bundle  # noqa: E402


def test_export_tiny_bundle_with_parity(tmp_path):
    bundle = make_bundle(tmp_path / "m")
    reports = {r.modality: r for r in export_models(bundle, tmp_path / "onnx")}
    for m in ("speech", "face", "text"):
        r = reports[m]
        assert r.ok and r.path.is_file() and r.max_abs_diff <= PARITY_ATOL
        card = json.loads((tmp_path / "onnx" / f"{m}.card.json").read_text())
        assert card["onnx"]["parity_max_abs_diff"] == r.max_abs_diff
        assert card["labels"] == json.loads((bundle / m / "card.json").read_text())["labels"]
    assert reports["fusion"].path is None and "no torch module" in reports["fusion"].skipped


def _peaky_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 7))
    with torch.no_grad():
        net[-1].weight.mul_(30)  # confident outputs make the check meaningful
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_parity_of_a_conv_net_and_failure_detection(tmp_path):
    net = _peaky_cnn()
    x = torch.randn(3, 1, 48, 48)
    path = export_onnx(net, x, tmp_path / "cnn.onnx")
    inputs = [x, torch.randn(5, 1, 48, 48)]
    p = torch.softmax(net(x), 1)
    assert p.max() > 0.9  # not a near-uniform output
    assert check_onnx_parity(net, path, inputs) <= 1e-4
    with torch.no_grad():
        net[-1].weight.mul_(0.5)  # the torch model changes, the ONNX file does not
    with pytest.raises(EmofuseError, match="differs from PyTorch"):
        check_onnx_parity(net, path, inputs)


def test_speech_waveform_model_with_stft_exports(tmp_path):
    """A real speech network (log-mel STFT front end) exports through the conv-DFT rewrite and
    matches the original at several lengths."""
    from emofuse.models import build_model
    from emofuse.inference.speech_models import Member, save_member

    torch.manual_seed(0)
    net = build_model("cnn2d", n_classes=8, channels=(4, 8)).eval()
    with torch.no_grad():
        net.out.weight.mul_(50)
    labels = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"]
    save_member(tmp_path / "speech", Member("waveform", labels, net, {
        "name": "cnn2d", "params": {"channels": [4, 8]}}),
        {"data": {}, "protocol": {}, "metrics": {}})
    (r,) = export_models(tmp_path / "speech", tmp_path / "onnx")
    assert r.ok and r.max_abs_diff <= PARITY_ATOL
    assert r.details["dynamic_axes"] == {"0": "batch", "1": "samples"}
    import onnxruntime as ort

    y = np.random.default_rng(1).standard_normal((1, 16000 * 5)).astype(np.float32) * 0.1
    sess = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": y})[0]
    with torch.inference_mode():
        ref = net(torch.from_numpy(y)).numpy()  # the original, complex-STFT network
    np.testing.assert_allclose(got, ref, atol=1e-3)
