"""Fill the shared feature cache with the canonical Whisper-base states for the xcorpus-speech
suite: layers 1..6, meanstd pooling, clip padding (6 x 1024 = 6144 values per clip).

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_extract.py ased urdu nemo savee ravdess
"""
import sys
import time

import emofuse
from emofuse.errors import EmofuseError
from emofuse.features.cache import FeatureCache
from emofuse.features.speech import extract

PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}

cache = FeatureCache()
for corpus in sys.argv[1:]:
    recs = [r for r in emofuse.load_corpus(corpus).records if r.audio is not None]
    t0, bad = time.time(), 0
    for i, r in enumerate(recs):
        try:
            extract(r.audio, "whisper", params=PARAMS, cache=cache)
        except EmofuseError as exc:
            bad += 1
            print(f"{corpus}: {r.audio}: {exc}", flush=True)
        if i % 200 == 0:
            print(f"{corpus} {i}/{len(recs)} {time.time() - t0:.0f}s hits={cache.hits} "
                  f"misses={cache.misses}", flush=True)
    print(f"{corpus} done {len(recs)} in {time.time() - t0:.0f}s, {bad} failed", flush=True)
