"""Would more dair-ai / GoEmotions transfer text lift the distilled text student on MELD?
A learning curve on *dev* splits only (no test split is read): the joint student of
``xcorpus-text-distil`` (teacher refitted on the same rows, as the suite does) trained with
MELD's whole train split and a growing stratified share of the dair-ai and GoEmotions rows the
suite uses (4000 each), scored on the three dev splits (MELD weighted F1, dair-ai and
GoEmotions macro-F1, in-corpus). Candidates: the bundled one (minilm+proto mlp a1) and its
a0 / a0.5 siblings.

    .venv/bin/python docs/notes/xcorpus_text_distil_curve.py

Reads the SmolLM2 states of the train rows from the feature cache
(docs/notes/xcorpus_text_distil_extract.py). Prints a table.

Decision fixed before the run (2026-12-07, session 12): the extension -- the teacher's soft
labels on the rest of the dair-ai and GoEmotions train splits (about 48k more SmolLM2 passes) --
is worth its CPU only if the bundled candidate (a1) gains at least 1 point of MELD dev weighted
F1 from share 0.5 to share 1.0 (more out-of-domain transfer text lifting MELD); otherwise it is
not run, and the note says so.

Outcome (one run 2026-12-07 16:59 UTC at bfd121b, 6 min on one core; dev splits only):

    share  rows   cand  MELD wF1  dair mF1  GoEmo mF1
    0.25   11989  a0    53.45     46.30     34.53
    0.25   11989  a0.5  53.45     46.08     34.19
    0.25   11989  a1    52.81     44.95     34.42
    0.50   13989  a0    54.18     50.67     36.58
    0.50   13989  a0.5  54.17     53.92     37.42
    0.50   13989  a1    52.65     46.61     36.24
    1.00   17989  a0    52.18     57.11     38.02
    1.00   17989  a0.5  54.84     58.55     42.00
    1.00   17989  a1    51.99     50.19     39.22

(share 1.0 reproduces the suite's MELD dev figures of these candidates.) The bundled a1 loses
0.66 MELD dev points from share 0.5 to 1.0 (52.81, 52.65, 51.99): more dair-ai / GoEmotions
text does not lift MELD, it dilutes it, while their own dev figures rise steeply. By the rule
above the extension is not run.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from emofuse.config import load_config
from emofuse.evaluate.metrics import classification_metrics
from emofuse.recipes.xcorpus_text import TextTable, _scored, fit_on
from emofuse.recipes.xcorpus_text_distil import DistilCandidate, XcorpusTextDistil

CONFIG = "configs/xcorpus-text-distil.yaml"
SHARES = (0.25, 0.5, 1.0)
FEATURES = "minilm+proto"
ALPHAS = (0.0, 0.5, 1.0)


def subset(t: TextTable, keep: np.ndarray) -> TextTable:
    idx = np.flatnonzero(keep)
    recs = [t.records[i] for i in idx] if len(t.records) == len(keep) else []
    return TextTable(t.x[idx], t.labels[idx], t.corpus[idx], t.part[idx],
                     [t.texts[i] for i in idx], recs)


def main() -> None:
    suite = XcorpusTextDistil(load_config(CONFIG), log=lambda m: None)
    p = suite.p
    table, _, ctxs, cands = suite.tables()
    ctx = ctxs[FEATURES]
    mlp = [c for c in cands[FEATURES] if c.base.head == "mlp" and c.alpha in ALPHAS]
    classes = [c for c in p.labels if c in set(table.labels[table.part == "train"])]
    rng = np.random.default_rng(0)
    order = {c: rng.permutation(table.rows([c], "train")) for c in ("dair", "goemotions")}
    print(f"{'share':>6} {'rows':>7} {'cand':>6} {'meld wF1':>9} {'dair mF1':>9} "
          f"{'goemo mF1':>9}", flush=True)
    for share in SHARES:
        keep = np.ones(len(table.labels), bool)
        for c, rows in order.items():
            keep[rows[int(round(share * len(rows))):]] = False
        sctx = suite.context(subset(ctx.table, keep))
        tctx = suite.context(subset(mlp[0].teacher_ctx.table, keep))
        for cand in mlp:
            c2 = dataclasses.replace(cand, teacher_ctx=tctx)
            assert isinstance(c2, DistilCandidate)
            head = fit_on(sctx, p.corpora, classes, c2)
            out = []
            for corpus, metric in (("meld", "weighted_f1"), ("dair", "macro_f1"),
                                   ("goemotions", "macro_f1")):
                shared = [k for k in classes if k in sctx.table.labels_of([corpus], "val")]
                pr, y = _scored(sctx, head, corpus, "val", shared)
                out.append(100 * classification_metrics(y, pr.argmax(1), classes=shared)[metric])
            n = int((sctx.table.part == "train").sum())
            print(f"{share:>6.2f} {n:>7} {'a%g' % cand.alpha:>6} "
                  + " ".join(f"{v:>9.2f}" for v in out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
