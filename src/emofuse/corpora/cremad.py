"""CREMA-D, the Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al. 2014).

91 actors (48 male, 43 female, ids 1001-1091) say 12 sentences in six emotions: 7442 clips, each
as ``AudioWAV/*.wav`` (16 kHz), ``AudioMP3/*.mp3`` (44.1 kHz) and ``VideoFlash/*.flv``. File
names ``ActorID_Sentence_Emotion_Level`` (``1001_DFA_ANG_XX``): sentence code (IEO, TIE, IOM,
IWW, TAI, MTI, IWL, ITH, DFA, ITS, TSI, WSI; texts in :data:`SENTENCES`), emotion (ANG DIS FEA
HAP NEU SAD), level (LO, MD, HI, XX unspecified). Any folder layout is accepted; the files of one
clip become one record, with the WAV preferred over the MP3 as ``audio`` (the other kept in
``extra["audio_mp3"]``) and the FLV as ``video``. Gender and age come from
``VideoDemographics.csv`` (at the root, in ``metadata/`` or anywhere below); the stimulus
number from ``SentenceFilenames.csv`` when present. A few original files are empty or cut
short (e.g. ``1076_MTI_SAD_XX.wav`` in some copies): like any bad file they are reported and
left out, and the clip keeps its other files.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..labels import unify
from ._base import (AUDIO_EXTS, VIDEO_EXTS, Anomaly, Corpus, CorpusScan, Record, find_file,
                    iter_files, modality_of, normalise_gender)
from ._media_check import MediaChecks

SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
_NAME = re.compile(rf"^(?P<actor>\d{{4}})_(?P<sent>{'|'.join(SENTENCES)})_"
                   r"(?P<emo>ANG|DIS|FEA|HAP|NEU|SAD)_(?P<level>LO|MD|HI|XX)$")
_AUDIO_ORDER = (".wav", ".flac", ".ogg", ".mp3")
_META_DIRS = ("metadata", "processedResults", "metadata/processedResults")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()}
                for row in csv.DictReader(f)]


def read_demographics(path: Path) -> dict[str, dict[str, Any]]:
    """``VideoDemographics.csv`` as ActorID -> gender, age, race, ethnicity."""
    out: dict[str, dict[str, Any]] = {}
    for row in _read_csv(path):
        actor = row.get("ActorID", "")
        if actor:
            age = row.get("Age", "")
            out[actor] = {"gender": normalise_gender(row.get("Sex")),
                          "age": int(age) if age.isdigit() else None,
                          "race": row.get("Race") or None,
                          "ethnicity": row.get("Ethnicity") or None}
    return out


def read_stimuli(path: Path) -> dict[str, int]:
    """``SentenceFilenames.csv`` as clip name -> stimulus number (``clipNum`` of the ratings)."""
    return {row["Filename"]: int(row["Stimulus_Number"]) for row in _read_csv(path)
            if row.get("Filename") and row.get("Stimulus_Number", "").isdigit()}


class CremaD(Corpus, name="cremad", modalities=("audio", "video"), subdir="cremad",
             description="CREMA-D: 91 actors, 12 sentences, 6 emotions, 7442 clips as WAV, "
                         "MP3 and FLV"):

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        anomalies: list[Anomaly] = []
        checks = MediaChecks(anomalies, decode=check_media)
        clips: dict[str, list[Path]] = {}
        for path in iter_files(root, AUDIO_EXTS + VIDEO_EXTS):
            if _NAME.match(path.stem):
                clips.setdefault(path.stem, []).append(path)
            else:
                anomalies.append(Anomaly(str(path), "name does not follow CREMA-D "
                                                    "ActorID_Sentence_Emotion_Level "
                                                    "(e.g. 1001_DFA_ANG_XX)"))
        demographics = self._metadata(root, "VideoDemographics.csv", read_demographics,
                                      anomalies, "gender and age unknown")
        stimuli = self._metadata(root, "SentenceFilenames.csv", read_stimuli, anomalies, None)
        records = []
        unknown_actors: set[str] = set()
        for clip, paths in clips.items():
            rec = self._clip(clip, paths, checks, anomalies)
            if rec is None:
                continue
            actor = rec.speaker
            demo = demographics.get(actor)
            if demo:
                rec.gender = demo["gender"]
                rec.extra.update((k, v) for k, v in demo.items()
                                 if k != "gender" and v is not None)
            elif demographics and actor not in unknown_actors:
                unknown_actors.add(actor)
                anomalies.append(Anomaly(str(paths[0]), f"actor {actor} is not in "
                                                        "VideoDemographics.csv", skipped=False))
            if clip in stimuli:
                rec.extra["stimulus"] = stimuli[clip]
            records.append(rec)
        checks.finish()
        return CorpusScan(self.name, str(root), records, anomalies)

    @staticmethod
    def _metadata(root: Path, name: str, reader: Callable[[Path], dict[str, Any]],
                  anomalies: list[Anomaly], missing: str | None) -> dict[str, Any]:
        """Table ``name`` read by ``reader``; empty (and reported if ``missing``) when absent."""
        path = find_file(root, name, _META_DIRS)
        if path is None:
            if missing:
                anomalies.append(Anomaly(str(root), f"{name} not found: {missing}",
                                         skipped=False))
            return {}
        try:
            return reader(path)
        except (OSError, UnicodeDecodeError, csv.Error, KeyError, ValueError) as exc:
            anomalies.append(Anomaly(str(path), f"cannot read {name} ({exc})", skipped=False))
            return {}

    def _clip(self, clip: str, paths: list[Path], checks: MediaChecks,
              anomalies: list[Anomaly]) -> Record | None:
        """One record joining the good audio and video files of ``clip``; ``None`` if none."""
        m = _NAME.match(clip)
        emo = m["emo"]
        rec = Record(id=clip, corpus=self.name, label_native=emo, label=unify(self.name, emo),
                     speaker=m["actor"],
                     extra={"statement_code": m["sent"], "statement": SENTENCES[m["sent"]],
                            "level": LEVELS[m["level"]]})
        audio = sorted((p for p in paths if modality_of(p) == "audio"),
                       key=lambda p: (_AUDIO_ORDER.index(p.suffix.lower()), str(p)))
        video = sorted(p for p in paths if modality_of(p) == "video")
        kept: dict[str, Path] = {}  # extension -> file
        for p in audio + video:
            ext, modality = p.suffix.lower(), modality_of(p)
            if ext in kept:
                anomalies.append(Anomaly(str(p), f"second {ext} file for clip {clip} "
                                                 f"(kept {kept[ext]})"))
                continue
            if not checks.load(p, modality):
                continue
            kept[ext] = p
            if getattr(rec, modality) is None:
                setattr(rec, modality, str(p))
            else:
                rec.extra[f"{modality}_{ext[1:]}"] = str(p)
        return rec if kept else None
