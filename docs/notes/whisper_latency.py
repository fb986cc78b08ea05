"""Single-thread CPU time to score a 3 s clip with a Whisper + LDA member: the feature with the
canonical layers 1-6 (what the suites' members compute) and with only the layers the member
reads (the encoder then stops at the last of them), torch and onnx backends; median of 20 warm
runs (thread CPU time, so other jobs on the machine do not inflate it).

Usage: OMP_NUM_THREADS=1 python docs/notes/whisper_latency.py
"""
import os, time
import numpy as np
import torch
from emofuse.media import load_audio
from emofuse.models import build_model

torch.set_num_threads(1)
clip = "../shared/data/ravdess/Audio_Speech_Actors_01-24/Actor_01/03-01-05-01-01-01-01.flac"
y = np.resize(load_audio(clip, sr=16000)[0], 48000).astype(np.float32)
rng = np.random.default_rng(0)


def bench(layers, backend, n=20):
    os.environ["EMOFUSE_WHISPER_BACKEND"] = backend
    from emofuse.features.whisper import whisper
    d = 1024 * len(layers)
    clf = build_model("lda", shrinkage=0.5, solver="cholesky").fit(
        rng.normal(size=(400, d)), np.repeat(np.arange(8), 50))
    run = lambda: clf.predict_proba(whisper(y, layers=layers, pooling="meanstd")[None])
    run(); run()
    ts = []
    for _ in range(n):
        t0 = time.thread_time(); run(); ts.append(time.thread_time() - t0)
    return 1000 * float(np.median(ts))


for backend in ("torch", "onnx"):
    for layers in ([1, 2, 3, 4, 5, 6], [2, 3, 4], [3, 4], [3], [6], [5, 6]):
        try:
            print(f"{backend:5s} layers {layers}: {bench(layers, backend):.1f} ms", flush=True)
        except Exception as exc:  # onnxruntime missing, export failing
            print(f"{backend:5s} layers {layers}: {type(exc).__name__}: {exc}")
