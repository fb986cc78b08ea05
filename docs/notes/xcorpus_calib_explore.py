"""Calibration and label-shift exploration for configs/xcorpus-speech.yaml, on inner folds only.

For every outer cell (test corpus T) and setting, the candidate the suite chose (read from the
committed results: the choice depends on inner folds only) is refitted on the nested folds of
T's training corpora, which gives out-of-corpus probabilities for each training corpus held out
in turn. On those alone:

- calibration methods are compared by leave-one-inner-corpus-out: the temperature is fitted on
  the other held-out training corpora and the ECE measured on the remaining one (``nll``: the
  suite's rule, mean NLL with equal weight per corpus; ``minimax``: the largest per-corpus NLL;
  ``ece``: the mean per-corpus ECE; ``none``: T = 1);
- (folder / enrol settings, which may use the unlabelled test folder) label-shift EM
  (Saerens et al. 2002) on each held-out corpus' probabilities: the change in UA and ECE.

The outer test corpora's figures are never computed here.

Superseded (2026-12-07): ``PARAMS`` below are the Whisper settings of the suite *before* it
trimmed silence (``trim: vad``), so these probabilities are not the current suite's; its
successor, docs/notes/xcorpus_atc_explore.py, reads the suite's own config. Kept as the record
of the outcome committed with it.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_calib_explore.py [SETTINGS]
"""
import json
import math
import sys
import time

import numpy as np
from scipy.optimize import minimize_scalar

from emofuse.evaluate.calibration import apply_temperature, ece, fit_temperature
from emofuse.recipes._xcorpus_grid import Candidate
from emofuse.recipes.xcorpus import _ordered, load_table, select

CORPORA = ["ravdess", "savee", "ased", "nemo", "urdu"]
PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}


def _nll(p, y, t):
    return -np.mean(np.log(np.clip(apply_temperature(p, t)[np.arange(len(y)), y], 1e-12, None)))


def fit_t(sets, rule):
    if rule == "none" or not sets:
        return 1.0
    if rule == "nll":
        return fit_temperature([p for p, _ in sets], [y for _, y in sets])

    def obj(lt):
        t = math.exp(lt)
        if rule == "minimax":
            return max(_nll(p, y, t) for p, y in sets)
        return float(np.mean([ece(apply_temperature(p, t), y) for p, y in sets]))
    r = minimize_scalar(obj, bounds=(math.log(0.05), math.log(50)), method="bounded",
                        options={"xatol": 1e-3})
    return float(math.exp(r.x))


def em_priors(p, train_prior, iters=100):
    """Saerens et al. label-shift EM: adapted posteriors and the estimated test priors."""
    q = train_prior.copy()
    for _ in range(iters):
        w = p * (q / train_prior)
        w /= w.sum(1, keepdims=True)
        q_new = w.mean(0)
        if np.abs(q_new - q).max() < 1e-6:
            break
        q = q_new
    return w, q


def ua(y, pred, k):
    return float(np.mean([np.mean(pred[y == c] == c) for c in range(k) if (y == c).any()]))


def main():
    settings = sys.argv[1].split(",") if len(sys.argv) > 1 else ["inductive", "folder", "enrol"]
    res = json.load(open("benchmarks/results/xcorpus-speech.json"))
    t, _ = load_table(CORPORA, feature="whisper", params=PARAMS)
    t.records = []
    out = {}
    for setting in settings:
        for cell in res["cells"][setting]:
            T = cell["test"]
            if T not in CORPORA:
                continue
            train = [c for c in CORPORA if c != T]
            classes = _ordered(t.classes_of(train) & t.classes_of([T]))
            cand = Candidate(**{k: (tuple(v) if isinstance(v, list) else v)
                                  for k, v in cell["chosen"].items()})
            t0 = time.time()
            sel = select(t, train, classes, [cand], setting)
            held = sel["held"]          # one (p, y) per training corpus held out, in order
            names = [c for c in train if len(sel["inner_classes"].get(c, [])) >= 2]
            row = {"ua": [round(100 * ua(y, p.argmax(1), p.shape[1]), 2) for p, y in held]}
            for rule in ["none", "nll", "minimax", "ece"]:
                eces = []
                for j in range(len(held)):
                    tt = fit_t([h for i, h in enumerate(held) if i != j], rule)
                    p, y = held[j]
                    eces.append(round(100 * ece(apply_temperature(p, tt), y), 2))
                row[f"loio_ece_{rule}"] = eces
            if setting != "inductive":
                tt = fit_temperature([p for p, _ in held], [y for _, y in held])
                em_ua, em_ece = [], []
                for j, (p, y) in enumerate(held):
                    # training prior of the inner fit: the class balance makes it uniform
                    k = p.shape[1]
                    w, _ = em_priors(apply_temperature(p, tt), np.full(k, 1.0 / k))
                    em_ua.append(round(100 * ua(y, w.argmax(1), k), 2))
                    em_ece.append(round(100 * ece(w, y), 2))
                row["em_ua"], row["em_ece_ts"] = em_ua, em_ece
            row["held_out"] = names
            out[f"{setting}:{T}"] = row
            print(f"{setting}:{T} ({time.time() - t0:.0f} s) {json.dumps(row)}", flush=True)
    json.dump(out, open("/tmp/xcorpus_calib_explore.json", "w"), indent=1)


if __name__ == "__main__":
    main()
