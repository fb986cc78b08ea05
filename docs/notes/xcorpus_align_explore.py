"""Nested leave-one-corpus-out exploration for configs/xcorpus-speech-align.yaml.

Prints, for each aligned-MLP candidate (and optionally LR candidates), the nested (inner)
LOCO UA of every outer cell: for outer test corpus T, the mean UA over the training corpora
held out in turn (train on the others). The outer test corpora's own figures are never
computed here: they come only from `emofuse bench xcorpus-speech-align` with the grid fixed.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_align_explore.py SETTING \
        'ALIGN_GRID_JSON' [TAG] [OUTERS] ['LR_GRID_JSON']
    e.g. ... inductive '{"layers": [[3, 4, 5]], "norm": ["corpus"],
                         "method": ["none", "dann"], "lam": [0.3]}' methods ravdess,savee,ased,nemo
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emofuse.recipes.xcorpus import Table, _ordered, candidates, load_table, select
from emofuse.recipes.xcorpus_align import AlignGridParams, align_candidates, fit_align

CORPORA = ["ravdess", "savee", "ased", "nemo", "urdu"]
PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}


def table() -> Table:
    t, _ = load_table(CORPORA, feature="whisper", params=PARAMS)
    t.records = []          # cross_corpus checks are the suite's job
    return t


def main() -> None:
    torch.set_num_threads(1)
    setting, grid = sys.argv[1], json.loads(sys.argv[2])
    tag = sys.argv[3] if len(sys.argv) > 3 else "run"
    outers = sys.argv[4].split(",") if len(sys.argv) > 4 else CORPORA
    lr_grid = json.loads(sys.argv[5]) if len(sys.argv) > 5 else None
    t = table()
    cands = (candidates(lr_grid) if lr_grid else []) + align_candidates(AlignGridParams(**grid))
    rows: dict[str, dict] = {c.short(setting): {} for c in cands}
    t0 = time.time()
    for T in outers:
        train = [c for c in CORPORA if c != T]
        classes = _ordered(t.classes_of(train) & t.classes_of([T]))
        sel = select(t, train, classes, cands, setting, fit=fit_align)
        for c, m, row in zip(cands, sel["mean"], sel["scores"]):
            rows[c.short(setting)][T] = {"mean": round(float(m), 4),
                                         "inner": dict(zip(train, [round(float(v), 4)
                                                                   for v in row]))}
        print(f"{T}: {time.time() - t0:.0f} s", flush=True)
    print(f"\n{setting} {tag}: nested LOCO UA (mean over held-out training corpora), per outer"
          " cell; avg4 = mean over the targets ravdess, savee, ased, nemo present")
    print(f"{'candidate':96s} " + " ".join(f"{o:>8s}" for o in outers) + "     avg4")
    for name, r in rows.items():
        a4 = np.mean([r[o]["mean"] for o in ["ravdess", "savee", "ased", "nemo"] if o in r])
        print(f"{name:96s} " + " ".join(f"{100 * r[o]['mean']:8.2f}" for o in outers)
              + f" {100 * a4:8.2f}")
    out = Path(f"/tmp/xcorpus_align_explore_{setting}_{tag}.json")
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
