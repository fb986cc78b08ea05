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

sys.path.insert(0, str(Path(__file__).parent))
from xcorpus_explore import CORPORA, table

from emofuse.recipes.xcorpus import _ordered, candidates, select
from emofuse.recipes.xcorpus_align import (
    AlignGridParams,
    align_candidates,
    fit_align,
)

TARGETS = ["ravdess", "savee", "ased", "nemo"]


def main() -> None:
    torch.set_num_threads(1)
    setting, grid = sys.argv[1], json.loads(sys.argv[2])
    tag = sys.argv[3] if len(sys.argv) > 3 else "run"
    outers = sys.argv[4].split(",") if len(sys.argv) > 4 else CORPORA
    lr_grid = json.loads(sys.argv[5]) if len(sys.argv) > 5 else None
    t = table()
    cands = (candidates(lr_grid) if lr_grid else []) + align_candidates(AlignGridParams(**grid))
    inner = np.full((len(cands), len(outers)), np.nan)
    t0 = time.time()
    for j, outer in enumerate(outers):
        train = [c for c in CORPORA if c != outer]
        classes = _ordered(t.classes_of(train) & t.classes_of([outer]))
        inner[:, j] = select(t, train, classes, cands, setting, fit=fit_align)["mean"]
        print(f"outer {outer} done after {time.time() - t0:.0f} s", flush=True)
    cols = [j for j, o in enumerate(outers) if o in TARGETS]
    print(f"\n[{setting} / {tag}] inner LOCO UA % per outer cell ({', '.join(outers)}) "
          "| avg over the targets among them")
    report = {}
    for c, row in zip(cands, inner):
        avg = float(np.mean(row[cols])) if cols else float("nan")
        report[c.short(setting)] = dict(zip(outers, row.round(4).tolist()), avg4=round(avg, 4))
        print("  " + " ".join(f"{100 * v:5.1f}" for v in row) + f" | {100 * avg:5.1f}  "
              + c.short(setting))
    Path(f"/tmp/xcorpus_align_explore_{setting}_{tag}.json").write_text(
        json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
