import pytest

from emofuse.corpora import load_corpus

from ._audio_fixtures import anomalies_of, assert_bad_reported, tone, video, write_bad_set

DEMOGRAPHICS = ('"ActorID","Age","Sex","Race","Ethnicity"\n'
                '1001,51,"Male","Caucasian","Not Hispanic"\n'
                '1002,21,"Female","Caucasian","Not Hispanic"\n'
                '1091,29,"Female","Asian","Not Hispanic"\n')


def _write_demographics(root, where):
    path = root / where / "VideoDemographics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEMOGRAPHICS)


def test_one_record_per_clip_joining_wav_mp3_flv(tmp_path):
    tone(tmp_path / "AudioWAV/1001_DFA_ANG_XX.wav", sr=16000)
    tone(tmp_path / "AudioMP3/1001_DFA_ANG_XX.mp3", sr=44100)
    video(tmp_path / "VideoFlash/1001_DFA_ANG_XX.flv")
    tone(tmp_path / "AudioWAV/1001_IEO_HAP_HI.wav", sr=16000)
    tone(tmp_path / "AudioWAV/1002_IEO_SAD_LO.wav", sr=16000)
    tone(tmp_path / "AudioMP3/1091_WSI_FEA_MD.mp3", sr=44100)    # MP3 only
    video(tmp_path / "VideoFlash/1002_TIE_NEU_XX.flv")           # video only
    _write_demographics(tmp_path, "")
    (tmp_path / "SentenceFilenames.csv").write_text(
        '"Stimulus_Number","Filename"\n62,"1001_DFA_ANG_XX"\n')

    scan = load_corpus("cremad", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert len(scan) == 5 and scan.anomalies == []   # WAV 16 kHz beside MP3 44.1 kHz is normal
    r = by_id["1001_DFA_ANG_XX"]
    assert (r.label_native, r.label, r.speaker, r.gender) == ("ANG", "angry", "1001", "male")
    assert r.audio.endswith("AudioWAV/1001_DFA_ANG_XX.wav")
    assert r.extra["audio_mp3"].endswith("AudioMP3/1001_DFA_ANG_XX.mp3")
    assert r.video.endswith("VideoFlash/1001_DFA_ANG_XX.flv")
    assert r.extra["statement"] == "Don't forget a jacket." and r.extra["statement_code"] == "DFA"
    assert r.extra["level"] == "unspecified" and r.extra["age"] == 51
    assert r.extra["stimulus"] == 62 and r.extra["race"] == "Caucasian"
    assert by_id["1001_IEO_HAP_HI"].extra["level"] == "high"
    assert by_id["1001_IEO_HAP_HI"].extra["statement"] == "It's eleven o'clock."
    fea = by_id["1091_WSI_FEA_MD"]
    assert fea.audio.endswith(".mp3") and fea.gender == "female" and fea.label == "fear"
    neu = by_id["1002_TIE_NEU_XX"]
    assert neu.audio is None and neu.video and neu.modalities() == ["video"]
    s = scan.summary()
    assert s["items"] == 5 and s["speakers"] == 3
    assert s["classes"] == {"ANG": 1, "FEA": 1, "HAP": 1, "NEU": 1, "SAD": 1}
    assert s["modalities"] == {"audio": 4, "video": 2}


@pytest.mark.parametrize("where", ["", "metadata", "processedResults", "extras/deep"])
def test_demographics_found_where_the_release_puts_them(tmp_path, where):
    tone(tmp_path / "AudioWAV/1002_ITS_DIS_XX.wav")
    _write_demographics(tmp_path, where)
    (rec,) = load_corpus("cremad", tmp_path).records
    assert rec.gender == "female" and rec.extra["age"] == 21


def test_missing_demographics_and_unknown_actor_are_reported(tmp_path):
    tone(tmp_path / "AudioWAV/1050_ITS_DIS_XX.wav")
    scan = load_corpus("cremad", tmp_path)
    assert scan.records[0].gender is None
    assert [a.skipped for a in scan.anomalies] == [False]
    assert "VideoDemographics.csv not found" in scan.anomalies[0].reason
    _write_demographics(tmp_path, "metadata")
    scan = load_corpus("cremad", tmp_path)
    assert [a.skipped for a in scan.anomalies] == [False]
    assert "actor 1050" in scan.anomalies[0].reason


def test_bad_files_become_anomalies(tmp_path):
    _write_demographics(tmp_path, "")
    good_wav = tone(tmp_path / "AudioWAV/1001_DFA_SAD_XX.wav")
    good_flv = video(tmp_path / "VideoFlash/1076_MTI_SAD_XX.flv")
    empty_of_real_quirk = tmp_path / "AudioWAV/1076_MTI_SAD_XX.wav"   # empty in the original
    bad = write_bad_set(truncated=tmp_path / "AudioWAV/1001_ITS_FEA_HI.flac",
                        zero=empty_of_real_quirk,
                        text=tmp_path / "AudioWAV/1002_TAI_DIS_XX.wav",
                        unparseable=tmp_path / "AudioWAV/1001_XYZ_ANG_XX.wav")
    fake_flv = tmp_path / "VideoFlash/1002_TAI_DIS_XX.flv"
    fake_flv.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    junk_flv = tmp_path / "VideoFlash/1001_IWW_HAP_XX.flv"
    junk_flv.write_bytes(b"\x00\x01binary garbage that is no container" * 4)

    scan = load_corpus("cremad", tmp_path)
    assert_bad_reported(scan, bad + [fake_flv, junk_flv])
    by_id = {r.id: r for r in scan.records}
    assert set(by_id) == {"1001_DFA_SAD_XX", "1076_MTI_SAD_XX"}
    assert by_id["1001_DFA_SAD_XX"].audio == str(good_wav)
    quirk = by_id["1076_MTI_SAD_XX"]                   # the clip keeps its good video
    assert quirk.audio is None and quirk.video == str(good_flv)
    assert "empty" in anomalies_of(scan, empty_of_real_quirk)[0].reason
    assert "text" in anomalies_of(scan, fake_flv)[0].reason
    assert "CREMA-D" in anomalies_of(scan, bad[3])[0].reason
    s = scan.summary()
    assert (s["items"], s["speakers"], s["classes"]) == (2, 2, {"SAD": 2})


@pytest.mark.shared_data
def test_real_cremad_sample(shared_data):
    root = shared_data / "cremad"
    if not root.is_dir():
        pytest.skip(f"CREMA-D sample not found at {root}")
    scan = load_corpus("cremad", root)
    s = scan.summary()
    assert s["items"] == 6 and s["speakers"] == 1 and s["per_speaker"] == {"1001": 6}
    assert s["classes"] == {e: 1 for e in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")}
    assert {r.label for r in scan.records} == {"angry", "disgust", "fear", "happy", "neutral",
                                               "sad"}
    assert all(r.gender == "male" and r.extra["age"] == 51 for r in scan.records)
    assert all(r.video and r.video.endswith(".flv") for r in scan.records)
    assert [a for a in scan.anomalies if a.skipped] == []
