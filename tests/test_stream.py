"""The streaming core (:mod:`emofuse.inference.stream`): an update every hop of stream time, chunking
that changes nothing, voice-activity gating, the face window mean, bounded memory, and a
live replay at real-time speed that agrees with the offline timeline on the examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emofuse import Recognizer
from emofuse.errors import ConfigError
from emofuse.features.vad import vad_available
from emofuse.inference import ModelUnavailableError, PredictOptions
from emofuse.inference import (Stream, StreamOptions, StreamSlots, TooManyStreams, agreement,
                               media_events, play, replay, stream_timeline)
from emofuse.inference.stream_parts import SR, to_float_audio

from ._tiny_models import make_bundle, speech_samples

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
needs_vad = pytest.mark.skipif(not vad_available(), reason="silero-vad is not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Recognizer:
    return Recognizer.load(str(make_bundle(tmp_path_factory.mktemp("models"))))


@pytest.fixture(scope="module")
def real() -> Recognizer:
    return Recognizer.load("default")


def _voice_then_silence(speech_s: float, silence_s: float, lead_s: float = 0.0) -> np.ndarray:
    return np.concatenate([np.zeros(int(lead_s * SR), np.float32),
                           speech_samples(int(speech_s * SR)),
                           np.zeros(int(silence_s * SR), np.float32)])


def _feed(stream: Stream, y: np.ndarray, *, sr: int = SR, chunk_s: float = 0.1) -> list:
    out = []
    step = max(1, int(chunk_s * sr))
    for i in range(0, len(y), step):
        stream.push_audio(y[i: i + step], sr)
        out += stream.step()
    return out + stream.flush()


def test_an_update_every_hop_of_stream_time(tiny):
    ups = _feed(Stream(tiny, modalities=["speech"]), speech_samples(int(4.2 * SR)))
    assert [u.index for u in ups] == list(range(1, 10))
    assert [u.time for u in ups[:8]] == [0.5 * k for k in range(1, 9)]
    assert ups[-1].time == pytest.approx(4.2, abs=1e-3) and ups[-1].start == 4.0
    assert all(u.start == pytest.approx(u.time - 0.5) for u in ups[:8])
    hop = Stream(tiny, StreamOptions(hop=0.25), modalities=["speech"])
    assert len(_feed(hop, speech_samples(2 * SR))) == 8
    c = ups[-1].counters
    assert c["audio_s"] == pytest.approx(4.2, abs=1e-3) and c["updates"] == 9


def test_chunk_size_rate_and_sample_type_change_nothing(tiny):
    from emofuse.media import resample

    y = speech_samples(3 * SR)
    a = _feed(Stream(tiny, modalities=["speech"]), y, chunk_s=3.0)
    y44 = (resample(y, SR, 44100) * 32767).astype(np.int16)  # int16 at 44.1 kHz, odd chunks
    b = _feed(Stream(tiny, modalities=["speech"]), y44, sr=44100, chunk_s=0.037)
    assert [u.time for u in a] == [u.time for u in b]
    assert [u.label for u in a] == [u.label for u in b]
    for u, v in zip(a, b):
        assert u.segments == v.segments
        for k, p in u.probabilities.items():
            assert v.probabilities[k] == pytest.approx(p, abs=0.02)


def test_float_audio_from_every_sample_type():
    assert to_float_audio(np.array([0, 16384, -32768], np.int16)).tolist() == [0, 0.5, -1.0]
    stereo = np.stack([np.ones(4), -np.ones(4)], axis=1).astype(np.float32)
    assert to_float_audio(stereo).tolist() == [0.0] * 4
    assert to_float_audio(np.array([np.nan, 3.0], np.float32)).tolist() == [0.0, 1.0]
    assert to_float_audio(np.array([128, 255], np.uint8))[0] == 0.0


@needs_vad
def test_voice_activity_gates_speech(tiny):
    y = _voice_then_silence(1.5, 4.5, lead_s=1.5)  # silence, speech 1.5-3.0 s, silence
    ups = _feed(Stream(tiny, modalities=["speech"]), y)
    by_t = {u.time: u for u in ups}
    for t in (0.5, 1.0):  # nothing but silence so far
        assert not by_t[t].speech_active and by_t[t].label is None
        assert by_t[t].modalities == {} and not by_t[t].reliable
    for t in (2.5, 3.0):
        assert by_t[t].speech_active and by_t[t].label and by_t[t].voice > 0.5
        s, e = by_t[t].segments["speech"]
        assert 1.2 <= s <= 1.6 and e <= t
    assert by_t[5.0].voice == 0.0 and by_t[5.0].speech_active  # still inside the window
    assert by_t[4.0].segments == by_t[3.5].segments  # speech over, window start before it
    assert not by_t[7.5].speech_active and by_t[7.5].label is None  # 4 s after: gated off
    c = ups[-1].counters
    assert 0 < c["speech_runs"] < len(ups)  # silence costs no speech model run
    assert c["speech_reused"] >= 1         # nor does a window whose voiced part is unchanged


def test_face_output_is_the_mean_of_the_frames_in_its_window(tiny):
    rng = np.random.default_rng(3)
    frames = [(0.1 * k, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for k in range(1, 31)]
    stream = Stream(tiny, StreamOptions(face_window=1.0), modalities=["face"])
    ups = []
    for t, f in frames:
        stream.push_frame(f, t)
        ups += stream.step()
    ups += stream.flush()
    assert [u.time for u in ups] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    face = tiny.predictor("face")
    u = ups[3]  # t = 2.0: frames 1.1 .. 2.0
    inside = [f for t, f in frames if 1.0 + 1e-6 < t <= 2.0 + 1e-9]
    assert u.face_frames == len(inside) == 10
    expected = np.mean([face.predict(f).probabilities for f in inside], axis=0)
    got = np.array([u.modalities["face"][k] for k in face.labels])
    assert np.allclose(got, expected / expected.sum(), atol=1e-5)
    assert u.segments["face"] == (1.1, 2.0) and u.face.box == (0, 0, 64, 48)
    assert u.label == max(u.probabilities, key=u.probabilities.get)
    assert ups[-1].counters["frames_processed"] == 30


def test_no_face_and_bad_frames_are_counted(tiny):
    stream = Stream(tiny, modalities=["face"])
    stream.push_frame(np.full((40, 40, 3), 100, np.uint8), 0.2)   # flat: tiny-face sees none
    stream.push_frame(b"\xff\xd8\xffnot a jpeg\xff\xd9", 0.3)
    stream.push_frame(np.zeros((5,), np.uint8), 0.4)
    stream.push_frame(np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8), 0.5)
    (u,) = stream.step()
    assert u.counters["frames_without_face"] == 1 and u.counters["frames_bad"] == 2
    assert u.face_frames == 1 and len(stream.errors) == 2


def test_blurred_faces_make_the_face_output_unreliable(tiny):
    """As for a video file: when most frames of the face window hold a blurred (or tiny) face,
    the update says so and the face output no longer makes it reliable."""
    smooth = np.repeat(np.linspace(0, 255, 64, dtype=np.float32)[None, :, None], 48, axis=0)
    smooth = np.repeat(smooth, 3, axis=2).astype(np.uint8)   # a gradient: no edge at all
    sharp = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    stream = Stream(tiny, StreamOptions(face_window=1.0), modalities=["face"])
    for k in range(1, 21):   # 0.1 .. 1.0 s: blurred; 1.1 .. 2.0 s: sharp
        stream.push_frame(smooth if k <= 10 else sharp, 0.1 * k)
    ups = {u.time: u for u in stream.step() + stream.flush()}
    blurred, clear = ups[1.0], ups[2.0]
    assert blurred.face_frames == 10 and "face" in blurred.modalities
    assert not blurred.reliable
    assert any("blurred in 10 of 10 frames of the last 1 s" in n and "unreliable" in n
               for n in blurred.notes)
    assert clear.reliable and not any("blurred" in n for n in clear.notes)


def test_memory_stays_bounded_on_a_long_stream(tiny):
    stream = Stream(tiny, modalities=["speech", "face"])
    y = speech_samples(SR)
    frame = np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)
    n = 0
    for sec in range(120):
        for i in range(0, SR, SR // 10):
            stream.push_audio(y[i: i + SR // 10], SR)
            stream.push_frame(frame, sec + i / SR)
            n += len(stream.step())
    assert n == 240
    limit = (stream.options.window + stream.options.hop + 1.5) * SR
    assert stream._audio.size <= limit and stream._vad_p.size <= limit / 512 + 2
    assert len(stream._faces) <= 40 and len(stream._chunks) <= 2


def test_fusion_is_the_recognizers(tiny):
    y = speech_samples(2 * SR)
    frame = np.random.default_rng(1).integers(0, 255, (32, 32, 3), np.uint8)
    stream = Stream(tiny)
    for i in range(0, 2 * SR, SR // 10):
        stream.push_audio(y[i: i + SR // 10], SR)
        stream.push_frame(frame, (i + SR // 10) / SR)
    u = stream.step()[-1]
    fused, weights = tiny.predictor("fusion").fuse(u.modalities)
    assert u.weights == pytest.approx(weights, abs=1e-6)
    assert u.weights == {"speech": pytest.approx(0.7), "face": pytest.approx(0.3)}
    for k, p in fused.items():
        assert u.probabilities[k] == pytest.approx(p, abs=1e-5)


def test_options_and_models_are_checked(tiny, tmp_path):
    with pytest.raises(ConfigError, match="hop"):
        StreamOptions(hop=0)
    with pytest.raises(ConfigError, match="detect"):
        StreamOptions(detect="sometimes")
    with pytest.raises(ConfigError, match="text"):
        Stream(tiny, modalities=["text"])
    with pytest.raises(ModelUnavailableError):
        Stream(Recognizer.load(str(make_bundle(tmp_path / "m", fusion=False) / "text")))
    stream = Stream(tiny)
    with pytest.raises(Exception, match="rate"):
        stream.push_audio(np.zeros(10, np.float32), 10)
    stream.start()
    try:
        with pytest.raises(Exception, match="live"):
            stream.step()
    finally:
        stream.stop()


def test_slots_refuse_past_the_limit():
    slots = StreamSlots(2)
    slots.acquire()
    slots.acquire()
    with pytest.raises(TooManyStreams, match="2 live streams"):
        slots.acquire()
    slots.release()
    slots.acquire()
    assert slots.active == 2


def test_live_mode_updates_through_the_callback(tiny):
    got = []
    stream = Stream(tiny).start(got.append)
    events = media_events_from(speech_samples(3 * SR))
    play(stream, events, speed=6.0)
    final = stream.stop()
    assert final and got[-1] is final[-1]
    assert got[-1].time == pytest.approx(3.0)
    assert got[-1].counters["updates"] + got[-1].counters["hops_merged"] == 6
    assert all(u.lag_ms is not None for u in got if u not in final)


def media_events_from(y: np.ndarray, chunk_s: float = 0.05):
    step = int(chunk_s * SR)
    for i in range(0, len(y), step):
        yield (i + step) / SR, "audio", y[i: i + step]


@pytest.mark.slow
@needs_vad
@pytest.mark.parametrize("name", ["speech.flac", "video.mp4"])
def test_live_at_real_time_agrees_with_offline(real, name):
    """The examples replayed at real-time speed (frames dropped when the face model lags)
    give the labels of the offline timeline, which is the same code run on every frame."""
    offline = replay(real, EXAMPLES / name)
    assert offline[0].time == 0.5 and offline[-1].time == pytest.approx(
        {"speech.flac": 3.904, "video.mp4": 3.285}[name], abs=0.01)
    live: list = []
    stream = Stream(real, modalities=[m for m in ("speech", "face")
                                      if name.endswith(".mp4") or m == "speech"]).start(live.append)
    play(stream, media_events(EXAMPLES / name, modalities=stream.modalities), speed=1.0)
    stream.stop()
    a = agreement(live, offline)
    assert a["hops"] == len(offline) and a["agreement"] >= 0.85, (a, [u.label for u in live],
                                                                 [u.label for u in offline])
    if name == "video.mp4":
        assert {"speech", "face"} <= {m for u in offline for m in u.modalities}
        assert live[-1].counters["frames_received"] == offline[-1].counters["frames_received"]


@needs_vad
def test_predict_timeline_can_be_the_stream(real):
    rec = Recognizer(list(real.models.values()),
                     options=PredictOptions(timeline=True, segmentation="stream"))
    p = rec.predict(EXAMPLES / "speech.flac")
    offline = replay(real, EXAMPLES / "speech.flac")
    fused = [s for s in p.timeline if s.modality == "fused"]
    assert [(s.end, s.label) for s in fused] == [(round(u.time, 3), u.label)
                                                  for u in offline if u.label]
    assert {s.modality for s in p.timeline} == {"fused", "speech"}
    assert stream_timeline(offline)[0].modality == "fused"
    whole = Recognizer(list(real.models.values())).predict(EXAMPLES / "speech.flac")
    assert p.label == whole.label  # the file's own answer is unchanged
