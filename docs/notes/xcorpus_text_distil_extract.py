"""Fill the feature cache with what ``xcorpus-text-distil`` (and the text v4 model) reads:
the MiniLM embeddings of dair-ai, MELD and GoEmotions and the SmolLM2 states of the rows the
teacher is fitted on (train splits: dair-ai and GoEmotions cut to 4000 items, MELD whole), one
process per group of corpora so that two cores share the work:

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_text_distil_extract.py meld &
    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_text_distil_extract.py dair goemotions

The chunks are those of the suite (one call per corpus and split, rows in table order), so its
run then reads them from the cache. Prints timings only; no figure.
"""

from __future__ import annotations

import sys
import time

from emofuse.config import load_config
from emofuse.recipes import xcorpus_text as xt
from emofuse.recipes import xcorpus_text_transfer as xtt

CONFIG = "configs/xcorpus-text-llm.yaml"


def main(corpora: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    cfg = load_config(CONFIG)
    p = xtt.check(cfg)
    t0 = time.perf_counter()
    table, _ = xt.load_table(corpora, features=cfg.features, roots=p.roots,
                             goemotions_multilabel=p.goemotions_multilabel, log=print)
    table = xtt.cap_train(table, p.train_cap, exempt=["meld"])
    print(f"embedded in {time.perf_counter() - t0:.0f} s", flush=True)
    xtt.llm_states(table, p.llm, log=lambda m: print(m, flush=True), parts=("train",))
    print(f"done in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
