"""AAEC generator (tiny generated sequences and wav files) and a --quick run of the
``aug-speech-aaec`` suite on the real RAVDESS subset (skipped without the data)."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.augment import build_generator, list_generators, load_set
from emofuse.augment.aaec import (VARIANTS, AAECGenerator, combined_score, make_feature_set,
                                  pool_sequence, read_features, sequence_features,
                                  write_feature_set)
from emofuse.augment.manifest import to_records
from emofuse.corpora import Record
from emofuse.errors import ConfigError, DataError

TINY = dict(steps=8, epochs=2, finetune_epochs=1, batch_size=8, gru_hidden=8,
            enc_dims=(16, 8, 4), disc_dims=(8, 4), cls_channels=(8, 8, 8), cls_gru=4)
CLASSES = ["angry", "happy", "sad"]


def _data(n_per_class: int = 8, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    X, y, ids = [], [], []
    for k, c in enumerate(CLASSES):
        for i in range(n_per_class):
            X.append(rng.normal(k, 1.0, size=(8, 6)))
            y.append(c)
            ids.append(f"{c}-{i}")
    return np.asarray(X, np.float32), y, ids


def test_registry_and_options():
    assert "aaec" in list_generators()
    gen = build_generator("aaec", variant="aae_c", **TINY)
    assert isinstance(gen, AAECGenerator) and gen.modality == "features"
    with pytest.raises(ConfigError, match="variant"):
        build_generator("aaec", variant="nope")
    with pytest.raises(ConfigError, match="aaec"):
        build_generator("aaec", bogus=1)
    assert combined_score(0.5, 1.0) == pytest.approx(0.67)


def test_pool_sequence_trims_and_pools():
    frames = np.zeros((3, 100), np.float32)
    frames[:, 20:60] = np.arange(40, dtype=np.float32)   # loud part, increasing
    loud = np.full(100, -80.0)
    loud[20:60] = 0.0
    out = pool_sequence(frames, 4, trim_db=35, loudness=loud)
    assert out.shape == (4, 3)
    assert np.allclose(out[:, 0], [4.5, 14.5, 24.5, 34.5])   # only frames 20..59 pooled
    short = pool_sequence(np.ones((2, 3), np.float32), 8)
    assert short.shape == (8, 2) and np.allclose(short, 1)
    with pytest.raises(ValueError):
        pool_sequence(np.zeros((2, 0)), 4)


def test_fit_generate_manifest_and_determinism(tmp_path):
    X, y, ids = _data()
    a = AAECGenerator(**TINY).fit_arrays(X, y, ids, seed=3, X_val=X[::4], y_val=y[::4])
    b = AAECGenerator(**TINY).fit_arrays(X, y, ids, seed=3, X_val=X[::4], y_val=y[::4])
    pa, pb = a.predict_proba(X), b.predict_proba(X)
    assert pa.shape == (len(X), 3) and np.allclose(pa.sum(1), 1, atol=1e-5)
    assert np.array_equal(pa, pb)                                   # same seed, same model
    items = a.generate({"sad": 5, "angry": 2, "happy": 0}, seed=1)
    again = b.generate({"sad": 5, "angry": 2, "happy": 0}, seed=1)
    assert [it.label for it in items].count("sad") == 5 and len(items) == 7
    assert all(np.array_equal(i.extra["features"], j.extra["features"])
               for i, j in zip(items, again))
    with pytest.raises(ConfigError, match="no training examples"):
        a.generate({"fear": 1})
    other = a.generate({"sad": 5}, seed=2)
    assert not np.array_equal(other[0].extra["features"], items[2].extra["features"])
    for it in items:
        assert it.extra["features"].shape == (8, 6) and it.extra["features"].dtype == np.float32
        assert it.generator == "aaec" and it.kind == "average"
        assert it.source_ids[0] in ids and it.source_ids[0].startswith(it.label)
    assert "val_scores" in a.info and a.info["fit_s"] >= 0
    # the set on disk: manifest + files, read back
    sset = make_feature_set(a, items, corpus="tiny", part="train", seed=1)
    folder = write_feature_set(sset, tmp_path / "set")
    back = load_set(folder)
    assert back.modality == "features" and back.fitted_on["n"] == len(ids)
    assert back.settings["variant"] == "aaec" and back.settings["classes"] == CLASSES
    Xs, labels = read_features(back, folder)
    assert Xs.shape == (7, 8, 6) and labels.count("sad") == 5
    assert np.allclose(Xs[0], again[0].extra["features"])
    recs = to_records(back, folder=folder, test_ids=["unrelated"])
    assert len(recs) == 7 and recs[0].audio is None
    assert np.allclose(np.load(recs[0].extra["features_path"]), Xs[0])
    with pytest.raises(DataError, match="test item"):
        to_records(back, folder=folder, test_ids=[ids[0]])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_fits(variant):
    X, y, ids = _data(4)
    gen = AAECGenerator(variant=variant, **TINY).fit_arrays(X, y, ids, seed=0)
    assert gen.predict_proba(X[:3]).shape == (3, 3)
    if variant == "classifier":
        with pytest.raises(ConfigError, match="no autoencoder"):
            gen.generate({"sad": 1})
    else:
        kind = "reconstruct" if variant == "aaec_plain" else "average"
        assert gen.generate({"sad": 2})[0].kind == kind


def test_fit_from_audio_records(tmp_path):
    sf = pytest.importorskip("soundfile")
    rng = np.random.default_rng(0)
    recs = []
    for k, c in enumerate(CLASSES):
        for i in range(3):
            t = np.arange(8000) / 16000
            y = 0.3 * np.sin(2 * np.pi * (150 + 100 * k) * t) + 0.01 * rng.normal(size=len(t))
            path = tmp_path / f"{c}{i}.wav"
            sf.write(path, y.astype(np.float32), 16000)
            recs.append(Record(id=f"{c}{i}", corpus="tiny", label_native=c, label=c,
                               audio=str(path)))
    seqs, skipped = sequence_features(recs, steps=8)
    assert not skipped and seqs["sad0"].shape == (8, 40)
    gen = AAECGenerator(**TINY).fit(recs, seed=0)
    assert sorted(gen.fitted_ids) == sorted(r.id for r in recs)
    assert gen.generate({"happy": 2})[0].extra["features"].shape == (8, 40)
    bad = [Record(id="t", corpus="tiny", label_native="sad", label="sad", split="test",
                  audio=str(tmp_path / "sad0.wav"))]
    with pytest.raises(ConfigError, match="training data only"):
        gen.fit(bad)


def test_quick_suite_on_ravdess(shared_data, tmp_path):
    import json

    from emofuse.config import load_config
    from emofuse.evaluate.results import write_result
    from emofuse.recipes import config_path, get_suite

    cfg = load_config(config_path("aug-speech-aaec"))
    result = get_suite("aug-speech-aaec").run(cfg, quick=True, log=lambda m: None)
    M = result["metrics"]
    for v in VARIANTS:
        for f in ("f100", "f10"):
            for m in ("macro_f1", "ua", "combined"):
                assert 0 <= M[f"{m}_{v}_{f}"]["mean"] <= 1
            assert M[f"fit_{v}_{f}_s"]["mean"] > 0
    assert M["combined"]["mean"] == pytest.approx(
        0.66 * M["macro_f1"]["mean"] + 0.34 * M["ua"]["mean"])
    assert "AAEC'" in result["notes"] and "classifier alone" in result["notes"]
    g = result["generation"]
    assert g["items"] == 24 * len(result["classes"]) and g["fitted_on_n"] > 0
    result["suite"] += "-quick"
    jpath, mpath = write_result(result, tmp_path)
    assert json.loads(jpath.read_text())["variants"] == list(VARIANTS)
    assert "AAEC self-comparison" in mpath.read_text()
