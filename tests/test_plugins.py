"""One ``Registry`` for models, features, corpora, generators, suites and adapters."""

from __future__ import annotations

import pytest

from emofuse._plugins import Registry
from emofuse.errors import ConfigError, DataError


def test_register_get_names_and_errors() -> None:
    r: Registry[int] = Registry("thing")
    assert r.register("b", 2) == 2
    r.decorator("a")(1)
    assert r.get("a") == 1 and r.names() == ["a", "b"]
    assert r.get("zzz", None) is None                    # dict-style default
    with pytest.raises(ConfigError, match="unknown thing 'zzz'; known: a, b"):
        r.get("zzz")
    strict = Registry("corpus", error=lambda msg: DataError(None, msg))
    with pytest.raises(DataError, match="unknown corpus 'x'; known: none yet"):
        strict.get("x")


def test_lazy_loading_imports_only_what_a_lookup_needs() -> None:
    """A name is found by importing the registering modules one at a time."""
    from emofuse import features, models
    from emofuse.augment import _REGISTRY as generators
    from emofuse.corpora._base import _REGISTRY as corpora
    from emofuse.inference import _ADAPTERS
    from emofuse.recipes import _SUITES

    for reg in (features._REGISTRY, models._REGISTRY, generators, corpora, _ADAPTERS, _SUITES):
        assert isinstance(reg, Registry) and isinstance(reg, dict)
    assert features.get_feature("whisper").modality == "speech"
    assert "lda" in models.list_models()
    with pytest.raises(ConfigError, match="unknown model 'nope'; known: .*lda"):
        models.build_model("nope")
    with pytest.raises(ConfigError, match="unknown benchmark suite 'nope'"):
        from emofuse.recipes import get_suite

        get_suite("nope")


def test_build_calls_the_factory_and_names_bad_parameters() -> None:
    reg: Registry = Registry("widget")
    reg.register("pair", lambda a, b=2: (a, b))
    assert reg.build("pair", a=1) == (1, 2)
    with pytest.raises(ConfigError, match=r"widget 'pair': .*unexpected keyword argument 'c'"):
        reg.build("pair", a=1, c=3)
