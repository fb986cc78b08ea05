"""Fill the feature cache with the canonical Whisper-base states (layers 1..6, meanstd, clip
padding) of every xcorpus-speech clip cut to its speech span (``trim: vad``, as the committed
recipe) and then scaled to one loudness (``gain: rms``: -23 dBFS root-mean-square; see
emofuse.features.speech.normalize_gain), through the library's own cached extraction.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_gain_extract.py SHARD NSHARDS
"""
import sys
import time

import emofuse
from emofuse.features.cache import FeatureCache
from emofuse.features.speech import extract

PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip",
          "trim": "vad", "gain": "rms"}
CORPORA = ["ased", "urdu", "nemo", "savee", "ravdess"]


def main() -> None:
    shard, n = int(sys.argv[1]), int(sys.argv[2])
    cache = FeatureCache()
    for corpus in CORPORA:
        recs = [r for r in emofuse.load_corpus(corpus).records if r.audio is not None][shard::n]
        t0 = time.time()
        for i, r in enumerate(recs):
            extract(r.audio, "whisper", params=PARAMS, cache=cache)
            if i % 500 == 0:
                print(f"{corpus} {i}/{len(recs)} {time.time() - t0:.0f}s", flush=True)
        print(f"{corpus} done {len(recs)} in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
