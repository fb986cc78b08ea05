"""The audio-visual RAVDESS benchmark with a Whisper audio member and reliability-gated fusion
(``emofuse bench av-ravdess-whisper``, configs/av-ravdess-whisper.yaml).

Members (each fitted per outer fold on its training actors only):

* **audio**: Whisper-base encoder states (the cached canonical vector of blocks 1-6, mean and
  std over frames), the columns of one candidate block set, standardised with the fitting
  rows' statistics, multinomial logistic regression (balanced classes). With
  ``multicondition`` each training clip also enters once with its audio mixed with white
  noise at one of the augmentation SNRs (drawn per clip by the seed).
* **face**: the 35 OpenFace AU clip means of av-ravdess, standardised, logistic regression.

Fused system (**fused**): the reliability-gated log-linear pool of
:mod:`emofuse.fusion.reliability` (per item: member entropies and top probabilities, a
waveform SNR estimate of the audio, present flags). Its training data are *out-of-fold*
member outputs on the outer fold's training actors: the training actors are split into
``inner_folds`` actor groups (the seed draws the partition); members fitted on the other
groups score each group clean, with each augmentation SNR (-5/5/15 dB by default; the 0 dB
test condition is never used in training) and with one modality removed. The same inner
folds choose the audio block set and the face C (mean clean UA over the inner folds; first
seed's partition; the test actors take no part). **fused_static** is the same pool with
constant weights fitted on clean out-of-fold outputs only (no reliability signals, no noisy
copies): the ablation that shows what the signals buy.

Every system is tested clean, with the test clips' audio mixed with white noise at the
configured SNR (``audio_noise``), with the audio removed (``audio_missing``) and with the face
removed (``face_missing``), in the inductive and speaker-normalised settings of av-ravdess
(:data:`emofuse.recipes._fusion_data.SETTINGS`). Parameters:
:class:`~emofuse.recipes._fusion_params.ReliabilityParams` (``model.params``) and
:class:`~emofuse.recipes._fusion_params.WhisperFeatureParams` (``features.params``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..corpora import Record
from ..errors import ConfigError
from ..features.cache import FeatureCache
from ._fusion_data import SETTING_NOTES, SETTINGS, load_av_data, snr_table
from ._fusion_ensemble import ua_score
from ._fusion_params import AugmentSpec, ReliabilityParams, WhisperFeatureParams
from ._fusion_report import pm, targets_table
from ._fusion_suite import FusionSuite

__all__ = ["CONDITIONS", "SYSTEMS", "AvRavdessWhisper", "layer_columns", "run_suite",
           "snr_table"]

#: test conditions
CONDITIONS = ("clean", "audio_noise", "audio_missing", "face_missing")
#: reported systems
SYSTEMS = ("audio", "face", "fused", "fused_static")
_KEYS = ("ua", "wa", "macro_f1")
_BLOCK = 1024   # columns of one Whisper block in the canonical meanstd vector


def layer_columns(layers: Sequence[int], *, available: Sequence[int]) -> np.ndarray:
    """Column indices of Whisper ``layers`` in the canonical vector of blocks ``available``
    (each block: 512 means then 512 standard deviations)."""
    avail = list(available)
    missing = [b for b in layers if b not in avail]
    if missing:
        raise ConfigError(f"model.params.audio.layers: blocks {missing} are not in the "
                          f"feature vector (features.params.block_params.whisper.layers = "
                          f"{avail})")
    return np.concatenate([np.arange(avail.index(b) * _BLOCK, (avail.index(b) + 1) * _BLOCK)
                           for b in layers])


# --------------------------------------------------------------------------------------------
# Members


class _Member:
    """Standardisation + balanced multinomial logistic regression on fixed columns."""

    def __init__(self, cols: np.ndarray | None, C: float, seed: int, max_iter: int) -> None:
        self.cols, self.C, self.seed, self.max_iter = cols, float(C), seed, int(max_iter)

    def _x(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        x = X[rows] if self.cols is None else X[np.ix_(rows, self.cols)]
        return np.asarray(x, np.float64)

    def fit(self, X: np.ndarray, rows: np.ndarray, y: np.ndarray,
            extra: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> _Member:
        """Fit on ``X[rows]`` (statistics from these clean rows) plus ``extra`` copies
        ``(matrix, rows)`` (e.g. noisy audio of the same clips) with the same labels."""
        from sklearn.linear_model import LogisticRegression

        x = self._x(X, rows)
        self.mu = x.mean(0)
        sd = x.std(0)
        self.sd = np.where(sd > 1e-6, sd, 1.0)
        xs, ys = [x], [y[rows]]
        for M, r in extra:
            xs.append(self._x(M, r))
            ys.append(y[r])
        Z = (np.concatenate(xs) - self.mu) / self.sd
        self.model = LogisticRegression(C=self.C, max_iter=self.max_iter,
                                        class_weight="balanced", random_state=self.seed)
        self.model.fit(Z, np.concatenate(ys))
        return self

    def proba(self, X: np.ndarray, rows: np.ndarray, n_classes: int) -> np.ndarray:
        from ..fusion.baselines import svm_proba

        return svm_proba(self.model, (self._x(X, rows) - self.mu) / self.sd,
                         n_classes=n_classes)


class _Setting:
    """The matrices of one setting (inductive / spknorm) and the member fitting on them."""

    def __init__(self, data: Any, setting: str, params: ReliabilityParams, layers: list[int],
                 snr: Mapping[str, np.ndarray]) -> None:
        self.data, self.setting, self.p = data, setting, params
        base = data._base("clean", data.clean, setting)
        self.A = {"clean": base["audio"]}
        if data.noisy is not None:
            self.A["noise"] = data._base("noisy", data.noisy, setting)["audio"]
        for k, aug in enumerate(data.augment):
            self.A[f"aug{k}"] = data._base(f"augment{k}", aug, setting)["audio"]
        self.F = base["face"]
        self.ap = data.clean.present["audio"]
        self.fp = data.clean.present["face"]
        self.y = data.y
        self.C = len(data.classes)
        self.aug = [k for k in self.A if k.startswith("aug")]
        self.cols = {tuple(s): layer_columns(s, available=layers)
                     for s in params.audio.layers}
        self.snr = snr

    def fit_audio(self, layers: tuple[int, ...], rows: np.ndarray, seed: int) -> _Member:
        a = self.p.audio
        rows = rows[self.ap[rows]]
        extra = []
        if a.multicondition and self.aug:
            rng = np.random.default_rng([int(seed), 11])
            which = rng.integers(len(self.aug), size=len(rows))
            for k, name in enumerate(self.aug):
                r = rows[(which == k) & self.data.augment[k].present["audio"][rows]]
                if len(r):
                    extra.append((self.A[name], r))
        return _Member(self.cols[layers], a.C, seed, a.max_iter).fit(
            self.A["clean"], rows, self.y, extra)

    def fit_face(self, C: float, rows: np.ndarray, seed: int) -> _Member:
        rows = rows[self.fp[rows]]
        return _Member(None, C, seed, self.p.face.max_iter).fit(self.F, rows, self.y)

    def audio_outputs(self, m: _Member, rows: np.ndarray, conds: Sequence[str]
                      ) -> dict[str, np.ndarray]:
        return {c: m.proba(self.A[c], rows, self.C) for c in conds}


def _inner_partition(speakers: np.ndarray, rows: np.ndarray, k: int, seed: int,
                     fold: int) -> list[np.ndarray]:
    """The training rows' actors shuffled by (seed, fold) and cut into ``k`` groups."""
    actors = sorted(set(speakers[rows].tolist()))
    rng = np.random.default_rng([int(seed), int(fold), 3])
    order = [actors[i] for i in rng.permutation(len(actors))]
    groups = np.array_split(np.array(order, dtype=object), min(k, len(actors)))
    return [rows[np.isin(speakers[rows], g)] for g in groups]


def _oof(S: _Setting, parts: list[np.ndarray], audio_cands: Sequence[tuple[int, ...]],
         face_cands: Sequence[float], seed: int, log: Any) -> dict[str, Any]:
    """Out-of-fold outputs on the training rows (``parts``: the inner actor groups) of every
    audio candidate (clean and each augmentation copy) and face candidate."""
    rows = np.concatenate(parts)
    pos = {r: i for i, r in enumerate(rows)}
    conds = ["clean"] + S.aug
    audio = {a: {c: np.zeros((len(rows), S.C)) for c in conds} for a in audio_cands}
    face = {c: np.zeros((len(rows), S.C)) for c in face_cands}
    for j, val in enumerate(parts):
        fit = np.concatenate([p for i, p in enumerate(parts) if i != j])
        idx = np.array([pos[r] for r in val])
        for a in audio_cands:
            m = S.fit_audio(a, fit, seed)
            for c, pr in S.audio_outputs(m, val, conds).items():
                audio[a][c][idx] = pr
        for C in face_cands:
            face[C][idx] = S.fit_face(C, fit, seed).proba(S.F, val, S.C)
    return {"rows": rows, "audio": audio, "face": face}


def _signals(S: _Setting, pa: np.ndarray, pf: np.ndarray, ap: np.ndarray, fp: np.ndarray,
             snr: np.ndarray, signals: Sequence[str]) -> tuple[np.ndarray, ...]:
    from ..fusion.reliability import log_proba, reliability_signals

    flat = np.full_like(pa, 1.0 / pa.shape[1])
    pa = np.where(ap[:, None], pa, flat)
    pf = np.where(fp[:, None], pf, flat)
    R = reliability_signals(pa, pf, audio_present=ap, face_present=fp,
                            snr_db=np.nan_to_num(snr), signals=signals)
    return log_proba(pa, ap), log_proba(pf, fp), R


def _gate_data(S: _Setting, oof: Mapping[str, Any], a: tuple[int, ...], C: float,
               signals: Sequence[str], train_conditions: Sequence[str]) -> tuple[np.ndarray, ...]:
    """Stacked (La, Lf, R, y) of the out-of-fold outputs under the training conditions."""
    rows = oof["rows"]
    pf = oof["face"][C]
    ap, fp = S.ap[rows], S.fp[rows]
    parts = []
    conds = []
    for tc in train_conditions:
        if tc == "augment":
            conds += [(c, ap, fp) for c in S.aug]
        elif tc == "clean":
            conds.append(("clean", ap, fp))
        elif tc == "audio_missing":
            conds.append(("clean", np.zeros_like(ap), fp))
        elif tc == "face_missing":
            conds.append(("clean", ap, np.zeros_like(fp)))
        else:
            raise ConfigError(f"model.params.gate.train_conditions: unknown {tc!r}")
    for c, apx, fpx in conds:
        snr = S.snr["clean" if c == "clean" else c][rows]
        parts.append(_signals(S, oof["audio"][a][c], pf, apx, fpx, snr, signals))
    La, Lf, R = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return La, Lf, R, np.tile(S.y[rows], len(parts))


def _run_setting(S: _Setting, splits: Sequence[Any], records: Sequence[Record],
                 seeds: Sequence[int], params: ReliabilityParams, log: Any,
                 ) -> tuple[dict[str, dict[str, list[Any]]], dict[str, Any]]:
    """All systems under all conditions for one setting: ``{system: {condition: [FoldOutput]}}``
    and the per-fold choices and gate weights."""
    from ..fusion.reliability import ReliabilityGate
    from ._common import FoldOutput, Timer

    data = S.data
    gate_p = params.gate
    audio_cands = [tuple(s) for s in params.audio.layers]
    face_cands = params.face.candidates()
    out: dict[str, dict[str, list[Any]]] = {s: {c: [] for c in CONDITIONS} for s in SYSTEMS}
    info: dict[str, Any] = {"choices": [], "gate": []}
    for sp in splits:
        fold = sp.fold or 0
        tr = data.rows(sp.select(records, "train") + sp.select(records, "val"))
        te = data.rows(sp.select(records, "test"))
        ids = [data.records[i].id for i in te]
        y = S.y[te]
        choice = None
        for seed in seeds:
            t = Timer().__enter__()
            parts = _inner_partition(data.speakers, tr, params.inner_folds, seed, fold)
            cands_a = audio_cands if choice is None else [choice["audio_layers"]]
            cands_f = face_cands if choice is None else [choice["face_C"]]
            oof = _oof(S, parts, cands_a, cands_f, seed, log)
            yo = S.y[oof["rows"]]
            if choice is None:   # first seed: choose on the inner folds (clean UA)
                inner = {p: [] for p in ("a", "f")}
                for part in parts:
                    sel = np.isin(oof["rows"], part)
                    inner["a"].append({a: ua_score(yo[sel], oof["audio"][a]["clean"][sel], S.C)
                                       for a in cands_a})
                    inner["f"].append({c: ua_score(yo[sel], oof["face"][c][sel], S.C)
                                       for c in cands_f})
                sa = {a: float(np.mean([d[a] for d in inner["a"]])) for a in cands_a}
                sf = {c: float(np.mean([d[c] for d in inner["f"]])) for c in cands_f}
                choice = {"fold": fold, "audio_layers": max(sa, key=lambda a: (sa[a], -len(a))),
                          "face_C": max(sf, key=lambda c: (sf[c], -c)),
                          "inner_ua_audio": {"-".join(map(str, a)): round(v, 4)
                                             for a, v in sa.items()},
                          "inner_ua_face": {str(c): round(v, 4) for c, v in sf.items()}}
                info["choices"].append(choice)
            a, C = choice["audio_layers"], choice["face_C"]
            # the gate: reliability-weighted pool on the out-of-fold outputs
            La, Lf, R, yg = _gate_data(S, oof, a, C, gate_p.signals, gate_p.train_conditions)
            gate = ReliabilityGate(l2=gate_p.l2).fit(La, Lf, R, yg, seed=seed)
            La0, Lf0, R0, y0 = _gate_data(S, oof, a, C, [], ["clean"])
            static = ReliabilityGate(l2=gate_p.l2).fit(La0, Lf0, R0, y0, seed=seed)
            # the members on the whole training fold, scored on the test actors
            ma = S.fit_audio(a, tr, seed)
            mf = S.fit_face(C, tr, seed)
            pa = S.audio_outputs(ma, te, ["clean"] + (["noise"] if "noise" in S.A else []))
            pf = mf.proba(S.F, te, S.C)
            ap, fp = S.ap[te], S.fp[te]
            none = np.zeros_like(ap)
            tests = {"clean": (pa["clean"], ap, fp, S.snr["clean"][te]),
                     "audio_missing": (pa["clean"], none, fp, S.snr["clean"][te]),
                     "face_missing": (pa["clean"], ap, none, S.snr["clean"][te])}
            if "noise" in pa:
                tests["audio_noise"] = (pa["noise"], ap, fp, S.snr["noise"][te])
            gw = {}
            for cond, (pac, apx, fpx, snr) in tests.items():
                La_t, Lf_t, R_t = _signals(S, pac, pf, apx, fpx, snr, gate_p.signals)
                fused, W = gate.predict(La_t, Lf_t, R_t)
                st, _ = static.predict(La_t, Lf_t, np.zeros((len(te), 0)))
                gw[cond] = {"audio": float(W[:, 0].mean()), "face": float(W[:, 1].mean())}
                sysp = {"fused": fused, "fused_static": st}
                if apx.any():
                    sysp["audio"] = pac
                if fpx.any():
                    sysp["face"] = pf
                for name, pr in sysp.items():
                    out[name][cond].append(FoldOutput(fold, seed, ids, y, np.asarray(pr),
                                                      {"weights": W if name == "fused" else None}))
            info["gate"].append({"fold": fold, "seed": seed, "weights": gw,
                                 "static_weights": {
                                     "audio": float(static.weights(np.zeros((1, 0)))[0, 0]),
                                     "face": float(static.weights(np.zeros((1, 0)))[0, 1])},
                                 "seconds": round(t.elapsed, 1)})
            if log:
                ua = {n: ua_score(y, out[n]["clean"][-1].proba, S.C) for n in SYSTEMS}
                un = {n: ua_score(y, out[n]["audio_noise"][-1].proba, S.C) for n in SYSTEMS
                      if out[n]["audio_noise"]}
                log(f"  [{S.setting}] fold {fold} seed {seed}: layers {'-'.join(map(str, a))}, "
                    f"face C {C:g}; clean UA " + " ".join(f"{n} {100 * v:.1f}"
                                                          for n, v in ua.items())
                    + "; audio at noise: " + " ".join(f"{n} {100 * v:.1f}"
                                                      for n, v in un.items())
                    + f"; gate a/b clean {gw['clean']['audio']:.2f}/{gw['clean']['face']:.2f}"
                    + (f", noise {gw['audio_noise']['audio']:.2f}/"
                       f"{gw['audio_noise']['face']:.2f}" if "audio_noise" in gw else "")
                    + f" ({t.elapsed:.0f} s)")
    return out, info


# --------------------------------------------------------------------------------------------
# The suite


class AvRavdessWhisper(FusionSuite, name="av-ravdess-whisper",
                       params={"model": ReliabilityParams, "features": WhisperFeatureParams}):
    """RAVDESS Whisper-base audio + OpenFace AUs, EmoBox folds: logistic-regression members and
    reliability-gated fusion, clean / 0 dB / missing"""

    def body(self) -> dict[str, Any]:
        from ._common import Timer

        log, fparams, params, settings = self.log, self.f, self.p, self.settings
        mods = fparams.modalities
        if set(mods) != {"audio", "face"} or mods["audio"] != ["whisper"] \
                or mods["face"] != ["openface_au"]:
            raise ConfigError("features.params.modalities: this suite needs exactly "
                              "{audio: [whisper], face: [openface_au]}")
        layers = list(fparams.block_params.whisper.layers)
        records, classes, splits, seeds, protocol = self.av_records()
        if self.quick:   # 6 actors, one clip per actor and class, 2 folds, one seed, 1 SNR copy
            params = params.model_copy(update={"inner_folds": 3, "audio": params.audio.model_copy(
                update={"layers": params.audio.layers[:2]})})
            if fparams.augment is not None and fparams.augment.snr_db:
                snrs = fparams.augment.snr_db
                fparams = fparams.model_copy(update={"augment": AugmentSpec(
                    snr_db=[snrs[len(snrs) // 2]], seed=fparams.augment.seed)})
        cache = FeatureCache()
        data = load_av_data(records, classes, fparams, cache=cache, log=log)
        snr_conds: dict[str, Any] = {"clean": None}
        if fparams.noise is not None:
            snr_conds["noise"] = fparams.noise
        for k, noise in enumerate(fparams.augment.noises() if fparams.augment else []):
            snr_conds[f"aug{k}"] = noise
        snr = snr_table(records, snr_conds, sr=fparams.sr, cache=cache)
        if log:
            log("waveform SNR estimate (median dB): " + ", ".join(
                f"{c} {np.nanmedian(v):.1f}" for c, v in snr.items()))
        outputs: dict[str, dict[str, dict[str, list[Any]]]] = {}
        infos: dict[str, Any] = {}
        seconds: dict[str, float] = {}
        for setting in settings:
            with Timer() as t:
                if log:
                    log(f"[{setting}]")
                S = _Setting(data, setting, params, layers, snr)
                outputs[setting], infos[setting] = _run_setting(S, splits, records, seeds,
                                                                params, log)
            seconds[setting] = round(t.seconds, 1)
            del S
        systems, metrics = _systems(outputs, classes, settings)
        for setting in settings:
            metrics[f"wall_{setting}_s"] = {"mean": seconds[setting], "std": 0.0,
                                            "per_fold": [seconds[setting]]}
        result = self.result(
            protocol=protocol, classes=classes,
            parts=self.setting_parts({s: outputs[s]["fused"]["clean"] for s in settings}),
            systems=systems, choices={s: infos[s]["choices"] for s in settings},
            gate={s: _gate_summary(infos[s]["gate"]) for s in settings},
            gate_runs={s: infos[s]["gate"] for s in settings},
            targets=_targets(systems, settings, params),
            settings={s: SETTING_NOTES[s] for s in settings},
            features={m: b for m, b in data.clean.blocks.items()},
            feature_problems=data.clean.problems[:50],
            waveform_snr_median_db={c: float(np.nanmedian(v)) for c, v in snr.items()})
        result["metrics"].update(metrics)
        result["notes"] = _notes(result, params, fparams)
        return result


run_suite = AvRavdessWhisper.run


def _systems(outputs: Mapping[str, Mapping[str, Mapping[str, Sequence[Any]]]],
             classes: Sequence[str], settings: Sequence[str]
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The table ``{system: {setting: {condition: summary}}}`` and the metrics of every system
    and condition but the fused clean one (the result's main metrics)."""
    from ._common import summarise_outputs

    systems: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for name in SYSTEMS:
        for setting in settings:
            suffix = SETTINGS[setting]
            for cond in CONDITIONS:
                outs = outputs[setting][name][cond]
                if not outs:
                    continue
                agg = summarise_outputs(outs, classes, suffix=suffix)
                entry = {}
                for k in _KEYS:
                    m = agg["metrics"][k + suffix]
                    entry[k] = {"mean": m["mean"], "std": m["std"], "per_fold": m["per_fold"],
                                "per_seed": m.get("per_seed", [])}
                    if not (name == "fused" and cond == "clean"):
                        key = f"{name}.{k}" + ("" if cond == "clean" else f"_{cond}") + suffix
                        metrics[key] = m
                entry["recall_per_class"] = {c: d["recall"] for c, d in agg["per_class"].items()}
                entry["confusion"] = agg["confusion"]
                systems.setdefault(name, {}).setdefault(setting, {})[cond] = entry
    return systems, metrics


def _gate_summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    conds = sorted({c for r in runs for c in r["weights"]}, key=list(CONDITIONS).index)
    return {c: {m: float(np.mean([r["weights"][c][m] for r in runs if c in r["weights"]]))
                for m in ("audio", "face")} for c in conds} | {
        "static": {m: float(np.mean([r["static_weights"][m] for r in runs]))
                   for m in ("audio", "face")}}


def _targets(systems: Mapping[str, Any], settings: Sequence[str],
             params: ReliabilityParams) -> list[dict[str, Any]]:
    out = []
    t = params.targets
    tol = t.missing_tolerance
    for setting in settings:
        f = systems["fused"][setting]
        face = systems["face"][setting]["clean"]["ua"]["mean"]
        goal = t.fused_ua if setting == "inductive" else t.fused_ua_spknorm
        ua = f["clean"]["ua"]["mean"]
        out.append({"target": f"fused UA >= {100 * goal:.0f} ({setting})",
                    "measured": f"UA {100 * ua:.2f}", "met": bool(ua >= goal)})
        if "audio_noise" in f:
            un = f["audio_noise"]["ua"]["mean"]
            out.append({"target": f"audio at 0 dB SNR: fused UA >= face-only UA ({setting})",
                        "measured": f"fused {100 * un:.2f}; face {100 * face:.2f}",
                        "met": bool(un >= face)})
        if "audio_missing" in f:
            um = f["audio_missing"]["ua"]["mean"]
            out.append({"target": f"audio removed: fused UA within {100 * tol:.0f} point of "
                                  f"face-only ({setting})",
                        "measured": f"fused {100 * um:.2f}; face {100 * face:.2f}",
                        "met": bool(abs(um - face) <= tol + 1e-9 or um >= face)})
    return out


def _spread(m: Mapping[str, Any]) -> str:
    ps = m.get("per_seed") or []
    if len(ps) < 2:
        return "–"
    return f"{100 * (max(ps) - min(ps)):.2f}"


def _db(v: float | Sequence[float]) -> str:
    """SNRs as the YAML gives them (``0``, ``[-5, 5, 15]``)."""
    return f"[{', '.join(f'{x:g}' for x in v)}]" if isinstance(v, Sequence) else f"{v:g}"


def _notes(result: Mapping[str, Any], params: ReliabilityParams,
           fparams: WhisperFeatureParams) -> str:
    settings = list(result["settings"])
    systems = result["systems"]
    noise, aug = fparams.noise, fparams.augment
    lines = ["## Settings", ""] + [f"- {t}" for t in result["settings"].values()]
    snrs = _db(aug.snr_db) if aug else None
    test_noise = f"{_db(noise.snr_db)} dB SNR, seed {noise.seed}" if noise else \
        "None dB SNR, seed None"
    lines += [
        "", f"Features (clip level): audio = Whisper-base encoder states (blocks "
        f"{fparams.block_params.whisper.layers}, mean + std over frames; the audio member uses "
        "one candidate block set), face = 35 OpenFace AU clip means. Members: "
        "standardisation + balanced logistic regression (audio C "
        f"{params.audio.C}, multi-condition training: {params.audio.multicondition}; face C "
        f"chosen among {params.face.C}). Fused: reliability-gated log-linear pool "
        "(`emofuse.fusion.reliability`; signals: " + ", ".join(params.gate.signals)
        + ") fitted on out-of-fold member outputs of the training actors "
        f"({params.inner_folds} inner actor folds; training conditions: "
        + ", ".join(params.gate.train_conditions)
        + f"; augmentation SNRs {snrs} dB). `fused_static`: the same pool with "
        "constant weights fitted on clean out-of-fold outputs (no reliability signals). "
        "Block set and face C chosen per outer fold on the inner folds (clean UA, first "
        "seed's partition); test actors never used for any fit, statistic or choice "
        "(except the unlabelled per-actor statistics of the speaker-normalised setting).",
        "", "Conditions: `clean`; `audio_noise` (the test clips' audio mixed with white noise "
        f"at {test_noise}, face intact); "
        "`audio_missing` / `face_missing` (that modality removed at test time).", "",
        "## Systems under test conditions (%, mean ± std over folds; seed spread = max - min "
        "of the seed means)", "",
        "| system | setting | condition | UA | WA | macro-F1 | UA seed spread |",
        "|---|---|---|---|---|---|---|"]
    for name in SYSTEMS:
        for s in settings:
            for c, e in systems.get(name, {}).get(s, {}).items():
                lines.append(f"| {name} | {s} | {c} | {pm(e['ua'])} | {pm(e['wa'])} | "
                             f"{pm(e['macro_f1'])} | {_spread(e['ua'])} |")
    lines += ["", "## Per fold (UA %)", "", "| system | setting | condition | " + " | ".join(
        f"fold {i + 1}" for i in range(len(systems['fused'][settings[0]]['clean']['ua']
                                           ['per_fold']))) + " |",
        "|---|---|---|" + "---|" * len(systems['fused'][settings[0]]['clean']['ua']['per_fold'])]
    for name in SYSTEMS:
        for s in settings:
            for c, e in systems.get(name, {}).get(s, {}).items():
                lines.append(f"| {name} | {s} | {c} | " + " | ".join(
                    f"{100 * v:.2f}" for v in e["ua"]["per_fold"]) + " |")
    classes = result["classes"]
    lines += ["", "## Recall per class (%, clean, pooled over folds)", "",
              "| system | setting | " + " | ".join(classes) + " |",
              "|---|---|" + "---|" * len(classes)]
    for name in SYSTEMS:
        for s in settings:
            e = systems.get(name, {}).get(s, {}).get("clean")
            if e:
                lines.append(f"| {name} | {s} | " + " | ".join(
                    f"{100 * e['recall_per_class'][c]:.1f}" for c in classes) + " |")
    lines += ["", "## Gate weights (mean over test items, folds and seeds)", "",
              "`a` multiplies the audio member's log-probabilities, `b` the face member's; "
              "`static` is `fused_static`'s constant pair.", "",
              "| setting | condition | a (audio) | b (face) |", "|---|---|---|---|"]
    for s in settings:
        for c, w in result["gate"][s].items():
            lines.append(f"| {s} | {c} | {w['audio']:.3f} | {w['face']:.3f} |")
    lines += ["", "## Choices per outer fold (inner folds of its training actors)", "",
              "| setting | fold | audio blocks | face C | inner UA audio | inner UA face |",
              "|---|---|---|---|---|---|"]
    for s in settings:
        for ch in result["choices"][s]:
            lines.append(f"| {s} | {ch['fold']} | {'-'.join(map(str, ch['audio_layers']))} | "
                         f"{ch['face_C']:g} | " + ", ".join(
                             f"{k}: {100 * v:.1f}" for k, v in ch["inner_ua_audio"].items())
                         + " | " + ", ".join(f"{k}: {100 * v:.1f}"
                                             for k, v in ch["inner_ua_face"].items()) + " |")
    lines += ["", "Waveform SNR estimate, median over clips (dB): " + ", ".join(
        f"{c} {v:.1f}" for c, v in result["waveform_snr_median_db"].items()) + "."]
    return "\n".join(lines + targets_table(result["targets"], aim=False))

