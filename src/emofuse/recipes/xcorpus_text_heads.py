"""The heads of the cross-corpus text recipe and the joint text model: the selection grid's
:class:`Candidate` (logistic regression or MLP head on MiniLM embeddings, class and corpus
balancing), sample weights, fitting (cached on disk by content), probabilities as the product
computes them; calibration (ECE, temperature scaling) is :mod:`emofuse.evaluate.calibration`'s,
re-exported here."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError
from ..evaluate.calibration import apply_temperature, ece, fit_temperature
from ..paths import cache_dir
from .text_params import GridSpec, JointParams, MLPSettings

__all__ = ["Candidate", "candidates", "sample_weights", "fit_head", "head_proba", "ece",
           "apply_temperature", "fit_temperature"]

#: Version of the fitted-head cache entries (bump when fitting changes).
_HEAD_VERSION = "2"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One point of the selection grid: one value of each key of
    :class:`~emofuse.recipes.text_params.GridSpec` (which documents them, and whose rules a
    candidate is checked against). ``goemotions: namesake`` trains on GoEmotions rows labelled
    with the Ekman group's own emotion only; the GoEmotions *test* labels stay the Ekman
    grouping."""

    head: Literal["lr", "mlp"] = "lr"
    class_balance: float = 1.0
    corpus_balance: Literal["none", "equal"] = "none"
    C: float = 10.0
    hidden: int = 256
    dropout: float = 0.3
    weight_decay: float = 0.01
    love: Literal["drop", "happy"] = "drop"
    goemotions: Literal["ekman", "namesake"] = "ekman"

    def __post_init__(self) -> None:
        GridSpec.of(dataclasses.asdict(self), where="grid")   # the grid's rules

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        drop = ("hidden", "dropout", "weight_decay") if self.head == "lr" else ("C",)
        return {k: v for k, v in d.items() if k not in drop}

    def short(self) -> str:
        parts = [self.head, f"cb{self.class_balance:g}", f"corpus-{self.corpus_balance}"]
        parts += [f"C{self.C:g}"] if self.head == "lr" else \
            [f"h{self.hidden}", f"do{self.dropout:g}", f"wd{self.weight_decay:g}"]
        if self.love != "drop":
            parts.append(f"love-{self.love}")
        if self.goemotions != "ekman":
            parts.append(f"go-{self.goemotions}")
        return " ".join(parts)


def candidates(grid: Any, *, where: str = "model.params") -> list[Candidate]:
    """The candidates of a grid: a block (key -> value or list of values: every combination)
    or a list of blocks (their candidates in turn); duplicates once."""
    out: list[Candidate] = []
    for block in JointParams.of({"grid": grid}, where=where).grid:
        for combo in block.combinations():
            cand = Candidate(**combo)
            if cand.to_dict() not in [c.to_dict() for c in out]:
                out.append(cand)
    if not out:
        raise ConfigError(f"{where}.grid: no candidate")
    return out


def sample_weights(corpus: np.ndarray, y: np.ndarray, cand: Candidate) -> np.ndarray:
    """Per-row weights (mean 1) of :attr:`Candidate.class_balance` and ``corpus_balance``."""
    corpus, y = np.asarray(corpus), np.asarray(y)
    w = np.ones(len(y))
    p = float(cand.class_balance)
    if cand.corpus_balance == "equal" and len(np.unique(corpus)) > 1:
        for c in np.unique(corpus):
            m = corpus == c
            cw = np.ones(m.sum())
            if p:
                _, inv, cnt = np.unique(y[m], return_inverse=True, return_counts=True)
                cw = cnt[inv].astype(float) ** -p
            w[m] = cw / cw.sum()
    elif p:
        _, inv, cnt = np.unique(y, return_inverse=True, return_counts=True)
        w = cnt[inv].astype(float) ** -p
    return w * (len(w) / max(w.sum(), 1e-12))


def _digest(*arrays: np.ndarray, meta: Mapping[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.shape).encode() + str(a.dtype).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:20]


def fit_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_classes: int, cand: Candidate, *,
             val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, seed: int = 0,
             mlp: MLPSettings | Mapping[str, Any] | None = None, cache: bool = True
             ) -> dict[str, Any]:
    """Fit a head; returns ``{"hidden", "state" (name -> array, the minilm_mlp layout),
    "info"}``. ``val`` (x, y, w): early stopping of the MLP. Cached on disk by content."""
    settings = MLPSettings.of(mlp or {}, where="model.params.mlp")
    meta = {"v": _HEAD_VERSION, "cand": cand.to_dict(), "n": n_classes, "seed": seed,
            "mlp": settings.model_dump() if cand.head == "mlp" else None}
    arrays = [x, y.astype(np.int64), w.astype(np.float64)]
    if cand.head == "mlp" and val is not None:
        arrays += [val[0], val[1].astype(np.int64), val[2].astype(np.float64)]
    path = cache_dir() / "runs" / "xcorpus-text" / f"{_digest(*arrays, meta=meta)}.npz"
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                state = {k[6:]: z[k] for k in z.files if k.startswith("state:")}
            return {"hidden": int(info["hidden"]), "state": state,
                    "info": {**info, "reused": True}}
        except (OSError, ValueError, KeyError):
            pass
    t0, c0 = time.perf_counter(), time.process_time()
    if len(np.unique(y)) < 2:
        raise ConfigError("xcorpus-text: a training set with fewer than 2 classes")
    if cand.head == "lr":
        state, info = _fit_lr(x, y, w, n_classes, cand)
    else:
        state, info = _fit_mlp(x, y, w, n_classes, cand, val=val, seed=seed, settings=settings)
    info.update(train_seconds=round(time.perf_counter() - t0, 1),
                cpu_seconds=round(time.process_time() - c0, 1), train_items=len(y))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, info=np.array(json.dumps(info)),
                 **{f"state:{k}": v for k, v in state.items()})
        tmp.replace(path)
    return {"hidden": int(info["hidden"]), "state": state, "info": info}


def _fit_lr(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_classes: int, cand: Candidate
            ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    # fitted on standardised embeddings (fast, well-conditioned lbfgs; C is relative to unit
    # variance), the scaling then folded into the one linear layer
    mu = x.mean(0, dtype=np.float64)
    sd = np.maximum(x.std(0, dtype=np.float64), 1e-6)
    clf = LogisticRegression(C=float(cand.C), max_iter=3000, tol=1e-5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit((x - mu) / sd, y, sample_weight=w)
    W = np.zeros((n_classes, x.shape[1]))
    b = np.full(n_classes, -1e4)          # a class absent from training is never predicted
    present = clf.classes_.astype(int)
    coef = clf.coef_ / sd
    icpt = clf.intercept_ - coef @ mu
    if len(present) == 2:                 # binary: one row for the second class
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        icpt = np.array([-icpt[0] / 2, icpt[0] / 2])
    W[present], b[present] = coef, icpt
    return ({"net.1.weight": W.astype(np.float32), "net.1.bias": b.astype(np.float32)},
            {"hidden": 0, "iterations": int(np.max(clf.n_iter_)),
             "converged": not any(issubclass(c.category, ConvergenceWarning) for c in caught)})


def _fit_mlp(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_classes: int, cand: Candidate, *,
             val: tuple[np.ndarray, np.ndarray, np.ndarray] | None, seed: int,
             settings: MLPSettings) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import copy

    import torch
    import torch.nn.functional as F

    from ..models import build_model

    epochs, patience, batch_size, lr = (settings.epochs, settings.patience,
                                        settings.batch_size, settings.lr)
    torch.manual_seed(seed)
    module = build_model("minilm_mlp", in_dim=x.shape[1], n_classes=n_classes,
                         hidden=int(cand.hidden), dropout=float(cand.dropout), lr=lr,
                         weight_decay=float(cand.weight_decay))
    net = module.net
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=float(cand.weight_decay))
    X, Y = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(y.astype(np.int64))
    Wt = torch.from_numpy((w / w.mean()).astype(np.float32))
    if val is not None and len(val[1]):
        Xv, Yv = torch.from_numpy(np.asarray(val[0], np.float32)), torch.from_numpy(
            val[1].astype(np.int64))
        Wv = torch.from_numpy((val[2] / val[2].mean()).astype(np.float32))
    else:
        Xv = None
    g = torch.Generator().manual_seed(seed)
    best, best_state, best_epoch, bad, ran = float("inf"), None, 0, 0, 0
    for epoch in range(int(epochs)):
        net.train()
        perm = torch.randperm(len(Y), generator=g)
        for i in range(0, len(Y), int(batch_size)):
            idx = perm[i:i + int(batch_size)]
            loss = (F.cross_entropy(net(X[idx]), Y[idx], reduction="none") * Wt[idx]).sum() \
                / Wt[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        ran = epoch + 1
        if Xv is None:
            continue
        net.eval()
        with torch.no_grad():
            vl = float((F.cross_entropy(net(Xv), Yv, reduction="none") * Wv).sum() / Wv.sum())
        if vl < best - 1e-4:
            best, best_state, best_epoch, bad = vl, copy.deepcopy(net.state_dict()), ran, 0
        else:
            bad += 1
            if bad >= int(patience):
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    state = {f"net.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    return state, {"hidden": int(cand.hidden), "epochs": ran, "best_epoch": best_epoch,
                   "best_val_loss": None if best_state is None else best}


def head_proba(head: Mapping[str, Any], x: np.ndarray, *, temperature: float = 1.0
               ) -> np.ndarray:
    """Probabilities of a fitted head (numpy, as the product computes them)."""
    from ..inference.text import MLPHead

    state = head["state"]
    last = "net.4.weight" if head["hidden"] else "net.1.weight"
    mh = MLPHead(state, {"in_dim": x.shape[1], "n_classes": state[last].shape[0],
                         "hidden": head["hidden"]})
    z = mh.logits(x) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
