"""Class-conditional diffusion over log-mel segments (the DiffWave role): generator
``ddpm_logmel``.

A small 1-D U-Net (mel bands as channels, convolutions over time; sinusoidal time embedding
plus a class embedding, added per block) is the denoiser of a DDPM (cosine schedule,
``T`` = 1000 training steps; the network predicts the clean segment, ``prediction="x0"``, or
the noise) over normalised log-mel segments (``n_mels`` bands x ``frames``
frames, hop ``hop`` at 16 kHz; 64 x 128 x 256 = 2.05 s). Segments are random crops of the
training clips' log-mels (dB, ``power_to_db(ref=1)``, top 80 dB), normalised per band with the
training statistics. Classifier-free guidance: the class is dropped (replaced by a null
class) with probability ``cond_drop`` during training; sampling mixes the conditional and
unconditional noise estimates with weight ``guidance``. Sampling is DDIM (``ddim_steps``,
``eta`` 0: deterministic given the start noise). Each sample is inverted to a 16 kHz WAV with
the mel filters' pseudo-inverse and Griffin-Lim (:func:`librosa.griffinlim`, ``griffin_lim_iter`` iterations),
so generated clips go through the same feature pipeline as real ones.

>>> gen = build_generator("ddpm_logmel", steps=600)                     # doctest: +SKIP
>>> gen.fit(train_records, seed=0)                                       # doctest: +SKIP
>>> sset = make_ddpm_set(gen, {"neutral": 20}, "out/ddpm", seed=0, corpus="ravdess",
...                      part="fold 1 train core")                     # doctest: +SKIP

Weights are saved as ``model.safetensors`` + ``card.json`` (:meth:`DDPMLogMel.save`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from . import register_generator
from ..media.limits import SPEECH_SR
from .manifest import SyntheticItem, SyntheticSet, write_set

__all__ = ["DDPMLogMel", "make_ddpm_set", "plot_mels", "cosine_alphas_bar", "ddim_timesteps", "SR"]

SR = SPEECH_SR


def cosine_alphas_bar(T: int, s: float = 0.008) -> np.ndarray:
    """Cumulative signal share ``alpha_bar_t`` for ``t = 1..T`` (Nichol & Dhariwal's cosine
    schedule, betas clipped at 0.999)."""
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
    return np.cumprod(1 - betas)


def ddim_timesteps(T: int, steps: int) -> np.ndarray:
    """The ``steps`` descending training timesteps (0-based) a DDIM sampler visits."""
    if not 1 <= steps <= T:
        raise ConfigError(f"ddim_steps must be in [1, {T}], got {steps}")
    return np.unique(np.linspace(0, T - 1, steps).round().astype(int))[::-1].copy()


def _net(n_mels: int, n_classes: int, width: int) -> Any:
    """The 1-D U-Net: in conv, two down levels, a middle block, two up levels with skips, and
    the input concatenated before the output conv."""
    import torch
    from torch import nn

    class Res(nn.Module):
        def __init__(self, cin: int, cout: int, emb: int) -> None:
            super().__init__()
            self.n1, self.c1 = nn.GroupNorm(8, cin), nn.Conv1d(cin, cout, 3, padding=1)
            self.e = nn.Linear(emb, cout)
            self.n2, self.c2 = nn.GroupNorm(8, cout), nn.Conv1d(cout, cout, 3, padding=1)
            self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

        def forward(self, x: Any, e: Any) -> Any:
            h = self.c1(torch.nn.functional.silu(self.n1(x))) + self.e(e)[:, :, None]
            h = self.c2(torch.nn.functional.silu(self.n2(h)))
            return h + self.skip(x)

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w, emb = width, 4 * width
            self.emb_dim = width
            self.t_mlp = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
            self.cls = nn.Embedding(n_classes + 1, emb)        # last index: no class (CFG)
            self.inp = nn.Conv1d(n_mels, w, 3, padding=1)
            self.d1, self.d2 = Res(w, w, emb), Res(w, 2 * w, emb)
            self.down = nn.Conv1d(w, w, 4, stride=2, padding=1)
            self.down2 = nn.Conv1d(2 * w, 2 * w, 4, stride=2, padding=1)
            self.mid = Res(2 * w, 2 * w, emb)
            self.up2 = nn.ConvTranspose1d(2 * w, 2 * w, 4, stride=2, padding=1)
            self.u2 = Res(4 * w, w, emb)
            self.up1 = nn.ConvTranspose1d(w, w, 4, stride=2, padding=1)
            self.u1 = Res(2 * w, w, emb)
            self.out_norm = nn.GroupNorm(8, w)
            # the input is concatenated before the last conv: at high noise levels the noise
            # estimate is nearly the input itself, which a first level narrower than n_mels
            # could not carry through
            self.out = nn.Conv1d(w + n_mels, n_mels, 3, padding=1)

        def forward(self, x: Any, t: Any, c: Any) -> Any:
            half = self.emb_dim // 2
            f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
            a = t.float()[:, None] * f[None]
            e = self.t_mlp(torch.cat([a.sin(), a.cos()], 1)) + self.cls(c)
            h0 = self.d1(self.inp(x), e)                      # (B, w, T)
            h1 = self.d2(self.down(h0), e)                    # (B, 2w, T/2)
            h = self.mid(self.down2(h1), e)                   # (B, 2w, T/4)
            h = self.u2(torch.cat([self.up2(h), h1], 1), e)   # (B, w, T/2)
            h = self.u1(torch.cat([self.up1(h), h0], 1), e)   # (B, w, T)
            return self.out(torch.cat([torch.nn.functional.silu(self.out_norm(h)), x], 1))

    return UNet()


@register_generator("ddpm_logmel")
class DDPMLogMel:
    """Class-conditional DDPM over log-mel segments, DDIM sampling, Griffin-Lim inversion.

    Parameters
    ----------
    n_mels, frames, hop, n_fft
        Segment shape and the STFT behind it (16 kHz).
    width
        Channels of the U-Net's first level (the second has twice as many).
    T, steps, batch, lr
        Diffusion steps, optimiser steps, batch size and AdamW learning rate of :meth:`fit`.
    crops
        Random segment crops per training clip and epoch pool (drawn once per fit).
    cond_drop, guidance
        Label dropout in training; classifier-free guidance weight at sampling (0: none).
    ddim_steps, eta
        DDIM sampling steps and stochasticity (0: deterministic).
    prediction
        What the network predicts: ``x0`` (the clean segment; smoother samples after a short
        fit) or ``epsilon`` (the noise).
    griffin_lim_iter
        Griffin-Lim iterations of the inversion to audio.
    num_threads
        Torch threads (1 on a shared machine).
    """

    name = "ddpm_logmel"
    modality = "audio"

    def __init__(self, *, n_mels: int = 64, frames: int = 128, hop: int = 256, n_fft: int = 1024,
                 width: int = 48, T: int = 1000, steps: int = 600, batch: int = 32,
                 lr: float = 1e-3, crops: int = 8, cond_drop: float = 0.1,
                 guidance: float = 1.0, ddim_steps: int = 25, eta: float = 0.0,
                 griffin_lim_iter: int = 32, ema: float = 0.99, prediction: str = "x0",
                 num_threads: int = 1) -> None:
        if frames % 4:
            raise ConfigError(f"ddpm_logmel: frames must be a multiple of 4, got {frames}")
        if width % 8:
            raise ConfigError(f"ddpm_logmel: width must be a multiple of 8, got {width}")
        ddim_timesteps(T, ddim_steps)
        if prediction not in ("x0", "epsilon"):
            raise ConfigError(f"ddpm_logmel: prediction must be x0 or epsilon, not {prediction!r}")
        self.prediction = prediction
        self.n_mels, self.frames, self.hop, self.n_fft = n_mels, frames, hop, n_fft
        self.width, self.T, self.steps, self.batch, self.lr = width, T, steps, batch, lr
        self.crops, self.cond_drop, self.guidance = crops, cond_drop, guidance
        self.ddim_steps, self.eta, self.griffin_lim_iter = ddim_steps, eta, griffin_lim_iter
        self.ema, self.num_threads = ema, num_threads
        self.classes: list[str] = []
        self.fitted_on: list[str] = []
        self.mu = self.sd = None
        self.net: Any = None
        self.info: dict[str, Any] = {}
        self._pinv: np.ndarray | None = None

    def settings(self) -> dict[str, Any]:
        return {"n_mels": self.n_mels, "frames": self.frames, "hop": self.hop,
                "n_fft": self.n_fft, "sr": SR, "width": self.width, "T": self.T,
                "schedule": "cosine", "steps": self.steps, "batch": self.batch, "lr": self.lr,
                "crops": self.crops, "cond_drop": self.cond_drop, "guidance": self.guidance,
                "ddim_steps": self.ddim_steps, "eta": self.eta, "ema": self.ema,
                "griffin_lim_iter": self.griffin_lim_iter, "prediction": self.prediction,
                "inversion": "mel pseudo-inverse + Griffin-Lim (librosa)"}

    # -- data -------------------------------------------------------------------------------

    def logmel(self, y: np.ndarray) -> np.ndarray:
        """``(n_mels, frames')`` log-mel in dB of a 16 kHz waveform (the generator's space)."""
        from ..features.speech import logmel

        return logmel(y, sr=SR, n_mels=self.n_mels, n_fft=self.n_fft, hop_length=self.hop)

    def _crops(self, mels: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        out = []
        for m in mels:
            if m.shape[1] < self.frames:
                m = np.pad(m, ((0, 0), (0, self.frames - m.shape[1])), constant_values=m.min())
            for _ in range(self.crops):
                s = int(rng.integers(0, m.shape[1] - self.frames + 1))
                out.append(m[:, s:s + self.frames])
        return np.stack(out).astype(np.float32)

    # -- fit --------------------------------------------------------------------------------

    def fit(self, records: Sequence[Any], *, seed: int = 0,
            log: Callable[[str], None] | None = None) -> DDPMLogMel:
        """Fit on labelled audio records (``record.audio``, ``record.label``); or on
        ``(logmel, label)`` pairs (tests)."""
        from ..media import load_audio

        mels, labels, ids = [], [], []
        for r in records:
            if isinstance(r, tuple):
                m, lab = r
                mels.append(np.asarray(m, np.float32))
                labels.append(str(lab))
                ids.append(f"array:{len(ids)}")
                continue
            if not getattr(r, "audio", None) or r.label is None:
                continue
            y, _ = load_audio(r.audio, sr=SR)
            mels.append(self.logmel(y))
            labels.append(str(r.label))
            ids.append(r.id)
        if not mels:
            raise DataError(None, "ddpm_logmel: no labelled audio to fit on")
        self.classes = sorted(set(labels))
        self.fitted_on = ids
        rng = np.random.default_rng(seed)
        X = self._crops(mels, rng)
        y = np.repeat([self.classes.index(lab) for lab in labels], self.crops)
        self.mu = X.mean((0, 2))[:, None].astype(np.float32)
        self.sd = (X.std((0, 2))[:, None] + 1e-3).astype(np.float32)
        X = (X - self.mu) / self.sd
        self._train(X, y, seed, log)
        return self

    def _train(self, X: np.ndarray, y: np.ndarray, seed: int,
               log: Callable[[str], None] | None) -> None:
        import copy

        import torch

        torch.set_num_threads(self.num_threads)
        torch.manual_seed(seed)
        t0, c0 = time.perf_counter(), time.process_time()
        net = _net(self.n_mels, len(self.classes), self.width)
        ema = copy.deepcopy(net).requires_grad_(False)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, self.lr, total_steps=self.steps,
                                                    pct_start=0.1)
        ab = torch.tensor(cosine_alphas_bar(self.T), dtype=torch.float32)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y, np.int64))
        g = torch.Generator().manual_seed(seed)
        losses = []
        for step in range(self.steps):
            idx = torch.randint(0, len(Xt), (min(self.batch, len(Xt)),), generator=g)
            x0, c = Xt[idx], yt[idx].clone()
            c[torch.rand(len(c), generator=g) < self.cond_drop] = len(self.classes)
            t = torch.randint(0, self.T, (len(x0),), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            a = ab[t][:, None, None]
            out = net(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, c)
            loss = torch.nn.functional.mse_loss(out, x0 if self.prediction == "x0" else noise)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            with torch.no_grad():
                for pe, pn in zip(ema.parameters(), net.parameters()):
                    pe.mul_(self.ema).add_(pn.detach(), alpha=1 - self.ema)
            losses.append(float(loss.detach()))
            if log and (step + 1) % max(1, self.steps // 4) == 0:
                log(f"ddpm_logmel: step {step + 1}/{self.steps}, loss "
                    f"{np.mean(losses[-50:]):.4f}")
        self.net = ema.eval()
        self.info = {"fit_s": round(time.perf_counter() - t0, 2),
                     "fit_cpu_s": round(time.process_time() - c0, 2),
                     "segments": int(len(X)), "clips": len(self.fitted_on),
                     "final_loss": round(float(np.mean(losses[-50:])), 4),
                     "parameters": int(sum(p.numel() for p in net.parameters()))}

    # -- sample -----------------------------------------------------------------------------

    def sample(self, labels: Sequence[str], *, seed: int = 0, batch: int = 64) -> np.ndarray:
        """DDIM samples ``(n, n_mels, frames)`` in dB, one per label."""
        import torch

        if self.net is None:
            raise ConfigError("ddpm_logmel: fit (or load) the generator before sampling")
        bad = sorted(set(labels) - set(self.classes))
        if bad:
            raise ConfigError(f"ddpm_logmel: not fitted on class(es) {bad}")
        torch.set_num_threads(self.num_threads)
        ab = cosine_alphas_bar(self.T)
        ts = ddim_timesteps(self.T, self.ddim_steps)
        g = torch.Generator().manual_seed(int(seed))
        K = len(self.classes)
        out = []
        with torch.no_grad():
            for s in range(0, len(labels), batch):
                c = torch.tensor([self.classes.index(lab) for lab in labels[s:s + batch]])
                x = torch.randn((len(c), self.n_mels, self.frames), generator=g)
                for i, t in enumerate(ts):
                    tt = torch.full((len(c),), int(t))
                    if self.guidance:
                        e = self.net(torch.cat([x, x]), torch.cat([tt, tt]),
                                     torch.cat([c, torch.full_like(c, K)]))
                        ec, eu = e.chunk(2)
                        pred = eu + (1 + self.guidance) * (ec - eu)
                    else:
                        pred = self.net(x, tt, c)
                    a = float(ab[t])
                    a_prev = float(ab[ts[i + 1]]) if i + 1 < len(ts) else 1.0
                    if self.prediction == "x0":
                        x0 = pred.clamp(-5, 5)
                        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
                    else:
                        eps = pred
                        x0 = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-5, 5)
                    sig = self.eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
                    x = (math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sig ** 2, 0)) * eps
                         + (sig * torch.randn(x.shape, generator=g) if sig else 0))
                out.append(x.numpy())
        Z = np.concatenate(out) if out else np.zeros((0, self.n_mels, self.frames), np.float32)
        return (Z * self.sd + self.mu).astype(np.float32)

    def to_audio(self, mel_db: np.ndarray) -> np.ndarray:
        """Griffin-Lim inversion of one ``(n_mels, frames)`` dB log-mel to a 16 kHz waveform."""
        import librosa

        if self._pinv is None:   # pseudo-inverse of the mel filters (much faster than NNLS)
            basis = librosa.filters.mel(sr=SR, n_fft=self.n_fft, n_mels=self.n_mels, fmin=20.0,
                                        fmax=SR / 2)
            self._pinv = np.linalg.pinv(basis)
        power = np.maximum(self._pinv @ librosa.db_to_power(mel_db.astype(np.float64)), 0.0)
        y = librosa.griffinlim(np.sqrt(power), n_iter=self.griffin_lim_iter,
                               hop_length=self.hop, n_fft=self.n_fft, random_state=0)
        return np.clip(y, -0.99, 0.99).astype(np.float32)

    def generate(self, counts: Mapping[str, int], *, seed: int = 0,
                 out_dir: str | os.PathLike | None = None) -> list[SyntheticItem]:
        """``counts[c]`` clips per class: DDIM samples inverted to WAV under ``out_dir/files``
        (without ``out_dir`` the items carry the log-mel in ``extra['mel']``, no file)."""
        import soundfile as sf

        labels = [c for c, n in counts.items() for _ in range(int(n))]
        t0 = time.perf_counter()
        mels = self.sample(labels, seed=seed)
        t_sample = time.perf_counter() - t0
        items, t_inv = [], 0.0
        folder = Path(out_dir) if out_dir is not None else None
        if folder is not None:
            (folder / "files").mkdir(parents=True, exist_ok=True)
        k: dict[str, int] = {}
        for lab, m in zip(labels, mels):
            j = k[lab] = k.get(lab, -1) + 1
            iid = f"ddpm:{seed}:{lab}:{j}"
            extra: dict[str, Any] = {"duration_s": round(self.frames * self.hop / SR, 3)}
            rel = None
            if folder is not None:
                t1 = time.perf_counter()
                rel = f"files/ddpm_{lab}_{seed}_{j:03d}.wav"
                sf.write(str(folder / rel), self.to_audio(m), SR, subtype="PCM_16")
                t_inv += time.perf_counter() - t1
            else:
                extra["mel"] = m
            items.append(SyntheticItem(id=iid, label=lab, generator=self.name, kind="ddim",
                                       seed=seed, path=rel, extra=extra))
        self.info["sample_s"] = round(t_sample, 2)
        self.info["griffin_lim_s"] = round(t_inv, 2)
        return items

    # -- weights ----------------------------------------------------------------------------

    def save(self, folder: str | os.PathLike, *, data: Mapping[str, Any] | None = None) -> Path:
        """``model.safetensors`` (EMA weights + band statistics) and ``card.json``."""
        import torch

        from ..models.checkpoint import save_model

        if self.net is None:
            raise ConfigError("ddpm_logmel: nothing to save (not fitted)")
        state = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        state["band_mu"], state["band_sd"] = torch.from_numpy(self.mu), torch.from_numpy(self.sd)
        card = {"labels": self.classes, "features": {"logmel_db": self.settings()},
                "data": dict(data or {}), "protocol": "generator (no evaluation)",
                "metrics": {"final_loss": self.info.get("final_loss")},
                "generator": self.name, "settings": self.settings(), "info": self.info,
                "fitted_on": self.fitted_on}
        return save_model(folder, state, card)

    @classmethod
    def load(cls, folder: str | os.PathLike, **overrides: Any) -> DDPMLogMel:
        """A generator saved by :meth:`save` (sampling settings may be overridden)."""
        from ..models.checkpoint import load_model

        state, card = load_model(folder)
        keep = {k: v for k, v in card["settings"].items()
                if k in ("n_mels", "frames", "hop", "n_fft", "width", "T", "steps", "batch",
                         "lr", "crops", "cond_drop", "guidance", "ddim_steps", "eta",
                         "griffin_lim_iter", "ema", "prediction")}
        gen = cls(**{**keep, **overrides})
        gen.classes, gen.fitted_on, gen.info = list(card["labels"]), list(card["fitted_on"]), \
            dict(card.get("info") or {})
        gen.mu, gen.sd = state.pop("band_mu").numpy(), state.pop("band_sd").numpy()
        gen.net = _net(gen.n_mels, len(gen.classes), gen.width)
        gen.net.load_state_dict({k[4:]: v for k, v in state.items()})
        gen.net.eval()
        return gen


def make_ddpm_set(generator: DDPMLogMel, counts: Mapping[str, int],
                  out_dir: str | os.PathLike, *, seed: int = 0, corpus: str = "",
                  part: str = "train", log: Callable[[str], None] | None = None) -> SyntheticSet:
    """Generate ``counts`` clips of a fitted generator into ``out_dir`` with its manifest
    (``fitted_on``: the generator's training ids; ``extra``: fit, sampling and inversion
    times)."""
    t0, c0 = time.perf_counter(), time.process_time()
    items = generator.generate(counts, seed=seed, out_dir=out_dir)
    secs = round(time.perf_counter() - t0, 2)
    if log:
        log(f"ddpm_logmel: {len(items)} clips in {secs:.0f} s (DDIM "
            f"{generator.info.get('sample_s')} s, Griffin-Lim "
            f"{generator.info.get('griffin_lim_s')} s)")
    settings = {**generator.settings(), "requested": dict(counts)}
    sset = SyntheticSet(generator.name, "audio", settings, seed,
                        SyntheticSet.fitted(corpus or "unknown", part, generator.fitted_on),
                        items, seconds=secs,
                        extra={"generate_cpu_s": round(time.process_time() - c0, 2),
                               **generator.info})
    write_set(sset, out_dir)
    return sset


def plot_mels(generator: DDPMLogMel, path: str | os.PathLike, *, per_class: int = 3,
              seed: int = 0, real: Mapping[str, Sequence[np.ndarray]] | None = None) -> Path:
    """A grid of DDIM samples (rows = classes, ``per_class`` columns; a first column of real
    segments when ``real`` maps classes to log-mels), written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..evaluate.plots import save_figure

    classes = generator.classes
    mels = generator.sample([c for c in classes for _ in range(per_class)], seed=seed)
    n_real = 1 if real else 0
    cols = per_class + n_real
    fig, axes = plt.subplots(len(classes), cols, figsize=(1.6 * cols, 1.0 * len(classes)),
                             squeeze=False)
    lo, hi = float(np.percentile(mels, 1)), float(np.percentile(mels, 99))
    for i, c in enumerate(classes):
        row = ([np.asarray(real[c][0])[:, :generator.frames]] if real and real.get(c) else
               [None] * n_real) + list(mels[i * per_class:(i + 1) * per_class])
        for j, m in enumerate(row):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if m is not None:
                ax.imshow(m, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma")
            if j == 0:
                ax.set_ylabel(c, fontsize=7)
            if i == 0:
                ax.set_title("real" if j < n_real else f"DDIM {j - n_real + 1}", fontsize=7)
    return save_figure(fig, path)
