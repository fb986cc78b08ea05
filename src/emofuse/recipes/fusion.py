"""Fusion recipes: the audio-visual benchmark suite ``av-ravdess`` and the fusion models'
``train`` / ``evaluate`` (``emofuse train`` / ``emofuse evaluate``).

Modalities and their feature blocks come from ``features.params``
(:class:`~emofuse.recipes._fusion_params.AVFeatureParams`)::

    features:
      name: av_clip
      params:
        modalities:
          audio: [egemaps, lld_stats]   # any registered speech feature (the speech team's
          face: [openface_au]           #   embeddings plug in here by name)
        noise: {snr_db: 0, seed: 0}     # the corrupted-audio test condition
        augment: {snr_db: [-5, 5, 15]}  # noisy copies of the *training* clips (multi-condition)

The ``av-ravdess`` suite runs the attention fusion (``model.params``,
:class:`~emofuse.recipes._fusion_params.AVModelParams`) and every model listed under
``model.params.compare`` (``kind``: ``svm``, ``linear``, ``decision_average``, ``mlp``,
``mfa``, ``intermediate``, ``attention``, ``ensemble``) in each setting (``inductive``,
``spknorm``) on the protocol's folds, tests the attention fusion with each modality removed
and with noisy audio, and reports per fold, per class, the attention weights per condition and
by class, the issue's targets and plots (PNG files next to the results).

``emofuse train`` trains the attention fusion (``model.name: attention_fusion``) or writes a
fixed-weight late fusion (``model.name: late_fusion``, ``configs/models/fusion.yaml``).

The pieces live by concern: ``_fusion_suite`` (the fusion suites' base), ``_fusion_params``
(the typed parameters), ``_fusion_data`` (feature blocks, noise, settings, records),
``_fusion_models`` (the models' runners), ``_fusion_ensemble`` (decision-level ensembles and
their choice on validation actors) and ``_fusion_report`` (tables, targets, plots, notes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..corpora import Record
from ..errors import ConfigError, DataError
from ..evaluate.results import results_dir
from ..features.cache import FeatureCache
from ._fusion_data import (
    FACE_BLOCKS,
    ModalityData,
    block_features,
    load_av_data,
    modality_data,
    quick_records,
)
from ._fusion_ensemble import ensemble_outputs, validation_choice
from ._fusion_models import build_net, make_runner, model_seeds
from ._fusion_params import (AVFeatureParams, AVModelParams, CompareSpec, EnsembleSpec,
                             LateFusionParams)
from ._fusion_report import notes, suite_extras, suite_plots
from ._fusion_suite import FusionSuite

if TYPE_CHECKING:
    from ..inference.card import ModelCard

__all__ = ["FACE_BLOCKS", "ModalityData", "modality_data", "block_features", "AvRavdess",
           "run_av_suite", "train", "evaluate", "predict_records", "load_fusion_model"]


class AvRavdess(FusionSuite, name="av-ravdess",
                params={"model": AVModelParams, "features": AVFeatureParams}):
    """RAVDESS audio + OpenFace AUs, 8 classes, EmoBox folds: attention fusion vs MFA,
    intermediate, early/decision fusion and unimodal baselines"""

    def body(self) -> dict[str, Any]:
        """Run every model (the attention fusion and ``model.params.compare``) in every setting
        on the protocol's folds; the result dict (PNG plots written next to the results)."""
        from ._common import Timer, run_folds

        cfg, log, settings, tcfg = self.cfg, self.log, self.settings, self.tcfg
        records, classes, splits, seeds, protocol = self.av_records()
        data = load_av_data(records, classes, self.f, with_augment=not self.quick, log=log)
        compare = self.p.compare
        models: dict[str, CompareSpec] = {
            **{n: s for n, s in compare.items() if not isinstance(s, EnsembleSpec)},
            "attention": self.p.attention(),
            **{n: s for n, s in compare.items() if isinstance(s, EnsembleSpec)}}
        if self.quick:  # smoke run: one net per fold
            models = {n: s.model_copy(update={"n_ensemble": 1}) if "n_ensemble" in
                      type(s).model_fields else s for n, s in models.items()}
        outputs: dict[str, dict[str, list[Any]]] = {}
        val_outputs: dict[str, dict[str, list[Any]]] = {}   # validation passes (selection)
        selections: dict[str, dict[str, Any]] = {}
        seconds: dict[str, float] = {}
        for name, spec in models.items():
            if isinstance(spec, EnsembleSpec):
                missing = [m for m in spec.members if m not in outputs]
                if missing:
                    raise ConfigError(f"model.params.compare.{name}.members: list models run "
                                      f"before it (unknown: {missing})")
                for setting in settings:
                    members, weights = list(spec.members), spec.weights
                    if weights == "validation":
                        members, weights, choice = validation_choice(
                            name, spec, setting, models, data, records, classes, splits, seeds,
                            tcfg, val_outputs, log)
                        selections.setdefault(name, {})[setting] = choice
                    outputs.setdefault(name, {})[setting] = ensemble_outputs(
                        [outputs[m][setting] for m in members], weights=weights,
                        member_modalities=[models[m].uses(data.modalities) for m in members],
                        modalities=data.modalities, subset_experts=spec.subset_experts,
                        average_seeds=spec.average_seeds)
                continue
            for setting in settings:
                if log:
                    log(f"[{name} / {setting}]")
                with Timer() as t:
                    fp = make_runner(spec.kind, data, setting, spec, tcfg)
                    outputs.setdefault(name, {})[setting] = run_folds(
                        splits, records, classes, fp, seeds=model_seeds(spec, seeds),
                        val_fraction=cfg.train.val_fraction, log=log)
                seconds[f"{name}/{setting}"] = round(t.seconds, 1)
        extra = suite_extras(cfg, data, classes, outputs, models, selections, settings,
                             seconds, seeds)
        result = self.result(protocol=protocol, classes=classes,
                             parts=self.setting_parts(outputs["attention"]), **extra["result"])
        result["metrics"].update(extra["metrics"])
        suite_name = f"{cfg.suite}-quick" if self.quick else cfg.suite
        result.update(suite_plots(result, results_dir(), suite_name, data.modalities))
        result["notes"] = notes(result, data.modalities, compare)
        return result


run_av_suite = AvRavdess.run


# --------------------------------------------------------------------------------------------
# train / evaluate (``emofuse train`` and ``emofuse evaluate``)


def _save_late_fusion(cfg: Any, out_dir: Path) -> Path:
    """A ``late-fusion`` model folder: fixed modality weights from ``model.params.weights``
    (:class:`~emofuse.recipes._fusion_params.LateFusionParams`) over the labels in
    ``data.labels`` (nothing is fitted)."""
    from ..inference.generic import LateFusion

    p = LateFusionParams.of(cfg.model)
    labels = list(cfg.data.labels or [])
    if not labels:
        raise ConfigError("model late_fusion needs data.labels (the labels it fuses)")
    return LateFusion.save(out_dir, dict(p.weights), labels=labels,
                           data={"corpus": None, "note": p.note},
                           protocol={"kind": "none", "note": "weights fixed, not fitted"},
                           metrics={})


def train(cfg: Any, *, out_dir: str | Path, quick: bool = False) -> Path:
    """Train the attention fusion on the corpus of ``cfg`` (``val_fraction`` of its speakers
    held out for the card's validation figures, and for early stopping when it is on) and save
    ``model.safetensors`` + ``card.json``.

    The saved model is inductive: its input standardisation (training statistics) is stored
    with the weights, so it needs nothing from the speakers it is used on.
    """
    import torch

    from .. import protocols
    from ..evaluate.metrics import classification_metrics
    from ..fusion import FusionDataset, predict_net, train_net
    from ..models.checkpoint import save_model
    from ._common import class_list, load_records

    if cfg.model.name == "late_fusion":
        return _save_late_fusion(cfg, Path(out_dir))
    fparams = AVFeatureParams.of(cfg.features, where="features.params")
    params = AVModelParams.of(cfg.model)
    if cfg.model.name != "attention_fusion":
        raise ConfigError(f"model.name: the fusion recipe trains 'attention_fusion', got "
                          f"{cfg.model.name!r}")
    _, records = load_records(cfg)
    records = [r for r in records if r.audio or r.au]
    classes = class_list(records, cfg.data.labels)
    if quick:
        records = quick_records(records)
    data = load_av_data(records, classes, fparams, with_noise=False, with_augment=not quick)
    seed = cfg.train.seeds[0]
    _, val_ids = protocols.validation_split(records, fraction=cfg.train.val_fraction, seed=seed)
    held = set(val_ids)
    va = np.array([i for i, r in enumerate(records) if r.id in held], dtype=int)
    tr = np.array([i for i, r in enumerate(records) if r.id not in held], dtype=int)
    view = data.view("inductive", np.concatenate([tr, va]))
    mods = data.modalities
    X, mask = view["clean"], data.mask()
    aug_p = params.augment_p
    variants = {m: v[:, tr] for m, v in view["variants"].items()} if aug_p > 0 else None
    net = build_net("attention", {m: X[m].shape[1] for m in mods}, len(classes), params,
                    seed=seed)
    tkw = params.train_kwargs(cfg.train)
    if quick:
        tkw.update(max_epochs=2, patience=1)
    info = train_net(net, FusionDataset({m: X[m][tr] for m in mods}, mask[tr], data.y[tr],
                                        variants=variants, variant_p=aug_p,
                                        modality_dropout=params.modality_dropout),
                     FusionDataset({m: X[m][va] for m in mods}, mask[va], data.y[va]),
                     n_classes=len(classes), seed=seed, **tkw)
    proba = predict_net(net, {m: X[m][va] for m in mods}, mask[va])["proba"]
    val = classification_metrics(data.y[va], proba.argmax(1), classes=classes)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    for m, sc in view["scalers"].items():
        state[f"scaler.{m}.mean"] = torch.as_tensor(sc.mean_, dtype=torch.float32)
        state[f"scaler.{m}.scale"] = torch.as_tensor(sc.scale_, dtype=torch.float32)
    card = {
        "task": "fusion",
        "labels": list(classes),
        "features": {"name": cfg.features.name, "modalities": fparams.modalities,
                     "block_params": fparams.block_kwargs(), "sr": fparams.sr,
                     "normalisation": "inductive: z-scores with the training statistics "
                                      "stored in model.safetensors (scaler.<modality>.*)"},
        "model": {"name": "attention_fusion", "params": params.net_kwargs(),
                  "input_dims": {m: int(X[m].shape[1]) for m in mods}},
        "data": {"corpus": cfg.data.corpus, "items": len(records),
                 "speakers": len({r.speaker for r in records}), "quick": quick},
        "protocol": {"kind": "all records but the validation speakers, who are held out for "
                             "the validation figures" + (" and early stopping"
                                                         if params.early_stopping
                                                         else ""),
                     "validation_speakers": sorted({records[i].speaker for i in va})},
        "metrics": {"val_ua": val["ua"], "val_wa": val["wa"], "val_macro_f1": val["macro_f1"],
                    "epochs": info["epochs"]},
    }
    return save_model(out_dir, state, card)


def load_fusion_model(model_dir: str | Path) -> tuple[Any, dict[str, Any], ModelCard]:
    """``(net, scalers, card)`` of a model folder written by :func:`train`."""
    from ..fusion.normalise import Standardiser
    from ..inference.card import load_weights, read_card

    card = read_card(model_dir)
    spec = card.model or {}
    if card.name != "attention_fusion" or "input_dims" not in spec:
        raise DataError(Path(model_dir) / "card.json", "not an attention-fusion model card "
                        "(model.name / model.input_dims missing)")
    state = load_weights(model_dir, card)
    net = build_net("attention", spec["input_dims"], len(card.labels), spec.get("params", {}))
    try:
        net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
    except RuntimeError as exc:
        raise DataError(Path(model_dir) / "model.safetensors",
                        f"weights do not fit the model in card.json ({exc})") from None
    scalers = {}
    for m in spec["input_dims"]:
        sc = Standardiser()
        sc.mean_ = state[f"scaler.{m}.mean"].double().numpy()
        sc.scale_ = state[f"scaler.{m}.scale"].double().numpy()
        scalers[m] = sc
    net.eval()
    return net, scalers, card


def predict_records(model_dir: str | Path, records: Sequence[Record], *,
                    cache: FeatureCache | None = None) -> dict[str, Any]:
    """Predictions of a trained fusion model: ``ids``, ``proba`` ``(n, C)``, ``weights``
    ``(n, M)`` (the per-sample modality weights), ``modalities``, ``labels``, and
    ``skipped`` (records with no usable modality)."""
    from ..fusion import predict_net

    net, scalers, card = load_fusion_model(model_dir)
    f = AVFeatureParams.of({k: v for k, v in card.features.items()
                            if k in ("modalities", "block_params", "sr")},
                           where=f"{model_dir}/card.json features")
    data = modality_data(records, f.modalities, block_params=f.block_kwargs(), sr=f.sr,
                         cache=cache)
    mask = data.mask()
    ok = mask.any(1)
    skipped = [{"id": r.id, "reason": "no usable modality (audio/face features missing or "
                "failed)"} for r, k in zip(records, ok) if not k]
    X = {m: scalers[m].transform(x, data.present[m])[ok] for m, x in data.X.items()}
    out = predict_net(net, X, mask[ok]) if ok.any() else {
        "proba": np.zeros((0, len(card.labels))), "weights": np.zeros((0, len(X)))}
    return {"ids": [r.id for r, k in zip(records, ok) if k], "proba": out["proba"],
            "weights": out["weights"], "modalities": list(X), "labels": list(card.labels),
            "skipped": skipped + data.problems}


def evaluate(model_dir: str | Path, records: Sequence[Record], *, corpus: str) -> dict[str, Any]:
    """Metrics of a trained fusion model on ``records`` (labels it knows), with the mean
    attention weight per modality overall and by class."""
    from ..evaluate.metrics import classification_metrics, summarise
    from ..inference.card import read_card

    labels = list(read_card(model_dir).labels)
    known = [r for r in records if r.label in labels]
    skipped = [{"id": r.id, "reason": f"label {r.label!r} is not among the model's labels"}
               for r in records if r.label not in labels]
    if not known:
        raise DataError(None, f"{corpus}: no record has a label the model knows ({labels})")
    pred = predict_records(model_dir, known)
    by_id = {r.id: r for r in known}
    y = np.array([labels.index(by_id[i].label) for i in pred["ids"]])
    m = classification_metrics(y, pred["proba"].argmax(1), classes=labels, proba=pred["proba"])
    W = pred["weights"]
    weights = {"mean": {mod: float(W[:, j].mean()) for j, mod in enumerate(pred["modalities"])},
               "by_class": {c: {mod: float(W[y == i, j].mean())
                                for j, mod in enumerate(pred["modalities"])}
                            for i, c in enumerate(labels) if (y == i).any()}} if len(W) else {}
    return {"metrics": {k: summarise([m[k]]) for k in ("ua", "wa", "macro_f1", "roc_auc")
                        if k in m},
            "per_class": m["per_class"], "confusion": m["confusion"], "classes": labels,
            "items": int(len(y)), "skipped": skipped + pred["skipped"],
            "attention_weights": weights, "corpus": corpus}
