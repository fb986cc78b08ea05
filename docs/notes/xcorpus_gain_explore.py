"""Nested leave-one-corpus-out exploration: loudness normalisation of the trimmed clips.

The corpora are recorded at very different levels: the RMS of the trimmed speech is about
-39 dBFS in RAVDESS against -20 to -24 in SAVEE, ASED, nEMO and URDU (30 clips each), and the
Whisper log-mel front end is not gain-invariant, so the level is a corpus confound (in the
inductive setting the held-out corpus is standardised with the training corpora's
statistics and keeps its offset). Here every clip, training and held-out alike, is trimmed and
then scaled to -23 dBFS RMS (``gain: rms``; docs/notes/xcorpus_gain_extract.py fills the
cache). Compared with the committed recipe (trimmed only), same grid.

Rule, fixed before this script was first run: adopt ``gain: rms`` iff the best inductive avg4
rises by >= 0.5 points and the best folder avg4 does not fall by more than 0.5.

Prints only nested (inner) figures, as docs/notes/xcorpus_explore.py does: for each outer test
corpus T, the mean UA over T's training corpora held out in turn; avg4 = mean over the outer
cells RAVDESS, SAVEE, ASED, nEMO.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_gain_explore.py SETTING
"""
import dataclasses
import sys

import numpy as np

sys.path.insert(0, "docs/notes")
import xcorpus_explore as xe  # noqa: E402
from xcorpus_gain_extract import PARAMS  # noqa: E402
from xcorpus_speed_explore import GRIDS  # noqa: E402

from emofuse.features.cache import FeatureCache  # noqa: E402
from emofuse.features.speech import extract  # noqa: E402
from emofuse.recipes._xcorpus_data import _media, load_table  # noqa: E402
from emofuse.recipes.xcorpus import candidates  # noqa: E402


def table_with(params):
    t, _ = load_table(xe.CORPORA, feature="whisper", params=xe.PARAMS, log=None)
    cache = FeatureCache()
    x = np.stack([extract(_media(r), "whisper", params=params, cache=cache)
                  for r in t.records]).astype(np.float32)
    if cache.misses:
        raise SystemExit(f"{cache.misses} clips of {params} were not cached: run the extraction")
    return dataclasses.replace(t, x=x, records=[])


def main() -> None:
    setting = sys.argv[1]
    trim = table_with({k: v for k, v in PARAMS.items() if k != "gain"})
    gain = table_with(PARAMS)
    rows = xe.nested_rows([("trim", trim, None), ("trim+gain", gain, None)], setting,
                          candidates(GRIDS[setting]))
    xe.print_rows(rows, setting)


if __name__ == "__main__":
    main()
