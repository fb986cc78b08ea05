"""Checks applied to each media file while scanning a corpus."""

from __future__ import annotations

import collections
import hashlib
from pathlib import Path

from ..errors import MediaError
from ._base import Anomaly


class AudioChecker:
    """Probes audio files during a scan, collecting anomalies, and flags odd sample rates.

    Call :meth:`check` per file (``True`` = keep it), then :meth:`finish` to add the
    sample-rate outliers (files whose rate differs from the corpus' majority rate).
    """

    def __init__(self, anomalies: list[Anomaly], *, decode: bool = True) -> None:
        self.anomalies = anomalies
        self.decode = decode
        self.rates: dict[str, int] = {}
        self.hashes: dict[str, str] = {}

    def check(self, path: Path) -> bool:
        from ..media.audio import probe_audio

        try:
            info = probe_audio(path, decode=self.decode)
        except MediaError as exc:
            self.anomalies.append(Anomaly(str(path), exc.problem, skipped=True))
            return False
        for q in info.quirks:
            self.anomalies.append(Anomaly(str(path), q, skipped=False))
        self.rates[str(path)] = info.samplerate
        self.hashes[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
        return True

    def content_hash(self, path: Path | str) -> str | None:
        """SHA-1 of the bytes of a file that passed :meth:`check` (for duplicate/leakage checks)."""
        return self.hashes.get(str(path))

    def finish(self) -> None:
        """Report sample-rate outliers and byte-identical files (all kept)."""
        first: dict[str, str] = {}
        for p, h in self.hashes.items():
            if h in first:
                self.anomalies.append(Anomaly(p, f"identical content to {first[h]}",
                                              skipped=False))
            else:
                first[h] = p
        if not self.rates:
            return
        majority, _ = collections.Counter(self.rates.values()).most_common(1)[0]
        for p, r in self.rates.items():
            if r != majority:
                self.anomalies.append(Anomaly(
                    p, f"sample rate {r} Hz differs from the corpus' usual {majority} Hz "
                       "(resampled on load)", skipped=False))
