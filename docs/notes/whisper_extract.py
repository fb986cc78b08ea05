"""Extract (through the shared feature cache) the canonical Whisper-base vector and the fused
hand-crafted vector of RAVDESS and SAVEE, optionally speed-perturbed copies, and save the
matrices for the selection experiments (whisper_select.py).

Usage: OMP_NUM_THREADS=1 python docs/notes/whisper_extract.py CORPUS FEATURE [SPEED ...]
FEATURE: whisper | fused. Writes /work/exp/<feature>_<corpus>.npz (ids, one array per speed).
"""
import sys, time
from pathlib import Path
import numpy as np
import torch
from emofuse.config import load_config
from emofuse.features.speech import extract
from emofuse.features.cache import FeatureCache
from emofuse.recipes._common import load_records, make_splits

torch.set_num_threads(1)
WHISPER = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}
FUSED = {"logmel_bands": 64}
corpus, feature = sys.argv[1], sys.argv[2]
speeds = [float(s) for s in sys.argv[3:]] or [1.0]
cfg = load_config(f"configs/ser-{corpus}.yaml")
_, recs = load_records(cfg)
ids_in = set()
for s in make_splits(cfg, recs):
    ids_in |= set(s.train) | set(s.test) | set(s.val)
recs = [r for r in recs if r.id in ids_in]
params = WHISPER if feature == "whisper" else FUSED
out_path = Path(f"/work/exp/{feature}_{corpus}.npz")
old = dict(np.load(out_path)) if out_path.exists() else {}
cache = FeatureCache()
arrays = dict(old)
arrays["ids"] = np.array([r.id for r in recs])
for sp in speeds:
    t0 = time.time()
    p = dict(params) if sp == 1.0 else {**params, "speed": sp}
    arrays[str(sp)] = np.stack([extract(r.audio, feature, params=p, cache=cache) for r in recs])
    print(corpus, feature, sp, arrays[str(sp)].shape, f"{time.time() - t0:.0f} s", flush=True)
    np.savez(out_path, **arrays)
