"""A synthetic set on disk: its files plus ``manifest.json`` (everything) and ``items.csv``
(one row per item), loadable back as :class:`~emofuse.corpora.Record`s for training folds.

Layout of a set folder::

    manifest.json   generator, modality, settings, seed, fitted_on (corpus, part, ids + sha256),
                    created, seconds, quality figures, items
    items.csv       id, label, generator, kind, seed, source_class, kept, score, text, path,
                    source_ids
    files/          generated media (images, audio) for generators that make files

Records made from a set carry ``split="train"`` and ``extra["synthetic"] = True``:
:func:`to_records` refuses a set whose ``fitted_on`` ids overlap ids it is told are test ids.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = ["SyntheticItem", "SyntheticSet", "write_set", "load_set", "to_records",
           "ids_digest", "MANIFEST", "ITEMS_CSV"]

MANIFEST = "manifest.json"
ITEMS_CSV = "items.csv"
_CSV_FIELDS = ("id", "label", "generator", "kind", "seed", "source_class", "kept", "score",
               "text", "path", "source_ids")


@dataclass
class SyntheticItem:
    """One generated item: ``text`` (text generators) or ``path`` (relative to the set folder).

    ``label`` is the intended (source) class; ``kind`` says how it was made (``generate``,
    ``paraphrase``, ``eda``...); ``source_ids`` are the real training items it was made from
    (few-shot examples or the paraphrased sentence); ``kept`` is the verdict of the filter
    (``None``: not filtered yet); ``score`` the filter's confidence for ``label``.
    """

    id: str
    label: str
    generator: str
    kind: str = "generate"
    seed: int = 0
    text: str | None = None
    path: str | None = None
    source_ids: list[str] = field(default_factory=list)
    kept: bool | None = None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the sorted ids (identifies the training part a generator was fitted on)."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()


@dataclass
class SyntheticSet:
    """A synthetic set and its provenance."""

    generator: str
    modality: str
    settings: dict[str, Any]
    seed: int
    fitted_on: dict[str, Any]
    items: list[SyntheticItem]
    created: str = ""
    seconds: float | None = None
    quality: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def fitted(corpus: str, part: str, ids: Sequence[str], **info: Any) -> dict[str, Any]:
        """A ``fitted_on`` entry: corpus, part (``train``, a fold name...), the ids and their
        digest."""
        ids = list(ids)
        return {"corpus": corpus, "part": part, "n": len(ids), "sha256": ids_digest(ids),
                "ids": ids, **info}

    def kept(self) -> list[SyntheticItem]:
        """Items the filter kept (all items when none was filtered)."""
        return [it for it in self.items if it.kept is not False]

    def counts(self, *, kept_only: bool = True) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in (self.kept() if kept_only else self.items):
            out[it.label] = out.get(it.label, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts(kept_only=False)
        d["counts_kept"] = self.counts()
        return d


def write_set(sset: SyntheticSet, out_dir: str | Path) -> Path:
    """Write ``manifest.json`` and ``items.csv`` into ``out_dir`` (atomically each); return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not sset.created:
        sset.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    _atomic(out / MANIFEST, json.dumps(sset.to_dict(), indent=1, ensure_ascii=False,
                                       default=str) + "\n")
    tmp = out / (ITEMS_CSV + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=_CSV_FIELDS)
        w.writeheader()
        for it in sset.items:
            w.writerow({"id": it.id, "label": it.label, "generator": it.generator,
                        "kind": it.kind, "seed": it.seed, "source_class": it.label,
                        "kept": "" if it.kept is None else int(it.kept),
                        "score": "" if it.score is None else f"{it.score:.4f}",
                        "text": it.text or "", "path": it.path or "",
                        "source_ids": " ".join(it.source_ids)})
    os.replace(tmp, out / ITEMS_CSV)
    return out


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_set(folder: str | Path) -> SyntheticSet:
    """Read a set written by :func:`write_set` (the manifest is the source of truth)."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "no synthetic set here (manifest.json missing)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read the manifest ({exc})") from None
    try:
        items = [SyntheticItem(**it) for it in d["items"]]
        return SyntheticSet(d["generator"], d["modality"], d["settings"], d["seed"],
                            d["fitted_on"], items, d.get("created", ""), d.get("seconds"),
                            d.get("quality") or {}, d.get("extra") or {})
    except (KeyError, TypeError) as exc:
        raise DataError(path, f"malformed manifest ({exc})") from None


def to_records(sset: SyntheticSet, *, folder: str | Path | None = None, corpus: str | None = None,
               kept_only: bool = True, test_ids: Iterable[str] = ()) -> list[Any]:
    """The set's items as training :class:`~emofuse.corpora.Record`s.

    ``label`` and ``label_native`` are the intended class; ``split`` is ``train``; media paths
    (``image``/``audio``/``video`` sets) are resolved against ``folder``; ``extra`` holds
    ``synthetic``, ``generator``, ``kind``, ``seed``, ``source_ids`` and, for a ``features``
    set, ``features_path`` (the item's ``.npy``; no media field). Raises :class:`DataError` when the set was fitted on (or made
    from) any of ``test_ids``.
    """
    from ..corpora import Record

    test = set(test_ids)
    if test:
        fitted = set(sset.fitted_on.get("ids") or ())
        sources = {s for it in sset.items for s in it.source_ids}
        bad = sorted((fitted | sources) & test)
        if bad:
            raise DataError(folder, f"synthetic set from {sset.generator} was fitted on "
                                    f"{len(bad)} test item(s), e.g. {bad[0]!r}")
    base = Path(folder) if folder else None
    recs = []
    for it in (sset.kept() if kept_only else sset.items):
        media: dict[str, str] = {}
        extra: dict[str, Any] = {}
        if it.path:
            p = str(base / it.path) if base else it.path
            if sset.modality in ("image", "audio", "video"):
                media[sset.modality] = p
            else:  # feature arrays (.npy) are not media a loader could decode
                extra["features_path"] = p
        recs.append(Record(id=it.id, corpus=corpus or sset.fitted_on.get("corpus", "synthetic"),
                           label_native=it.label, label=it.label, split="train", text=it.text,
                           extra={"synthetic": True, "generator": it.generator, "kind": it.kind,
                                  "seed": it.seed, "source_ids": list(it.source_ids),
                                  "group": f"synthetic:{it.generator}", **extra},
                           **media))
    return recs
