"""Cross-corpus speech emotion recognition: leave-one-corpus-out (LOCO) over several corpora,
with every choice made by nested LOCO inside the training corpora.

Suite ``xcorpus-speech`` (``configs/xcorpus-speech.yaml``): for each test corpus *T* of
``corpora``, train on all the others and test on *T* over the canonical labels both sides
share (:func:`emofuse.protocols.cross_corpus`: classes, chance level and dropped classes are
reported per cell). An ``extra_test`` corpus (the CREMA-D sample clips) is tested by a model
trained on all of ``corpora``.

Model: utterance vectors (Whisper-base hidden states, mean and std over frames, one 1024-wide
block per layer: 512 means then 512 stds; any other vector feature works without layer
choice), per-group standardisation, optional per-utterance L2 normalisation, nuisance-attribute
projection (NAP: the main directions of the training speakers' mean vectors removed),
speaker-offset augmentation, class-balanced logistic regression.

Settings (each its own selection and figures; metric suffix in brackets):

``inductive`` (none)
    Nothing from the test corpus: training corpora standardised globally, per corpus or per
    speaker (a grid choice); the test utterances with the average of the training groups'
    statistics.
``folder`` (``_folder``)
    Training corpora per corpus; the test corpus with its own unlabelled statistics (a user
    predicting a whole folder of recordings).
``enrol`` (``_enrol``)
    Every speaker standardised with the statistics of that speaker's unlabelled utterances
    (``--enrol DIR`` in a product); a speaker's statistics are shrunk towards the training
    average by ``enrol_prior`` pseudo-utterances (URDU has speakers with 2 utterances).

Selection: for test corpus *T* and each candidate of the setting's grid, each *training*
corpus *s* is left out in turn (train on the others, test on *s* over their shared labels);
the candidate with the best mean UA over the *s* is kept (ties: the first in grid order). The
held-out out-of-corpus probabilities of the chosen candidate also fit the temperature (NLL,
each held-out corpus weighted equally), so calibration never sees *T* either. ECE (15 bins)
is reported before and after temperature scaling.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocols
from ..augment.online import speaker_shift
from ..config import RunConfig
from ..errors import ConfigError
from ..evaluate.calibration import apply_temperature, ece, fit_temperature
from ..evaluate.metrics import classification_metrics
from ..evaluate.results import results_dir
from ._suite import Suite, limit_threads
from ._xcorpus_data import BLOCK, Table, _ordered, load_table
from ._xcorpus_grid import SETTINGS, Candidate, candidates
from ._xcorpus_params import XcorpusParams
from ._xcorpus_report import _result, _union_confusion, plot_heatmap  # noqa: F401 (re-exported)

__all__ = [
    "XcorpusSpeech",
    "XcorpusSpeechSuite",
    "SETTINGS",
    "Candidate",
    "FitFn",
    "Table",
    "apply_temperature",
    "candidates",
    "corpus_roots",
    "ece",
    "fit_predict",
    "fit_temperature",
    "load_table",
    "plot_heatmap",
    "run_cell",
    "run_loco",
    "run_suite",
    "select",
    "transform",
]


# --------------------------------------------------------------------------------------------
# Features -> model


def _columns(table: Table, cand: Candidate) -> np.ndarray:
    """The table's columns for ``cand`` (``(n, d)`` view or copy)."""
    if table.layers is None:
        if cand.layers is not None:
            raise ConfigError("xcorpus: layers are chosen only for the whisper feature")
        return table.x
    layers = list(cand.layers) if cand.layers is not None else list(table.layers)
    if missing := [x for x in layers if x not in table.layers]:
        raise ConfigError(f"xcorpus: layers {missing} are not among the extracted "
                          f"{table.layers}")
    half = {"meanstd": slice(0, BLOCK), "mean": slice(0, BLOCK // 2),
            "std": slice(BLOCK // 2, BLOCK)}[cand.part]
    blocks = [table.x[:, BLOCK * table.layers.index(x):BLOCK * (table.layers.index(x) + 1)]
              [:, half] for x in layers]
    if cand.combine == "average" and len(blocks) > 1:
        return np.mean(blocks, axis=0, dtype=np.float32)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x64 = x.astype(np.float64)
    return x64.mean(0), x64.var(0)


def _group_norm(x: np.ndarray, groups: np.ndarray, *, prior: tuple | None = None,
                k: float = 0.0, pooled_var: np.ndarray | None = None
                ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Standardise each group of rows with its own statistics (shrunk towards ``prior`` by
    ``k`` pseudo-rows when given; with ``pooled_var``, only the group's mean is its own and
    every group is divided by ``sqrt(pooled_var)``). Returns the result and the average
    (mean, var) of the groups."""
    out = np.empty_like(x, dtype=np.float32)
    means, vars_ = [], []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        m, v = _stats(x[idx])
        if prior is not None and k > 0:
            n = len(idx)
            m = (n * m + k * prior[0]) / (n + k)
            v = (n * v + k * prior[1]) / (n + k)
        means.append(m)
        vars_.append(v)
        out[idx] = x[idx] - m if pooled_var is not None else (x[idx] - m) / np.sqrt(v + 1e-8)
    avg = (np.mean(means, 0), np.mean(vars_, 0))
    if pooled_var is not None:
        out /= np.sqrt(pooled_var + 1e-8).astype(np.float32)
    return out, avg


def _utt_l2(x: np.ndarray, width: int) -> np.ndarray:
    """Scale each ``width``-wide block of every row to unit root-mean-square."""
    n, d = x.shape
    if d % width:
        width = d
    xb = x.reshape(n, d // width, width)
    rms = np.sqrt(np.mean(xb.astype(np.float64) ** 2, axis=2, keepdims=True)) + 1e-8
    return (xb / rms).reshape(n, d).astype(np.float32)


def _speaker_means(x: np.ndarray, speakers: np.ndarray) -> tuple[list, np.ndarray]:
    names = list(np.unique(speakers))
    return names, np.stack([x[speakers == s].mean(0) for s in names])


def transform(table: Table, train: np.ndarray, test: np.ndarray, cand: Candidate, setting: str,
              *, enrol_prior: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of the ``train`` and ``test`` rows ready for the classifier, and the training
    rows' speakers (augmentation). ``test`` rows are standardised as ``setting`` allows:
    inductive, with the average of the training groups' statistics; folder, by test corpus;
    enrol, by test speaker."""
    x = _columns(table, cand)
    xtr, xte = x[train], x[test]
    norm = {"inductive": cand.norm, "folder": "corpus", "enrol": "speaker"}[setting]
    gtr = {"global": np.zeros(len(train), int), "corpus": table.corpus[train],
           "speaker": table.speaker[train]}[norm]
    pooled = None
    if cand.scale == "pooled":   # the training groups' average within-group variance
        _, (_, pooled) = _group_norm(xtr, gtr)
    ztr, avg = _group_norm(xtr, gtr, pooled_var=pooled)
    scale = avg[1] if pooled is None else pooled
    if setting == "inductive":
        zte = ((xte - avg[0]) / np.sqrt(scale + 1e-8)).astype(np.float32)
    elif setting == "folder":
        zte, _ = _group_norm(xte, table.corpus[test], pooled_var=pooled)
    elif setting == "enrol":
        zte, _ = _group_norm(xte, table.speaker[test], prior=_stats(xtr), k=enrol_prior,
                             pooled_var=pooled)
    else:
        raise ConfigError(f"xcorpus: unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
    if cand.utt == "l2":
        width = BLOCK // 2 if table.layers is not None else x.shape[1]
        ztr, zte = _utt_l2(ztr, width), _utt_l2(zte, width)
    if cand.nap:
        _, means = _speaker_means(ztr, table.speaker[train])
        means = means - means.mean(0)
        k = min(cand.nap, len(means) - 1)
        if k > 0:
            _, _, vt = np.linalg.svd(means, full_matrices=False)
            v = vt[:k].astype(np.float32)
            ztr = ztr - (ztr @ v.T) @ v
            zte = zte - (zte @ v.T) @ v
    return ztr, zte, table.speaker[train]


def _weights(labels: np.ndarray, corpus: np.ndarray, balance: str) -> np.ndarray:
    w = np.ones(len(labels))
    if balance == "class":
        for c in np.unique(labels):
            m = labels == c
            w[m] = 1.0 / m.sum()
    elif balance == "corpus_class":
        for c in np.unique(corpus):
            mc = corpus == c
            ncls = len(np.unique(labels[mc]))
            for lab in np.unique(labels[mc]):
                m = mc & (labels == lab)
                w[m] = 1.0 / (m.sum() * ncls)
    return w * len(w) / w.sum()


def fit_predict(table: Table, train: np.ndarray, test: np.ndarray, classes: Sequence[str],
                cands: Sequence[Candidate], setting: str, *, seed: int = 0,
                enrol_prior: float = 5.0, max_iter: int = 300,
                prepared: dict | None = None) -> list[np.ndarray]:
    """Train on the ``train`` rows whose label is in ``classes`` and return, for each of
    ``cands`` (all sharing one :meth:`Candidate.rep_key`), the ``(len(test), len(classes))``
    probabilities (0 for a class absent from training). C values are fitted in the given order
    with warm starts."""
    from sklearn.linear_model import LogisticRegression

    if len({c.rep_key() for c in cands}) != 1:
        raise ValueError("fit_predict: candidates must differ in C only")
    cand = cands[0]
    train = train[np.isin(table.labels[train], list(classes))]
    ztr, zte, spk = transform(table, train, test, cand, setting, enrol_prior=enrol_prior)
    ytr = table.labels[train]
    w = _weights(ytr, table.corpus[train], cand.balance)
    if cand.augment and len(np.unique(spk)) > 1:
        xa, src = speaker_shift(ztr, speakers=spk, copies=cand.augment, seed=seed)
        ztr = np.concatenate([ztr, xa])
        ytr = np.concatenate([ytr, ytr[src]])
        w = np.concatenate([w, w[src]])
    present = [c for c in classes if c in set(ytr.tolist())]
    y = np.array([present.index(v) for v in ytr])
    outs = []
    clf = LogisticRegression(C=cand.C, max_iter=max_iter, tol=1e-4, warm_start=True)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    for c in cands:
        clf.set_params(C=c.C)
        if len(present) < 2:
            p = np.ones((len(test), 1))
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(ztr, y, sample_weight=w)
            p = clf.predict_proba(zte)
        full = np.zeros((len(test), len(classes)))
        full[:, [classes.index(c) for c in present]] = p
        outs.append(full)
    return outs


#: :func:`fit_predict`'s signature: (table, train rows, test rows, classes, candidates sharing
#: one ``rep_key()``, setting, *, seed, enrol_prior) -> one probability array per candidate
FitFn = Callable[..., list[np.ndarray]]


# --------------------------------------------------------------------------------------------
# Cells




def _restrict(proba: np.ndarray, classes: Sequence[str], keep: Sequence[str]) -> np.ndarray:
    """Probabilities over ``keep`` (a subset of ``classes``), renormalised."""
    p = proba[:, [list(classes).index(c) for c in keep]]
    s = p.sum(1, keepdims=True)
    return np.where(s > 0, p / np.where(s > 0, s, 1), 1.0 / len(keep))


def _ua(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    r = [np.mean(pred[y == c] == c) for c in range(k) if np.any(y == c)]
    return float(np.mean(r)) if r else 0.0


def _by_rep(cands: Sequence[Candidate]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cands):
        groups.setdefault(c.rep_key(), []).append(i)
    return list(groups.values())


def select(table: Table, train_corpora: Sequence[str], classes: Sequence[str],
           cands: Sequence[Candidate], setting: str, *, seed: int = 0, enrol_prior: float = 5.0,
           log: Callable[[str], None] | None = None, fit: FitFn | None = None
           ) -> dict[str, Any]:
    """Nested LOCO inside ``train_corpora``: each one held out in turn, every candidate
    trained on the others (over ``classes``) and scored (UA over the labels both sides
    share). Returns the scores, the chosen candidate (best mean UA; ties: first) and its
    out-of-corpus probabilities (for the temperature). ``fit``: another function with the
    signature of :func:`fit_predict` (other candidate types); default :func:`fit_predict`."""
    fit = fit or fit_predict
    scores = np.full((len(cands), len(train_corpora)), np.nan)
    held: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {i: [] for i in range(len(cands))}
    inner_classes = {}
    for j, s in enumerate(train_corpora):
        rest = [c for c in train_corpora if c != s]
        shared = _ordered(set(classes) & table.classes_of(rest) & table.classes_of([s]))
        inner_classes[s] = shared
        if len(shared) < 2 or not rest:
            continue
        tr = table.where(rest, shared)
        te = table.where([s], shared)
        y = np.array([shared.index(v) for v in table.labels[te]])
        for group in _by_rep(cands):
            probas = fit(table, tr, te, shared, [cands[i] for i in group], setting,
                         seed=seed, enrol_prior=enrol_prior)
            for i, p in zip(group, probas):
                scores[i, j] = _ua(y, p.argmax(1), len(shared))
                held[i].append((p, y))
    mean = np.nanmean(scores, axis=1) if np.isfinite(scores).any() else np.zeros(len(cands))
    best = int(np.nanargmax(mean)) if np.isfinite(mean).any() else 0
    if log:
        log(f"    selection over {len(cands)} candidates x {len(train_corpora)} held-out "
            f"corpora: best {cands[best].short(setting)} (inner UA {100 * mean[best]:.2f})")
    return {"scores": scores, "mean": mean, "best": best, "held": held[best],
            "inner_classes": inner_classes}


def run_cell(table: Table, train_corpora: Sequence[str], test_corpus: str,
             cands: Sequence[Candidate], setting: str, *, seed: int = 0,
             enrol_prior: float = 5.0, bins: int = 15,
             log: Callable[[str], None] | None = None, fit: FitFn | None = None
             ) -> dict[str, Any]:
    """One LOCO cell: classes shared by the training corpora and ``test_corpus``, selection
    by nested LOCO, temperature from the held-out training corpora, the test figures
    (``fit``: as in :func:`select`)."""
    fit = fit or fit_predict
    tr_recs = [r for r in table.records if r.corpus in train_corpora] if table.records else None
    te_recs = [r for r in table.records if r.corpus == test_corpus] if table.records else None
    if tr_recs is not None and te_recs:
        _, dropped = protocols.cross_corpus(tr_recs, te_recs)   # leakage-checked
    else:
        dropped = None
    classes = _ordered(table.classes_of(train_corpora) & table.classes_of([test_corpus]))
    if dropped is None:
        dropped = {"train": _counts(table, train_corpora, classes),
                   "test": _counts(table, [test_corpus], classes)}
    if len(classes) < 2:
        raise ConfigError(f"xcorpus: {test_corpus} shares fewer than 2 classes with "
                          f"{'+'.join(train_corpora)}")
    sel = select(table, train_corpora, classes, cands, setting, seed=seed,
                 enrol_prior=enrol_prior, log=log, fit=fit)
    cand = cands[sel["best"]]
    temperature = fit_temperature([p for p, _ in sel["held"]], [y for _, y in sel["held"]])
    tr = table.where(train_corpora, classes)
    te = table.where([test_corpus], classes)
    (proba,) = fit(table, tr, te, classes, [cand], setting, seed=seed, enrol_prior=enrol_prior)
    y = np.array([classes.index(v) for v in table.labels[te]])
    m = classification_metrics(y, proba.argmax(1), classes=classes, proba=proba)
    cal = apply_temperature(proba, temperature)
    cell = {
        "setting": setting, "train": list(train_corpora), "test": test_corpus,
        "classes": classes, "chance": 1.0 / len(classes), "n_train": len(tr),
        "n_test": len(te), "dropped": dropped,
        "ua": m["ua"], "wa": m["wa"], "macro_f1": m["macro_f1"],
        "recall": {c: m["per_class"][c]["recall"] for c in classes},
        "confusion": m["confusion"],
        "ece": ece(proba, y, bins=bins), "ece_ts": ece(cal, y, bins=bins),
        "temperature": temperature, "chosen": cand.to_dict(),
        "chosen_short": cand.short(setting),
        "selection": {"held_out": list(train_corpora),
                      "inner_classes": sel["inner_classes"],
                      "candidates": [c.short(setting) for c in cands],
                      "inner_ua": [[None if not np.isfinite(v) else round(float(v), 4)
                                    for v in row] for row in sel["scores"]],
                      "inner_mean": [round(float(v), 4) for v in sel["mean"]],
                      "chosen_index": sel["best"],
                      "chosen_inner_ua": round(float(sel["mean"][sel["best"]]), 4)},
        "_metrics": m, "_proba": proba, "_y": y,
    }
    if log:
        log(f"  [{setting}] {'+'.join(train_corpora)} -> {test_corpus} ({len(classes)} classes, "
            f"chance {100 / len(classes):.1f}): UA {100 * m['ua']:.2f}, ECE "
            f"{100 * cell['ece']:.1f} -> {100 * cell['ece_ts']:.1f} (T {temperature:g})")
    return cell


def _counts(table: Table, corpora: Sequence[str], kept: Sequence[str]) -> dict[str, int]:
    labs = table.labels[np.isin(table.corpus, list(corpora))]
    vals, n = np.unique([v for v in labs if v not in set(kept)] or np.array([], object),
                        return_counts=True)
    return {str(v): int(k) for v, k in zip(vals, n)}


def pair_cell(table: Table, train_corpus: str, test_corpus: str, cand: Candidate, setting: str,
              *, seed: int = 0, enrol_prior: float = 5.0, fit: FitFn | None = None
              ) -> dict[str, Any]:
    """Train on one corpus and test on another with a given candidate (heatmap cells)."""
    fit = fit or fit_predict
    classes = _ordered(table.classes_of([train_corpus]) & table.classes_of([test_corpus]))
    if len(classes) < 2:
        return {"ua": float("nan"), "classes": classes}
    tr = table.where([train_corpus], classes)
    te = table.where([test_corpus], classes)
    (proba,) = fit(table, tr, te, classes, [cand], setting, seed=seed, enrol_prior=enrol_prior)
    y = np.array([classes.index(v) for v in table.labels[te]])
    return {"ua": _ua(y, proba.argmax(1), len(classes)), "classes": classes,
            "chance": 1.0 / len(classes)}


def run_loco(table: Table, corpora: Sequence[str], grids: Mapping[str, Sequence[Candidate]], *,
             extra_test: Sequence[str] = (), pairs: bool = True, seed: int = 0,
             enrol_prior: float = 5.0, bins: int = 15,
             log: Callable[[str], None] | None = print, fit: FitFn | None = None
             ) -> dict[str, Any]:
    """Every LOCO cell of every setting in ``grids`` (setting -> candidates), the extra test
    corpora (trained on all ``corpora``) and, with ``pairs``, single-corpus -> corpus cells
    with the candidate chosen for that test corpus (``fit``: as in :func:`select`)."""
    out: dict[str, Any] = {"cells": {}, "pairs": {}, "wall_s": {}}
    for setting, cands in grids.items():
        t0 = time.perf_counter()
        cells = []
        for test in list(corpora) + list(extra_test):
            train = [c for c in corpora if c != test]
            cells.append(run_cell(table, train, test, cands, setting, seed=seed,
                                  enrol_prior=enrol_prior, bins=bins, log=log, fit=fit))
        out["cells"][setting] = cells
        if pairs:
            grid: dict[str, dict[str, float]] = {}
            for cell in cells:
                if cell["test"] not in corpora:
                    continue
                cand = cands[cell["selection"]["chosen_index"]]
                for a in corpora:
                    if a != cell["test"]:
                        grid.setdefault(a, {})[cell["test"]] = pair_cell(
                            table, a, cell["test"], cand, setting, seed=seed,
                            enrol_prior=enrol_prior, fit=fit)["ua"]
            out["pairs"][setting] = grid
        out["wall_s"][setting] = time.perf_counter() - t0
    return out


def _settings_grids(params: XcorpusParams | Mapping[str, Any], quick: bool
                    ) -> dict[str, list[Candidate]]:
    """Each setting's candidate grid (``--quick``: its first candidate)."""
    p = XcorpusParams.of(params)
    return {s: (cands[:1] if quick else cands)
            for s in p.settings
            for cands in [candidates(p.grid.get(s), where=f"model.params.grid.{s}")]}


def corpus_roots(cfg: RunConfig, corpora: Sequence[str],
                 extra: Mapping[str, str | None] | None = None) -> dict[str, Path | None]:
    """The folder of each corpus: ``data.root/<corpus>`` when the config gives a root (else
    None: the loader's default folder); an ``extra`` test corpus, its sub-folder of the data
    root (None without one)."""
    from ..paths import data_root

    base = Path(cfg.data.root) if cfg.data.root else data_root()
    roots: dict[str, Path | None] = {c: (base / c) if cfg.data.root else None for c in corpora}
    roots.update({c: base / sub if sub else None for c, sub in (extra or {}).items()})
    return roots


class XcorpusSpeechSuite(Suite, modality="speech-xcorpus", task_modality="speech"):
    """Base of the cross-corpus speech suites (a speech config): the corpora's feature table,
    the LOCO heatmap and result."""

    def load(self, corpora: Sequence[str], extra: Mapping[str, str | None] | None = None
             ) -> tuple[Table, list[dict[str, Any]]]:
        """The feature table of ``corpora`` and the ``extra`` test corpora, and what was
        skipped."""
        cfg = self.cfg
        return load_table([*corpora, *(extra or {})], feature=cfg.features.name,
                          params=cfg.features.params, roots=corpus_roots(cfg, corpora, extra),
                          quick=self.quick, log=self.log)

    def loco_result(self, loco: Mapping[str, Any], table: Table, corpora: list[str],
                    targets: list[str], extra: list[str], skipped: list, *,
                    target_ua: Mapping[str, float]) -> dict[str, Any]:
        """The result of a :func:`run_loco`; writes its heatmap PNG."""
        name = self.cfg.suite + ("-quick" if self.quick else "")
        png = plot_heatmap(loco, corpora, extra, results_dir() / f"{name}.png",
                           title=f"{name}: train -> test UA (%)")
        return _result(self.cfg, loco, table, corpora, targets, extra, skipped, self.timer,
                       png, target_ua, self.quick)


class XcorpusSpeech(XcorpusSpeechSuite, name="xcorpus-speech", params={"model": XcorpusParams}):
    """Leave-one-corpus-out speech emotion recognition over RAVDESS, SAVEE, ASED, nEMO and URDU
    (+ CREMA-D sample): inductive, folder- and speaker-normalised, nested LOCO selection,
    calibration"""

    def body(self) -> dict[str, Any]:
        cfg, p, log = self.cfg, self.p, self.log
        if cfg.model.name != "logreg":
            raise ConfigError("xcorpus: model.name must be logreg (class-balanced logistic "
                              "regression)")
        corpora = list(p.corpora)
        if len(corpora) < 3:
            raise ConfigError("model.params.corpora: at least 3 corpora (nested LOCO)")
        extra = p.extra_test or {}
        extra = {extra: None} if isinstance(extra, str) else dict(extra)
        grids = _settings_grids(p, self.quick)
        limit_threads(cfg, torch=False)
        if log:
            log(f"xcorpus: loading {', '.join(corpora + list(extra))} ({cfg.features.name})")
        table, skipped = self.load(corpora, extra)
        loco = run_loco(table, corpora, grids, extra_test=list(extra), pairs=p.pairs,
                        seed=self.seeds[0], enrol_prior=p.enrol_prior, bins=p.ece_bins,
                        log=log)
        return self.loco_result(loco, table, corpora, list(p.targets or corpora), list(extra),
                                skipped, target_ua=p.target_ua or {})


#: the ``xcorpus-speech`` suite (see the module docstring): result dict; writes the heatmap PNG
run_suite = xcorpus_speech = XcorpusSpeech.run
