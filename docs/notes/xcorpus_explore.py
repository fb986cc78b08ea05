"""Nested leave-one-corpus-out exploration for configs/xcorpus-speech.yaml.

Prints, for each candidate, the nested (inner) LOCO UA of every outer cell: for outer test
corpus T, the mean UA over the training corpora held out in turn (train on the others). The
outer test corpora's own figures are never computed here: they come only from the final
`emofuse bench xcorpus-speech` run with the grid fixed in the config.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_explore.py SETTING 'GRID_JSON' [TAG]
    e.g. ... inductive '{"layers": [[3], [4]], "C": [0.01, 0.1]}' layers
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from emofuse.recipes.xcorpus import Table, _ordered, candidates, load_table, select

CORPORA = ["ravdess", "savee", "ased", "nemo", "urdu"]
PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}



def table() -> Table:
    t, _ = load_table(CORPORA, feature="whisper", params=PARAMS)
    t.records = []          # cross_corpus checks are the suite's job
    return t


def nested_rows(variants, setting: str, cands) -> dict[str, dict[str, float]]:
    """Nested LOCO UA of every candidate for each outer corpus: ``variants`` lists
    ``(tag, table, fit)`` (``fit``: None, or a function with fit_predict's signature)."""
    rows: dict[str, dict[str, float]] = {}
    t0 = time.time()
    for T in CORPORA:
        train = [c for c in CORPORA if c != T]
        for tag, tab, fit in variants:
            classes = _ordered(tab.classes_of(train) & tab.classes_of([T]))
            sel = select(tab, train, classes, cands, setting, fit=fit)
            for c, m in zip(cands, sel["mean"]):
                rows.setdefault(f"{tag} {c.short(setting)}".strip(), {})[T] = float(m)
        print(T, f"{time.time() - t0:.0f} s", flush=True)
    return rows


def print_rows(rows: dict[str, dict[str, float]], title: str) -> None:
    """One line per candidate: nested UA (%) per outer corpus, then avg4."""
    print(f"\n{title}: nested LOCO UA; columns {' '.join(CORPORA)} | avg4")
    for name, r in rows.items():
        a4 = np.mean([r[o] for o in ["ravdess", "savee", "ased", "nemo"]])
        print(f"{name:55s} " + " ".join(f"{100 * r[o]:6.2f}" for o in CORPORA)
              + f" | {100 * a4:6.2f}", flush=True)


def main() -> None:
    setting, grid = sys.argv[1], json.loads(sys.argv[2])
    tag = sys.argv[3] if len(sys.argv) > 3 else "run"
    outers = sys.argv[4].split(",") if len(sys.argv) > 4 else CORPORA + ["all"]
    t = table()
    grids = grid if isinstance(grid, list) else [grid]   # a list: one-factor variations
    cands = [c for g in grids for c in candidates(g)]
    rows = {c.short(setting): {} for c in cands}
    t0 = time.time()
    for T in outers:
        train = [c for c in CORPORA if c != T]
        test_classes = ({"neutral", "happy", "sad", "angry", "fear", "disgust"} if T == "all"
                        else t.classes_of([T]))   # 'all': the CREMA-D cell's classes
        classes = _ordered(t.classes_of(train) & test_classes)
        sel = select(t, train, classes, cands, setting)
        for c, m, row in zip(cands, sel["mean"], sel["scores"]):
            rows[c.short(setting)][T] = {"mean": round(float(m), 4),
                                  "inner": dict(zip(train, [round(float(v), 4) for v in row]))}
        print(f"{T}: {time.time() - t0:.0f} s", flush=True)
    print(f"\n{setting} {tag}: nested LOCO UA (mean over held-out training corpora), per outer"
          " cell; avg4 = mean over ravdess, savee, ased, nemo")
    print(f"{'candidate':70s} " + " ".join(f"{o:>8s}" for o in outers) + "     avg4")
    for name, r in rows.items():
        a4 = np.mean([r[o]["mean"] for o in ["ravdess", "savee", "ased", "nemo"] if o in r])
        print(f"{name:70s} " + " ".join(f"{100 * r[o]['mean']:8.2f}" for o in outers)
              + f" {100 * a4:8.2f}")
    out = Path(f"/tmp/xcorpus_explore_{setting}_{tag}.json")
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
