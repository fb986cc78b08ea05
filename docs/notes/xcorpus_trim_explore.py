"""Nested leave-one-corpus-out exploration: Whisper states of the clips with their leading and
trailing non-speech cut off (Silero VAD; docs/notes/xcorpus_trim_extract.py fills the cache).

The corpora differ in how much silence surrounds the speech (about half of a RAVDESS clip,
a fifth of SAVEE, a third of ASED, almost none in nEMO and URDU), and the mean/std pooling over
frames mixes it into every feature. Here every clip, training and held-out alike, is trimmed
(as a product would trim its input). Prints only nested (inner) figures, as
docs/notes/xcorpus_explore.py does: for each outer test corpus T, the mean UA over T's training
corpora held out in turn; avg4 = mean over the outer cells RAVDESS, SAVEE, ASED, nEMO.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_trim_explore.py SETTING
"""
import dataclasses
import sys

import numpy as np

sys.path.insert(0, "docs/notes")
import xcorpus_explore as xe  # noqa: E402
from xcorpus_speed_explore import GRIDS  # noqa: E402
from xcorpus_trim_extract import features  # noqa: E402

from emofuse.features.cache import FeatureCache  # noqa: E402
from emofuse.recipes._xcorpus_data import _media, load_table  # noqa: E402
from emofuse.recipes.xcorpus import candidates  # noqa: E402


def main() -> None:
    setting = sys.argv[1]
    t, _ = load_table(xe.CORPORA, feature="whisper", params=xe.PARAMS, log=None)
    cache = FeatureCache()
    xt = np.stack([features(_media(r), cache) for r in t.records]).astype(np.float32)
    if cache.misses:
        raise SystemExit(f"{cache.misses} trimmed clips were not cached: run the extraction")
    tt = dataclasses.replace(t, x=xt, speaker=np.array([s.split(":", 1)[1] for s in t.speaker],
                                                       dtype=object))
    assert (tt.speaker == t.speaker).all()
    rows = xe.nested_rows([("orig", t, None), ("trim", tt, None)], setting,
                          candidates(GRIDS[setting]))
    xe.print_rows(rows, setting)


if __name__ == "__main__":
    main()
