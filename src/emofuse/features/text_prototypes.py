"""Zero-shot emotion prototypes in the MiniLM space: cosine similarities between a sentence
embedding and the embeddings of short descriptions of each canonical emotion.

The templates (:data:`PROTOTYPES`) were written once, before any figure was read, in several
registers (first person, third person, a reaction, a dictionary-style description), so that no
single corpus' style is favoured. They do not depend on any corpus, which is why the
similarities may carry across corpora better than the raw embedding does.

:func:`prototype_features` turns unit-norm MiniLM embeddings (``embed_texts`` normalises) into
similarities: ``all`` (one per template), ``mean`` / ``max`` (one per emotion, over its
templates) or ``meanmax`` (both). Centred per emotion over all templates (``centre``): the
emotion that a sentence is *relatively* closest to, which removes the common "sentence about a
feeling" component.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from ..errors import ConfigError

__all__ = ["PROTOTYPES", "PROTOTYPE_VERSION", "Pooling", "prototype_matrix",
           "prototype_features", "prototype_names"]

#: bump when the templates change (run caches hash the features themselves)
PROTOTYPE_VERSION = "1"

#: canonical label -> templates (fixed: written before any cross-corpus figure)
PROTOTYPES: Mapping[str, tuple[str, ...]] = {
    "neutral": (
        "I feel nothing in particular.",
        "This is a plain statement of fact.",
        "Okay, see you tomorrow at noon.",
        "The meeting is on Tuesday.",
        "He said it calmly, without any emotion.",
        "Neutral, matter-of-fact remark.",
    ),
    "happy": (
        "I feel happy.",
        "This makes me so glad!",
        "I am delighted and full of joy.",
        "What a wonderful day, I love it!",
        "She was thrilled and cheerful.",
        "Joy, happiness, amusement.",
    ),
    "sad": (
        "I feel sad.",
        "This makes me want to cry.",
        "I am heartbroken and lonely.",
        "I miss her so much, it hurts.",
        "He was depressed and miserable.",
        "Sadness, grief, sorrow.",
    ),
    "angry": (
        "I feel angry.",
        "This makes me furious!",
        "I am so annoyed and irritated.",
        "How dare you do that to me!",
        "She was outraged and hostile.",
        "Anger, rage, annoyance.",
    ),
    "fear": (
        "I feel afraid.",
        "This scares me.",
        "I am nervous and anxious about it.",
        "Oh no, what if something terrible happens?",
        "He was terrified and panicking.",
        "Fear, worry, nervousness.",
    ),
    "disgust": (
        "I feel disgusted.",
        "This is gross and revolting.",
        "That makes me sick, yuck.",
        "Ew, I can't stand that.",
        "She found it repulsive and vile.",
        "Disgust, revulsion, contempt.",
    ),
    "surprise": (
        "I feel surprised.",
        "Wow, I did not expect that!",
        "I am amazed and astonished.",
        "What? Really? No way!",
        "He was shocked and stunned.",
        "Surprise, astonishment, amazement.",
    ),
}

Pooling = Literal["all", "mean", "max", "meanmax"]


def prototype_names(labels: Sequence[str], pooling: Pooling) -> list[str]:
    """Column names of :func:`prototype_features` for ``labels`` and ``pooling``."""
    if pooling == "all":
        return [f"{c}:{i}" for c in labels for i in range(len(PROTOTYPES[c]))]
    kinds = ("mean", "max") if pooling == "meanmax" else (pooling,)
    return [f"{c}:{k}" for k in kinds for c in labels]


@functools.lru_cache(maxsize=4)
def _matrix(labels: tuple[str, ...]) -> np.ndarray:
    from .minilm import embed_texts

    texts = [t for c in labels for t in PROTOTYPES[c]]
    e = np.asarray(embed_texts(texts), np.float32)
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e


def prototype_matrix(labels: Sequence[str]) -> np.ndarray:
    """Unit-norm MiniLM embeddings of the templates of ``labels`` (rows: label by label, the
    templates in order)."""
    if bad := [c for c in labels if c not in PROTOTYPES]:
        raise ConfigError(f"text prototypes: no templates for {', '.join(bad)} (have "
                          f"{', '.join(PROTOTYPES)})")
    return _matrix(tuple(labels)).copy()


def prototype_features(x: np.ndarray, *, labels: Sequence[str], pooling: Pooling = "mean",
                       centre: bool = False, protos: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarities of the rows of ``x`` (MiniLM embeddings) with the templates of
    ``labels``, pooled per emotion as ``pooling`` says; ``centre``: minus each row's mean over
    all templates. ``protos``: the template matrix (default :func:`prototype_matrix`)."""
    x = np.asarray(x, np.float32)
    p = prototype_matrix(labels) if protos is None else np.asarray(protos, np.float32)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = xn @ p.T
    if centre:
        sims = sims - sims.mean(axis=1, keepdims=True)
    if pooling == "all":
        return sims.astype(np.float32)
    sizes = [len(PROTOTYPES[c]) for c in labels]
    if sum(sizes) != sims.shape[1]:
        raise ConfigError(f"text prototypes: {sims.shape[1]} templates given, the labels have "
                          f"{sum(sizes)}")
    bounds = np.cumsum([0, *sizes])
    blocks = [sims[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    out = []
    if pooling in ("mean", "meanmax"):
        out.append(np.stack([b.mean(1) for b in blocks], 1))
    if pooling in ("max", "meanmax"):
        out.append(np.stack([b.max(1) for b in blocks], 1))
    if not out:
        raise ConfigError(f"text prototypes: pooling {pooling!r} (all, mean, max or meanmax)")
    return np.concatenate(out, 1).astype(np.float32)
