"""Recipes: benchmark suites and per-modality train/evaluate entry points.

The library (corpora, features, models, training harness, metrics) knows nothing of recipes;
a recipe wires them together from one :class:`~emofuse.config.RunConfig`.

A modality module (``emofuse.recipes.speech``, ``.face``, ``.text``, ``.fusion``) provides::

    def train(cfg: RunConfig, *, out_dir: Path, quick: bool = False) -> Path   # model folder
    def evaluate(model_dir: Path, records: list[Record], *, corpus: str) -> dict
        # {"metrics": {name: {"mean", "std", "per_fold"}}, "per_class", "confusion",
        #  "classes", "items": int, "skipped": [{"path"/"id", "reason"}], ...}

and registers its benchmark suites as :class:`Suite` subclasses (``_suite.py``), the base
owning the preamble (task check, typed ``model.params``, seeds, timer, fold records, result)::

    class LdaParams(Params):            # the suite's typed ``model.params``
        n_components: int | None = None

    class SerRavdess(Suite, name="ser-ravdess", modality="speech", params={"model": LdaParams},
                     description="RAVDESS speech, EmoBox folds"):

        def body(self) -> dict:                            # a result dict
            records, classes, splits = self.fold_records()
            ...                                            # self.p: the typed LdaParams
            return self.result(protocol=..., classes=classes, parts={"": outputs})

A suite's schemas are checked when its configuration loads (:func:`load_suite_config`), each
problem with its YAML line.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ..config import CardFacts, RunConfig, load_config
from ..errors import ConfigError
from ._suite import _SUITES, MODALITY_MODULES, Suite, suite

__all__ = ["Suite", "suite", "get_suite", "list_suites", "get_modality", "config_path",
           "load_suite_config", "train_model", "card_facts", "quote_card"]


def list_suites() -> list[type[Suite]]:
    return [_SUITES[n] for n in _SUITES.names()]


def get_suite(name: str) -> type[Suite]:
    _SUITES.load()      # every suite module: a suite's name does not say which module has it
    return _SUITES.get(name)


def load_suite_config(path: str | Path, suite_name: str | None = None) -> RunConfig:
    """Load a run configuration and check its ``params`` sections against the schemas of
    its suite (``suite_name``, else the file's ``suite`` field, when that suite exists)."""
    cfg = load_config(path)
    name = suite_name or cfg.suite
    _SUITES.load()
    s = _SUITES.get(name, None)
    return load_config(path, params=s.params) if s is not None and s.params else cfg


def explain_suite_config(path: str | Path) -> list[str]:
    """Problems of a configuration file, its suite's parameter schemas included."""
    from ..config import explain_config_errors

    problems = explain_config_errors(path)
    if problems:
        return problems
    name = load_config(path).suite
    _SUITES.load()
    s = _SUITES.get(name, None)
    return explain_config_errors(path, params=s.params) if s is not None and s.params else []


def get_modality(modality: str) -> ModuleType:
    """The recipe module of ``modality`` (``speech``, ``face``, ``text``, ``fusion``)."""
    if modality not in MODALITY_MODULES:
        raise ConfigError(f"unknown modality {modality!r}; known: {', '.join(MODALITY_MODULES)}")
    try:
        return importlib.import_module(f"{__name__}.{modality}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{modality}":
            raise ConfigError(f"no recipe for modality {modality!r} yet") from None
        raise


def config_path(name: str) -> Path:
    """``configs/<name>.yaml`` in the working directory, else in the source checkout."""
    from ..paths import repo_root

    for base in (Path.cwd(), repo_root()):
        p = base / "configs" / f"{name}.yaml"
        if p.is_file():
            return p
    raise ConfigError(f"no config for suite {name!r}: configs/{name}.yaml not found "
                      "(give --config FILE)")


def train_model(cfg: RunConfig, *, out_dir: str | Path, quick: bool = False) -> Path:
    """Train the model ``cfg`` describes with its modality's recipe, then add the facts of
    ``output.card`` (corpora, languages, licences, quoted cross-corpus figures) to its card."""
    from ..models.checkpoint import update_card

    facts = card_facts(cfg.output.card) if cfg.output.card is not None else {}  # fail early
    path = Path(get_modality(cfg.task.modality).train(cfg, out_dir=out_dir, quick=quick))
    if facts:
        update_card(path, _mark_same_weights(facts, path))
    return path


def quote_card(cfg: RunConfig, folder: str | Path) -> Path:
    """Refresh, without training, the facts of ``output.card`` in the card of the model in
    ``folder`` (built from ``cfg``): the quoted cross-corpus figures re-read from their
    committed results and marked ``same_weights`` against ``folder``'s weights (nothing to
    do for a configuration without such facts)."""
    from ..models.checkpoint import update_card

    path = Path(folder)
    if not (path / "card.json").is_file():
        raise ConfigError(f"{path}: no card.json (build the model first)")
    if cfg.output.card is None:
        return path
    update_card(path, _mark_same_weights(card_facts(cfg.output.card), path))
    return path


def _mark_same_weights(facts: dict, folder: Path) -> dict:
    """``facts`` with ``same_weights`` set on each quoted result that names its model: whether
    it measured these very weights (``folder``'s card ``weights_sha256``); None where the
    result did not record them. A retrained model quotes its predecessor's figures only so
    marked."""
    import json

    quoted = facts.get("cross_corpus_results")
    if not quoted:
        return facts
    sha = json.loads((folder / "card.json").read_text(encoding="utf-8")).get("weights_sha256")
    marked = {}
    for name, q in quoted.items():
        if "model" in q:
            m = q.get("measured_weights_sha256")
            q = {**q, "same_weights": None if m is None or sha is None else m == sha}
        marked[name] = q
    return {**facts, "cross_corpus_results": marked}


def card_facts(facts: CardFacts) -> dict:
    """The card fields of ``facts``; each quoted result read from its committed JSON.

    Raises ``ConfigError`` naming a result file that is missing, a metric it lacks, or a
    result that did not measure the model its reference names (``model``)."""
    import json

    from ..paths import repo_root

    out: dict = {k: v for k, v in (("training_corpora", facts.training_corpora),
                                   ("languages", facts.languages),
                                   ("licences", facts.licences)) if v}
    quoted = {}
    for ref in facts.cross_corpus:
        found = [b / ref.results for b in (Path.cwd(), repo_root()) if (b / ref.results).is_file()]
        if not found:
            raise ConfigError(f"output.card.cross_corpus: {ref.results} not found (run its "
                              "benchmark first)")
        r = json.loads(found[0].read_text(encoding="utf-8"))
        if missing := [m for m in ref.metrics if m not in r["metrics"]]:
            raise ConfigError(f"output.card.cross_corpus: {ref.results} has no metric "
                              f"{', '.join(missing)}")
        entry = {"source": ref.results, "git_commit": r.get("git_commit"),
                 "protocol": r.get("protocol"),
                 "metrics": {m: {"mean": r["metrics"][m]["mean"],
                                 "per_fold": r["metrics"][m]["per_fold"]}
                             for m in ref.metrics}}
        if ref.model is not None:
            measured = r.get("models") or {}
            if ref.model not in measured:
                raise ConfigError(f"output.card.cross_corpus: {ref.results} measured "
                                  f"{', '.join(map(str, measured)) or 'no named model'}, not "
                                  f"{ref.model}")
            entry["model"] = ref.model
            # the weights it measured (None: a result written before they were recorded)
            entry["measured_weights_sha256"] = measured[ref.model].get("weights_sha256")
        quoted[r["suite"]] = entry
    if quoted:
        out["cross_corpus_results"] = quoted
    return out
