"""SAVEE, Surrey Audio-Visual Expressed Emotion (Haq & Jackson 2009).

Four male speakers (DC, JE, JK, KL), 120 utterances each: 15 per emotion and 30 neutral.
File names ``<emotion><NN>``: emotion prefix ``a`` anger, ``d`` disgust, ``f`` fear,
``h`` happiness, ``n`` neutral, ``sa`` sadness, ``su`` surprise; ``NN`` the sentence number.
Two layouts are accepted: the Kaggle one with the speaker as a prefix (``ALL/DC_a01.wav``) and
the original one with the speaker as the folder (``AudioData/DC/a01.wav``). Record ids are always
``<speaker>_<emotion><NN>`` (``DC_a01``), the base names the EmoBox folds use.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..labels import unify
from ._base import Anomaly, Record
from ._media_check import AudioFilesCorpus

SPEAKERS = ("DC", "JE", "JK", "KL")
#: Sentences per emotion code (neutral has twice as many).
PER_SPEAKER = {"a": 15, "d": 15, "f": 15, "h": 15, "n": 30, "sa": 15, "su": 15}
_NAME = re.compile(r"^(?:(?P<spk>[A-Za-z]{2})_)?(?P<emo>sa|su|a|d|f|h|n)(?P<num>\d{2})$",
                   re.IGNORECASE)
_SPEAKER_DIR = re.compile(r"^[A-Za-z]{2}$")


def parse_savee(path: Path, notes: list[Anomaly]) -> Record | str:
    """Record for one SAVEE file, or why its name cannot be read."""
    m = _NAME.match(path.stem)
    if not m:
        return "name does not follow SAVEE [<speaker>_]<emotion><NN> (e.g. DC_a01)"
    emo, num = m["emo"].lower(), int(m["num"])
    folder = path.parent.name.upper() if _SPEAKER_DIR.match(path.parent.name) else None
    speaker = m["spk"].upper() if m["spk"] else folder
    if speaker is None:
        return "no speaker: neither a DC_ style prefix nor a speaker folder (AudioData/DC/)"
    if folder and folder != speaker:
        notes.append(Anomaly(str(path), f"file of speaker {speaker} lies in folder {folder}",
                             skipped=False))
    if speaker not in SPEAKERS:
        notes.append(Anomaly(str(path), f"speaker {speaker} is not one of SAVEE's "
                                        f"{', '.join(SPEAKERS)}", skipped=False))
    if not 1 <= num <= PER_SPEAKER[emo]:
        notes.append(Anomaly(str(path), f"sentence number {num} outside SAVEE's "
                                        f"1..{PER_SPEAKER[emo]} for {emo!r}", skipped=False))
    return Record(id=f"{speaker}_{emo}{num:02d}", corpus="savee", label_native=emo,
                  label=unify("savee", emo), speaker=speaker, gender="male",
                  extra={"sentence": num})


class Savee(AudioFilesCorpus, name="savee", modalities=("audio",), subdir="savee",
            description="SAVEE: 4 male British English speakers, 480 utterances, 7 emotions"):
    parse = staticmethod(parse_savee)
