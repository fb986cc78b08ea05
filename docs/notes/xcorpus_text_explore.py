"""Design exploration for xcorpus-text (dev splits only: no test split is read).

For each candidate head/weighting, prints
- the LOCO dev macro-F1 (fitted on the train splits of two corpora, scored on the dev split of
  the third, shared canonical labels) -- what the joint (v2) selection maximises;
- single-corpus transfers (train split of A -> dev split of B, the nested inner folds);
- the joint model (all three train splits) on each corpus' own dev split: MELD dev weighted F1
  (the bundled MELD-only model: 51.48 on MELD dev) and macro-F1.

Run: OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_text_explore.py '<grid json>'
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from emofuse.evaluate.metrics import classification_metrics
from emofuse.labels import BASIC7
from emofuse.recipes import xcorpus_text as xt

CORPORA = ["dair", "meld", "goemotions"]


def main() -> None:
    grid = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {"head": "lr"}
    table, _ = xt.load_table(CORPORA, log=print)
    ctx = xt.TextContext(table)
    for cand in xt.candidates(grid):
        t0 = time.perf_counter()
        row = {}
        for s in CORPORA:        # LOCO on dev
            rest = [c for c in CORPORA if c != s]
            classes = [c for c in BASIC7 if c in table.labels_of(rest, "train")
                       and c in table.labels_of([s], "val")]
            head = xt.fit_on(ctx, rest, classes, cand)
            p, y = xt._scored(ctx, head, s, "val", classes)
            row[f"loco:{s}"] = classification_metrics(y, p.argmax(1), classes=classes)["macro_f1"]
        for a in CORPORA:        # single corpus -> other corpus dev
            for b in CORPORA:
                if a == b:
                    continue
                classes = [c for c in BASIC7 if c in table.labels_of([a], "train")
                           and c in table.labels_of([b], "val")]
                head = xt.fit_on(ctx, [a], classes, cand)
                p, y = xt._scored(ctx, head, b, "val", classes)
                row[f"{a[:4]}>{b[:4]}"] = classification_metrics(
                    y, p.argmax(1), classes=classes)["macro_f1"]
        classes = [c for c in BASIC7 if c in table.labels_of(CORPORA, "train")]
        head = xt.fit_on(ctx, CORPORA, classes, cand)
        for c in CORPORA:
            shared = [k for k in classes if k in table.labels_of([c], "val")]
            p, y = xt._scored(ctx, head, c, "val", shared)
            m = classification_metrics(y, p.argmax(1), classes=shared)
            row[f"joint:{c[:4]}:mF1"] = m["macro_f1"]
            if c == "meld":
                row["joint:meld:wF1"] = m["weighted_f1"]
        loco = np.mean([row[f"loco:{s}"] for s in CORPORA])
        print(f"{cand.short():45s} LOCO-dev {100 * loco:5.2f} | " + " ".join(
            f"{k} {100 * v:5.2f}" for k, v in row.items())
            + f" | {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
