"""Face-detector back ends that need care: libfacedetection's CNN called through ctypes with one
reused buffer (the YuNet wrapper of ``yuface`` leaks one per call) under a bounded OpenMP team,
and facenet-pytorch's MTCNN imported without torchvision (which does not work with our torch)."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import re
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MediaError


def _need(module: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"face detector needs the {module!r} module: {install}")


class _FaceDetectCNN:
    """libfacedetection's ``facedetect_cnn(result_buffer, bgr, width, height, step)`` (the
    library yuface's extension links to), called through ctypes with a result buffer per
    thread that is reused, where yuface's extension mallocs a new one per call and leaks it.

    Calling it returns an ``int64 (N, 16)`` array as yuface's ``detect`` does (score x 100,
    x, y, w, h, 5 landmark points, one unused value). ctypes releases the GIL during the call
    (yuface's extension holds it). The library initialises its weights on the first call
    without a lock, so that call is made under one.
    """

    #: Bytes libfacedetection writes at most (its DETECT_BUFFER_SIZE; yuface mallocs the same).
    BUFFER_SIZE = 0x9000
    #: ``int* facedetect_cnn(unsigned char*, unsigned char*, int, int, int)``, C++-mangled.
    _SYMBOL = "_Z14facedetect_cnnPhS_iii"
    _instance: _FaceDetectCNN | None = None
    _failed = False
    _lock = threading.Lock()

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.local = threading.local()
        self.ready = False

    @classmethod
    def get(cls) -> _FaceDetectCNN | None:
        """The shared instance, or ``None`` where the library cannot be called this way."""
        if cls._instance is None and not cls._failed:
            with cls._lock:
                if cls._instance is None and not cls._failed:
                    try:
                        cls._instance = cls(cls._load())
                    except (OSError, AttributeError, ImportError):
                        cls._failed = True
        return cls._instance

    @classmethod
    def _load(cls) -> Any:
        from yuface import yuface as _yu  # maps the library this process uses

        mapped = _mapped_libraries(r"libfacedetection[-.\w]*\.so")
        pkg = Path(_yu.__file__).resolve().parent
        candidates = mapped + sorted(str(p) for p in pkg.glob("libfacedetection.so*"))
        if not candidates:
            raise OSError(f"libfacedetection not found next to {pkg}")
        fn = getattr(ctypes.CDLL(candidates[0]), cls._SYMBOL)
        fn.restype = ctypes.POINTER(ctypes.c_int)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int]
        return fn

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        """Faces in a contiguous ``uint8 (H, W, 3)`` BGR image."""
        bgr = np.ascontiguousarray(bgr, dtype=np.uint8)
        if bgr.ndim != 3 or bgr.shape[2] != 3:
            raise MediaError(None, f"expected a BGR image (H, W, 3), got shape {bgr.shape}")
        buf = getattr(self.local, "buf", None)
        if buf is None:
            buf = self.local.buf = ctypes.create_string_buffer(self.BUFFER_SIZE)
        h, w = bgr.shape[:2]
        args = (ctypes.addressof(buf), bgr.ctypes.data, w, h, w * 3)
        if not self.ready:
            with self._lock:
                res = self.fn(*args)
                self.ready = True
        else:
            res = self.fn(*args)
        if not res:
            return np.zeros((0, 16), np.int64)
        n = min(max(int(res[0]), 0), (self.BUFFER_SIZE - 4) // 32)
        return np.frombuffer(buf, dtype=np.int16, count=16 * n, offset=4).reshape(n, 16) \
            .astype(np.int64)


@contextlib.contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    """Run with ``n`` OpenMP threads in every OpenMP runtime loaded in this process (yuface
    bundles a libgomp, but once torch is imported its symbols may resolve to torch's), then
    restore each runtime's setting. OpenMP workers spin and crawl on a busy machine."""
    libs = [(lib, lib.omp_get_max_threads()) for lib in _openmp_runtimes()]
    for lib, _ in libs:
        lib.omp_set_num_threads(n)
    try:
        yield
    finally:
        for lib, old in libs:
            lib.omp_set_num_threads(old)


#: (``len(sys.modules)`` when looked up, the runtimes' handles)
_RUNTIMES: tuple[int, list[Any]] | None = None


def _openmp_runtimes() -> list[Any]:
    """Handles of the OpenMP runtimes mapped into this process. Reading the process' memory
    map costs ~2 ms, so the lookup is repeated only when modules were imported since the last
    one (a new runtime only arrives with a new extension module)."""
    global _RUNTIMES
    key = len(sys.modules)
    if _RUNTIMES is None or _RUNTIMES[0] != key:
        libs = []
        for path in _openmp_libraries():
            try:
                lib = ctypes.CDLL(path)
                lib.omp_get_max_threads, lib.omp_set_num_threads  # noqa: B018 - both exist
            except (OSError, AttributeError):
                continue
            libs.append(lib)
        _RUNTIMES = (key, libs)
    return _RUNTIMES[1]


def _openmp_libraries() -> list[str]:
    """Paths of the OpenMP runtimes mapped into this process (Linux; ``[]`` elsewhere)."""
    return _mapped_libraries(r"lib(gomp|iomp5|omp)[-.\w]*\.so")


def _mapped_libraries(pattern: str) -> list[str]:
    """Paths of the shared libraries mapped into this process whose path matches ``pattern``
    (Linux; ``[]`` elsewhere)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    found = {line.split(None, 5)[5].strip() for line in maps.splitlines()
             if len(line.split(None, 5)) == 6 and re.search(pattern, line)}
    return sorted(found)


# --------------------------------------------------------------------------------------------
# MTCNN without torchvision


def _torchvision_shim() -> dict[str, types.ModuleType]:
    """Modules standing in for the two torchvision pieces facenet-pytorch imports:
    ``torchvision.ops.boxes.batched_nms`` and ``torchvision.transforms.functional.to_tensor``."""
    import torch

    def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
        order = torch.argsort(scores, descending=True)
        x1, y1, x2, y2 = boxes.unbind(1)
        areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
        keep = []
        while order.numel():
            i = order[0]
            keep.append(i)
            rest = order[1:]
            w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
            h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
            inter = w * h
            order = rest[inter / (areas[i] + areas[rest] - inter + 1e-12) <= iou]
        return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)

    def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                    iou_threshold: float) -> torch.Tensor:
        if boxes.numel() == 0:
            return torch.zeros(0, dtype=torch.long, device=boxes.device)
        offsets = idxs.to(boxes) * (boxes.max() + 1)  # boxes of different images never overlap
        return nms(boxes + offsets[:, None], scores, iou_threshold)

    def to_tensor(pic: Any) -> torch.Tensor:
        arr = np.asarray(pic, dtype=np.float32)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        return t / 255.0 if np.asarray(pic).dtype == np.uint8 else t

    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    ops = types.ModuleType("torchvision.ops")
    boxes_mod = types.ModuleType("torchvision.ops.boxes")
    functional.to_tensor = to_tensor
    boxes_mod.batched_nms = batched_nms
    root.transforms, transforms.functional = transforms, functional
    root.ops, ops.boxes = ops, boxes_mod
    return {"torchvision": root, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional, "torchvision.ops": ops,
            "torchvision.ops.boxes": boxes_mod}


def _import_mtcnn() -> type:
    """``facenet_pytorch.MTCNN``, imported with the torchvision stand-ins when torchvision is
    absent (they are removed from ``sys.modules`` again afterwards)."""
    _need("facenet_pytorch", "pip install --no-deps facenet-pytorch")
    if "facenet_pytorch" in sys.modules or importlib.util.find_spec("torchvision"):
        from facenet_pytorch import MTCNN

        return MTCNN
    shim = _torchvision_shim()
    sys.modules.update(shim)
    try:
        from facenet_pytorch import MTCNN
    finally:
        for name in shim:
            sys.modules.pop(name, None)
    return MTCNN
