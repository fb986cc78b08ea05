"""Class-conditional GAN for 48x48 grayscale faces (generator ``cgan_face``).

A small projection cGAN (Miyato & Koyama 2018) in the DCGAN mould, sized for a CPU:

- **generator**: ``z`` (``z_dim``) and a class embedding -> 6x6 map -> three upsample + conv
  blocks (batch norm, ReLU) -> 48x48 ``tanh``;
- **discriminator**: three spectrally normalised strided convs (LeakyReLU) -> a global feature,
  an unconditional score plus the projection ``<embed(y), feature>``; hinge loss;
- Adam (2e-4, betas 0.5/0.999), random horizontal flips of the real faces, and an exponential
  moving average (EMA) of the generator weights, which is what samples.

It is fitted on training records only (their ids go into the manifest's ``fitted_on``); weights
are saved as ``model.safetensors`` + ``card.json``. :func:`make_face_set` fits, samples and
writes a synthetic set with one PNG per item and :func:`save_grid` a sample grid (rows = classes).

>>> gen = build_generator("cgan_face", iterations=2)            # doctest: +SKIP
>>> gen.fit_arrays(x_uint8, y, classes)                          # doctest: +SKIP
>>> items = gen.generate({"disgust": 100}, seed=0)               # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from . import register_generator
from .manifest import SyntheticItem, SyntheticSet, write_set
from .online import DIFFAUG_POLICIES, diff_augment

__all__ = ["CGANFace", "make_face_set", "save_grid"]


def _nets(z_dim: int, width: int, n_classes: int, side: int, mbstd: bool = False):
    import torch
    from torch import nn
    from torch.nn.utils import spectral_norm as sn

    if side % 8:
        raise ConfigError(f"cgan_face: side must be a multiple of 8, not {side}")
    s0 = side // 8

    class G(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(n_classes, z_dim)
            self.fc = nn.Linear(2 * z_dim, 4 * width * s0 * s0)
            self.bn0 = nn.BatchNorm2d(4 * width)

            def up(i: int, o: int) -> nn.Sequential:
                return nn.Sequential(nn.Upsample(scale_factor=2),
                                     nn.Conv2d(i, o, 3, padding=1, bias=False),
                                     nn.BatchNorm2d(o), nn.ReLU(True))

            self.body = nn.Sequential(up(4 * width, 2 * width), up(2 * width, width),
                                      up(width, width // 2 or 1))
            self.out = nn.Conv2d(width // 2 or 1, 1, 3, padding=1)

        def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            h = self.fc(torch.cat([z, self.emb(y)], 1)).view(len(z), 4 * width, s0, s0)
            h = torch.relu(self.bn0(h))
            return torch.tanh(self.out(self.body(h)))

    class D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            act = nn.LeakyReLU(0.2, True)
            self.body = nn.Sequential(
                sn(nn.Conv2d(1, width, 4, 2, 1)), act,
                sn(nn.Conv2d(width, 2 * width, 4, 2, 1)), act,
                sn(nn.Conv2d(2 * width, 4 * width, 4, 2, 1)), act)
            # minibatch standard deviation (Karras et al. 2018): one extra channel holding the
            # batch's mean feature spread, so a generator that ignores z is easy to spot
            self.head = sn(nn.Conv2d(4 * width + int(mbstd), 4 * width, 3, 1, 1))
            self.lin = sn(nn.Linear(4 * width, 1))
            self.proj = sn(nn.Embedding(n_classes, 4 * width))

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            h = self.body(x)
            if mbstd:
                sd = h.std(0, unbiased=False).mean().expand(len(h), 1, *h.shape[2:])
                h = torch.cat([h, sd], 1)
            h = nn.functional.leaky_relu(self.head(h), 0.2).sum((2, 3))
            return self.lin(h).squeeze(1) + (self.proj(y) * h).sum(1)

    return G(), D()


@register_generator("cgan_face")
class CGANFace:
    """Projection cGAN on grayscale face crops (see the module docstring).

    Parameters
    ----------
    z_dim, width
        Latent size and base channel count (the generator has ``4*width`` channels at 6x6).
    iterations, batch_size, lr, betas
        Training steps (one discriminator + one generator update each), batch, Adam settings.
    ema
        Decay of the moving average of the generator weights used for sampling.
    side
        Image side (48 for FER2013).
    flip
        Flip real faces horizontally at random while training.
    threads
        torch threads while fitting and sampling (``None``: leave as is).
    diffaug
        DiffAugment policy applied to every discriminator input (see :func:`diff_augment`);
        ``()`` turns it off.
    mbstd
        Give the discriminator a minibatch standard-deviation channel (against mode collapse).
    mode_seeking
        Weight of the mode-seeking term (Mao et al. 2019) in the generator loss: ``1 / ratio``
        of image to code distance for two codes of one class; ``0`` turns it off.
    """

    name = "cgan_face"
    modality = "image"

    def __init__(self, *, z_dim: int = 64, width: int = 32, iterations: int = 3000,
                 batch_size: int = 64, lr: float = 2e-4, betas: Sequence[float] = (0.5, 0.999),
                 ema: float = 0.999, side: int = 48, flip: bool = True,
                 threads: int | None = 1,
                 diffaug: Sequence[str] = DIFFAUG_POLICIES,
                 mbstd: bool = True, mode_seeking: float = 1.0) -> None:
        if iterations < 1 or batch_size < 2 or width < 2:
            raise ConfigError("cgan_face: iterations >= 1, batch_size >= 2 and width >= 2")
        self.z_dim, self.width, self.iterations = int(z_dim), int(width), int(iterations)
        self.batch_size, self.lr, self.betas = int(batch_size), float(lr), tuple(betas)
        self.ema, self.side, self.flip, self.threads = float(ema), int(side), bool(flip), threads
        bad = sorted(set(diffaug) - set(DIFFAUG_POLICIES))
        if bad:
            raise ConfigError(f"cgan_face: unknown diffaug {bad}; known: "
                              f"{', '.join(DIFFAUG_POLICIES)}")
        self.diffaug, self.mbstd = [str(a) for a in diffaug], bool(mbstd)
        if mode_seeking < 0:
            raise ConfigError("cgan_face: mode_seeking >= 0")
        self.mode_seeking = float(mode_seeking)
        self.classes: list[str] = []
        self.fitted_on: list[str] = []
        self.fit_seconds: float | None = None
        self.history: list[dict[str, float]] = []
        self.last_images: np.ndarray | None = None
        self._g = None

    def settings(self) -> dict[str, Any]:
        """Everything that shapes the output (goes into the manifest)."""
        return {"architecture": "projection cGAN (DCGAN-style G, spectral-norm D, hinge loss, "
                                "EMA generator)"
                                + (", minibatch-std D" if self.mbstd else "")
                                + (f", DiffAugment {'+'.join(self.diffaug)}" if self.diffaug
                                   else "")
                                + (f", mode-seeking {self.mode_seeking:g}" if self.mode_seeking
                                   else ""),
                "diffaug": self.diffaug, "mbstd": self.mbstd, "mode_seeking": self.mode_seeking,
                "z_dim": self.z_dim, "width": self.width, "iterations": self.iterations,
                "batch_size": self.batch_size, "lr": self.lr, "betas": list(self.betas),
                "ema": self.ema, "side": self.side, "flip": self.flip, "classes": self.classes,
                "fit_seconds": self.fit_seconds}

    def _threads(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(int(self.threads))

    def fit(self, records: Sequence[Any], *, seed: int = 0) -> CGANFace:
        """Fit on face records (image files or ``extra['pixels']``); classes = their labels."""
        from ..features.face_crops import load_faces

        records = [r for r in records if r.label is not None]
        x, kept, skipped = load_faces(records, side=self.side, detect=False)
        if skipped:
            raise DataError(skipped[0]["path"], f"cgan_face: {len(skipped)} face(s) could not "
                                                f"be read ({skipped[0]['reason']})")
        classes = sorted({r.label for r in kept})
        y = np.array([classes.index(r.label) for r in kept], int)
        return self.fit_arrays(x, y, classes, ids=[r.id for r in kept], seed=seed)

    def fit_arrays(self, x: np.ndarray, y: np.ndarray, classes: Sequence[str], *,
                   ids: Sequence[str] = (), seed: int = 0,
                   log: Callable[[str], None] | None = None) -> CGANFace:
        """Fit on ``uint8 (n, side, side)`` faces ``x`` with class indices ``y``."""
        import copy

        import torch
        import torch.nn.functional as F

        x, y = np.asarray(x), np.asarray(y, int)
        if x.ndim != 3 or x.shape[1:] != (self.side, self.side) or len(x) != len(y) or not len(x):
            raise DataError(None, f"cgan_face: need (n, {self.side}, {self.side}) faces with one "
                                  f"label each, got {x.shape} and {len(y)} labels")
        self._threads()
        self.classes = list(classes)
        self.fitted_on = list(ids)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        g, d = _nets(self.z_dim, self.width, len(self.classes), self.side, self.mbstd)
        g_ema = copy.deepcopy(g).eval()
        for p_ in g_ema.parameters():
            p_.requires_grad_(False)
        opt_g = torch.optim.Adam(g.parameters(), lr=self.lr, betas=self.betas)
        opt_d = torch.optim.Adam(d.parameters(), lr=self.lr, betas=self.betas)
        real = torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
        ys = torch.from_numpy(y)
        n, bs, K = len(real), self.batch_size, len(self.classes)
        tgen = torch.Generator().manual_seed(seed + 1)

        def aug(t: torch.Tensor) -> torch.Tensor:
            return diff_augment(t, policy=self.diffaug, generator=tgen) if self.diffaug else t

        t0 = time.perf_counter()
        self.history = []
        for it in range(self.iterations):
            idx = torch.from_numpy(rng.integers(0, n, bs))
            xr, yr = real[idx], ys[idx]
            if self.flip:
                m = torch.from_numpy(rng.random(bs) < 0.5)
                xr = torch.where(m[:, None, None, None], xr.flip(3), xr)
            z = torch.randn(bs, self.z_dim)
            yf = torch.randint(0, K, (bs,))
            with torch.no_grad():
                xf = g(z, yf)
            loss_d = F.relu(1 - d(aug(xr), yr)).mean() + F.relu(1 + d(aug(xf), yf)).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            zg = torch.randn(bs, self.z_dim)
            if self.mode_seeking > 0:       # pairs (z1, z2) of the same class: first/second half
                h_ = bs // 2
                yf = torch.cat([yf[:h_], yf[:h_], yf[2 * h_:]])
            xg = g(zg, yf)
            loss_g = -d(aug(xg), yf).mean()
            if self.mode_seeking > 0:
                # mode seeking (Mao et al. 2019): two codes of one class must give different
                # faces, against the within-class collapse of a small conditional GAN
                ratio = ((xg[:h_] - xg[h_:2 * h_]).abs().mean((1, 2, 3))
                         / (zg[:h_] - zg[h_:2 * h_]).abs().mean(1))
                loss_g = loss_g + self.mode_seeking / (ratio.mean() + 1e-5)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            with torch.no_grad():
                decay = min(self.ema, (1 + it) / (10 + it))
                for pe, pg in zip(g_ema.parameters(), g.parameters()):
                    pe.lerp_(pg, 1 - decay)
                for be, bg in zip(g_ema.buffers(), g.buffers()):
                    be.copy_(bg)
            if (it + 1) % max(1, self.iterations // 20) == 0 or it + 1 == self.iterations:
                rec = {"iteration": it + 1, "loss_d": float(loss_d.detach()),
                       "loss_g": float(loss_g.detach()),
                       "seconds": round(time.perf_counter() - t0, 1)}
                self.history.append(rec)
                if log:
                    log(f"cgan_face {it + 1}/{self.iterations}: D {rec['loss_d']:.3f} "
                        f"G {rec['loss_g']:.3f} ({rec['seconds']:.0f} s)")
        self.fit_seconds = round(time.perf_counter() - t0, 1)
        self._g = g_ema
        return self

    def _need(self) -> Any:
        if self._g is None:
            raise DataError(None, "cgan_face: fit (or load) the generator before generating")
        return self._g

    def sample(self, counts: Mapping[str, int], *, seed: int = 0) -> tuple[np.ndarray,
                                                                           list[str]]:
        """``uint8 (n, side, side)`` faces and their labels for ``{class: count}``."""
        import torch

        g = self._need()
        self._threads()
        bad = [c for c in counts if c not in self.classes]
        if bad:
            raise ConfigError(f"cgan_face: unknown class(es) {bad}; known: {self.classes}")
        gen = torch.Generator().manual_seed(int(seed))
        labels = [c for c, k in counts.items() for _ in range(int(k))]
        out = np.zeros((len(labels), self.side, self.side), np.uint8)
        y = torch.tensor([self.classes.index(c) for c in labels], dtype=torch.long)
        with torch.no_grad():
            for k in range(0, len(labels), 256):
                z = torch.randn(len(y[k:k + 256]), self.z_dim, generator=gen)
                img = g(z, y[k:k + 256])[:, 0].numpy()
                out[k:k + 256] = np.clip((img + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return out, labels

    def generate(self, counts: Mapping[str, int], *, seed: int = 0) -> list[SyntheticItem]:
        """Items ``files/<id>.png`` for ``{class: count}`` (pixels in :attr:`last_images`, in
        item order; :func:`make_face_set` writes them), reproducible for ``seed``."""
        imgs, labels = self.sample(counts, seed=seed)
        self.last_images = imgs
        items = []
        for i, c in enumerate(labels):
            iid = f"cgan_face-s{seed}-{c}-{i:05d}"
            items.append(SyntheticItem(id=iid, label=c, generator=self.name, seed=seed,
                                       path=f"files/{iid}.png"))
        return items

    # -- weights -----------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the EMA generator as ``model.safetensors`` + ``card.json``."""
        from safetensors.torch import save_file

        g = self._need()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in g.state_dict().items()},
                  str(folder / "model.safetensors"))
        card = {"generator": self.name, "settings": self.settings(), "labels": self.classes,
                "fitted_on_n": len(self.fitted_on), "history": self.history}
        (folder / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> CGANFace:
        """A generator saved by :meth:`save`."""
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
            state = load_file(str(folder / "model.safetensors"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(folder, f"cannot read a cgan_face generator ({exc})") from None
        s = card["settings"]
        gen = cls(z_dim=s["z_dim"], width=s["width"], iterations=s["iterations"],
                  batch_size=s["batch_size"], lr=s["lr"], betas=s["betas"], ema=s["ema"],
                  side=s["side"], flip=s["flip"], diffaug=s.get("diffaug", ()),
                  mbstd=s.get("mbstd", False), mode_seeking=s.get("mode_seeking", 0.0))
        gen.classes, gen.fit_seconds = list(card["labels"]), s.get("fit_seconds")
        gen.history = card.get("history") or []
        g, _ = _nets(gen.z_dim, gen.width, len(gen.classes), gen.side)
        g.load_state_dict(state)
        gen._g = g.eval()
        return gen


def save_grid(images: np.ndarray, labels: Sequence[str], classes: Sequence[str],
              path: str | Path, *, per_row: int = 10, scale: int = 2) -> Path:
    """A PNG grid of faces, one row per class (the first ``per_row`` of each)."""
    from PIL import Image, ImageDraw

    side = images.shape[1] if len(images) else 48
    pad, label_w = 2, 64
    rows = [c for c in classes if c in set(labels)]
    W = label_w + per_row * (side + pad)
    H = max(1, len(rows)) * (side + pad)
    canvas = Image.new("L", (W, H), 255)
    draw = ImageDraw.Draw(canvas)
    lab = np.asarray(labels)
    for r, c in enumerate(rows):
        draw.text((2, r * (side + pad) + side // 2 - 5), c, fill=0)
        for j, i in enumerate(np.flatnonzero(lab == c)[:per_row]):
            canvas.paste(Image.fromarray(images[i]), (label_w + j * (side + pad),
                                                      r * (side + pad)))
    canvas = canvas.resize((W * scale, H * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def make_face_set(gen: CGANFace, counts: Mapping[str, int], out_dir: str | Path, *, seed: int,
                  corpus: str, part: str, quality: Mapping[str, Any] | None = None,
                  **fitted_info: Any) -> SyntheticSet:
    """Sample ``counts`` from a fitted ``gen``, write PNGs, the manifest, ``items.csv``,
    ``grid.png`` and the generator weights (``generator/``) into ``out_dir``."""
    from PIL import Image

    out = Path(out_dir)
    t0 = time.perf_counter()
    items = gen.generate(counts, seed=seed)
    imgs = gen.last_images
    (out / "files").mkdir(parents=True, exist_ok=True)
    for it, img in zip(items, imgs):
        Image.fromarray(img).save(out / it.path)
    secs = time.perf_counter() - t0
    gen.save(out / "generator")
    save_grid(imgs, [it.label for it in items], gen.classes, out / "grid.png")
    sset = SyntheticSet(gen.name, "image", {**gen.settings(), "requested": dict(counts)}, seed,
                        SyntheticSet.fitted(corpus, part, gen.fitted_on, **fitted_info), items,
                        seconds=round((gen.fit_seconds or 0) + secs, 1),
                        quality=dict(quality or {}),
                        extra={"fit_s": gen.fit_seconds, "sample_s": round(secs, 2),
                               "weights": "generator/model.safetensors", "grid": "grid.png"})
    write_set(sset, out)
    return sset
