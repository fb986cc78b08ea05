"""ASED, the Amharic Speech Emotion Dataset (Retta et al. 2023, Ethio2021/ASED_V1).

65 speakers act Amharic sentences in five emotions: 2,474 files in one folder per emotion
(``01Neutral/``, ``02Fearful/``, ``03Happy/``, ``04Sad/``, ``05Angry/``). File names
``{e}{k}-{sentence}-{repetition}-{gender}-{speaker}`` (``n1-01-01-01-01.wav``): ``e`` the emotion
letter (n neutral, f fear, h happy, s sad, a angry) and ``k`` its number (1..5, as in the folder
names), then sentence, repetition (01, 02), gender (01 female, 02 male) and speaker (01..65).
The original corpus ships 16 kHz WAV; re-encoded copies (FLAC, Ogg Vorbis/Opus) are read alike.

The label comes from the emotion letter, checked against ``k`` and against the folder when it
names an emotion. Quirks of the real files, tolerated and reported as kept anomalies: one name
starts with an upper-case letter (``04Sad/S4-04-02-01-29``); five speakers (09, 15, 21, 23, 25)
have one file each whose gender code contradicts their other files (the speaker is the last
field: the speaker keeps the gender of the majority of their files); four recordings are stored
twice under two repetition numbers (e.g. ``n1-07-01-02-53`` = ``n1-07-02-02-53``), found byte
for byte in WAV copies and, in Ogg copies, by their identical audio packets
(:func:`audio_fingerprint`); they share ``extra["content_hash"]``. Native labels are the folder
words: neutral, fearful, happy, sad, angry. Record ids are the file base names.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

from ..labels import unify
from ._base import AUDIO_EXTS, Anomaly, CorpusScan, Record
from ._image import content_hash
from ._media_check import AudioFilesCorpus

__all__ = ["Ased", "parse_ased", "audio_fingerprint", "note_identical_audio", "SPEECH_EXTS"]

#: Audio extensions the speech loaders of this module and nEMO/URDU read (Opus beside the rest).
SPEECH_EXTS = tuple(dict.fromkeys((*AUDIO_EXTS, ".opus", ".oga")))
#: Emotion letter -> (number in the name and folder, native label).
EMOTIONS: dict[str, tuple[int, str]] = {
    "n": (1, "neutral"), "f": (2, "fearful"), "h": (3, "happy"), "s": (4, "sad"),
    "a": (5, "angry"),
}
GENDERS = {1: "female", 2: "male"}
N_SPEAKERS = 65
_FOLDER_WORDS = {
    "neutral": "neutral", "fear": "fearful", "fearful": "fearful", "happy": "happy",
    "happiness": "happy", "sad": "sad", "sadness": "sad", "angry": "angry", "anger": "angry",
}
_NAME = re.compile(r"^(?P<e>[a-z])(?P<k>\d)-(?P<sent>\d{1,3})-(?P<rep>\d{1,2})-(?P<g>\d{1,2})-"
                   r"(?P<spk>\d{1,3})$", re.IGNORECASE)
_FOLDER = re.compile(r"^\s*\d*\s*[-_. ]?\s*(?P<word>[A-Za-z]+)\s*$")


def folder_emotion(folder: str) -> str | None:
    """Native label named by an ASED folder (``02Fearful`` -> ``fearful``), else ``None``."""
    m = _FOLDER.match(folder)
    return _FOLDER_WORDS.get(m["word"].lower()) if m else None


def clean_stem(path: Path, notes: list[Anomaly]) -> str:
    """The base name without white space; a name that had some gets a kept note."""
    stem = path.stem
    clean = re.sub(r"\s+", "", stem)
    if clean != stem:
        notes.append(Anomaly(str(path), f"white space in the file name {path.name!r} (ignored)",
                             skipped=False))
    return clean


def parse_ased(path: Path, notes: list[Anomaly]) -> Record | str:
    """Record for one ASED file (gender from its own code), or why its name cannot be read."""
    stem = clean_stem(path, notes)
    m = _NAME.match(stem)
    if not m:
        return ("name does not follow ASED {e}{k}-{sentence}-{repetition}-{gender}-{speaker} "
                "(e.g. n1-01-01-01-01)")
    letter = m["e"].lower()
    if letter not in EMOTIONS:
        return f"emotion letter {m['e']!r} is not one of ASED's n f h s a"
    number, native = EMOTIONS[letter]
    if m["e"] != letter:
        notes.append(Anomaly(str(path), f"upper-case emotion letter {m['e']!r} (read as "
                                        f"{letter!r})", skipped=False))
    if int(m["k"]) != number:
        notes.append(Anomaly(str(path), f"emotion number {m['k']} contradicts letter {letter!r} "
                                        f"({native}, number {number}); the letter is kept",
                             skipped=False))
    folder = folder_emotion(path.parent.name)
    if folder is not None and folder != native:
        notes.append(Anomaly(str(path), f"emotion letter {letter!r} ({native}) contradicts "
                                        f"folder {path.parent.name} ({folder}); the letter is "
                                        "kept", skipped=False))
    spk = int(m["spk"])
    if not 1 <= spk <= N_SPEAKERS:
        notes.append(Anomaly(str(path), f"speaker {spk} outside ASED's 1..{N_SPEAKERS}",
                             skipped=False))
    gender_code = int(m["g"])
    if gender_code not in GENDERS:
        notes.append(Anomaly(str(path), f"gender code {m['g']} is neither 01 (female) nor 02 "
                                        "(male)", skipped=False))
    return Record(id=stem, corpus="ased", label_native=native, label=unify("ased", native),
                  speaker=f"{spk:02d}", gender=GENDERS.get(gender_code),
                  extra={"sentence": int(m["sent"]), "repetition": int(m["rep"]),
                         "gender_code": gender_code})


def resolve_genders(scan: CorpusScan) -> None:
    """Give each speaker the gender of the majority of their files; report the files whose own
    code says otherwise (kept). A tie leaves the speaker's gender unknown."""
    by_speaker: dict[str, list[Record]] = collections.defaultdict(list)
    for rec in scan.records:
        by_speaker[rec.speaker].append(rec)
    for speaker, recs in by_speaker.items():
        counts = collections.Counter(r.gender for r in recs if r.gender is not None)
        if not counts:
            continue
        ranked = counts.most_common(2)
        top, n_top = ranked[0]
        gender = top if len(ranked) == 1 or n_top > ranked[1][1] else None
        for r in recs:
            if r.gender is not None and r.gender != gender:
                held = (f"the speaker's other {n_top} files say {gender}" if gender
                        else "the speaker's files disagree evenly: gender unknown")
                scan.anomalies.append(Anomaly(
                    r.audio, f"gender code {r.extra['gender_code']:02d} ({r.gender}) "
                             f"contradicts speaker {speaker}: {held}", skipped=False))
            r.gender = gender


def _ogg_packets(data: bytes) -> bytes | None:
    """The packet data of an Ogg stream without its page headers (serial number, page CRC and
    granule positions differ between two encodings of the same audio); ``None`` if malformed."""
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i:i + 4] != b"OggS" or i + 27 > len(data):
            return None
        nseg = data[i + 26]
        size = sum(data[i + 27:i + 27 + nseg])
        start = i + 27 + nseg
        if start + size > len(data):
            return None
        out += data[start:start + size]
        i = start + size
    return bytes(out)


def audio_fingerprint(path: str | Path) -> str | None:
    """Hash identifying identical audio: of the bytes, or for Ogg (Opus, Vorbis) of the packets
    alone, so two encodings of one recording that differ only in the container's random serial
    number match. ``None`` when the file cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if data[:4] == b"OggS":
        packets = _ogg_packets(data)
        if packets is not None:
            return content_hash(packets)
    return content_hash(data)


def note_identical_audio(scan: CorpusScan) -> None:
    """Set ``extra["content_hash"]`` on every record (for the leakage check) and report, kept,
    the files whose audio repeats an earlier one (unless already reported byte for byte)."""
    reported = {a.path for a in scan.anomalies if a.reason.startswith("identical content")}
    first: dict[str, str] = {}
    for rec in scan.records:
        h = audio_fingerprint(rec.audio)
        if h is None:
            continue
        rec.extra["content_hash"] = h
        if h in first and rec.audio not in reported:
            scan.anomalies.append(Anomaly(rec.audio, f"same encoded audio as {first[h]} "
                                                     "(identical Ogg packets)", skipped=False))
        first.setdefault(h, rec.audio)


class Ased(AudioFilesCorpus, name="ased", modalities=("audio",), subdir="ased",
           description="ASED: Amharic, 65 speakers, 5 emotions, 2474 acted utterances"):
    parse = staticmethod(parse_ased)
    exts = SPEECH_EXTS

    def finish(self, scan: CorpusScan) -> None:
        resolve_genders(scan)
        note_identical_audio(scan)
