"""Image degradations of the robustness curves (media.degrade)."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.media.degrade import KINDS, UNITS, degrade_image


def _face(side: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side]
    return (127 + 100 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_keeps_dtype_and_is_deterministic(kind: str) -> None:
    img = _face()
    level = {"blur": 1.5, "jpeg": 20, "downscale": 16, "low_light": 0.3, "rotate": 20}[kind]
    a = degrade_image(img, kind=kind, level=level, seed=3)
    b = degrade_image(img, kind=kind, level=level, seed=3)
    assert a.dtype == np.uint8 and np.array_equal(a, b)
    assert kind in UNITS
    if kind == "downscale":
        assert a.shape == (16, 16)
    else:
        assert a.shape == img.shape and not np.array_equal(a, img)


def test_levels_mean_what_they_say() -> None:
    img = _face()
    flat = np.full((48, 48), 90, np.uint8)
    assert np.array_equal(degrade_image(flat, kind="blur", level=2.0), flat)
    assert np.array_equal(degrade_image(img, kind="rotate", level=0), img)
    dark = degrade_image(img, kind="low_light", level=0.25)
    assert abs(dark.mean() - 0.25 * img.mean()) < 1.0
    rgb = np.stack([img] * 3, -1)
    assert degrade_image(rgb, kind="jpeg", level=50).shape == rgb.shape
    assert degrade_image(np.zeros((30, 60), np.uint8), kind="downscale", level=20).shape == (10, 20)
    # stronger blur and lower JPEG quality move the image further from the original
    err = [np.abs(degrade_image(img, kind="blur", level=s).astype(int) - img).mean()
           for s in (0.5, 1.0, 3.0)]
    assert err == sorted(err)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown degradation 'fog'"):
        degrade_image(_face(), kind="fog", level=1)
