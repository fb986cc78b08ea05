"""Fixtures shared by the recipe tests: a tiny FER2013 image-folder tree."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def face_like(rng: np.random.Generator, label: int, side: int = 48) -> np.ndarray:
    """Noise with a class-dependent bright bar, so that a model can learn something."""
    img = rng.integers(0, 80, (side, side)).astype(np.uint8)
    row = 4 + label * (side - 8) // 7
    img[row:row + 4] = 230
    return img


@pytest.fixture()
def fer_tree(tmp_path):
    """A tiny FER2013 image-folder tree: 7 classes x (8 Training, 3 PublicTest, 3 PrivateTest)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fer2013"
    n = 0
    for ci, emo in enumerate(EMOTIONS):
        for usage, count, folder in (("Training", 8, "train"), ("PublicTest", 3, "test"),
                                     ("PrivateTest", 3, "test")):
            d = root / folder / emo
            d.mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                Image.fromarray(face_like(rng, ci)).save(d / f"{usage}_{n}.jpg", quality=95)
                n += 1
    return root
