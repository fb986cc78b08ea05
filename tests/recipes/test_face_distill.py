"""Face v5: offline knowledge distillation (``model.params.training.distill_from``): a saved
face model's probabilities of the clean training crops as a second target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emofuse.errors import ConfigError, DataError
from emofuse.models.face_runtime import DEFAULT_TRAINING
from emofuse.recipes import face as recipe
from emofuse.recipes import face_train

from .test_face_combine import LABELS, _member
from .test_face_mix import _cfg as mix_cfg

ROOT = Path(__file__).resolve().parents[2]


def _cfg(root, out, training):
    return mix_cfg(root, out, None, training=training)


def test_the_teacher_targets_enter_the_loss(fer_tree, tmp_path, monkeypatch):
    teacher = _member(tmp_path / "teacher", 3, mixed=False)
    seen: list[torch.Tensor] = []
    real = face_train._teacher_probs

    def spy(*a, **k):
        p = real(*a, **k)
        seen.append(torch.from_numpy(p))
        return p

    monkeypatch.setattr(face_train, "_teacher_probs", spy)
    cfg = _cfg(fer_tree, tmp_path / "runs",
               {"distill_from": str(teacher), "distill_weight": 0.7, "distill_temperature": 3})
    out = recipe.train(cfg, out_dir=tmp_path / "model")
    assert len(seen) == 1 and seen[0].shape == (56, 7)   # 7 classes x 8 Training crops
    assert torch.allclose(seen[0].sum(1), torch.ones(56), atol=1e-5)
    _, card = recipe.load_predictor(out)
    assert card["model"]["params"]["training"]["distill_from"] == str(teacher)


def test_the_distillation_loss_is_hintons():
    module_cls = face_train._module_class()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    training = {**DEFAULT_TRAINING, "label_smoothing": 0.0, "precision": "fp32",
                "distill_weight": 1.0, "distill_temperature": 2.0}
    m = module_cls(net, lr=0.1, weight_decay=0.0, max_epochs=1, steps_per_epoch=1,
                   augment={"flip": 0.0, "rotate": 0.0, "scale": [1.0, 1.0], "shift": 0.0,
                            "erase": 0.0}, training=training, class_weights=None)
    m.log = lambda *a, **k: None
    x = torch.randint(0, 256, (5, 1, 2, 2), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 0, 1])
    q = torch.softmax(torch.randn(5, 3), 1)
    torch.manual_seed(0)
    loss = m.training_step((x, y, q), 0)
    with torch.no_grad():
        logits = net(face_train.to_input(x))
    target = torch.softmax(torch.log(q) / 2, 1)
    want = 4 * torch.nn.functional.kl_div(torch.log_softmax(logits / 2, 1), target,
                                          reduction="batchmean")
    assert torch.allclose(loss, want, atol=1e-5)


def test_teacher_with_other_labels_is_refused(fer_tree, tmp_path):
    teacher = _member(tmp_path / "teacher", 3, labels=LABELS[::-1], mixed=False)
    cfg = _cfg(fer_tree, tmp_path / "runs", {"distill_from": str(teacher)})
    with pytest.raises(DataError, match="teacher's labels"):
        recipe.train(cfg, out_dir=tmp_path / "model")
    with pytest.raises(ConfigError):
        face_train._training({"training": {"distill_weight": 1.5}})


def test_bundled_v5_config_validates():
    from emofuse.recipes import load_suite_config

    cfg = load_suite_config(ROOT / "configs" / "models" / "face.yaml")
    t = face_train._training(cfg.model.params)
    assert (t.distill_from, t.distill_weight, t.distill_temperature) == \
        ("runs/face-v4/model", 0.5, 2.0)
    assert np.isclose(cfg.train.lr, 0.002) and cfg.output.dir == Path("runs/face-v5")
