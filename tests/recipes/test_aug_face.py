"""Suite aug-face: HOG features and a quick run on the tiny FER2013 tree."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.config import load_config
from emofuse.errors import ConfigError
from emofuse.evaluate.results import results_to
from emofuse.recipes import aug_face, get_suite


def test_hog_shape_and_norm():
    x = np.random.default_rng(0).integers(0, 255, (3, 48, 48)).astype(np.uint8)
    h = aug_face.hog(x, cell=6, bins=9)
    assert h.shape == (3, 8 * 8 * 9)
    np.testing.assert_allclose(np.linalg.norm(h, axis=1), 1.0, atol=1e-5)


def _cfg(fer_tree, tmp_path, **params):
    cfg = load_config("configs/aug-face.yaml")
    data = cfg.data.model_copy(update={"root": str(fer_tree)})
    model = cfg.model.model_copy(update={"params": {**cfg.model.params,
                                                    "pool_dir": str(tmp_path / "pool"),
                                                    "pca": 8, **params}})
    return cfg.model_copy(update={"data": data, "model": model})


def test_bad_arm_is_a_config_error(fer_tree, tmp_path):
    cfg = _cfg(fer_tree, tmp_path, arms={"real": {}, "x": {"source": "vae"}})
    with pytest.raises(ConfigError):
        get_suite("aug-face").run(cfg, quick=True)


def test_quick_run(fer_tree, tmp_path):
    arms = {"real": {}, "real_balanced": {"class_weight": "balanced"},
            "cgan": {"source": "cgan", "per_class": 4},
            "cgan_disgust": {"source": "cgan", "per_class": 3, "classes": ["disgust"]},
            "flip": {"source": "flip", "per_class": 2}}
    cfg = _cfg(fer_tree, tmp_path, arms=arms)
    with results_to(tmp_path / "results"):
        res = get_suite("aug-face").run(cfg, quick=True)
    assert "ua_cgan_f50" in res["metrics"] and "ua_flip_f100" in res["metrics"]
    assert len(res["metrics"]["ua_real_f50"]["per_fold"]) == 2
    assert "cgan_f50" in res["comparisons"] and "Disgust recall" in res["notes"]
    added = res["comparisons"]["cgan_disgust_f50"]["added_per_class_mean"]
    assert added["disgust"] == 3 and added["happy"] == 0
    assert res["comparisons"]["cgan_f100"]["added_per_class_mean"]["happy"] == 4
    assert (tmp_path / "results" / "aug-face-quick-grid.png").is_file()
    assert res["quality"]["cgan"]["gates_candidates"]["overall"]["n"] == 7 * 6
