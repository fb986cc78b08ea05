"""Image decoding with Pillow: any mode (grayscale, RGBA, 16-bit, CMYK, palette) to RGB or
grayscale uint8, huge images downscaled without holding the full-resolution pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MediaError
from ._files import check_file
from .limits import max_pixels

__all__ = ["load_image", "to_uint8"]

#: Images are downscaled so that their longer side is at most this many pixels.
MAX_SIDE = 4096


def to_uint8(img) -> "Image.Image":  # noqa: F821
    """Bring 16-bit / 32-bit / float Pillow images to 8 bits by scaling their full range."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8), mode="L")
    return img


def load_image(path: str | Path, *, mode: str = "RGB", max_side: int = MAX_SIDE) -> np.ndarray:
    """Load an image as ``uint8`` (H, W, 3) for ``mode="RGB"`` or (H, W) for ``mode="L"``.

    Transparent pixels are composited on white; CMYK and palette images are converted; images
    with a side above ``max_side`` are reduced while decoding (JPEG draft mode) and then resized,
    so memory stays bounded.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    check_file(path, "an image")
    Image.MAX_IMAGE_PIXELS = 2 * max_pixels()  # Pillow's own guard, behind ours
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels():
                raise MediaError(path, f"image is {w}x{h} pixels: larger than the "
                                       f"{max_pixels() / 1e6:.0f}-megapixel limit "
                                       "(EMOFUSE_MAX_PIXELS)")
            if max(w, h) > max_side:
                img.draft("RGB" if mode == "RGB" else "L", (max_side, max_side))
            img.load()
            img = to_uint8(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA")
                bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(bg, img)
            img = img.convert(mode)
            if max(img.size) > max_side:
                img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return np.asarray(img, dtype=np.uint8).copy()
    except MediaError:
        raise
    except UnidentifiedImageError:
        raise MediaError(path, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise MediaError(path, f"image is larger than the {max_pixels() / 1e6:g}-megapixel "
                               "limit (EMOFUSE_MAX_PIXELS)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(path, f"corrupt or truncated image ({exc})") from None
