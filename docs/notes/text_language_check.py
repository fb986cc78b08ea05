"""How the text check "not English?" (emofuse.inference.text.MIN_WORDS / MIN_ENGLISH_SHARE) was
chosen and what it catches.

The rule is chosen on English text only, the train splits of dair-ai, MELD and GoEmotions
(Ekman): the largest share, then the fewest words, that flag at most 0.1 % of those texts (a
false "not English" on one text in a thousand). It is then checked on their test
splits and on non-English Latin-script text the text models never saw: the 90 Polish sentences
of nEMO's transcripts, and 44 everyday sentences in 8 other languages written for this check
(anecdotal).

Run:  .venv/bin/python docs/notes/text_language_check.py   (about 30 s; reads $EMOFUSE_DATA,
      default ../shared/data)
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from emofuse.inference.text import MIN_ENGLISH_SHARE, MIN_WORDS, english_words

DATA = Path(os.environ.get("EMOFUSE_DATA", "../shared/data"))
OTHER = {
    "es": ["Estoy muy contento porque mañana vamos a la playa con mis amigos.",
           "No puedo creer que me hayas mentido otra vez.",
           "Tengo miedo de que algo malo le pase a mi familia.",
           "Hoy me siento triste y no quiero hablar con nadie.",
           "¡Qué sorpresa tan bonita me has dado!",
           "Me molesta mucho cuando la gente llega tarde."],
    "de": ["Ich bin heute wirklich glücklich, weil die Sonne scheint.",
           "Warum hast du mir das nicht früher gesagt?",
           "Ich habe Angst vor der Prüfung morgen.",
           "Das ist die schlimmste Nachricht, die ich je gehört habe.",
           "Er war so wütend, dass er die Tür zugeschlagen hat.",
           "Wir freuen uns sehr auf den Urlaub."],
    "fr": ["Je suis tellement heureux de te revoir après toutes ces années.",
           "Je ne supporte plus ce bruit, ça me rend fou.",
           "Elle a peur de rester seule à la maison ce soir.",
           "Quelle belle surprise, je ne m'y attendais pas du tout!",
           "Il est très triste depuis le départ de son ami.",
           "Nous avons passé une excellente journée au parc."],
    "it": ["Sono molto felice di vederti qui stasera.",
           "Non sopporto quando mi parli in questo modo.",
           "Ho paura che domani piova tutto il giorno.",
           "Che sorpresa meravigliosa, grazie mille!",
           "Mi sento solo e triste in questa città.",
           "Siamo arrivati tardi perché il treno era in ritardo."],
    "pt": ["Estou muito feliz com a notícia que você me deu.",
           "Não acredito que você fez isso comigo de novo.",
           "Tenho medo de perder o emprego este ano.",
           "Que surpresa boa encontrar você aqui!",
           "Ela ficou muito triste com a partida do irmão.",
           "Eles estão com raiva porque ninguém avisou."],
    "nl": ["Ik ben zo blij dat je er vandaag bent.",
           "Waarom heb je dat niet eerder gezegd?",
           "Ik ben bang dat we te laat komen.",
           "Wat een mooie verrassing, dank je wel!",
           "Hij is erg verdrietig sinds zijn hond dood is.",
           "Zij was woedend toen ze het nieuws hoorde."],
    "tr": ["Bugün çok mutluyum çünkü arkadaşlarımla buluşacağım.",
           "Bana neden yalan söyledin anlamıyorum.",
           "Karanlıktan çok korkuyorum.",
           "Ne güzel bir sürpriz, çok teşekkür ederim!"],
    "id": ["Saya sangat senang bertemu denganmu hari ini.",
           "Kenapa kamu tidak memberitahu saya sebelumnya?",
           "Aku takut sendirian di rumah malam ini.",
           "Dia sangat marah karena mobilnya rusak."],
}


def english(split: str) -> dict[str, list[str]]:
    text = DATA / "text"
    dair = [ln.rsplit(";", 1)[0] for ln in
            (text / "dair_emotion" / f"{split}.txt").read_text(encoding="utf-8").splitlines()]
    with open(text / "meld" / f"{split}_sent_emo.csv", encoding="utf-8", errors="replace") as f:
        meld = [r["Utterance"] for r in csv.DictReader(f)]
    goemo = [ln.split("\t")[0] for ln in (text / "goemotions" / "ekman" / f"{split}.tsv")
             .read_text(encoding="utf-8").splitlines()]
    return {"dair-ai": dair, "MELD": meld, "GoEmotions": goemo}


def flagged(texts: list[str], share: float = MIN_ENGLISH_SHARE, words: int = MIN_WORDS) -> float:
    hits = [english_words(t) for t in texts]
    return 100 * float(np.mean([n >= words and k < share * n for k, n in hits]))


def main() -> None:
    train = [t for ts in english("train").values() for t in ts]
    print(f"English train texts: {len(train)}")
    grid = {(w, s): flagged(train, s, w) for w in (3, 4, 5) for s in (0.4, 0.5, 0.55, 0.6)}
    for (words, share), pct in grid.items():
        print(f"  {words}+ words, share < {share}: {pct:.2f} % flagged")
    ok = [(s, -w) for (w, s), pct in grid.items() if pct <= 0.1]
    share, words = max(ok)[0], -max(ok)[1]
    print(f"chosen by the rule: {words}+ words, share < {share} "
          f"(emofuse: {MIN_WORDS}+ words, share < {MIN_ENGLISH_SHARE})")
    for name, ts in english("test").items():
        print(f"  {name} test ({len(ts)}): {flagged(ts):.2f} % flagged")
    with open(DATA / "nemo" / "data.tsv", encoding="utf-8") as f:
        polish = sorted({r["raw_text"] for r in csv.DictReader(f, delimiter="\t")})
    print(f"  nEMO Polish sentences ({len(polish)}): {flagged(polish):.1f} % flagged")
    for lang, ts in OTHER.items():
        print(f"  {lang} ({len(ts)}): {flagged(ts):.0f} % flagged")
    every = [t for ts in OTHER.values() for t in ts]
    print(f"  8 other languages ({len(every)}): {flagged(every):.1f} % flagged")


if __name__ == "__main__":
    main()
