"""TESS, the Toronto Emotional Speech Set (Dupuis & Pichora-Fuller 2010).

Two female speakers, OAF (older adult, 64) and YAF (younger adult, 26), say "Say the word _"
with 200 target words in seven emotions: 2800 files. Kaggle layout: one folder per speaker and
emotion (``OAF_angry/``, ``YAF_pleasant_surprised/``, ``OAF_Pleasant_surprise/``, ``OAF_Fear/``),
sometimes nested under ``TESS Toronto emotional speech set data/`` (twice, in some copies: the
second copy is reported as duplicates), with files ``<speaker>_<word>_<emotion>.wav``
(``OAF_back_angry.wav``, ``YAF_bar_ps.wav``).

Quirks of the real files, tolerated and reported as kept anomalies: a speaker prefix missing a
letter (``OA_bite_neutral.wav`` in ``OAF_neutral/``: the speaker comes from the folder), the
emotion spelled differently in folder and file (``ps`` vs ``pleasant_surprised``, upper/lower
case; reported once per folder), a file whose emotion contradicts its folder (the file name wins).
Native labels are TESS' short forms: angry disgust fear happy neutral ps sad.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..labels import unify
from ._base import Anomaly, Record
from ._media_check import AudioFilesCorpus

#: Speaker -> age in years.
SPEAKERS = {"OAF": 64, "YAF": 26}
_SPELLINGS = {
    "angry": "angry", "anger": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear",
    "happy": "happy", "happiness": "happy",
    "neutral": "neutral",
    "ps": "ps", "pleasant_surprise": "ps", "pleasant_surprised": "ps", "surprise": "ps",
    "surprised": "ps",
    "sad": "sad", "sadness": "sad",
}
_FOLDER = re.compile(r"^(?P<spk>[A-Za-z]{3})_(?P<emo>.+)$")


def tess_emotion(spelling: str) -> str | None:
    """TESS native label of a folder or file spelling (``Pleasant_surprise`` -> ``ps``)."""
    return _SPELLINGS.get(spelling.strip().lower().replace("-", "_").replace(" ", "_"))


def _folder_info(path: Path) -> tuple[Path, str, str] | None:
    """(folder, speaker, emotion spelling) when the file lies in an ``OAF_<emotion>`` folder."""
    m = _FOLDER.match(path.parent.name)
    if m and m["spk"].upper() in SPEAKERS:
        return path.parent, m["spk"].upper(), m["emo"]
    return None


def parse_tess(path: Path, notes: list[Anomaly]) -> Record | str:
    """Record for one TESS file, or why neither its name nor its folder tells who and what."""
    parts = path.stem.split("_")
    if len(parts) < 3 or not all(parts):
        return "name does not follow TESS <speaker>_<word>_<emotion> (e.g. OAF_back_angry)"
    spk_raw, word, emo_raw = parts[0], parts[1], "_".join(parts[2:])
    folder = _folder_info(path)
    speaker = spk_raw.upper()
    if speaker not in SPEAKERS:
        if folder is None:
            return f"speaker prefix {spk_raw!r} is neither OAF nor YAF and no OAF_/YAF_ folder says"
        speaker = folder[1]
        notes.append(Anomaly(str(path), f"speaker prefix {spk_raw!r} in the file name; speaker "
                                        f"{speaker} taken from the folder", skipped=False))
    elif folder and folder[1] != speaker:
        notes.append(Anomaly(str(path), f"file of speaker {speaker} lies in folder "
                                        f"{folder[0].name}", skipped=False))
    native = tess_emotion(emo_raw)
    folder_native = tess_emotion(folder[2]) if folder else None
    if native is None:
        if folder_native is None:
            return f"emotion {emo_raw!r} in the file name is not a TESS emotion"
        native = folder_native
        notes.append(Anomaly(str(path), f"emotion {emo_raw!r} in the file name is unknown; "
                                        f"{native!r} taken from the folder", skipped=False))
    elif folder_native is not None and folder_native != native:
        notes.append(Anomaly(str(path), f"file name says {native!r} but folder "
                                        f"{folder[0].name} says {folder_native!r}; file name "
                                        "kept", skipped=False))
    elif folder is not None and folder[2] != emo_raw:
        notes.append(Anomaly(str(folder[0]), f"emotion spelled {folder[2]!r} in the folder name "
                                             f"and {emo_raw!r} in its file names (same class "
                                             f"{native!r})", skipped=False))
    return Record(id=path.stem, corpus="tess", label_native=native, label=unify("tess", native),
                  speaker=speaker, gender="female",
                  extra={"word": word.lower(), "statement": f"Say the word {word.lower()}",
                         "age": SPEAKERS[speaker]})


class Tess(AudioFilesCorpus, name="tess", modalities=("audio",), subdir="tess",
           description="TESS: 2 female speakers, 200 words x 7 emotions, 2800 files"):
    parse = staticmethod(parse_tess)
