"""IEMOCAP, the Interactive Emotional Dyadic Motion Capture database (Busso et al. 2008).

Five sessions, each one female and one male actor in improvised and scripted dialogues.
Original release layout, ``IEMOCAP_full_release/Session1..5/``:

- ``sentences/wav/<dialog>/<utterance>.wav``: one file per utterance (16 kHz);
- ``dialog/EmoEvaluation/<dialog>.txt``: one line per utterance,
  ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]``
  (start - end, utterance, consensus label, [valence, activation, dominance]);
- ``dialog/transcriptions/<dialog>.txt``: ``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.``

Utterance ids ``Ses<SS><G>_<dialog part>_<g><NNN>``: session ``SS``, the gender ``G`` of the
session's lead, and the gender ``g`` of the utterance's own speaker. The speaker is the session
plus that last gender (``Ses01_F``): each session has one actor of each gender. The root may be
the folder holding ``IEMOCAP_full_release`` or the release folder itself (or one session).

Splits: IEMOCAP is evaluated leave-one-session-out. Both speakers of a session share its
dialogues, so the session is the unit that must stay on one side of a split: it is
``extra["group"]`` (what :attr:`Record.group` returns) and ``extra["session"]``. The dialogue
itself (``Ses01F_impro01``, the utterance id without its ``_<g><NNN>`` tail) is
``extra["dialogue"]``; ``extra["scenario"]`` says whether it is improvised or scripted. Label
``xxx`` (no consensus) maps to ``None``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError
from ..labels import CORPUS_LABELS, unify
from ._base import AUDIO_EXTS, Anomaly, Corpus, CorpusScan, Record, iter_files
from ._media_check import scan_audio_files

_UTT = re.compile(r"^Ses(?P<ses>\d{2})[FM]_(?P<part>.+)_(?P<g>[FM])(?P<num>[0-9]{3})$")
_NUM = r"\s*([\d.]+)\s*"
_EVAL = re.compile(rf"^\[{_NUM}-{_NUM}\]\s+(?P<utt>\S+)\s+(?P<label>\S+)\s+"
                   rf"\[{_NUM},{_NUM},{_NUM}\]")
_TRANS = re.compile(r"^(?P<utt>\S+)\s+\[[^\]]*\]:\s?(?P<text>.*)$")
_SESSION_DIR = re.compile(r"^Session\d+$")


def find_sessions(root: Path) -> list[Path]:
    """``Session<N>`` folders in ``root``, ``root/IEMOCAP_full_release`` or ``root`` itself."""
    if not root.is_dir():
        return []
    if _SESSION_DIR.match(root.name):
        return [root]
    for base in (root, root / "IEMOCAP_full_release", *sorted(root.iterdir())):
        if base.is_dir():
            found = sorted(p for p in base.iterdir() if p.is_dir() and _SESSION_DIR.match(p.name))
            if found:
                return found
    return []


def read_evaluations(session: Path) -> dict[str, dict[str, object]]:
    """Utterance -> label, times and valence/activation/dominance from ``EmoEvaluation/*.txt``."""
    out: dict[str, dict[str, object]] = {}
    for txt in sorted((session / "dialog" / "EmoEvaluation").glob("*.txt")):
        for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
            m = _EVAL.match(line)
            if m:
                start, end, v, a, d = (float(x) for x in m.group(1, 2, 5, 6, 7))
                out[m["utt"]] = {"label": m["label"], "start": start, "end": end,
                                 "valence": v, "activation": a, "dominance": d}
    return out


def read_transcriptions(session: Path) -> dict[str, str]:
    """Utterance -> text from ``dialog/transcriptions/*.txt``."""
    out: dict[str, str] = {}
    for txt in sorted((session / "dialog" / "transcriptions").glob("*.txt")):
        for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
            m = _TRANS.match(line.strip())
            if m:
                out[m["utt"]] = m["text"].strip()
    return out


class Iemocap(Corpus, name="iemocap", modalities=("audio", "text"), subdir="iemocap",
              description="IEMOCAP: 5 sessions x 2 actors, improvised and scripted dyadic "
                          "dialogues"):

    def scan(self, root: str | Path, *, check_media: bool = True) -> CorpusScan:
        root = Path(root)
        sessions = find_sessions(root)
        if not sessions:
            raise DataError(root, "no Session1..5 folders (expected IEMOCAP_full_release/"
                                  "Session1/sentences/wav/...)")
        anomalies: list[Anomaly] = []
        files: list[Path] = []
        evals: dict[str, dict[str, object]] = {}
        texts: dict[str, str] = {}
        for session in sessions:
            wav_dir = session / "sentences" / "wav"
            if not wav_dir.is_dir():
                anomalies.append(Anomaly(str(session), "no sentences/wav folder in this session"))
                continue
            files += iter_files(wav_dir, AUDIO_EXTS)
            session_evals = read_evaluations(session)
            if not session_evals:
                anomalies.append(Anomaly(str(session), "no labels in dialog/EmoEvaluation/*.txt; "
                                                       "its utterances are left out"))
            evals.update(session_evals)
            texts.update(read_transcriptions(session))

        def parse(path: Path, notes: list[Anomaly]) -> Record | str:
            return self._parse(path, evals, texts, notes)

        scan = scan_audio_files(self.name, root, files, parse, check_media=check_media,
                                anomalies=anomalies)
        self._report_missing(root, scan, evals, texts)
        return scan

    def _parse(self, path: Path, evals: dict[str, dict[str, object]], texts: dict[str, str],
               notes: list[Anomaly]) -> Record | str:
        utt = path.stem
        m = _UTT.match(utt)
        if not m:
            return ("name does not follow IEMOCAP Ses<SS><G>_<dialog>_<g><NNN> "
                    "(e.g. Ses01F_impro01_F000)")
        ev = evals.get(utt)
        if ev is None:
            return "no label for this utterance in dialog/EmoEvaluation"
        native = str(ev["label"])
        if native not in CORPUS_LABELS[self.name]:
            return f"unknown emotion code {native!r} in dialog/EmoEvaluation"
        session = f"Ses{m['ses']}"
        folder = re.search(r"Session(\d+)", str(path))
        if folder and int(folder.group(1)) != int(m["ses"]):
            notes.append(Anomaly(str(path), f"utterance of {session} lies in folder "
                                            f"Session{folder.group(1)}", skipped=False))
        dialogue = utt.rsplit("_", 1)[0]
        extra: dict[str, object] = {
            "session": session, "group": session, "dialogue": dialogue,
            "scenario": "scripted" if "_script" in dialogue else "improvised",
            **{k: ev[k] for k in ("start", "end", "valence", "activation", "dominance")},
        }
        gender = m["g"]
        return Record(id=utt, corpus=self.name, label_native=native,
                      label=unify(self.name, native), speaker=f"{session}_{gender}",
                      gender="female" if gender == "F" else "male", text=texts.get(utt),
                      extra=extra)

    @staticmethod
    def _report_missing(root: Path, scan: CorpusScan, evals: dict[str, dict[str, object]],
                        texts: dict[str, str]) -> None:
        have = {r.id for r in scan.records}
        no_audio = sorted(u for u in evals if u not in have)
        failed = {Path(a.path).stem for a in scan.anomalies}
        no_audio = [u for u in no_audio if u not in failed]
        if no_audio:
            scan.anomalies.append(Anomaly(str(root), f"{len(no_audio)} labelled utterance(s) "
                                                     f"have no audio file (e.g. {no_audio[0]})"))
        no_text = sorted(r.id for r in scan.records if r.text is None)
        if no_text:
            scan.anomalies.append(Anomaly(str(root), f"{len(no_text)} utterance(s) have no "
                                                     f"transcription (e.g. {no_text[0]})",
                                          skipped=False))
