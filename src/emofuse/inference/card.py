"""Model folders: the one reader of ``card.json`` (:class:`ModelCard`, typed, read once per
load), the weights beside it, and where models are found (bundled names, folders, bundles).

A model folder holds ``model.safetensors`` + ``card.json`` (written by
:func:`emofuse.train.save_model`). :func:`read_card` parses and checks the card once;
predictors get the :class:`ModelCard` and read the weights with :func:`load_weights`, which
checks them against the card's checksum without reading the card again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from ..errors import DataError
from .types import BUNDLED_NAMES, MODALITIES, SR, ModelUnavailableError

__all__ = ["ModelCard", "ModelInfo", "read_card", "load_weights", "bundled_dir", "model_path",
           "resolve_models", "is_model_dir"]


class ModelCard(BaseModel):
    """The typed ``card.json`` of a model folder.

    The keys every predictor reads are typed fields; every other key of the file is kept and
    reachable as ``card["key"]`` / ``card.get("key")`` (a card reads like the JSON mapping it
    came from).
    """

    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())

    task: str | None = None
    labels: list[str]
    #: name of the loader (see :func:`emofuse.inference.register_predictor`); default: ``task``
    predictor: str | None = None
    #: speech models: ``waveform``, ``vector``, ``classical``, ``adaptive`` or ``ensemble``
    kind: str | None = None
    features: dict[str, Any] = {}
    #: ``{"name", "params"}`` of the network or estimator
    model: dict[str, Any] | None = None
    #: sample rate a speech model expects (audio is resampled to it)
    sr: int = SR
    #: speech: window of long recordings (seconds; 6 when absent)
    window_s: float | None = None
    setting: str = "inductive"
    temperature: float | None = None
    multilabel: bool = False
    max_len: int = 128
    #: fusion models: the modalities they weigh
    modalities: list[str] = []
    #: the ONNX copy of the network: ``{"file", "sha256", ...}``
    onnx: dict[str, Any] | None = None
    weights_sha256: str | None = None

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _folder: Path | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, data: dict[str, Any], *, folder: str | os.PathLike | None = None) -> ModelCard:
        """A card from the mapping of a ``card.json`` (``folder``: where it lies, for errors)."""
        where = None if folder is None else Path(folder) / "card.json"
        try:
            card = cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'card'}: {e['msg']}"
                                 for e in exc.errors())
            raise DataError(where, problems) from None
        card._raw = dict(data)
        card._folder = None if folder is None else Path(folder)
        return card

    @property
    def modality(self) -> str | None:
        """The task (``speech``, ``face``, ``text`` or ``fusion``)."""
        return self.task or self._raw.get("modality")

    @property
    def folder(self) -> Path | None:
        """The model folder the card was read from."""
        return self._folder

    @property
    def name(self) -> str | None:
        """``model.name`` (the network or estimator)."""
        return (self.model or {}).get("name")

    # -- the mapping of card.json -----------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self._raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def get(self, key: str, default: Any = None) -> Any:
        return self._raw.get(key, default)

    def keys(self) -> Any:
        return self._raw.keys()

    def items(self) -> Any:
        return self._raw.items()

    def to_dict(self) -> dict[str, Any]:
        """A copy of the card's mapping (as ``card.json`` holds it)."""
        return dict(self._raw)


def read_card(folder: str | os.PathLike) -> ModelCard:
    """The checked card of a model folder (the file is read here, once)."""
    from ..models.checkpoint import read_card as read_json

    return ModelCard.of(read_json(folder), folder=folder)


def load_weights(folder: str | os.PathLike, card: ModelCard, *, numpy: bool = False
                 ) -> dict[str, Any]:
    """The tensors of ``folder/model.safetensors`` (numpy arrays with ``numpy``: no torch),
    checked against ``card.weights_sha256``.

    Raises
    ------
    DataError
        Naming the file, when it is missing, corrupt or does not match the checksum.
    """
    from ..paths import file_sha256
    from ..models.checkpoint import MODEL_FILE

    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise DataError(path, "weights file missing")
    if card.weights_sha256 and file_sha256(path) != card.weights_sha256:
        raise DataError(path, "weights do not match the checksum in card.json (the file was "
                        "changed or is corrupt)")
    try:
        if numpy:
            from safetensors.numpy import load_file as load_arrays

            return load_arrays(str(path))
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error type for every kind of damage
        raise DataError(path, f"not a readable safetensors file ({exc})") from exc


# -- where models are ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """A model folder and its card."""

    name: str
    modality: str
    path: Path
    card: ModelCard = field(compare=False, repr=False)

    def describe(self) -> dict[str, Any]:
        """Public facts of the model (for ``GET /models`` and ``--json``)."""
        c = self.card
        keys = ("labels", "data", "protocol", "metrics", "features", "licence", "license",
                "figures", "description", "created", "emofuse_version", "num_parameters",
                "training_corpora", "languages", "licences", "cross_corpus",
                "cross_corpus_results")
        return {"name": self.name, "modality": self.modality,
                **{k: c[k] for k in keys if k in c}}


def bundled_dir() -> Path:
    """Folder of the bundled models: ``$EMOFUSE_MODELS`` or ``emofuse/bundled`` in the package."""
    env = os.environ.get("EMOFUSE_MODELS")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "bundled"


def is_model_dir(p: Path) -> bool:
    """Whether ``p`` holds a ``card.json``."""
    return (p / "card.json").is_file()


def _info(name: str, folder: Path) -> ModelInfo:
    card = read_card(folder)
    modality = card.modality
    if modality not in (*MODALITIES, "fusion"):
        raise DataError(folder / "card.json", f"task must be one of speech, face, text, fusion "
                        f"(got {modality!r})")
    return ModelInfo(name, str(modality), folder, card)


def _holds_models(p: Path) -> bool:
    """Whether ``p`` is a model folder or a folder of model folders."""
    return is_model_dir(p) or (p.is_dir() and any(
        d.is_dir() and is_model_dir(d) for d in p.iterdir()))


def model_path(name_or_path: str | os.PathLike) -> Path:
    """The folder of one model: a bundled name (``speech``, ``face``, ``text``, ``fusion``) or
    a path. A bundled name means the bundled model unless a folder of that name in the working
    directory holds models (a user's ``face/`` folder of images does not shadow it). Raises
    :class:`ModelUnavailableError` for a bundled name not shipped."""
    s = str(name_or_path)
    if s in BUNDLED_NAMES and not _holds_models(Path(s)):
        folder = bundled_dir() / s
        if not is_model_dir(folder):
            raise ModelUnavailableError(
                f"no {s} model available: the bundled folder {folder} holds no model (run "
                "`make models`, or pass a model folder)")
        return folder
    p = Path(s).expanduser()
    if not p.exists():
        raise DataError(p, "model not found: give a bundled name (speech, face, text, fusion, "
                        "default) or a model folder")
    return p


def resolve_models(name_or_path: str | os.PathLike = "default") -> list[ModelInfo]:
    """Models behind a name or path.

    ``default`` gives every bundled model present; ``speech``/``face``/``text``/``fusion`` one
    bundled model; a folder with ``card.json`` that model; a folder of model folders each
    of them (a bundle of your own).
    """
    s = str(name_or_path)
    if s == "default" and not _holds_models(Path(s)):
        base = bundled_dir()
        found = [_info(n, base / n) for n in BUNDLED_NAMES if is_model_dir(base / n)]
        if not found:
            raise ModelUnavailableError(
                f"no bundled models in {base}: run `make models` (or pass --model FOLDER)")
        return found
    folder = model_path(s)
    if is_model_dir(folder):
        name = s if s in BUNDLED_NAMES else folder.name
        return [_info(name, folder)]
    if folder.is_dir():
        subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and is_model_dir(d)]
        if subs:
            return [_info(d.name, d) for d in subs]
    raise DataError(folder, "not a model folder: card.json and model.safetensors missing")
