"""Inner-validation selection for ser-ravdess-whisper / ser-savee-whisper.

Only the training part of each EmoBox fold is used: its speakers are split by GroupKFold
(min(5, speakers) inner folds, as emofuse.models.classical.grid_search does: RAVDESS 5 x 4
actors, SAVEE leave-one-speaker-out over 3), a candidate is trained on the inner training
speakers and scored (UA) on the inner held-out speakers; the figure is the mean over inner folds,
then over the outer folds. Test folds are never scored here.

Usage: OMP_NUM_THREADS=1 python docs/notes/whisper_select.py CORPUS SETTING CANDIDATE ...
Candidates (names): w<layers>-<pool>-<model><C>[-s<speeds>] e.g. w3-ms-lr0.1, w234-m-lr0.03,
w3-ms-svm1, w3-ms-lda0.5, fused-lda0.5-s, fused-svm3-s, and late fusion 'A|B@w' (weight w on A),
concatenation 'A+fused' by prefixing 'c' (cw3-ms-lr0.1: whisper columns + fused vector).
Appends one JSON line per candidate to /work/exp/select_<corpus>.jsonl.
"""
import json, re, sys, time, warnings
import numpy as np
from sklearn.model_selection import GroupKFold
from emofuse.config import load_config
from emofuse.models import build_model
from emofuse.recipes._common import load_records, make_splits
from emofuse.inference.speech_models import vector_stats

warnings.simplefilter("ignore")
corpus, setting = sys.argv[1], sys.argv[2]
names = sys.argv[3:]
cfg = load_config(f"configs/ser-{corpus}.yaml")
_, recs = load_records(cfg)
folds = make_splits(cfg, recs)
zw = np.load(f"/work/exp/whisper_{corpus}.npz")
ids = list(zw["ids"])
byid = {r.id: r for r in recs}
classes = sorted({byid[i].label for i in ids})
y = np.array([classes.index(byid[i].label) for i in ids])
spk = np.array([byid[i].speaker for i in ids])
pos = {i: k for k, i in enumerate(ids)}
try:
    zf = np.load(f"/work/exp/fused_{corpus}.npz")
    assert list(zf["ids"]) == ids
except FileNotFoundError:
    zf = None
SPEEDS = {"ravdess": [0.9, 1.1], "savee": [0.8, 0.9, 1.1, 1.2]}[corpus]


def spknorm(x):
    out = np.empty_like(x)
    for s in set(spk.tolist()):
        st = vector_stats(x[spk == s])
        out[spk == s] = (x[spk == s] - st[0]) / st[1]
    return out


_cache = {}


def mat(src, speed):
    key = (src, speed)
    if key not in _cache:
        z = zw if src == "w" else zf
        x = z[str(speed)].astype(np.float32)
        _cache[key] = spknorm(x) if setting == "spknorm" else x
    return _cache[key]


def cols(layers, pool):
    out = []
    for l in layers:
        b = (l - 1) * 1024
        out += {"m": [(b, b + 512)], "s": [(b + 512, b + 1024)], "ms": [(b, b + 1024)]}[pool]
    return np.concatenate([np.arange(a, c) for a, c in out])


def parse(name):
    """-> (feature fn(speed) -> X, model name, params, speeds)"""
    m = re.fullmatch(r"(c?)(w(\d+)-(m|s|ms)|fused)-(lr|svm|lda)([\d.e-]+)(-s)?", name)
    if not m:
        raise SystemExit(f"bad candidate {name}")
    concat, wpart, layers, pool, model, c, sp = m.groups()
    if wpart == "fused":
        feat = lambda s: mat("f", s)
    else:
        idx = cols([int(ch) for ch in layers], pool)
        if concat:
            feat = lambda s: np.concatenate([mat("w", s)[:, idx], mat("f", s)], 1)
        else:
            feat = lambda s: mat("w", s)[:, idx]
    c = float(c)
    params = {"lr": ("logreg", {"C": c}), "svm": ("svm", {"C": c, "gamma": "scale"}),
              "lda": ("lda", {"shrinkage": c, "balanced": True, "solver": "cholesky"})}[model]
    return feat, params[0], params[1], (SPEEDS if sp else [])


def proba_of(name, tr, te):
    if "|" in name:
        a, rest = name.split("|")
        b, w = rest.split("@")
        w = float(w)
        return w * proba_of(a, tr, te) + (1 - w) * proba_of(b, tr, te)
    feat, model, params, speeds = parse(name)
    xs = [feat(1.0)[tr]] + [feat(s)[tr] for s in speeds]
    ys = [y[tr]] * (1 + len(speeds))
    clf = build_model(model, **params).fit(np.concatenate(xs), np.concatenate(ys))
    p = np.zeros((te.sum() if te.dtype == bool else len(te), len(classes)))
    p[:, clf.classes_] = clf.predict_proba(feat(1.0)[te])
    return p


def ua(yt, pred):
    return float(np.mean([np.mean(pred[yt == c] == c) for c in np.unique(yt)]))


for name in names:
    t0 = time.time()
    per_outer = []
    for split in folds:
        tr_out = np.zeros(len(ids), bool)
        tr_out[[pos[i] for i in split.train if i in pos]] = True
        idx = np.flatnonzero(tr_out)
        k = min(5, len(set(spk[idx].tolist())))
        scores = []
        for a, b in GroupKFold(n_splits=k).split(idx, y[idx], spk[idx]):
            tr = np.zeros(len(ids), bool); tr[idx[a]] = True
            te = np.zeros(len(ids), bool); te[idx[b]] = True
            p = proba_of(name, tr, te)
            scores.append(ua(y[te], p.argmax(1)))
        per_outer.append(float(np.mean(scores)))
    row = {"corpus": corpus, "setting": setting, "candidate": name,
           "inner_ua": round(100 * float(np.mean(per_outer)), 2),
           "per_outer_fold": [round(100 * v, 1) for v in per_outer],
           "seconds": round(time.time() - t0, 1)}
    print(json.dumps(row), flush=True)
    with open(f"/work/exp/select_{corpus}.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
