"""Three-modality fusion on **synthetic** triples (the generative framework's protocol):
``emofuse bench tri-synthetic``.

No corpus here has a face, an utterance and a text of the same person and moment, so each
training or test item is a synthetic triple of a FER2013 face, a RAVDESS utterance and a MELD
text that share an emotion label and nothing else (:func:`emofuse.fusion.synthetic_pairs`).
The modalities are therefore independent given the label: the figures say how well the
three-way attention fusion combines independent evidence and copes with missing modalities,
not how it behaves on real multimodal recordings.

Pools and splits (no item of a test pool is ever seen in training):

* RAVDESS speech (``audio``): clip-level speech features (``egemaps`` + ``lld_stats``,
  cached), the 6 EmoBox folds (4 unseen actors per test fold); validation actors are held out
  of each training fold; ``calm`` is dropped (no counterpart in the other corpora).
* FER2013 (``face``): the pretrained mini-Xception (``build_model("fer_pretrained")``, 64x64
  input) as a frozen encoder: the globally pooled last block (128) and the 7 class logits.
  Official usages: a class-stratified sample of ``Training`` for training, of ``PublicTest``
  for validation, and the ``PrivateTest`` images whose pixels occur in neither of the others
  (de-duplicated) for testing.
* MELD (``text``): frozen all-MiniLM-L6-v2 sentence embeddings (384), official
  train / dev / test splits.

For every fold, triples are drawn within the training pools for training, within the
validation pools for validation and within the test pools for testing. The attention fusion
(:class:`~emofuse.fusion.AttentionFusion`, modality dropout) is trained once per fold and
seed and tested with every non-empty subset of modalities, against each modality's own model
(a logistic regression on that modality's training pool, C chosen on its validation pool), an
early concatenation and a product of the unimodal posteriors (the Bayes rule for modalities
that are independent given the label - exactly the case for synthetic triples).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..features.cache import FeatureCache
from ._fusion_params import (
    ClipsParams,
    FacePool,
    TextPool,
    TriFeatureParams,
    TriModelParams,
)
from ._fusion_report import subset_name, subsets, tri_notes, tri_targets
from ._fusion_suite import FusionSuite
from ._suite import Suite

__all__ = ["face_embeddings", "text_embeddings", "SHARED_LABELS", "TriSynthetic", "AvClips",
           "run_tri_suite", "run_av_clips"]

#: the labels all three corpora share
SHARED_LABELS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
FACE_VERSION = 1


# --------------------------------------------------------------------------------------------
# Frozen encoders (cached)


def _face_chunk(records: Sequence[Any]) -> np.ndarray:
    import cv2
    import torch

    from ..models.face import FER_INPUT_SIDE
    from .face import load_faces, to_input

    x, kept, skipped = load_faces(records, side=48, detect=False)
    if skipped:
        raise DataError(skipped[0]["path"], f"cannot read the face image ({skipped[0]['reason']})")
    net = _fer_net()
    big = np.stack([cv2.resize(a, (FER_INPUT_SIDE, FER_INPUT_SIDE)) for a in x])
    out = []
    with torch.inference_mode():
        for i in range(0, len(big), 256):
            t = to_input(big[i:i + 256])
            h = torch.relu(net.bn1(net.conv1(t)))
            h = torch.relu(net.bn2(net.conv2(h)))
            h = net.blocks(h)
            logits = net.head(net.dropout(h)).mean(dim=(-2, -1))
            out.append(torch.cat([h.mean(dim=(-2, -1)), logits], 1).numpy())
    return np.concatenate(out).astype(np.float32)


_FER_NET: list[Any] = []


def _fer_net() -> Any:
    from ..models import build_model

    if not _FER_NET:
        net = build_model("fer_pretrained")
        net.eval()
        _FER_NET.append(net)
    return _FER_NET[0]


def face_embeddings(records: Sequence[Any], *, cache: FeatureCache | None = None,
                    chunk: int = 512) -> np.ndarray:
    """``(n, 135)`` frozen mini-Xception features of FER2013-style face images: the pooled last
    block (128) and the 7 class logits (in :data:`emofuse.models.face.FER_CLASSES` order);
    cached in chunks keyed by the images' ids and content hashes."""
    cache = cache or FeatureCache()
    settings = {"feature": "fer_pretrained_penultimate", "version": FACE_VERSION, "side": 64}
    parts = []
    for k in range(0, len(records), chunk):
        block = list(records[k:k + chunk])
        key = json.dumps([[r.id, r.extra.get("content_hash") or r.image] for r in block])
        parts.append(np.asarray(cache.get_or_compute(
            key.encode("utf-8"), settings, lambda _b, block=block: _face_chunk(block))))
    return np.concatenate(parts) if parts else np.zeros((0, 135), np.float32)


def text_embeddings(records: Sequence[Any], *, cache: FeatureCache | None = None) -> np.ndarray:
    """``(n, 384)`` frozen MiniLM sentence embeddings of the records' texts (cached)."""
    from ..features.text import embed_texts

    return embed_texts([r.text or "" for r in records], cache=cache)


# --------------------------------------------------------------------------------------------
# Pools


def _sample_per_class(records: Sequence[Any], n: int | None, seed: int) -> list[Any]:
    """At most ``n`` records per label (all when ``n`` is None), a seeded draw, input order."""
    if not n:
        return list(records)
    rng = np.random.default_rng(seed)
    by: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by.setdefault(r.label, []).append(i)
    keep = sorted(j for idx in by.values()
                  for j in (rng.choice(idx, size=n, replace=False) if len(idx) > n else idx))
    return [records[i] for i in keep]


def _face_pools(fp: FacePool, labels: Sequence[str], quick: bool,
                cache: FeatureCache) -> dict[str, Any]:
    from .. import protocols
    from ..corpora import load_corpus

    scan = load_corpus(fp.corpus, fp.root, check_media=False)
    recs = [r for r in scan.records if r.label in labels]
    split = protocols.official_split(recs, allow_leak=True)
    dedup = protocols.drop_cross_duplicates(split, recs, allow_leak=True)
    caps = fp.caps()
    if quick:
        caps = {"train": 12, "val": 6, "test": 6}
    pools = {}
    for part in ("train", "val", "test"):
        part_recs = dedup.select(recs, part)
        pools[part] = _sample_per_class(part_recs, caps[part], seed=fp.seed)
    X = {p: face_embeddings(r, cache=cache) for p, r in pools.items()}
    return {"records": pools, "X": X,
            "dropped_duplicates": dedup.info.get("dropped_duplicates", {})}


def _text_pools(tp: TextPool, labels: Sequence[str], quick: bool,
                cache: FeatureCache) -> dict[str, Any]:
    from .. import protocols
    from ..corpora import load_corpus

    scan = load_corpus(tp.corpus, tp.root, check_media=False)
    recs = [r for r in scan.records if r.label in labels]
    split = protocols.official_split(recs)
    caps = tp.caps()
    if quick:
        caps = {"train": 12, "val": 6, "test": 6}
    pools = {p: _sample_per_class(split.select(recs, p), caps[p], seed=tp.seed)
             for p in ("train", "val", "test")}
    return {"records": pools, "X": {p: text_embeddings(r, cache=cache) for p, r in pools.items()}}


# --------------------------------------------------------------------------------------------
# Models


def _fit_unimodal(Xtr: np.ndarray, ytr: np.ndarray, Xva: np.ndarray, yva: np.ndarray,
                  Cs: Sequence[float], n_classes: int, seed: int) -> tuple[Any, float, float]:
    """Balanced logistic regression, C chosen on the validation pool (UA); refit on train."""
    from sklearn.linear_model import LogisticRegression

    from ..evaluate.metrics import classification_metrics

    best = (None, -1.0, None)
    for C in Cs:
        m = LogisticRegression(C=C, max_iter=2000, class_weight="balanced", random_state=seed)
        m.fit(Xtr, ytr)
        ua = classification_metrics(yva, m.predict(Xva), classes=list(range(n_classes)))["ua"]
        if ua > best[1]:
            best = (m, ua, C)
    return best[0], best[1], best[2]


def _proba(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(X), n_classes))
    out[:, np.asarray(model.classes_, int)] = model.predict_proba(X)
    return out


# --------------------------------------------------------------------------------------------
# The suite


def _load_inputs(cfg: Any, p: TriFeatureParams, labels: Sequence[str],
                 audio_blocks: Sequence[str], quick: bool, cache: FeatureCache) -> dict[str, Any]:
    """The three corpora's pools and features, and the speech protocol's folds."""
    from .. import protocols
    from ._common import load_records, make_splits
    from ._fusion_data import modality_data

    face = _face_pools(p.face, labels, quick, cache)
    text = _text_pools(p.text, labels, quick, cache)
    acfg = cfg.model_copy(deep=True)
    acfg.data.labels = None          # the protocol's folds are defined on all clips
    _, all_recs = load_records(acfg)
    if quick:
        keep = set(sorted({r.speaker for r in all_recs})[:6])
        all_recs = [r for r in all_recs if r.speaker in keep][::4]
        splits = protocols.speaker_kfold(all_recs, k=2, seed=0)
    else:
        splits = make_splits(cfg, all_recs)
    arecs = [r for r in all_recs if r.label in labels and r.audio]
    adata = modality_data(arecs, {"audio": list(audio_blocks)}, sr=p.sr, cache=cache)
    return {"face": face, "text": text, "all_records": all_recs, "splits": splits,
            "audio_records": arecs, "audio_X": adata.X["audio"],
            "audio_present": adata.present["audio"]}


class TriSynthetic(FusionSuite, name="tri-synthetic",
                   params={"model": TriModelParams, "features": TriFeatureParams}):
    """Three-way attention fusion on SYNTHETIC triples (FER2013 face + RAVDESS speech + MELD
    text of the same label), every subset of modalities"""

    def __init__(self, cfg: Any, *, quick: bool = False, log: Any = print,
                 inputs: Mapping[str, Any] | None = None) -> None:
        super().__init__(cfg, quick=quick, log=log)
        #: replaces the corpora (tests): the dict :func:`_load_inputs` returns, with
        #: ``face``/``text`` pools ``{"records": {part: [...]}, "X": {part: array}}``
        self.inputs = inputs

    def body(self) -> dict[str, Any]:
        """Train and test the three-way attention fusion on synthetic triples (see the module
        docstring); the result dict."""
        import torch

        from .. import protocols
        from ..evaluate.metrics import classification_metrics
        from ..fusion import FusionDataset, predict_net, synthetic_pairs, train_net
        from ..fusion.normalise import Standardiser
        from ._common import FoldOutput
        from ._fusion_models import build_net

        cfg, p, params, log, seeds = self.cfg, self.f, self.p, self.log, self.seeds
        labels = list(cfg.data.labels or SHARED_LABELS)
        bad = [c for c in labels if c not in SHARED_LABELS]
        if bad:
            raise ConfigError(f"data.labels: {bad} are not shared by FER2013, RAVDESS and MELD")
        mods = ["face", "audio", "text"]
        audio_blocks = list(p.audio)
        pairing = p.pairing
        n_pairs = {"train": pairing.train_per_class, "val": pairing.val_per_class,
                   "test": pairing.test_per_class}
        if self.quick:
            n_pairs = {"train": 20, "val": 8, "test": 8}
        Cs = list(params.unimodal_C)
        torch.set_num_threads(int(cfg.train.num_threads or 1))
        cache = FeatureCache()
        C = len(labels)
        index = {c: i for i, c in enumerate(labels)}
        inputs = self.inputs
        if inputs is None:
            inputs = _load_inputs(cfg, p, labels, audio_blocks, self.quick, cache)
        face, text = inputs["face"], inputs["text"]
        all_recs, splits = inputs["all_records"], inputs["splits"]
        arecs, aX, apresent = inputs["audio_records"], inputs["audio_X"], inputs["audio_present"]
        arow = {r.id: i for i, r in enumerate(arecs)}
        if log:
            log(f"pools: face {', '.join(f'{k} {len(v)}' for k, v in face['records'].items())}; "
                f"text {', '.join(f'{k} {len(v)}' for k, v in text['records'].items())}; "
                f"audio {len(arecs)} clips ({aX.shape[1]} features), {len(splits)} folds")
        ylab = {"face": {k: np.array([index[r.label] for r in v])
                         for k, v in face["records"].items()},
                "text": {k: np.array([index[r.label] for r in v])
                         for k, v in text["records"].items()}}
        # face and text pools are the same for every fold: standardise and fit once
        feats: dict[str, dict[str, np.ndarray]] = {}
        uni: dict[str, Any] = {}
        for m, src in (("face", face), ("text", text)):
            sc = Standardiser().fit(src["X"]["train"])
            feats[m] = {k: sc.transform(v) for k, v in src["X"].items()}
            model, val_ua, c = _fit_unimodal(feats[m]["train"], ylab[m]["train"],
                                             feats[m]["val"], ylab[m]["val"], Cs, C, 0)
            uni[m] = {"model": model, "val_ua": val_ua, "C": c}
        mod_sets = subsets(mods)
        outs: dict[str, list[FoldOutput]] = {}
        weights: dict[str, list[np.ndarray]] = {}
        pool_ua: dict[str, list[float]] = {m: [] for m in mods}
        val_ua: dict[str, list[float]] = {}
        fold_info = []
        tkw = params.train_kwargs(self.tcfg)
        if self.quick:
            tkw.update(max_epochs=2, patience=1)
        for split in splits:
            fold = split.fold or 0
            wanted = {r.id for r in arecs}
            train = [r for r in split.select(all_recs, "train") if r.id in wanted]
            _, val_ids = protocols.validation_split(train, fraction=pairing.val_fraction,
                                                    seed=fold)
            held = set(val_ids)
            apools = {"train": [r for r in train if r.id not in held],
                      "val": [r for r in train if r.id in held],
                      "test": [r for r in split.select(all_recs, "test") if r.id in wanted]}
            rows = {k: np.array([arow[r.id] for r in v if apresent[arow[r.id]]])
                    for k, v in apools.items()}
            sc = Standardiser().fit(aX[rows["train"]])
            feats["audio"] = {k: sc.transform(aX[v]) for k, v in rows.items()}
            ylab["audio"] = {k: np.array([index[arecs[i].label] for i in v])
                             for k, v in rows.items()}
            model, a_val, c = _fit_unimodal(feats["audio"]["train"], ylab["audio"]["train"],
                                            feats["audio"]["val"], ylab["audio"]["val"], Cs, C, 0)
            uni["audio"] = {"model": model, "val_ua": a_val, "C": c}
            for m in mods:  # each unimodal model on its own (unpaired) test pool
                pr = _proba(uni[m]["model"], feats[m]["test"], C)
                pool_ua[m].append(classification_metrics(
                    ylab[m]["test"], pr.argmax(1), classes=list(range(C)))["ua"])
            pairs = {}
            for k, part in enumerate(("train", "val", "test")):
                idx, y = synthetic_pairs({m: [labels[i] for i in ylab[m][part]] for m in mods},
                                         n_per_class=n_pairs[part], classes=labels,
                                         seed=1000 * fold + k)
                pairs[part] = ({m: feats[m][part][idx[m]] for m in mods},
                               np.array([index[c] for c in y]))
            (Xtr, ytr), (Xva, yva), (Xte, yte) = pairs["train"], pairs["val"], pairs["test"]
            ids = [f"fold{fold}/pair{i}" for i in range(len(yte))]
            ones = {k: np.ones((len(v[1]), len(mods)), bool) for k, v in pairs.items()}
            # unimodal models, their product and the early concatenation on the test triples
            up = {m: _proba(uni[m]["model"], Xte[m], C) for m in mods}
            for m in mods:
                outs.setdefault(f"unimodal_{m}", []).append(
                    FoldOutput(fold, 0, ids, yte, up[m], {"C": uni[m]["C"]}))
            for s in mod_sets:
                if len(s) > 1:
                    logp = sum(np.log(np.clip(up[m], 1e-9, 1)) for m in s)
                    pr = np.exp(logp - logp.max(1, keepdims=True))
                    outs.setdefault(f"product[{subset_name(s)}]", []).append(
                        FoldOutput(fold, 0, ids, yte, pr / pr.sum(1, keepdims=True)))
            early, _, ce = _fit_unimodal(np.concatenate([Xtr[m] for m in mods], 1), ytr,
                                         np.concatenate([Xva[m] for m in mods], 1), yva, Cs, C, 0)
            outs.setdefault("early_concat", []).append(FoldOutput(
                fold, 0, ids, yte, _proba(early, np.concatenate([Xte[m] for m in mods], 1), C),
                {"C": ce}))
            # the three-way attention fusion
            for seed in seeds:
                net = build_net("attention", {m: Xtr[m].shape[1] for m in mods}, C, params,
                                seed=seed)
                info = train_net(net, FusionDataset(Xtr, ones["train"], ytr,
                                                    modality_dropout=params.modality_dropout),
                                 FusionDataset(Xva, ones["val"], yva),
                    n_classes=C, seed=seed, **tkw)
                for s in mod_sets:
                    mk = np.zeros_like(ones["test"])
                    mk[:, [mods.index(m) for m in s]] = True
                    o = predict_net(net, Xte, mk)
                    outs.setdefault(f"attention[{subset_name(s)}]", []).append(
                        FoldOutput(fold, seed, ids, yte, o["proba"], {"epochs": info["epochs"]}))
                    weights.setdefault(subset_name(s), []).append(o["weights"])
                    mv = np.zeros_like(ones["val"])
                    mv[:, [mods.index(m) for m in s]] = True
                    ov = predict_net(net, Xva, mv)
                    val_ua.setdefault(subset_name(s), []).append(classification_metrics(
                        yva, ov["proba"].argmax(1), classes=list(range(C)))["ua"])
            fold_info.append({"fold": fold, "audio_pools": {k: len(v) for k, v in rows.items()},
                              "val_actors": sorted({r.speaker for r in apools["val"]}),
                              "test_actors": sorted({r.speaker for r in apools["test"]}),
                              "unimodal_val_ua": {m: uni[m]["val_ua"] for m in mods},
                              "unimodal_C": {m: uni[m]["C"] for m in mods}})
            if log:
                ua = classification_metrics(yte, outs[f"attention[{subset_name(mods)}]"][-1]
                                            .proba.argmax(1), classes=list(range(C)))["ua"]
                log(f"  fold {fold}: attention (all three) UA {100 * ua:.2f}")
        return self._result(labels, mods, outs, weights, pool_ua, val_ua, fold_info, face, text,
                            n_pairs, audio_blocks)

    def _result(self, labels: list[str], mods: list[str], outs: Mapping[str, list[Any]],
                weights: Mapping[str, list[np.ndarray]], pool_ua: Mapping[str, list[float]],
                val_ua: Mapping[str, list[float]], fold_info: list[dict[str, Any]],
                face: Mapping[str, Any], text: Mapping[str, Any], n_pairs: Mapping[str, int],
                audio_blocks: Sequence[str]) -> dict[str, Any]:
        from ._common import summarise_outputs as summarise

        full = subset_name(mods)
        table: dict[str, Any] = {}
        metrics: dict[str, Any] = {}
        for name, o in outs.items():
            agg = summarise(o, labels)
            table[name] = {k: agg["metrics"][k] for k in ("ua", "wa", "macro_f1")}
            table[name]["recall_per_class"] = {c: d["recall"]
                                               for c, d in agg["per_class"].items()}
            if name != f"attention[{full}]":
                metrics[f"{name}.ua"] = agg["metrics"]["ua"]
        w = {s: np.concatenate(v).mean(0).tolist() for s, v in weights.items()}
        for m in mods:
            metrics[f"unimodal_{m}.ua_pool"] = {"mean": float(np.mean(pool_ua[m])),
                                                "std": float(np.std(pool_ua[m])),
                                                "per_fold": list(map(float, pool_ua[m]))}
        for s, v in val_ua.items():
            metrics[f"attention[{s}].ua_val"] = {"mean": float(np.mean(v)),
                                                 "std": float(np.std(v)),
                                                 "per_fold": list(map(float, v))}
        result = self.result(
            protocol="synthetic triples: FER2013 official usages (de-duplicated PrivateTest) x "
                     "RAVDESS EmoBox folds x MELD official splits", classes=labels,
            parts={"": outs[f"attention[{full}]"]}, primary="",
            models=table, attention_weights={"modalities": mods, "mean_by_subset": w},
            targets=tri_targets(table, mods), folds=fold_info,
            pools={"face": {k: len(v) for k, v in face["records"].items()},
                   "face_dropped_duplicates": face.get("dropped_duplicates"),
                   "text": {k: len(v) for k, v in text["records"].items()},
                   "triples_per_class": dict(n_pairs)},
            features={"face": "fer_pretrained mini-Xception (frozen): pooled last block 128 + 7 "
                              "logits, 64x64 input",
                      "audio": " + ".join(audio_blocks) + " (clip level)",
                      "text": "all-MiniLM-L6-v2 mean-pooled embedding 384 (frozen)"},
            synthetic=True)
        result["metrics"].update(metrics)
        result["notes"] = tri_notes(result, mods)
        return result


run_tri_suite = TriSynthetic.run


# --------------------------------------------------------------------------------------------
# Real video clips end to end (``emofuse bench av-clips``)


class AvClips(Suite, name="av-clips", modality="fusion", params={"model": ClipsParams}):
    """Real video clips (RAVDESS mp4, CREMA-D flv) end to end through the bundled speech + face
    models and their fusion"""

    def body(self) -> dict[str, Any]:
        """Every sample clip (RAVDESS actor 01 mp4, CREMA-D actor 1001 flv) through
        ``Recognizer.load(*model.params.models)``: the audio track through the speech model,
        the face frames through the face model, and their fusion; predictions against the
        labels of the file names. A handful of clips: the figures are a smoke check, not a
        benchmark."""
        from ..inference import Recognizer
        from ..labels import CANONICAL
        from ._common import FoldOutput
        from .face import clip_records

        log, timer = self.log, self.timer
        names = list(self.p.models)
        recs = clip_records(self.cfg)
        if self.quick:
            recs = recs[:2]
        rec = Recognizer.load(*names)
        rows, probas = [], []
        for r in recs:
            t0 = timer.elapsed
            try:
                pred = rec.predict(r.video)
            except Exception as exc:  # report the clip, go on with the others
                rows.append({"clip": Path(r.video).name, "label": r.label, "error": str(exc)})
                continue
            rows.append({"clip": Path(r.video).name, "corpus": r.corpus, "label": r.label,
                         "predicted": pred.label, "confidence": round(pred.confidence, 4),
                         "correct": pred.label == r.label,
                         "modalities": {m: max(p, key=p.get)
                                        for m, p in pred.modalities.items() if p},
                         "weights": {m: round(w, 3) for m, w in pred.weights.items()},
                         "models": pred.models, "warnings": pred.warnings[:3],
                         "seconds": round(timer.elapsed - t0, 2)})
            probas.append((r, pred.probabilities))
            if log:
                log(f"  {rows[-1]['clip']}: {r.label} -> {pred.label} "
                    f"({', '.join(f'{m} {v}' for m, v in rows[-1]['modalities'].items())})")
        seen = {k for _, p in probas for k in p} | {r.label for r, _ in probas}
        classes = [c for c in CANONICAL if c in seen] + sorted(seen - set(CANONICAL))
        y = np.array([classes.index(r.label) for r, _ in probas], dtype=int)
        P = np.array([[p.get(c, 0.0) for c in classes] for _, p in probas]).reshape(
            -1, len(classes))
        out = FoldOutput(1, 0, [Path(r.video).name for r, _ in probas], y, P)
        per_mod = {}
        for m in sorted({m for row in rows for m in row.get("modalities", {})}):
            hits = [row["modalities"][m] == row["label"] for row in rows
                    if m in row.get("modalities", {})]
            per_mod[m] = {"accuracy": float(np.mean(hits)), "clips": len(hits)}
        trained_on = {m: (info.card.get("data") or {}).get("corpus")
                      for m, info in rec.models.items()}
        result = self.result(protocol="real sample clips (no training; bundled models)",
                             classes=classes, parts={"": [out]}, clips=rows,
                             modality_accuracy=per_mod, models=names, trained_on=trained_on)
        result["notes"] = _clips_notes(rows, per_mod, names, trained_on)
        return result


run_av_clips = AvClips.run


def _clips_notes(rows: Sequence[Mapping[str, Any]], per_mod: Mapping[str, Mapping[str, Any]],
                 names: Sequence[str], trained_on: Mapping[str, Any]) -> str:
    acc = float(np.mean([row.get("correct", False) for row in rows])) if rows else float("nan")
    lines = ["Real clips end to end: each file's audio track goes through the speech model, "
             "its face frames through the face model, and the Recognizer fuses them (the "
             "bundled models of `Recognizer.load(" + ", ".join(repr(n) for n in names) + ")`). "
             f"{len(rows)} clips only (RAVDESS actor 01: 4 neutral, 3 surprised; CREMA-D actor "
             "1001: one per emotion): a smoke check of the video path, not a benchmark. "
             f"Fused accuracy {100 * acc:.1f} %; per modality: " + "; ".join(
                 f"{m} {100 * v['accuracy']:.1f} % ({v['clips']} clips)"
                 for m, v in sorted(per_mod.items())) + ". Training corpora of the models "
             "(their cards): " + ", ".join(f"{m} {c}" for m, c in trained_on.items()) + "; a "
             "clip of a corpus a model was trained on is not held out from it (the bundled "
             "speech model saw all RAVDESS speech, actor 01 included; the CREMA-D clips are "
             "unseen by every model).", "",
             "| clip | label | fused | conf. | " + " | ".join(sorted(per_mod)) + " | weights |",
             "|---|---|---|---|" + "---|" * len(per_mod) + "---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['clip']} | {row['label']} | error: {row['error'][:80]} | | "
                         + " | " * len(per_mod) + " |")
            continue
        lines.append(f"| {row['clip']} | {row['label']} | {row['predicted']} | "
                     f"{row['confidence']:.2f} | " + " | ".join(
                         row["modalities"].get(m, "–") for m in sorted(per_mod)) + " | "
                     + ", ".join(f"{m} {w}" for m, w in row["weights"].items()) + " |")
    return "\n".join(lines)
