"""What a file holds, decided from its content, not its name: :func:`detect_kind`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import MediaError
from ..media._files import check_file
from .types import MEDIA_EXTENSIONS, Kind, UnsupportedMediaError

__all__ = ["detect_kind", "is_path"]

_IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "PPM", "MPO")


def _kind_from_extension(path: Path) -> str | None:
    ext = path.suffix.lower()
    return next((k for k, exts in MEDIA_EXTENSIONS.items() if ext in exts), None)


def _looks_like_text(head: bytes) -> bool:
    """Whether the first bytes of a file are text in a common encoding (see
    :func:`~emofuse.media.text.decode_text`), with almost no control characters."""
    from ..media.text import decode_text

    if not head:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = decode_text(head, "<head>")
    except MediaError:
        return False
    bad = sum(ord(ch) < 32 and ch not in "\t\n\x0c\r" for ch in text)
    return bad <= len(text) // 100


#: FFmpeg demuxers and codecs that "decode" any bytes (text art, raw pictures): never media here.
_AV_DENY_FORMATS = frozenset({"bin", "tty", "ansi", "adf", "xbin", "idf", "image2",
                              "image2pipe", "lavfi", "data"})
_AV_DENY_CODECS = frozenset({"bintext", "xbin", "idf", "ansi"})


def _av_kind(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as c:
            if c.format.name in _AV_DENY_FORMATS or c.format.name.endswith("_pipe") or any(
                    s.codec_context is not None and s.codec_context.name in _AV_DENY_CODECS
                    for s in c.streams):
                return None
            video = [s for s in c.streams if s.type == "video"
                     and not (int(getattr(s, "disposition", 0) or 0) & 0x400)]  # attached_pic
            audio = [s for s in c.streams if s.type == "audio"]
            if video:
                return "video"
            if audio:
                return "audio"
    except Exception:  # not a container PyAV knows
        return None
    return None


def detect_kind(path: str | os.PathLike) -> tuple[Kind, list[str]]:
    """What a file holds, decided from its content: ``(kind, warnings)``.

    A name whose extension promises another kind of media gives a warning; text content
    behind a media extension (an error page saved as ``.mp4``) is refused.

    Raises
    ------
    MediaError
        Missing, folder or empty file; a media name on content nothing can decode.
    UnsupportedMediaError
        Content that is none of audio, video, image or text.
    """
    from PIL import Image

    path = Path(path)
    check_file(path)
    claimed = _kind_from_extension(path)
    kind: str | None = None
    try:
        with Image.open(path, formats=_IMAGE_FORMATS):
            kind = "image"  # an animated GIF is read as its first frame
    except Image.DecompressionBombError:
        kind = "image"  # an image, too large: load_image refuses it with the limit
    except Exception:  # not an image Pillow knows
        pass
    if kind is None:
        with path.open("rb") as f:
            head = f.read(4096)
        if _looks_like_text(head):
            if claimed in ("audio", "video", "image"):
                raise UnsupportedMediaError(path, f"the name says {claimed} "
                                            f"({path.suffix}) but the file holds text")
            kind = "text"
        else:
            kind = _av_kind(path)
    if kind is None:
        if claimed in ("audio", "video", "image"):
            raise MediaError(path, f"cannot decode this {claimed} file ({path.suffix}): "
                             "corrupt, truncated or in a format emofuse does not read")
        raise UnsupportedMediaError(path, "unsupported file type: not audio, video, image or "
                                    "text that emofuse can decode")
    notes = []
    if claimed and claimed != kind:
        notes.append(f"{path.name}: the extension {path.suffix} suggests {claimed}, but the "
                     f"content is {kind}; read as {kind}")
    return kind, notes  # type: ignore[return-value]



def is_path(s: str) -> bool:
    """Whether a string names a file: it exists, or it is one word ending in a media
    extension (so that a mistyped path fails as a missing file, not as text to classify)."""
    if "\n" in s or len(s) > 4096 or not s.strip():
        return False
    try:
        if Path(s).expanduser().exists():
            return True
    except OSError:
        return False
    return " " not in s.strip() and _kind_from_extension(Path(s)) is not None
