"""Models of the ``av-ravdess`` suite: each runner returns ``fit_predict(train, val, test,
seed) -> (proba, info)`` for :func:`~emofuse.recipes._common.run_folds`; its parameters are a
typed ``model.params.compare`` entry (:mod:`._fusion_params`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import Params
from ..corpora import Record
from ..errors import ConfigError
from ._fusion_data import AVData, block_modality
from ._fusion_params import (
    SPECS,
    AttentionNetParams,
    AttentionSpec,
    CompareSpec,
    DecisionAverageSpec,
    IntermediateSpec,
    LinearSpec,
    MfaSpec,
    MlpSpec,
    SvmSpec,
)

__all__ = ["KINDS", "build_net", "make_runner", "model_seeds"]

#: model kinds a ``compare`` entry may name, and whether their result depends on the seed
KINDS = {kind: spec.stochastic for kind, spec in SPECS.items()}


def _stack_blocks(X: Mapping[str, np.ndarray], slices: Mapping[str, tuple[str, slice]],
                  blocks: Sequence[str], *, balance: bool = False,
                  scale: Mapping[str, float] | None = None) -> np.ndarray:
    """Columns of ``blocks`` side by side; ``balance`` scales each block by 1/sqrt(width) so
    that every block weighs the same in Euclidean distances (RBF kernels); ``scale`` multiplies
    named blocks (for a linear model: less ridge shrinkage on that block)."""
    parts = []
    for b in blocks:
        if b not in slices:
            raise ConfigError(f"feature block {b!r} is not among the configured modalities "
                              f"({', '.join(slices)})")
        m, sl = slices[b]
        x = X[m][:, sl]
        x = x / np.sqrt(x.shape[1]) if balance else x
        parts.append(x * float((scale or {}).get(b, 1.0)))
    return np.concatenate(parts, axis=1)


def _spec_blocks(data: AVData, spec: CompareSpec) -> list[str]:
    mods = spec.uses(data.modalities)
    unknown = [m for m in mods if m not in data.modalities]
    if unknown:
        raise ConfigError(f"model uses unknown modalities {unknown}; configured: "
                          f"{data.modalities}")
    return list(getattr(spec, "blocks", None) or [b for m in mods for b in data.clean.blocks[m]])


def _classical_runner(kind: str, data: AVData, setting: str, spec: SvmSpec | LinearSpec,
                      tcfg: Any) -> Any:
    """RBF-SVM (``svm``) or logistic regression (``linear``) on the concatenated blocks,
    fitted on the whole training fold (C chosen by speaker-grouped inner CV)."""
    from ..fusion.baselines import fit_logistic, fit_svm

    blocks = _spec_blocks(data, spec)

    def fit_predict(train: list[Record], val: list[Record], test: list[Record], seed: int):
        tr, te = data.rows(list(train) + list(val)), data.rows(test)
        view = data.view(setting, tr)
        X = _stack_blocks(view["clean"], data.clean.slices, blocks,
                          balance=spec.balance_blocks, scale=spec.block_scale)
        groups = list(data.speakers[tr])
        Xfit, yfit = X[tr], data.y[tr]
        if spec.augment and "audio" in view["variants"]:
            # multi-condition training: one noisy-audio copy of each training clip (one of
            # the augmentation SNRs at random), as the attention fusion sees in training
            rng = np.random.default_rng(seed)
            V = view["variants"]["audio"]
            which = rng.integers(len(V), size=len(tr))
            noisy = {m: x[tr] for m, x in view["clean"].items()}
            noisy["audio"] = V[which, tr]
            Xn = _stack_blocks(noisy, data.clean.slices, blocks,
                               balance=spec.balance_blocks, scale=spec.block_scale)
            Xfit, yfit = np.concatenate([Xfit, Xn]), np.concatenate([yfit, yfit])
            groups = groups + groups
        if isinstance(spec, SvmSpec):
            model = fit_svm(Xfit, yfit, groups=groups, C=spec.C, gamma=spec.gamma,
                            probability=spec.probability, seed=seed)
        else:
            model = fit_logistic(Xfit, yfit, groups=groups, C=spec.C, seed=seed)
        proba = model.predict_proba(X[te], n_classes=len(data.classes))
        info: dict[str, Any] = {"params": model.params}
        if "noisy" in view and any(block_modality(b) == "audio" for b in blocks):
            # the same model on the test clips' noisy-audio features (for ensembles' conditions)
            Xn = _stack_blocks({**view["clean"], **{m: x for m, x in view["noisy"].items()
                                                    if m == "audio"}}, data.clean.slices,
                               blocks, balance=spec.balance_blocks, scale=spec.block_scale)
            info["conditions"] = {"clean": {"proba": proba, "weights": None},
                                  "audio_noise": {"proba": model.predict_proba(
                                      Xn[te], n_classes=len(data.classes)), "weights": None}}
        return proba, info

    return fit_predict


def _decision_average_runner(data: AVData, setting: str, spec: DecisionAverageSpec,
                             tcfg: Any) -> Any:
    from ..fusion.baselines import decision_average, fit_svm

    mods = spec.uses(data.modalities)

    def fit_predict(train: list[Record], val: list[Record], test: list[Record], seed: int):
        tr, te = data.rows(list(train) + list(val)), data.rows(test)
        X = data.view(setting, tr)["clean"]
        probas, present, params = [], [], {}
        for m in mods:
            ok = data.clean.present[m]
            rows = tr[ok[tr]]
            svm = fit_svm(X[m][rows], data.y[rows], groups=list(data.speakers[rows]),
                          C=spec.C, gamma=spec.gamma, probability=True, seed=seed)
            probas.append(svm.predict_proba(X[m][te], n_classes=len(data.classes)))
            present.append(ok[te])
            params[m] = svm.params
        return decision_average(probas, present=present), {"params": params}

    return fit_predict


def build_net(kind: str, input_dims: Mapping[str, int], n_classes: int,
              params: AttentionNetParams | IntermediateSpec | Mapping[str, Any], *,
              seed: int | None = None) -> Any:
    """The fusion network of ``kind`` (``attention``/``mlp``: :class:`AttentionFusion`;
    ``intermediate``: :class:`IntermediateFusion`) from its typed parameters (or a mapping of
    them, e.g. a model card's). ``seed`` seeds its initial weights (``None``: weights that
    are loaded afterwards), so a run's first network is as reproducible as the others."""
    from ..fusion import AttentionFusion, IntermediateFusion

    if seed is not None:
        import torch

        torch.manual_seed(seed)

    if kind == "intermediate":
        p = params if isinstance(params, IntermediateSpec) else IntermediateSpec.of(
            {"kind": "intermediate", **dict(params)})
        return IntermediateFusion(input_dims=input_dims, n_classes=n_classes, **p.net_kwargs())
    if not isinstance(params, AttentionNetParams):
        params = AttentionNetParams.of(params)
    return AttentionFusion(input_dims=input_dims, n_classes=n_classes, **params.net_kwargs())


def _condition_inputs(data: AVData, view: Mapping[str, Any], mods: Sequence[str],
                      rows: np.ndarray) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """Inputs and masks of the test rows under each condition of :data:`CONDITIONS`."""
    X = {m: view["clean"][m][rows] for m in mods}
    mask = data.mask(rows)[:, [data.modalities.index(m) for m in mods]]
    out = {"clean": (X, mask)}
    for j, m in enumerate(mods):
        if len(mods) > 1:
            mk = mask.copy()
            mk[:, j] = False
            out[f"{m}_masked"] = (X, mk)
    if "noisy" in view and "audio" in mods:
        out["audio_noise"] = ({**X, "audio": view["noisy"]["audio"][rows]}, mask)
    return out


def _nn_runner(kind: str, data: AVData, setting: str,
               spec: MlpSpec | AttentionSpec | IntermediateSpec, tcfg: Any, *,
               conditions: bool = False) -> Any:
    from ..fusion import FusionDataset, predict_net, train_net

    mods = spec.uses(data.modalities)
    _spec_blocks(data, spec)
    cols = [data.modalities.index(m) for m in mods]
    augment_p = spec.augment_p
    tkw = spec.train_kwargs(tcfg)

    def fit_predict(train: list[Record], val: list[Record], test: list[Record], seed: int):
        tr, va, te = data.rows(train), data.rows(val), data.rows(test)
        view = data.view(setting, np.concatenate([tr, va]))
        if not spec.early_stopping:  # nothing is chosen on val: train on it too
            tr = np.concatenate([tr, va])
        X = {m: view["clean"][m] for m in mods}
        mask = data.mask()[:, cols]
        keep_tr, keep_va = mask[tr].any(1), mask[va].any(1)
        tr, va = tr[keep_tr], va[keep_va]
        variants = {m: v[:, tr] for m, v in view["variants"].items() if m in mods} \
            if augment_p > 0 else None
        ds_tr = FusionDataset({m: X[m][tr] for m in mods}, mask[tr], data.y[tr],
                              variants=variants, variant_p=augment_p,
                              modality_dropout=spec.modality_dropout)
        ds_va = FusionDataset({m: X[m][va] for m in mods}, mask[va], data.y[va])
        cond = _condition_inputs(data, view, mods, te) if conditions else \
            {"clean": ({m: X[m][te] for m in mods}, mask[te])}
        # n_ensemble > 1: a seed ensemble (nets seed, seed + 1000, ...; outputs averaged)
        runs = []
        for k in range(spec.n_ensemble):
            net = build_net(kind, {m: X[m].shape[1] for m in mods}, len(data.classes), spec,
                            seed=seed + 1000 * k)
            info = train_net(net, ds_tr, ds_va, n_classes=len(data.classes),
                             seed=seed + 1000 * k, **tkw)
            runs.append({c: predict_net(net, x, mk) for c, (x, mk) in cond.items()})
        outs = {c: {key: np.mean([r[c][key] for r in runs], axis=0) for key in runs[0][c]}
                for c in cond}
        info["n_ensemble"] = len(runs)
        if conditions:
            info["conditions"] = {c: {"proba": o["proba"], "weights": o.get("weights")}
                                  for c, o in outs.items()}
        return outs["clean"]["proba"], info

    return fit_predict


def _mfa_runner(data: AVData, setting: str, spec: MfaSpec, tcfg: Any) -> Any:
    from ..fusion import FusionDataset, MFAProjector, VectorNet, predict_net, train_net
    from ..fusion.baselines import fit_svm

    mods = spec.uses(data.modalities)
    classifier = spec.classifier

    def fit_predict(train: list[Record], val: list[Record], test: list[Record], seed: int):
        tr, va, te = data.rows(train), data.rows(val), data.rows(test)
        X = data.view(setting, np.concatenate([tr, va]))["clean"]
        proj = MFAProjector(size=spec.size, n_components=spec.n_components, k1=spec.k1,
                            k2=spec.k2, reg=spec.reg)
        proj.fit({m: X[m][tr] for m in mods}, data.y[tr])   # training part only
        Z = proj.transform({m: X[m] for m in mods})
        info: dict[str, Any] = {"classifier": classifier}
        if classifier == "svm":
            both = np.concatenate([tr, va])
            svm = fit_svm(Z[both], data.y[both], groups=list(data.speakers[both]),
                          C=spec.C, seed=seed)
            return svm.predict_proba(Z[te], n_classes=len(data.classes)), info
        import torch

        from ..models import build_model

        torch.manual_seed(seed)                 # the classifier's initial weights
        net = VectorNet(build_model(classifier, n_classes=len(data.classes), dim=Z.shape[1],
                                    **spec.classifier_params))
        ones = np.ones((len(Z), 1), bool)
        info.update(train_net(net, FusionDataset({"z": Z[tr]}, ones[tr], data.y[tr]),
                              FusionDataset({"z": Z[va]}, ones[va], data.y[va]),
                              n_classes=len(data.classes), seed=seed,
                              **spec.train_kwargs(tcfg)))
        return predict_net(net, {"z": Z[te]}, ones[te])["proba"], info

    return fit_predict


def make_runner(kind: str, data: AVData, setting: str, spec: CompareSpec | Mapping[str, Any],
                tcfg: Any) -> Any:
    """The ``fit_predict`` of one model kind (see :data:`KINDS`) in one setting (``spec``: its
    typed parameters, or their mapping)."""
    if kind not in SPECS:
        raise ConfigError(f"unknown fusion model kind {kind!r}; known: {', '.join(KINDS)}")
    if not isinstance(spec, Params):
        spec = SPECS[kind].of({**dict(spec), "kind": kind},
                              where=f"model.params.compare ({kind})")
    if kind in ("svm", "linear"):
        return _classical_runner(kind, data, setting, spec, tcfg)
    if kind == "decision_average":
        return _decision_average_runner(data, setting, spec, tcfg)
    if kind == "mfa":
        return _mfa_runner(data, setting, spec, tcfg)
    if kind in ("mlp", "intermediate", "attention"):
        return _nn_runner(kind, data, setting, spec, tcfg, conditions=kind == "attention")
    raise ConfigError(f"model kind {kind!r} is not run on folds (an ensemble averages models "
                      "run before it)")


def model_seeds(spec: CompareSpec, seeds: Sequence[int]) -> list[int]:
    """All seeds for a stochastic model (at most its ``n_seeds``), the first for a
    deterministic one."""
    if not spec.stochastic:
        return list(seeds[:1])
    return list(seeds[: spec.n_seeds or len(seeds)])
