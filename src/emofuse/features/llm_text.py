"""Prompted causal-LM features of a sentence (SmolLM2-135M-Instruct, or any Hugging Face causal
LM with a tokenizer): one forward pass of ``PROMPT`` gives

- ``mean``: the last layer's hidden states mean-pooled over the prompt's tokens (padding
  excluded), ``(n, d)``;
- ``last``: the last token's hidden state, ``(n, d)`` (the state that predicts the emotion
  word);
- ``scores``: a zero-shot scorer, the next-token log-probabilities of each label's emotion
  words (:data:`EMOTION_WORDS`; log-sum-exp over a label's words, their first token), ``(n, L)``.

The model is passed in (``tokenizer``, ``model``): this layer does not load it (the loader of
the shipped GGUF is :func:`emofuse.augment.text._load_smollm2`). Results are cached per chunk of
texts in the :class:`~emofuse.features.cache.FeatureCache`, keyed by the texts, the prompt, the
words and ``model_id``. It is slow on CPU (1.3-2.8 sentences/s on one busy core, measured with
SmolLM2-135M dequantised to float32): use a GPU or subsample the training splits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .cache import FeatureCache

__all__ = ["PROMPT", "EMOTION_WORDS", "LLM_TEXT_VERSION", "label_token_ids", "llm_forward",
           "llm_text_features"]

LLM_TEXT_VERSION = "1"
#: the prompt; ``{text}`` is the sentence
PROMPT = "Text: {text}\nThe emotion expressed is"
#: canonical label -> words that name it after the prompt (fixed before any figure)
EMOTION_WORDS: Mapping[str, tuple[str, ...]] = {
    "neutral": (" neutral", " none", " calm"),
    "happy": (" joy", " happiness", " happy"),
    "sad": (" sadness", " sad", " grief"),
    "angry": (" anger", " angry", " annoyance"),
    "fear": (" fear", " anxiety", " worry"),
    "disgust": (" disgust", " disgusted", " contempt"),
    "surprise": (" surprise", " surprised", " shock"),
}


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> list[list[int]]:
    """First token id of each word of each label (duplicates within a label once)."""
    out = []
    for c in labels:
        if c not in EMOTION_WORDS:
            raise ConfigError(f"llm text features: no emotion words for {c!r}")
        ids = []
        for w in EMOTION_WORDS[c]:
            t = tokenizer(w, add_special_tokens=False)["input_ids"]
            if t and t[0] not in ids:
                ids.append(int(t[0]))
        out.append(ids)
    return out


def llm_forward(texts: Sequence[str], *, tokenizer: Any, model: Any, labels: Sequence[str],
                prompt: str = PROMPT, max_len: int = 96, batch_size: int = 16) -> np.ndarray:
    """``[mean | last | scores]`` of ``texts`` (see the module), float32 ``(n, 2d + L)``.
    Batched with left padding (the last position is every row's last token)."""
    import torch

    if "{text}" not in prompt:
        raise ConfigError("llm text features: the prompt needs a {text} placeholder")
    ids = label_token_ids(tokenizer, labels)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = []
    for k in range(0, len(texts), batch_size):
        # the sentence is truncated (in characters) so that the prompt's tail survives
        batch = [prompt.format(text=t[: 4 * max_len]) for t in texts[k:k + batch_size]]
        enc = tokenizer(batch, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model(**enc, output_hidden_states=True)
        h = out.hidden_states[-1].float()
        m = enc["attention_mask"].unsqueeze(-1).float()
        mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        last = h[:, -1]
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        scores = torch.stack([torch.logsumexp(logp[:, i], dim=1) for i in ids], dim=1)
        rows.append(torch.cat([mean, last, scores], 1).numpy().astype(np.float32))
    d = getattr(getattr(model, "config", None), "hidden_size", 0)
    return np.concatenate(rows) if rows else np.zeros((0, 2 * d + len(labels)), np.float32)


def llm_text_features(texts: Sequence[str], *, tokenizer: Any, model: Any, model_id: str,
                      labels: Sequence[str], prompt: str = PROMPT, max_len: int = 96,
                      batch_size: int = 16, chunk: int = 256, cache: FeatureCache | None = None
                      ) -> dict[str, np.ndarray]:
    """:func:`llm_forward` through the feature cache (chunks of ``chunk`` texts), split into
    ``{"mean", "last", "scores"}``."""
    cache = cache or FeatureCache()
    settings = {"feature": "llm_text", "version": LLM_TEXT_VERSION, "model": model_id,
                "prompt": prompt, "labels": list(labels), "max_len": max_len,
                "words": {c: list(EMOTION_WORDS[c]) for c in labels}}
    parts = []
    for k in range(0, len(texts), chunk):
        block = list(texts[k:k + chunk])
        key = json.dumps(block, ensure_ascii=False).encode("utf-8", "surrogatepass")
        parts.append(np.asarray(cache.get_or_compute(key, settings, lambda _b, block=block: (
            llm_forward(block, tokenizer=tokenizer, model=model, labels=labels, prompt=prompt,
                        max_len=max_len, batch_size=batch_size)))))
    n_l = len(labels)
    if not parts:
        return {"mean": np.zeros((0, 0), np.float32), "last": np.zeros((0, 0), np.float32),
                "scores": np.zeros((0, n_l), np.float32)}
    a = np.concatenate(parts)
    d = (a.shape[1] - n_l) // 2
    return {"mean": a[:, :d], "last": a[:, d:2 * d], "scores": a[:, 2 * d:]}
