"""Fill the feature cache with one speed-perturbed copy of every clip of the xcorpus-speech
corpora: the canonical Whisper-base states (layers 1..6, meanstd, clip padding) of the waveform
played at 0.9 or 1.1 times its speed (emofuse.features.speech.speed_perturb, Kaldi-style: tempo
and pitch together), the factor fixed per clip by the parity of crc32(record id).

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_speed_extract.py SHARD NSHARDS
"""
import sys
import time
import zlib

import emofuse
from emofuse.errors import EmofuseError
from emofuse.features.cache import FeatureCache
from emofuse.features.speech import extract

PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}
CORPORA = ["ased", "urdu", "nemo", "savee", "ravdess"]


def speed_of(record_id: str) -> float:
    return 0.9 if zlib.crc32(record_id.encode()) % 2 == 0 else 1.1


def main() -> None:
    shard, n = int(sys.argv[1]), int(sys.argv[2])
    cache = FeatureCache()
    for corpus in CORPORA:
        recs = [r for r in emofuse.load_corpus(corpus).records if r.audio is not None]
        recs = recs[shard::n]
        t0, bad = time.time(), 0
        for i, r in enumerate(recs):
            try:
                extract(r.audio, "whisper", params={**PARAMS, "speed": speed_of(r.id)},
                        cache=cache)
            except EmofuseError as exc:
                bad += 1
                print(f"{corpus}: {r.audio}: {exc}", flush=True)
            if i % 500 == 0:
                print(f"{corpus} {i}/{len(recs)} {time.time() - t0:.0f}s misses={cache.misses}",
                      flush=True)
        print(f"{corpus} done {len(recs)} in {time.time() - t0:.0f}s, {bad} failed", flush=True)


if __name__ == "__main__":
    main()
