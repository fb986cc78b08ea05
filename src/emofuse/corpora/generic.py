"""Generic loaders for a user's own data.

``folder``
    One sub-folder per class: ``root/<label>/<file>`` (deeper folders are fine, the first level
    names the class). Any modality by extension: audio (.wav .flac .mp3 .ogg), image (.png .jpg
    .jpeg .bmp ...), video (.mp4 .avi .flv .webm ...) and ``.txt`` (one text per file). Files of
    different modalities with the same name in the same folder (``clip1.wav`` + ``clip1.txt``)
    become one record. The native label is the folder name; the canonical label is
    :func:`~emofuse.labels.normalise_label` of it, or the lower-cased folder name when the spelling
    is unknown (reported once as a kept anomaly). Speakers only on request: option
    ``speaker_regex`` (a regular expression searched in the path below the class folder, group
    ``speaker`` or group 1; the shorthand ``"prefix"`` takes the ``<speaker>_`` file-name prefix).

    Flat folders: option ``label_regex``, a regular expression with a named group ``label``
    (and optionally ``speaker``) searched in each file's name (with its extension, then
    without), e.g. ``^(?P<speaker>[A-Z]+)_(?P<label>[a-z]+)\\d+`` for ``DC_happy03.wav``; or the
    name of a preset (:data:`LABEL_PRESETS`: ``ravdess``, ``cremad``, ``savee``, ``emodb``,
    ``tess``, ``speaker_label``), whose codes are mapped to labels. Folders are then ignored
    for the label (files may lie anywhere below the root); a file whose name does not match
    is skipped and reported.

``manifest``
    A CSV or TSV with a header: ``path`` (relative to the manifest's folder, or absolute) and/or
    ``text``, ``label``, optional ``speaker``, ``split``, ``gender`` and ``id``; ``audio``,
    ``video``, ``image`` columns may name one file each for multimodal rows. Every other column
    goes into ``extra``. ``root`` is the manifest itself or a folder holding ``manifest.csv`` (or
    ``manifest.tsv``). Missing files, empty labels and malformed rows become anomalies naming the
    row (the header is row 1).

Both loaders take ``only_ids`` (keep only these record ids: one fold's training part) and
``group_by``: ``"speaker"`` (default: records are grouped by speaker when splitting) or
``"item"`` (each item is its own group: a within-speaker, speaker-dependent split, for a
corpus with one speaker; the speaker stays on the record). ``manifest`` also takes
``use_split`` (default true; false ignores the ``split`` column).

Media files are checked with :class:`~emofuse.corpora._media_check.MediaChecks`.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..labels import normalise_label
from ._base import (AUDIO_EXTS, IMAGE_EXTS, TEXT_EXTS, VIDEO_EXTS, Anomaly, Corpus, CorpusScan,
                    Record, iter_files, modality_of, normalise_gender)
from ._media_check import MediaChecks

# Lived here before; still importable from this module for existing callers.

__all__ = ["Folder", "Manifest", "LABEL_PRESETS", "compile_label_regex", "describe_presets"]


def _user_label(native: str, where: str, anomalies: list[Anomaly], reported: set[str]) -> str:
    """Canonical label of a user's spelling; unknown spellings stay lower-cased, reported once."""
    canon = normalise_label(native)
    if canon is not None:
        return canon
    label = native.strip().lower()
    if label not in reported:
        reported.add(label)
        anomalies.append(Anomaly(where, f"label {native!r} is not a known emotion spelling; "
                                        f"kept as its own class {label!r}", skipped=False))
    return label


def _reject_options(name: str, unknown: dict[str, Any], known: str) -> None:
    if unknown:
        raise ConfigError(f"{name}: unknown option(s) {', '.join(sorted(unknown))}; "
                          f"known: {known}")


_SPEAKER_PREFIX = r"(?:^|/)(?P<speaker>[^/_]+)_[^/]*$"

#: Well-known file-naming schemes for ``label_regex``: name -> (pattern, code -> label). The
#: codes map to canonical labels; the native label of a record is the code in the name.
LABEL_PRESETS: dict[str, tuple[str, dict[str, str]]] = {
    "ravdess": (r"^\d\d-\d\d-(?P<label>0[1-8])-\d\d-\d\d-\d\d-(?P<speaker>\d\d)\.",
                {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                 "06": "fear", "07": "disgust", "08": "surprise"}),
    "cremad": (r"^(?P<speaker>\d{4})_[A-Z]{3}_(?P<label>ANG|DIS|FEA|HAP|NEU|SAD)_",
               {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy",
                "NEU": "neutral", "SAD": "sad"}),
    "savee": (r"^(?P<speaker>[A-Z]{2})_(?P<label>sa|su|[adfhn])\d",
              {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral",
               "sa": "sad", "su": "surprise"}),
    "emodb": (r"^(?P<speaker>\d\d)[a-z]\d\d(?P<label>[WLEAFTN])[a-z]?\.",
              {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy",
               "T": "sad", "N": "neutral"}),
    "tess": (r"^(?P<speaker>OAF|YAF)_.+_(?P<label>angry|disgust|fear|happy|neutral|ps|sad)$",
             {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
              "neutral": "neutral", "ps": "surprise", "sad": "sad"}),
    "speaker_label": (r"^(?P<speaker>[A-Za-z0-9]+)[_-](?P<label>[A-Za-z]+)", {}),
}
_PRESET_HELP = {
    "ravdess": "03-01-05-01-02-01-12.wav (emotion code 3rd, actor last)",
    "cremad": "1001_DFA_ANG_XX.wav",
    "savee": "DC_sa03.wav",
    "emodb": "03a01Wa.wav",
    "tess": "OAF_back_angry.wav",
    "speaker_label": "anna_happy_03.wav or DC-angry2.png",
}
_GROUP_BY = ("speaker", "item")


def compile_label_regex(label_regex: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """The compiled pattern and code map of a ``label_regex`` (a preset name or a regular
    expression with a named group ``label``).

    Raises
    ------
    ConfigError
        When the expression does not compile or lacks the group ``label``.
    """
    preset = LABEL_PRESETS.get(label_regex.strip().lower().replace("-", "_"))
    pattern, codes = preset if preset else (label_regex, {})
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"label_regex {label_regex!r} is not a valid regular expression "
                          f"({exc}); or use a preset: {', '.join(LABEL_PRESETS)}") from None
    if "label" not in rx.groupindex:
        raise ConfigError(f"label_regex {label_regex!r} has no named group 'label', e.g. "
                          r"'^(?P<speaker>[A-Z]+)_(?P<label>[a-z]+)\d+'; or use a preset: "
                          + ", ".join(LABEL_PRESETS))
    return rx, codes


def describe_presets() -> str:
    """One line per ``label_regex`` preset: name, example file name."""
    return "; ".join(f"{k} ({v})" for k, v in _PRESET_HELP.items())


def _check_common(name: str, only_ids: Any, group_by: str) -> set[str] | None:
    if group_by not in _GROUP_BY:
        raise ConfigError(f"{name}: group_by must be one of {', '.join(_GROUP_BY)}, "
                          f"not {group_by!r}")
    if only_ids is None:
        return None
    if isinstance(only_ids, str) or not all(isinstance(i, str) for i in only_ids):
        raise ConfigError(f"{name}: only_ids must be a list of record ids")
    return set(only_ids)


def _regroup(records: list[Record], group_by: str) -> list[Record]:
    """``group_by: item``: every record its own group (a within-speaker split)."""
    if group_by == "item":
        for r in records:
            r.extra["group"] = f"item:{r.id}"
    return records


class Folder(Corpus, name="folder", modalities=("audio", "video", "image", "text"),
             description="your own data: root/<label>/<file>, or file names matched by "
                         "label_regex; audio, video, image or .txt"):
    """One sub-folder per class (or labels from file names), any modality by extension."""

    def __init__(self, *, speaker_regex: str | None = None, label_regex: str | None = None,
                 only_ids: list[str] | None = None, group_by: str = "speaker",
                 **unknown: Any) -> None:
        _reject_options(self.name, unknown,
                        "speaker_regex, label_regex, only_ids, group_by")
        super().__init__(speaker_regex=speaker_regex, label_regex=label_regex,
                         only_ids=only_ids, group_by=group_by)
        pattern = _SPEAKER_PREFIX if speaker_regex == "prefix" else speaker_regex
        try:
            self._speaker = re.compile(pattern) if pattern else None
        except re.error as exc:
            raise ConfigError(f"folder: speaker_regex {speaker_regex!r} is not a valid "
                              f"regular expression ({exc})") from None
        self._label_regex = label_regex
        self._label: re.Pattern[str] | None = None
        self._codes: dict[str, str] = {}
        if label_regex:
            try:
                self._label, self._codes = compile_label_regex(label_regex)
            except ConfigError as exc:
                raise ConfigError(f"folder: {exc}") from None
        self._only = _check_common(self.name, only_ids, group_by)
        self._group_by = group_by

    def _speaker_of(self, rel: str) -> str | None:
        m = self._speaker.search(rel) if self._speaker else None
        if not m:
            return None
        return m.groupdict().get("speaker") or (m.group(1) if m.re.groups else m.group(0))

    def _match(self, path: Path) -> re.Match[str] | None:
        assert self._label is not None
        return self._label.search(path.name) or self._label.search(path.stem)

    def _label_of(self, native: str, where: str, anomalies: list[Anomaly],
                  reported: set[str]) -> str:
        if native in self._codes:
            return self._codes[native]
        return _user_label(native, where, anomalies, reported)

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        anomalies: list[Anomaly] = []
        checks = MediaChecks(anomalies, decode=check_media)
        records: dict[str, Record] = {}
        reported: set[str] = set()
        no_speaker = 0
        exts = AUDIO_EXTS + VIDEO_EXTS + IMAGE_EXTS + TEXT_EXTS
        if not root.is_dir():
            raise DataError(root, "not a folder (give a folder, or a CSV/TSV manifest as the "
                                  "manifest corpus)")
        for path in iter_files(root, exts):
            rel = path.relative_to(root)
            match = None
            if self._label is not None:
                match = self._match(path)
                if match is None or not match.group("label"):
                    anomalies.append(Anomaly(str(path), "file name does not match label_regex "
                                                        f"'{self._label_regex}'"))
                    continue
            elif len(rel.parts) < 2:
                anomalies.append(Anomaly(str(path), "lies directly in the root: put it in a "
                                                    "sub-folder named after its class, or "
                                                    "give a label_regex for file names"))
                continue
            modality = modality_of(path)
            key = rel.with_suffix("").as_posix()
            if self._only is not None and key not in self._only:
                continue
            rec = records.get(key)
            if rec is not None and getattr(rec, modality) is not None:
                anomalies.append(Anomaly(str(path), f"second {modality} file for item {key}"))
                continue
            content = checks.load(path, modality)
            if content is None:
                continue
            if rec is None:
                if match is not None:
                    native = match.group("label")
                    label = self._label_of(native, str(path), anomalies, reported)
                    speaker = match.groupdict().get("speaker") or None
                    if speaker is None and self._speaker is not None:
                        speaker = self._speaker_of(key)
                else:
                    native = rel.parts[0]
                    label = self._label_of(native, str(root / native), anomalies, reported)
                    speaker = self._speaker_of(Path(*rel.parts[1:]).with_suffix("").as_posix())
                if self._speaker is not None and speaker is None:
                    no_speaker += 1
                rec = records[key] = Record(id=key, corpus=self.name, label_native=native,
                                            label=label, speaker=speaker)
            setattr(rec, modality, content)
            if modality == "text":
                rec.extra["text_file"] = str(path)
        checks.finish()
        if no_speaker:
            anomalies.append(Anomaly(str(root), f"speaker_regex found no speaker in {no_speaker} "
                                                "item(s); their speaker is left empty",
                                     skipped=False))
        return CorpusScan(self.name, str(root), _regroup(list(records.values()), self._group_by),
                          anomalies)


_MEDIA_COLUMNS = ("path", "audio", "video", "image")
_KNOWN_COLUMNS = {"id", "label", "text", "speaker", "split", "gender", *_MEDIA_COLUMNS}


def _manifest_path(root: Path) -> Path:
    if root.is_file():
        return root
    for name in ("manifest.csv", "manifest.tsv"):
        if (root / name).is_file():
            return root / name
    raise DataError(root, "no manifest: pass a CSV/TSV file or a folder holding manifest.csv")


def _read_table(path: Path,
                anomalies: list[Anomaly]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (lower-cased) and ``(row number, fields)`` of a CSV/TSV; the header is row 1."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        text = raw.decode("latin-1")
        anomalies.append(Anomaly(str(path), f"not UTF-8 ({exc.reason} at byte {exc.start}); "
                                            "read as Latin-1", skipped=False))
    first = text.split("\n", 1)[0]
    delim = "\t" if path.suffix.lower() == ".tsv" or "\t" in first else ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delim))
    if not rows:
        raise DataError(path, "manifest is empty")
    header = [h.strip().lower() for h in rows[0]]
    # numbered like the file's lines (exact unless a quoted field spans lines); blank lines skipped
    numbered = enumerate(rows[1:], start=2)
    return header, [(n, r) for n, r in numbered if any(f.strip() for f in r)]


class Manifest(Corpus, name="manifest", modalities=("audio", "video", "image", "text"),
               description="your own data: a CSV/TSV with path or text, label, speaker, "
                           "split, gender"):
    """A CSV/TSV listing files or texts with their labels."""

    def __init__(self, *, only_ids: list[str] | None = None, group_by: str = "speaker",
                 use_split: bool = True, **unknown: Any) -> None:
        _reject_options(self.name, unknown, "only_ids, group_by, use_split")
        super().__init__(only_ids=only_ids, group_by=group_by, use_split=use_split)
        self._only = _check_common(self.name, only_ids, group_by)
        self._group_by = group_by
        self._use_split = bool(use_split)

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        table = _manifest_path(Path(root))
        anomalies: list[Anomaly] = []
        header, rows = _read_table(table, anomalies)
        if "label" not in header:
            raise DataError(table, f"no 'label' column (columns: {', '.join(header)})")
        if not any(c in header for c in ("text", *_MEDIA_COLUMNS)):
            raise DataError(table, "needs a 'path' or 'text' column (or audio/video/image)")
        checks = MediaChecks(anomalies, decode=check_media)
        records: dict[str, Record] = {}
        reported: set[str] = set()
        for n, fields in rows:
            rec = self._row(table, header, n, fields, checks, anomalies, reported)
            if rec is None:
                continue
            if rec.id in records:
                anomalies.append(Anomaly(str(table), f"row {n}: id {rec.id!r} repeats an "
                                                     "earlier row; first kept"))
                continue
            if not self._use_split:
                rec.split = None
            records[rec.id] = rec
        checks.finish()
        recs = [r for r in records.values() if self._only is None or r.id in self._only]
        return CorpusScan(self.name, str(table), _regroup(recs, self._group_by), anomalies)

    def _row(self, table: Path, header: list[str], n: int, fields: list[str],
             checks: MediaChecks, anomalies: list[Anomaly], reported: set[str]) -> Record | None:
        def bad(reason: str) -> None:
            anomalies.append(Anomaly(str(table), f"row {n}: {reason}"))

        if len(fields) != len(header):
            return bad(f"{len(fields)} fields where the header has {len(header)}")
        row = {h: f.strip() for h, f in zip(header, fields)}
        native = row.get("label", "")
        if not native:
            return bad("empty label")
        media: dict[str, str] = {}
        for col in _MEDIA_COLUMNS:
            if not row.get(col):
                continue
            path = Path(row[col])
            path = path if path.is_absolute() else table.parent / path
            modality = modality_of(path) if col == "path" else col
            if modality is None or (col != "path" and modality_of(path) not in (col, None)):
                return bad(f"{col} {row[col]!r}: extension {path.suffix or '(none)'} is not a "
                           f"known {'media' if col == 'path' else col} type")
            if not path.is_file():
                return bad(f"{col} {row[col]!r}: file does not exist ({path})")
            mark = len(anomalies)
            content = checks.load(path, modality)
            for i in range(mark, len(anomalies)):  # name the row in the media check's report
                a = anomalies[i]
                anomalies[i] = Anomaly(a.path, f"row {n}: {a.reason}", a.skipped)
            if content is None:
                return None
            if modality in media or (modality == "text" and row.get("text")):
                return bad(f"two {modality} entries")
            media[modality] = content
        if row.get("text"):
            media["text"] = row["text"]
        if not media:
            return bad("neither a file nor a text")
        first = next((row[c] for c in _MEDIA_COLUMNS if row.get(c)), None)
        rid = row.get("id") or (Path(first).with_suffix("").as_posix() if first else f"row{n}")
        extra = {k: v for k, v in row.items() if k not in _KNOWN_COLUMNS and k and v != ""}
        return Record(id=rid, corpus=self.name, label_native=native,
                      label=_user_label(native, str(table), anomalies, reported),
                      speaker=row.get("speaker") or None,
                      gender=normalise_gender(row.get("gender")),
                      split=(row.get("split") or "").lower() or None, extra=extra, **media)
