import pytest

from emofuse import labels
from emofuse.errors import EmofuseError, LabelError


def test_every_corpus_maps_into_canonical():
    for corpus, table in labels.CORPUS_LABELS.items():
        for native, canon in table.items():
            assert canon is None or canon in labels.CANONICAL, (corpus, native, canon)


def test_unify_and_errors():
    assert labels.unify("ravdess", "fearful") == "fear"
    assert labels.unify("savee", "sa") == "sad"
    assert labels.unify("meld", "joy") == "happy"
    assert labels.unify("iemocap", "xxx") is None
    with pytest.raises(LabelError, match="unknown native label"):
        labels.unify("ravdess", "bored")
    assert issubclass(LabelError, EmofuseError)
    # generic corpora fall back to spelling normalisation
    assert labels.unify("folder", "Happiness") == "happy"
    assert labels.normalise_label("Pleasant Surprise") == "surprise"
    assert labels.normalise_label("zzz") is None


def test_shared_labels_for_cross_corpus():
    assert labels.shared_labels("ravdess", "savee") == [
        "neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]
    assert labels.shared_labels("cremad", "ravdess") == [
        "neutral", "happy", "sad", "angry", "fear", "disgust"]
    assert "calm" not in labels.shared_labels("ravdess", "tess")
    assert labels.shared_labels("ravdess", ["happy", "calm", "love"]) == ["calm", "happy"]


def test_iemocap_four_class():
    assert labels.iemocap_4class("exc") == "happy"
    assert labels.iemocap_4class("hap") == "happy"
    assert labels.iemocap_4class("fru") is None
    assert labels.iemocap_4class("neutral") == "neutral"
    assert {labels.iemocap_4class(x) for x in labels.CORPUS_LABELS["iemocap"]} - {None} == {
        "neutral", "happy", "sad", "angry"}


def test_valence_arousal_quadrants():
    v, a = labels.valence_arousal("happy")
    assert v > 0 and a > 0
    v, a = labels.valence_arousal("sad")
    assert v < 0 and a < 0
    v, a = labels.valence_arousal("angry")
    assert v < 0 < a
    for lab in labels.CANONICAL:
        v, a = labels.valence_arousal(lab)
        assert -1 <= v <= 1 and -1 <= a <= 1
    with pytest.raises(LabelError):
        labels.valence_arousal("nope")


def test_goemotions_ekman_covers_28():
    assert len(labels.GOEMOTIONS_28) == 28
    assert set(labels.GOEMOTIONS_EKMAN) == set(labels.GOEMOTIONS_28)
