"""``emofuse.augment.online.face_degrade``: the capture-chain degradations of face training
batches (off by default; each kind in its expected direction) and their typed parameters."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.augment import online
from emofuse.paths import repo_root
from emofuse.errors import ConfigError

torch = pytest.importorskip("torch")

ALL_OFF = {"blur": 0.0, "downscale": 0.0, "low_light": 0.0, "jpeg": 0.0}


def _faces(n: int = 8, side: int = 48) -> torch.Tensor:
    """Smooth shapes plus fine texture in [-1, 1] (a checkerboard: high-frequency energy)."""
    yy, xx = np.mgrid[:side, :side]
    base = 0.5 * np.cos(xx / 6.0) * np.sin(yy / 5.0) + 0.3 * ((xx + yy) % 2 * 2 - 1)
    x = np.stack([base + 0.05 * k for k in range(n)])[:, None]
    return torch.as_tensor(np.clip(x, -1, 1), dtype=torch.float32)


def _high_freq(x: torch.Tensor) -> float:
    return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean()
                 + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())


def test_default_off_leaves_the_batch_identical():
    from emofuse.recipes.face_params import FaceAugment, FaceFeatureParams

    assert FaceAugment().degrade is None and FaceFeatureParams().augment.degrade is None
    x = _faces()
    g = torch.Generator().manual_seed(0)
    assert online.face_degrade(x, generator=g) is x                 # every probability 0
    assert online.face_degrade(x, **ALL_OFF) is x


@pytest.mark.parametrize("kind, level", [("blur", "blur_sigma"), ("downscale", "downscale_side"),
                                         ("low_light", "low_light_factor"),
                                         ("jpeg", "jpeg_quality")])
def test_each_kind_at_probability_one(kind, level):
    x = _faces()
    ranges = {"blur_sigma": (1.5, 2.0), "downscale_side": (12, 16),
              "low_light_factor": (0.15, 0.3), "jpeg_quality": (10, 15)}
    opts = {**ALL_OFF, kind: 1.0, level: ranges[level]}
    a = online.face_degrade(x, **opts, generator=torch.Generator().manual_seed(1))
    b = online.face_degrade(x, **opts, generator=torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert float(a.min()) >= -1 and float(a.max()) <= 1
    assert (a - x).abs().amax((1, 2, 3)).min() > 0.01             # every image changed
    if kind == "low_light":
        grey = (x + 1) * 127.5
        assert float(((a + 1) * 127.5).mean()) < 0.35 * float(grey.mean())
    else:                                  # blur, downscale and JPEG lose the fine texture
        assert _high_freq(a) < 0.7 * _high_freq(x)
    assert torch.equal(x, _faces())                                 # the input is not changed


def test_probability_draws_per_image():
    x = _faces(200, 16)
    out = online.face_degrade(x, **{**ALL_OFF, "low_light": 0.2},
                              generator=torch.Generator().manual_seed(3))
    changed = int(((out - x).abs().amax((1, 2, 3)) > 0).sum())
    assert 20 <= changed <= 60                                      # ~ 0.2 of 200
    assert torch.equal(out[(out - x).abs().amax((1, 2, 3)) == 0],
                       x[(out - x).abs().amax((1, 2, 3)) == 0])


def test_the_v3_config_turns_it_on_and_a_typo_fails_with_its_line(tmp_path):
    from emofuse.recipes import explain_suite_config, load_suite_config
    from emofuse.recipes.face_params import FaceFeatureParams

    text = (repo_root() / "configs" / "models" / "face-v3.yaml").read_text()
    path = tmp_path / "v3.yaml"
    path.write_text(text)
    cfg = load_suite_config(path)
    deg = FaceFeatureParams.of(cfg.features, where="features.params").augment.degrade
    assert deg is not None and (deg.blur, deg.downscale, deg.low_light, deg.jpeg) == (0.2,) * 4
    assert deg.jpeg_quality == [10, 90]
    assert text.count("blur_sigma:") == 1
    typo = text.replace("blur_sigma:", "blur_sigm:")
    line = next(i for i, t in enumerate(typo.splitlines(), 1) if "blur_sigm:" in t)
    path.write_text(typo)
    problems = explain_suite_config(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"features.params.augment.degrade.blur_sigm (line {line}): "
                                  "unknown key")
    with pytest.raises(ConfigError, match=rf"degrade\.blur_sigm \(line {line}\)"):
        load_suite_config(path)
    path.write_text(text.replace("jpeg_quality: [10, 90]", "jpeg_quality: [10, 190]"))
    with pytest.raises(ConfigError, match="jpeg_quality"):
        load_suite_config(path)
