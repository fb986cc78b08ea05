"""Synthetic multimodal pairing (the generative framework's three-modality protocol).

Corpora with a face, an utterance and a text *of the same person and moment* are rare; the
generative multimodal framework instead pairs items of different corpora that carry the same
emotion label (a FER2013 face, a RAVDESS utterance, a MELD or dair-ai text). Such pairs are
**synthetic**: the modalities share a label, not a speaker or a moment, so the figures they
give say how well fusion combines independent evidence, not how it behaves on real
audio-visual recordings. Pairs must be drawn within one split at a time: training pairs from
the training pools only, test pairs from the test pools only.

>>> idx, labels = synthetic_pairs({"face": face_labels, "audio": audio_labels,
...                                "text": text_labels}, n_per_class=200, seed=0)  # doctest: +SKIP
>>> idx["face"][i], idx["audio"][i], idx["text"][i]    # one synthetic triple of label labels[i]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["synthetic_pairs"]


def synthetic_pairs(labels: Mapping[str, Sequence[str]], *, n_per_class: int | None = None,
                    classes: Sequence[str] | None = None, seed: int = 0
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Tuples of one item per modality with the same label, drawn from the given pools.

    Parameters
    ----------
    labels
        ``{modality: labels of that modality's pool}`` (one split of each corpus).
    n_per_class
        Tuples per class (default: the largest pool's count of that class); items are reused
        (cycled in a shuffled order) when a pool has fewer.
    classes
        Classes to pair (default: those present in every pool, in first-pool order).
    seed
        Random seed of the draw.

    Returns
    -------
    indices, y
        ``{modality: (n,) indices into its pool}`` and the ``(n,)`` shared labels.
    """
    if not labels:
        raise ValueError("synthetic_pairs needs at least one modality")
    pools = {m: np.asarray(list(v), dtype=object) for m, v in labels.items()}
    first = next(iter(pools.values()))
    shared = [c for c in dict.fromkeys(first.tolist()) if all(c in p for p in pools.values())]
    wanted = list(classes) if classes is not None else shared
    missing = [c for c in wanted if c not in shared]
    if missing:
        raise ValueError(f"classes {missing} are missing from at least one modality's pool")
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {m: [] for m in pools}
    ys: list[np.ndarray] = []
    for c in wanted:
        members = {m: np.flatnonzero(p == c) for m, p in pools.items()}
        n = n_per_class or max(len(v) for v in members.values())
        for m, idx in members.items():
            reps = -(-n // len(idx))
            order = np.concatenate([rng.permutation(idx) for _ in range(reps)])[:n]
            out[m].append(order)
        ys.append(np.full(n, c, dtype=object))
    perm = rng.permutation(sum(len(y) for y in ys))
    return ({m: np.concatenate(v)[perm] for m, v in out.items()},
            np.concatenate(ys)[perm])
