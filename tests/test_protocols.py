"""Evaluation protocols and the leakage check (emofuse.protocols)."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from emofuse.corpora import Record
from emofuse.errors import DataError, LabelError, LeakageError
from emofuse.labels import unify
from emofuse.paths import data_root, protocols_root
from emofuse.protocols import (
    Split,
    check_leakage,
    cross_corpus,
    drop_cross_duplicates,
    emobox_folds,
    leave_one_speaker_out,
    make_splits,
    official_split,
    random_split,
    read_folds,
    speaker_kfold,
    validation_split,
    write_folds,
)

LABELS = ("angry", "happy", "sad", "neutral")


def toy(n_speakers: int = 20, *, corpus: str = "toy", labels: tuple[str, ...] = LABELS,
        skew: bool = True) -> list[Record]:
    """Speakers ``S00..``; with ``skew`` each speaker has its own label proportions."""
    out = []
    for s in range(n_speakers):
        for j, lab in enumerate(labels):
            n = 2 + (s * (j + 1)) % 5 if skew else 3
            for k in range(n):
                rid = f"{corpus}-S{s:02d}-{lab}-{k}"
                out.append(Record(rid, corpus, lab, lab, speaker=f"S{s:02d}",
                                  audio=f"/x/{rid}.wav"))
    return out


def by_id(records: list[Record]) -> dict[str, Record]:
    return {r.id: r for r in records}


def proportions(records: list[Record]) -> dict[str, float]:
    c = collections.Counter(r.label for r in records)
    return {lab: c[lab] / len(records) for lab in LABELS}


# ---------------------------------------------------------------------------- k-fold, LOSO


def test_speaker_kfold_is_speaker_independent_stratified_and_complete():
    recs = toy()
    folds = speaker_kfold(recs, k=5, seed=0)
    assert [f.fold for f in folds] == [1, 2, 3, 4, 5]
    overall = proportions(recs)
    tested = []
    for f in folds:
        train = {r.speaker for r in f.select(recs, "train")}
        test_recs = f.select(recs, "test")
        assert train.isdisjoint({r.speaker for r in test_recs})
        assert len(f.train) + len(f.test) == len(recs)
        fold_props = proportions(test_recs)
        assert max(abs(fold_props[lab] - overall[lab]) for lab in LABELS) < 0.06
        assert f.info["leakage"]["ok"]
        tested += f.test
    assert sorted(tested) == sorted(r.id for r in recs)  # every record tested exactly once
    again = speaker_kfold(recs, k=5, seed=0)
    assert [f.test for f in again] == [f.test for f in folds]
    plain = speaker_kfold(recs, k=4, seed=1, stratify=False)
    assert len(plain) == 4 and all(p.info["leakage"]["ok"] for p in plain)


def test_speaker_kfold_stratifies_better_than_plain_grouping():
    # each speaker is dominated by one label: only a careful choice of speakers per fold
    # keeps the test folds' label proportions close to the corpus'
    recs = [Record(f"S{s:02d}-{lab}-{k}", "toy", lab, lab, speaker=f"S{s:02d}")
            for s in range(20) for lab in LABELS
            for k in range(8 if lab == LABELS[s % 4] else 2)]
    overall = proportions(recs)

    def worst(stratify: bool, seed: int) -> float:
        return max(abs(proportions(f.select(recs, "test"))[lab] - overall[lab])
                   for f in speaker_kfold(recs, k=5, seed=seed, stratify=stratify)
                   for lab in LABELS)

    strat = [worst(True, seed) for seed in range(8)]
    plain = [worst(False, seed) for seed in range(8)]
    assert max(strat) < 0.11 and sum(strat) < sum(plain)


def test_speaker_kfold_refuses_too_few_or_missing_speakers():
    with pytest.raises(DataError, match="too few"):
        speaker_kfold(toy(3), k=5)
    recs = toy(6)
    recs[0].speaker = None
    with pytest.raises(DataError, match="needs a speaker"):
        speaker_kfold(recs, k=3)


def test_loso_yields_one_fold_per_speaker():
    recs = toy(6)
    folds = leave_one_speaker_out(recs)
    assert len(folds) == 6
    for f, spk in zip(folds, sorted({r.speaker for r in recs})):
        assert {r.speaker for r in f.select(recs, "test")} == {spk}
        assert spk not in {r.speaker for r in f.select(recs, "train")}
        assert len(f.train) + len(f.test) == len(recs)
    assert make_splits("loso", recs)[2].test == folds[2].test


# ---------------------------------------------------------------------------- official


def test_official_split_maps_fer_and_meld_names():
    fer = [Record(f"{u}_{i}", "fer2013", "happy", "happy", split=u)
           for u in ("Training", "PublicTest", "PrivateTest") for i in range(3)]
    s = official_split(fer)
    assert (s.train, s.val, s.test) == (["Training_0", "Training_1", "Training_2"],
                                         ["PublicTest_0", "PublicTest_1", "PublicTest_2"],
                                         ["PrivateTest_0", "PrivateTest_1", "PrivateTest_2"])
    meld = [Record(f"{p}_{i}", "meld", "joy", "happy", speaker="Ross", split=p,
                   extra={"dialogue": f"{p}_dia{i}"}) for p in ("train", "dev", "test")
            for i in range(2)]
    s = official_split(meld)
    assert (len(s.train), len(s.val), len(s.test)) == (2, 2, 2)
    meld[0].split = None
    with pytest.raises(DataError, match="no known official split"):
        official_split(meld)


# ---------------------------------------------------------------------------- leakage


def test_random_split_is_flagged_and_audited_not_refused():
    recs = toy(10)
    s = random_split(recs, test_size=0.2, seed=0)
    assert s.leaking and s.protocol == "random"
    assert abs(len(s.test) / len(recs) - 0.2) < 0.03
    report = check_leakage(s, recs)  # flagged: reported, not raised
    assert not report.ok and report.n_shared_groups == 10
    s.leaking = False
    with pytest.raises(LeakageError, match="10 speakers/dialogues on both sides"):
        check_leakage(s, recs)
    assert check_leakage(s, recs, allow_leak=True).n_shared_groups == 10


def test_hand_made_split_with_one_shared_speaker_is_refused():
    recs = toy(4)
    test = [r.id for r in recs if r.speaker == "S03"]
    leak = next(r.id for r in recs if r.speaker == "S00")
    train = [r.id for r in recs if r.speaker != "S03" and r.id != leak]
    ok = Split("hand", train, test)
    assert check_leakage(ok, recs).ok
    bad = Split("hand", train, test + [leak])
    with pytest.raises(LeakageError, match=r"train/test: 1 speakers/dialogues.*S00"):
        check_leakage(bad, recs)
    report = check_leakage(bad, recs, allow_leak=True)
    assert report.shared_groups["train/test"] == ["S00"] and report.n_duplicates == 0
    assert report.to_dict()["shared_groups"] == 1
    same_id = Split("hand", train, test + [train[0]])
    with pytest.raises(LeakageError, match="record ids on both sides"):
        check_leakage(same_id, recs)
    with pytest.raises(DataError, match="not among the records"):
        check_leakage(Split("hand", train, ["nope"]), recs)


def test_content_hash_duplicates_across_sides_are_found_and_can_be_dropped():
    recs = [Record(f"{u}_{i}", "fer2013", "sad", "sad", split=u,
                   extra={"content_hash": f"h{i}"})
            for u in ("Training", "PublicTest", "PrivateTest") for i in range(5)]
    for r in recs:  # only image 0 (and 1 between val/test) is repeated across parts
        if r.split != "Training" and r.extra["content_hash"] != "h0":
            r.extra["content_hash"] = f"{r.id}-own"
    recs[11].extra["content_hash"] = "dup-vt"  # PrivateTest_1
    recs[6].extra["content_hash"] = "dup-vt"   # PublicTest_1
    with pytest.raises(LeakageError, match="content hash"):
        official_split(recs)
    s = official_split(recs, allow_leak=True)
    rep = s.info["leakage"]
    assert rep["duplicates"] == 3  # PublicTest_0, PrivateTest_0 ~ Training_0; PrivateTest_1 ~ val
    assert rep["per_pair"]["train/test"]["duplicates"] == 1
    assert rep["per_pair"]["val/test"]["duplicates"] == 2  # PrivateTest_0 also ~ PublicTest_0
    report = check_leakage(s, recs, allow_leak=True)
    assert report.duplicates["train/test"] == [("PrivateTest_0", "Training_0")]
    clean = drop_cross_duplicates(s, recs)
    assert clean.info["dropped_duplicates"] == {"val": 1, "test": 2}
    assert clean.info["leakage"]["ok"] and len(clean.test) == 3


def test_meld_dialogue_groups_are_respected():
    speakers = ("Ross", "Rachel", "Joey")
    recs = [Record(f"d{d}_u{u}", "meld", "joy", "happy" if u % 2 else "neutral",
                   speaker=speakers[(d + u) % 3], extra={"dialogue": f"train_{d}"})
            for d in range(12) for u in range(4)]
    folds = speaker_kfold(recs, k=3)
    for f in folds:
        train_d = {r.extra["dialogue"] for r in f.select(recs, "train")}
        test_recs = f.select(recs, "test")
        assert train_d.isdisjoint({r.extra["dialogue"] for r in test_recs})
        # speakers recur across dialogues: they may (and here do) cross, dialogues may not
        assert {r.speaker for r in test_recs} & {r.speaker for r in f.select(recs, "train")}
    cut = Split("meld-cut", [r.id for r in recs if r.id != "d0_u0"], ["d0_u0"])
    with pytest.raises(LeakageError, match="train_0"):
        check_leakage(cut, recs)


def test_check_leakage_is_cheap_on_36k_records():
    recs = [Record(f"r{i}", "fer2013", "happy", "happy", split="Training",
                   extra={"content_hash": f"h{i % 34000}"}) for i in range(36000)]
    split = Split("big", [r.id for r in recs[:28000]], [r.id for r in recs[28000:]])
    t0 = time.perf_counter()
    report = check_leakage(split, recs, allow_leak=True)
    assert time.perf_counter() - t0 < 2.0
    assert report.n_duplicates == 2000  # r34000.. repeat r0..r1999 (train)


# ---------------------------------------------------------------------------- validation


def test_validation_split_is_group_aware_and_from_train_only():
    recs = toy(20)
    fold = speaker_kfold(recs, k=5)[0]
    with_val = fold.with_validation(recs, fraction=0.15, seed=0)
    assert with_val.test == fold.test
    assert set(with_val.train) | set(with_val.val) == set(fold.train)
    assert set(with_val.val).isdisjoint(fold.test)
    ids = by_id(recs)
    val_spk = {ids[i].speaker for i in with_val.val}
    assert val_spk.isdisjoint({ids[i].speaker for i in with_val.train})
    assert 0.08 < len(with_val.val) / len(fold.train) < 0.25
    assert with_val.info["leakage"]["ok"]
    # three speakers (a SAVEE LOSO training part): one speaker is held out
    fit, val = validation_split(toy(3), fraction=0.15)
    assert len({by_id(toy(3))[i].speaker for i in val}) == 1
    # no speakers: item-level but duplicates stay together
    items = [Record(f"i{i}", "fer2013", lab, lab, extra={"content_hash": f"h{i // 2}"})
             for i, lab in enumerate(LABELS * 25)]
    fit, val = validation_split(items, fraction=0.2, seed=3)
    hashes = {by_id(items)[i].extra["content_hash"] for i in val}
    assert hashes.isdisjoint(by_id(items)[i].extra["content_hash"] for i in fit)
    with pytest.raises(DataError, match="group-aware"):
        validation_split(toy(1))


# ---------------------------------------------------------------------------- cross-corpus


def test_cross_corpus_keeps_shared_labels_and_counts_dropped():
    train = toy(4, corpus="ravdess", labels=("neutral", "calm", "happy", "surprise"),
                skew=False)
    test = toy(2, corpus="savee", labels=("neutral", "happy", "disgust"), skew=False)
    test.append(Record("savee-nolabel", "savee", "xx", None, speaker="S00"))
    split, dropped = cross_corpus(train, test)
    assert split.info["labels"] == ["neutral", "happy"]
    assert dropped == {"train": {"calm": 12, "surprise": 12}, "test": {"(none)": 1, "disgust": 6}}
    assert {r.label for r in split.select(train, "train")} == {"neutral", "happy"}
    assert len(split.test) == 12 and split.protocol == "cross-corpus"
    split, dropped = cross_corpus(train, test, labels=["Happiness"])
    assert split.info["labels"] == ["happy"] and dropped["test"]["neutral"] == 6
    with pytest.raises(LabelError, match="calm"):
        cross_corpus(train, test, labels=["calm"])
    with pytest.raises(LabelError, match="share no"):
        cross_corpus(toy(2, labels=("calm",)), toy(2, corpus="b", labels=("sad",)))


# ---------------------------------------------------------------------------- fold files


def test_fold_files_round_trip(tmp_path: Path):
    recs = toy(6)
    folds = [f.with_validation(recs, fraction=0.2) for f in speaker_kfold(recs, k=3)]
    path = write_folds(folds, tmp_path / "sub" / "folds.csv", records=recs)
    header = path.read_text().splitlines()[0]
    assert header == "fold,split,id,label"
    back = read_folds(path, protocol="speaker-kfold")
    assert len(back) == 3
    for a, b in zip(folds, back):
        assert (a.fold, a.train, a.val, a.test) == (b.fold, b.train, b.val, b.test)
        assert b.protocol == "speaker-kfold"
        assert all(b.info["labels"][i] == by_id(recs)[i].label for i in b.test)
    (tmp_path / "bad.csv").write_text("fold,split,id,label\n1,train,a,x\nx,test,b,y\n")
    with pytest.raises(DataError, match="line 3"):
        read_folds(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="expected columns"):
        read_folds(tmp_path / "cols.csv")


def test_emobox_folds_report_unmatched_utterances(tmp_path: Path):
    recs = toy(4, corpus="savee", labels=("happy", "sad"), skew=False)
    rows = ["fold,split,utterance,emotion"]
    for fold, spk in enumerate(sorted({r.speaker for r in recs}), start=1):
        for r in recs:
            part = "test" if r.speaker == spk else "train"
            rows.append(f"{fold},{part},{Path(r.audio).stem},{r.label_native}")
    good = tmp_path / "savee_emobox_folds.csv"
    good.write_text("\n".join(rows + ["1,train,missing_one,h"]) + "\n")
    with pytest.warns(UserWarning, match="1 of 25 utterances match no record"):
        folds = emobox_folds("savee", recs, path=tmp_path, max_unmatched=0.05)
    assert [len(f.test) for f in folds] == [6, 6, 6, 6]
    assert folds[0].info["unmatched"] == ["missing_one"]
    with pytest.raises(DataError, match="match no record"):
        emobox_folds("savee", recs[:10], path=good)
    with pytest.raises(DataError, match="no EmoBox fold file"):
        emobox_folds("ravdess", recs, path=tmp_path)


# ---------------------------------------------------------------------------- real data


def _shared(sub: str) -> Path:
    path = data_root() / sub
    if not path.exists():
        pytest.skip(f"shared corpus not found at {path}")
    if not (protocols_root()).is_dir():
        pytest.skip(f"shared protocols not found at {protocols_root()}")
    return path


def _savee_records(root: Path) -> list[Record]:
    """SAVEE through its loader when registered, else straight from the file names."""
    from emofuse.corpora import list_corpora, load_corpus

    if "savee" in list_corpora():
        return load_corpus("savee", check_media=False).records
    out = []
    for p in sorted((root / "ALL").glob("*.flac")):
        spk, code = p.stem.split("_")
        native = code.rstrip("0123456789")
        out.append(Record(p.stem, "savee", native, unify("savee", native), speaker=spk,
                          audio=str(p)))
    return out


@pytest.mark.shared_data
def test_emobox_folds_on_real_ravdess():
    from emofuse.corpora import load_corpus

    _shared("ravdess")
    recs = load_corpus("ravdess", check_media=False).records
    folds = emobox_folds("ravdess", recs)
    assert [(len(f.test), len(f.train)) for f in folds] == [(240, 1200)] * 6
    tested = []
    for f in folds:
        assert f.info["leakage"]["ok"]
        assert "unmatched" not in f.info and "label_mismatch" not in f.info
        assert len({r.speaker for r in f.select(recs, "test")}) == 4
        tested += f.test
    assert sorted(tested) == sorted(r.id for r in recs)


@pytest.mark.shared_data
def test_emobox_folds_on_real_savee():
    recs = _savee_records(_shared("savee"))
    folds = emobox_folds("savee", recs)
    assert [(len(f.test), len(f.train)) for f in folds] == [(120, 360)] * 4
    for f in folds:
        assert f.info["leakage"]["ok"]
        assert "unmatched" not in f.info and "label_mismatch" not in f.info
        assert len({r.speaker for r in f.select(recs, "test")}) == 1


@pytest.mark.shared_data
def test_fer2013_official_split_duplicates_are_refused_then_dropped():
    from emofuse.corpora import list_corpora, load_corpus

    _shared("fer2013")
    if "fer2013" not in list_corpora():
        pytest.skip("FER2013 loader (emofuse.corpora.fer2013) not available")
    recs = load_corpus("fer2013", check_media=False).records
    with pytest.raises(LeakageError, match="identical to train items by content hash"):
        official_split(recs)
    split = official_split(recs, allow_leak=True)
    assert (len(split.train), len(split.val), len(split.test)) == (28709, 3589, 3589)
    assert split.info["leakage"]["per_pair"]["train/test"]["duplicates"] > 100
    clean = drop_cross_duplicates(split, recs)
    assert clean.info["leakage"]["ok"] and len(clean.train) == 28709


def test_leave_one_group_out_holds_out_sessions():
    from emofuse.corpora import Record
    from emofuse.protocols import check_leakage, leave_one_speaker_out

    recs = [Record(id=f"{s}{g}{i}", corpus="iemocap", label_native="neu", label="neutral",
                   speaker=f"Ses0{s}_{g}", extra={"group": f"Ses0{s}"})
            for s in (1, 2, 3) for g in "FM" for i in range(4)]
    folds = leave_one_speaker_out(recs, by="group")
    assert [f.info["test_groups"] for f in folds] == [["Ses01"], ["Ses02"], ["Ses03"]]
    assert all(len(f.test) == 8 for f in folds)
    for f in folds:
        assert check_leakage(f, recs).ok
