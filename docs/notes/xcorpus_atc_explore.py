"""Calibration from the unlabelled test folder (folder / enrol settings), inner folds only.

One temperature fitted on held-out training corpora cannot fit every corpus: their accuracy
differs by 20-40 points (docs/notes/xcorpus_calib_explore.py). In the folder and enrol
settings the product already sees the user's unlabelled folder, so it could estimate that
folder's accuracy and choose the temperature whose mean confidence matches it:

- ``atc`` (Average Thresholded Confidence, Garg et al., ICLR 2022): on the source corpora
  (the other inner held-out corpora, temperature applied), the confidence threshold t such that
  the share of items above t equals their accuracy; the folder's estimated accuracy is its share
  of items above t;
- ``doc`` (difference of confidences, Guillory et al. 2021): source accuracy minus the drop in
  mean confidence from the source corpora to the folder;

then the folder's temperature solves mean max-probability = estimated accuracy (monotone in T).
``oracle``: the temperature fitted on the corpus' own labels (the floor of any temperature
rule). Leave-one-inner-corpus-out, as the earlier exploration: for each outer cell, the
candidate the suite chose is refitted on its nested folds (out-of-corpus probabilities of every
training corpus held out in turn); each inner corpus in turn plays the folder, the others the
source. The outer test corpora's figures are never computed here.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_atc_explore.py [SETTINGS]

Rule, written before the first run (2026-12-07): a rule is worth building into the product's
folder / enrol paths only if its leave-one-inner-corpus-out ECE is <= 8 on the mean AND lower
than the NLL rule's on the max over the inner held-out corpora of both settings.
"""
import json
import math
import sys
import time

import numpy as np
from scipy.optimize import brentq

from emofuse.config import load_config
from emofuse.evaluate.calibration import apply_temperature, ece, fit_temperature
from emofuse.recipes._xcorpus_grid import Candidate
from emofuse.recipes.xcorpus import _ordered, load_table, select

CORPORA = ["ravdess", "savee", "ased", "nemo", "urdu"]


def conf(p):
    return p.max(1)


def acc(p, y):
    return float(np.mean(p.argmax(1) == y))


def t_for_confidence(p, target):
    """Temperature whose mean max-probability on ``p`` is ``target`` (clipped to the range)."""
    k = p.shape[1]
    target = float(np.clip(target, 1.0 / k + 1e-3, 0.999))

    def f(lt):
        return float(conf(apply_temperature(p, math.exp(lt))).mean()) - target
    lo, hi = math.log(0.05), math.log(50.0)
    if f(lo) < 0:
        return math.exp(lo)
    if f(hi) > 0:
        return math.exp(hi)
    return math.exp(brentq(f, lo, hi, xtol=1e-4))


def atc_threshold(src):
    """Threshold t with share(conf > t) = accuracy, pooled over the source sets (each weighted
    equally)."""
    cs = np.concatenate([conf(p) for p, _ in src])
    w = np.concatenate([np.full(len(y), 1.0 / len(y)) for _, y in src])
    a = float(np.mean([acc(p, y) for p, y in src]))
    order = np.argsort(-cs)
    share = np.cumsum(w[order]) / w.sum()
    i = int(np.searchsorted(share, a))
    return float(cs[order][min(i, len(cs) - 1)])


def estimate(rule, src, p):
    if rule == "atc":
        t = atc_threshold(src)
        return float(np.mean(conf(p) > t))
    a = float(np.mean([acc(q, y) for q, y in src]))
    c_src = float(np.mean([conf(q).mean() for q, _ in src]))
    return a - (c_src - float(conf(p).mean()))


def main():
    settings = sys.argv[1].split(",") if len(sys.argv) > 1 else ["folder", "enrol", "inductive"]
    cfg = load_config("configs/xcorpus-speech.yaml")
    res = json.load(open("benchmarks/results/xcorpus-speech.json"))
    t, _ = load_table(CORPORA, feature="whisper", params=cfg.features.params)
    t.records = []
    summary = {}
    for setting in settings:
        rows = {r: [] for r in ("nll", "atc", "doc", "oracle")}
        est_err = {r: [] for r in ("atc", "doc")}
        for cell in res["cells"][setting]:
            T = cell["test"]
            if T not in CORPORA:
                continue
            train = [c for c in CORPORA if c != T]
            classes = _ordered(t.classes_of(train) & t.classes_of([T]))
            cand = Candidate(**{k: (tuple(v) if isinstance(v, list) else v)
                                for k, v in cell["chosen"].items()})
            t0 = time.time()
            held = select(t, train, classes, [cand], setting)["held"]
            line = []
            for j, (p, y) in enumerate(held):
                others = [h for i, h in enumerate(held) if i != j]
                tg = fit_temperature([q for q, _ in others], [yy for _, yy in others])
                rows["nll"].append(100 * ece(apply_temperature(p, tg), y))
                src = [(apply_temperature(q, tg), yy) for q, yy in others]
                pg = apply_temperature(p, tg)
                for rule in ("atc", "doc"):
                    a_hat = estimate(rule, src, pg)
                    est_err[rule].append(100 * (a_hat - acc(p, y)))
                    tt = t_for_confidence(p, a_hat)
                    rows[rule].append(100 * ece(apply_temperature(p, tt), y))
                to = fit_temperature([p], [y])
                rows["oracle"].append(100 * ece(apply_temperature(p, to), y))
                line.append(f"acc {100 * acc(p, y):.1f} nll {rows['nll'][-1]:.1f} "
                            f"atc {rows['atc'][-1]:.1f} ({est_err['atc'][-1]:+.1f}) "
                            f"doc {rows['doc'][-1]:.1f} ({est_err['doc'][-1]:+.1f}) "
                            f"oracle {rows['oracle'][-1]:.1f}")
            print(f"{setting}:{T} ({time.time() - t0:.0f} s)\n  " + "\n  ".join(line),
                  flush=True)
        summary[setting] = {r: {"mean": round(float(np.mean(v)), 2),
                                "max": round(float(np.max(v)), 2)} for r, v in rows.items()}
        summary[setting]["accuracy_error"] = {
            r: {"mean_abs": round(float(np.mean(np.abs(v))), 2)} for r, v in est_err.items()}
        print(setting, json.dumps(summary[setting]), flush=True)
    json.dump(summary, open("/tmp/xcorpus_atc_explore.json", "w"), indent=1)


if __name__ == "__main__":
    main()
