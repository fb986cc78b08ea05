"""Checks of media files during a scan, and the scan loop of the one-file-per-utterance corpora.

:class:`AudioChecker` probes audio files and flags sample-rate outliers and byte-identical
files (RAVDESS uses it directly); :class:`MediaChecks` checks audio (one :class:`AudioChecker`
per format), video, images and text files (CREMA-D, ``folder``, ``manifest``);
:func:`scan_audio_files` is the shared loop of the SAVEE, TESS, EmoDB, ASED, nEMO, URDU and
IEMOCAP loaders; :class:`AudioFilesCorpus` is the whole loader of a corpus whose file names say
everything (a parser, the extensions, an optional last pass).
Every problem becomes an :class:`~emofuse.corpora.Anomaly`, never an exception.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from ..errors import MediaError
from ._base import AUDIO_EXTS, Anomaly, Corpus, CorpusScan, Record, iter_files
from ._image import SNIFF_BYTES, content_hash, looks_like_text

__all__ = ["AudioChecker", "MediaChecks", "AudioParser", "AudioFilesCorpus", "scan_audio_files"]

#: Parses one audio file into a record (``audio`` still unset) or says why it cannot.
#: Kept oddities go into the list passed as second argument.
AudioParser = Callable[[Path, list[Anomaly]], "Record | str"]


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
        self.hashes[str(path)] = content_hash(path.read_bytes())
        return True

    def content_hash(self, path: Path | str) -> str | None:
        """:func:`~emofuse.corpora._image.content_hash` of a file that passed :meth:`check`
        (for duplicate/leakage checks)."""
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


def _video_problem(path: Path) -> str | None:
    import av

    with av.open(str(path)) as c:
        has_video = any(s.type == "video" for s in c.streams)
    return None if has_video else "no video stream in the file"


def _image_problem(path: Path) -> str | None:
    from PIL import Image

    with Image.open(path) as im:
        im.verify()
    return None


class MediaChecks:
    """Checks media files during a scan, appending an :class:`Anomaly` for each problem.

    Audio goes through one :class:`AudioChecker` per format, so that a corpus shipping 16 kHz
    WAV beside 44.1 kHz MP3 is not flagged; video is opened with PyAV, images with Pillow.
    With ``decode=False`` only cheap checks run (headers, empty files, text in disguise).
    """

    def __init__(self, anomalies: list[Anomaly], *, decode: bool = True) -> None:
        self.anomalies = anomalies
        self.decode = decode
        self._audio: dict[str, AudioChecker] = {}

    def _bad(self, path: Path, reason: str) -> bool:
        self.anomalies.append(Anomaly(str(path), reason, skipped=True))
        return False

    def audio(self, path: Path) -> bool:
        """``True`` when ``path`` decodes as audio (quirks are reported, the file kept)."""
        ext = path.suffix.lower()
        checker = self._audio.setdefault(ext, AudioChecker(self.anomalies, decode=self.decode))
        return checker.check(path)

    def _nonempty(self, path: Path, kind: str) -> bool:
        if path.stat().st_size == 0:
            return self._bad(path, "file is empty (0 bytes)")
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
        if looks_like_text(head):
            return self._bad(path, f"not {kind}: the file holds text")
        return True

    def _decodes(self, path: Path, kind: str, problem: Callable[[Path], str | None],
                 failure: str) -> bool:
        """Cheap checks, then (with ``decode``) ``problem``: what is wrong, or an exception."""
        if not self._nonempty(path, kind):
            return False
        if not self.decode:
            return True
        try:
            reason = problem(path)
        except Exception as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            reason = f"{failure} ({first})"
        return self._bad(path, reason) if reason else True

    def video(self, path: Path) -> bool:
        """``True`` when ``path`` is a container with a video stream (opened with PyAV)."""
        return self._decodes(path, "video", _video_problem, "cannot open video")

    def image(self, path: Path) -> bool:
        """``True`` when Pillow can read ``path``."""
        return self._decodes(path, "an image", _image_problem, "cannot decode image")

    def text(self, path: Path) -> str | None:
        """The stripped UTF-8 content of a text file, or ``None`` (reported) when unusable."""
        try:
            content = path.read_text(encoding="utf-8-sig").strip()
        except UnicodeDecodeError as exc:
            self._bad(path, f"text is not UTF-8 ({exc.reason} at byte {exc.start})")
            return None
        if not content:
            self._bad(path, "text file is empty")
            return None
        return content

    def load(self, path: Path, modality: str) -> str | None:
        """What a record stores for ``path``: the text itself, or the path of good media."""
        if modality == "text":
            return self.text(path)
        ok = {"audio": self.audio, "video": self.video, "image": self.image}[modality](path)
        return str(path) if ok else None

    def finish(self) -> None:
        """Report sample-rate outliers and identical files, per audio format."""
        for checker in self._audio.values():
            checker.finish()


def scan_audio_files(corpus: str, root: Path, files: Iterable[Path], parse: AudioParser, *,
                     check_media: bool = True,
                     anomalies: list[Anomaly] | None = None) -> CorpusScan:
    """Shared scan loop of the one-file-per-utterance speech corpora.

    Each file is parsed (name -> record or reason), skipped when an earlier good file gave the
    same id (a duplicate copy), else its audio is checked. Kept oddities reported by
    ``parse`` are added once each; every skipped file becomes an :class:`Anomaly`.
    """
    anomalies = [] if anomalies is None else anomalies
    checks = MediaChecks(anomalies, decode=check_media)
    records: dict[str, Record] = {}
    seen: set[Anomaly] = set(anomalies)
    for path in files:
        notes: list[Anomaly] = []
        rec = parse(path, notes)
        if isinstance(rec, str):
            anomalies.append(Anomaly(str(path), rec))
            continue
        if rec.id in records:
            anomalies.append(Anomaly(str(path), f"duplicate of {records[rec.id].audio} "
                                                f"(same id {rec.id}); first copy kept"))
            continue
        if not checks.audio(path):
            continue
        for note in notes:
            if note not in seen:
                seen.add(note)
                anomalies.append(note)
        rec.audio = str(path)
        records[rec.id] = rec
    checks.finish()
    return CorpusScan(corpus, str(root), list(records.values()), anomalies)


class AudioFilesCorpus(Corpus):
    """A corpus of one audio file per utterance whose names say everything: set ``parse``
    (an :data:`AudioParser`, as a ``staticmethod``) and ``exts``; :meth:`finish` may add a
    last pass over the scan (e.g. flag identical audio)."""

    parse: ClassVar[AudioParser]
    exts: ClassVar[tuple[str, ...]] = AUDIO_EXTS

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        scan = scan_audio_files(self.name, root, iter_files(root, self.exts), type(self).parse,
                                check_media=check_media)
        self.finish(scan)
        return scan

    def finish(self, scan: CorpusScan) -> None:
        """Last pass over a finished scan (default: nothing)."""
