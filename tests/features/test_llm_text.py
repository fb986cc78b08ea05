"""Prompted causal-LM features (features.llm_text) on a tiny random Llama and a character
tokenizer: shapes, the zero-shot scores as log-probabilities, the cache, errors."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.errors import ConfigError
from emofuse.features.cache import FeatureCache
from emofuse.features.llm_text import EMOTION_WORDS, label_token_ids, llm_text_features

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 64


class CharTokenizer:
    """One token per character (id = code point mod 60 + 4); left padding with id 0."""

    pad_token, eos_token, padding_side = "<pad>", "<pad>", "left"

    def _ids(self, s: str) -> list[int]:
        return [ord(ch) % 60 + 4 for ch in s]

    def __call__(self, texts, *, add_special_tokens=True, return_tensors=None, padding=False):
        if isinstance(texts, str):
            return {"input_ids": self._ids(texts)}
        ids = [self._ids(t) for t in texts]
        n = max(map(len, ids))
        pad = [[0] * (n - len(i)) + i for i in ids]
        mask = [[0] * (n - len(i)) + [1] * len(i) for i in ids]
        return {"input_ids": torch.tensor(pad), "attention_mask": torch.tensor(mask)}


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=1, num_attention_heads=2,
                                   num_key_value_heads=2, max_position_embeddings=512)
    return CharTokenizer(), transformers.LlamaForCausalLM(cfg).eval()


def test_features_shapes_scores_and_cache(lm, tmp_path):
    tok, model = lm
    labels = ["happy", "sad", "angry"]
    texts = ["so happy", "i miss her", "how dare you!!", "ok"]
    cache = FeatureCache(tmp_path)
    f = llm_text_features(texts, tokenizer=tok, model=model, model_id="tiny", labels=labels,
                          cache=cache, batch_size=3, chunk=2)
    assert f["mean"].shape == f["last"].shape == (4, 16) and f["scores"].shape == (4, 3)
    assert (f["scores"] <= 0).all()          # log-probabilities
    # the scores are the log-sum-exp of the words' first-token log-probabilities
    enc = tok(["Text: ok\nThe emotion expressed is"], padding=True)
    with torch.no_grad():
        logp = torch.log_softmax(model(**enc).logits[0, -1], -1)
    ids = label_token_ids(tok, labels)
    want = [float(torch.logsumexp(logp[i], 0)) for i in ids]
    assert np.allclose(f["scores"][3], want, atol=1e-4)
    again = llm_text_features(texts, tokenizer=tok, model=model, model_id="tiny",
                              labels=labels, cache=cache, chunk=2)
    assert cache.hits == 2 and np.array_equal(again["last"], f["last"])


def test_words_and_errors(lm):
    tok, model = lm
    assert set(EMOTION_WORDS) >= {"neutral", "happy", "sad", "angry", "fear", "disgust",
                                  "surprise"}
    with pytest.raises(ConfigError, match="no emotion words"):
        label_token_ids(tok, ["love"])
    with pytest.raises(ConfigError, match="placeholder"):
        llm_text_features(["x"], tokenizer=tok, model=model, model_id="tiny",
                          labels=["happy", "sad"], prompt="no slot", cache=None)


def test_layers_and_batch_independence(lm, tmp_path):
    """Several hidden states, one block each; a row's features do not depend on its batch
    (left padding with position ids counted from the first real token)."""
    tok, model = lm
    labels = ["happy", "sad"]
    texts = ["a much longer sentence than the others", "ok", "fine then"]
    many = llm_text_features(texts, tokenizer=tok, model=model, model_id="tiny", labels=labels,
                             cache=FeatureCache(tmp_path), batch_size=3, layers=(0, -1))
    assert many["mean"].shape == many["last"].shape == (3, 32)
    for i, t in enumerate(texts):
        one = llm_text_features([t], tokenizer=tok, model=model, model_id="tiny",
                                labels=labels, cache=FeatureCache(tmp_path / "one"), batch_size=1,
                                layers=(0, -1))
        assert np.allclose(one["last"][0], many["last"][i], atol=2e-2)   # float16 storage
        assert np.allclose(one["scores"][0], many["scores"][i], atol=1e-4)
    last = llm_text_features(texts, tokenizer=tok, model=model, model_id="tiny",
                             labels=labels, cache=FeatureCache(tmp_path), batch_size=3)
    assert np.allclose(last["last"], many["last"][:, 16:], atol=2e-2)
