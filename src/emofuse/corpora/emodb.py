"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005).

Ten actors (five male, five female) speak ten German sentences in seven emotions. File names
``SSTTTEV``, e.g. ``03a01Fa.wav``: speaker ``SS`` (03, 08, 09, 10, 11, 12, 13, 14, 15, 16), text
code ``TTT`` (a01 a02 a04 a05 a07 b01 b02 b03 b09 b10), emotion ``E`` as a German initial
(W Wut/anger, L Langeweile/boredom, E Ekel/disgust, A Angst/fear, F Freude/happiness,
T Trauer/sadness, N neutral) and version ``V`` (a, b, ...). Files lie in ``wav/`` or directly in
the root; the other folders of the release (``lablaut``, ``silb`` ...) are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..labels import unify
from ._base import Anomaly, Record
from ._media_check import AudioFilesCorpus

#: Speaker -> (gender, age in years), from the corpus' documentation.
SPEAKERS: dict[str, tuple[str, int]] = {
    "03": ("male", 31), "08": ("female", 34), "09": ("female", 21), "10": ("male", 32),
    "11": ("male", 26), "12": ("male", 30), "13": ("female", 32), "14": ("female", 35),
    "15": ("male", 25), "16": ("female", 31),
}
TEXTS: dict[str, str] = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
_NAME = re.compile(r"^(?P<spk>\d{2})(?P<text>[ab](?:0[1-9]|10))(?P<emo>[WLEAFTN])(?P<ver>[a-z])$")


def parse_emodb(path: Path, notes: list[Anomaly]) -> Record | str:
    """Record for one EmoDB file, or why its name cannot be read."""
    m = _NAME.match(path.stem)
    if not m:
        return ("name does not follow EmoDB SSTTTEV (speaker, text a01..b10, emotion letter "
                "W L E A F T N, version; e.g. 03a01Fa)")
    spk, text, emo = m["spk"], m["text"], m["emo"]
    gender, age = SPEAKERS.get(spk, (None, None))
    if gender is None:
        notes.append(Anomaly(str(path), f"speaker {spk} is not one of EmoDB's ten "
                                        "(gender unknown)", skipped=False))
    if text not in TEXTS:
        notes.append(Anomaly(str(path), f"text code {text} is not one of EmoDB's ten",
                             skipped=False))
    extra = {"statement_code": text, "statement": TEXTS.get(text), "version": m["ver"]}
    if age is not None:
        extra["age"] = age
    return Record(id=path.stem, corpus="emodb", label_native=emo, label=unify("emodb", emo),
                  speaker=spk, gender=gender, extra=extra)


class EmoDB(AudioFilesCorpus, name="emodb", modalities=("audio",), subdir="emodb",
            description="EmoDB (Berlin): 10 German actors, 10 sentences, 7 emotions, ~535 files"):
    parse = staticmethod(parse_emodb)
