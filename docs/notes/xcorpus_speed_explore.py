"""Nested leave-one-corpus-out exploration: one speed-perturbed copy of every training clip.

Each training clip gets its copy played at 0.9 or 1.1 times the speed (the factor fixed by
docs/notes/xcorpus_speed_extract.py, which fills the cache first), with the same label, corpus
and speaker; the copies join the training rows only (standardisation statistics included), the
held-out corpus is scored on its original clips. Prints only nested (inner) figures, as
docs/notes/xcorpus_explore.py does: for each outer test corpus T, the mean UA over T's training
corpora held out in turn; avg4 = mean over the outer cells RAVDESS, SAVEE, ASED, nEMO.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_speed_explore.py SETTING
"""
import sys

import numpy as np

sys.path.insert(0, "docs/notes")
import xcorpus_explore as xe  # noqa: E402
from xcorpus_speed_extract import PARAMS, speed_of  # noqa: E402

from emofuse.features.cache import FeatureCache  # noqa: E402
from emofuse.features.speech import extract  # noqa: E402
from emofuse.recipes._xcorpus_data import Table, _media  # noqa: E402
from emofuse.recipes.xcorpus import candidates, fit_predict  # noqa: E402

GRIDS = {"inductive": {"layers": [[3, 4], [3, 4, 5]], "norm": ["global", "corpus"],
                       "C": [0.001, 0.01]},
         "folder": {"layers": [[3, 4], [3, 4, 5]], "C": [0.001, 0.01]},
         "enrol": {"layers": [[3, 4], [3, 4, 5]], "C": [0.001, 0.01]}}


def tables() -> tuple[Table, Table]:
    """The original table and the table of originals followed by their speed copies."""
    from emofuse.recipes._xcorpus_data import load_table

    t, _ = load_table(xe.CORPORA, feature="whisper", params=xe.PARAMS, log=None)
    cache = FeatureCache()
    aug = np.stack([extract(_media(r), "whisper", params={**PARAMS, "speed": speed_of(r.id)},
                            cache=cache) for r in t.records]).astype(np.float32)
    if cache.misses:
        raise SystemExit(f"{cache.misses} speed copies were not cached: run the extraction")
    raw = [s.split(":", 1)[1] for s in t.speaker]
    big = Table(np.concatenate([t.x, aug]), np.concatenate([t.labels, t.labels]),
                np.concatenate([t.corpus, t.corpus]), raw + raw,
                t.ids + [f"{i}+speed" for i in t.ids], t.layers)
    return t, big


def main() -> None:
    setting = sys.argv[1]
    t, big = tables()
    n = len(t.ids)

    def fit_aug(table, tr, te, classes, cands, setting, **kw):   # copies of the training rows
        return fit_predict(big, np.concatenate([tr, tr + n]), te, classes, cands, setting, **kw)

    rows = xe.nested_rows([("orig", t, None), ("speed", t, fit_aug)], setting,
                          candidates(GRIDS[setting]))
    xe.print_rows(rows, setting)


if __name__ == "__main__":
    main()
