"""Synthetic same-label pairing across corpora (three-modality protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.fusion import synthetic_pairs


def test_pairs_share_labels_and_stay_in_their_pools():
    face = ["happy", "sad", "angry", "happy", "sad", "fear"]
    audio = ["sad", "happy", "happy", "angry", "calm"]
    text = ["angry", "happy", "sad", "sad", "sad"]
    idx, y = synthetic_pairs({"face": face, "audio": audio, "text": text}, seed=0)
    assert set(y) == {"happy", "sad", "angry"}             # classes shared by every pool
    for m, pool in (("face", face), ("audio", audio), ("text", text)):
        assert idx[m].max() < len(pool)
        assert all(pool[i] == lab for i, lab in zip(idx[m], y))
    assert (y == "sad").sum() == 3                          # the largest pool's count


def test_fixed_count_cycles_small_pools_and_is_reproducible():
    a, b = ["x", "y"] * 3, ["x", "y", "y"]
    idx, y = synthetic_pairs({"a": a, "b": b}, n_per_class=5, seed=3)
    assert len(y) == 10 and (y == "x").sum() == 5
    assert sorted(idx["b"][y == "x"].tolist()) == [0] * 5
    # every item of a small pool is used before any is reused
    assert set(idx["b"][y == "y"].tolist()) == {1, 2}
    idx2, y2 = synthetic_pairs({"a": a, "b": b}, n_per_class=5, seed=3)
    assert np.array_equal(y, y2) and np.array_equal(idx["a"], idx2["a"])


def test_bad_requests():
    with pytest.raises(ValueError):
        synthetic_pairs({})
    with pytest.raises(ValueError, match="missing"):
        synthetic_pairs({"a": ["x"], "b": ["y"]}, classes=["x"])
