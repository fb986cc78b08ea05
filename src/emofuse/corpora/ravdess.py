"""RAVDESS (Livingstone & Russo 2018).

File names ``MM-VV-EE-II-SS-RR-AA.ext``: modality (01 full AV, 02 video only, 03 audio only),
vocal channel (01 speech, 02 song), emotion (01 neutral ... 08 surprised), intensity (01 normal,
02 strong), statement (01 "Kids are talking by the door", 02 "Dogs are sitting by the door"),
repetition, actor (odd = male). Any folder layout is accepted (``Actor_XX/`` under
``Audio_Speech_Actors_01-24``, ``Video_Song_Actor_XX`` ...). Files of the same performance in
different modalities become one record. The OpenFace action-unit table
``openface_au/ravdess_openface_au_clip_means.csv`` is joined by clip when present.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..labels import unify
from ._base import AUDIO_EXTS, VIDEO_EXTS, Anomaly, Corpus, CorpusScan, Record, iter_files
from ._media_check import AudioChecker

EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
            "06": "fearful", "07": "disgust", "08": "surprised"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
_NAME = re.compile(r"^(0[123])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d{2})$")
AU_TABLE = "openface_au/ravdess_openface_au_clip_means.csv"


class Ravdess(Corpus, name="ravdess", modalities=("audio", "video", "au"), subdir="ravdess",
              description="RAVDESS: 24 actors, speech and song, audio-only / full AV / video-only"):

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        anomalies: list[Anomaly] = []
        checker = AudioChecker(anomalies, decode=check_media)
        clips: dict[str, Record] = {}
        for path in iter_files(root, AUDIO_EXTS + VIDEO_EXTS):
            m = _NAME.match(path.stem)
            if not m:
                anomalies.append(Anomaly(str(path), "name does not follow RAVDESS "
                                         "MM-VV-EE-II-SS-RR-AA"))
                continue
            mod, vocal, emo, inten, stmt, rep, actor = m.groups()
            is_audio = path.suffix.lower() in AUDIO_EXTS
            if is_audio != (mod == "03"):
                anomalies.append(Anomaly(str(path), f"modality code {mod} does not match a "
                                         f"{path.suffix} file", skipped=False))
            if is_audio and not checker.check(path):
                continue
            if not is_audio and path.stat().st_size == 0:
                anomalies.append(Anomaly(str(path), "file is empty (0 bytes)"))
                continue
            folder_actor = re.search(r"Actor_(\d+)", str(path.parent))
            if folder_actor and int(folder_actor.group(1)) != int(actor):
                anomalies.append(Anomaly(str(path), f"file of actor {actor} lies in folder "
                                         f"{path.parent.name}", skipped=False))
            key = "-".join((vocal, emo, inten, stmt, rep, actor))
            rec = clips.get(key)
            if rec is None:
                native = EMOTIONS[emo]
                rec = Record(
                    id=f"03-{key}", corpus=self.name, label_native=native,
                    label=unify(self.name, native), speaker=f"Actor_{actor}",
                    gender="male" if int(actor) % 2 else "female",
                    extra={"clip": key, "vocal": "speech" if vocal == "01" else "song",
                           "intensity": "normal" if inten == "01" else "strong",
                           "statement": STATEMENTS[stmt], "repetition": int(rep),
                           "au_id": f"01-{key}"})
                clips[key] = rec
            if is_audio:
                if rec.audio:
                    anomalies.append(Anomaly(str(path), f"second audio file for clip {key} "
                                             f"(kept {rec.audio})"))
                    continue
                rec.audio = str(path)
                if checker.content_hash(path):
                    rec.extra["content_hash"] = checker.content_hash(path)
            elif mod == "01" or rec.video is None:
                # full AV beats video-only as the clip's video; keep the other in extra
                if rec.video:
                    rec.extra["video_only"] = rec.video
                rec.video = str(path)
                if mod == "01":
                    rec.extra["video_has_audio"] = True
            else:
                rec.extra["video_only"] = str(path)
        checker.finish()
        self._join_aus(root, clips, anomalies)
        return CorpusScan(self.name, str(root), list(clips.values()), anomalies)

    def _join_aus(self, root: Path, clips: dict[str, Record], anomalies: list[Anomaly]) -> None:
        table = root / AU_TABLE
        if not table.is_file():
            return
        with table.open(newline="") as f:
            ids = {row["clip_id"] for row in csv.DictReader(f) if row.get("clip_id")}
        for rec in clips.values():
            if rec.extra["au_id"] in ids:
                rec.au = str(table)
        missing = sum(1 for r in clips.values() if r.audio and r.extra["vocal"] == "speech"
                      and not r.au)
        if missing:
            anomalies.append(Anomaly(str(table), f"no action units for {missing} speech clips",
                                     skipped=False))


def read_au_table(path: str | Path) -> "dict[str, list[float]]":
    """AU table rows keyed by clip id (``01-01-EE-II-SS-RR-AA``): 17 intensities + 18 presences."""
    import pandas as pd

    df = pd.read_csv(path)
    cols = [c for c in df.columns if c.startswith("AU")]
    return {cid: row for cid, row in zip(df["clip_id"], df[cols].to_numpy(dtype="float32"))}
