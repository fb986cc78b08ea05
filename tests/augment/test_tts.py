"""The ``tts`` generator (piper and espeak-ng; each test skips with the reason when its engine
is absent), its manifest and prosody, the missing-engine error, and a --quick run of the
``aug-speech-tts`` suite on the real RAVDESS subset (skipped without the data)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from emofuse.augment import build_generator, list_generators, load_set
from emofuse.augment.manifest import to_records
from emofuse.augment.tts import (CARRIERS, PROSODY, EngineUnavailable, TTSGenerator,
                                 engine_status, make_tts_set, wav_stats)
from emofuse.errors import ConfigError, EmofuseError

CLASSES = list(PROSODY)          # the 8 RAVDESS classes
STATUS = engine_status()


def _need(engine: str) -> None:
    if STATUS[engine] is not None:
        pytest.skip(f"TTS engine {engine} unavailable: {STATUS[engine]}")


@pytest.fixture(scope="module", params=["piper", "espeak"])
def made(request, tmp_path_factory):
    """2 clips per class with one engine, written as a synthetic set."""
    engine = request.param
    _need(engine)
    out = tmp_path_factory.mktemp(f"tts-{engine}")
    gen = build_generator("tts", engines=[engine])
    sset = make_tts_set(gen, {c: 2 for c in CLASSES}, out, seed=3, corpus="ravdess")
    return engine, out, sset


def test_registered_and_options():
    assert "tts" in list_generators()
    gen = build_generator("tts", engines="espeak")
    assert isinstance(gen, TTSGenerator) and gen.modality == "audio"
    assert gen.engines == ["espeak"] and gen.sentences == list(CARRIERS)
    with pytest.raises(ConfigError, match="engines"):
        build_generator("tts", engines=["festival"])
    with pytest.raises(ConfigError, match="tts"):
        build_generator("tts", bogus=1)
    # a class without its own profile borrows one; overrides merge into it
    g2 = TTSGenerator(engines="espeak", prosody={"excited": {"rate": 1.3}})
    assert g2.profile("excited")["rate"] == 1.3 and g2.profile("excited")["pitch"] == 3
    assert g2.profile("other") == PROSODY["neutral"]


def test_wav_format_manifest_and_records(made):
    import soundfile as sf

    engine, out, sset = made
    assert sset.counts() == {c: 2 for c in CLASSES}
    assert sset.fitted_on["n"] == 0 and sset.fitted_on["ids"] == []
    back = load_set(out)
    assert back.generator == "tts" and back.modality == "audio" and back.seed == 3
    assert back.settings["engines"] == [engine] and "prosody" in back.settings
    assert back.extra["timing"][engine]["clips"] == 16
    for it in back.items:
        info = sf.info(str(out / it.path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.duration > 0.3
        assert it.text in CARRIERS and it.label in CLASSES and it.seed == 3
        assert it.extra["engine"] == engine and it.extra["prosody"]
        assert it.extra["sentence_source"] == "carrier"
    manifest = json.loads((out / "manifest.json").read_text())
    first = manifest["items"][0]
    for key in ("generator", "label", "seed", "text", "path"):
        assert first[key] not in (None, "")
    assert "items.csv" in {p.name for p in out.iterdir()}
    recs = to_records(back, folder=out, test_ids=["03-01-05-01-01-01-01"])
    assert all(r.audio and r.split == "train" and r.extra["synthetic"] for r in recs)


def test_prosody_is_audible(made):
    """Angry is louder and faster than sad, measured on the waveform."""
    import soundfile as sf

    _, out, sset = made

    def level_and_tempo(label: str) -> tuple[float, float]:
        lv, tempo = [], []
        for it in sset.items:
            if it.label == label:
                y, sr = sf.read(str(out / it.path), dtype="float32")
                s = wav_stats(y, sr)
                lv.append(s["rms_dbfs"])
                tempo.append(len(it.text) / s["active_s"])   # characters per active second
        return float(np.mean(lv)), float(np.mean(tempo))

    angry, sad = level_and_tempo("angry"), level_and_tempo("sad")
    assert angry[0] > sad[0] + 6          # dB
    assert angry[1] > 1.15 * sad[1]       # characters per second


def test_missing_engines_raise_a_clear_error(tmp_path, monkeypatch):
    gen = TTSGenerator(engines="espeak", espeak_binary="no-such-espeak-binary")
    with pytest.raises(EngineUnavailable, match="apt-get install espeak-ng"):
        gen.generate({"angry": 1}, out_dir=tmp_path)
    with pytest.raises(EngineUnavailable, match="no such file"):
        TTSGenerator(engines="piper", voice=str(tmp_path / "none.onnx")).check()
    monkeypatch.setitem(sys.modules, "piper", None)       # piper-tts not installed
    with pytest.raises(EngineUnavailable, match="pip install piper-tts") as err:
        TTSGenerator(engines="piper").check()
    assert isinstance(err.value, EmofuseError)
    assert engine_status(["piper"])["piper"].startswith("the piper engine needs")


def test_llm_sentences_with_a_fake_backend(tmp_path):
    _need("espeak")
    from tests.augment._fakes import FakeBackend

    gen = TTSGenerator(engines="espeak", llm={"per_class": 2}, backend=FakeBackend())
    sset = make_tts_set(gen, {"angry": 30, "sad": 2}, tmp_path, seed=0)
    src = {it.extra["sentence_source"] for it in sset.items if it.label == "angry"}
    assert src == {"carrier", "llm"}
    assert sset.extra["sentences_used"]["angry"] > len(CARRIERS)


@pytest.mark.slow
def test_quick_suite_on_ravdess(shared_data, tmp_path):
    _need("espeak")
    from emofuse.config import load_config
    from emofuse.evaluate.results import write_result
    from emofuse.recipes import config_path, get_suite

    cfg = load_config(config_path("aug-speech-tts"))
    # espeak only keeps the smoke run fast (piper is covered above)
    cfg.model.params["arms"] = {"real": {}, "tts": {"engines": ["espeak"], "per_class": 40}}
    result = get_suite("aug-speech-tts").run(cfg, quick=True, log=lambda m: None)
    M = result["metrics"]
    for f in ("f50", "f100"):
        for arm in ("real", "tts"):
            assert 0 <= M[f"ua_{arm}_{f}"]["mean"] <= 1
        assert "t_p" in result["comparisons"][f"tts_{f}"]["ua"]
    assert result["generation"]["espeak"]["clips"] == 16
    assert result["generation"]["espeak"]["fitted_on_n"] == 0
    q = result["quality"]["espeak"]["overall"]
    assert {"confidence", "diversity", "nearest_real_mean", "frechet"} <= set(q)
    assert "neutral recall" in result["notes"]
    result["suite"] += "-quick"
    jpath, mpath = write_result(result, tmp_path)
    assert json.loads(jpath.read_text())["arms"]["tts"]["engines"] == ["espeak"]
    assert "Quality gates" in mpath.read_text()


def test_suite_pieces_subsets_normalisation_and_arms():
    from emofuse.config import load_config
    from emofuse.corpora import Record
    from emofuse.recipes import config_path
    from emofuse.recipes.aug_tts import AugTtsParams, _speaker_normalised, speaker_stratified

    recs = [Record(id=f"{s}-{c}-{i}", corpus="x", label_native=c, label=c, speaker=s)
            for s in ("a", "b", "c", "d") for c in ("neutral", "angry")
            for i in range(4 if c == "neutral" else 8)]
    sub = speaker_stratified(recs, ["neutral", "angry"], 0.25, seed=0)
    assert {r.label for r in sub} == {"neutral", "angry"}
    assert sum(r.label == "angry" for r in sub) == 8          # 2 of 8 in each speaker's cell
    assert 1 <= sum(r.label == "neutral" for r in sub) <= 8
    assert speaker_stratified(recs, ["neutral", "angry"], 1.0, seed=0) == recs
    rng = np.random.default_rng(0)
    vec = {f"{s}{i}": rng.normal(5 if s == "x" else -5, 2, 3) for s in "xy" for i in range(20)}
    out = _speaker_normalised(vec, {k: k[0] for k in vec})
    for s in "xy":
        z = np.stack([out[k] for k in out if k[0] == s])
        assert np.allclose(z.mean(0), 0, atol=1e-5) and np.allclose(z.std(0), 1, atol=1e-3)
    cfg = load_config(config_path("aug-speech-tts"))
    p = AugTtsParams.of(cfg.model)
    assert p.arms["real"].engines == [] and p.arms["tts"].per_class == 40
    assert p.arms["tts_spknorm"].baseline == "real_spknorm"
    assert p.arms["real_spknorm"].per_class == 0 and p.arms["tts_10"].per_class == 10
    cfg.model.params["arms"] = {"real": {}, "x": {"setting": "spknorm", "baseline": "nope"}}
    with pytest.raises(ConfigError, match="baseline"):
        AugTtsParams.of(cfg.model)
    cfg.model.params["arms"] = {"real": {}, "x": {"engines": ["festival"]}}
    with pytest.raises(ConfigError, match="engines"):
        AugTtsParams.of(cfg.model)
    cfg.model.params["arms"] = {"real": {"per_class": 3}}
    with pytest.raises(ConfigError, match="real data only"):
        AugTtsParams.of(cfg.model)
