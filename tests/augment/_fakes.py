"""Fakes for the augmentation tests: an LLM backend, a hashed bag-of-words embedding and a
tiny dair-style corpus on disk."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

WORDS = {"joy": ["happy", "wonderful", "delighted", "great fun", "cheerful"],
         "sadness": ["sad", "lonely", "miserable", "in tears", "gloomy"],
         "anger": ["furious", "angry", "outraged", "so mad", "annoyed"]}


FILLER = ("morning", "evening", "friend", "work", "school", "coffee", "rain", "music", "city",
          "garden", "phone", "dinner", "weekend", "train", "book", "movie", "beach", "dog",
          "cat", "class", "game", "family", "party", "trip", "news", "letter", "storm", "road")


def fake_embed(texts: Sequence[str], dim: int = 64) -> np.ndarray:
    """Hashed bag of words, L2-normalised: similar texts are close, like a sentence encoder."""
    out = np.zeros((len(texts), dim), np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z]+", t.lower()):
            h = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
            out[i, h % dim] += 1.0
        out[i, -1] += 0.1  # never all-zero
    return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeBackend:
    """Answers a list prompt with two emotional lines of the class named in it, and a
    paraphrase prompt with the tweet's words plus 'really'."""

    name = "fake"

    def __init__(self, *args, **kwargs) -> None:
        self.calls = 0
        self.load_seconds = 0.0

    def complete(self, prompts, *, max_new_tokens, temperature, top_p, seed, chat=False):
        self.calls += 1
        rng = np.random.default_rng(seed)
        out = []
        for p in prompts:
            if chat:
                tweet = p.rsplit("Tweet:", 1)[1].strip()
                out.append((f"Rewritten tweet: {tweet} really {rng.integers(1000)}", True))
                continue
            emo = re.search(r"feels (\w+):", p).group(1)
            ws = WORDS.get(emo, ["odd"])
            a, b = (ws[rng.integers(len(ws))] for _ in range(2))
            x, y, z = (FILLER[k] for k in rng.integers(len(FILLER), size=3))
            out.append((f" i am {a} today {x} {y}\n- now i feel {b} again {z}\n- cut off",
                        False))
        return out


def write_dair(root: Path, n: int = 12, *, val: int = 4, test: int = 4) -> Path:
    """A dair-style corpus (train/val/test.txt, ``text;label``) with learnable words."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, k in (("train", n), ("val", val), ("test", test)):
        lines = []
        for label, words in WORDS.items():
            kk = k if label != "anger" else max(2, k // 3)  # anger is the rare class
            for i in range(kk):
                w = words[rng.integers(len(words))]
                f = FILLER[rng.integers(len(FILLER))]
                lines.append(f"i feel {w} so {w} about the {f} {i} {split};{label}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root
