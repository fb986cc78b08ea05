import pytest

from emofuse.corpora import load_corpus

from ._audio_fixtures import anomalies_of, assert_bad_reported, tone, write_bad_set


@pytest.mark.parametrize("sub", ["wav", ""], ids=["wav-folder", "root"])
def test_names_speakers_and_summary(tmp_path, sub):
    base = tmp_path / sub
    tone(base / "03a01Fa.wav")
    tone(base / "03a01Fb.wav")          # second version of the same take
    tone(base / "08b10Wa.wav")
    tone(base / "16a07Lc.WAV")
    tone(base / "10b03Ea.flac")
    tone(base / "13a05Aa.wav")
    tone(base / "09b09Ta.wav")
    tone(base / "11a02Na.wav")
    (tmp_path / "lablaut").mkdir()
    (tmp_path / "lablaut/03a01Fa.lab").write_text("phonetic labels, ignored\n")

    scan = load_corpus("emodb", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert len(scan) == 8 and scan.anomalies == []
    r = by_id["03a01Fa"]
    assert (r.label_native, r.label, r.speaker, r.gender) == ("F", "happy", "03", "male")
    assert r.extra == {"statement_code": "a01", "statement": "Der Lappen liegt auf dem "
                       "Eisschrank.", "version": "a", "age": 31}
    assert by_id["03a01Fb"].extra["version"] == "b"
    assert (by_id["08b10Wa"].label, by_id["08b10Wa"].gender) == ("angry", "female")
    assert by_id["16a07Lc"].label == "boredom" and by_id["10b03Ea"].label == "disgust"
    assert by_id["13a05Aa"].label == "fear" and by_id["09b09Ta"].label == "sad"
    assert by_id["11a02Na"].label == "neutral"
    s = scan.summary()
    assert s["items"] == 8 and s["speakers"] == 7
    assert s["classes"] == {"A": 1, "E": 1, "F": 2, "L": 1, "N": 1, "T": 1, "W": 1}
    assert s["per_speaker"]["03"] == 2


def test_unknown_speaker_text_and_media_quirks_are_kept(tmp_path):
    for name in ("03a01Wa", "03a02Wa", "08a04Wa", "08a05Wa"):
        tone(tmp_path / f"wav/{name}.wav")
    stranger = tone(tmp_path / "wav/05a01Fa.wav")
    odd_text = tone(tmp_path / "wav/03a03Fa.wav")
    aiff = tone(tmp_path / "wav/09a01Ta.wav", fmt="AIFF")
    fast = tone(tmp_path / "wav/09a02Ta.wav", sr=48000)

    scan = load_corpus("emodb", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert len(scan) == 8 and all(not a.skipped for a in scan.anomalies)
    assert by_id["05a01Fa"].gender is None
    assert "speaker 05" in anomalies_of(scan, stranger)[0].reason
    assert by_id["03a03Fa"].extra["statement"] is None
    assert "a03" in anomalies_of(scan, odd_text)[0].reason
    assert "AIFF" in anomalies_of(scan, aiff)[0].reason
    assert "48000" in anomalies_of(scan, fast)[0].reason


def test_bad_files_become_anomalies(tmp_path):
    wav = tmp_path / "wav"
    good = [tone(wav / "03a01Fa.wav"), tone(wav / "14b02Ta.flac"), tone(wav / "15a04Na.ogg")]
    bad = write_bad_set(truncated=wav / "03a02Fa.flac", zero=wav / "08a04Ta.wav",
                        text=wav / "09b01Na.wav", unparseable=wav / "03x01Fa.wav")
    lower = tone(wav / "03a01fa.wav")    # emotion letters are upper case in EmoDB

    scan = load_corpus("emodb", tmp_path)
    assert_bad_reported(scan, bad + [lower])
    assert sorted(r.audio for r in scan.records) == sorted(map(str, good))
    assert "EmoDB" in anomalies_of(scan, bad[3])[0].reason
    assert scan.summary()["items"] == 3 and scan.summary()["speakers"] == 3
