"""Zero-shot prototype similarities (features.text_prototypes), with a given template matrix
(no encoder loaded)."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.errors import ConfigError
from emofuse.features.text_prototypes import (PROTOTYPES, prototype_features, prototype_names)

LABELS = ["happy", "sad", "angry"]


def _protos(rng: np.random.Generator) -> np.ndarray:
    p = rng.normal(size=(sum(len(PROTOTYPES[c]) for c in LABELS), 8)).astype(np.float32)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def test_poolings_shapes_and_values():
    rng = np.random.default_rng(0)
    protos, x = _protos(rng), rng.normal(size=(5, 8)).astype(np.float32)
    sims = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ protos.T
    k = len(PROTOTYPES["happy"])
    allf = prototype_features(x, labels=LABELS, pooling="all", protos=protos)
    assert allf.shape == (5, len(protos)) and np.allclose(allf, sims, atol=1e-6)
    mean = prototype_features(x, labels=LABELS, pooling="mean", protos=protos)
    assert mean.shape == (5, 3) and np.allclose(mean[:, 0], sims[:, :k].mean(1), atol=1e-6)
    mx = prototype_features(x, labels=LABELS, pooling="max", protos=protos)
    assert np.allclose(mx[:, 1], sims[:, k:2 * k].max(1), atol=1e-6)
    both = prototype_features(x, labels=LABELS, pooling="meanmax", protos=protos)
    assert np.allclose(both, np.hstack([mean, mx]), atol=1e-6)
    assert len(prototype_names(LABELS, "meanmax")) == 6
    assert len(prototype_names(LABELS, "all")) == len(protos)
    # centring shifts each row: the argmax (the zero-shot answer) does not change
    c = prototype_features(x, labels=LABELS, pooling="mean", centre=True, protos=protos)
    assert (c.argmax(1) == mean.argmax(1)).all()
    assert np.allclose(c - mean, (c - mean)[:, :1], atol=1e-6)


def test_templates_and_errors():
    assert set(PROTOTYPES) == {"neutral", "happy", "sad", "angry", "fear", "disgust",
                               "surprise"}
    assert all(len(v) >= 5 and len(set(v)) == len(v) for v in PROTOTYPES.values())
    x = np.ones((2, 8), np.float32)
    with pytest.raises(ConfigError, match="no templates"):
        prototype_features(x, labels=["love"], pooling="mean")
    with pytest.raises(ConfigError, match="templates given"):
        prototype_features(x, labels=LABELS, pooling="mean", protos=np.ones((3, 8)))
