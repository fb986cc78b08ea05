"""all-MiniLM-L6-v2 partly fine-tuned for text emotion: the top transformer layers and a linear
head on the mean-pooled tokens trained, everything below frozen (the cross-corpus text suite's
``ft top2`` candidate, ``xcorpus-text-ft``).

>>> m = FineTunedMiniLM(top_layers=2, epochs=2).fit(texts, y, labels)     # doctest: +SKIP
>>> m.predict_proba(["what a lovely day"])                                # doctest: +SKIP
>>> m.save("runs/ft"); FineTunedMiniLM.load("runs/ft")                     # doctest: +SKIP

Training: a stratified, seeded subsample of at most ``max_train`` items; cross-entropy with
class weights ``count ** -class_balance`` (normalised to a mean of 1 over the items); AdamW
(no decay on biases and LayerNorm), linear warm-up over ``warmup`` of the steps then linear
decay to zero; batches of similar length (dynamic padding). The frozen part (token embeddings
and the lower layers) runs in eval mode without gradients; the trained layers keep the
encoder's own dropout. Pooling: the mean over the non-padding tokens, as sentence-transformers
does (no normalisation). One seed gives the same model on one thread.

Saved files: ``trained.safetensors`` (only the trained tensors: the top layers and the head)
and ``finetune.json`` (the base encoder's folder name and the sha256 of its
``model.safetensors``, the labels, the recipe, what training saw). Loading rebuilds the encoder
from the installed base and refuses a base whose weights differ from the one trained on.
torch and transformers are imported when a model is built.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["CARD", "FORMAT", "WEIGHTS", "FineTunedMiniLM", "stratified_subsample"]

CARD = "finetune.json"
WEIGHTS = "trained.safetensors"
FORMAT = "emofuse-minilm-partial-finetune/1"
#: items per batch when predicting (fixed: the padding of a batch changes the last digits)
_PREDICT_BATCH = 64


def stratified_subsample(y: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``n`` items of ``y`` keeping the class proportions (largest
    remainders; every class keeps at least one item), drawn with ``seed``."""
    y = np.asarray(y)
    if len(y) <= n:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (n / len(y))
    take = np.maximum(np.floor(exact).astype(int), 1)
    rest = n - int(take.sum())
    if rest > 0:
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        take[order[:rest]] += 1
    take = np.minimum(take, counts)
    out = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(out))


def _base_sha256(base: Path) -> str:
    from ..paths import file_sha256

    f = base / "model.safetensors"
    if not f.is_file():
        raise DataError(base, "no model.safetensors: not a MiniLM model folder")
    return file_sha256(f)


class FineTunedMiniLM:
    """MiniLM with its top ``top_layers`` transformer layers and a linear head fine-tuned on
    mean-pooled tokens (see the module docstring for the recipe)."""

    RECIPE_KEYS = ("top_layers", "epochs", "batch_size", "max_len", "lr_encoder", "lr_head",
                   "weight_decay", "warmup", "class_balance", "max_train", "seed")

    def __init__(self, *, top_layers: int = 2, epochs: int = 2, batch_size: int = 32,
                 max_len: int = 64, lr_encoder: float = 5e-5, lr_head: float = 1e-3,
                 weight_decay: float = 0.01, warmup: float = 0.1, class_balance: float = 0.75,
                 max_train: int = 12000, seed: int = 0, num_threads: int | None = 1,
                 base_path: str | Path | None = None) -> None:
        if top_layers < 0 or epochs < 1 or batch_size < 1 or max_len < 4 or max_train < 2:
            raise ConfigError("FineTunedMiniLM: top_layers >= 0, epochs >= 1, batch_size >= 1, "
                              "max_len >= 4 and max_train >= 2")
        if not 0 <= warmup < 1 or not 0 <= class_balance <= 1:
            raise ConfigError("FineTunedMiniLM: warmup in [0, 1), class_balance in [0, 1]")
        self.top_layers, self.epochs, self.batch_size = int(top_layers), int(epochs), int(batch_size)
        self.max_len, self.lr_encoder, self.lr_head = int(max_len), float(lr_encoder), float(lr_head)
        self.weight_decay, self.warmup = float(weight_decay), float(warmup)
        self.class_balance, self.max_train, self.seed = (float(class_balance), int(max_train),
                                                         int(seed))
        self.num_threads = num_threads
        self._base = Path(base_path) if base_path else None
        self.labels: list[str] = []
        self.encoder: Any = None
        self.head: Any = None
        self.info: dict[str, Any] = {}

    # -- pieces ---------------------------------------------------------------------------------

    @property
    def base_path(self) -> Path:
        if self._base is None:
            from ..features.minilm import minilm_path

            self._base = minilm_path()
        return self._base

    def recipe(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.RECIPE_KEYS}

    def _threads(self) -> Any:
        """Context limiting torch to ``num_threads`` (restored afterwards)."""
        import contextlib

        import torch

        @contextlib.contextmanager
        def limit() -> Any:
            before = torch.get_num_threads()
            if self.num_threads:
                torch.set_num_threads(int(self.num_threads))
            try:
                yield
            finally:
                torch.set_num_threads(before)

        return limit()

    def _build(self, n_classes: int) -> None:
        import torch
        from torch import nn
        from transformers.utils import logging as hf_logging

        from .text import load_transformer

        hf_logging.disable_progress_bar()   # no "Loading weights" bar per model
        torch.manual_seed(self.seed)
        self.encoder = load_transformer(str(self.base_path))
        layers = self.encoder.encoder.layer
        if self.top_layers > len(layers):
            raise ConfigError(f"FineTunedMiniLM: top_layers must be 0..{len(layers)}, "
                              f"got {self.top_layers}")
        self.encoder.requires_grad_(False)
        for layer in self._trained_layers():
            layer.requires_grad_(True)
        self.head = nn.Linear(self.encoder.config.hidden_size, n_classes)

    def _trained_layers(self) -> list[Any]:
        layers = self.encoder.encoder.layer
        return list(layers[len(layers) - self.top_layers:]) if self.top_layers else []

    def _trained_prefixes(self) -> tuple[str, ...]:
        n = len(self.encoder.encoder.layer)
        return tuple(f"encoder.layer.{i}." for i in range(n - self.top_layers, n))

    def _mode(self, train: bool) -> None:
        self.encoder.eval()
        self.head.train(train)
        for layer in self._trained_layers():
            layer.train(train)

    def _forward(self, batch: dict[str, Any]) -> Any:
        import torch

        mask = batch["attention_mask"]
        h = self.encoder(input_ids=batch["input_ids"], attention_mask=mask,
                         token_type_ids=batch["token_type_ids"]).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        return self.head(pooled)

    def _tokens(self, texts: Sequence[str]) -> list[list[int]]:
        from .text import tokenize

        return tokenize([str(t) for t in texts], max_len=self.max_len,
                        encoder_path=str(self.base_path))

    # -- training and prediction ----------------------------------------------------------------

    def fit(self, texts: Sequence[str], y: Sequence[int] | np.ndarray, labels: Sequence[str]
            ) -> FineTunedMiniLM:
        """Fine-tune on ``texts`` with class indices ``y`` into ``labels``."""
        import torch
        import torch.nn.functional as F

        from .text import LengthBucketSampler, collate_tokens

        y = np.asarray(y, np.int64)
        labels = [str(v) for v in labels]
        if len(texts) != len(y):
            raise ConfigError(f"FineTunedMiniLM.fit: {len(texts)} texts but {len(y)} targets")
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ConfigError("FineTunedMiniLM.fit: at least 2 distinct labels")
        if len(y) and (y.min() < 0 or y.max() >= len(labels)):
            raise ConfigError("FineTunedMiniLM.fit: a target outside 0..len(labels)-1")
        if len(np.unique(y)) < 2:
            raise ConfigError("FineTunedMiniLM.fit: a training set with fewer than 2 classes")
        t0, c0 = time.perf_counter(), time.process_time()
        given = len(y)
        keep = stratified_subsample(y, self.max_train, seed=self.seed)
        texts, y = [texts[int(i)] for i in keep], y[keep]
        self.labels = labels
        with self._threads():
            self._build(len(labels))
            ids = self._tokens(texts)
            counts = np.bincount(y, minlength=len(labels)).astype(float)
            w = np.maximum(counts, 1.0) ** -self.class_balance
            w = w / (float((w * counts).sum()) / max(1.0, counts.sum()))   # mean 1 per item
            weight = torch.tensor(w, dtype=torch.float32)
            sampler = LengthBucketSampler([len(i) for i in ids], batch_size=self.batch_size,
                                          shuffle=True, seed=self.seed)
            steps = self.epochs * len(sampler)
            opt, sched = self._optimiser(steps)
            g_state = torch.get_rng_state()
            torch.manual_seed(self.seed)        # dropout of the trained layers
            losses = []
            try:
                for _ in range(self.epochs):
                    self._mode(True)
                    total, seen = 0.0, 0
                    for idx in sampler:
                        batch = collate_tokens([(ids[i], int(y[i])) for i in idx])
                        logits = self._forward(batch)
                        loss = F.cross_entropy(logits, batch["y"], weight=weight)
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        sched.step()
                        total += float(loss.detach()) * len(idx)
                        seen += len(idx)
                    losses.append(round(total / max(1, seen), 5))
            finally:
                torch.set_rng_state(g_state)
            self._mode(False)
        self.info = {"train_items": len(y), "items_given": given,
                     "class_counts": {labels[i]: int(c) for i, c in enumerate(counts)},
                     "class_weights": [round(float(v), 6) for v in w], "steps": steps,
                     "epoch_loss": losses, "train_seconds": round(time.perf_counter() - t0, 1),
                     "cpu_seconds": round(time.process_time() - c0, 1)}
        return self

    def _optimiser(self, steps: int) -> tuple[Any, Any]:
        from .text import adamw_warmup_linear

        total = max(1, steps)
        return adamw_warmup_linear(
            [q for layer in self._trained_layers() for q in layer.parameters()],
            self.head.parameters(), lr=self.lr_encoder, head_lr=self.lr_head,
            weight_decay=self.weight_decay, total=total,
            warm=max(1, math.ceil(self.warmup * total)))

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits ``(n, len(labels))`` in the order of ``texts``."""
        import torch

        from .text import LengthBucketSampler, collate_tokens

        if self.head is None:
            raise ConfigError("FineTunedMiniLM: fit or load the model before predicting")
        out = np.zeros((len(texts), len(self.labels)), np.float32)
        if not len(texts):
            return out
        ids = self._tokens(texts)
        sampler = LengthBucketSampler([len(i) for i in ids], batch_size=_PREDICT_BATCH,
                                      shuffle=False)
        with self._threads(), torch.no_grad():
            self._mode(False)
            for idx in sampler:
                batch = collate_tokens([(ids[i], None) for i in idx])
                out[idx] = self._forward(batch).float().numpy()
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Softmax probabilities ``(n, len(labels))`` (float64, rows sum to 1)."""
        z = self.predict_logits(texts).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    # -- files ----------------------------------------------------------------------------------

    def trained_state(self) -> dict[str, Any]:
        """The trained tensors only: the top layers (``encoder.layer.<i>.*``) and the head
        (``head.*``), contiguous CPU copies."""
        if self.head is None:
            raise ConfigError("FineTunedMiniLM: nothing to save before fit")
        pre = self._trained_prefixes()
        state = {k: v for k, v in self.encoder.state_dict().items() if k.startswith(pre)}
        state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}

    def save(self, folder: str | Path) -> Path:
        """Write ``trained.safetensors`` and ``finetune.json`` into ``folder``."""
        from safetensors.torch import save as st_save

        from ..integrity import atomic_write

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sha = atomic_write(folder / WEIGHTS, st_save(self.trained_state()))
        base = self.base_path
        card = {"format": FORMAT, "base": {"name": base.name, "sha256": _base_sha256(base)},
                "labels": self.labels, "recipe": self.recipe(), "weights_sha256": sha,
                "pooling": "mean over non-padding tokens", "training": self.info}
        atomic_write(folder / CARD, (json.dumps(card, indent=1) + "\n").encode())
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, base_path: str | Path | None = None,
             num_threads: int | None = 1) -> FineTunedMiniLM:
        """The model saved in ``folder`` on the installed base encoder (``base_path``: another
        base folder); refuses a base whose weights are not the ones trained on."""
        from safetensors.torch import load as st_load

        from ..paths import file_sha256

        folder = Path(folder)
        card_path, weights = folder / CARD, folder / WEIGHTS
        try:
            card = json.loads(card_path.read_text("utf-8"))
        except FileNotFoundError:
            raise DataError(card_path, "missing: not a fine-tuned MiniLM folder") from None
        except (OSError, ValueError) as e:
            raise DataError(card_path, f"unreadable ({e})") from None
        if not isinstance(card, dict) or card.get("format") != FORMAT:
            got = card.get("format") if isinstance(card, dict) else None
            raise DataError(card_path, f"format {got!r}, expected {FORMAT!r}")
        recipe = card.get("recipe") or {}
        try:
            m = cls(**{k: recipe[k] for k in cls.RECIPE_KEYS}, num_threads=num_threads,
                    base_path=base_path)
        except (KeyError, TypeError) as e:
            raise DataError(card_path, f"recipe incomplete ({e})") from None
        want = (card.get("base") or {}).get("sha256")
        have = _base_sha256(m.base_path)
        if have != want:
            raise DataError(card_path, f"trained on a base encoder whose model.safetensors has "
                            f"sha256 {str(want)[:12]}..., but {m.base_path} has {have[:12]}...: "
                            "a different base model; refusing to load")
        if not weights.is_file():
            raise DataError(weights, "missing")
        if card.get("weights_sha256") and file_sha256(weights) != card["weights_sha256"]:
            raise DataError(weights, "sha256 differs from finetune.json: corrupted or replaced")
        try:
            state = st_load(weights.read_bytes())
        except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
            raise DataError(weights, f"unreadable safetensors ({e})") from None
        m.labels = [str(v) for v in card.get("labels") or []]
        with m._threads():
            m._build(len(m.labels))
            pre = m._trained_prefixes()
            want_keys = {k for k in m.encoder.state_dict() if k.startswith(pre)} | {
                f"head.{k}" for k in m.head.state_dict()}
            if set(state) != want_keys:
                raise DataError(weights, "tensors do not match the recipe's trained layers "
                                f"(missing {sorted(want_keys - set(state))[:3]}, unexpected "
                                f"{sorted(set(state) - want_keys)[:3]})")
            enc = {k: v for k, v in state.items() if not k.startswith("head.")}
            head = {k[5:]: v for k, v in state.items() if k.startswith("head.")}
            try:
                m.encoder.load_state_dict(enc, strict=False)
                m.head.load_state_dict(head)
            except RuntimeError as e:
                raise DataError(weights, f"tensor shapes do not fit the base ({e})") from None
            m._mode(False)
        m.info = dict(card.get("training") or {})
        return m
