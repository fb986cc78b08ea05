"""AAEC: an adversarial-autoencoder classifier for speech feature sequences, as a generator.

The model (one :class:`AAECNet`, torch, CPU):

- **encoder** - a bidirectional GRU over the ``(steps, n_features)`` sequence, its two final
  states concatenated, then dense layers to the latent ``Z`` (the last dense layer *is* ``Z``,
  linear);
- **decoder** - dense layers (the encoder's widths reversed) back to the whole sequence;
- **discriminator** - a small MLP telling ``Z`` from samples of the Gaussian prior
  ``N(0, I)`` (the adversarial-autoencoder regulariser);
- **classifier** - three 1-D convolutions over time, a bidirectional GRU (mean over time), and
  two heads: *real / fake* (one logit) and *emotion* (one logit per class).

Synthetic sequences are ``X' = (Decoder(eps) + Decoder(Z)) / 2`` with ``Z = Encoder(x)`` of a
training sequence ``x`` (its label is ``X'``'s label) and ``eps ~ N(0, I)``; with
``average=False`` (variant ``AAEC'``) plainly ``X' = Decoder(Z)``.

Training (:meth:`AAECGenerator.fit_arrays`) alternates, for every mini-batch round of an
epoch (``ceil(n / batch_size)`` rounds), on freshly drawn batches:

1. ``k1`` steps: autoencoder (reconstruction MSE), then the discriminator (prior = real,
   encoded = fake);
2. ``k2`` steps: the encoder as generator against the discriminator;
3. ``k3`` steps: the classifier on originals (real, their class) and ``X'`` (fake, the class of
   their source) - emotion cross-entropy (balanced class weights) + real/fake BCE
   (``syn_weight`` and ``rf_weight`` scale the synthetic-emotion and real/fake terms; 1 and 1).
   Only the classifier learns in these steps by default; optionally (``ae_cls_weight``,
   ``ae_adv_weight`` > 0, joint variants) the autoencoder then takes a step on the emotion loss
   of ``X'`` plus the loss of ``X'`` being called fake (AC-GAN style). Off by default: on fold
   1 of RAVDESS it raised the reconstruction error (MSE 0.96 vs 0.79 of unit variance) and did
   not help the classifier.

Then the classifier is **fine-tuned on real data only** (``finetune_epochs``, learning rate
``lr * finetune_lr``); the checkpoint with the best validation score
``0.66 * macro-F1 + 0.34 * UAR`` (over the fine-tuning epochs, and the state before them) is
kept when validation data are given.

Variants (``variant``), the self-comparison of the AAEC paper:

===============  ===========================================================================
``aaec``         everything above
``aae_c``        no discriminator (no ``k1`` discriminator step, no ``k2``): AE + classifier
``aae_plus_c``   AE + discriminator trained first (``epochs``), then the classifier
                 (``epochs``) on real data and ``X'`` of the *frozen* autoencoder
``aaec_plain``   ``AAEC'``: ``X' = Decoder(Z)``, no averaging with ``Decoder(eps)``
``classifier``   the classifier alone on real data (same number of classifier steps)
===============  ===========================================================================

**Sizes (CPU).** The paper's dense 512/256/128 and convolutions 512/256/128 are scaled down
4 x by default: ``gru_hidden=64`` (bidirectional: 128), dense ``enc_dims=(128, 64, 32)``
(``Z`` has 32 dimensions), decoder 64/128, discriminator 64/32, convolutions
``cls_channels=(128, 64, 32)`` (kernel 3), classifier GRU 32 per direction; ~0.3 M parameters
for 32 steps x 40 MFCCs. Everything runs with one torch thread.

**Features** (:mod:`emofuse.augment.aaec_features`). :func:`sequence_features` reads frame-level features through
:func:`emofuse.features.speech.extract_many` (cached by the
:class:`~emofuse.features.cache.FeatureCache`), trims leading and trailing frames quieter than
``trim_db`` below the loudest frame (MFCC: from ``c0``; log-mel: the band mean) and
average-pools the rest to ``steps`` time steps. Sequences are standardised per feature with
the training data's statistics (kept with the model; generated items are returned in the
original feature units).

As a generator (registered as ``aaec``, ``modality = "features"``): :meth:`fit` takes training
records (audio), :meth:`generate` returns :class:`SyntheticItem`s whose ``extra["features"]``
holds the ``(steps, n_features)`` float32 sequence and ``source_ids`` the training item its
``Z`` came from; :func:`make_feature_set` / :func:`write_feature_set` turn them into a
synthetic set on disk (``files/<n>.npy`` + manifest), :func:`read_features` reads them back.

>>> gen = build_generator("aaec", epochs=20)            # doctest: +SKIP
>>> gen.fit(train_records, seed=0)                      # doctest: +SKIP
>>> items = gen.generate({"fear": 30, "sad": 10}, seed=0)   # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import register_generator
from .aaec_features import (feature_set_quality, make_feature_set, pool_sequence,
                            read_features, sequence_features, write_feature_set)
from .manifest import SyntheticItem

__all__ = ["VARIANTS", "pool_sequence", "sequence_features", "AAECNet", "AAECGenerator",
           "combined_score", "make_feature_set", "feature_set_quality", "write_feature_set",
           "read_features"]

#: variant -> (autoencoder, discriminator, joint training, X' averaged with Decoder(eps))
VARIANTS: dict[str, dict[str, bool]] = {
    "aaec": {"ae": True, "disc": True, "joint": True, "average": True},
    "aae_c": {"ae": True, "disc": False, "joint": True, "average": True},
    "aae_plus_c": {"ae": True, "disc": True, "joint": False, "average": True},
    "aaec_plain": {"ae": True, "disc": True, "joint": True, "average": False},
    "classifier": {"ae": False, "disc": False, "joint": False, "average": False},
}
#: display names of the paper
LABELS = {"aaec": "AAEC", "aae_c": "AAE_C", "aae_plus_c": "AAE+C", "aaec_plain": "AAEC'",
          "classifier": "classifier alone"}


def combined_score(f1: float, uar: float) -> float:
    """``0.66 * macro-F1 + 0.34 * UAR`` (the AAEC paper's combined figure)."""
    return 0.66 * float(f1) + 0.34 * float(uar)


# -- the network -----------------------------------------------------------------------------


def _mlp(dims: Sequence[int], *, last_linear: bool = True, slope: float = 0.2) -> Any:
    import torch.nn as nn

    layers: list[Any] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2 or not last_linear:
            layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


def AAECNet(*, steps: int, n_features: int, n_classes: int, gru_hidden: int = 64,
            enc_dims: Sequence[int] = (128, 64, 32), disc_dims: Sequence[int] = (64, 32),
            cls_channels: Sequence[int] = (128, 64, 32), cls_gru: int = 32,
            dropout: float = 0.2) -> Any:
    """The four parts as one ``torch.nn.Module`` (``encoder``, ``decoder``, ``discriminator``,
    ``classifier``); see the module docstring. ``enc_dims[-1]`` is the size of ``Z``."""
    import torch
    import torch.nn as nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(n_features, gru_hidden, batch_first=True, bidirectional=True)
            self.dense = _mlp([2 * gru_hidden, *enc_dims])

        def forward(self, x: Any) -> Any:
            _, h = self.gru(x)                       # (2, B, H)
            return self.dense(torch.cat([h[0], h[1]], dim=1))

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = _mlp([*reversed(enc_dims), steps * n_features])

        def forward(self, z: Any) -> Any:
            return self.dense(z).view(-1, steps, n_features)

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            convs: list[Any] = []
            c_in = n_features
            for i, c in enumerate(cls_channels):
                convs += [nn.Conv1d(c_in, c, 3, padding=1), nn.ReLU(), nn.Dropout(dropout)]
                if i == 0 and steps >= 8:
                    convs.append(nn.MaxPool1d(2))        # the GRU runs over steps / 2
                c_in = c
            self.conv = nn.Sequential(*convs)
            self.gru = nn.GRU(c_in, cls_gru, batch_first=True, bidirectional=True)
            self.rf = nn.Linear(2 * cls_gru, 1)
            self.emo = nn.Linear(2 * cls_gru, n_classes)

        def forward(self, x: Any) -> tuple[Any, Any]:
            h = self.conv(x.transpose(1, 2)).transpose(1, 2)     # (B, T, C)
            o, _ = self.gru(h)
            e = o.mean(dim=1)
            return self.rf(e).squeeze(1), self.emo(e)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.decoder = Encoder(), Decoder()
            self.discriminator = _mlp([enc_dims[-1], *disc_dims, 1])
            self.classifier = Classifier()
            self.latent = int(enc_dims[-1])

        def synthesise(self, x: Any, *, average: bool, generator: Any = None) -> Any:
            rec = self.decoder(self.encoder(x))
            if not average:
                return rec
            eps = torch.randn(len(x), self.latent, generator=generator)
            return 0.5 * (self.decoder(eps) + rec)

    return Net()


# -- the generator ---------------------------------------------------------------------------


@register_generator("aaec")
class AAECGenerator:
    """AAEC fitted on training sequences; generates labelled feature sequences ``X'`` and
    classifies sequences with its (fine-tuned) classifier. See the module docstring."""

    name = "aaec"
    modality = "features"

    def __init__(self, *, variant: str = "aaec", feature: str = "mfcc",
                 feature_params: Mapping[str, Any] | None = None, steps: int = 32,
                 trim_db: float | None = 35.0, epochs: int = 15, finetune_epochs: int = 10,
                 batch_size: int = 64, lr: float = 2e-3, finetune_lr: float = 0.3,
                 k1: int = 1, k2: int = 1, k3: int = 1, ae_cls_weight: float = 0.0,
                 ae_adv_weight: float = 0.0, syn_weight: float = 1.0, rf_weight: float = 1.0,
                 class_weighted: bool = True,
                 gru_hidden: int = 64, enc_dims: Sequence[int] = (128, 64, 32),
                 disc_dims: Sequence[int] = (64, 32), cls_channels: Sequence[int] = (128, 64, 32),
                 cls_gru: int = 32, dropout: float = 0.2, weight_decay: float = 1e-4,
                 num_threads: int | None = 1) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"aaec: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        if min(k1, k2, k3) < 0 or epochs < 1 or finetune_epochs < 0 or batch_size < 1:
            raise ConfigError("aaec: k1/k2/k3 >= 0, epochs >= 1, finetune_epochs >= 0, "
                              "batch_size >= 1")
        self.variant = variant
        self.feature = feature
        self.feature_params = dict(feature_params if feature_params is not None
                                   else {"n_mfcc": 40, "deltas": False})
        self.steps, self.trim_db = int(steps), trim_db
        self.epochs, self.finetune_epochs = int(epochs), int(finetune_epochs)
        self.batch_size, self.lr, self.finetune_lr = int(batch_size), float(lr), finetune_lr
        self.k1, self.k2, self.k3 = int(k1), int(k2), int(k3)
        self.ae_cls_weight, self.ae_adv_weight = ae_cls_weight, ae_adv_weight
        self.syn_weight, self.rf_weight = syn_weight, rf_weight
        self.class_weighted = class_weighted
        self.arch = {"gru_hidden": int(gru_hidden), "enc_dims": [int(v) for v in enc_dims],
                     "disc_dims": [int(v) for v in disc_dims],
                     "cls_channels": [int(v) for v in cls_channels], "cls_gru": int(cls_gru),
                     "dropout": float(dropout)}
        self.weight_decay = weight_decay
        self.num_threads = num_threads
        self.classes: list[str] = []
        self.fitted_ids: list[str] = []
        self.net: Any = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self._train: dict[str, Any] = {}
        self.info: dict[str, Any] = {}

    # -- provenance --------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {"variant": self.variant, "feature": self.feature,
                "feature_params": dict(self.feature_params), "steps": self.steps,
                "trim_db": self.trim_db, "epochs": self.epochs,
                "finetune_epochs": self.finetune_epochs, "batch_size": self.batch_size,
                "lr": self.lr, "finetune_lr": self.finetune_lr, "k1": self.k1, "k2": self.k2,
                "k3": self.k3, "ae_cls_weight": self.ae_cls_weight,
                "ae_adv_weight": self.ae_adv_weight, "syn_weight": self.syn_weight,
                "rf_weight": self.rf_weight, "class_weighted": self.class_weighted,
                "weight_decay": self.weight_decay, **self.arch}

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, records: Sequence[Any], *, seed: int = 0, val_records: Sequence[Any] = (),
            cache: Any = None) -> AAECGenerator:
        """Fit on training records (audio + label; never dev/test records): features from the
        cache, then :meth:`fit_arrays`. ``val_records`` (held out of the *training* part)
        choose the fine-tuning checkpoint."""
        for r in records:
            if r.split not in (None, "train"):
                raise ConfigError(f"{self.name}: record {r.id} is from the {r.split!r} part; "
                                  "generators are fitted on training data only")
        recs = [r for r in records if r.label is not None]
        seqs, _ = sequence_features([*recs, *val_records], feature=self.feature,
                                    params=self.feature_params, steps=self.steps,
                                    trim_db=self.trim_db, cache=cache)
        tr = [r for r in recs if r.id in seqs]
        va = [r for r in val_records if r.id in seqs and r.label is not None]
        if not tr:
            raise ConfigError(f"{self.name}: no training record with usable audio")
        X = np.stack([seqs[r.id] for r in tr])
        Xv = np.stack([seqs[r.id] for r in va]) if va else None
        return self.fit_arrays(X, [r.label for r in tr], [r.id for r in tr], seed=seed,
                               X_val=Xv, y_val=[r.label for r in va] if va else None)

    def fit_arrays(self, X: np.ndarray, labels: Sequence[str], ids: Sequence[str] | None = None,
                   *, seed: int = 0, classes: Sequence[str] | None = None,
                   X_val: np.ndarray | None = None, y_val: Sequence[str] | None = None,
                   log: Callable[[str], None] | None = None) -> AAECGenerator:
        """Fit on ``X`` ``(n, steps, n_features)`` with string ``labels`` (``classes`` fixes the
        class order; default sorted labels). Deterministic for a given ``seed`` (one thread)."""
        import torch

        X = np.asarray(X, np.float32)
        if X.ndim != 3:
            raise ConfigError(f"{self.name}: X must be (n, steps, features), got {X.shape}")
        self.classes = list(classes) if classes else sorted(set(labels))
        index = {c: i for i, c in enumerate(self.classes)}
        y = np.array([index[c] for c in labels], int)
        self.fitted_ids = list(ids) if ids is not None else [f"#{i}" for i in range(len(X))]
        self._train = {"ids": list(self.fitted_ids), "y": y}
        flat = X.reshape(-1, X.shape[2])
        self.mean, self.std = flat.mean(0), flat.std(0) + 1e-5
        Xn = (X - self.mean) / self.std
        self._train["X"] = Xn
        yv = np.array([index[c] for c in y_val], int) if y_val is not None else None
        Xvn = (np.asarray(X_val, np.float32) - self.mean) / self.std if X_val is not None \
            else None
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            t0 = time.perf_counter()
            self._fit(Xn, y, Xvn, yv, seed, log)
            self.info["fit_s"] = round(time.perf_counter() - t0, 2)
        finally:
            torch.set_num_threads(threads)
        return self

    def _fit(self, X: np.ndarray, y: np.ndarray, Xv: np.ndarray | None, yv: np.ndarray | None,
             seed: int, log: Callable[[str], None] | None) -> None:
        import torch
        import torch.nn.functional as F

        v = VARIANTS[self.variant]
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed + 1)
        K = len(self.classes)
        net = AAECNet(steps=X.shape[1], n_features=X.shape[2], n_classes=K, **self.arch)
        self.net = net
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
        counts = np.bincount(y, minlength=K).astype(np.float64)
        w = np.where(counts > 0, len(y) / (K * np.maximum(counts, 1)), 0.0) \
            if self.class_weighted else np.ones(K)
        cw = torch.tensor(w, dtype=torch.float32)
        wd = self.weight_decay
        ae_params = [*net.encoder.parameters(), *net.decoder.parameters()]
        opt_ae = torch.optim.Adam(ae_params, lr=self.lr, weight_decay=wd)
        opt_enc = torch.optim.Adam(net.encoder.parameters(), lr=self.lr, weight_decay=wd)
        opt_d = torch.optim.Adam(net.discriminator.parameters(), lr=self.lr, weight_decay=wd)
        opt_c = torch.optim.Adam(net.classifier.parameters(), lr=self.lr, weight_decay=wd)
        n = len(X)
        bs = min(self.batch_size, n)
        rounds = max(1, math.ceil(n / bs))
        hist: dict[str, list[float]] = {"rec": [], "disc": [], "gen": [], "cls": []}

        def batch() -> tuple[Any, Any]:
            idx = torch.from_numpy(rng.choice(n, bs, replace=False))
            return Xt[idx], yt[idx]

        def bce(logits: Any, target: float) -> Any:
            return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

        def ae_steps() -> None:
            for _ in range(self.k1):
                xb, _ = batch()
                loss = F.mse_loss(net.decoder(net.encoder(xb)), xb)
                opt_ae.zero_grad()
                loss.backward()
                opt_ae.step()
                hist["rec"].append(loss.item())
                if v["disc"]:
                    with torch.no_grad():
                        z = net.encoder(xb)
                    prior = torch.randn(len(xb), net.latent, generator=gen)
                    dl = bce(net.discriminator(prior).squeeze(1), 1.0) + \
                        bce(net.discriminator(z).squeeze(1), 0.0)
                    opt_d.zero_grad()
                    dl.backward()
                    opt_d.step()
                    hist["disc"].append(dl.item())
            if v["disc"]:
                for _ in range(self.k2):
                    xb, _ = batch()
                    gl = bce(net.discriminator(net.encoder(xb)).squeeze(1), 1.0)
                    opt_enc.zero_grad()
                    gl.backward()
                    opt_enc.step()
                    hist["gen"].append(gl.item())

        def cls_steps(*, with_synthetic: bool, ae_update: bool) -> None:
            for _ in range(self.k3):
                xb, yb = batch()
                if with_synthetic:
                    if ae_update:
                        xs = net.synthesise(xb, average=v["average"], generator=gen)
                    else:
                        with torch.no_grad():
                            xs = net.synthesise(xb, average=v["average"], generator=gen)
                    rf_r, emo_r = net.classifier(xb)
                    rf_s, emo_s = net.classifier(xs.detach())
                    loss = (F.cross_entropy(emo_r, yb, weight=cw)
                            + self.syn_weight * F.cross_entropy(emo_s, yb, weight=cw)
                            + self.rf_weight * (bce(rf_r, 1.0) + bce(rf_s, 0.0)))
                else:
                    _, emo_r = net.classifier(xb)
                    loss = F.cross_entropy(emo_r, yb, weight=cw)
                opt_c.zero_grad()
                loss.backward()
                opt_c.step()
                hist["cls"].append(loss.item())
                if with_synthetic and ae_update:
                    # the autoencoder makes X' that keep their class and look real
                    rf_s, emo_s = net.classifier(xs)
                    al = (self.ae_cls_weight * F.cross_entropy(emo_s, yb, weight=cw)
                          + self.ae_adv_weight * bce(rf_s, 1.0))
                    opt_ae.zero_grad()
                    al.backward()
                    opt_ae.step()
                    opt_c.zero_grad()

        net.train()
        if v["ae"] and not v["joint"]:          # AAE+C: the autoencoder first
            for _ in range(self.epochs):
                for _ in range(rounds):
                    ae_steps()
            net.encoder.eval()
            net.decoder.eval()
            for p in ae_params:
                p.requires_grad_(False)
        for _ in range(self.epochs):
            for _ in range(rounds):
                if v["ae"] and v["joint"]:
                    ae_steps()
                cls_steps(with_synthetic=v["ae"], ae_update=v["ae"] and v["joint"] and (
                    self.ae_cls_weight > 0 or self.ae_adv_weight > 0))
        # fine-tuning of the classifier on real data only
        for p in ae_params:
            p.requires_grad_(True)
        opt_f = torch.optim.Adam(net.classifier.parameters(), lr=self.lr * self.finetune_lr,
                                 weight_decay=wd)
        best, best_state, best_epoch = -1.0, None, 0
        val_scores: list[float] = []

        def validate(epoch: int) -> None:
            nonlocal best, best_state, best_epoch
            if Xv is None or yv is None or not len(yv):
                return
            s = self._score(self._proba(Xv), yv)
            val_scores.append(round(s, 4))
            if s > best:
                best, best_epoch = s, epoch
                best_state = {k: t.detach().clone()
                              for k, t in net.classifier.state_dict().items()}

        net.eval()
        validate(0)
        for ep in range(1, self.finetune_epochs + 1):
            net.classifier.train()
            for _ in range(rounds):
                xb, yb = batch()
                _, emo = net.classifier(xb)
                loss = F.cross_entropy(emo, yb, weight=cw)
                opt_f.zero_grad()
                loss.backward()
                opt_f.step()
            net.eval()
            validate(ep)
        if best_state is not None:
            net.classifier.load_state_dict(best_state)
        net.eval()
        self.info = {"variant": self.variant, "n_train": int(n), "rounds_per_epoch": rounds,
                     "final_rec_mse": round(float(np.mean(hist["rec"][-rounds:])), 4)
                     if hist["rec"] else None,
                     "final_cls_loss": round(float(np.mean(hist["cls"][-rounds:])), 4)
                     if hist["cls"] else None,
                     "val_scores": val_scores, "best_finetune_epoch": best_epoch,
                     "parameters": int(sum(p.numel() for p in net.parameters()))}
        if log:
            log(f"    {self.variant}: rec {self.info['final_rec_mse']} cls "
                f"{self.info['final_cls_loss']} best ft epoch {best_epoch}")

    def _score(self, proba: np.ndarray, y: np.ndarray) -> float:
        from ..evaluate.metrics import classification_metrics

        m = classification_metrics(y, proba.argmax(1), classes=self.classes)
        return combined_score(m["macro_f1"], m["ua"])

    def _proba(self, Xn: np.ndarray, batch: int = 256) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for k in range(0, len(Xn), batch):
                _, emo = self.net.classifier(torch.from_numpy(np.ascontiguousarray(
                    Xn[k:k + batch], dtype=np.float32)))
                out.append(torch.softmax(emo, dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)))

    def _need_fit(self) -> None:
        if self.net is None:
            raise ConfigError(f"{self.name}: call fit(training records) first")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)`` of sequences ``X`` (original feature units)."""
        import torch

        self._need_fit()
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            return self._proba((np.asarray(X, np.float32) - self.mean) / self.std)
        finally:
            torch.set_num_threads(threads)

    # -- generation --------------------------------------------------------------------------

    def generate(self, counts: Mapping[str, int], *, seed: int = 0) -> list[SyntheticItem]:
        """``counts[c]`` synthetic sequences of class ``c``: ``X'`` of randomly drawn training
        sequences of ``c`` (the variant's rule; ``classifier`` cannot generate). Items hold the
        sequence in ``extra["features"]`` (original units) and the source id."""
        import torch

        self._need_fit()
        if not VARIANTS[self.variant]["ae"]:
            raise ConfigError(f"{self.name}: variant 'classifier' has no autoencoder")
        missing = [c for c, k in counts.items() if k > 0 and c not in self.classes]
        if missing:
            raise ConfigError(f"{self.name}: no training examples of {', '.join(missing)}")
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        X, y, ids = self._train["X"], self._train["y"], self._train["ids"]
        items: list[SyntheticItem] = []
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            for label, want in counts.items():
                if want <= 0:
                    continue
                pool = np.flatnonzero(y == self.classes.index(label))
                if not len(pool):
                    raise ConfigError(f"{self.name}: no training examples of {label}")
                src = rng.choice(pool, int(want), replace=len(pool) < want)
                with torch.inference_mode():
                    xs = self.net.synthesise(torch.from_numpy(X[src]),
                                             average=VARIANTS[self.variant]["average"],
                                             generator=gen).numpy()
                xs = xs * self.std + self.mean
                for k, (i, x) in enumerate(zip(src, xs)):
                    items.append(SyntheticItem(
                        id=f"{self.name}:{seed}:{label}:{k}", label=label, generator=self.name,
                        kind="average" if VARIANTS[self.variant]["average"] else "reconstruct",
                        seed=seed, source_ids=[ids[i]],
                        extra={"features": x.astype(np.float32)}))
        finally:
            torch.set_num_threads(threads)
        return items
