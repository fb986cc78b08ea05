import pytest

from emofuse.corpora import load_corpus
from emofuse.errors import DataError

from ._audio_fixtures import anomalies_of, assert_bad_reported, tone, write_bad_set

EVAL_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def _session(release, n, dialog, rows, *, wav=True):
    """Write one dialogue of session ``n``: rows are (utterance, label, text)."""
    ses = release / f"Session{n}"
    ev = [EVAL_HEADER]
    tr = []
    for i, (utt, label, text) in enumerate(rows):
        start, end = 1.5 + 3 * i, 3.25 + 3 * i
        ev.append(f"[{start:.4f} - {end:.4f}]\t{utt}\t{label}\t[2.5000, 3.0000, 3.5000]\n"
                  f"C-E2:\tNeutral;\t()\nA-E1:\tval 3; act 2; dom  3;\t()\n\n")
        if text is not None:
            tr.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}\n")
        if wav:
            tone(ses / "sentences/wav" / dialog / f"{utt}.wav")
    (ses / "dialog/EmoEvaluation/Categorical").mkdir(parents=True, exist_ok=True)
    (ses / f"dialog/EmoEvaluation/{dialog}.txt").write_text("".join(ev))
    (ses / "dialog/transcriptions").mkdir(parents=True, exist_ok=True)
    (ses / f"dialog/transcriptions/{dialog}.txt").write_text(
        "".join(tr) + "M: [BREATHING]\n")
    return ses


def _release(root):
    rel = root / "IEMOCAP_full_release"
    _session(rel, 1, "Ses01F_impro01", [("Ses01F_impro01_F000", "neu", "Excuse me."),
                                        ("Ses01F_impro01_M000", "fru", "Do you have your forms?"),
                                        ("Ses01F_impro01_F001", "exc", "Yeah.")])
    ses2 = _session(rel, 2, "Ses02M_script01_1", [("Ses02M_script01_1_F003", "xxx", "What?"),
                                                  ("Ses02M_script01_1_M010", "ang", None)])
    tone(ses2 / "dialog/wav/Ses02M_script01_1.wav")   # a whole dialogue: not an utterance
    return rel


@pytest.mark.parametrize("level", ["parent", "release", "session"])
def test_layout_labels_speakers_and_text(tmp_path, level):
    rel = _release(tmp_path)
    root = {"parent": tmp_path, "release": rel, "session": rel / "Session1"}[level]
    scan = load_corpus("iemocap", root)
    by_id = {r.id: r for r in scan.records}
    assert len(scan) == (3 if level == "session" else 5)
    r = by_id["Ses01F_impro01_M000"]
    assert (r.label_native, r.label, r.speaker, r.gender) == ("fru", "frustrated", "Ses01_M",
                                                              "male")
    assert r.text == "Do you have your forms?"
    assert r.extra["session"] == r.extra["group"] == "Ses01" and r.group == "Ses01"
    assert r.extra["dialogue"] == "Ses01F_impro01" and r.extra["scenario"] == "improvised"
    assert "conversation" not in r.extra
    assert (r.extra["valence"], r.extra["activation"], r.extra["dominance"]) == (2.5, 3.0, 3.5)
    assert (r.extra["start"], r.extra["end"]) == (4.5, 6.25)
    assert r.modalities() == ["audio", "text"]
    assert by_id["Ses01F_impro01_F001"].label == "excited"
    if level == "session":
        return
    x = by_id["Ses02M_script01_1_F003"]
    assert (x.label_native, x.label, x.speaker) == ("xxx", None, "Ses02_F")
    assert x.extra["dialogue"] == "Ses02M_script01_1" and x.extra["scenario"] == "scripted"
    assert x.group == "Ses02"          # the session, not the dialogue, keeps folds honest
    untranscribed = by_id["Ses02M_script01_1_M010"]
    assert untranscribed.text is None
    (note,) = scan.anomalies
    assert not note.skipped and "transcription" in note.reason
    s = scan.summary()
    assert s["items"] == 5 and s["speakers"] == 4
    assert s["per_speaker"] == {"Ses01_F": 2, "Ses01_M": 1, "Ses02_F": 1, "Ses02_M": 1}
    assert s["classes"] == {"ang": 1, "exc": 1, "fru": 1, "neu": 1, "xxx": 1}
    assert s["modalities"] == {"audio": 5, "text": 4}


def test_bad_files_become_anomalies(tmp_path):
    rel = tmp_path / "IEMOCAP_full_release"
    dialog = "Ses01F_impro02"
    rows = [(f"{dialog}_F000", "sad", "Hi."), (f"{dialog}_M000", "hap", "Hello."),
            (f"{dialog}_F001", "neu", "a"), (f"{dialog}_M001", "neu", "b"),
            (f"{dialog}_F002", "neu", "c"), (f"{dialog}_M002", "sur", "no audio for me")]
    ses = _session(rel, 1, dialog, rows, wav=False)
    wav = ses / "sentences/wav" / dialog
    good = [tone(wav / f"{dialog}_F000.wav"), tone(wav / f"{dialog}_M000.wav")]
    bad = write_bad_set(truncated=wav / f"{dialog}_F001.flac", zero=wav / f"{dialog}_M001.wav",
                        text=wav / f"{dialog}_F002.wav", unparseable=wav / "take2.wav")
    unlabelled = tone(wav / f"{dialog}_F009.wav")

    scan = load_corpus("iemocap", tmp_path)
    assert_bad_reported(scan, bad + [unlabelled])
    assert sorted(r.audio for r in scan.records) == sorted(map(str, good))
    assert "EmoEvaluation" in anomalies_of(scan, unlabelled)[0].reason
    missing = [a for a in scan.anomalies if "no audio file" in a.reason]
    assert len(missing) == 1 and f"{dialog}_M002" in missing[0].reason
    assert missing[0].reason.startswith("1 labelled")      # the broken files are not counted
    s = scan.summary()
    assert (s["items"], s["speakers"], s["classes"]) == (2, 2, {"hap": 1, "sad": 1})


def test_no_sessions_is_a_clear_error(tmp_path):
    (tmp_path / "something_else").mkdir()
    with pytest.raises(DataError, match="Session1"):
        load_corpus("iemocap", tmp_path)
