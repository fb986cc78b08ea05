"""Training pieces of the speech recipe: the member specification, in-memory audio and feature
data of a corpus, the Lightning module, and fitting one member of any kind on one fold.

A *member* is one model of a run (a config's model, or one entry of an ensemble's
``members``); :func:`fit_member` trains it on the training part of a fold, stops early (or
picks hyper-parameters) on the validation part drawn from the training fold, and returns a
:class:`~emofuse.speech.Member` plus its validation probabilities.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..corpora import Record
from ..errors import ConfigError, EmofuseError
from ..features.cache import FeatureCache
from ..models import build_model
from ..models.classical import CLASSICAL_MODELS, grid_search
from ..models.speech import VECTOR_MODELS, WAVEFORM_MODELS
from ..speech import Member, band_stats, vector_stats, window_bounds

__all__ = ["MemberSpec", "SpeechData", "Fitted", "fit_member", "member_proba", "as_output_norm",
           "raw_view", "SETTINGS"]


#: Settings and the metric suffix each is reported under.
SETTINGS = {"inductive": "", "spknorm": "_spknorm"}


@dataclass
class MemberSpec:
    """Everything needed to train one member.

    Attributes
    ----------
    name, params
        Registered model and its constructor parameters.
    feature, feature_params
        Vector feature (``vector``/``classical`` members): extractor name and parameters.
    crop_s
        Training crop length (waveform members).
    window_s
        Longest stretch scored at once at test time; longer audio is scored in windows.
    augment
        Waveform augmentation: ``copies`` (augmented copies of each training utterance, made
        once) and :class:`~emofuse.train.augment_audio.WaveAugment` fields; ``None``: off.
    spec_augment
        :class:`~emofuse.train.augment_audio.SpecAugment` parameters; ``None``: off.
    mixup
        Mixup's Beta parameter (0: off).
    grid
        Classical members: hyper-parameter grid searched by speaker-grouped CV on the
        training fold.
    n_models
        Networks trained with different seeds and averaged (a seed ensemble).
    refit
        Waveform/vector members: after early stopping, train again on training + validation
        data for the best number of epochs.
    spknorm
        How a network is speaker-normalised: ``input`` (trained on speaker-normalised mel
        bands or vectors) or ``output`` (the inductive network, reused; its class
        log-probabilities are standardised per speaker). Classical members: always ``input``.
    epochs
        Override of ``train.max_epochs`` for this member.
    speeds
        Classical members: speed-perturbation factors (e.g. ``[0.9, 1.1]``); each training
        utterance adds one feature vector per factor, extracted from its resampled waveform
        (tempo, pitch and formants scaled together: a simulated new speaker). In ``spknorm``,
        each (speaker, factor) pair is standardised by its own statistics, as a speaker of its
        own. Test utterances are never perturbed.
    settings
        The settings this member takes part in (default: all of the run's); an ensemble's
        weights are renormalised over the members of each setting.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    feature: str | None = None
    feature_params: dict[str, Any] = field(default_factory=dict)
    crop_s: float = 3.0
    window_s: float = 6.0
    augment: dict[str, Any] | None = None
    spec_augment: dict[str, Any] | None = None
    mixup: float = 0.0
    grid: dict[str, list[Any]] | None = None
    n_models: int = 1
    refit: bool = False
    epochs: int | None = None
    spknorm: str = "input"
    speeds: list[float] = field(default_factory=list)
    settings: list[str] | None = None

    _FIT_KEYS = ("crop_s", "window_s", "augment", "spec_augment", "mixup", "n_models", "refit",
                 "epochs", "spknorm", "speeds", "settings")

    def active(self, setting: str) -> bool:
        """Whether this member takes part in ``setting``."""
        return not self.settings or setting in self.settings

    @property
    def kind(self) -> str:
        if self.name in WAVEFORM_MODELS:
            return "waveform"
        if self.name in VECTOR_MODELS:
            return "vector"
        if self.name in CLASSICAL_MODELS:
            return "classical"
        raise ConfigError(f"model {self.name!r} is not a speech model; known: "
                          f"{', '.join(WAVEFORM_MODELS + VECTOR_MODELS + CLASSICAL_MODELS)}")

    @classmethod
    def parse(cls, entry: Mapping[str, Any], *, default_feature: str,
              default_feature_params: Mapping[str, Any], where: str) -> MemberSpec:
        """Build from a config mapping ``{name, params, features, fit, grid}``."""
        entry = dict(entry)
        unknown = sorted(set(entry) - {"name", "params", "features", "fit", "grid"})
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; allowed: name, params, "
                              "features, fit, grid")
        if "name" not in entry:
            raise ConfigError(f"{where}: a member needs a model name")
        fit = dict(entry.get("fit") or {})
        if bad := sorted(set(fit) - set(cls._FIT_KEYS)):
            raise ConfigError(f"{where}.fit: unknown keys {bad}; allowed: "
                              f"{', '.join(cls._FIT_KEYS)}")
        feats = entry.get("features") or {}
        spec = cls(name=str(entry["name"]), params=dict(entry.get("params") or {}),
                   feature=feats.get("name", default_feature),
                   feature_params=dict(feats.get("params", default_feature_params)),
                   grid=entry.get("grid"), **fit)
        spec.kind  # noqa: B018  (validates the name)
        if spec.spknorm not in ("input", "output"):
            raise ConfigError(f"{where}.fit.spknorm: 'input' or 'output', got {spec.spknorm!r}")
        if spec.spknorm == "output" and spec.kind == "classical":
            raise ConfigError(f"{where}.fit.spknorm: classical models are normalised at the "
                              "input only")
        spec.speeds = [float(v) for v in (spec.speeds or [])]
        if spec.settings is not None:
            spec.settings = [spec.settings] if isinstance(spec.settings, str) \
                else list(spec.settings)
            if bad := [v for v in spec.settings if v not in SETTINGS] or not spec.settings:
                raise ConfigError(f"{where}.fit.settings: unknown {bad or 'empty'}; choose "
                                  f"from {', '.join(SETTINGS)}")
        if spec.speeds and (spec.kind != "classical" or any(v <= 0 for v in spec.speeds)):
            raise ConfigError(f"{where}.fit.speeds: positive speed factors, for classical "
                              "members only")
        if spec.kind == "waveform" and spec.params.get("norm") == "speaker":
            raise ConfigError(f"{where}.params.norm: 'speaker' is set by the spknorm setting; "
                              "give the inductive normalisation (utterance, "
                              "utterance_scalar or none)")
        return spec


class SpeechData:
    """Decoded audio, augmented copies, cached feature vectors and per-speaker statistics of
    one corpus, kept in memory for every fold of a run.

    Records whose audio cannot be decoded are dropped and listed in :attr:`skipped`.
    """

    def __init__(self, records: Sequence[Record], *, sr: int = 16000,
                 cache: FeatureCache | None = None) -> None:
        from ..media import load_audio

        self.sr = sr
        self.cache = cache or FeatureCache()
        self.waves: dict[str, np.ndarray] = {}
        self.skipped: list[dict[str, str]] = []
        kept = []
        for r in records:
            try:
                self.waves[r.id] = load_audio(r.audio, sr=sr)[0]
                kept.append(r)
            except EmofuseError as exc:
                self.skipped.append({"id": r.id, "path": str(r.audio), "reason": str(exc)})
        self.records = kept
        self.by_id = {r.id: r for r in kept}
        self._copies: dict[tuple, dict[str, list[np.ndarray]]] = {}
        self._vectors: dict[tuple, dict[str, np.ndarray]] = {}
        self._stats: dict[tuple, dict[str, np.ndarray]] = {}

    def copies(self, augment: Mapping[str, Any] | None, ids: Sequence[str]
               ) -> dict[str, list[np.ndarray]]:
        """Augmented copies of the utterances ``ids`` (made once per settings and utterance;
        the seed depends on the utterance only, so every fold sees the same copies)."""
        from ..train.augment_audio import WaveAugment

        if not augment or not int(augment.get("copies", 0)):
            return {}
        params = {k: v for k, v in augment.items() if k != "copies"}
        n = int(augment["copies"])
        key = (n, repr(sorted(params.items())))
        store = self._copies.setdefault(key, {})
        aug = WaveAugment.from_params(params)
        for i in ids:
            if i not in store:
                seed = int.from_bytes(i.encode()[-8:].rjust(8, b"\0"), "little") % 2**31
                store[i] = aug.copies(self.waves[i], sr=self.sr, n=n, seed=seed)
        return store

    def vectors(self, feature: str, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Cached feature vectors of every record (a record that fails is dropped and listed
        in :attr:`skipped`)."""
        from ..features.speech import extract

        key = (feature, repr(sorted(params.items())))
        if key not in self._vectors:
            out = {}
            for r in self.records:
                try:
                    out[r.id] = np.asarray(extract(r.audio, feature, params=params, sr=self.sr,
                                                   cache=self.cache), np.float32)
                except EmofuseError as exc:
                    self.skipped.append({"id": r.id, "path": str(r.audio), "reason": str(exc)})
            self._vectors[key] = out
        return self._vectors[key]

    def speed_vectors(self, feature: str, params: Mapping[str, Any], speed: float
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Cached feature vectors of every record's waveform perturbed to ``speed``
        (:func:`~emofuse.features.speech.speed_perturb`) and the per-speaker statistics of
        those vectors; a record that fails is left out (it only loses its training copy)."""
        from ..features.speech import extract

        key = ("speed", feature, repr(sorted(params.items())), float(speed))
        if key not in self._vectors:
            out = {}
            for r in self.records:
                try:
                    out[r.id] = np.asarray(extract(r.audio, feature,
                                                   params={**params, "speed": float(speed)},
                                                   sr=self.sr, cache=self.cache), np.float32)
                except EmofuseError:
                    continue
            groups: dict[str, list[str]] = {}
            for rid in out:
                groups.setdefault(self.speaker_of(rid), []).append(rid)
            self._vectors[key] = out
            self._stats[key] = {s: vector_stats(np.stack([out[i] for i in ids]))
                                for s, ids in groups.items()}
        return self._vectors[key], self._stats[key]

    def speaker_stats(self, spec: MemberSpec, net: Any = None) -> dict[str, np.ndarray]:
        """Per-speaker normalisation statistics for ``spec`` (``(2, d)`` each) from every
        utterance of the speaker, unlabelled: mel bands (waveform) or feature entries."""
        if spec.kind == "waveform":
            key: tuple = ("bands", net.frontend.n_mels, net.frontend.top_db)
        else:
            key = ("vec", spec.feature, repr(sorted(spec.feature_params.items())))
        if key not in self._stats:
            groups: dict[str, list[str]] = {}
            for r in self.records:
                groups.setdefault(r.speaker or f"id:{r.id}", []).append(r.id)
            if spec.kind == "waveform":
                self._stats[key] = {s: band_stats(net, [self.waves[i] for i in ids])
                                    for s, ids in groups.items()}
            else:
                vec = self.vectors(spec.feature or "", spec.feature_params)
                self._stats[key] = {s: vector_stats(np.stack([vec[i] for i in ids if i in vec]))
                                    for s, ids in groups.items()
                                    if any(i in vec for i in ids)}
        return self._stats[key]

    def speaker_of(self, rid: str) -> str:
        r = self.by_id[rid]
        return r.speaker or f"id:{r.id}"


# --------------------------------------------------------------------------------------------
# Torch data


def _crop(y: np.ndarray, n: int, rng: np.random.Generator | None) -> np.ndarray:
    """A window of ``n`` samples: random (``rng``) or centred; short input is repeated."""
    if len(y) < n:
        y = np.tile(y, int(np.ceil(n / max(1, len(y)))))[: max(n, len(y))]
        return y[:n]
    start = int(rng.integers(0, len(y) - n + 1)) if rng is not None else (len(y) - n) // 2
    return y[start:start + n]


class _WaveSet:
    """Torch dataset of (waveform crop, normalisation stats, label)."""

    def __init__(self, variants: list[list[np.ndarray]], stats: list[np.ndarray | None],
                 labels: np.ndarray, n: int, train: bool, seed: int) -> None:
        self.variants, self.stats, self.labels = variants, stats, labels
        self.n, self.train = n, train
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        import torch

        vs = self.variants[i]
        y = vs[int(self.rng.integers(len(vs)))] if self.train else vs[0]
        x = torch.from_numpy(np.ascontiguousarray(_crop(y, self.n, self.rng if self.train
                                                        else None), dtype=np.float32))
        s = self.stats[i]
        st = torch.from_numpy(s) if s is not None else torch.zeros(0)
        return x, st, int(self.labels[i])


class _VecSet:
    def __init__(self, x: np.ndarray, labels: np.ndarray) -> None:
        self.x, self.labels = x.astype(np.float32), labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        import torch

        return torch.from_numpy(self.x[i]), torch.zeros(0), int(self.labels[i])


def _lightning_module(net: Any, *, class_weights: np.ndarray | None, lr: float,
                      weight_decay: float, mixup: float, max_epochs: int) -> Any:
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    from ..train.augment_audio import mixup_pairs

    class _Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            w = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
            self.register_buffer("class_w", w if w is not None else torch.zeros(0),
                                 persistent=False)
            self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

        def _ce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            w = self.class_w if self.class_w.numel() else None
            return F.cross_entropy(logits, y, weight=w, reduction="none")

        @staticmethod
        def _stats(st: torch.Tensor) -> torch.Tensor | None:
            return st if st.numel() else None

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, st, y = batch
            if mixup > 0:
                perm, lam = mixup_pairs(len(y), mixup)
                logits = self.net(x, self._stats(st), mix=(perm, lam))
                loss = (lam * self._ce(logits, y) + (1 - lam) * self._ce(logits, y[perm])).mean()
            else:
                loss = self._ce(self.net(x, self._stats(st)), y).mean()
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
            return loss

        def validation_step(self, batch: Any, _: int) -> None:
            x, st, y = batch
            logits = self.net(x, self._stats(st))
            self._val.append((logits.argmax(1), y))
            self.log("val_loss", self._ce(logits, y).mean(), on_step=False, on_epoch=True,
                     batch_size=len(y))

        def on_validation_epoch_end(self) -> None:
            log_val_ua(self)

        def configure_optimizers(self) -> Any:
            return adamw_cosine(self.net.parameters(), lr=lr, weight_decay=weight_decay,
                                max_epochs=max_epochs)

    return _Module()


def log_val_ua(module: Any) -> None:
    """Lightning ``on_validation_epoch_end``: log ``val_ua`` (unweighted accuracy) of the
    ``(pred, true)`` batches the module gathered in ``module._val``, then clear them."""
    import torch

    if not module._val:
        return
    pred = torch.cat([p for p, _ in module._val])
    true = torch.cat([t for _, t in module._val])
    module._val.clear()
    recalls = [(pred[true == c] == c).float().mean() for c in true.unique()]
    module.log("val_ua", torch.stack(recalls).mean())


def adamw_cosine(params: Any, *, lr: float, weight_decay: float, max_epochs: int
                 ) -> dict[str, Any]:
    """Lightning ``configure_optimizers``: AdamW with a cosine schedule over the epochs."""
    import torch

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, max_epochs))
    return {"optimizer": opt, "lr_scheduler": sched}


def _class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return w.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Fitting


@dataclass
class Fitted:
    """A trained member, its validation probabilities and facts for the result's notes."""

    member: Member
    val_proba: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def fit_member(spec: MemberSpec, data: SpeechData, train: Sequence[Record],
               val: Sequence[Record], *, classes: Sequence[str], setting: str, seed: int,
               train_cfg: TrainConfig, quick: bool = False) -> Fitted:
    """Train ``spec`` on ``train`` in ``setting`` (``inductive``/``spknorm``), choosing epochs
    or hyper-parameters on ``val`` (part of the training fold)."""
    if setting not in SETTINGS:
        raise ConfigError(f"unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
    if spec.kind == "classical":
        return _fit_classical(spec, data, train, val, classes=classes, setting=setting)
    return _fit_network(spec, data, train, val, classes=classes, setting=setting, seed=seed,
                        train_cfg=train_cfg, quick=quick)


def _labels(records: Sequence[Record], classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[r.label] for r in records], dtype=np.int64)


def _matrix(spec: MemberSpec, data: SpeechData, records: Sequence[Record], setting: str
            ) -> tuple[np.ndarray, list[Record]]:
    vec = data.vectors(spec.feature or "", spec.feature_params)
    recs = [r for r in records if r.id in vec]
    x = np.stack([vec[r.id] for r in recs]) if recs else np.zeros((0, 0), np.float32)
    if setting == "spknorm" and len(recs):
        stats = data.speaker_stats(spec)
        x = np.stack([(x[i] - stats[data.speaker_of(r.id)][0]) / stats[data.speaker_of(r.id)][1]
                      for i, r in enumerate(recs)])
    return x.astype(np.float32), recs


def _speed_copies(spec: MemberSpec, data: SpeechData, records: Sequence[Record],
                  setting: str, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Training vectors of the speed-perturbed copies of ``records`` (``spec.speeds``) and
    their labels; ``spknorm``: each (speaker, speed) standardised by its own statistics."""
    xs, ys = [], []
    for speed in spec.speeds:
        vec, stats = data.speed_vectors(spec.feature or "", spec.feature_params, speed)
        recs = [r for r in records if r.id in vec]
        if not recs:
            continue
        x = np.stack([vec[r.id] for r in recs])
        if setting == "spknorm":
            x = np.stack([(x[i] - stats[data.speaker_of(r.id)][0])
                          / stats[data.speaker_of(r.id)][1] for i, r in enumerate(recs)])
        xs.append(x.astype(np.float32))
        ys.append(_labels(recs, classes))
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def _with_copies(x: np.ndarray, y: np.ndarray, copies: tuple[np.ndarray, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    if not len(copies[1]):
        return x, y
    return np.concatenate([x, copies[0]]), np.concatenate([y, copies[1]])


def _fit_classical(spec: MemberSpec, data: SpeechData, train: Sequence[Record],
                   val: Sequence[Record], *, classes: Sequence[str], setting: str) -> Fitted:
    import warnings

    xt, rt = _matrix(spec, data, train, setting)
    xv, rv = _matrix(spec, data, val, setting)
    yt, yv = _labels(rt, classes), _labels(rv, classes)
    ct = _speed_copies(spec, data, rt, setting, classes)
    cv = _speed_copies(spec, data, rv, setting, classes)
    params, info = dict(spec.params), {}
    if spec.grid:
        x_all, y_all = np.concatenate([xt, xv]), np.concatenate([yt, yv])
        groups = [data.speaker_of(r.id) for r in [*rt, *rv]]
        params, score = grid_search(spec.name, x_all, y_all, groups, grid=spec.grid,
                                    base=spec.params)
        info = {"chosen": params, "inner_cv_ua": round(score, 4)}
    if spec.speeds:
        info["speed_copies"] = {"speeds": spec.speeds, "train": len(ct[1]), "val": len(cv[1])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # for validation probabilities
        first = build_model(spec.name, **params).fit(*_with_copies(xt, yt, ct))
        val_p = _full_proba(first, xv, len(classes))
        both = _with_copies(np.concatenate([xt, xv]), np.concatenate([yt, yv]), ct)
        final = build_model(spec.name, **params).fit(*_with_copies(*both, cv))
    feature = _feature_card(spec, data.sr)
    member = Member("classical", list(classes), final, {"name": spec.name, "params": params},
                    feature, setting, data.sr)
    return Fitted(member, val_p, info)


def _full_proba(clf: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` spread over all classes (a class absent in training gets 0)."""
    p = clf.predict_proba(x)
    out = np.zeros((len(x), n_classes))
    out[:, np.asarray(clf.classes_, dtype=int)] = p
    return out


def _feature_card(spec: MemberSpec, sr: int) -> dict[str, Any]:
    from ..features.speech import feature_settings

    return feature_settings(spec.feature or "", spec.feature_params, sr=sr)


def _fit_network(spec: MemberSpec, data: SpeechData, train: Sequence[Record],
                 val: Sequence[Record], *, classes: Sequence[str], setting: str, seed: int,
                 train_cfg: TrainConfig, quick: bool) -> Fitted:
    nets, val_ps, infos = [], [], []
    for k in range(max(1, spec.n_models)):
        net, val_p, info = _train_one(spec, data, train, val, classes=classes, setting=setting,
                                      seed=seed * 1000 + k, train_cfg=train_cfg, quick=quick)
        nets.append(net)
        val_ps.append(val_p)
        infos.append(info)
    feature = _feature_card(spec, data.sr) if spec.kind == "vector" else None
    members = [Member(spec.kind, list(classes), n,
                      {"name": spec.name, "params": {**_net_params(spec, setting),
                                                     **({"dim": n.dim} if spec.kind == "vector"
                                                        else {})}},
                      feature, setting, data.sr) for n in nets]
    member = members[0] if len(members) == 1 else _SeedEnsemble(members)
    return Fitted(member, np.mean(val_ps, axis=0), {"runs": infos})


class _SeedEnsemble(Member):
    """Several networks of one spec (different seeds), probabilities averaged."""

    def __init__(self, members: list[Member]) -> None:
        m = members[0]
        super().__init__(m.kind, m.labels, m.model, m.spec, m.feature, m.setting, m.sr)
        self.members = members

    def speaker_stats(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        if self.output_norm:
            return super().speaker_stats(waves)
        return self.members[0].speaker_stats(waves)

    def _raw_proba(self, waves: Sequence[np.ndarray], *, stats: np.ndarray | None = None,
                   vectors: np.ndarray | None = None) -> np.ndarray:
        return np.mean([m._raw_proba(waves, stats=stats, vectors=vectors)
                        for m in self.members], axis=0)


def raw_view(member: Member) -> Member:
    """A copy of an ``output_norm`` member that gives its inductive probabilities."""
    import copy

    raw = copy.copy(member)
    raw.setting, raw.output_norm = "inductive", False
    return raw


def as_output_norm(fitted: Fitted, val_speakers: Sequence[str]) -> Fitted:
    """The ``spknorm`` version of an inductively trained network: its class log-probabilities
    are standardised per speaker; validation probabilities likewise, per validation speaker."""
    import copy

    from ..speech import normalise_log_proba

    member = copy.copy(fitted.member)
    member.setting, member.output_norm = "spknorm", True
    if isinstance(member, _SeedEnsemble):
        member.members = [dataclasses.replace(m, setting="spknorm", output_norm=True)
                          for m in member.members]
    val = np.array(fitted.val_proba, dtype=np.float64)
    spk = np.asarray(val_speakers)
    for s in set(spk.tolist()):
        rows = spk == s
        val[rows] = normalise_log_proba(val[rows], vector_stats(np.log(val[rows] + 1e-6)))
    return Fitted(member, val, {**fitted.info, "spknorm": "output (reused inductive network)"})


def _net_params(spec: MemberSpec, setting: str) -> dict[str, Any]:
    params = dict(spec.params)
    if spec.kind == "waveform" and setting == "spknorm":
        params["norm"] = "speaker"
    return params


def _train_one(spec: MemberSpec, data: SpeechData, train: Sequence[Record],
               val: Sequence[Record], *, classes: Sequence[str], setting: str, seed: int,
               train_cfg: TrainConfig, quick: bool) -> tuple[Any, np.ndarray, dict[str, Any]]:
    import torch

    from ..train import fit, seed_everything

    if train_cfg.num_threads:
        torch.set_num_threads(train_cfg.num_threads)
    seed_everything(seed, train_cfg.deterministic)
    n_classes = len(classes)
    extra = {"dim": None}
    if spec.kind == "vector":
        xt, rt = _matrix(spec, data, train, setting)
        xv, rv = _matrix(spec, data, val, setting)
        extra = {"dim": xt.shape[1]}
    net = build_model(spec.name, n_classes=n_classes, **_net_params(spec, setting),
                      **({"dim": extra["dim"]} if spec.kind == "vector" else {}))
    if spec.kind == "vector":
        net.set_scaler(xt.mean(0), xt.std(0))
        yt, yv = _labels(rt, classes), _labels(rv, classes)
        make_train = lambda: _VecSet(xt, yt)  # noqa: E731
        make_both = lambda: _VecSet(np.concatenate([xt, xv]),  # noqa: E731
                                    np.concatenate([yt, yv]))
        val_set = _VecSet(xv, yv)
    else:
        if spec.spec_augment:
            from ..train.augment_audio import SpecAugment

            net.spec_augment = SpecAugment(**spec.spec_augment)
        stats = data.speaker_stats(spec, net) if setting == "spknorm" else None
        n = int(spec.crop_s * data.sr)
        copies = data.copies(spec.augment, [r.id for r in [*train, *val]])

        def waveset(recs: Sequence[Record], is_train: bool) -> _WaveSet:
            variants = [[data.waves[r.id], *(copies.get(r.id, []) if is_train else [])]
                        for r in recs]
            st = [stats[data.speaker_of(r.id)] if stats else None for r in recs]
            return _WaveSet(variants, st, _labels(recs, classes), n, is_train, seed)

        yt = _labels(train, classes)
        make_train = lambda: waveset(train, True)  # noqa: E731
        make_both = lambda: waveset([*train, *val], True)  # noqa: E731
        val_set = waveset(val, False)

    loader = _loaders(train_cfg)
    cw = _class_weights(yt, n_classes) if train_cfg.class_weighted else None
    epochs = 1 if quick else (spec.epochs or train_cfg.max_epochs)
    module = _lightning_module(net, class_weights=cw, lr=train_cfg.lr,
                               weight_decay=train_cfg.weight_decay, mixup=spec.mixup,
                               max_epochs=epochs)
    with tempfile.TemporaryDirectory(prefix="emofuse-fit-") as tmp:
        res = fit(module, loader(make_train(), True), loader(val_set, False),
                  max_epochs=epochs, patience=train_cfg.patience, out_dir=tmp, seed=seed,
                  monitor="val_ua", mode="max", resume=False, progress=False,
                  deterministic=train_cfg.deterministic, num_threads=train_cfg.num_threads,
                  **train_cfg.hardware(),
                  gradient_clip_val=5.0)
    hist = [h for h in res.history if "val_ua" in h]
    best_epoch = int(max(hist, key=lambda h: h["val_ua"])["epoch"]) + 1 if hist else epochs
    info = {"best_epoch": best_epoch, "epochs_run": res.epochs_run,
            "val_ua": None if res.best_score is None else round(res.best_score, 4),
            "fit_s": round(res.seconds, 1)}
    net.eval()
    val_p = _net_proba(net, val_set, n_classes)
    if spec.refit and not quick:
        seed_everything(seed + 1, train_cfg.deterministic)
        net2 = build_model(spec.name, n_classes=n_classes, **_net_params(spec, setting),
                           **({"dim": extra["dim"]} if spec.kind == "vector" else {}))
        if spec.kind == "vector":
            both = make_both()
            net2.set_scaler(both.x.mean(0), both.x.std(0))
        elif spec.spec_augment:
            from ..train.augment_audio import SpecAugment

            net2.spec_augment = SpecAugment(**spec.spec_augment)
        module2 = _lightning_module(net2, class_weights=cw, lr=train_cfg.lr,
                                    weight_decay=train_cfg.weight_decay, mixup=spec.mixup,
                                    max_epochs=best_epoch)
        with tempfile.TemporaryDirectory(prefix="emofuse-refit-") as tmp:
            res2 = fit(module2, loader(make_both(), True), loader(val_set, False),
                       max_epochs=best_epoch, patience=best_epoch + 1, out_dir=tmp,
                       seed=seed + 1, monitor="val_ua", mode="max", resume=False,
                       progress=False, deterministic=train_cfg.deterministic,
                       num_threads=train_cfg.num_threads, restore_best=False,
                       **train_cfg.hardware(),
                       gradient_clip_val=5.0)
        info["refit_s"] = round(res2.seconds, 1)
        net = net2
    net.spec_augment = _identity() if hasattr(net, "spec_augment") else None
    net.eval()
    return net, val_p, info


def _identity() -> Any:
    from torch import nn

    return nn.Identity()


def _loaders(train_cfg: TrainConfig):
    from torch.utils.data import DataLoader

    def make(ds: Any, train: bool) -> DataLoader:
        return DataLoader(ds, batch_size=train_cfg.batch_size if train else 64,
                          shuffle=train, drop_last=train and len(ds) > train_cfg.batch_size,
                          num_workers=0)

    return make


def _net_proba(net: Any, ds: Any, n_classes: int) -> np.ndarray:
    """Softmax outputs of a network over a dataset (its evaluation crops)."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(ds), 64):
            items = [ds[j] for j in range(i, min(len(ds), i + 64))]
            x = torch.stack([a for a, _, _ in items])
            st = torch.stack([s for _, s, _ in items]) if items[0][1].numel() else None
            out.append(torch.softmax(net(x, st), dim=1).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, n_classes))


def member_proba(member: Member, data: SpeechData, records: Sequence[Record], *,
                 window_s: float, stats: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Class probabilities of whole utterances: waveform members average over windows of
    ``window_s`` (hop half of it); vector/classical members score the cached vectors.
    ``stats`` maps a speaker to the statistics a ``spknorm`` member needs."""
    spk = [data.speaker_of(r.id) for r in records]
    if member.output_norm:
        from ..speech import normalise_log_proba

        raw = member_proba(raw_view(member), data, records, window_s=window_s)
        if stats is None:
            return raw
        return np.concatenate([normalise_log_proba(raw[i:i + 1], stats[s])
                               for i, s in enumerate(spk)])
    if member.kind != "waveform":
        vec = data.vectors(member.feature["feature"], member.feature["params"])
        x = np.stack([vec[r.id] for r in records])
        if member.setting == "spknorm":
            assert stats is not None
            x = np.stack([(x[i] - stats[s][0]) / stats[s][1] for i, s in enumerate(spk)])
        return member.proba([], vectors=x)
    win = int(window_s * data.sr)
    out = np.zeros((len(records), len(member.labels)))
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(spk):
        groups.setdefault(s if member.setting == "spknorm" else "", []).append(i)
    for s, idx in groups.items():
        windows, owner = [], []
        for i in idx:
            y = data.waves[records[i].id]
            for a, b in window_bounds(len(y), win, win // 2):
                windows.append(y[a:b])
                owner.append(i)
        st = stats[s] if (stats is not None and member.setting == "spknorm") else None
        p = member.proba(windows, stats=st)
        owner_arr = np.asarray(owner)
        for i in idx:
            out[i] = p[owner_arr == i].mean(axis=0)
    return out

