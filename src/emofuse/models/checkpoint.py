"""Exported models: ``model.safetensors`` (weights, never pickled) + ``card.json`` (model card).

>>> save_model("models/ravdess-mlp", module, {"labels": [...], "features": {...},
...            "data": {...}, "protocol": {...}, "metrics": {...}})     # doctest: +SKIP
>>> state_dict, card = load_model("models/ravdess-mlp")                 # doctest: +SKIP

The card says what the model expects and how good it is: its ``labels`` (output order),
``features`` (extractor settings), training ``data``, ``protocol`` and ``metrics``; emofuse
fills in ``emofuse_version``, ``torch_version``, ``created`` (UTC), ``num_parameters`` and the
weights' ``weights_sha256``, which :func:`load_model` checks. Loading reads only safetensors
and JSON, so a model folder from anyone is safe to open.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import DataError
from ..paths import file_sha256

if TYPE_CHECKING:
    import torch

__all__ = ["save_model", "update_card", "load_model", "read_card", "MODEL_FILE", "CARD_FILE", "REQUIRED_CARD_KEYS",
           "CARD_FORMAT"]

MODEL_FILE = "model.safetensors"
CARD_FILE = "card.json"
CARD_FORMAT = "emofuse-model/1"
#: Keys the caller must give; see :func:`save_model`.
REQUIRED_CARD_KEYS = ("labels", "features", "data", "protocol", "metrics")


def _canonical_header(path: Path) -> None:
    """Rewrite a safetensors file's JSON header with sorted keys (same length, space-padded as
    the format allows), so that the same tensors give the same bytes and ``weights_sha256``:
    the writer orders the header's keys differently from one process to the next."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        new = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
        if len(new) > n:            # cannot happen for the writer's compact JSON; keep it
            return
        f.seek(8)
        f.write(new + b" " * (n - len(new)))


def save_model(path_dir: str | os.PathLike, module_or_state_dict: Any,
               card: Mapping[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``card.json`` into ``path_dir`` (created if needed).

    Parameters
    ----------
    module_or_state_dict
        A ``torch.nn.Module`` (its ``state_dict()`` is saved) or a mapping of names to tensors.
    card
        Must hold ``labels`` (distinct label names in output order), ``features`` (mapping of
        feature settings), ``data`` and ``protocol`` (what it was trained and evaluated on) and
        ``metrics`` (mapping of metric names to values); any further JSON-serialisable keys are
        kept. The automatic keys are filled in (and overwrite given ones).

    Returns
    -------
    Path
        ``path_dir``.

    Raises
    ------
    ValueError
        When the card lacks a required key, has a malformed one, is not JSON-serialisable, or
        the state dict holds something other than tensors.
    """
    import torch
    from safetensors.torch import save_file

    state = module_or_state_dict.state_dict() if isinstance(module_or_state_dict,
                                                           torch.nn.Module) \
        else module_or_state_dict
    tensors = _tensors(state)
    problems = _card_problems(card)
    if problems:
        raise ValueError("model card: " + "; ".join(problems))
    out = Path(path_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    from ..integrity import remove_stale_temps, temp_path

    remove_stale_temps(out)  # what a save killed mid-write left behind
    # Both files are written and checked as temporaries, then moved into place back to back:
    # a save killed at any point leaves the previous model or the new one (the only gap is
    # between the two renames), never new weights beside an old card for long.
    w_tmp, c_tmp = temp_path(model_path), temp_path(out / CARD_FILE)
    try:
        save_file(tensors, str(w_tmp), metadata={"format": "pt", "emofuse_version": __version__})
        _canonical_header(w_tmp)
        full = {**card,
                "format": CARD_FORMAT,
                "emofuse_version": __version__,
                "torch_version": torch.__version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "num_parameters": int(sum(t.numel() for t in tensors.values())),
                "weights_sha256": file_sha256(w_tmp)}
        try:
            text = json.dumps(full, indent=2, ensure_ascii=False, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model card is not JSON-serialisable: {exc}") from exc
        c_tmp.write_text(text + "\n", encoding="utf-8")
        for tmp in (w_tmp, c_tmp):
            os.chmod(tmp, 0o644)  # safetensors writes 0600; models are shared and packaged
        os.replace(w_tmp, model_path)
        os.replace(c_tmp, out / CARD_FILE)
    finally:
        w_tmp.unlink(missing_ok=True)
        c_tmp.unlink(missing_ok=True)
    return out


def update_card(path_dir: str | os.PathLike, fields: Mapping[str, Any]) -> Path:
    """Add ``fields`` to the card of the model folder ``path_dir`` (the weights and the
    automatic keys are left as they are); written to a temporary file and renamed."""
    from ..integrity import atomic_write

    card_path = Path(path_dir) / CARD_FILE
    auto = {"format", "emofuse_version", "torch_version", "created", "num_parameters",
            "weights_sha256"}
    if clash := sorted(auto & set(fields)):
        raise ValueError(f"model card: {', '.join(clash)} are written by save_model")
    card = {**_read_card(card_path), **fields}
    text = json.dumps(card, indent=2, ensure_ascii=False, allow_nan=True) + "\n"
    atomic_write(card_path, text.encode("utf-8"))
    return card_path


def load_model(path_dir: str | os.PathLike, *, numpy: bool = False
               ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a folder written by :func:`save_model`: ``(state_dict, card)`` (tensors on CPU;
    numpy arrays with ``numpy=True``, which does not import torch).

    Raises
    ------
    DataError
        Naming the file, when the folder or a file is missing, unreadable or corrupt, or when
        the weights do not match the checksum in the card.
    """
    folder = Path(path_dir)
    if not folder.is_dir():
        raise DataError(folder, "model folder not found (it should hold "
                        f"{MODEL_FILE} and {CARD_FILE})")
    card_path, model_path = folder / CARD_FILE, folder / MODEL_FILE
    card = _read_card(card_path)
    if not model_path.is_file():
        raise DataError(model_path, "weights file missing")
    expected = card.get("weights_sha256")
    if expected and file_sha256(model_path) != expected:
        raise DataError(model_path, "weights do not match the checksum in card.json (the file "
                        "was changed or is corrupt)")
    try:
        if numpy:
            from safetensors.numpy import load_file as load_np

            state = load_np(str(model_path))
        else:
            from safetensors.torch import load_file

            state = load_file(str(model_path), device="cpu")
    except Exception as exc:  # safetensors raises its own error type for every kind of damage
        raise DataError(model_path, f"not a readable safetensors file ({exc})") from exc
    return state, card


def read_card(path_dir: str | os.PathLike) -> dict[str, Any]:
    """The validated ``card.json`` of a model folder, without loading the weights."""
    folder = Path(path_dir)
    if not folder.is_dir():
        raise DataError(folder, f"model folder not found (it should hold {MODEL_FILE} and "
                        f"{CARD_FILE})")
    return _read_card(folder / CARD_FILE)


def _read_card(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(path, "model card missing")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg}") from exc
    if not isinstance(card, dict):
        raise DataError(path, "a model card must be a JSON object")
    problems = _card_problems(card)
    if problems:
        raise DataError(path, "; ".join(problems))
    return card


def _card_problems(card: Any) -> list[str]:
    if not isinstance(card, Mapping):
        return [f"must be a mapping, got {type(card).__name__}"]
    problems = []
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        problems.append(f"missing required keys: {', '.join(missing)}")
    labels = card.get("labels")
    if "labels" in card and (not isinstance(labels, (list, tuple)) or not labels
                             or not all(isinstance(x, str) and x for x in labels)
                             or len(set(labels)) != len(labels)):
        problems.append("labels must be a non-empty list of distinct label names")
    for key in ("features", "metrics"):
        if key in card and not isinstance(card[key], Mapping):
            problems.append(f"{key} must be a mapping, got {type(card[key]).__name__}")
    metrics = card.get("metrics")
    if isinstance(metrics, Mapping):
        bad = [k for k, v in metrics.items() if not _is_metric(v)]
        if bad:
            problems.append(f"metrics must be numbers (or nested mappings/lists of numbers): "
                            f"{', '.join(map(str, bad))}")
    return problems


def _is_metric(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)) or v is None:
        return True
    if isinstance(v, Mapping):
        return all(_is_metric(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return all(_is_metric(x) for x in v)
    return False


def _tensors(state: Any) -> dict[str, torch.Tensor]:
    import torch

    if not isinstance(state, Mapping) or not state:
        raise ValueError("expected a torch module or a non-empty mapping of names to tensors")
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"state dict entry {k!r} is of type {type(v).__name__}, not a tensor")
        # own contiguous CPU copies: safetensors refuses tensors that share memory
        out[str(k)] = v.detach().to("cpu", copy=True).contiguous()
    return out
