"""Nested leave-one-corpus-out exploration: the average of the grid's candidates instead of
the single best one (trimmed clips, as the committed xcorpus-speech recipe).

For each outer test corpus T and each of T's training corpora s held out in turn, every
candidate of the setting's grid is trained on the other training corpora and scored on s; the
ensemble averages the candidates' probabilities (arithmetic mean, and the mean of their log
probabilities). Prints only nested (inner) figures, as docs/notes/xcorpus_explore.py does:
per outer cell the mean UA over its held-out training corpora, the best single candidate of
that cell beside the two ensembles; avg4 = mean over the outer cells RAVDESS, SAVEE, ASED,
nEMO. docs/notes/xcorpus_trim_extract.py fills the cache of trimmed clips.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_ensemble_explore.py SETTING
"""
import dataclasses
import sys

import numpy as np

sys.path.insert(0, "docs/notes")
import xcorpus_explore as xe  # noqa: E402
from xcorpus_speed_explore import GRIDS  # noqa: E402
from xcorpus_trim_extract import features  # noqa: E402

from emofuse.features.cache import FeatureCache  # noqa: E402
from emofuse.recipes._xcorpus_data import _media, _ordered, load_table  # noqa: E402
from emofuse.recipes.xcorpus import _by_rep, _ua, candidates, fit_predict  # noqa: E402


def trimmed_table():
    t, _ = load_table(xe.CORPORA, feature="whisper", params=xe.PARAMS, log=None)
    cache = FeatureCache()
    x = np.stack([features(_media(r), cache) for r in t.records]).astype(np.float32)
    if cache.misses:
        raise SystemExit(f"{cache.misses} trimmed clips were not cached: run the extraction")
    return dataclasses.replace(t, x=x, records=[])


def main() -> None:
    setting = sys.argv[1]
    t = trimmed_table()
    cands = candidates(GRIDS[setting])
    rows: dict[str, dict[str, float]] = {}
    for T in xe.CORPORA:
        train = [c for c in xe.CORPORA if c != T]
        classes = _ordered(t.classes_of(train) & t.classes_of([T]))
        per: dict[str, list[float]] = {}
        for s in train:
            rest = [c for c in train if c != s]
            shared = _ordered(set(classes) & t.classes_of(rest) & t.classes_of([s]))
            tr, te = t.where(rest, shared), t.where([s], shared)
            y = np.array([shared.index(v) for v in t.labels[te]])
            probas = [None] * len(cands)
            for group in _by_rep(cands):
                for i, p in zip(group, fit_predict(t, tr, te, shared, [cands[i] for i in group],
                                                   setting)):
                    probas[i] = p
            for c, p in zip(cands, probas):
                per.setdefault(c.short(setting), []).append(_ua(y, p.argmax(1), len(shared)))
            mean_p = np.mean(probas, axis=0)
            log_p = np.mean([np.log(np.clip(p, 1e-12, 1)) for p in probas], axis=0)
            per.setdefault("ENSEMBLE mean prob", []).append(_ua(y, mean_p.argmax(1), len(shared)))
            per.setdefault("ENSEMBLE mean logprob", []).append(_ua(y, log_p.argmax(1),
                                                                   len(shared)))
        for k, v in per.items():
            rows.setdefault(k, {})[T] = float(np.mean(v))
        best = max((k for k in per if not k.startswith("ENSEMBLE")), key=lambda k: rows[k][T])
        rows.setdefault("BEST single (per cell)", {})[T] = rows[best][T]
        print(T, "done", flush=True)
    xe.print_rows(rows, f"{setting}, trimmed clips")


if __name__ == "__main__":
    main()
