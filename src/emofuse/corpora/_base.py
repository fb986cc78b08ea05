"""Uniform records, anomaly reports and the corpus registry shared by every loader."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._plugins import Registry
from ..errors import DataError

__all__ = ["Record", "Anomaly", "CorpusScan", "Corpus", "register", "get_corpus",
           "list_corpora", "iter_files", "find_file", "read_bytes", "modality_of",
           "normalise_gender", "AUDIO_EXTS", "VIDEO_EXTS", "IMAGE_EXTS", "TEXT_EXTS"]

AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg")
VIDEO_EXTS = (".mp4", ".flv", ".avi", ".webm", ".mkv", ".mov")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TEXT_EXTS = (".txt",)
_MODALITY_EXTS = (("audio", AUDIO_EXTS), ("video", VIDEO_EXTS), ("image", IMAGE_EXTS),
                  ("text", TEXT_EXTS))
_GENDERS = {"m": "male", "male": "male", "man": "male", "f": "female", "female": "female",
            "woman": "female"}


@dataclass
class Record:
    """One item of a corpus: an utterance, a clip, an image or a sentence.

    ``audio``/``video``/``image``/``au`` are file paths (``au``: a table whose row ``au_id`` in
    ``extra`` belongs to this item); ``text`` is the text itself. ``label`` is the canonical label
    (see :mod:`emofuse.labels`), ``label_native`` the corpus' own. Multi-label corpora put the
    full label list in ``extra["labels"]``. ``extra["group"]`` (e.g. IEMOCAP's session) and
    ``extra["dialogue"]`` (MELD, IEMOCAP) feed :attr:`group`.
    """

    id: str
    corpus: str
    label_native: str | None
    label: str | None
    speaker: str | None = None
    gender: str | None = None
    split: str | None = None
    audio: str | None = None
    video: str | None = None
    image: str | None = None
    text: str | None = None
    au: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str | None:
        """The unit that must not cross a split: ``extra["group"]`` where set, else
        ``extra["dialogue"]``, else the speaker."""
        return self.extra.get("group") or self.extra.get("dialogue") or self.speaker

    def modalities(self) -> list[str]:
        """Modalities present on this record."""
        return [m for m in ("audio", "video", "image", "text", "au") if getattr(self, m)]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extra"] = {k: v for k, v in self.extra.items() if _jsonable(v)}
        return d


def _jsonable(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool, type(None), list, tuple, dict))


@dataclass(frozen=True)
class Anomaly:
    """Something odd about one file. ``skipped`` says whether the file was left out."""

    path: str
    reason: str
    skipped: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "skipped": self.skipped}


@dataclass
class CorpusScan:
    """Result of loading a corpus: the good records and every anomaly met on the way."""

    corpus: str
    root: str
    records: list[Record]
    anomalies: list[Anomaly] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def require_items(self) -> CorpusScan:
        """``self``; :class:`DataError` naming the root when no item was found (a wrong
        folder, or one whose files all failed)."""
        if not self.records:
            skipped = sum(a.skipped for a in self.anomalies)
            raise DataError(self.root, f"no {self.corpus} item found"
                            + (f" ({skipped} file(s) skipped as bad or misnamed)" if skipped
                               else "")
                            + "; is this the corpus' folder, laid out as its documentation "
                              "says?")
        return self

    def summary(self) -> dict[str, Any]:
        """Counts per class (native labels), speaker and split, plus anomalies, JSON-ready."""
        classes: collections.Counter[str] = collections.Counter()
        for r in self.records:
            labels = r.extra.get("labels") if r.label_native is None else None
            if labels:
                classes.update(labels)
            elif r.label_native is not None:
                classes[r.label_native] += 1
        speakers = collections.Counter(r.speaker for r in self.records if r.speaker is not None)
        splits = collections.Counter(r.split for r in self.records if r.split is not None)
        out: dict[str, Any] = {
            "corpus": self.corpus,
            "root": self.root,
            "items": len(self.records),
            "classes": dict(sorted(classes.items())),
            "anomalies": [a.to_dict() for a in self.anomalies],
        }
        if speakers:
            out["speakers"] = len(speakers)
            out["per_speaker"] = dict(sorted(speakers.items()))
        if splits:
            out["splits"] = dict(splits)
        mods = collections.Counter(m for r in self.records for m in r.modalities())
        out["modalities"] = dict(mods)
        return out


class Corpus:
    """Base of every corpus loader.

    A loader is declared in its class statement, which also registers it::

        class Savee(AudioFilesCorpus, name="savee", modalities=("audio",), subdir="savee",
                    description="SAVEE: 4 male speakers, 480 utterances, 7 emotions"):
            parse = staticmethod(parse_savee)

    A subclass without ``name`` (a base such as :class:`AudioFilesCorpus`) is not registered.
    Loaders implement :meth:`scan`, which must never raise for a single bad file: it records an
    :class:`Anomaly` and goes on.
    """

    name: str = ""
    modalities: tuple[str, ...] = ()
    description: str = ""
    #: Sub-folder of the shared data root where this corpus lives by default.
    default_subdir: str = ""

    def __init_subclass__(cls, *, name: str | None = None, modalities: Iterable[str] = (),
                          description: str = "", subdir: str = "", **kw: Any) -> None:
        """With ``name``: set ``name``, ``modalities``, ``description`` and ``default_subdir``
        (from ``subdir``) and register the class under ``name``."""
        super().__init_subclass__(**kw)
        if name is None:
            return
        cls.name, cls.modalities = name, tuple(modalities)
        cls.description, cls.default_subdir = description, subdir
        register(cls)

    def __init__(self, **options: Any) -> None:
        self.options = options

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:  # pragma: no cover
        raise NotImplementedError

    def load(self, root: str | Path | None = None, *, check_media: bool = True) -> CorpusScan:
        """Scan ``root`` (default: the corpus' folder under :func:`emofuse.paths.data_root`)."""
        from ..paths import data_root

        root = Path(root) if root is not None else data_root() / self.default_subdir
        if not root.exists():
            raise DataError(root, f"{self.name} root folder does not exist")
        return self.scan(root, check_media=check_media)


#: corpus name -> loader class
_REGISTRY: Registry[type[Corpus]] = Registry("corpus")


def register(cls: type[Corpus]) -> type[Corpus]:
    """Class decorator adding a loader to the registry under ``cls.name`` (the older form of
    ``class X(Corpus, name=...)``, kept for plugins)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    return _REGISTRY.register(cls.name, cls)


def get_corpus(name: str, **options: Any) -> Corpus:
    """Loader instance for ``name`` (see :func:`list_corpora`)."""
    from . import _ensure_loaded

    _ensure_loaded()
    key = name.lower().replace("-", "").replace("_", "").replace("+", "plus")
    aliases = {"crema": "cremad", "ck": "ckplus", "dairemotion": "dair", "dairai": "dair",
               "fer": "fer2013", "emodb": "emodb", "berlin": "emodb"}
    key = aliases.get(key, key)
    for n, cls in _REGISTRY.items():
        if n.replace("_", "") == key:
            return cls(**options)
    raise DataError(None, f"unknown corpus {name!r}; known: {', '.join(list_corpora())}")


def list_corpora() -> list[str]:
    from . import _ensure_loaded

    _ensure_loaded()
    return sorted(_REGISTRY)


def iter_files(root: Path, exts: Iterable[str]) -> list[Path]:
    """Files under ``root`` whose suffix (lower-cased) is in ``exts``, sorted, hidden skipped."""
    exts = tuple(e.lower() for e in exts)
    out = [p for p in root.rglob("*")
           if p.suffix.lower() in exts and not any(part.startswith(".") for part in
                                                    p.relative_to(root).parts)]
    return sorted(p for p in out if p.is_file())


def find_file(root: Path, name: str, subdirs: Iterable[str] = ()) -> Path | None:
    """``root/<subdir>/name`` for the first subdir that has it (``""`` = root), else the
    shallowest match anywhere below ``root``; ``None`` when absent."""
    for sub in ("", *subdirs):
        cand = root / sub / name
        if cand.is_file():
            return cand
    found = sorted(root.rglob(name), key=lambda p: (len(p.parts), str(p)))
    return next((p for p in found if p.is_file()), None)


def read_bytes(path: Path, anomalies: list[Anomaly]) -> bytes | None:
    """The content of ``path``; ``None`` after reporting an unreadable file (skipped)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        anomalies.append(Anomaly(str(path), f"cannot read file ({exc.strerror})"))
        return None


def modality_of(path: str | Path) -> str | None:
    """``"audio"``, ``"video"``, ``"image"`` or ``"text"`` from the extension (any case)."""
    ext = Path(path).suffix.lower()
    return next((m for m, exts in _MODALITY_EXTS if ext in exts), None)


def normalise_gender(value: str | None) -> str | None:
    """``"M"``, ``"Male"``, ``"f"`` ... -> ``"male"``/``"female"``; other values lower-cased."""
    if value is None or not value.strip():
        return None
    v = value.strip().lower()
    return _GENDERS.get(v, v)

