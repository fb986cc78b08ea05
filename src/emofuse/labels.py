"""Unified emotion taxonomy: canonical labels, per-corpus maps, shared label spaces,
the 4-class IEMOCAP scheme and a valence/arousal placement of each category.

Canonical labels are plain lowercase words. Each corpus keeps its native label on every record;
:func:`unify` turns it into the canonical one. Native labels with no sound canonical counterpart
(IEMOCAP ``xxx``, GoEmotions multi-label rows without a single Ekman group, ...) map to ``None``
and are left out of single-label tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import LabelError

__all__ = [
    "CANONICAL",
    "BASIC7",
    "CORPUS_LABELS",
    "unify",
    "corpus_labels",
    "shared_labels",
    "normalise_label",
    "iemocap_4class",
    "valence_arousal",
    "GOEMOTIONS_28",
    "GOEMOTIONS_EKMAN",
]

#: Every canonical label, in a fixed order used for class indices when a task does not say.
CANONICAL: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise",
    "contempt", "boredom", "excited", "frustrated", "love", "other",
)

#: Ekman's six plus neutral: the usual cross-corpus label space.
BASIC7: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")

#: The 28 GoEmotions labels, index = id used in the corpus' TSV files.
GOEMOTIONS_28: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)

#: GoEmotions' own Ekman grouping (``ekman_mapping.json`` of the corpus), canonical names.
GOEMOTIONS_EKMAN: Mapping[str, str] = {
    **dict.fromkeys(["anger", "annoyance", "disapproval"], "angry"),
    "disgust": "disgust",
    **dict.fromkeys(["fear", "nervousness"], "fear"),
    **dict.fromkeys(
        ["admiration", "amusement", "approval", "caring", "desire", "excitement", "gratitude",
         "joy", "love", "optimism", "pride", "relief"], "happy"),
    **dict.fromkeys(["sadness", "disappointment", "embarrassment", "grief", "remorse"], "sad"),
    **dict.fromkeys(["confusion", "curiosity", "realization", "surprise"], "surprise"),
    "neutral": "neutral",
}

#: Native label -> canonical label, per corpus. Native labels are as each corpus spells them.
CORPUS_LABELS: dict[str, dict[str, str | None]] = {
    "ravdess": {"neutral": "neutral", "calm": "calm", "happy": "happy", "sad": "sad",
                "angry": "angry", "fearful": "fear", "disgust": "disgust",
                "surprised": "surprise"},
    "cremad": {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy",
               "NEU": "neutral", "SAD": "sad"},
    "savee": {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral",
              "sa": "sad", "su": "surprise"},
    "ased": {"neutral": "neutral", "fearful": "fear", "happy": "happy", "sad": "sad",
             "angry": "angry"},
    "nemo": {"anger": "angry", "fear": "fear", "happiness": "happy", "neutral": "neutral",
             "sadness": "sad", "surprised": "surprise"},
    "urdu": {"Angry": "angry", "Happy": "happy", "Neutral": "neutral", "Sad": "sad"},
    "tess": {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
             "neutral": "neutral", "ps": "surprise", "sad": "sad"},
    "emodb": {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy",
              "T": "sad", "N": "neutral"},
    "fer2013": {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
                "sad": "sad", "surprise": "surprise", "neutral": "neutral"},
    "ckplus": {"anger": "angry", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
               "happy": "happy", "sadness": "sad", "surprise": "surprise"},
    "iemocap": {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry",
                "exc": "excited", "fru": "frustrated", "fea": "fear", "sur": "surprise",
                "dis": "disgust", "oth": "other", "xxx": None},
    "meld": {"neutral": "neutral", "joy": "happy", "surprise": "surprise", "anger": "angry",
             "sadness": "sad", "disgust": "disgust", "fear": "fear"},
    "goemotions": {name: GOEMOTIONS_EKMAN[name] for name in GOEMOTIONS_28},
    "dair": {"sadness": "sad", "joy": "happy", "love": "love", "anger": "angry",
             "fear": "fear", "surprise": "surprise"},
}

# Spellings met in users' own data -> canonical label (used by the generic loaders).
_SYNONYMS: dict[str, str] = {
    "neutral": "neutral", "neu": "neutral", "n": "neutral", "none": "neutral",
    "calm": "calm",
    "happy": "happy", "happiness": "happy", "joy": "happy", "hap": "happy", "h": "happy",
    "sad": "sad", "sadness": "sad", "sa": "sad",
    "angry": "angry", "anger": "angry", "ang": "angry", "a": "angry", "mad": "angry",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "fea": "fear",
    "f": "fear",
    "disgust": "disgust", "disgusted": "disgust", "dis": "disgust", "d": "disgust",
    "surprise": "surprise", "surprised": "surprise", "sur": "surprise", "su": "surprise",
    "ps": "surprise", "pleasant_surprise": "surprise", "pleasant_surprised": "surprise",
    "contempt": "contempt", "boredom": "boredom", "bored": "boredom",
    "excited": "excited", "excitement": "excited", "exc": "excited",
    "frustrated": "frustrated", "frustration": "frustrated", "fru": "frustrated",
    "love": "love", "other": "other", "oth": "other",
}

# Approximate placement on Russell's circumplex, valence and arousal in [-1, 1].
_VA: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0), "calm": (0.4, -0.6), "happy": (0.8, 0.5), "sad": (-0.7, -0.5),
    "angry": (-0.6, 0.8), "fear": (-0.7, 0.7), "disgust": (-0.7, 0.3), "surprise": (0.2, 0.8),
    "contempt": (-0.5, 0.2), "boredom": (-0.3, -0.7), "excited": (0.7, 0.9),
    "frustrated": (-0.5, 0.5), "love": (0.9, 0.3), "other": (0.0, 0.0),
}


def corpus_labels(corpus: str) -> dict[str, str | None]:
    """Native -> canonical map of ``corpus``."""
    try:
        return dict(CORPUS_LABELS[corpus])
    except KeyError:
        raise LabelError(f"no label map for corpus {corpus!r}; known: "
                         f"{', '.join(sorted(CORPUS_LABELS))}") from None


def normalise_label(label: str) -> str | None:
    """Map a free-form label (``"Happiness"``, ``"ANG"``, ``"surprised"``) to a canonical one.

    Returns ``None`` when the spelling is unknown.
    """
    key = label.strip().lower().replace(" ", "_").replace("-", "_")
    return _SYNONYMS.get(key)


def unify(corpus: str, native: str) -> str | None:
    """Canonical label of ``native`` in ``corpus`` (``None`` where the corpus has no counterpart).

    Corpora without a fixed label set (the generic loaders) fall back to :func:`normalise_label`.
    """
    table = CORPUS_LABELS.get(corpus)
    if table is None:
        return normalise_label(native)
    if native in table:
        return table[native]
    raise LabelError(f"{corpus}: unknown native label {native!r}; known: {', '.join(table)}")


def shared_labels(*corpora: str | Iterable[str]) -> list[str]:
    """Canonical labels present in every given corpus (a name or an iterable of canonical labels).

    The order follows :data:`CANONICAL`. Used for cross-corpus training and testing.
    """
    sets = []
    for c in corpora:
        if isinstance(c, str):
            sets.append({v for v in corpus_labels(c).values() if v is not None})
        else:
            sets.append(set(c))
    if not sets:
        return []
    common = set.intersection(*sets)
    return [lab for lab in CANONICAL if lab in common]


def iemocap_4class(label: str) -> str | None:
    """The common 4-class IEMOCAP scheme: neutral, happy (excited merged in), sad, angry.

    Accepts native IEMOCAP codes or canonical labels; everything else gives ``None``.
    """
    canon = CORPUS_LABELS["iemocap"].get(label, label)
    if canon == "excited":
        return "happy"
    return canon if canon in ("neutral", "happy", "sad", "angry") else None


def valence_arousal(label: str) -> tuple[float, float]:
    """Approximate (valence, arousal) in [-1, 1] of a canonical label, for dimensional targets."""
    try:
        return _VA[label]
    except KeyError:
        raise LabelError(f"no valence/arousal placement for {label!r}") from None
