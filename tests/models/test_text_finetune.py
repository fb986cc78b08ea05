"""MiniLM with its top layers fine-tuned (models.text_finetune) on a tiny generated dataset:
shapes, probabilities, frozen layers untouched, determinism, the trained-tensors-only files and
their round trip, a mismatched base refused, the stratified subsample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emofuse.errors import ConfigError, DataError
from emofuse.models.text_finetune import CARD, WEIGHTS, FineTunedMiniLM, stratified_subsample

LABELS = ["happy", "sad", "angry"]
WORDS = {0: ["so happy", "wonderful day", "delighted", "great fun"],
         1: ["so sad", "lonely night", "miserable", "in tears"],
         2: ["furious", "angry at them", "outraged", "so mad"]}


def _data(n: int = 36, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    texts = [f"i am {WORDS[int(c)][rng.integers(4)]} about thing {i}" for i, c in enumerate(y)]
    return texts, y


def _model(**kw) -> FineTunedMiniLM:
    return FineTunedMiniLM(**{"epochs": 1, "max_train": 24, "batch_size": 8, **kw})


@pytest.fixture(scope="module")
def fitted() -> tuple[FineTunedMiniLM, list[str]]:
    texts, y = _data()
    return _model().fit(texts, y, LABELS), texts


def test_fit_predicts_probabilities_and_leaves_frozen_layers(fitted):
    from emofuse.models.text import load_transformer

    m, texts = fitted
    p = m.predict_proba(texts[:7])
    assert p.shape == (7, 3) and np.allclose(p.sum(1), 1) and (p >= 0).all()
    assert m.predict_logits(texts[:7]).shape == (7, 3)
    assert m.predict_proba([]).shape == (0, 3)
    assert m.info["train_items"] == 24 and m.info["items_given"] == 36
    assert m.info["class_counts"] == {"happy": 8, "sad": 8, "angry": 8}
    base = load_transformer().state_dict()
    state = m.encoder.state_dict()
    trained = ("encoder.layer.4.", "encoder.layer.5.")
    frozen = [k for k in state if not k.startswith(trained)]
    assert any(k.startswith("embeddings.") for k in frozen) and len(frozen) > 40
    for k in frozen:
        assert np.array_equal(state[k].numpy(), base[k].numpy()), k
    assert any(not np.array_equal(state[k].numpy(), base[k].numpy())
               for k in state if k.startswith(trained))


def test_same_seed_same_model(fitted):
    m, texts = fitted
    again = _model().fit(*_data(), LABELS)
    assert np.array_equal(again.predict_logits(texts), m.predict_logits(texts))


def test_save_load_round_trip_keeps_only_trained_tensors(fitted, tmp_path):
    from safetensors.numpy import load_file

    m, texts = fitted
    folder = m.save(tmp_path / "ft")
    keys = set(load_file(str(folder / WEIGHTS)))
    assert keys and all(k.startswith(("encoder.layer.4.", "encoder.layer.5.", "head."))
                        for k in keys)
    assert {"head.weight", "head.bias"} <= keys
    card = json.loads((folder / CARD).read_text())
    assert card["labels"] == LABELS and card["recipe"]["top_layers"] == 2
    assert len(card["base"]["sha256"]) == 64 and card["base"]["name"]
    back = FineTunedMiniLM.load(folder)
    assert back.labels == LABELS and back.recipe() == m.recipe()
    assert np.array_equal(back.predict_logits(texts), m.predict_logits(texts))


def test_mismatched_base_or_files_refused(fitted, tmp_path):
    m, _ = fitted
    folder = m.save(tmp_path / "ft")
    card = json.loads((folder / CARD).read_text())
    card["base"]["sha256"] = "0" * 64
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(DataError, match="different base model"):
        FineTunedMiniLM.load(folder)
    with pytest.raises(DataError, match="not a fine-tuned MiniLM folder"):
        FineTunedMiniLM.load(tmp_path / "nothing")
    good = m.save(tmp_path / "ft2")
    (good / WEIGHTS).write_bytes(b"junk")
    with pytest.raises(DataError, match="corrupted or replaced"):
        FineTunedMiniLM.load(good)


def test_bad_inputs_and_subsample():
    texts, y = _data(12)
    with pytest.raises(ConfigError, match="fewer than 2 classes"):
        _model().fit(texts, np.zeros(12, int), LABELS)
    with pytest.raises(ConfigError, match="12 texts but 3 targets"):
        _model().fit(texts, y[:3], LABELS)
    with pytest.raises(ConfigError, match="outside"):
        _model().fit(texts, y + 1, LABELS)
    with pytest.raises(ConfigError, match="top_layers"):
        FineTunedMiniLM(top_layers=-1)
    with pytest.raises(ConfigError, match="before predicting"):
        _model().predict_proba(["x"])
    yy = np.array([0] * 70 + [1] * 20 + [2] * 10)
    idx = stratified_subsample(yy, 10, seed=0)
    assert len(idx) == 10 and np.bincount(yy[idx]).tolist() == [7, 2, 1]
    assert np.array_equal(idx, stratified_subsample(yy, 10, seed=0))
    assert not np.array_equal(idx, stratified_subsample(yy, 10, seed=1))
    assert np.array_equal(stratified_subsample(yy, 500), np.arange(100))
