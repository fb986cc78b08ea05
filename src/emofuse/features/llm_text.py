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
words, ``model_id`` and the layers. On CPU it is slow: 9-18 sentences/s on one core of a busy
2-core machine (SmolLM2-135M dequantised to float32, batches of 32 sorted by length, short
sentences; an earlier version, unsorted batches of 16 with every position's logits, measured
1.3-2.8/s): use a GPU or subsample the training splits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .cache import FeatureCache

__all__ = ["PROMPT", "EMOTION_WORDS", "LLM_TEXT_VERSION", "STATE", "label_token_ids",
           "llm_forward", "llm_text_features", "state_blocks"]

LLM_TEXT_VERSION = "2"
#: a named state: ``last<k>`` / ``mean<k>``, the last token's / the mean state of hidden layer k
STATE = re.compile(r"^(last|mean)(-?\d+)$")
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
                prompt: str = PROMPT, max_len: int = 96, batch_size: int = 16,
                layers: Sequence[int] = (-1,)) -> np.ndarray:
    """``[mean | last | scores]`` of ``texts`` (see the module), float32 ``(n, 2kd + L)`` for
    ``k = len(layers)`` hidden states (0: the embeddings, -1: the last, as the model returns
    them); ``mean`` and ``last`` hold one ``d``-wide block per layer, in the order given.

    Texts are batched by length with left padding (the last position is every row's last
    token) and position ids counted from each row's first real token, so a row's features do
    not depend on the batch it falls in. Only the last position's logits are computed."""
    import torch

    if "{text}" not in prompt:
        raise ConfigError("llm text features: the prompt needs a {text} placeholder")
    if not layers:
        raise ConfigError("llm text features: layers must name at least one hidden state")
    ids = label_token_ids(tokenizer, labels)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # the sentence is truncated (in characters) so that the prompt's tail survives
    prompts = [prompt.format(text=t[: 4 * max_len]) for t in texts]
    order = np.argsort([len(p) for p in prompts], kind="stable")
    rows = []
    for k in range(0, len(prompts), batch_size):
        enc = tokenizer([prompts[i] for i in order[k:k + batch_size]], return_tensors="pt",
                        padding=True)
        mask = enc["attention_mask"]
        with torch.no_grad():
            out = model(input_ids=enc["input_ids"], attention_mask=mask,
                        position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                        output_hidden_states=True, logits_to_keep=1)
        m = mask.unsqueeze(-1).float()
        hs = [out.hidden_states[layer].float() for layer in layers]
        means = [(h * m).sum(1) / m.sum(1).clamp(min=1.0) for h in hs]
        lasts = [h[:, -1] for h in hs]
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        scores = torch.stack([torch.logsumexp(logp[:, i], dim=1) for i in ids], dim=1)
        rows.append(torch.cat([*means, *lasts, scores], 1).numpy().astype(np.float32))
    d = getattr(getattr(model, "config", None), "hidden_size", 0)
    if not rows:
        return np.zeros((0, 2 * len(layers) * d + len(labels)), np.float32)
    a = np.concatenate(rows)
    back = np.empty_like(a)
    back[order] = a
    return back


def llm_text_features(texts: Sequence[str], *, tokenizer: Any, model: Any, model_id: str,
                      labels: Sequence[str], prompt: str = PROMPT, max_len: int = 96,
                      batch_size: int = 16, chunk: int = 256, cache: FeatureCache | None = None,
                      layers: Sequence[int] = (-1,)) -> dict[str, np.ndarray]:
    """:func:`llm_forward` through the feature cache (chunks of ``chunk`` texts, stored as
    float16), split into ``{"mean", "last", "scores"}`` (float32; ``mean`` and ``last`` one
    block per layer of ``layers``)."""
    cache = cache or FeatureCache()
    settings = {"feature": "llm_text", "version": LLM_TEXT_VERSION, "model": model_id,
                "prompt": prompt, "labels": list(labels), "max_len": max_len,
                "words": {c: list(EMOTION_WORDS[c]) for c in labels},
                "layers": [int(x) for x in layers]}
    n_l = len(labels)

    def compute(block: list[str]) -> dict[str, np.ndarray]:
        a = llm_forward(block, tokenizer=tokenizer, model=model, labels=labels, prompt=prompt,
                        max_len=max_len, batch_size=batch_size, layers=layers)
        return {"states": a[:, :a.shape[1] - n_l].astype(np.float16),
                "scores": a[:, a.shape[1] - n_l:]}

    states, scores = [], []
    for k in range(0, len(texts), chunk):
        block = list(texts[k:k + chunk])
        key = json.dumps(block, ensure_ascii=False).encode("utf-8", "surrogatepass")
        v = cache.get_or_compute(key, settings, lambda _b, block=block: compute(block))
        states.append(np.asarray(v["states"]))
        scores.append(np.asarray(v["scores"], np.float32))
    if not states:
        return {"mean": np.zeros((0, 0), np.float32), "last": np.zeros((0, 0), np.float32),
                "scores": np.zeros((0, n_l), np.float32)}
    a = np.concatenate(states).astype(np.float32)
    d = a.shape[1] // 2
    return {"mean": a[:, :d], "last": a[:, d:], "scores": np.concatenate(scores)}


def state_blocks(states: Mapping[str, np.ndarray], *, layers: Sequence[int],
                 names: Sequence[str]) -> list[np.ndarray]:
    """The blocks ``names`` (``last<k>`` / ``mean<k>``, :data:`STATE`) of ``states``
    (``{"mean", "last"}``, one ``d``-wide block per layer of ``layers``), in that order."""
    out = []
    for name in names:
        m = STATE.match(name)
        if m is None or int(m.group(2)) not in list(layers):
            raise ConfigError(f"llm state {name!r}: expected last<k> or mean<k> with k among "
                              f"the extracted layers {list(layers)}")
        a = states[m.group(1)]
        d = a.shape[1] // len(layers)
        k = list(layers).index(int(m.group(2)))
        out.append(np.asarray(a[:, d * k:d * (k + 1)], np.float32))
    return out
