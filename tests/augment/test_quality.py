"""Quality gates: Fréchet distance, diversity, memorisation, confidence, the report."""

from __future__ import annotations

import numpy as np

from emofuse.augment.quality import (confidence, diversity, frechet_distance, nearest_real,
                                     quality_report, text_quality)

from ._fakes import fake_embed


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 3))
    assert frechet_distance(a, a) < 1e-8
    shifted = frechet_distance(a, a + 2.0)
    assert abs(shifted - 12.0) < 0.5                  # |mu1 - mu2|^2 = 3 * 4
    assert frechet_distance(a, a * 3.0) > 1.0         # same mean, wider
    assert np.isnan(frechet_distance(a[:1], a))


def test_diversity_and_nearest_real():
    same = np.tile([[1.0, 0.0]], (5, 1))
    assert abs(diversity(same)) < 1e-12
    orth = np.eye(4)
    assert abs(diversity(orth) - 1.0) < 1e-12
    assert np.isnan(diversity(orth[:1]))
    d = nearest_real(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[2.0, 0.0]]))
    assert np.allclose(d, [0.0, 1.0])


def test_confidence():
    p = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    c = confidence(p, [0, 0, 0])
    assert abs(c["confidence"] - 0.6) < 1e-9 and abs(c["agreement"] - 2 / 3) < 1e-9
    assert np.isnan(confidence(np.zeros((0, 2)), [])["confidence"])


def test_report_flags_copies_and_reads_against_real():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 8))
    real_y = np.arange(200) % 2
    copies = real[:20] + 1e-6
    r = quality_report(copies, real_y[:20], real, real_y, ["a", "b"],
                       proba=np.tile([0.5, 0.5], (20, 1)))
    o = r["overall"]
    assert o["n"] == 20 and o["near_copies"] == 1.0 and o["nearest_real_mean"] < 1e-6
    assert {"diversity", "real_diversity", "frechet", "frechet_real_vs_real", "confidence",
            "agreement"} <= set(o)
    assert set(r["per_class"]) == {"a", "b"}
    novel = rng.normal(size=(20, 8)) + 5
    assert quality_report(novel, real_y[:20], real, real_y, ["a", "b"])["overall"][
        "frechet"] > o["frechet"]


def test_text_quality_with_an_embedding():
    class Clf:
        def predict_proba(self, X):
            return np.tile([0.2, 0.8], (len(X), 1))

    r = text_quality(["i feel so sad", "so lonely today"], ["sad", "sad"],
                     ["i am happy", "i am sad", "what joy"], ["happy", "sad", "happy"],
                     ["happy", "sad"], classifier=Clf(), embed=fake_embed)
    assert r["overall"]["n"] == 2 and r["overall"]["agreement"] == 1.0
