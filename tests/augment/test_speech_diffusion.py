"""The ``ddpm_logmel`` generator on tiny random log-mels: fit, DDIM sampling (classes, count,
shape, reproducibility, step count), WAV output, manifest round trip, weights round trip, the
mel grid, and the ``emofuse augment speech`` command on a generated RAVDESS-like tree."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from emofuse.augment import build_generator, list_generators, load_set
from emofuse.augment.manifest import to_records
from emofuse.augment.speech import (SR, DDPMLogMel, cosine_alphas_bar, ddim_timesteps,
                                    make_ddpm_set, plot_mels)
from emofuse.errors import ConfigError, DataError

TINY = {"n_mels": 16, "frames": 16, "hop": 256, "width": 8, "steps": 3, "batch": 4, "crops": 2,
        "ddim_steps": 4, "griffin_lim_iter": 2}


@pytest.fixture(scope="module")
def fitted() -> DDPMLogMel:
    rng = np.random.default_rng(0)
    pairs = [(rng.normal(-40 + 10 * k, 5, (16, 20)).astype(np.float32), c)
             for k, c in enumerate(("angry", "neutral")) for _ in range(3)]
    return build_generator("ddpm_logmel", **TINY).fit(pairs, seed=0)


def test_registered_schedule_and_bad_settings():
    assert "ddpm_logmel" in list_generators()
    ab = cosine_alphas_bar(1000)
    assert ab.shape == (1000,) and np.all(np.diff(ab) < 0) and 0 < ab[-1] < ab[0] <= 1
    ts = ddim_timesteps(1000, 25)
    assert len(ts) == 25 and ts[0] == 999 and ts[-1] == 0
    with pytest.raises(ConfigError, match="ddim_steps"):
        build_generator("ddpm_logmel", ddim_steps=0)
    with pytest.raises(ConfigError, match="frames"):
        build_generator("ddpm_logmel", frames=30)
    with pytest.raises(DataError):
        build_generator("ddpm_logmel", **TINY).fit([])


def test_generate_classes_shape_reproducible_and_step_count(fitted, monkeypatch):
    assert fitted.classes == ["angry", "neutral"] and fitted.info["segments"] == 12
    items = fitted.generate({"angry": 2, "neutral": 3}, seed=5)
    assert [it.label for it in items] == ["angry"] * 2 + ["neutral"] * 3
    assert all(it.extra["mel"].shape == (16, 16) for it in items)
    again = fitted.generate({"angry": 2, "neutral": 3}, seed=5)
    assert all(np.array_equal(a.extra["mel"], b.extra["mel"]) for a, b in zip(items, again))
    other = fitted.generate({"angry": 2}, seed=6)
    assert not np.array_equal(other[0].extra["mel"], items[0].extra["mel"])
    calls = []
    net = fitted.net
    monkeypatch.setattr(fitted, "net", lambda x, t, c: calls.append(1) or net(x, t, c))
    fitted.sample(["angry"], seed=0)
    assert len(calls) == TINY["ddim_steps"]            # one (batched CFG) call per DDIM step
    with pytest.raises(ConfigError, match="not fitted on"):
        fitted.sample(["sad"])


def test_wavs_manifest_and_weights_round_trip(fitted, tmp_path):
    sset = make_ddpm_set(fitted, {"angry": 1, "neutral": 2}, tmp_path / "set", seed=1,
                         corpus="toy", part="fold 1 train core")
    back = load_set(tmp_path / "set")
    assert back.generator == "ddpm_logmel" and back.counts(kept_only=False) == \
        {"angry": 1, "neutral": 2}
    assert back.fitted_on["n"] == 6 and back.settings["ddim_steps"] == 4
    y, sr = sf.read(tmp_path / "set" / back.items[0].path)
    assert sr == SR and len(y) == (TINY["frames"] - 1) * TINY["hop"] and np.abs(y).max() < 1
    recs = to_records(back, folder=tmp_path / "set", test_ids=["other"])
    assert len(recs) == 3 and recs[0].audio.endswith(".wav")
    with pytest.raises(DataError, match="test item"):
        to_records(back, folder=tmp_path / "set", test_ids=[sset.fitted_on["ids"][0]])
    fitted.save(tmp_path / "w", data={"corpus": "toy"})
    loaded = DDPMLogMel.load(tmp_path / "w")
    assert loaded.classes == fitted.classes
    assert np.allclose(loaded.sample(["neutral"], seed=2), fitted.sample(["neutral"], seed=2),
                       atol=1e-5)
    png = plot_mels(fitted, tmp_path / "mels.png", per_class=2)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_speech_on_a_ravdess_like_tree(tmp_path, monkeypatch):
    from emofuse.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    rng = np.random.default_rng(0)
    for actor in (1, 2):
        d = tmp_path / "ravdess" / "Audio_Speech_Actors_01-24" / f"Actor_{actor:02d}"
        d.mkdir(parents=True)
        for emo in (1, 5):
            for rep in (1, 2):
                y = 0.1 * np.sin(2 * np.pi * (150 + 50 * emo) * np.arange(SR) / SR)
                sf.write(d / f"03-01-{emo:02d}-01-01-{rep:02d}-{actor:02d}.wav",
                         (y + 0.01 * rng.normal(size=SR)).astype(np.float32), SR)
    out = tmp_path / "syn"
    res = CliRunner().invoke(app, ["augment", "speech", "--root", str(tmp_path / "ravdess"),
                                   "--out", str(out), "--fraction", "1", "--per-class", "1",
                                   "--steps", "2", "--ddim-steps", "2",
                                   "--holdout", "Actor_02"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    sset = load_set(out)
    assert sset.fitted_on["n"] == 4 and all("-01" == i[-3:] for i in sset.fitted_on["ids"])
    assert "Actor_02" in sset.fitted_on["part"] and len(sset.items) == 2
    assert (out / "mels.png").is_file() and (out / "generator" / "model.safetensors").is_file()
