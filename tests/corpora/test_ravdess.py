import numpy as np
import soundfile as sf

from emofuse.corpora import load_corpus


def _wav(path, sr=24000, channels=1, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.random.default_rng(0).normal(0, 0.05, (int(sr * 0.05), channels)).astype(np.float32)
    sf.write(path, y, sr, format=fmt)


def test_layout_modalities_and_quirks(tmp_path):
    sp = tmp_path / "Audio_Speech_Actors_01-24"
    _wav(sp / "Actor_01/03-01-01-01-01-01-01.wav")
    _wav(sp / "Actor_01/03-01-05-02-02-01-01.wav", sr=96000)          # odd rate among 24 kHz
    _wav(sp / "Actor_02/03-01-08-01-01-02-02.wav", channels=2)        # stereo
    _wav(sp / "Actor_02/03-01-03-01-01-01-02.wav", fmt="AIFF")        # AIFF named .wav
    _wav(tmp_path / "Audio_Song_Actors_01-24/Actor_01/03-02-06-01-01-01-01.flac")
    vid = tmp_path / "Video_Speech_Actor_01/Actor_01"
    vid.mkdir(parents=True)
    (vid / "01-01-01-01-01-01-01.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (vid / "02-01-01-01-01-01-01.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (vid / "02-01-07-01-01-01-01.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")  # video only
    au = tmp_path / "openface_au"
    au.mkdir()
    (au / "ravdess_openface_au_clip_means.csv").write_text(
        "clip_id,actor,AU01_r\n01-01-01-01-01-01-01,1,0.5\n01-01-08-01-01-02-02,2,0.1\n")

    scan = load_corpus("ravdess", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert len(scan) == 6
    r = by_id["03-01-01-01-01-01-01"]
    assert r.label_native == "neutral" and r.label == "neutral"
    assert r.speaker == "Actor_01" and r.gender == "male"
    assert r.video.endswith("01-01-01-01-01-01-01.mp4")          # full AV preferred
    assert r.extra["video_only"].endswith("02-01-01-01-01-01-01.mp4")
    assert r.au and r.extra["au_id"] == "01-01-01-01-01-01-01"
    assert r.extra["statement"] == "Kids are talking by the door"
    song = by_id["03-02-06-01-01-01-01"]
    assert song.extra["vocal"] == "song" and song.label == "fear"
    assert by_id["03-01-08-01-01-02-02"].gender == "female"
    assert by_id["03-01-08-01-01-02-02"].extra["intensity"] == "normal"
    vo = [x for x in scan.records if x.audio is None]
    assert len(vo) == 1 and vo[0].label == "disgust" and vo[0].video
    reasons = " | ".join(a.reason for a in scan.anomalies)
    assert "96000 Hz differs" in reasons
    assert "2 channels" in reasons
    assert "AIFF" in reasons
    assert not any(a.skipped for a in scan.anomalies)
    s = scan.summary()
    assert s["items"] == 6 and s["speakers"] == 2


def test_bad_names_and_files(tmp_path):
    d = tmp_path / "Actor_03"
    _wav(d / "03-01-02-01-01-01-03.wav")
    _wav(d / "03-01-09-01-01-01-03.wav")   # emotion 09 does not exist
    _wav(d / "3-1-2-1-1-1-3.wav")
    (d / "03-01-04-01-01-01-03.wav").write_bytes(b"")
    _wav(d / "03-01-04-01-01-01-05.wav")   # actor 05 inside Actor_03: kept, reported
    scan = load_corpus("ravdess", tmp_path)
    assert {r.id for r in scan.records} == {"03-01-02-01-01-01-03", "03-01-04-01-01-01-05"}
    skipped = {a.path.rsplit("/", 1)[1]: a.reason for a in scan.anomalies if a.skipped}
    assert set(skipped) == {"03-01-09-01-01-01-03.wav", "3-1-2-1-1-1-3.wav",
                            "03-01-04-01-01-01-03.wav"}
    assert any("lies in folder" in a.reason and not a.skipped for a in scan.anomalies)


def test_real_ravdess(shared_data):
    scan = load_corpus("ravdess", shared_data / "ravdess")
    assert len(scan) == 1440
    assert sum(1 for r in scan if r.au) == 1440
    assert {r.gender for r in scan} == {"male", "female"}
    assert sum(1 for r in scan if r.video) == 7
