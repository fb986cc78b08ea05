"""Text features: cleaning, emoji to words, lexicon cues, emotional-content filter, dialogue
context and cached MiniLM embeddings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from emofuse.corpora import Record
from emofuse.errors import ConfigError
from emofuse.features import get_feature
from emofuse.features.cache import FeatureCache
from emofuse.features.text import (LEXICON_DIM, NRC_EMOTIONS, clean_text, dialogue_context,
                                   emoji_to_words, emotional_content, lexicon, nrc_lexicon,
                                   previous_turns)


@pytest.mark.parametrize("raw, expected", [
    ("see https://t.co/abc and www.x.org now", "see and now"),
    ("@bob_1 hi @alice", "@user hi @user"),
    ("so #blessed today", "so blessed today"),
    ("a &amp; b &lt;3", "a & b love"),
    ("<b>bold</b> and <br/>tags", "bold and tags"),
    ("**really** [this link](http://x.y) ~~no~~", "really this link no"),
    ("> quoted reply\nmine", "quoted reply mine"),
    ("I ❤️ it 😂", "I red heart it face with tears of joy"),
    ("good :) bad :(", "good smile bad sad face"),
    ("  spaced\t\tout \n ", "spaced out"),
    ("email me a@b.com", "email me a@b.com"),
])
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


def test_clean_text_options():
    text = "@bob loves it 😂 http://x.y"
    assert clean_text(text, emoji="keep", urls=False) == "@user loves it 😂 http://x.y"
    assert clean_text(text, emoji="drop", mentions=False) == "@bob loves it"
    with pytest.raises(ConfigError, match="emoji"):
        clean_text(text, emoji="smileys")


def test_clean_text_truncates_with_a_warning():
    with pytest.warns(UserWarning, match="truncated"):
        out = clean_text("word " * 10_000, max_chars=100)
    assert len(out) == 100


def test_emoji_to_words_skin_tones_and_flags():
    out = emoji_to_words("👍🏽🇫🇷")
    assert "thumbs up" in out and "France" in out


def test_nrc_lexicon_is_shipped():
    lex = nrc_lexicon()
    assert len(lex) > 5000
    assert "anger" in lex["hate"]


def test_lexicon_features():
    x = lexicon(["I hate this awful day", "", "what a lovely wonderful surprise"])
    assert x.shape == (3, LEXICON_DIM) and x.dtype == np.float32
    anger = NRC_EMOTIONS.index("anger")
    joy = NRC_EMOTIONS.index("joy")
    assert x[0, anger] > 0 and x[0, -1] < -0.5           # VADER compound negative
    assert np.all(x[1] == 0)
    assert x[2, joy] > 0 and x[2, -1] > 0.5
    assert get_feature("lexicon").modality == "text"


def test_emotional_content():
    mask = emotional_content(["I am so happy", "the table is brown", "ok 😂",
                              "we met at noon on tuesday"])
    assert mask.tolist() == [True, False, True, False]


def _rec(i, dia, utt, speaker, text):
    return Record(id=f"r{i}", corpus="meld", label_native="neutral", label="neutral",
                  speaker=speaker, split="train", text=text,
                  extra={"dialogue": dia, "utterance": utt})


def test_previous_turns_never_look_ahead():
    recs = [_rec(0, "d1", 2, "A", "third"), _rec(1, "d1", 0, "B", "first"),
            _rec(2, "d2", 0, "A", "other"), _rec(3, "d1", 1, "A", "second")]
    prev = previous_turns(recs, turns=2)
    assert prev == [[3, 1], [], [], [1]]
    ctx = dialogue_context(recs, turns=2)
    assert ctx[0] == "A: second | B: first"
    assert ctx[1] == "" and ctx[2] == ""
    assert dialogue_context(recs, turns=1, speakers=False)[0] == "second"
    assert dialogue_context(recs, turns=0) == [""] * 4


def test_minilm_embeddings_are_cached(tmp_path):
    from emofuse.features.text import embed_texts

    cache = FeatureCache(tmp_path)
    texts = ["I love this", "I hate this", ""]
    a = embed_texts(texts, cache=cache, chunk=2)
    assert a.shape == (3, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a[:2], axis=1), 1.0, atol=1e-4)
    assert cache.misses == 2 and cache.hits == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no hub access, no fresh download
        b = embed_texts(texts, cache=cache, chunk=2)
    assert cache.hits == 2 and np.array_equal(a, b)
    sim = a[0] @ embed_texts(["I really love this"], cache=cache)[0]
    assert sim > a[0] @ a[1] - 0.5 and sim > 0.8


def test_sentence_embeddings_live_in_minilm_and_are_re_exported():
    """``features.minilm`` holds the encoder; ``features.text`` re-exports its names (the same
    objects, so state such as the fast-encoder memo is shared)."""
    from emofuse.features import get_feature, minilm, text

    for name in ("embed_texts", "minilm", "minilm_path", "fast_encoder", "prepare_fast_encoder",
                 "FastEncoder", "MINILM_DIM", "MINILM_VERSION", "_FAST", "_offline"):
        assert getattr(text, name) is getattr(minilm, name), name
    assert get_feature("minilm").fn is minilm.minilm


def test_fast_encoder_is_remembered_per_model_and_cache_folder(tmp_path, monkeypatch):
    """A process that switches ``$EMOFUSE_CACHE`` uses the new cache's ONNX encoder (it used to
    keep the first cache's, remembered by model folder alone)."""
    from emofuse.features import minilm as M

    made = []

    def fake(folder, *, build):
        made.append(object.__new__(M.FastEncoder))
        return made[-1]

    monkeypatch.setattr(M, "_make_fast", fake)
    monkeypatch.setattr(M, "_FAST", {})
    monkeypatch.delenv("EMOFUSE_TEXT_ENCODER", raising=False)
    model = tmp_path / "model"
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "a"))
    first = M.fast_encoder(model)
    assert M.fast_encoder(model) is first and len(made) == 1
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "b"))
    assert M.fast_encoder(model) is not first and len(made) == 2
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "a"))
    assert M.fast_encoder(model) is first and len(made) == 2
