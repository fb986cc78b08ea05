"""The feature table of the cross-corpus speech recipe: one row per utterance of several
corpora (Whisper layer statistics from the feature cache)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import Params
from ..corpora import Record, load_corpus
from ..errors import ConfigError, EmofuseError
from ..labels import CANONICAL

#: Width of one Whisper layer block (512 means then 512 standard deviations).
BLOCK = 1024

# --------------------------------------------------------------------------------------------
# Data


@dataclasses.dataclass
class Table:
    """Feature vectors of several corpora, one row per utterance.

    ``layers``: the Whisper hidden-state index of each 1024-wide column block of ``x`` (``None``
    for another feature, whose columns are used as a whole)."""

    x: np.ndarray
    labels: np.ndarray
    corpus: np.ndarray
    speaker: np.ndarray
    ids: list[str]
    layers: list[int] | None = None
    records: list[Record] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, np.float32)
        self.labels = np.asarray(self.labels, dtype=object)
        self.corpus = np.asarray(self.corpus, dtype=object)
        self.speaker = np.asarray([f"{c}:{s}" for c, s in zip(self.corpus, self.speaker)],
                                  dtype=object) if len(self.corpus) else np.asarray([], object)
        n = len(self.x)
        if not (len(self.labels) == len(self.corpus) == len(self.speaker) == len(self.ids) == n):
            raise ValueError("Table: x, labels, corpus, speaker and ids differ in length")
        if self.layers is not None and self.x.shape[1] != BLOCK * len(self.layers):
            raise ValueError(f"Table: {self.x.shape[1]} columns for {len(self.layers)} layers")

    def where(self, corpora: Sequence[str], classes: Sequence[str] | None = None) -> np.ndarray:
        """Row indices of ``corpora`` (and of ``classes`` when given)."""
        m = np.isin(self.corpus, list(corpora))
        if classes is not None:
            m &= np.isin(self.labels, list(classes))
        return np.flatnonzero(m)

    def classes_of(self, corpora: Sequence[str]) -> set[str]:
        return set(self.labels[np.isin(self.corpus, list(corpora))].tolist())


def _media(r: Record) -> str | None:
    return r.audio or r.video


def _quick_records(records: list[Record], per_class: int = 3) -> list[Record]:
    """A few utterances per class, from different speakers where possible."""
    out, seen = [], {}
    for r in sorted(records, key=lambda r: (r.label or "", str(r.speaker), r.id)):
        spk = seen.setdefault(r.label, set())
        if len(spk) < per_class and r.speaker not in spk:
            spk.add(r.speaker)
            out.append(r)
    return out


class WhisperParams(Params):
    """``features.params`` of the ``whisper`` feature (defaults: the feature's own)."""

    layers: list[int] = [3]
    pooling: Literal["mean", "std", "meanstd"] = "meanstd"
    padding: Literal["clip", "30s"] = "clip"
    #: ``vad``: leading and trailing non-speech cut off first
    #: (:func:`emofuse.features.speech.compute_feature`)
    trim: Literal["none", "vad"] = "none"
    #: ``rms``: then scaled to -23 dBFS (:func:`emofuse.features.speech.normalize_gain`)
    gain: Literal["none", "rms"] = "none"


def load_table(corpora: Sequence[str], *, feature: str, params: Mapping[str, Any],
               roots: Mapping[str, Path | None] | None = None, quick: bool = False,
               log: Callable[[str], None] | None = print
               ) -> tuple[Table, list[dict[str, str]]]:
    """Labelled records of ``corpora`` and their cached feature vectors (the audio track of a
    video). Returns the table and the skipped items (anomalies of the loaders that dropped a
    file, items whose feature failed)."""
    from ..features.cache import FeatureCache
    from ..features.speech import extract

    layers = None
    if feature == "whisper":   # checked before any file is read
        w = WhisperParams.of(params, where="features.params")
        if w.pooling != "meanstd":
            raise ConfigError("xcorpus: the whisper feature must use pooling 'meanstd'")
        layers = list(w.layers)
    cache = FeatureCache()
    rows, recs, skipped = [], [], []
    for c in corpora:
        root = (roots or {}).get(c)
        scan = load_corpus(c, root, check_media=False)
        skipped += [{"corpus": c, **a.to_dict()} for a in scan.anomalies if a.skipped]
        rs = [r for r in scan.records if r.label is not None and _media(r)]
        if quick:
            rs = _quick_records(rs)
        t0 = time.perf_counter()
        for r in rs:
            try:
                rows.append(np.asarray(extract(_media(r), feature, params=params, cache=cache),
                                       np.float32))
                recs.append(r)
            except EmofuseError as exc:
                skipped.append({"corpus": c, "id": r.id, "path": str(_media(r)),
                                "reason": str(exc)})
        if log:
            log(f"  {c}: {len(rs)} items, features in {time.perf_counter() - t0:.0f} s")
    table = Table(np.stack(rows) if rows else np.zeros((0, 0), np.float32),
                  [r.label for r in recs], [r.corpus for r in recs],
                  [r.speaker or r.id for r in recs], [r.id for r in recs], layers, recs)
    return table, skipped

def _ordered(labels: set[str] | Sequence[str]) -> list[str]:
    s = set(labels)
    return [c for c in CANONICAL if c in s] + sorted(s - set(CANONICAL))
