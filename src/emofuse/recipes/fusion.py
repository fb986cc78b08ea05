"""Fusion recipes: clip-level modality features, the fusion models' train/evaluate and the
audio-visual benchmark suites (``av-ravdess``).

Modalities and their feature blocks come from ``cfg.features.params["modalities"]``::

    features:
      name: av_clip
      params:
        modalities:
          audio: [egemaps, lld_stats]   # any registered speech feature (the speech team's
          face: [openface_au]           #   embeddings plug in here by name)
        noise: {snr_db: 0, seed: 0}     # the corrupted-audio test condition
        augment_snr_db: [-5, 5, 15]     # noisy copies of the *training* clips (multi-condition)

A block is ``openface_au`` (the corpus' clip-level OpenFace action units, face) or the name of a
registered speech feature computed from the record's audio through the feature cache.

The ``av-ravdess`` suite runs the attention fusion (``model.params``) and every model listed
under ``model.params.compare`` (``kind``: ``svm``, ``linear``, ``decision_average``, ``mlp``,
``mfa``, ``intermediate``, ``attention``) in each setting (``inductive``, ``spknorm``) on the
protocol's folds, tests the attention fusion with each modality removed and with noisy audio,
and reports per fold, per class, the attention weights per condition and by class, the issue's
targets and plots (PNG files next to the results).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..corpora import Record
from ..errors import ConfigError, DataError, EmofuseError
from ..evaluate.results import results_dir as default_results_dir
from ..features.cache import FeatureCache, content_hash

__all__ = ["FACE_BLOCKS", "ModalityData", "modality_data", "add_white_noise", "block_features"]

#: Feature blocks read from tables rather than computed from audio.
FACE_BLOCKS = ("openface_au",)


# --------------------------------------------------------------------------------------------
# Audio corruption


def add_white_noise(y: np.ndarray, *, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``y`` plus white Gaussian noise at ``snr_db`` dB SNR over the whole clip (float32).

    The signal power is the mean square of the entire clip (silences included), the usual
    global definition.
    """
    y = np.asarray(y, dtype=np.float64)
    power = float(np.mean(y ** 2)) if y.size else 0.0
    if power <= 0:
        return y.astype(np.float32)
    noise = rng.standard_normal(y.shape) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (y + noise).astype(np.float32)


def _noise_rng(path: str | os.PathLike, seed: int) -> np.random.Generator:
    """A generator fixed by the clip's content and ``seed`` (the same noise on every run)."""
    return np.random.default_rng([int(seed), int(content_hash(path)[:12], 16)])


# --------------------------------------------------------------------------------------------
# Feature blocks


def _audio_block(path: str, name: str, *, params: Mapping[str, Any], sr: int,
                 noise: Mapping[str, Any] | None, cache: FeatureCache) -> np.ndarray:
    """Speech feature ``name`` of one file, clean or with white noise (cached either way)."""
    from ..features import get_feature
    from ..features.speech import extract, feature_settings
    from ..media import load_audio

    if not noise:
        return np.asarray(extract(path, name, params=params, sr=sr, cache=cache))
    noise = {"kind": "white", "snr_db": float(noise["snr_db"]), "seed": int(noise.get("seed", 0))}
    settings = {**feature_settings(name, params, sr=sr), "noise": noise}
    fn = get_feature(name).fn

    def compute(p: str) -> np.ndarray:
        y, _ = load_audio(p, sr=sr)
        y = add_white_noise(y, snr_db=noise["snr_db"], rng=_noise_rng(p, noise["seed"]))
        try:
            return fn(y, sr=sr, **dict(params))
        except Exception as exc:  # a library failing on odd content: report this one file
            raise DataError(p, f"feature {name!r} on noisy audio failed "
                            f"({type(exc).__name__}: {exc})") from exc

    return np.asarray(cache.get_or_compute(path, settings, compute))


def _au_rows(records: Sequence[Record]) -> dict[str, dict[str, np.ndarray]]:
    from ..corpora.ravdess import read_au_table

    tables: dict[str, dict[str, np.ndarray]] = {}
    for r in records:
        if r.au and r.au not in tables:
            try:
                tables[r.au] = {k: np.asarray(v, np.float32)
                                for k, v in read_au_table(r.au).items()}
            except (OSError, ValueError, KeyError) as exc:
                raise DataError(r.au, f"cannot read the action-unit table ({exc})") from exc
    return tables


def block_features(records: Sequence[Record], block: str, *,
                   params: Mapping[str, Any] | None = None, sr: int = 16000,
                   noise: Mapping[str, Any] | None = None, cache: FeatureCache | None = None,
                   ) -> tuple[list[np.ndarray | None], list[dict[str, str]]]:
    """One feature block for every record: a vector, or ``None`` (modality absent or failed).

    Returns the vectors and the problems ``[{"id", "path", "reason"}]`` of records whose file
    failed (a record merely lacking the modality is not a problem).
    """
    cache = cache or FeatureCache()
    out: list[np.ndarray | None] = []
    problems: list[dict[str, str]] = []
    if block == "openface_au":
        tables = _au_rows(records)
        for r in records:
            key = r.extra.get("au_id", r.id)
            row = tables.get(r.au, {}).get(key) if r.au else None
            if r.au and row is None:
                problems.append({"id": r.id, "path": r.au, "reason": f"no AU row for {key}"})
            out.append(row)
        return out, problems
    for r in records:
        if not r.audio:
            out.append(None)
            continue
        try:
            out.append(_audio_block(r.audio, block, params=params or {}, sr=sr, noise=noise,
                                    cache=cache))
        except EmofuseError as exc:
            out.append(None)
            problems.append({"id": r.id, "path": r.audio,
                             "reason": getattr(exc, "problem", str(exc))})
    return out, problems


def block_modality(block: str) -> str:
    """``face`` for table blocks, ``audio`` for speech features."""
    return "face" if block in FACE_BLOCKS else "audio"


@dataclass
class ModalityData:
    """Clip-level features of ``ids`` per modality: ``X[m]`` ``(n, d_m)`` (zeros where absent),
    ``present[m]`` ``(n,)`` bool, and where each feature block sits (``slices[block] =
    (modality, column slice)``)."""

    ids: list[str]
    X: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    blocks: dict[str, list[str]]
    problems: list[dict[str, str]] = field(default_factory=list)
    slices: dict[str, tuple[str, slice]] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.X)

    def subset(self, idx: Sequence[int] | np.ndarray) -> ModalityData:
        idx = np.asarray(idx, dtype=int)
        return ModalityData([self.ids[i] for i in idx], {m: x[idx] for m, x in self.X.items()},
                            {m: p[idx] for m, p in self.present.items()}, self.blocks,
                            self.problems, self.slices)

    def mask(self) -> np.ndarray:
        """``(n, M)`` presence mask in modality order."""
        return np.stack([self.present[m] for m in self.X], axis=1)


def modality_data(records: Sequence[Record], modalities: Mapping[str, Sequence[str]], *,
                  block_params: Mapping[str, Mapping[str, Any]] | None = None, sr: int = 16000,
                  noise: Mapping[str, Any] | None = None, cache: FeatureCache | None = None,
                  ) -> ModalityData:
    """Concatenate each modality's feature blocks for ``records``.

    ``noise`` corrupts the audio of every audio block. A modality is absent for a record when
    any of its blocks is missing or failed.
    """
    if not modalities:
        raise ConfigError("features.params.modalities: give at least one modality")
    cache = cache or FeatureCache()
    X: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    problems: list[dict[str, str]] = []
    slices: dict[str, tuple[str, slice]] = {}
    for m, blocks in modalities.items():
        if not blocks:
            raise ConfigError(f"features.params.modalities.{m}: list at least one feature block")
        cols, ok = [], np.ones(len(records), bool)
        for b in blocks:
            vecs, probs = block_features(records, b, params=(block_params or {}).get(b), sr=sr,
                                         noise=noise if block_modality(b) == "audio" else None,
                                         cache=cache)
            problems += probs
            dims = {v.shape for v in vecs if v is not None}
            if len(dims) > 1:
                raise DataError(None, f"feature block {b!r} has vectors of several shapes {dims}")
            if not dims:
                cols.append(np.zeros((len(records), 0), np.float32))
                ok[:] = False
                continue
            (shape,) = dims
            mat = np.zeros((len(records), int(np.prod(shape))), np.float32)
            for i, v in enumerate(vecs):
                if v is None:
                    ok[i] = False
                else:
                    mat[i] = np.nan_to_num(np.asarray(v, np.float32).reshape(-1))
            cols.append(mat)
        start = 0
        for b, c in zip(blocks, cols):
            slices[b] = (m, slice(start, start + c.shape[1]))
            start += c.shape[1]
        X[m] = np.concatenate(cols, axis=1)
        X[m][~ok] = 0.0
        present[m] = ok
    return ModalityData([r.id for r in records], X, present,
                        {m: list(b) for m, b in modalities.items()}, problems, slices)


# --------------------------------------------------------------------------------------------
# Settings: what the normalisation may see

#: setting -> metric suffix
SETTINGS = {"inductive": "", "spknorm": "_spknorm"}
SETTING_NOTES = {
    "inductive": "inductive: every feature is z-scored with the mean and standard deviation of "
                 "the training fold's clips (training actors only); test actors are never used "
                 "for any statistic",
    "spknorm": "speaker-normalised (`_spknorm`): each actor's features are first z-scored with "
               "that actor's own clips, unlabelled, for the test actors too (transductive in "
               "their unlabelled audio and video), then z-scored with the training fold's "
               "statistics",
}
#: the conditions the attention fusion is tested under
CONDITIONS = ("clean", "audio_masked", "face_masked", "audio_noise")


@dataclass
class AVData:
    """Everything a fold needs: the records' labels and speakers, the clean features, the
    features of noisy audio (test condition) and of noisy training copies (augmentation)."""

    records: list[Record]
    classes: list[str]
    y: np.ndarray
    speakers: np.ndarray
    clean: ModalityData
    noisy: ModalityData | None
    augment: list[ModalityData]
    index: dict[str, int]
    #: ``own``: noisy/augmented copies are speaker-normalised with their own statistics;
    #: ``clean``: with the speaker's clean clips (enrolment statistics)
    spk_reference: str = "own"
    _spk: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return self.clean.modalities

    def rows(self, records: Sequence[Record]) -> np.ndarray:
        return np.array([self.index[r.id] for r in records], dtype=int)

    def _base(self, which: str, data: ModalityData, setting: str) -> dict[str, np.ndarray]:
        if setting == "inductive":
            return data.X
        if setting != "spknorm":
            raise ConfigError(f"unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
        if which not in self._spk:
            from ..fusion.normalise import speaker_normalise

            clean = which != "clean" and self.spk_reference == "clean"
            self._spk[which] = {
                m: speaker_normalise(x, self.speakers, present=data.present[m],
                                     reference=self.clean.X[m] if clean else None,
                                     reference_present=self.clean.present[m] if clean else None)
                for m, x in data.X.items()}
        return self._spk[which]

    def view(self, setting: str, fit_rows: np.ndarray) -> dict[str, Any]:
        """Normalised matrices of all rows for one fold: ``clean``/``noisy`` ``{m: (n, d)}``
        and ``variants`` ``{m: (V, n, d)}``, standardised with the clean ``fit_rows``
        (``scalers``: the fitted :class:`~emofuse.fusion.normalise.Standardiser` per modality)."""
        from ..fusion.normalise import Standardiser

        base = self._base("clean", self.clean, setting)
        scalers = {m: Standardiser().fit(x[fit_rows], self.clean.present[m][fit_rows])
                   for m, x in base.items()}
        out: dict[str, Any] = {"clean": {m: scalers[m].transform(x, self.clean.present[m])
                                         for m, x in base.items()}, "scalers": scalers}
        if self.noisy is not None:
            nb = self._base("noisy", self.noisy, setting)
            out["noisy"] = {m: scalers[m].transform(x, self.noisy.present[m])
                            for m, x in nb.items()}
        variants: dict[str, list[np.ndarray]] = {}
        for k, aug in enumerate(self.augment):
            ab = self._base(f"augment{k}", aug, setting)
            for m, x in ab.items():
                variants.setdefault(m, []).append(scalers[m].transform(x, aug.present[m]))
        out["variants"] = {m: np.stack(v) for m, v in variants.items()}
        return out

    def mask(self, rows: np.ndarray | None = None) -> np.ndarray:
        m = self.clean.mask()
        return m if rows is None else m[rows]


def _feature_params(cfg: Any) -> dict[str, Any]:
    p = dict(cfg.features.params)
    mods = p.get("modalities") or {"audio": ["egemaps"], "face": ["openface_au"]}
    if not isinstance(mods, Mapping) or not all(isinstance(v, (list, tuple)) for v in
                                                mods.values()):
        raise ConfigError("features.params.modalities must map each modality to a list of "
                          "feature blocks, e.g. {audio: [egemaps], face: [openface_au]}")
    p["modalities"] = {m: list(v) for m, v in mods.items()}
    return p


def load_av_data(records: Sequence[Record], classes: Sequence[str], fparams: Mapping[str, Any],
                 *, with_noise: bool = True, with_augment: bool = True,
                 cache: FeatureCache | None = None, log: Any = print) -> AVData:
    """Features of ``records`` for the fusion recipes (computed once, cached on disk)."""
    cache = cache or FeatureCache()
    mods = fparams["modalities"]
    kw = {"block_params": fparams.get("block_params"), "sr": int(fparams.get("sr", 16000)),
          "cache": cache}
    audio_mods = {m: b for m, b in mods.items() if any(block_modality(x) == "audio" for x in b)}
    clean = modality_data(records, mods, **kw)
    noisy = None
    if with_noise and fparams.get("noise") and audio_mods:
        noisy = modality_data(records, mods, noise=fparams["noise"], **kw)
    augment = []
    aug = fparams.get("augment") or {}
    if with_augment and aug.get("snr_db") and audio_mods:
        for snr in aug["snr_db"]:
            augment.append(modality_data(records, audio_mods,
                                         noise={"snr_db": snr, "seed": aug.get("seed", 1)}, **kw))
    if log:
        log(f"features: {', '.join(f'{m} {x.shape[1]}' for m, x in clean.X.items())}; "
            f"{len(clean.problems)} problems; noisy test copy: {noisy is not None}; "
            f"augmentation copies: {len(augment)}")
    reference = str(fparams.get("spknorm_reference", "own"))
    if reference not in ("own", "clean"):
        raise ConfigError("features.params.spknorm_reference: 'own' (each condition's own "
                          f"statistics) or 'clean' (the speaker's clean clips), got {reference!r}")
    index = {c: i for i, c in enumerate(classes)}
    return AVData(list(records), list(classes), np.array([index[r.label] for r in records]),
                  np.array([r.speaker or r.id for r in records], dtype=object), clean, noisy,
                  augment, {r.id: i for i, r in enumerate(records)}, reference)


# --------------------------------------------------------------------------------------------
# Models: each runner returns fit_predict(train, val, test, seed) -> (proba, info) for run_folds

#: model kinds a ``compare`` entry may name, and whether their result depends on the seed
KINDS = {"svm": False, "linear": False, "decision_average": False, "mlp": True, "mfa": True,
         "intermediate": True, "attention": True, "ensemble": True}


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


def _spec_blocks(data: AVData, spec: Mapping[str, Any]) -> list[str]:
    mods = spec.get("modalities") or data.modalities
    unknown = [m for m in mods if m not in data.modalities]
    if unknown:
        raise ConfigError(f"model uses unknown modalities {unknown}; configured: "
                          f"{data.modalities}")
    return list(spec.get("blocks") or [b for m in mods for b in data.clean.blocks[m]])


def _classical_runner(kind: str, data: AVData, setting: str, spec: Mapping[str, Any],
                      tcfg: Any) -> Any:
    """RBF-SVM (``svm``) or logistic regression (``linear``) on the concatenated blocks,
    fitted on the whole training fold (C chosen by speaker-grouped inner CV)."""
    from ..fusion.baselines import fit_logistic, fit_svm

    blocks = _spec_blocks(data, spec)

    def fit_predict(train: list[Record], val: list[Record], test: list[Record], seed: int):
        tr, te = data.rows(list(train) + list(val)), data.rows(test)
        view = data.view(setting, tr)
        X = _stack_blocks(view["clean"], data.clean.slices, blocks,
                          balance=bool(spec.get("balance_blocks", False)),
                          scale=spec.get("block_scale"))
        groups = list(data.speakers[tr])
        Xfit, yfit = X[tr], data.y[tr]
        if spec.get("augment") and "audio" in view["variants"]:
            # multi-condition training: one noisy-audio copy of each training clip (one of
            # the augmentation SNRs at random), as the attention fusion sees in training
            rng = np.random.default_rng(seed)
            V = view["variants"]["audio"]
            which = rng.integers(len(V), size=len(tr))
            noisy = {m: x[tr] for m, x in view["clean"].items()}
            noisy["audio"] = V[which, tr]
            Xn = _stack_blocks(noisy, data.clean.slices, blocks,
                               balance=bool(spec.get("balance_blocks", False)),
                               scale=spec.get("block_scale"))
            Xfit, yfit = np.concatenate([Xfit, Xn]), np.concatenate([yfit, yfit])
            groups = groups + groups
        if kind == "svm":
            model = fit_svm(Xfit, yfit, groups=groups, C=spec.get("C", 1.0),
                            gamma=spec.get("gamma", "scale"),
                            probability=bool(spec.get("probability", False)), seed=seed)
        else:
            model = fit_logistic(Xfit, yfit, groups=groups, C=spec.get("C", 0.01),
                                 seed=seed)
        proba = model.predict_proba(X[te], n_classes=len(data.classes))
        info: dict[str, Any] = {"params": model.params}
        if "noisy" in view and any(block_modality(b) == "audio" for b in blocks):
            # the same model on the test clips' noisy-audio features (for ensembles' conditions)
            Xn = _stack_blocks({**view["clean"], **{m: x for m, x in view["noisy"].items()
                                                    if m == "audio"}}, data.clean.slices,
                               blocks, balance=bool(spec.get("balance_blocks", False)),
                               scale=spec.get("block_scale"))
            info["conditions"] = {"clean": {"proba": proba, "weights": None},
                                  "audio_noise": {"proba": model.predict_proba(
                                      Xn[te], n_classes=len(data.classes)), "weights": None}}
        return proba, info

    return fit_predict


def _decision_average_runner(data: AVData, setting: str, spec: Mapping[str, Any],
                             tcfg: Any) -> Any:
    from ..fusion.baselines import decision_average, fit_svm

    mods = spec.get("modalities") or data.modalities

    def fit_predict(train: list[Record], val: list[Record], test: list[Record], seed: int):
        tr, te = data.rows(list(train) + list(val)), data.rows(test)
        X = data.view(setting, tr)["clean"]
        probas, present, params = [], [], {}
        for m in mods:
            ok = data.clean.present[m]
            rows = tr[ok[tr]]
            svm = fit_svm(X[m][rows], data.y[rows], groups=list(data.speakers[rows]),
                          C=spec.get("C", 1.0), gamma=spec.get("gamma", "scale"),
                          probability=True, seed=seed)
            probas.append(svm.predict_proba(X[m][te], n_classes=len(data.classes)))
            present.append(ok[te])
            params[m] = svm.params
        return decision_average(probas, present=present), {"params": params}

    return fit_predict


def _nn_train_kwargs(tcfg: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    t = {"max_epochs": tcfg.max_epochs, "patience": tcfg.patience,
         "batch_size": tcfg.batch_size, "lr": tcfg.lr, "weight_decay": tcfg.weight_decay,
         "class_weighted": tcfg.class_weighted, "num_threads": tcfg.num_threads or 1}
    t.update({k: spec[k] for k in ("max_epochs", "patience", "batch_size", "lr", "weight_decay",
                                   "l2", "early_stopping") if k in spec})
    return t


_NET_KEYS = {
    "attention": ("dim", "hidden", "head_hidden", "dropout", "input_dropout", "attn_hidden",
                  "aux_weight", "fuse", "norm"),  # (n_ensemble: nets per fold, averaged)
    "mlp": ("dim", "hidden", "head_hidden", "dropout", "input_dropout", "attn_hidden",
            "aux_weight", "norm"),
    "intermediate": ("enc_hidden", "hidden", "dropout", "input_dropout", "aux_weights"),
}


def build_net(kind: str, input_dims: Mapping[str, int], n_classes: int,
              params: Mapping[str, Any]) -> Any:
    """The fusion network of ``kind`` (``attention``/``mlp``: :class:`AttentionFusion`;
    ``intermediate``: :class:`IntermediateFusion`) from a model-params mapping."""
    from ..fusion import AttentionFusion, IntermediateFusion

    kw = {k: params[k] for k in _NET_KEYS[kind] if k in params}
    if kind == "intermediate":
        if "hidden" in kw:
            kw["hidden"] = tuple(kw["hidden"]) if isinstance(kw["hidden"], (list, tuple)) \
                else (int(kw["hidden"]),)
        return IntermediateFusion(input_dims=input_dims, n_classes=n_classes, **kw)
    return AttentionFusion(input_dims=input_dims, n_classes=n_classes, **kw)


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


def _nn_runner(kind: str, data: AVData, setting: str, spec: Mapping[str, Any], tcfg: Any,
               *, conditions: bool = False) -> Any:
    from ..fusion import FusionDataset, predict_net, train_net

    mods = list(spec.get("modalities") or data.modalities)
    _spec_blocks(data, spec)
    cols = [data.modalities.index(m) for m in mods]
    augment_p = float(spec.get("augment_p", 0.0))

    tkw = _nn_train_kwargs(tcfg, spec)

    def fit_predict(train: list[Record], val: list[Record], test: list[Record], seed: int):
        tr, va, te = data.rows(train), data.rows(val), data.rows(test)
        view = data.view(setting, np.concatenate([tr, va]))
        if not tkw.get("early_stopping", True):  # nothing is chosen on val: train on it too
            tr = np.concatenate([tr, va])
        X = {m: view["clean"][m] for m in mods}
        mask = data.mask()[:, cols]
        keep_tr, keep_va = mask[tr].any(1), mask[va].any(1)
        tr, va = tr[keep_tr], va[keep_va]
        variants = {m: v[:, tr] for m, v in view["variants"].items() if m in mods} \
            if augment_p > 0 else None
        ds_tr = FusionDataset({m: X[m][tr] for m in mods}, mask[tr], data.y[tr],
                              variants=variants, variant_p=augment_p,
                              modality_dropout=float(spec.get("modality_dropout", 0.0)))
        ds_va = FusionDataset({m: X[m][va] for m in mods}, mask[va], data.y[va])
        cond = _condition_inputs(data, view, mods, te) if conditions else \
            {"clean": ({m: X[m][te] for m in mods}, mask[te])}
        # n_ensemble > 1: a seed ensemble (nets seed, seed + 1000, ...; outputs averaged)
        runs = []
        for k in range(max(1, int(spec.get("n_ensemble", 1)))):
            net = build_net(kind, {m: X[m].shape[1] for m in mods}, len(data.classes), spec)
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


def _mfa_runner(data: AVData, setting: str, spec: Mapping[str, Any], tcfg: Any) -> Any:
    from ..fusion import FusionDataset, MFAProjector, VectorNet, predict_net, train_net
    from ..fusion.baselines import fit_svm

    mods = list(spec.get("modalities") or data.modalities)
    classifier = spec.get("classifier", "fercnn")

    def fit_predict(train: list[Record], val: list[Record], test: list[Record], seed: int):
        tr, va, te = data.rows(train), data.rows(val), data.rows(test)
        X = data.view(setting, np.concatenate([tr, va]))["clean"]
        proj = MFAProjector(size=int(spec.get("size", 32)),
                            n_components=int(spec.get("n_components", 32)),
                            k1=int(spec.get("k1", 5)), k2=int(spec.get("k2", 20)),
                            reg=float(spec.get("reg", 1e-3)))
        proj.fit({m: X[m][tr] for m in mods}, data.y[tr])   # training part only
        Z = proj.transform({m: X[m] for m in mods})
        info: dict[str, Any] = {"classifier": classifier}
        if classifier == "svm":
            both = np.concatenate([tr, va])
            svm = fit_svm(Z[both], data.y[both], groups=list(data.speakers[both]),
                          C=spec.get("C", 1.0), seed=seed)
            return svm.predict_proba(Z[te], n_classes=len(data.classes)), info
        from ..models import build_model

        net = VectorNet(build_model(classifier, n_classes=len(data.classes), dim=Z.shape[1],
                                    **dict(spec.get("classifier_params") or {})))
        ones = np.ones((len(Z), 1), bool)
        info.update(train_net(net, FusionDataset({"z": Z[tr]}, ones[tr], data.y[tr]),
                              FusionDataset({"z": Z[va]}, ones[va], data.y[va]),
                              n_classes=len(data.classes), seed=seed,
                              **_nn_train_kwargs(tcfg, spec)))
        return predict_net(net, {"z": Z[te]}, ones[te])["proba"], info

    return fit_predict


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


def _seed_average(outs: Sequence[Any]) -> list[Any]:
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
        members = [_seed_average(outs) for outs in members]
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
    avg = {n: {o.fold: o for o in _seed_average(outs)} for n, outs in candidates.items()}
    names = list(avg)
    folds = sorted(avg[names[0]])

    def score(counts: Mapping[str, int]) -> float:
        uas = []
        for f in folds:
            p = sum(c * avg[n][f].proba for n, c in counts.items() if c)
            y = avg[names[0]][f].y_true
            pred = np.asarray(p).argmax(1)
            uas.append(np.mean([np.mean(pred[y == k] == k) for k in range(n_classes)
                                if np.any(y == k)]))
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


def make_runner(kind: str, data: AVData, setting: str, spec: Mapping[str, Any],
                tcfg: Any) -> Any:
    """The ``fit_predict`` of one model kind (see :data:`KINDS`) in one setting."""
    if kind in ("svm", "linear"):
        return _classical_runner(kind, data, setting, spec, tcfg)
    if kind == "decision_average":
        return _decision_average_runner(data, setting, spec, tcfg)
    if kind == "mfa":
        return _mfa_runner(data, setting, spec, tcfg)
    if kind in ("mlp", "intermediate", "attention"):
        return _nn_runner(kind, data, setting, spec, tcfg, conditions=kind == "attention")
    raise ConfigError(f"unknown fusion model kind {kind!r}; known: {', '.join(KINDS)}")


# --------------------------------------------------------------------------------------------
# The benchmark suite

#: the issue's reference figures (RBF-SVM, EmoBox folds), for the comparison in the notes
REFERENCE_UA = {"svm_ref_face": (0.5638, 0.7533), "svm_ref_audio": (0.4896, 0.6178),
                "svm_ref_early": (0.6979, 0.8535)}
_SUMMARY_KEYS = ("ua", "wa", "macro_f1")


def _quick_records(records: Sequence[Record], n_speakers: int = 4) -> list[Record]:
    """One clip per (speaker, class) for the first ``n_speakers`` speakers (smoke runs)."""
    speakers = sorted({r.speaker for r in records if r.speaker})[:n_speakers]
    seen, out = set(), []
    for r in records:
        if r.speaker in speakers and (r.speaker, r.label) not in seen:
            seen.add((r.speaker, r.label))
            out.append(r)
    return out


def _compare_specs(cfg: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    params = dict(cfg.model.params)
    compare = params.pop("compare", None) or {}
    specs = {}
    for name, spec in compare.items():
        spec = dict(spec or {})
        kind = spec.pop("kind", None)
        if kind not in KINDS:
            raise ConfigError(f"model.params.compare.{name}.kind: expected one of "
                              f"{', '.join(KINDS)}, got {kind!r}")
        specs[name] = {"kind": kind, **spec}
    return params, specs


def _model_seeds(spec: Mapping[str, Any], seeds: Sequence[int]) -> list[int]:
    """All seeds for a stochastic model (at most ``spec["n_seeds"]``), the first for a
    deterministic one."""
    if not KINDS[spec["kind"]]:
        return list(seeds[:1])
    return list(seeds[: int(spec.get("n_seeds", len(seeds)))])


def _condition_outputs(outs: Sequence[Any], condition: str) -> list[Any]:
    from ._common import FoldOutput

    return [FoldOutput(o.fold, o.seed, o.ids, o.y_true, o.info["conditions"][condition]["proba"])
            for o in outs if condition in o.info.get("conditions", {})]


def _weights_summary(outs: Sequence[Any], condition: str, modalities: Sequence[str],
                     classes: Sequence[str]) -> dict[str, Any] | None:
    """Mean attention weight per modality over all test items (folds x seeds), and by class."""
    ws, ys = [], []
    for o in outs:
        c = o.info.get("conditions", {}).get(condition)
        if c is not None and c.get("weights") is not None:
            ws.append(np.asarray(c["weights"]))
            ys.append(o.y_true)
    if not ws:
        return None
    W, Y = np.concatenate(ws), np.concatenate(ys)
    by_class = {cl: {m: float(W[Y == i, j].mean()) for j, m in enumerate(modalities)}
                for i, cl in enumerate(classes) if (Y == i).any()}
    per_fold: dict[str, list[float]] = {m: [] for m in modalities}
    for fold in sorted({o.fold for o in outs}):
        fw = np.concatenate([np.asarray(o.info["conditions"][condition]["weights"])
                             for o in outs if o.fold == fold
                             and o.info["conditions"].get(condition, {}).get("weights")
                             is not None])
        for j, m in enumerate(modalities):
            per_fold[m].append(float(fw[:, j].mean()))
    return {"mean": {m: float(W[:, j].mean()) for j, m in enumerate(modalities)},
            "per_fold": per_fold, "by_class": by_class}


def _recall_per_class(agg: Mapping[str, Any]) -> dict[str, float]:
    return {c: d["recall"] for c, d in agg["per_class"].items()}


def run_av_suite(cfg: Any, *, quick: bool = False, results_dir: str | Path | None = None,
                 log: Any = print) -> dict[str, Any]:
    """Run every model of ``cfg`` (the attention fusion and ``model.params.compare``) in every
    setting on the protocol's folds; return the result dict (PNG plots written next to the
    results)."""
    from .. import protocols
    from ._common import Timer, class_list, load_records, make_result, make_splits, run_folds
    from ._common import summarise_outputs

    fparams = _feature_params(cfg)
    main_params, specs = _compare_specs(cfg)
    settings = list(fparams.get("settings") or SETTINGS)
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise ConfigError(f"features.params.settings: unknown {bad}; known: {list(SETTINGS)}")
    tcfg = cfg.train.model_copy()
    with Timer() as timer:
        _, records = load_records(cfg)
        records = [r for r in records if r.audio or r.au]
        classes = class_list(records, cfg.data.labels)
        if quick:  # 6 actors: 3 per training fold leave room for validation actors
            records = _quick_records(records, n_speakers=6)
            splits = protocols.speaker_kfold(records, k=2, seed=cfg.protocol.seed)
            tcfg.max_epochs, tcfg.patience = 2, 1
            seeds = list(cfg.train.seeds[:1])
            protocol = "speaker_kfold (k=2, quick subset)"
        else:
            splits = make_splits(cfg, records)
            seeds = list(cfg.train.seeds)
            protocol = cfg.protocol.kind
        data = load_av_data(records, classes, fparams, with_augment=not quick, log=log)
        models = {**{n: s for n, s in specs.items() if s["kind"] != "ensemble"},
                  "attention": {"kind": "attention", **main_params},
                  **{n: s for n, s in specs.items() if s["kind"] == "ensemble"}}
        if quick:  # smoke run: one net per fold
            models = {n: {k: v for k, v in s.items() if k != "n_ensemble"}
                      for n, s in models.items()}
        outputs: dict[str, dict[str, list[Any]]] = {}
        val_outputs: dict[str, dict[str, list[Any]]] = {}   # validation passes (selection)
        seconds: dict[str, float] = {}
        for name, spec in models.items():
            if spec["kind"] == "ensemble":
                missing = [m for m in spec.get("members", []) if m not in outputs]
                if missing or not spec.get("members"):
                    raise ConfigError(f"model.params.compare.{name}.members: list models run "
                                      f"before it (unknown: {missing})")
                for setting in settings:
                    members, weights = list(spec["members"]), spec.get("weights")
                    if weights == "validation":
                        members, weights = _validation_choice(
                            name, spec, setting, models, data, records, classes, splits, seeds,
                            tcfg, val_outputs, log)
                    outputs.setdefault(name, {})[setting] = ensemble_outputs(
                        [outputs[m][setting] for m in members],
                        weights=weights,
                        member_modalities=[list(models[m].get("modalities") or data.modalities)
                                           for m in members],
                        modalities=data.modalities,
                        subset_experts=bool(spec.get("subset_experts", False)),
                        average_seeds=bool(spec.get("average_seeds", False)))
                continue
            for setting in settings:
                if log:
                    log(f"[{name} / {setting}]")
                t0 = Timer().__enter__()
                fp = make_runner(spec["kind"], data, setting, spec, tcfg)
                outputs.setdefault(name, {})[setting] = run_folds(
                    splits, records, classes, fp, seeds=_model_seeds(spec, seeds),
                    val_fraction=cfg.train.val_fraction, log=log)
                seconds[f"{name}/{setting}"] = round(t0.elapsed, 1)
        main = outputs["attention"]
        parts = {SETTINGS[s]: main[s] for s in settings}
        result_seconds = timer.elapsed
    extra = _suite_extras(cfg, data, classes, outputs, models, settings, seconds, seeds,
                          summarise_outputs)
    if quick:
        cfg = cfg.model_copy(deep=True)
        cfg.train.seeds = seeds
    result = make_result(cfg, protocol=protocol, classes=classes, parts=parts,
                         started=timer.started, duration_s=result_seconds,
                         primary=SETTINGS[settings[0]], **extra["result"])
    for name, m in extra["metrics"].items():
        result["metrics"][name] = m
    suite_name = f"{cfg.suite}-quick" if quick else cfg.suite
    out_dir = Path(results_dir) if results_dir is not None else default_results_dir()
    result.update(_suite_plots(result, out_dir, suite_name, data.modalities))
    result["notes"] = _notes(result, data.modalities)
    return result


def _validation_choice(name: str, spec: dict[str, Any], setting: str,
                       models: Mapping[str, Any], data: AVData, records: Sequence[Record],
                       classes: Sequence[str], splits: Sequence[Any], seeds: Sequence[int],
                       tcfg: Any, val_outputs: dict[str, dict[str, list[Any]]],
                       log: Any) -> tuple[list[str], list[float]]:
    """Members and weights of an ensemble with ``weights: validation`` in one setting: its
    candidate ``members`` are run once more on validation actors held out of each training
    fold (first seed only), :func:`select_ensemble` picks them, and the ``experts`` (models
    that vote only when a modality is missing) join with ``factor`` x the selected total.
    The choice is recorded in ``spec["selection"]``."""
    from ._common import run_folds

    if not spec.get("subset_experts") and spec.get("experts"):
        raise ConfigError(f"model.params.compare.{name}.experts needs subset_experts: true")
    vsplits = validation_splits(splits, records, fraction=float(spec.get("val_fraction", 0.2)))
    for m in spec["members"]:
        if setting in val_outputs.get(m, {}):
            continue
        if log:
            log(f"[{m} / {setting} / validation actors, for {name}]")
        fp = make_runner(models[m]["kind"], data, setting, models[m], tcfg)
        val_outputs.setdefault(m, {})[setting] = run_folds(
            vsplits, records, classes, fp, seeds=_model_seeds(models[m], seeds)[:1],
            val_fraction=tcfg.val_fraction, log=log)
    sel = select_ensemble({m: val_outputs[m][setting] for m in spec["members"]}, len(classes),
                          max_steps=int(spec.get("max_steps", 12)))
    chosen = list(sel["weights"])
    weights = [float(sel["weights"][m]) for m in chosen]
    total = sum(weights)
    experts = dict(spec.get("experts") or {})
    for m, factor in experts.items():
        if m not in models:
            raise ConfigError(f"model.params.compare.{name}.experts: unknown model {m!r}")
        chosen.append(m)
        weights.append(float(factor) * total)
    spec.setdefault("selection", {})[setting] = {
        "weights": dict(zip(chosen, [round(w, 3) for w in weights])),
        "val_ua": round(sel["val_ua"], 5), "history": sel["history"],
        "candidates": list(spec["members"]), "experts": experts,
        "val_fraction": float(spec.get("val_fraction", 0.2))}
    if log:
        log(f"{name} ({setting}): validation UA {100 * sel['val_ua']:.2f} with "
            + ", ".join(f"{m} x{w:g}" for m, w in zip(chosen, weights)))
    return chosen, weights


def _suite_extras(cfg: Any, data: AVData, classes: Sequence[str],
                  outputs: Mapping[str, Mapping[str, list[Any]]], models: Mapping[str, Any],
                  settings: Sequence[str], seconds: Mapping[str, float], seeds: Sequence[int],
                  summarise: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    table: dict[str, Any] = {}
    for name, per_setting in outputs.items():
        spec = models[name]
        entry: dict[str, Any] = {"kind": spec["kind"],
                                 "modalities": list(spec.get("modalities") or data.modalities),
                                 "seeds": ("averaged: " if spec.get("average_seeds") else "") + str(_model_seeds(spec, seeds)) if spec["kind"] == "ensemble" else _model_seeds(spec, seeds)}
        if spec.get("blocks"):
            entry["blocks"] = list(spec["blocks"])
        if spec.get("selection"):
            entry["selection"] = spec["selection"]
        for setting, outs in per_setting.items():
            suffix = SETTINGS[setting]
            agg = summarise(outs, classes, suffix=suffix)
            entry[setting] = {"metrics": {k: agg["metrics"][k + suffix] for k in _SUMMARY_KEYS},
                              "recall_per_class": _recall_per_class(agg),
                              "confusion": agg["confusion"],
                              "seconds": seconds.get(f"{name}/{setting}"),
                              "chosen": [o.info.get("params") for o in outs
                                         if o.info.get("params") is not None][:6] or None}
            if name != "attention":
                metrics[f"{name}.ua{suffix}"] = agg["metrics"]["ua" + suffix]
        table[name] = entry
    # the attention fusion (and each ensemble) under each test condition
    conditions: dict[str, Any] = {}
    ens_conditions: dict[str, Any] = {}
    for name in ["attention"] + [n for n in outputs if models[n]["kind"] == "ensemble"]:
        for setting in settings:
            suffix = SETTINGS[setting]
            outs = outputs[name][setting]
            for cond in CONDITIONS:
                couts = _condition_outputs(outs, cond)
                if not couts:
                    continue
                agg = summarise(couts, classes, suffix=suffix)
                c = {"metrics": {k: agg["metrics"][k + suffix] for k in _SUMMARY_KEYS},
                     "recall_per_class": _recall_per_class(agg),
                     "weights": _weights_summary(outs, cond, data.modalities, classes)}
                if name == "attention":
                    conditions.setdefault(setting, {})[cond] = c
                else:
                    ens_conditions.setdefault(name, {}).setdefault(setting, {})[cond] = c
                if cond != "clean":
                    key = f"ua_{cond}{suffix}" if name == "attention" else \
                        f"{name}.ua_{cond}{suffix}"
                    metrics[key] = agg["metrics"]["ua" + suffix]
    targets = _targets(table, conditions, settings, ens_conditions)
    return {"metrics": metrics,
            "result": {"models": table, "conditions": conditions,
                       "ensemble_conditions": ens_conditions, "targets": targets,
                       "settings": {s: SETTING_NOTES[s] for s in settings},
                       "features": {m: b for m, b in data.clean.blocks.items()},
                       "feature_problems": data.clean.problems[:50],
                       "config": cfg.model_dump(mode="json")}}


def _best_unimodal(table: Mapping[str, Any], modality: str, setting: str) -> tuple[str, float]:
    best = ("", -1.0)
    for name, e in table.items():
        if e["modalities"] == [modality] and setting in e:
            ua = e[setting]["metrics"]["ua"]["mean"]
            if ua > best[1]:
                best = (name, ua)
    return best


def _targets(table: Mapping[str, Any], conditions: Mapping[str, Any],
             settings: Sequence[str],
             ens_conditions: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    out = _condition_targets("attention", table, conditions, settings, [])
    for name, cd in (ens_conditions or {}).items():
        out = _condition_targets(name, table, cd, settings, out, attention=conditions)
    return _fused_targets(table, settings) + out


def _condition_targets(name: str, table: Mapping[str, Any], conditions: Mapping[str, Any],
                       settings: Sequence[str], out: list[dict[str, Any]],
                       attention: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Missing-modality and noisy-audio targets of one fusion model (``attention``: the
    attention fusion's conditions, whose weights an ensemble reports)."""
    mods = table["attention"]["modalities"]
    for setting in settings:
        cond = conditions.get(setting, {})
        for m in mods:
            others = [o for o in mods if o != m]
            key = f"{m}_masked"
            if key not in cond or len(others) != 1:
                continue
            rest = others[0]
            own_name, own = _best_unimodal(table, rest, setting)
            ua = cond[key]["metrics"]["ua"]["mean"]
            out.append({"target": f"{name}: {m} removed ({setting}): UA >= {rest}'s own model "
                                  f"- 2 (aim >= own model)",
                        "measured": f"UA {100 * ua:.2f}; {own_name} {100 * own:.2f}",
                        "met": bool(ua >= own - 0.02), "aim_met": bool(ua >= own)})
        wsrc = (attention or conditions).get(setting, {})
        if "audio_noise" in cond and "clean" in wsrc and "audio_noise" in wsrc \
                and "face" in mods and wsrc["audio_noise"].get("weights"):
            wn = wsrc["audio_noise"]["weights"]["mean"]
            wc = wsrc["clean"]["weights"]["mean"]
            ua = cond["audio_noise"]["metrics"]["ua"]["mean"]
            face_name, face = _best_unimodal(table, "face", setting)
            via = "" if attention is None else " (weights of its attention member)"
            out.append({"target": f"{name}: audio at 0 dB SNR ({setting}): attention moves to "
                                  f"the face (aim: fused UA >= face-only UA)",
                        "measured": f"face weight {wc['face']:.3f} clean -> {wn['face']:.3f} "
                                    f"noisy{via}; UA {100 * ua:.2f} vs {face_name} "
                                    f"{100 * face:.2f}",
                        "met": bool(wn["face"] > wc["face"]), "aim_met": bool(ua >= face)})
    return out


def _fused_targets(table: Mapping[str, Any], settings: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    att = table["attention"]
    mods = att["modalities"]
    fused = ["attention"] + [n for n, e in table.items() if e["kind"] == "ensemble"]
    for name in fused:
        e = table[name]
        if "inductive" in settings:
            ua = e["inductive"]["metrics"]["ua"]["mean"]
            bests = {m: _best_unimodal(table, m, "inductive") for m in mods}
            best_name, best = max(bests.values(), key=lambda b: b[1])
            out.append({"target": f"{name}: inductive UA >= 73 and >= best unimodal + 5 "
                                  f"(aim >= 80)",
                        "measured": f"UA {100 * ua:.2f}; best unimodal {best_name} "
                                    f"{100 * best:.2f}",
                        "met": bool(ua >= 0.73 and ua >= best + 0.05),
                        "aim_met": bool(ua >= 0.80)})
        if "spknorm" in settings:
            ua = e["spknorm"]["metrics"]["ua"]["mean"]
            out.append({"target": f"{name}: speaker-normalised UA >= 88 (aim >= 92)",
                        "measured": f"UA {100 * ua:.2f}", "met": bool(ua >= 0.88),
                        "aim_met": bool(ua >= 0.92)})
    return out


# --------------------------------------------------------------------------------------------
# Plots and the readable notes


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _suite_plots(result: Mapping[str, Any], out_dir: Path, suite: str,
                 modalities: Sequence[str]) -> dict[str, Any]:
    """Confusion matrices, UA per model and attention weights; returns the result keys."""
    from ..evaluate.plots import plot_confusion, save_figure

    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = result["classes"]
    models = result["models"]
    keys: dict[str, Any] = {}
    keys["confusion_png"] = str(plot_confusion(
        result["confusion"], classes, out_dir / f"{suite}_confusion.png",
        title=f"{suite}: attention fusion ({next(iter(result['settings']))})"))
    plots = [keys["confusion_png"]]
    if "spknorm" in models["attention"]:
        keys["confusion_png_spknorm"] = str(plot_confusion(
            models["attention"]["spknorm"]["confusion"], classes,
            out_dir / f"{suite}_confusion_spknorm.png",
            title=f"{suite}: attention fusion (spknorm)"))
        plots.append(keys["confusion_png_spknorm"])
    # UA per model and setting
    names = list(models)
    settings = [s for s in SETTINGS if any(s in models[n] for n in names)]
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(names)), 3.6))
    width = 0.8 / max(1, len(settings))
    for i, s in enumerate(settings):
        vals = [100 * models[n][s]["metrics"]["ua"]["mean"] if s in models[n] else 0 for n in names]
        errs = [100 * models[n][s]["metrics"]["ua"]["std"] if s in models[n] else 0 for n in names]
        ax.bar(np.arange(len(names)) + i * width, vals, width, yerr=errs, label=s, capsize=2)
    ax.set_xticks(np.arange(len(names)) + width * (len(settings) - 1) / 2, names, rotation=45,
                  ha="right")
    ax.set_ylabel("UA (%)")
    ax.set_title(f"{suite}: UA per model (mean ± std over folds)")
    ax.legend()
    path = save_figure(fig, out_dir / f"{suite}_models.png")
    plots.append(str(path))
    # attention weights per condition and by class
    conds = result.get("conditions", {})
    if conds:
        fig, axes = plt.subplots(len(conds), 2, figsize=(11, 3.2 * len(conds)), squeeze=False)
        for row, (setting, cd) in enumerate(conds.items()):
            names_c = [c for c, v in cd.items() if v.get("weights")]
            bottom = np.zeros(len(names_c))
            for m in modalities:
                vals = np.array([cd[c]["weights"]["mean"][m] for c in names_c])
                axes[row, 0].bar(names_c, vals, bottom=bottom, label=m)
                bottom += vals
            axes[row, 0].set_title(f"mean attention weight per condition ({setting})")
            axes[row, 0].set_ylim(0, 1)
            axes[row, 0].legend(fontsize=8)
            axes[row, 0].tick_params(axis="x", rotation=20)
            for cond, style in (("clean", "-o"), ("audio_noise", "--s")):
                if cond in cd and cd[cond].get("weights"):
                    bc = cd[cond]["weights"]["by_class"]
                    for m in modalities[1:] if len(modalities) > 1 else modalities:
                        axes[row, 1].plot(list(bc), [bc[c][m] for c in bc], style,
                                          label=f"{m} weight, {cond}")
            axes[row, 1].set_title(f"attention weight by class ({setting})")
            axes[row, 1].set_ylim(0, 1)
            axes[row, 1].legend(fontsize=8)
            axes[row, 1].tick_params(axis="x", rotation=30)
        path = save_figure(fig, out_dir / f"{suite}_attention.png")
        plots.append(str(path))
    return {**keys, "plots": plots}


def _pm(m: Mapping[str, Any]) -> str:
    return f"{100 * m['mean']:.2f} ± {100 * m['std']:.2f}"


def _notes(result: Mapping[str, Any], modalities: Sequence[str]) -> str:
    """Markdown rendered into the result's .md: settings, the model table, conditions and
    attention weights, the targets."""
    models, conds = result["models"], result.get("conditions", {})
    settings = list(result["settings"])
    lines = ["## Settings", ""] + [f"- {t}" for t in result["settings"].values()]
    lines += ["", "Features (clip level): " + "; ".join(
        f"{m} = {' + '.join(b)}" for m, b in result["features"].items()) + ". Hyper-parameters "
        "are fixed in the config (chosen on validation actors inside the training folds) or "
        "chosen per fold by speaker-grouped inner cross-validation on the training fold "
        "(SVM C); early stopping uses validation actors of the training fold only.", ""]
    head = "| model | kind | modalities | " + " | ".join(
        f"UA {s} | WA {s} | F1 {s}" for s in settings) + " |"
    lines += ["## Models (%, mean ± std over folds)", "", head,
              "|" + "---|" * (3 + 3 * len(settings))]
    for name, e in models.items():
        cells = []
        for s in settings:
            if s in e:
                mm = e[s]["metrics"]
                cells += [_pm(mm["ua"]), _pm(mm["wa"]), _pm(mm["macro_f1"])]
            else:
                cells += ["–"] * 3
        lines.append(f"| {name} | {e['kind']} | {'+'.join(e['modalities'])} | "
                     + " | ".join(cells) + " |")
    refs = [(n, r) for n, r in REFERENCE_UA.items() if n in models]
    if refs:
        lines += ["", "Reference RBF-SVMs against the issue's quoted figures (UA %): " + "; ".join(
            f"{n} {100 * models[n]['inductive']['metrics']['ua']['mean']:.2f} (quoted "
            f"{100 * r[0]:.2f}) / spknorm "
            + (f"{100 * models[n]['spknorm']['metrics']['ua']['mean']:.2f}"
               if "spknorm" in models[n] else "–") + f" (quoted {100 * r[1]:.2f})"
            for n, r in refs) + "."]
    lines += ["", "## Per fold (UA %)", "", "| model | setting | " + " | ".join(
        f"fold {i + 1}" for i in range(len(models['attention'][settings[0]]['metrics']['ua']
                                           ['per_fold']))) + " |",
        "|---|---|" + "---|" * len(models['attention'][settings[0]]['metrics']['ua']['per_fold'])]
    for name, e in models.items():
        for s in settings:
            if s in e:
                lines.append(f"| {name} | {s} | " + " | ".join(
                    f"{100 * v:.2f}" for v in e[s]["metrics"]["ua"]["per_fold"]) + " |")
    classes = result["classes"]
    lines += ["", "## Recall per class (%, pooled over folds)", "",
              "| model | setting | " + " | ".join(classes) + " |",
              "|---|---|" + "---|" * len(classes)]
    for name, e in models.items():
        for s in settings:
            if s in e:
                lines.append(f"| {name} | {s} | " + " | ".join(
                    f"{100 * e[s]['recall_per_class'][c]:.1f}" for c in classes) + " |")
    if conds:
        lines += ["", "## Attention fusion under test conditions", "",
                  "Conditions: `clean`; `<modality>_masked` (that modality removed at test time, "
                  "masked in the attention); `audio_noise` (audio features computed from the "
                  "clip mixed with white noise at the configured SNR, face intact; in the "
                  "speaker-normalised setting the noisy features are normalised with the "
                  "actor's own noisy clips, which removes part of the shift the noise causes).",
                  "",
                  "| setting | condition | UA | WA | " + " | ".join(
                      f"weight {m}" for m in modalities) + " |",
                  "|---|---|---|---|" + "---|" * len(modalities)]
        for s, cd in conds.items():
            for c, v in cd.items():
                w = v.get("weights") or {}
                lines.append(f"| {s} | {c} | {_pm(v['metrics']['ua'])} | "
                             f"{_pm(v['metrics']['wa'])} | " + " | ".join(
                                 f"{w['mean'][m]:.3f}" if w else "–" for m in modalities) + " |")
        for s, cd in conds.items():
            lines += ["", f"Mean attention weight of each modality by true class ({s}):", "",
                      "| condition | modality | " + " | ".join(classes) + " |",
                      "|---|---|" + "---|" * len(classes)]
            for c, v in cd.items():
                w = v.get("weights")
                if not w:
                    continue
                for m in modalities:
                    lines.append(f"| {c} | {m} | " + " | ".join(
                        f"{w['by_class'][cl][m]:.3f}" if cl in w["by_class"] else "–"
                        for cl in classes) + " |")
    ens = result.get("ensemble_conditions") or {}
    compare = ((result.get("config") or {}).get("model") or {}).get("params", {}).get(
        "compare") or {}
    for name, spec in compare.items():
        sel = (models.get(name) or {}).get("selection")
        if isinstance(spec, Mapping) and spec.get("kind") == "ensemble" and sel:
            lines += ["", f"**{name}**: members and weights chosen per setting on validation "
                      f"actors held out of each training fold ({100 * next(iter(sel.values()))['val_fraction']:.0f} % of its "
                      "actors; candidates refitted on the rest, first seed; greedy forward "
                      "selection with replacement by mean validation UA); the test folds were "
                      "not used. " + "; ".join(
                          f"{st}: " + ", ".join(f"{m} x{w:g}" for m, w in v["weights"].items())
                          + f" (validation UA {100 * v['val_ua']:.2f})" for st, v in sel.items())
                      + (f"; experts (vote only when a modality is missing, weight = factor x "
                         f"the selected total): {next(iter(sel.values()))['experts']}"
                         if next(iter(sel.values()))["experts"] else "")
                      + ("; each member averaged over its seeds first"
                         if spec.get("average_seeds") else "") + "."]
        elif isinstance(spec, Mapping) and spec.get("kind") == "ensemble":
            lines += ["", f"**{name}**: " + ", ".join(
                f"{m} x{w}" for m, w in zip(spec.get("members", []),
                                            spec.get("weights") or [1] * 99)) + (
                "; subset experts" if spec.get("subset_experts") else "") + (
                "; each member averaged over its seeds first" if spec.get("average_seeds")
                else "") + (f". {spec['note']}" if spec.get("note") else "")]
    if ens:
        lines += ["", "## Ensembles under test conditions", "",
                  "Members that need a removed modality drop out (weights renormalised over "
                  "the rest); under `audio_noise` every member sees the noisy-audio features. "
                  "The attention member's weights are in the table above.", "",
                  "| model | setting | condition | UA | WA | macro-F1 |", "|---|---|---|---|---|---|"]
        for name, per in ens.items():
            for s, cd in per.items():
                for c, v in cd.items():
                    lines.append(f"| {name} | {s} | {c} | {_pm(v['metrics']['ua'])} | "
                                 f"{_pm(v['metrics']['wa'])} | {_pm(v['metrics']['macro_f1'])} |")
    if result.get("targets"):
        lines += ["", "## Targets", "", "| target | measured | met | aim met |",
                  "|---|---|---|---|"]
        for t in result["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} | "
                         f"{'yes' if t['aim_met'] else 'no'} |")
    for p in result.get("plots", [])[1:]:
        lines += ["", f"![{Path(p).stem}]({Path(p).name})"]
    return "\n".join(lines)


from . import suite  # noqa: E402  (registration needs the functions above)


@suite("av-ravdess", modality="fusion",
       description="RAVDESS audio + OpenFace AUs, 8 classes, EmoBox folds: attention fusion vs "
                   "MFA, intermediate, early/decision fusion and unimodal baselines")
def av_ravdess(cfg: Any, *, quick: bool = False) -> dict[str, Any]:
    """The real audio-visual benchmark (``emofuse bench av-ravdess``)."""
    return run_av_suite(cfg, quick=quick)


# --------------------------------------------------------------------------------------------
# train / evaluate (``emofuse train`` and ``emofuse evaluate``)


def _save_late_fusion(cfg: Any, out_dir: Path) -> Path:
    """A ``late-fusion`` model folder: fixed modality weights from ``model.params.weights``
    over the labels in ``data.labels`` (nothing is fitted)."""
    from ..adapters import LateFusion

    weights = dict((cfg.model.params or {}).get("weights") or {})
    labels = list(cfg.data.labels or [])
    if not weights or not labels:
        raise ConfigError("model late_fusion needs model.params.weights ({modality: weight}) "
                          "and data.labels")
    note = str((cfg.model.params or {}).get("note", ""))
    return LateFusion.save(out_dir, weights, labels=labels,
                           data={"corpus": None, "note": note},
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
    from ..train.checkpoint import save_model
    from ._common import class_list, load_records

    if cfg.model.name == "late_fusion":
        return _save_late_fusion(cfg, Path(out_dir))
    fparams = _feature_params(cfg)
    params, _ = _compare_specs(cfg)
    if cfg.model.name != "attention_fusion":
        raise ConfigError(f"model.name: the fusion recipe trains 'attention_fusion', got "
                          f"{cfg.model.name!r}")
    _, records = load_records(cfg)
    records = [r for r in records if r.audio or r.au]
    classes = class_list(records, cfg.data.labels)
    if quick:
        records = _quick_records(records)
    data = load_av_data(records, classes, fparams, with_noise=False, with_augment=not quick)
    seed = cfg.train.seeds[0]
    _, val_ids = protocols.validation_split(records, fraction=cfg.train.val_fraction, seed=seed)
    held = set(val_ids)
    va = np.array([i for i, r in enumerate(records) if r.id in held], dtype=int)
    tr = np.array([i for i, r in enumerate(records) if r.id not in held], dtype=int)
    view = data.view("inductive", np.concatenate([tr, va]))
    mods = data.modalities
    X, mask = view["clean"], data.mask()
    aug_p = float(params.get("augment_p", 0.0))
    variants = {m: v[:, tr] for m, v in view["variants"].items()} if aug_p > 0 else None
    net = build_net("attention", {m: X[m].shape[1] for m in mods}, len(classes), params)
    tkw = _nn_train_kwargs(cfg.train, params)
    if quick:
        tkw.update(max_epochs=2, patience=1)
    info = train_net(net, FusionDataset({m: X[m][tr] for m in mods}, mask[tr], data.y[tr],
                                        variants=variants, variant_p=aug_p,
                                        modality_dropout=float(params.get("modality_dropout",
                                                                          0.0))),
                     FusionDataset({m: X[m][va] for m in mods}, mask[va], data.y[va]),
                     n_classes=len(classes), seed=seed, **tkw)
    proba = predict_net(net, {m: X[m][va] for m in mods}, mask[va])["proba"]
    val = classification_metrics(data.y[va], proba.argmax(1), classes=classes)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    for m, sc in view["scalers"].items():
        state[f"scaler.{m}.mean"] = torch.as_tensor(sc.mean_, dtype=torch.float32)
        state[f"scaler.{m}.scale"] = torch.as_tensor(sc.scale_, dtype=torch.float32)
    net_params = {k: v for k, v in params.items() if k in _NET_KEYS["attention"]}
    card = {
        "task": "fusion",
        "labels": list(classes),
        "features": {"name": cfg.features.name, "modalities": fparams["modalities"],
                     "block_params": fparams.get("block_params") or {},
                     "sr": int(fparams.get("sr", 16000)),
                     "normalisation": "inductive: z-scores with the training statistics "
                                      "stored in model.safetensors (scaler.<modality>.*)"},
        "model": {"name": "attention_fusion", "params": net_params,
                  "input_dims": {m: int(X[m].shape[1]) for m in mods}},
        "data": {"corpus": cfg.data.corpus, "items": len(records),
                 "speakers": len({r.speaker for r in records}), "quick": quick},
        "protocol": {"kind": "all records but the validation speakers, who are held out for "
                             "the validation figures" + (" and early stopping"
                                                         if tkw.get("early_stopping", True)
                                                         else ""),
                     "validation_speakers": sorted({records[i].speaker for i in va})},
        "metrics": {"val_ua": val["ua"], "val_wa": val["wa"], "val_macro_f1": val["macro_f1"],
                    "epochs": info["epochs"]},
    }
    return save_model(out_dir, state, card)


def load_fusion_model(model_dir: str | Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """``(net, scalers, card)`` of a model folder written by :func:`train`."""
    from ..fusion.normalise import Standardiser
    from ..train.checkpoint import load_model

    state, card = load_model(model_dir)
    spec = card.get("model") or {}
    if spec.get("name") != "attention_fusion" or "input_dims" not in spec:
        raise DataError(Path(model_dir) / "card.json", "not an attention-fusion model card "
                        "(model.name / model.input_dims missing)")
    net = build_net("attention", spec["input_dims"], len(card["labels"]), spec.get("params", {}))
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
    f = card["features"]
    data = modality_data(records, f["modalities"], block_params=f.get("block_params"),
                         sr=int(f.get("sr", 16000)), cache=cache)
    mask = data.mask()
    ok = mask.any(1)
    skipped = [{"id": r.id, "reason": "no usable modality (audio/face features missing or "
                "failed)"} for r, k in zip(records, ok) if not k]
    X = {m: scalers[m].transform(x, data.present[m])[ok] for m, x in data.X.items()}
    out = predict_net(net, X, mask[ok]) if ok.any() else {
        "proba": np.zeros((0, len(card["labels"]))), "weights": np.zeros((0, len(X)))}
    return {"ids": [r.id for r, k in zip(records, ok) if k], "proba": out["proba"],
            "weights": out["weights"], "modalities": list(X), "labels": card["labels"],
            "skipped": skipped + data.problems}


def evaluate(model_dir: str | Path, records: Sequence[Record], *, corpus: str) -> dict[str, Any]:
    """Metrics of a trained fusion model on ``records`` (labels it knows), with the mean
    attention weight per modality overall and by class."""
    from ..evaluate.metrics import classification_metrics, summarise
    from ..train.checkpoint import read_card

    labels = read_card(model_dir)["labels"]
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
