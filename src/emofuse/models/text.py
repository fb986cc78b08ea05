"""Text models: lexicon baselines (NRC, VADER), TF-IDF + logistic regression, a small MLP head
over frozen sentence embeddings, and all-MiniLM-L6-v2 fine-tuned end to end.

Every model handles single-label (``y``: class indices, outputs softmax probabilities) and
multi-label tasks (``Y``: ``(n, L)`` 0/1, outputs per-label sigmoid probabilities).

============================  =====================================================  ========
name (registry)               what                                                   trained
============================  =====================================================  ========
``lexicon_rule``              NRC emotion-word counts mapped onto the classes        no
``lexicon_lr``                logistic regression on NRC rates + VADER scores        yes
``tfidf_lr``                  word (1-2) + character (2-5) n-gram TF-IDF, logistic   yes
                              regression
``minilm_mlp``                MLP head on frozen MiniLM embeddings (Lightning)       yes
``minilm_finetune``           MiniLM + mean pooling + linear head, fine-tuned        yes
                              (Lightning); optional context as a second segment
============================  =====================================================  ========
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import ConfigError
from ..features.minilm import minilm_path
from ..features.text import NRC_EMOTIONS, lexicon_cached
from . import register_model

__all__ = ["LexiconRule", "LexiconLR", "TfidfLR", "EmbeddingMLP", "MiniLMClassifier",
           "TokenDataset", "LengthBucketSampler", "collate_tokens", "tokenize", "TimeBudget",
           "predict_module", "class_weights", "NRC_TO_LABELS", "adamw_warmup_linear"]

#: NRC emotion -> the label names it stands for (canonical and GoEmotions spellings).
NRC_TO_LABELS: dict[str, tuple[str, ...]] = {
    "anger": ("angry", "anger"), "fear": ("fear",), "joy": ("happy", "joy"),
    "sadness": ("sad", "sadness"), "surprise": ("surprise",), "disgust": ("disgust",),
    "trust": ("love", "admiration"), "anticipation": ("excitement", "optimism"),
}


def class_weights(y: np.ndarray, n_classes: int) -> list[float]:
    """Balanced class weights ``n / (C * count)`` (absent classes get 1)."""
    counts = np.bincount(np.asarray(y, int), minlength=n_classes).astype(float)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
    return [float(v) for v in w]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# -- lexicon baselines ------------------------------------------------------------------------


@register_model("lexicon_rule")
class LexiconRule:
    """Zero-shot NRC baseline: each class scores the NRC words of its emotion; a text with no
    emotion word goes to ``neutral`` (when a class) or the most frequent training class."""

    def __init__(self, *, classes: Sequence[str]) -> None:
        self.classes = list(classes)
        self.prior = np.full(len(self.classes), 1.0 / len(self.classes))

    def fit(self, texts: Sequence[str], y: np.ndarray, *, multilabel: bool = False) -> LexiconRule:
        y = np.asarray(y)
        self.prior = (y.mean(0) if multilabel else
                      np.bincount(y, minlength=len(self.classes)) / max(1, len(y)))
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        feats = lexicon_cached(texts)[:, :len(NRC_EMOTIONS)]
        scores = np.zeros((len(texts), len(self.classes)))
        for j, emo in enumerate(NRC_EMOTIONS):
            for name in NRC_TO_LABELS.get(emo, ()):
                if name in self.classes:
                    scores[:, self.classes.index(name)] += feats[:, j]
        empty = scores.sum(1) == 0
        fallback = (self.classes.index("neutral") if "neutral" in self.classes
                    else int(np.argmax(self.prior)))
        scores[empty, fallback] = 1.0
        scores += 1e-3 * self.prior  # break ties by frequency
        return scores / scores.sum(1, keepdims=True)


def _linear(C: float, multilabel: bool, class_weight: str | None, max_iter: int = 3000) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if multilabel:
        return OneVsRestClassifier(LogisticRegression(C=C, solver="liblinear", max_iter=max_iter,
                                                      class_weight=class_weight))
    return LogisticRegression(C=C, max_iter=max_iter, class_weight=class_weight)


class _SklearnText:
    """Shared fit/predict of the scikit-learn text models (``self._features`` -> matrix)."""

    C: float
    class_weight: str | None

    def fit(self, texts: Sequence[str], y: np.ndarray, *, multilabel: bool = False,
            n_classes: int | None = None) -> Any:
        """Fit on ``texts``; ``n_classes`` sizes the output when the last classes are absent
        from training (single-label)."""
        X = self._features(texts, fit=True)
        self.multilabel = multilabel
        y = np.asarray(y)
        self.model = _linear(self.C, multilabel, self.class_weight)
        self.model.fit(X, y)
        if not multilabel:  # classes absent from training still get a (zero) column
            self.n_classes = max(int(y.max()) + 1, n_classes or 0)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        p = self.model.predict_proba(self._features(texts, fit=False))
        if self.multilabel:
            return p
        out = np.zeros((len(texts), max(self.n_classes, p.shape[1])))
        out[:, self.model.classes_] = p
        return out


@register_model("lexicon_lr")
class LexiconLR(_SklearnText):
    """Logistic regression on the 14 lexicon features (NRC rates, VADER scores)."""

    def __init__(self, *, C: float = 1.0, class_weight: str | None = None) -> None:
        self.C, self.class_weight = C, class_weight

    def _features(self, texts: Sequence[str], *, fit: bool) -> np.ndarray:
        from sklearn.preprocessing import StandardScaler

        X = lexicon_cached(texts)
        if fit:
            self.scaler = StandardScaler().fit(X)
        return self.scaler.transform(X)


@register_model("tfidf_lr")
class TfidfLR(_SklearnText):
    """TF-IDF of word and character n-grams (sublinear tf), logistic regression."""

    def __init__(self, *, C: float = 4.0, word_ngrams: Sequence[int] = (1, 2),
                 char_ngrams: Sequence[int] = (2, 5), min_df: int = 2,
                 max_features: int = 300_000, class_weight: str | None = None) -> None:
        self.C, self.class_weight = C, class_weight
        self.word_ngrams, self.char_ngrams = tuple(word_ngrams), tuple(char_ngrams)
        self.min_df, self.max_features = min_df, max_features

    def _features(self, texts: Sequence[str], *, fit: bool) -> Any:
        from scipy.sparse import hstack

        if fit:
            key = (tuple(texts), self.word_ngrams, self.char_ngrams, self.min_df,
                   self.max_features)
            if _TFIDF_MEMO.key != key:  # a grid over C re-uses the vectorisers
                _TFIDF_MEMO.key, _TFIDF_MEMO.value = None, None
                _TFIDF_MEMO.value, _TFIDF_MEMO.key = self._fit_vectorisers(texts), key
            self.vecs, X = _TFIDF_MEMO.value
            return X
        return hstack([v.transform(texts) for v in self.vecs]).tocsr()

    def _fit_vectorisers(self, texts: Sequence[str]) -> tuple[list[Any], Any]:
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer

        common = dict(sublinear_tf=True, min_df=self.min_df, lowercase=True,
                      max_features=self.max_features, dtype=np.float32)
        vecs = [TfidfVectorizer(analyzer="word", ngram_range=self.word_ngrams,
                                token_pattern=r"(?u)\b\w+\b|[!?]", **common),
                TfidfVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, **common)]
        return vecs, hstack([v.fit_transform(texts) for v in vecs]).tocsr()


@dataclass
class _Memo:
    """One remembered value and the key it was computed for."""

    key: Any = None
    value: Any = None


#: The last fitted TF-IDF vectorisers and training matrix (one entry).
_TFIDF_MEMO = _Memo()


# -- torch models -----------------------------------------------------------------------------


class _Classifier(pl.LightningModule):
    """Loss, logging and optimiser shared by the two Lightning text models."""

    def _setup_loss(self, n_classes: int, multilabel: bool,
                    weights: Sequence[float] | None) -> None:
        self.multilabel = multilabel
        w = torch.tensor(list(weights), dtype=torch.float32) if weights else None
        if w is not None and len(w) != n_classes:
            raise ConfigError(f"class_weights has {len(w)} values for {n_classes} classes")
        self.register_buffer("loss_weight", w if w is not None else torch.ones(n_classes),
                             persistent=False)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            return nn.functional.binary_cross_entropy_with_logits(logits, y.float())
        return nn.functional.cross_entropy(logits, y, weight=self.loss_weight)

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        loss = self.loss(self(batch), batch["y"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["y"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], _: int) -> None:
        logits = self(batch)
        n = len(batch["y"])
        self.log("val_loss", self.loss(logits, batch["y"]), prog_bar=True, batch_size=n)
        if not self.multilabel:
            acc = (logits.argmax(1) == batch["y"]).float().mean()
            self.log("val_acc", acc, prog_bar=True, batch_size=n)

    def proba(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)


@register_model("minilm_mlp")
class EmbeddingMLP(_Classifier):
    """MLP head (one hidden layer, GELU, dropout) over fixed sentence embeddings ``batch["x"]``."""

    def __init__(self, *, in_dim: int, n_classes: int, hidden: int = 256, dropout: float = 0.2,
                 lr: float = 1e-3, weight_decay: float = 1e-4, multilabel: bool = False,
                 class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._setup_loss(n_classes, multilabel, class_weights)
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden or in_dim, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["x"])

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)


@register_model("minilm_finetune")
class MiniLMClassifier(_Classifier):
    """all-MiniLM-L6-v2 with mean pooling, dropout and a linear head, fine-tuned end to end.

    Parameters
    ----------
    freeze_embeddings
        Keep the token embeddings fixed (half of the parameters; faster on CPU).
    train_layers
        Train only the top ``train_layers`` transformer layers (``None``: all).
    bf16
        Run the encoder under bfloat16 autocast (weights stay float32): about twice as fast
        on CPUs with AVX512-BF16/AMX, at a small cost in precision.
    lr, head_lr
        Learning rates of the encoder and of the head; linear warm-up over ``warmup`` of
        ``total_steps``, then linear decay to zero.
    """

    def __init__(self, *, n_classes: int, multilabel: bool = False,
                 encoder_path: str | None = None, lr: float = 5e-5, head_lr: float = 1e-3,
                 weight_decay: float = 0.01, warmup: float = 0.06, total_steps: int = 1000,
                 dropout: float = 0.1, freeze_embeddings: bool = True,
                 train_layers: int | None = None,
                 class_weights: Sequence[float] | None = None, bf16: bool = False,
                 pretrained: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._setup_loss(n_classes, multilabel, class_weights)
        self.encoder = load_transformer(encoder_path, pretrained=pretrained)
        hidden = self.encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)
        if freeze_embeddings:
            self.encoder.embeddings.requires_grad_(False)
        if train_layers is not None:
            layers = self.encoder.encoder.layer
            if not 0 <= train_layers <= len(layers):
                raise ConfigError(f"train_layers must be 0..{len(layers)}, got {train_layers}")
            for layer in layers[: len(layers) - train_layers]:
                layer.requires_grad_(False)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        extra = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
        with torch.autocast(mask.device.type, dtype=torch.bfloat16,
                            enabled=bool(self.hparams.bf16)):
            h = self.encoder(input_ids=batch["input_ids"], attention_mask=mask,
                             **extra).last_hidden_state
        h = h.float()
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        total = max(1, int(hp.total_steps))
        opt, sched = adamw_warmup_linear(
            [q for q in self.encoder.parameters() if q.requires_grad], self.head.parameters(),
            lr=hp.lr, head_lr=hp.head_lr, weight_decay=hp.weight_decay, total=total,
            warm=max(1, int(hp.warmup * total)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def load_transformer(path: str | None = None, *, pretrained: bool = True) -> nn.Module:
    """The MiniLM transformer (``transformers`` BertModel) from the shipped folder, offline.

    ``pretrained=False`` builds the same architecture with random weights (for loading a
    fine-tuned state dict without reading the original weights twice).
    """
    from ..features.minilm import _offline

    _offline()
    from transformers import AutoConfig, AutoModel

    folder = str(path or minilm_path())
    if pretrained:
        return AutoModel.from_pretrained(folder, local_files_only=True)
    return AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))


_TOKENIZERS: dict[str, Any] = {}


def _tokenizer(path: str | None) -> Any:
    from ..features.minilm import _offline

    _offline()
    from transformers import AutoTokenizer

    folder = str(path or minilm_path())
    if folder not in _TOKENIZERS:
        _TOKENIZERS[folder] = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return _TOKENIZERS[folder]


def tokenize(texts: Sequence[str], *, contexts: Sequence[str] | None = None,
             max_len: int = 128, encoder_path: str | None = None) -> list[list[int]]:
    """Token ids of each text: ``[CLS] text [SEP]``, followed by ``context [SEP]`` when a
    non-empty context is given; the context is cut to fit ``max_len`` (the text only when it
    alone is too long)."""
    tok = _tokenizer(encoder_path)
    ids = tok(list(texts), truncation=True, max_length=max_len)["input_ids"]
    if contexts is None or not any(contexts):
        return ids
    ctx = tok(list(contexts), add_special_tokens=False, truncation=True,
              max_length=max_len)["input_ids"]
    out = []
    for a, b in zip(ids, ctx):
        room = max_len - len(a) - 1
        out.append(a + b[:room] + [tok.sep_token_id] if b and room > 2 else a)
    return out


class TokenDataset(Dataset):
    """Pre-tokenised items (lists of ids) with optional targets."""

    def __init__(self, ids: Sequence[Sequence[int]], y: np.ndarray | None = None) -> None:
        self.ids = [list(i) for i in ids]
        self.y = None if y is None else np.asarray(y)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], Any]:
        return self.ids[i], (None if self.y is None else self.y[i])

    def lengths(self) -> list[int]:
        return [len(i) for i in self.ids]


def collate_tokens(items: Sequence[tuple[list[int], Any]], *, sep_id: int = 102,
                   pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest item (dynamic padding); token types after the first [SEP]."""
    n = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), n), dtype=torch.long)
    types = torch.zeros((len(items), n), dtype=torch.long)
    for k, (ids, _) in enumerate(items):
        input_ids[k, :len(ids)] = torch.tensor(ids)
        mask[k, :len(ids)] = 1
        if sep_id in ids[:-1]:
            first = ids.index(sep_id)
            types[k, first + 1:len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
    ys = [y for _, y in items]
    if ys[0] is not None:
        arr = np.asarray(ys)
        batch["y"] = torch.as_tensor(arr, dtype=torch.float32 if arr.ndim == 2 else torch.long)
    return batch


def adamw_warmup_linear(encoder_params: Any, head_params: Any, *, lr: float, head_lr: float,
                        weight_decay: float, total: int, warm: int) -> tuple[Any, Any]:
    """AdamW for an encoder and its head (no weight decay on the encoder's biases and norms;
    the head at its own rate) and a per-step schedule: linear warm-up over ``warm`` steps, then
    linear decay to zero at ``total``."""
    decay, no_decay = [], []
    for q in encoder_params:
        (no_decay if q.ndim == 1 else decay).append(q)
    groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay},
              {"params": no_decay, "lr": lr, "weight_decay": 0.0},
              {"params": list(head_params), "lr": head_lr, "weight_decay": weight_decay}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]])

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of items of similar length (less padding); batch order shuffled each epoch
    when ``shuffle`` (seeded by ``seed`` + epoch), else sorted by length."""

    def __init__(self, lengths: Sequence[int], *, batch_size: int, shuffle: bool = True,
                 seed: int = 0, bucket: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.seed, self.bucket = batch_size, shuffle, seed, bucket
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            yield from (order[k:k + self.batch_size].tolist()
                        for k in range(0, len(order), self.batch_size))
            return
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.bucket
        batches = []
        for k in range(0, len(order), size):  # sort within large random buckets
            chunk = order[k:k + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[j:j + self.batch_size].tolist()
                        for j in range(0, len(chunk), self.batch_size)]
        for b in rng.permutation(len(batches)):
            yield batches[b]


def token_loader(ids: Sequence[Sequence[int]], y: np.ndarray | None = None, *,
                 batch_size: int = 32, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """DataLoader over pre-tokenised items with length bucketing and dynamic padding."""
    ds = TokenDataset(ids, y)
    sampler = LengthBucketSampler(ds.lengths(), batch_size=batch_size, shuffle=shuffle,
                                  seed=seed)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate_tokens, num_workers=0)


def array_loader(x: np.ndarray, y: np.ndarray | None = None, *, batch_size: int = 64,
                 shuffle: bool = False, seed: int = 0) -> DataLoader:
    """DataLoader of ``{"x", "y"}`` batches over an embedding matrix."""
    x_t = torch.as_tensor(np.asarray(x, np.float32))
    y_t = None if y is None else torch.as_tensor(
        np.asarray(y), dtype=torch.float32 if np.asarray(y).ndim == 2 else torch.long)

    class _DS(Dataset):
        def __len__(self) -> int:
            return len(x_t)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"x": x_t[i]} if y_t is None else {"x": x_t[i], "y": y_t[i]}

    gen = torch.Generator().manual_seed(seed)
    return DataLoader(_DS(), batch_size=batch_size, shuffle=shuffle, generator=gen)


@torch.no_grad()
def predict_module(module: _Classifier, loader: DataLoader) -> np.ndarray:
    """Probabilities of ``module`` over ``loader`` in the dataset's order (the bucketing
    sampler's permutation is undone)."""
    module.eval()
    outs, index = [], []
    sampler = getattr(loader, "batch_sampler", None)
    batches = list(iter(sampler)) if isinstance(sampler, LengthBucketSampler) else None
    for k, batch in enumerate(loader):
        outs.append(module.proba(module(batch)).float().numpy())
        if batches is not None:
            index += batches[k]
    proba = np.concatenate(outs) if outs else np.zeros((0, module.hparams.n_classes))
    if batches is None:
        return proba
    out = np.empty_like(proba)
    out[np.asarray(index)] = proba
    return out


class TimeBudget(pl.Callback):
    """Stop training before the next epoch would run past ``minutes`` (and at any batch once
    past it); the best checkpoint so far is kept by the harness.

    Time is this process's CPU time divided by its torch threads, i.e. the wall time the run
    would take on dedicated cores, so that other jobs on a shared machine do not cut it short;
    ``clock="wall"`` measures wall time instead.
    """

    def __init__(self, minutes: float, *, clock: str = "cpu") -> None:
        if clock not in ("cpu", "wall"):
            raise ConfigError(f"TimeBudget clock must be 'cpu' or 'wall', not {clock!r}")
        self.seconds = 60.0 * minutes
        self.clock = clock
        self.stopped = False

    def _now(self) -> float:
        if self.clock == "wall":
            return time.perf_counter()
        return time.process_time() / max(1, torch.get_num_threads())

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.t0 = self._now()
        self.epochs = 0

    def elapsed(self) -> float:
        return self._now() - self.t0

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.elapsed() > self.seconds:
            trainer.should_stop = self.stopped = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs += 1
        elapsed = self.elapsed()
        if elapsed + elapsed / self.epochs > self.seconds:
            trainer.should_stop = self.stopped = True
