"""Text emotion: :class:`TextPredictor`, a trained model folder (``emofuse train`` on a text
config) behind the predictor protocol.

>>> from emofuse.inference.text import TextPredictor
>>> p = TextPredictor.load("runs/ter-dair")                      # doctest: +SKIP
>>> p.predict("I can't believe we won!").probabilities           # doctest: +SKIP
>>> [r.label for r in p.analyse(["I can't believe we won!"])]      # doctest: +SKIP
['happy']

Bad input never crashes a batch: empty or whitespace-only text, text over ``max_chars`` (1 MB
pasted in: truncated with a notice), invalid UTF-8 bytes (replaced), emoji only (read as
words), mostly non-Latin scripts and Latin-script text whose words are mostly outside the
encoder's English vocabulary (the encoder was trained on English) each give a prediction with a
warning in :attr:`TextPrediction.warnings`.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .card import ModelCard, load_weights, read_card
from .protocol import register_predictor
from .types import ModalityOutput

__all__ = ["TextPrediction", "TextPredictor", "MLPHead", "predict_texts", "check_text",
           "english_words", "MAX_CHARS"]

_SPEAKER = re.compile(r"^[^:|]{1,40}: ")
#: Longest input passed on to the model; the encoder reads at most its ``max_len`` tokens.
MAX_CHARS = 5_000

#: A text of at least ``MIN_WORDS`` words (2+ letters) of which under ``MIN_ENGLISH_SHARE`` are
#: whole words of the encoder's (English, uncased) WordPiece vocabulary is called "not English".
#: Chosen on the English train splits of dair-ai, MELD and GoEmotions (the largest share, then
#: the fewest words, flagging at most 0.1 % of their 69k texts: 0.07 %); it flags 95.6 % of
#: nEMO's 90 Polish sentences (docs/notes/text_language_check.py).
MIN_WORDS, MIN_ENGLISH_SHARE = 4, 0.5
_WORD = re.compile(r"[^\W\d_]{2,}")


@dataclass
class TextPrediction:
    """One prediction: ``label`` (top class), ``scores`` (label -> probability), for
    multi-label models ``labels`` (those over their thresholds), and ``warnings``."""

    text: str
    label: str
    scores: dict[str, float]
    labels: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def _smollm2() -> tuple[Any, Any]:
    """The shipped SmolLM2-135M-Instruct (tokenizer, model), loaded once per process."""
    from ..augment.text import _load_smollm2, smollm2_gguf

    return _load_smollm2(str(smollm2_gguf()))


@functools.cache
def _english_vocab() -> frozenset[str]:
    """The whole words of MiniLM's WordPiece vocabulary (empty when MiniLM is not installed)."""
    import json

    try:
        from ..features.minilm import minilm_path

        path = minilm_path() / "tokenizer.json"
        vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    except (ImportError, OSError, KeyError, ValueError, ConfigError):
        return frozenset()
    return frozenset(w for w in vocab if not w.startswith("##"))


def english_words(text: str) -> tuple[int, int]:
    """``(in_vocab, words)``: of the words (2+ letters) of ``text``, lowercased and without
    accents as the encoder reads them, how many are whole words of its English vocabulary."""
    plain = "".join(ch for ch in unicodedata.normalize("NFD", text.lower())
                    if unicodedata.category(ch) != "Mn")
    words = _WORD.findall(plain)
    vocab = _english_vocab()
    return sum(w in vocab for w in words), len(words)


def _decode(item: str | bytes, notes: list[str]) -> str:
    if isinstance(item, (bytes, bytearray)):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError:
            notes.append("invalid UTF-8 bytes were replaced")
            return bytes(item).decode("utf-8", errors="replace")
    if not isinstance(item, str):
        raise DataError(None, f"expected text, got {type(item).__name__}")
    if any("\udc80" <= ch <= "\udcff" for ch in item):  # surrogate-escaped bytes
        notes.append("invalid UTF-8 bytes were replaced")
        item = item.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")
    return item


def check_text(item: str | bytes, *, max_chars: int = MAX_CHARS) -> tuple[str, list[str]]:
    """Decode and bound one input; return the text to use and warnings about it."""
    notes: list[str] = []
    text = _decode(item, notes)
    if len(text) > max_chars:
        notes.append(f"text of {len(text)} characters truncated to the first {max_chars}")
        text = text[:max_chars]
    if not text.strip():
        notes.append("empty text: the prediction carries no information")
        return "", notes
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        import emoji

        if emoji.emoji_count(text):
            notes.append("emoji only: read through their names")
        else:
            notes.append("no letters in the text: the prediction is unreliable")
    else:
        if len(letters) < 3 and not any(ch.isdigit() for ch in text):
            notes.append(f"text too short ({len(letters)} letter{'s' * (len(letters) != 1)}): "
                         "the prediction is unreliable")
        other = 1 - sum("LATIN" in unicodedata.name(ch, "") for ch in letters) / len(letters)
        if other > 0.5:
            notes.append("mostly non-Latin script: the model was trained on English text; "
                         "the prediction is unreliable")
        else:
            if other >= 0.1:
                notes.append("mixed scripts: the non-Latin part is read poorly (the model was "
                             "trained on English text)")
            known, n = english_words(text)
            if n >= MIN_WORDS and _english_vocab() and known < MIN_ENGLISH_SHARE * n:
                notes.append(f"not English? only {known} of {n} words are English: the model "
                             "was trained on English text; the prediction is unreliable")
    return text, notes


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function, elementwise (float64; relative error below 1.2e-7: Numerical Recipes'
    Chebyshev fit of erfc), so that the GELU of the MLP head needs neither torch nor scipy."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(-z * z + poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


class MLPHead:
    """The ``minilm_mlp`` network (:class:`emofuse.models.text.EmbeddingMLP`) at inference, in
    numpy: ``Linear -> GELU -> Linear`` (or one ``Linear`` when ``hidden`` is 0; dropout is the
    identity), then softmax, or sigmoid for a multi-label model. No torch needed."""

    def __init__(self, state: dict[str, np.ndarray], params: dict[str, Any]) -> None:
        in_dim, n_classes = int(params["in_dim"]), int(params["n_classes"])
        hidden = int(params.get("hidden", 256) or 0)
        dims = [in_dim, hidden, n_classes] if hidden else [in_dim, n_classes]
        names = [1, 4] if hidden else [1]
        want = {}
        for i, (a, b) in zip(names, zip(dims, dims[1:])):
            want[f"net.{i}.weight"], want[f"net.{i}.bias"] = (b, a), (b,)
        have = {k: tuple(v.shape) for k, v in state.items()}
        if have != want:
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            bad = sorted(k for k in set(want) & set(have) if want[k] != have[k])
            raise ValueError("; ".join(
                [f"missing {', '.join(missing)}"] * bool(missing)
                + [f"unexpected {', '.join(extra)}"] * bool(extra)
                + [f"{k}: shape {list(have[k])}, expected {list(want[k])}" for k in bad]))
        self.layers = [(np.asarray(state[f"net.{i}.weight"], np.float64).T,
                        np.asarray(state[f"net.{i}.bias"], np.float64)) for i in names]
        self.in_dim, self.n_classes = in_dim, n_classes
        self.multilabel = bool(params.get("multilabel"))
        self.state = state

    def logits(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float64)
        for k, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if k < len(self.layers) - 1:
                h = 0.5 * h * (1.0 + _erf(h / np.sqrt(2.0)))  # exact GELU, as nn.GELU()
        return h

    def proba(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        if self.multilabel:
            return 1.0 / (1.0 + np.exp(-z))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


@register_predictor("text")
class TextPredictor:
    """A saved text model (``minilm_finetune`` or ``minilm_mlp``) ready to predict.

    A ``minilm_mlp`` model runs without torch: its head in numpy (:class:`MLPHead`) on the
    embeddings of :func:`emofuse.features.text.minilm` (onnxruntime when the fast encoder is
    available); :attr:`network`, the torch network, is built on first use (ONNX export).
    Multi-label models (sigmoid outputs) are rescaled to sum to one by :meth:`predict`.
    """

    modality = "text"

    def __init__(self, module: Any, card: ModelCard | dict[str, Any], *,
                 head: MLPHead | None = None) -> None:
        if module is None and head is None:
            raise ValueError("TextPredictor needs a torch module or an MLPHead")
        self._module = None if module is None else module.eval()
        self.head = head
        self.card = card if isinstance(card, ModelCard) else ModelCard.of(card)
        self.labels: list[str] = list(card["labels"])
        self.multilabel = bool(card.get("multilabel"))
        self.thresholds = np.asarray(card.get("thresholds") or [0.5] * len(self.labels))
        self.features: dict[str, Any] = dict(card.get("features") or {})
        self.max_len = int(card.get("max_len", 128))
        #: the model folder (``load``), named in errors about it
        self.source = Path(".")

    @property
    def network(self) -> Any:
        """The torch network (built from the head's weights on first use for ``minilm_mlp``)."""
        if self._module is None:
            import torch

            from ..models import build_model

            assert self.head is not None
            module = build_model("minilm_mlp", **dict(self.card["model"].get("params") or {}))
            module.load_state_dict({k: torch.from_numpy(np.array(v))
                                    for k, v in self.head.state.items()})
            self._module = module.eval()
        return self._module

    @property
    def in_dim(self) -> int:
        """Width of the head's input (384, or 768 with dialogue context)."""
        if self.head is not None:
            return self.head.in_dim
        return int(self.network.hparams.in_dim)

    @classmethod
    def load(cls, model_dir: str | os.PathLike, card: ModelCard | None = None
             ) -> TextPredictor:
        """Read ``model.safetensors`` + ``card.json`` (no network, no pickle; no torch for a
        ``minilm_mlp`` model); ``card``: the folder's card when it was read already."""
        card = read_card(model_dir) if card is None else card
        spec = card.model or {}
        state = load_weights(model_dir, card, numpy=spec.get("name") == "minilm_mlp")
        if card.task != "text":
            raise DataError(model_dir, f"not a text model (card task: {card.task!r})")
        name, params = spec.get("name"), dict(spec.get("params") or {})
        if name not in ("minilm_finetune", "minilm_mlp"):
            raise DataError(Path(model_dir) / "card.json", f"unknown text model {name!r}")
        if name == "minilm_mlp":
            for key in ("in_dim", "n_classes"):
                if key not in params:
                    raise DataError(Path(model_dir) / "card.json",
                                    f"minilm_mlp needs model.params.{key}")
            try:
                head = MLPHead(state, params)
            except (ValueError, TypeError) as exc:
                raise DataError(Path(model_dir) / "model.safetensors",
                                f"weights do not fit the model in card.json ({exc})") from None
            pred = cls(None, card, head=head)
            pred.source = Path(model_dir)
            return pred
        from ..models import build_model

        params["pretrained"] = False  # the weights come from the folder
        module = build_model(name, **params)
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise DataError(Path(model_dir) / "model.safetensors",
                            f"weights do not fit the model in card.json ({exc})") from None
        return cls(module, card)

    @property
    def module(self) -> Any:
        """For ONNX export: the ``minilm_mlp`` head over sentence embeddings, taking a plain
        tensor; a head whose card inputs add prototype similarities (and no language-model
        state) computes them inside, so it takes the MiniLM embedding too. ``None`` for other
        models."""
        if self.card.name != "minilm_mlp":
            return None
        from .onnx_wrap import dict_input, with_prototypes

        net = dict_input(self.network, "x")
        spec = self.features.get("inputs") or {}
        if (pr := spec.get("prototypes")) and not spec.get("llm"):
            from ..features.text_prototypes import PROTOTYPES, prototype_matrix

            net = with_prototypes(net, prototype_matrix(pr["labels"]),
                                  [len(PROTOTYPES[c]) for c in pr["labels"]],
                                  pooling=pr["pooling"], centre=bool(pr.get("centre")),
                                  keep_input=spec.get("minilm", True))
        return net

    def example_input(self) -> Any:
        import torch

        from ..features.text import minilm

        emb = minilm(["what a wonderful surprise", "this is awful"], max_len=self.max_len)
        spec = self.features.get("inputs") or {}
        if spec.get("prototypes") and not spec.get("llm"):   # module() takes the embedding
            return torch.from_numpy(np.asarray(emb, dtype=np.float32))
        if self.in_dim > emb.shape[1]:  # a context model (or language-model states): zeros
            emb = np.concatenate([emb, np.zeros((len(emb), self.in_dim - emb.shape[1]))], axis=1)
        return torch.from_numpy(np.asarray(emb, dtype=np.float32))

    def _clean(self, texts: Sequence[str]) -> list[str]:
        from ..features.text import clean_text

        opts = {k: self.features[k] for k in ("urls", "mentions", "markup", "emoji")
                if k in self.features}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [clean_text(t, max_chars=MAX_CHARS, **opts) for t in texts]

    def predict_proba(self, texts: Sequence[str], *, contexts: Sequence[str] | None = None
                      ) -> np.ndarray:
        """Probabilities ``(n, labels)`` of already checked texts.

        ``contexts`` (models trained with ``context_turns``): for each text, its dialogue's
        previous utterances, most recent first, as ``"Speaker: text | Speaker: text"``.
        """
        if not texts:
            return np.zeros((0, len(self.labels)))
        clean = self._clean(texts)
        if self.card["model"]["name"] == "minilm_finetune":
            from ..models.text import predict_module, token_loader, tokenize

            ctx = self._clean(contexts) if contexts and self.features.get("context_turns") \
                else None
            ids = tokenize(clean, contexts=ctx, max_len=self.max_len)
            return predict_module(self.network, token_loader(ids, batch_size=64))
        from ..features.text import minilm

        emb = minilm(clean, max_len=self.max_len)
        if self.features.get("inputs"):   # prototypes / language-model states appended
            emb = self._inputs(clean, emb)
        elif self.in_dim > emb.shape[1]:  # trained with dialogue context
            emb = np.concatenate([emb, self._context_embeddings(contexts, len(clean))], axis=1)
        if self.head is not None:
            return self.head.proba(emb)
        from ..models.text import array_loader, predict_module

        return predict_module(self.network, array_loader(emb, batch_size=256))

    def _inputs(self, clean: Sequence[str], emb: np.ndarray) -> np.ndarray:
        """The head's input as the card's ``features.inputs`` says: the MiniLM embedding,
        zero-shot prototype similarities and SmolLM2's prompted states, in that order (as
        :func:`emofuse.recipes.xcorpus_text_transfer.feature_matrix` built them in training)."""
        spec = self.features["inputs"]
        blocks = [emb] if spec.get("minilm", True) else []
        if pr := spec.get("prototypes"):
            from ..features.text_prototypes import prototype_features

            blocks.append(prototype_features(emb, labels=pr["labels"], pooling=pr["pooling"],
                                             centre=bool(pr.get("centre"))))
        if llm := spec.get("llm"):
            from ..features.llm_text import STATE, llm_forward, state_blocks

            tok, model = _smollm2()
            layers = sorted({int(STATE.match(n).group(2)) for n in llm["states"]  # type: ignore[union-attr]
                             })
            a = llm_forward(clean, tokenizer=tok, model=model, labels=llm["score_labels"],
                            prompt=llm["prompt"], max_len=int(llm["max_len"]), batch_size=16,
                            layers=layers)
            a = a.astype(np.float16).astype(np.float32)   # as cached when it was trained
            d = (a.shape[1] - len(llm["score_labels"])) // (2 * len(layers))
            states = {"mean": a[:, :d * len(layers)], "last": a[:, d * len(layers):
                                                                 2 * d * len(layers)]}
            blocks += state_blocks(states, layers=layers, names=llm["states"])
        x = np.concatenate(blocks, 1).astype(np.float32)
        if x.shape[1] != self.in_dim:
            raise DataError(self.source / "card.json", f"features.inputs give {x.shape[1]} "
                            f"columns, the head takes {self.in_dim}")
        return x

    def _context_embeddings(self, contexts: Sequence[str] | None, n: int) -> np.ndarray:
        """Mean embedding of each context's utterances (``" | "``-separated, an optional
        ``"Speaker: "`` prefix dropped), as the MLP saw them in training; zeros when none."""
        from ..features.text import MINILM_DIM, minilm

        out = np.zeros((n, MINILM_DIM), np.float32)
        for i, c in enumerate(contexts or []):
            turns = [_SPEAKER.sub("", t).strip() for t in (c or "").split(" | ")]
            turns = self._clean([t for t in turns if t])
            if turns:
                out[i] = minilm(turns, max_len=self.max_len).mean(0)
        return out

    def predict(self, text: str) -> ModalityOutput:
        """The protocol: probabilities of one text (summing to one) and warnings about it."""
        clean, notes = check_text(text)
        p = np.asarray(self.predict_proba([clean])[0], dtype=np.float64)
        s = p.sum()
        return ModalityOutput(p / s if s > 0 else np.full(len(p), 1 / len(p)), warnings=notes)

    def analyse(self, items: Sequence[str | bytes], *,
                contexts: Sequence[str] | None = None) -> list[TextPrediction]:
        """Predictions for each item (str or bytes); bad input gets a warning, never a crash."""
        checked = [check_text(it) for it in items]
        proba = self.predict_proba([t for t, _ in checked], contexts=contexts)
        out = []
        for (text, notes), p in zip(checked, proba):
            top = int(np.argmax(p))
            labels = ([c for c, v, t in zip(self.labels, p, self.thresholds) if v >= t]
                      if self.multilabel else [self.labels[top]])
            out.append(TextPrediction(text[:200], self.labels[top],
                                      {c: round(float(v), 4) for c, v in zip(self.labels, p)},
                                      labels, notes))
        return out

    def analyse_file(self, path: str | Path, *, max_bytes: int = 50_000_000
                     ) -> list[TextPrediction]:
        """Predictions for each non-empty line of a text file (one utterance per line); a
        line with invalid UTF-8 bytes is predicted with a warning."""
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "file does not exist")
        if path.stat().st_size > max_bytes:
            raise DataError(path, f"file of {path.stat().st_size} bytes exceeds the "
                            f"{max_bytes}-byte limit")
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
        if b"\x00" in data[:8192]:
            raise DataError(path, "binary data (or UTF-16), not UTF-8 text")
        lines = [ln for ln in data.splitlines() if ln.strip()]
        if not lines:
            raise DataError(path, "no non-empty line to predict on")
        return self.analyse(lines)


def predict_texts(model_dir: str | Path, items: Sequence[str | bytes]) -> list[TextPrediction]:
    """Shortcut: load ``model_dir`` and predict ``items``."""
    return TextPredictor.load(model_dir).analyse(items)
