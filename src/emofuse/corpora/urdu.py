"""URDU, natural emotional speech from Urdu TV talk shows (Latif et al. 2018,
siddiquelatif/URDU-Dataset).

400 unscripted utterances, 100 per emotion, in one folder per emotion (``Angry/``, ``Happy/``,
``Neutral/``, ``Sad/``). File names ``S{G}{id}_F{n}_{E}{nn}`` (``SM1_F01_A12``): ``G`` the
speaker's gender (M, F), ``id`` the speaker number, numbered separately per gender (``SM1`` and
``SF1`` are two people), ``n`` the file's number for that speaker, ``E`` the emotion letter
(A angry, H happy, N neutral, S sad) and ``nn`` the file's number within its emotion. The
original corpus ships 44.1 kHz WAV; re-encoded copies (FLAC, Ogg Vorbis/Opus) are read alike.
The authors' README counts 38 speakers; the names hold 29 speaker ids (M1..M7, M17..M27,
F1..F11), and the speaker of a record is that id (``SM1``).

Quirks of the real files: the emotion numbers are written ``0`` + number (``A01``, ``A010``,
``A0100``), and the per-speaker file number restarts in each emotion for some speakers (SM3,
SM5, SM6), so neither number is unique alone; record ids are the file base names (in upper
case), which are. The label comes from the emotion letter, checked against the folder when it
names an emotion (a contradiction is reported, the letter kept). Case and white space in names
are tolerated (reported). Native labels are the folder names: Angry, Happy, Neutral, Sad.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..labels import unify
from ._base import Anomaly, CorpusScan, Record
from ._media_check import AudioFilesCorpus
from .ased import SPEECH_EXTS, clean_stem, note_identical_audio

#: Emotion letter -> native label (the folder name).
EMOTIONS = {"A": "Angry", "H": "Happy", "N": "Neutral", "S": "Sad"}
GENDERS = {"M": "male", "F": "female"}
_FOLDERS = {"angry": "Angry", "anger": "Angry", "happy": "Happy", "happiness": "Happy",
            "neutral": "Neutral", "sad": "Sad", "sadness": "Sad"}
_NAME = re.compile(r"^S(?P<g>[MF])(?P<id>\d+)_F(?P<n>\d+)_(?P<e>[A-Z])(?P<k>\d+)$",
                   re.IGNORECASE)


def parse_urdu(path: Path, notes: list[Anomaly]) -> Record | str:
    """Record for one URDU file, or why its name cannot be read."""
    stem = clean_stem(path, notes)
    m = _NAME.match(stem)
    if not m:
        return "name does not follow URDU S{M|F}{id}_F{n}_{A|H|N|S}{nn} (e.g. SM1_F1_A01)"
    letter = m["e"].upper()
    if letter not in EMOTIONS:
        return f"emotion letter {m['e']!r} is not one of URDU's A H N S"
    if stem != stem.upper():
        notes.append(Anomaly(str(path), f"lower-case letters in the name {stem!r} (read "
                                        "as upper case)", skipped=False))
    native = EMOTIONS[letter]
    folder = _FOLDERS.get(path.parent.name.strip().lower())
    if folder is not None and folder != native:
        notes.append(Anomaly(str(path), f"emotion letter {letter} ({native}) contradicts folder "
                                        f"{path.parent.name}; the letter is kept",
                             skipped=False))
    gender = m["g"].upper()
    speaker = f"S{gender}{int(m['id'])}"
    return Record(id=stem.upper(), corpus="urdu", label_native=native, label=unify("urdu", native),
                  speaker=speaker, gender=GENDERS[gender],
                  extra={"speaker_file": int(m["n"]), "emotion_file": int(m["k"])})


class Urdu(AudioFilesCorpus, name="urdu", modalities=("audio",), subdir="urdu",
           description="URDU: natural Urdu talk-show speech, 29 speaker ids, 4 emotions, "
                       "400 files"):
    parse = staticmethod(parse_urdu)
    exts = SPEECH_EXTS

    def finish(self, scan: CorpusScan) -> None:
        note_identical_audio(scan)
