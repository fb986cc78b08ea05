"""Text features: cleaning, emoji to words, lexicon cues, an emotional-content filter and
MiniLM sentence embeddings (cached).

=====================  ==========================================================  ==========
name (registered)      what                                                        shape
=====================  ==========================================================  ==========
``lexicon``            NRC emotion-word rates (10) + VADER neg/neu/pos/compound    (n, 14)
``minilm``             all-MiniLM-L6-v2 mean-pooled sentence embeddings            (n, 384)
=====================  ==========================================================  ==========

Every extractor takes a list of texts: ``fn(texts, **params) -> (n, d)`` float32. The sentence
embeddings (the encoder, its fast torch-free path and the cached :func:`embed_texts`) live in
:mod:`emofuse.features.minilm`; their names are re-exported here.

>>> clean_text("@bob loved it 😂 https://t.co/x <b>really</b>")
'@user loved it face with tears of joy really'
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ConfigError
from ..media.text import MAX_CHARS, normalise_text
from . import register_feature
from .minilm import (FAST_ENCODER_VERSION, MINILM_DIM, MINILM_VERSION, _FAST,  # noqa: F401
                     FastEncoder, _offline, embed_texts, fast_encoder, fast_encoder_path,
                     load_encoder, minilm, minilm_path, minilm_torch, prepare_fast_encoder)

if TYPE_CHECKING:
    from ..corpora import Record

__all__ = ["clean_text", "clean_texts", "emoji_to_words", "minilm_path", "load_encoder",
           "nrc_lexicon", "lexicon", "lexicon_cached", "minilm", "embed_texts", "emotional_content",
           "dialogue_context", "previous_turns", "NRC_EMOTIONS", "LEXICON_DIM", "MINILM_DIM",
           "MINILM_VERSION", "FastEncoder", "fast_encoder", "fast_encoder_path",
           "prepare_fast_encoder", "minilm_torch", "FAST_ENCODER_VERSION"]

#: NRC affect categories in a fixed order (the 8 emotions, then the 2 sentiments).
NRC_EMOTIONS: tuple[str, ...] = ("anger", "anticipation", "disgust", "fear", "joy", "sadness",
                                 "surprise", "trust", "positive", "negative")
LEXICON_DIM = len(NRC_EMOTIONS) + 4

# -- cleaning ---------------------------------------------------------------------------------

_URL = re.compile(r"(?:\bhttps?://|\bwww\.)\S+", re.I)
_MENTION = re.compile(r"(?<![\w@])@\w{1,30}")
_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,200}>")
_MD_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*\)")
_MD_EMPH = re.compile(r"(\*{1,3}|_{2,3}|~~)(\S(?:[^\n]*?\S)?)\1")
_MD_QUOTE = re.compile(r"(?m)^\s*>+\s?")
_MD_CODE = re.compile(r"`{1,3}([^`]*)`{1,3}")
_EMOTICONS = {":)": "smile", ":-)": "smile", ":D": "laugh", ":-D": "laugh", "xD": "laugh",
              ":(": "sad face", ":-(": "sad face", ":'(": "crying", ";)": "wink",
              ";-)": "wink", ":P": "tongue out", ":p": "tongue out", "<3": "love",
              ":/": "unsure", ":O": "surprised", ":o": "surprised"}
_EMOTICON = re.compile(r"(?<!\S)(" + "|".join(re.escape(e) for e in
                                               sorted(_EMOTICONS, key=len, reverse=True))
                       + r")(?!\S)")


def emoji_to_words(text: str) -> str:
    """Replace each emoji (and common emoticon) with its English name: ``😂`` ->
    ``face with tears of joy``; skin tones and flags become words too."""
    import emoji

    def name(chars: str, data: dict[str, Any]) -> str:
        return " " + data.get("en", "").strip(":").replace("_", " ") + " "

    text = emoji.replace_emoji(text, replace=name)
    return _EMOTICON.sub(lambda m: _EMOTICONS[m.group(1)], text)


def clean_text(text: str, *, urls: bool = True, mentions: bool = True, markup: bool = True,
               emoji: Literal["words", "keep", "drop"] = "words",
               max_chars: int = MAX_CHARS) -> str:
    """Clean one utterance for a text model.

    Parameters
    ----------
    urls
        Drop web addresses.
    mentions
        Replace user mentions with ``@user``; hashtags lose their ``#``.
    markup
        Unescape HTML entities and drop HTML tags and Markdown (links keep their text).
    emoji
        ``"words"``: emoji and emoticons become their names; ``"drop"``: removed;
        ``"keep"``: left as they are.
    max_chars
        Longer text is truncated with a warning (see :func:`emofuse.media.normalise_text`).
    """
    if markup:
        text = html.unescape(text)
        text = _MD_LINK.sub(r"\1", text)
        text = _TAG.sub(" ", text)
        text = _MD_CODE.sub(r"\1", text)
        text = _MD_EMPH.sub(r"\2", text)
        text = _MD_QUOTE.sub("", text)
    if urls:
        text = _URL.sub(" ", text)
    if mentions:
        text = _MENTION.sub("@user", text)
        text = _HASHTAG.sub(r"\1", text)
    if emoji == "words":
        text = emoji_to_words(text)
    elif emoji == "drop":
        import emoji as _emoji

        text = _emoji.replace_emoji(text, replace=" ")
    elif emoji != "keep":
        raise ConfigError(f"clean_text: emoji must be 'words', 'keep' or 'drop', not {emoji!r}")
    return normalise_text(text, max_chars=max_chars)


def clean_texts(texts: Iterable[str], **options: Any) -> list[str]:
    """:func:`clean_text` of each text (same options)."""
    return [clean_text(t, **options) for t in texts]


def previous_turns(records: Sequence[Record], *, turns: int = 3) -> list[list[int]]:
    """For each record, the indices of its dialogue's previous ``turns`` utterances, most
    recent first (never later ones).

    Records are grouped by ``extra["dialogue"]`` and ordered by ``extra["utterance"]``;
    records without a dialogue get ``[]``.
    """
    by_dialogue: dict[Any, list[tuple[Any, int]]] = {}
    for i, r in enumerate(records):
        d = r.extra.get("dialogue")
        if d is not None:
            by_dialogue.setdefault(d, []).append((r.extra.get("utterance", i), i))
    out: list[list[int]] = [[] for _ in records]
    if turns <= 0:
        return out
    for items in by_dialogue.values():
        items.sort(key=lambda t: (t[0] is None, t[0]))
        order = [i for _, i in items]
        for k, i in enumerate(order):
            out[i] = order[max(0, k - turns):k][::-1]
    return out


def dialogue_context(records: Sequence[Record], *, turns: int = 3, speakers: bool = True,
                     texts: Sequence[str] | None = None, max_chars: int = 600) -> list[str]:
    """For each record, the text of its dialogue's previous ``turns`` utterances (see
    :func:`previous_turns`), most recent first, ``"Speaker: text"`` when ``speakers``, joined
    by ``" | "``; ``texts`` replaces the records' own texts (e.g. cleaned ones)."""
    texts = [r.text or "" for r in records] if texts is None else list(texts)

    def line(i: int) -> str:
        spk = records[i].speaker
        return f"{spk}: {texts[i]}" if speakers and spk else texts[i]

    return [" | ".join(line(i) for i in prev)[:max_chars]
            for prev in previous_turns(records, turns=turns)]


# -- lexicons ---------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@functools.lru_cache(maxsize=1)
def nrc_lexicon() -> dict[str, tuple[str, ...]]:
    """The NRC emotion lexicon (word -> affect categories) as shipped in ``nrclex``.

    Read from the package's own data file, so no TextBlob/NLTK corpora are needed.
    """
    from importlib import resources

    try:
        text = resources.files("nrclex.data").joinpath("nrc_en.json").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(f"the NRC lexicon needs the 'nrclex' package ({exc})") from None
    return {w: tuple(v) for w, v in json.loads(text).items()}


@functools.lru_cache(maxsize=1)
def _vader() -> Any:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ModuleNotFoundError:
        raise ConfigError("VADER needs the 'vaderSentiment' package") from None
    return SentimentIntensityAnalyzer()


def _nrc_hits(text: str) -> list[tuple[str, ...]]:
    lex = nrc_lexicon()
    hits = []
    for w in _WORD.findall(text.lower()):
        cats = lex.get(w) or (lex.get(w[:-1]) if w.endswith("s") and len(w) > 3 else None)
        if cats:
            hits.append(cats)
    return hits


@register_feature("lexicon", modality="text")
def lexicon(texts: Sequence[str]) -> np.ndarray:
    """NRC category rates (hits per word, :data:`NRC_EMOTIONS` order) and VADER's
    ``neg, neu, pos, compound``: ``(n, 14)`` float32."""
    out = np.zeros((len(texts), LEXICON_DIM), np.float32)
    index = {c: j for j, c in enumerate(NRC_EMOTIONS)}
    vader = _vader()
    for i, t in enumerate(texts):
        n_words = max(1, len(_WORD.findall(t.lower())))
        for cats in _nrc_hits(t):
            for c in cats:
                if c in index:
                    out[i, index[c]] += 1.0 / n_words
        s = vader.polarity_scores(t)
        out[i, -4:] = (s["neg"], s["neu"], s["pos"], s["compound"])
    return out


@functools.lru_cache(maxsize=8)
def _lexicon_memo(texts: tuple[str, ...]) -> np.ndarray:
    out = lexicon(texts)
    out.flags.writeable = False
    return out


def lexicon_cached(texts: Sequence[str]) -> np.ndarray:
    """:func:`lexicon`, remembered for the last few lists of texts in this process (the
    lexicon models score the same training texts once per grid point)."""
    return _lexicon_memo(tuple(texts))


def emotional_content(texts: Sequence[str], *, vader_threshold: float = 0.3) -> np.ndarray:
    """Whether each text carries an emotional cue: an NRC emotion word (one of the 8
    emotions, not merely positive/negative), an emoji, or a VADER compound of at least
    ``vader_threshold`` in magnitude. Boolean array."""
    import emoji

    x = lexicon_cached(texts)
    has_emoji = np.array([emoji.emoji_count(t) > 0 for t in texts], bool)
    return (x[:, :8] > 0).any(1) | has_emoji | (np.abs(x[:, -1]) >= vader_threshold)
