"""Fill the feature cache with the canonical Whisper-base states (layers 1..6, meanstd, clip
padding) of every xcorpus-speech clip with its leading and trailing non-speech cut off: Silero
VAD (emofuse.features.vad, 32 ms frames), from 0.1 s before the first frame to 0.1 s after the
last frame whose speech probability exceeds 0.5 (the whole clip when none does).

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_trim_extract.py SHARD NSHARDS
"""
import sys
import time

import numpy as np

import emofuse
from emofuse.features.cache import FeatureCache
from emofuse.features.speech import SPEECH_SR, feature_settings

PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}
CORPORA = ["ased", "urdu", "nemo", "savee", "ravdess"]
THRESHOLD, MARGIN_S, FRAME = 0.5, 0.1, 512            # Silero frames: 512 samples at 16 kHz


def settings() -> dict:
    return {**feature_settings("whisper", PARAMS, sr=SPEECH_SR),
            "trim": {"vad": "silero", "threshold": THRESHOLD, "margin_s": MARGIN_S}}


def trimmed(y: np.ndarray) -> tuple[np.ndarray, float]:
    """``y`` cut to its speech span, and the fraction of samples kept."""
    from emofuse.features.vad import speech_probabilities

    p = speech_probabilities(y, sr=SPEECH_SR)
    on = np.flatnonzero(p > THRESHOLD)
    if not len(on):
        return y, 1.0
    m = int(MARGIN_S * SPEECH_SR)
    s, e = max(0, on[0] * FRAME - m), min(len(y), (on[-1] + 1) * FRAME + m)
    return y[s:e], (e - s) / max(len(y), 1)


def features(path: str, cache: FeatureCache) -> np.ndarray:
    from emofuse.features.whisper import whisper
    from emofuse.media import load_audio

    def compute(p):
        y, _ = load_audio(p, sr=SPEECH_SR)
        return whisper(trimmed(y)[0], sr=SPEECH_SR, **PARAMS)

    return cache.get_or_compute(path, settings(), compute)


def fill(features_of, argv: list[str]) -> None:
    """Compute ``features_of(path, cache)`` for every clip of shard ``argv[0]`` of ``argv[1]``."""
    shard, n = int(argv[0]), int(argv[1])
    cache = FeatureCache()
    for corpus in CORPORA:
        recs = [r for r in emofuse.load_corpus(corpus).records if r.audio is not None][shard::n]
        t0 = time.time()
        for i, r in enumerate(recs):
            features_of(r.audio, cache)
            if i % 500 == 0:
                print(f"{corpus} {i}/{len(recs)} {time.time() - t0:.0f}s", flush=True)
        print(f"{corpus} done {len(recs)} in {time.time() - t0:.0f}s", flush=True)


def main() -> None:
    fill(features, sys.argv[1:])


if __name__ == "__main__":
    main()
