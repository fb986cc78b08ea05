"""Decision-level ensembles of the ``av-ravdess`` suite: averaging already-run models fold by
fold (under every test condition their members allow), and choosing members and weights on
validation actors held out of the training folds (greedy forward selection)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..corpora import Record
from ..errors import ConfigError
from ._fusion_data import CONDITIONS, AVData
from ._fusion_models import make_runner, model_seeds
from ._fusion_params import EnsembleSpec

__all__ = ["ensemble_outputs", "validation_splits", "select_ensemble", "validation_choice",
           "seed_average", "ua_score"]


def ua_score(y: np.ndarray, proba: np.ndarray, n_classes: int) -> float:
    """Unweighted accuracy (mean recall over the classes present in ``y``) of ``proba``'s
    argmax."""
    pred = proba.argmax(1)
    return float(np.mean([np.mean(pred[y == k] == k) for k in range(n_classes)
                          if np.any(y == k)]))


def _member_condition(o: Any, mods: Sequence[str], cond: str, available: set[str],
                      expert_only: bool, all_mods: Sequence[str]) -> np.ndarray | None:
    """One member's test probabilities under ``cond`` (``None``: it cannot take part)."""
    conds = o.info.get("conditions") or {}
    any_subset = any(k.endswith("_masked") for k in conds)
    if not set(mods) <= available and not any_subset:
        return None
    if expert_only and not any_subset and set(mods) != available:
        return None
    if cond in conds:
        return np.asarray(conds[cond]["proba"])
    if cond == "clean" or cond.endswith("_masked"):
        return np.asarray(o.proba)       # the member does not use the removed modality
    if cond == "audio_noise" and "audio" not in mods:
        return np.asarray(o.proba)
    return None


def seed_average(outs: Sequence[Any]) -> list[Any]:
    """One output per fold: probabilities (and those of each condition) averaged over seeds."""
    from ._common import FoldOutput

    avg = []
    for fold in sorted({o.fold for o in outs}):
        here = [o for o in outs if o.fold == fold]
        if any(o.ids != here[0].ids for o in here):
            raise ValueError(f"seeds of one model disagree on the test items of fold {fold}")
        conds = {}
        for c in set.intersection(*[set(o.info.get("conditions") or {}) for o in here]):
            ws = [o.info["conditions"][c].get("weights") for o in here]
            conds[c] = {"proba": np.mean([o.info["conditions"][c]["proba"] for o in here], 0),
                        "weights": None if any(x is None for x in ws) else np.mean(ws, 0)}
        info = {"conditions": conds} if conds else {}
        avg.append(FoldOutput(fold, here[0].seed, here[0].ids, here[0].y_true,
                              np.mean([o.proba for o in here], 0), info))
    return avg


def ensemble_outputs(members: Sequence[Sequence[Any]], *,
                     weights: Sequence[float] | None = None,
                     member_modalities: Sequence[Sequence[str]] | None = None,
                     modalities: Sequence[str] | None = None,
                     subset_experts: bool = False, average_seeds: bool = False) -> list[Any]:
    """Average the test probabilities of already-run models, fold by fold and seed by seed (a
    deterministic member run with one seed joins every seed of the others). Nothing is
    fitted, so nothing is chosen on test data.

    With ``member_modalities`` (each member's modalities) and ``modalities`` (all of them),
    each output also carries ``info["conditions"]``: the ensemble under every test condition
    of :data:`CONDITIONS` its members allow. Under a condition a member takes part when it has
    its own output for it (the attention fusion has all of them; the classical models have
    ``audio_noise``) or when the condition does not touch its modalities; members that need a
    removed modality drop out and the weights of the rest are renormalised. With
    ``subset_experts`` a member that cannot handle missing modalities takes part only when
    its modalities are exactly the available ones (e.g. an audio-only model only when the
    face is missing), so the ensemble is a set of experts, one group per modality subset.
    With ``average_seeds`` each member is first averaged over its seeds (a seed ensemble of
    each stochastic member) and the ensemble has one output per fold.
    """
    from ._common import FoldOutput

    w = np.ones(len(members)) if weights is None else np.asarray(weights, float)
    if len(w) != len(members):
        raise ValueError(f"ensemble: {len(members)} members but {len(w)} weights")
    if average_seeds:
        members = [seed_average(outs) for outs in members]
    seeds = sorted({o.seed for outs in members for o in outs})
    with_conditions = member_modalities is not None and modalities is not None
    out = []
    for fold in sorted({o.fold for o in members[0]}):
        for seed in seeds:
            picked = []
            for outs in members:
                here = [o for o in outs if o.fold == fold]
                match = [o for o in here if o.seed == seed] or here[:1]
                picked.append(match[0])
            if any(p.ids != picked[0].ids for p in picked):
                raise ValueError(f"ensemble members disagree on the test items of fold {fold}")
            conditions: dict[str, Any] = {}
            if with_conditions:
                for cond in CONDITIONS:
                    gone = cond[:-len("_masked")] if cond.endswith("_masked") else None
                    if gone is not None and gone not in modalities:
                        continue
                    if cond == "audio_noise" and not any(
                            "audio_noise" in (p.info.get("conditions") or {}) for p in picked):
                        continue
                    available = {m for m in modalities if m != gone}
                    parts = [(wi, _member_condition(p, mm, cond, available, subset_experts,
                                                    modalities))
                             for wi, p, mm in zip(w, picked, member_modalities)]
                    parts = [(wi, pr) for wi, pr in parts if pr is not None]
                    if parts:
                        tot = sum(wi for wi, _ in parts)
                        conditions[cond] = {"proba": sum(wi * pr for wi, pr in parts) / tot,
                                            "weights": None, "members": len(parts)}
            if "clean" in conditions:
                proba = conditions["clean"]["proba"]
            else:
                proba = sum(wi * p.proba for wi, p in zip(w, picked)) / w.sum()
            info: dict[str, Any] = {"members": len(picked)}
            if conditions:
                info["conditions"] = conditions
            out.append(FoldOutput(fold, seed, picked[0].ids, picked[0].y_true, proba, info))
    return out


def validation_splits(splits: Sequence[Any], records: Sequence[Record], *,
                      fraction: float) -> list[Any]:
    """Each fold's training part split into fitting and validation actors (grouped by
    speaker, stratified; :func:`~emofuse.protocols.validation_split`): the validation actors
    play the test fold's part. The test folds are not used."""
    import dataclasses

    from .. import protocols

    by_id = {r.id: r for r in records}
    out = []
    for sp in splits:
        train = [by_id[i] for i in sp.train if i in by_id]
        fit_ids, val_ids = protocols.validation_split(train, fraction=fraction,
                                                      seed=sp.fold or 0)
        out.append(dataclasses.replace(sp, train=list(fit_ids), val=[], test=list(val_ids)))
    return out


def select_ensemble(candidates: Mapping[str, Sequence[Any]], n_classes: int, *,
                    max_steps: int = 12) -> dict[str, Any]:
    """Greedy forward selection with replacement (Caruana et al., 2004) on validation outputs:
    at each step add the candidate that gives the highest mean UA over folds of the averaged
    probabilities (ties: the earlier candidate); the best prefix wins. Each candidate's seeds
    are averaged first. Returns ``weights`` (selection counts), ``val_ua`` and ``history``."""
    avg = {n: {o.fold: o for o in seed_average(outs)} for n, outs in candidates.items()}
    names = list(avg)
    folds = sorted(avg[names[0]])

    def score(counts: Mapping[str, int]) -> float:
        uas = []
        for f in folds:
            p = sum(c * avg[n][f].proba for n, c in counts.items() if c)
            uas.append(ua_score(avg[names[0]][f].y_true, np.asarray(p), n_classes))
        return float(np.mean(uas))

    counts = {n: 0 for n in names}
    best: tuple[float, dict[str, int]] = (-1.0, dict(counts))
    history = []
    for _ in range(max_steps):
        scored = [(score({**counts, n: counts[n] + 1}), -i, n) for i, n in enumerate(names)]
        sc, _, pick = max(scored)
        counts[pick] += 1
        history.append({"added": pick, "val_ua": round(sc, 5)})
        if sc > best[0] + 1e-12:
            best = (sc, dict(counts))
    return {"weights": {n: c for n, c in best[1].items() if c}, "val_ua": best[0],
            "history": history}


def validation_choice(name: str, spec: EnsembleSpec, setting: str,
                      models: Mapping[str, Any], data: AVData, records: Sequence[Record],
                      classes: Sequence[str], splits: Sequence[Any], seeds: Sequence[int],
                      tcfg: Any, val_outputs: dict[str, dict[str, list[Any]]],
                      log: Any) -> tuple[list[str], list[float], dict[str, Any]]:
    """Members, weights and the record of the choice of an ensemble with ``weights:
    validation`` in one setting: its candidate ``members`` are run once more on validation
    actors held out of each training fold (first seed only), :func:`select_ensemble` picks
    them, and the ``experts`` (models that vote only when a modality is missing) join with
    ``factor`` x the selected total."""
    from ._common import run_folds

    vsplits = validation_splits(splits, records, fraction=spec.val_fraction)
    for m in spec.members:
        if setting in val_outputs.get(m, {}):
            continue
        if log:
            log(f"[{m} / {setting} / validation actors, for {name}]")
        fp = make_runner(models[m].kind, data, setting, models[m], tcfg)
        val_outputs.setdefault(m, {})[setting] = run_folds(
            vsplits, records, classes, fp, seeds=model_seeds(models[m], seeds)[:1],
            val_fraction=tcfg.val_fraction, log=log)
    sel = select_ensemble({m: val_outputs[m][setting] for m in spec.members}, len(classes),
                          max_steps=spec.max_steps)
    chosen = list(sel["weights"])
    weights = [float(sel["weights"][m]) for m in chosen]
    total = sum(weights)
    experts = dict(spec.experts)
    for m, factor in experts.items():
        if m not in models:
            raise ConfigError(f"model.params.compare.{name}.experts: unknown model {m!r}")
        chosen.append(m)
        weights.append(float(factor) * total)
    record = {"weights": dict(zip(chosen, [round(w, 3) for w in weights])),
              "val_ua": round(sel["val_ua"], 5), "history": sel["history"],
              "candidates": list(spec.members), "experts": experts,
              "val_fraction": spec.val_fraction}
    if log:
        log(f"{name} ({setting}): validation UA {100 * sel['val_ua']:.2f} with "
            + ", ".join(f"{m} x{w:g}" for m, w in zip(chosen, weights)))
    return chosen, weights, record
