"""Post-hoc calibration diagnostic for xcorpus-text (written AFTER the suite's test figures were
read; it changes nothing in the suite or its config and chooses nothing).

The suite fits each cell's temperature on out-of-corpus dev probabilities of the nested
folds (single-corpus models). This script shows the other reading of "temperature fitted on the
training corpora's dev splits": the cell's final model on the in-corpus dev splits of its
training corpora (each corpus weighted equally); ECE (15 bins) on the held-out test split.

Run: OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_text_calibration.py
"""

from __future__ import annotations

import json

from emofuse.recipes import xcorpus_text as xt


def main() -> None:
    res = json.load(open("benchmarks/results/xcorpus-text.json"))
    table, _ = xt.load_table(res["folds"], log=None)
    ctx = xt.TextContext(table)
    for cell in res["cells"]:
        cand = xt.Candidate(**cell["chosen"])
        head = xt.fit_on(ctx, cell["train"], cell["classes"], cand)      # cached fit
        dev = []
        for c in cell["train"]:
            shared = [k for k in cell["classes"] if k in table.labels_of([c], "val")]
            p, y = xt._scored(ctx, head, c, "val", shared)
            dev.append((p, y))
        t_in = xt.fit_temperature([p for p, _ in dev], [y for _, y in dev])
        p, y = xt._scored(ctx, head, cell["test"], "test", cell["classes"])
        print(f"{cell['test']:11s} ECE {100 * xt.ece(p, y):5.2f} | suite T {cell['temperature']:.3f} "
              f"-> {100 * xt.ece(xt.apply_temperature(p, cell['temperature']), y):5.2f} | "
              f"in-corpus-dev T {t_in:.3f} -> {100 * xt.ece(xt.apply_temperature(p, t_in), y):5.2f}")


if __name__ == "__main__":
    main()
