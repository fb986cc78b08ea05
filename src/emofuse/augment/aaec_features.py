"""AAEC's data: frame-level speech features pooled to fixed-length sequences, and synthetic
sets of feature sequences on disk (``files/<n>.npy`` + manifest).

:func:`sequence_features` reads frame-level features through
:func:`emofuse.features.speech.extract_many` (cached by the
:class:`~emofuse.features.cache.FeatureCache`), trims leading and trailing frames quieter than
``trim_db`` below the loudest frame (MFCC: from ``c0``; log-mel: the band mean) and
average-pools the rest to ``steps`` time steps (:func:`pool_sequence`). The generator itself is
:class:`emofuse.augment.aaec.AAECGenerator`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .manifest import SyntheticItem, SyntheticSet, write_set

if TYPE_CHECKING:
    from .aaec import AAECGenerator

__all__ = ["pool_sequence", "sequence_features", "make_feature_set", "feature_set_quality",
           "write_feature_set", "read_features"]


# -- features --------------------------------------------------------------------------------


def pool_sequence(frames: np.ndarray, steps: int, *, trim_db: float | None = None,
                  loudness: np.ndarray | None = None) -> np.ndarray:
    """``(n_features, n_frames)`` -> ``(steps, n_features)``: frames quieter than ``trim_db``
    below the loudest (``loudness`` per frame, dB) cut from both ends, the rest averaged in
    ``steps`` nearly equal segments (fewer frames than steps: frames repeated)."""
    x = np.asarray(frames, np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected (features, frames) with frames > 0, got {x.shape}")
    if trim_db is not None and loudness is not None and len(loudness) == x.shape[1]:
        on = np.flatnonzero(loudness >= loudness.max() - trim_db)
        if len(on):
            x = x[:, on[0]:on[-1] + 1]
    n = x.shape[1]
    if n < steps:
        x = x[:, np.linspace(0, n - 1, steps).round().astype(int)]
        n = steps
    edges = np.linspace(0, n, steps + 1).round().astype(int)
    csum = np.concatenate([np.zeros((x.shape[0], 1), np.float64), np.cumsum(x, axis=1)], axis=1)
    seg = (csum[:, edges[1:]] - csum[:, edges[:-1]]) / np.maximum(edges[1:] - edges[:-1], 1)
    return seg.T.astype(np.float32)


def _loudness(frames: np.ndarray, feature: str, params: Mapping[str, Any]) -> np.ndarray | None:
    """Per-frame loudness in dB: the mean of the log-mel bands (for MFCCs, ``c0 / sqrt(M)``
    with librosa's orthonormal DCT)."""
    if feature == "logmel":
        return frames.mean(axis=0)
    if feature == "mfcc":
        n_mels = params["n_mels"] if "n_mels" in params else _default("mfcc", "n_mels")
        return frames[0] / math.sqrt(float(n_mels))
    return None


def sequence_features(records: Sequence[Any], *, feature: str = "mfcc",
                      params: Mapping[str, Any] | None = None, steps: int = 32,
                      trim_db: float | None = 35.0, cache: Any = None
                      ) -> tuple[dict[str, np.ndarray], list[dict[str, str]]]:
    """``{record id: (steps, n_features)}`` of every record with audio, from the feature cache;
    the second value lists ``{"id", "path", "reason"}`` of records that failed."""
    from ..features.cache import FeatureCache
    from ..features.speech import extract_many

    if feature not in ("mfcc", "logmel"):
        raise ConfigError(f"aaec: feature must be a frame-level one (mfcc or logmel), "
                          f"not {feature!r}")
    params = dict(params if params is not None else {"n_mfcc": 40, "deltas": False})
    recs = [r for r in records if r.audio]
    frames, errors = extract_many([r.audio for r in recs], feature, params=params,
                                  cache=cache or FeatureCache())
    by_path = {e["path"]: e["reason"] for e in errors}
    out: dict[str, np.ndarray] = {}
    skipped = [{"id": r.id, "path": "", "reason": "no audio"} for r in records if not r.audio]
    for r, f in zip(recs, frames):
        if f is None:
            skipped.append({"id": r.id, "path": str(r.audio),
                            "reason": by_path.get(str(r.audio), "feature failed")})
            continue
        out[r.id] = pool_sequence(f, steps, trim_db=trim_db,
                                  loudness=_loudness(f, feature, params))
    return out, skipped



def _default(feature: str, name: str) -> Any:
    """The default of keyword ``name`` of speech feature function ``feature``."""
    from ..features import speech

    return inspect.signature(getattr(speech, feature)).parameters[name].default


# -- synthetic sets of feature sequences -----------------------------------------------------


def make_feature_set(generator: AAECGenerator, items: Sequence[SyntheticItem], *,
                     corpus: str = "", part: str = "train", seed: int = 0,
                     seconds: float | None = None, **info: Any) -> SyntheticSet:
    """A :class:`SyntheticSet` of ``items`` with the generator's settings and ``fitted_on``."""
    return SyntheticSet(generator.name, generator.modality,
                        {**generator.settings(), "classes": list(generator.classes)}, seed,
                        SyntheticSet.fitted(corpus, part, generator.fitted_ids, **info),
                        list(items), seconds=seconds,
                        extra={"fit": {k: v for k, v in generator.info.items()
                                       if k != "val_scores"}})


def feature_set_quality(generator: AAECGenerator, syn: np.ndarray, syn_y: np.ndarray,
                        real: np.ndarray, real_y: np.ndarray, classes: Sequence[str]
                        ) -> dict[str, Any]:
    """Quality gates of synthetic sequences ``syn`` against real ones (original units), in the
    space of per-step mean and std of the sequence standardised by the generator; confidence
    from the generator's own classifier. ``*_y``: indices into ``classes``."""
    from .quality import quality_report

    def emb(x: np.ndarray) -> np.ndarray:
        z = (x - generator.mean) / generator.std
        return np.concatenate([z.mean(1), z.std(1)], axis=1)

    return quality_report(emb(syn), syn_y, emb(real), real_y, classes,
                          proba=generator.predict_proba(syn))


def write_feature_set(sset: SyntheticSet, folder: str | Path) -> Path:
    """Write each item's ``extra["features"]`` to ``files/<n>.npy`` (its ``path``), then the
    manifest and ``items.csv`` (:func:`~emofuse.augment.write_set`)."""
    folder = Path(folder)
    (folder / "files").mkdir(parents=True, exist_ok=True)
    for n, it in enumerate(sset.items):
        x = it.extra.pop("features", None)
        if x is None:
            continue
        rel = f"files/{n:06d}.npy"
        np.save(folder / rel, np.asarray(x, np.float32))
        it.path = rel
        it.extra["shape"] = list(np.shape(x))
    return write_set(sset, folder)


def read_features(sset: SyntheticSet, folder: str | Path, *, kept_only: bool = True
                  ) -> tuple[np.ndarray, list[str]]:
    """The sequences of a set written by :func:`write_feature_set` and their labels."""
    folder = Path(folder)
    items = [it for it in (sset.kept() if kept_only else sset.items) if it.path]
    if not items:
        return np.zeros((0, 0, 0), np.float32), []
    return np.stack([np.load(folder / it.path) for it in items]), [it.label for it in items]
