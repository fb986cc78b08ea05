"""nEMO, Polish emotional speech (Christop 2024, amu-cai/nEMO).

Nine actors (four female, five male) read 90 Polish sentences in six emotions: 4,481 files
``samples/{SPK}_{emotion}_{n}`` (``EB0_anger_1.wav``), emotion one of anger, fear, happiness,
neutral, sadness, surprised. The original corpus ships 24 kHz WAV; re-encoded copies (FLAC,
Ogg Vorbis/Opus) are read alike, in any folder below the root. ``data.tsv`` (``file_id``,
``emotion``, ``raw_text``, ``normalized_text``, ``speaker_id``, ``gender``, ``age``; at the root
or anywhere below) gives each file's transcript and its speaker's gender and age; without it the
speakers' genders come from :data:`SPEAKERS` and transcripts are unknown (reported once).

Quirks of the real corpus, handled: ``speaker_id`` in ``data.tsv`` is padded with spaces;
``file_id`` names the ``.wav`` original whatever the copy's format (files and rows are matched
by base name); speaker MK0 has no ``surprised`` recordings and MP0 only 256 files, so the numbers
``n`` have gaps. A file whose name and row disagree on the emotion keeps the name's and is
reported; rows without a file are counted in one note. Native labels are the emotion words of
the names. Record ids are the file base names (``EB0_anger_1``; case and spaces normalised);
transcripts go to ``extra["transcript"]`` and ``extra["normalized_text"]`` (each sentence is
read in all six emotions, so the text says nothing of the emotion).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from ..labels import unify
from ._base import (Anomaly, Corpus, CorpusScan, Record, find_file, iter_files,
                    normalise_gender)
from ._media_check import scan_audio_files
from .ased import SPEECH_EXTS, clean_stem, note_identical_audio

EMOTIONS = ("anger", "fear", "happiness", "neutral", "sadness", "surprised")
#: Speaker -> gender, from the corpus' ``data.tsv`` (used when the table is absent).
SPEAKERS: dict[str, str] = {
    "EB0": "female", "IC0": "female", "KD0": "female", "MK0": "female",
    "KS0": "male", "MP0": "male", "SM0": "male", "TP0": "male", "WR0": "male",
}
METADATA = "data.tsv"
_NAME = re.compile(rf"^(?P<spk>[A-Za-z]+\d*)_(?P<emo>{'|'.join(EMOTIONS)})_(?P<num>\d+)$",
                   re.IGNORECASE)


def read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """``data.tsv`` as file base name -> emotion, speaker, gender, age, transcripts (values
    stripped: the real ``speaker_id`` column is padded with spaces)."""
    out: dict[str, dict[str, Any]] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if "file_id" not in [(k or "").strip() for k in reader.fieldnames or ()]:
            raise ValueError("no file_id column")
        for row in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()
                   if isinstance(v, str) or v is None}
            file_id = row.get("file_id", "")
            if not file_id:
                continue
            age = row.get("age", "")
            out[Path(file_id).stem] = {
                "emotion": row.get("emotion", "").lower() or None,
                "speaker": row.get("speaker_id") or None,
                "gender": normalise_gender(row.get("gender")),
                "age": int(age) if age.isdigit() else None,
                "transcript": row.get("raw_text") or None,
                "normalized_text": row.get("normalized_text") or None,
            }
    return out


def parse_nemo(path: Path, notes: list[Anomaly]) -> Record | str:
    """Record for one nEMO file from its name alone, or why the name cannot be read."""
    stem = clean_stem(path, notes)
    m = _NAME.match(stem)
    if not m:
        return ("name does not follow nEMO {speaker}_{emotion}_{n} with emotion one of "
                f"{', '.join(EMOTIONS)} (e.g. EB0_anger_1)")
    speaker, emo = m["spk"].upper(), m["emo"].lower()
    if speaker not in SPEAKERS:
        notes.append(Anomaly(str(path), f"speaker {speaker} is not one of nEMO's nine "
                                        f"({', '.join(SPEAKERS)})", skipped=False))
    if m["emo"] != emo:
        notes.append(Anomaly(str(path), f"emotion spelled {m['emo']!r} (read as {emo!r})",
                             skipped=False))
    return Record(id=f"{speaker}_{emo}_{m['num']}", corpus="nemo", label_native=emo,
                  label=unify("nemo", emo), speaker=speaker, gender=SPEAKERS.get(speaker),
                  extra={"number": int(m["num"])})


class Nemo(Corpus, name="nemo", modalities=("audio",), subdir="nemo",
           description="nEMO: Polish, 9 speakers, 6 emotions, 4481 acted utterances"):

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        anomalies: list[Anomaly] = []
        table, meta = self._metadata(root, anomalies)
        scan = scan_audio_files(self.name, root, iter_files(root, SPEECH_EXTS), parse_nemo,
                                check_media=check_media, anomalies=anomalies)
        if table is not None:
            self._join(scan, table, meta)
        note_identical_audio(scan)
        return scan

    @staticmethod
    def _metadata(root: Path, anomalies: list[Anomaly]
                  ) -> tuple[Path | None, dict[str, dict[str, Any]]]:
        """``data.tsv`` and its rows; ``(None, {})``, reported, when absent or unreadable."""
        path = find_file(root, METADATA)
        if path is None:
            anomalies.append(Anomaly(str(root), f"{METADATA} not found: transcripts and ages "
                                                "unknown", skipped=False))
            return None, {}
        try:
            return path, read_metadata(path)
        except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
            anomalies.append(Anomaly(str(path), f"cannot read {METADATA} ({exc}): transcripts "
                                                "and ages unknown", skipped=False))
            return None, {}

    @staticmethod
    def _join(scan: CorpusScan, table: Path, meta: dict[str, dict[str, Any]]) -> None:
        """Fill gender, age and transcripts from ``data.tsv``; report disagreements (kept)."""
        names = {k.lower(): k for k in meta}
        meta = {k.lower(): v for k, v in meta.items()}
        genders = {m["speaker"].upper(): m["gender"] for m in meta.values()
                   if m["speaker"] and m["gender"]}
        ages = {m["speaker"].upper(): m["age"] for m in meta.values()
                if m["speaker"] and m["age"] is not None}
        for speaker, gender in genders.items():
            if SPEAKERS.get(speaker, gender) != gender:
                scan.anomalies.append(Anomaly(
                    str(table), f"{METADATA} gives speaker {speaker} as {gender} (nEMO's "
                                f"documentation: {SPEAKERS[speaker]}); the table is kept",
                    skipped=False))
        missing = 0
        for rec in scan.records:
            row = meta.pop(rec.id.lower(), None)
            if row is None:
                missing += 1
            else:
                if row["emotion"] and row["emotion"] != rec.label_native:
                    scan.anomalies.append(Anomaly(
                        rec.audio, f"{METADATA} says {row['emotion']!r}, the file name "
                                   f"{rec.label_native!r}; the file name is kept",
                        skipped=False))
                if row["speaker"] and row["speaker"].upper() != rec.speaker:
                    scan.anomalies.append(Anomaly(
                        rec.audio, f"{METADATA} says speaker {row['speaker']}, the file name "
                                   f"{rec.speaker}; the file name is kept", skipped=False))
                for key in ("transcript", "normalized_text"):
                    if row[key]:
                        rec.extra[key] = row[key]
            rec.gender = genders.get(rec.speaker, rec.gender)
            if rec.speaker in ages:
                rec.extra["age"] = ages[rec.speaker]
        if missing:
            scan.anomalies.append(Anomaly(str(table), f"{missing} audio files have no row in "
                                                      f"{METADATA} (no transcript)",
                                          skipped=False))
        if meta:
            few = ", ".join(sorted(names[k] for k in meta)[:3])
            scan.anomalies.append(Anomaly(str(table), f"{len(meta)} rows of {METADATA} have no "
                                                      f"audio file (e.g. {few})", skipped=False))
