"""SAVEE inductive: concatenation vs probability averaging of (hand-crafted subset SVM) and
(GE2E-state SVM), outer LOSO and inner LOSO (selection)."""
import sys, numpy as np, warnings
from sklearn.metrics import recall_score
from emofuse.corpora import load_corpus
from emofuse.models import build_model
warnings.simplefilter("ignore")
corpus = "savee"
z = np.load(f"/work/exp/resem_{corpus}.npz"); e = np.load(f"/work/exp/fused_{corpus}.npz")
ids = list(z["ids"]); assert ids == list(e["ids"])
recs = {r.id: r for r in load_corpus(corpus).records}
names = sorted({recs[i].label for i in ids})
y = np.array([names.index(recs[i].label) for i in ids]); spk = np.array([recs[i].speaker for i in ids])
speeds = [1.0, 0.8, 0.9, 1.1, 1.2]
R = {s: np.stack([z[f"{s}__{i}"] for i in ids]) for s in speeds}
B = {s: e[str(s)] for s in speeds}
bl = {"emb": slice(0, 256), "l0": slice(256, 768), "l1": slice(768, 1280), "l2": slice(1280, 1792),
      "l1m": slice(768, 1024), "l2m": slice(1280, 1536)}
def feat(name, s):
    return np.concatenate([B[s] if p == "base" else R[s][:, bl[p]] for p in name.split("+")], 1)
def proba(name, tr, te, C):
    xs = np.concatenate([feat(name, s)[tr] for s in speeds]); ys = np.concatenate([y[tr]] * 5)
    m = build_model("svm", C=C, gamma="scale").fit(xs, ys)
    return m.predict_proba(feat(name, 1.0)[te])
def run(spec, tr, te):
    # spec: list of (name, weight, C)
    p = sum(w * proba(n, tr, te, C) for n, w, C in spec)
    return recall_score(y[te], p.argmax(1), average="macro")
specs = {
  "base": [("base", 1, 1.0)],
  "base+l2 concat": [("base+l2", 1, 1.0)],
  "base+l1+l2 concat": [("base+l1+l2", 1, 1.0)],
  "base+l2+emb concat": [("base+l2+emb", 1, 1.0)],
  "avg base|l2": [("base", .5, 1.0), ("l2", .5, 1.0)],
  "avg base|l1+l2": [("base", .5, 1.0), ("l1+l2", .5, 1.0)],
  "avg base|l2+emb": [("base", .5, 1.0), ("l2+emb", .5, 1.0)],
}
sel = sys.argv[1].split(",") if len(sys.argv) > 1 else list(specs)
for k in sel:
    outer, inner = [], []
    for s in sorted(set(spk)):
        te, tr = spk == s, spk != s
        outer.append(run(specs[k], tr, te))
        inner.append(np.mean([run(specs[k], tr & (spk != v), spk == v) for v in sorted(set(spk[tr]))]))
    print(f"{k:22s}: inner {100*np.mean(inner):.2f}  outer {100*np.mean(outer):.2f} ± {100*np.std(outer):.2f}  {np.round(100*np.array(outer),1)}", flush=True)
