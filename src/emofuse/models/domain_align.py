"""A small MLP classifier whose hidden layer is aligned across domains (corpora or speakers).

numpy in, numpy out; deterministic for a given seed on CPU (one thread is the caller's
choice). Methods (``AlignSpec.method``):

``none``
    The plain MLP (class-weighted cross-entropy), the reference for the others.
``dann``
    Domain-adversarial training: a domain discriminator on the hidden layer behind a gradient
    reversal layer (Ganin & Lempitsky 2015; weight ramped ``lam * (2 / (1 + e^(-10 p)) - 1)``
    over training progress ``p``).
``mmd``
    Multi-kernel Gaussian maximum mean discrepancy between each domain's hidden vectors in a
    batch and the rest of the batch, weight ``lam``.
``coral``
    Deep CORAL: squared Frobenius distance between each domain's hidden covariance and the
    rest of the batch's, divided by ``4 d^2``, weight ``lam``.
``aae``
    Adversarial autoencoder: encoder -> ``latent`` code -> decoder (reconstruction, weight
    ``rec``) and classifier; a discriminator conditioned on the domain tells the codes from
    samples of a standard normal prior, so every domain's codes are pushed (weight ``lam``)
    to the same prior, i.e. aligned with each other.

The input may first be reduced to its ``pca`` leading principal components (fitted on the
training rows), which keeps a fit to seconds on one CPU thread.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

__all__ = ["METHODS", "AlignSpec", "AlignedMLP", "fit_aligned", "pca_basis"]

METHODS = ("none", "dann", "mmd", "coral", "aae")
Method = Literal["none", "dann", "mmd", "coral", "aae"]


@dataclasses.dataclass(frozen=True)
class AlignSpec:
    """Hyper-parameters of :func:`fit_aligned`."""

    method: Method = "none"
    hidden: int = 256          #: width of the hidden layer
    latent: int = 64           #: code width (``aae`` only)
    pca: int = 256             #: input reduced to this many principal components (0: none)
    lam: float = 0.1           #: weight of the alignment term
    rec: float = 1.0           #: reconstruction weight (``aae`` only)
    epochs: int = 20
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2

    def __post_init__(self) -> None:
        bad = []
        if self.method not in METHODS:
            bad.append(f"method {self.method!r} ({', '.join(METHODS)})")
        if min(self.hidden, self.latent, self.epochs, self.batch) < 1 or self.pca < 0:
            bad.append("hidden, latent, epochs, batch must be >= 1 and pca >= 0")
        if self.lam < 0 or self.rec < 0 or not self.lr > 0 or self.weight_decay < 0:
            bad.append("lam, rec, weight_decay must be >= 0 and lr > 0")
        if not 0 <= self.dropout < 1:
            bad.append(f"dropout {self.dropout} (0 <= dropout < 1)")
        if bad:
            raise ValueError("AlignSpec: " + "; ".join(bad))


def _torch():
    import torch

    return torch


def _grl():
    """A gradient reversal function ``grl(x, coef)``: identity forward, ``-coef`` times the
    gradient backward."""
    torch = _torch()

    class _GradReverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, coef):        
            ctx.coef = coef
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):          
            return -ctx.coef * grad, None

    return _GradReverse.apply


def _mmd(a, b):
    """Biased multi-kernel Gaussian MMD^2 between row sets ``a`` and ``b`` (bandwidths scaled
    by the median squared distance, detached)."""
    torch = _torch()
    x = torch.cat([a, b])
    d2 = torch.cdist(x, x).pow(2)
    med = d2.detach()[d2.detach() > 0].median() if (d2.detach() > 0).any() else d2.new_tensor(1.0)
    k = sum(torch.exp(-d2 / (med * s)) for s in (0.25, 0.5, 1.0, 2.0, 4.0))
    n = len(a)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def _coral(a, b):
    """Deep CORAL distance between the covariances of ``a`` and ``b``."""
    d = a.shape[1]

    def cov(x):
        xc = x - x.mean(0, keepdim=True)
        return xc.T @ xc / max(len(x) - 1, 1)

    return (cov(a) - cov(b)).pow(2).sum() / (4 * d * d)


class AlignedMLP:
    """A fitted model: :meth:`predict_proba` and :meth:`hidden` of new rows."""

    def __init__(self, spec: AlignSpec, n_classes: int, mean: np.ndarray,
                 proj: np.ndarray | None, nets: dict) -> None:
        self.spec, self.n_classes, self._mean, self._proj, self._nets = (
            spec, n_classes, mean, proj, nets)

    def _input(self, x: np.ndarray):
        torch = _torch()
        z = np.asarray(x, np.float32) - self._mean
        if self._proj is not None:
            z = z @ self._proj
        return torch.from_numpy(np.ascontiguousarray(z, np.float32))

    def hidden(self, x: np.ndarray) -> np.ndarray:
        """The aligned representation (hidden layer, or the code for ``aae``)."""
        torch = _torch()
        enc = self._nets["enc"].eval()
        with torch.no_grad():
            return enc(self._input(x)).numpy()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        torch = _torch()
        enc, cls = self._nets["enc"].eval(), self._nets["cls"].eval()
        with torch.no_grad():
            return torch.softmax(cls(enc(self._input(x))), 1).double().numpy()


def pca_basis(x: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Column mean and the ``(d, k)`` projection on the leading principal directions
    (randomised SVD; ``None`` when ``k`` is 0 or not below the width)."""
    torch = _torch()
    mean = x.mean(0).astype(np.float32)
    if not k or k >= min(x.shape):
        return mean, None
    torch.manual_seed(seed)
    _, _, v = torch.svd_lowrank(torch.from_numpy(np.ascontiguousarray(x - mean, np.float32)),
                                q=k, niter=2)
    return mean, v.numpy().astype(np.float32)


def fit_aligned(x: np.ndarray, y: np.ndarray, domains: np.ndarray, *, n_classes: int,
                spec: AlignSpec = AlignSpec(), sample_weight: np.ndarray | None = None,
                seed: int = 0, basis: tuple[np.ndarray, np.ndarray | None] | None = None
                ) -> AlignedMLP:
    """Fit the MLP of ``spec`` on rows ``x`` with integer labels ``y`` (``0..n_classes-1``)
    and any hashable ``domains`` per row; ``sample_weight`` weights the classification loss
    (class balancing). ``basis``: :func:`pca_basis` of ``x`` already computed (several fits
    on the same rows share it)."""
    torch = _torch()
    nn = torch.nn
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    if x.ndim != 2 or len(x) != len(y) or len(domains) != len(x) or not len(x):
        raise ValueError("fit_aligned: x (n, d), y and domains of the same non-zero length")
    mean, proj = basis if basis is not None else pca_basis(x, spec.pca, seed=seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    names, dom = np.unique(np.asarray(domains, dtype=str), return_inverse=True)
    n_dom = len(names)
    w = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    w = w * len(w) / w.sum()
    d_in = x.shape[1] if proj is None else proj.shape[1]
    aae = spec.method == "aae"
    width = spec.latent if aae else spec.hidden
    layers = [nn.Linear(d_in, spec.hidden), nn.ReLU(), nn.Dropout(spec.dropout)]
    if aae:
        layers.append(nn.Linear(spec.hidden, spec.latent))
    nets = {"enc": nn.Sequential(*layers), "cls": nn.Linear(width, n_classes)}
    if spec.method == "dann":
        nets["disc"] = nn.Sequential(nn.Linear(width, 64), nn.ReLU(), nn.Linear(64, n_dom))
    if aae:
        nets["dec"] = nn.Sequential(nn.Linear(spec.latent, spec.hidden), nn.ReLU(),
                                    nn.Linear(spec.hidden, d_in))
        nets["disc"] = nn.Sequential(nn.Linear(spec.latent + n_dom, 64), nn.ReLU(),
                                     nn.Linear(64, 1))
    main = [p for k, m in nets.items() if not (aae and k == "disc") for p in m.parameters()]
    opt = torch.optim.AdamW(main, lr=spec.lr, weight_decay=spec.weight_decay)
    opt_d = (torch.optim.AdamW(nets["disc"].parameters(), lr=spec.lr, weight_decay=0.0)
             if aae else None)
    model = AlignedMLP(spec, n_classes, mean, proj, nets)
    xt = model._input(x)
    yt, wt, dt = torch.from_numpy(y), torch.from_numpy(w.astype(np.float32)), torch.from_numpy(
        dom.astype(np.int64))
    dom_w = torch.from_numpy((len(dom) / (n_dom * np.bincount(dom, minlength=n_dom)))
                             .astype(np.float32))
    grl = _grl()
    bce = nn.functional.binary_cross_entropy_with_logits
    steps = spec.epochs * math.ceil(len(x) / spec.batch)
    step = 0
    for m in nets.values():
        m.train()
    for _ in range(spec.epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(x), spec.batch):
            b = order[i:i + spec.batch]
            xb, yb, wb, db = xt[b], yt[b], wt[b], dt[b]
            h = nets["enc"](xb)
            ce = nn.functional.cross_entropy(nets["cls"](h), yb, reduction="none")
            loss = (ce * wb).sum() / wb.sum()
            if spec.method == "dann" and n_dom > 1:
                coef = spec.lam * (2.0 / (1.0 + math.exp(-10.0 * step / max(steps, 1))) - 1.0)
                loss = loss + nn.functional.cross_entropy(
                    nets["disc"](grl(h, coef)), db, weight=dom_w)
            elif spec.method in ("mmd", "coral") and n_dom > 1 and spec.lam > 0:
                fn = _mmd if spec.method == "mmd" else _coral
                terms = [fn(h[db == k], h[db != k]) for k in torch.unique(db)
                         if 4 <= int((db == k).sum()) <= len(db) - 4]
                if terms:
                    loss = loss + spec.lam * torch.stack(terms).mean()
            elif aae:
                onehot = nn.functional.one_hot(db, n_dom).float()
                loss = loss + spec.rec * nn.functional.mse_loss(nets["dec"](h), xb)
                if spec.lam > 0:
                    fake = nets["disc"](torch.cat([h, onehot], 1))
                    loss = loss + spec.lam * bce(fake, torch.ones_like(fake))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if aae and spec.lam > 0:
                prior = torch.randn(len(b), spec.latent)
                real = nets["disc"](torch.cat([prior, onehot], 1))
                fake = nets["disc"](torch.cat([h.detach(), onehot], 1))
                loss_d = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
            step += 1
    return model
