"""The latency suites (``live-latency``, ``product-latency``) as Suite classes: registration,
typed parameters, the task check and the examples-folder check (their runs measure times on
the bundled models: ``emofuse bench live-latency --quick`` / ``product-latency --quick``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emofuse.config import load_config
from emofuse.errors import ConfigError, DataError
from emofuse.recipes import config_path, get_suite
from emofuse.recipes.live import LiveLatency, LiveParams, live_latency
from emofuse.recipes.product import ProductLatency, ProductParams, product_latency


@pytest.mark.parametrize("suite, params, run", [
    (LiveLatency, LiveParams, live_latency), (ProductLatency, ProductParams, product_latency)])
def test_registered_typed_and_checked(suite, params, run, tmp_path: Path) -> None:
    assert get_suite(suite.name) is suite and run == suite.run
    cfg = load_config(config_path(suite.name))
    assert isinstance(suite(cfg, quick=True).p, params)
    bad = cfg.model_copy(deep=True)
    bad.task.modality = "speech"
    with pytest.raises(ConfigError, match="task.modality must be fusion"):
        run(bad, quick=True)
    cfg.data.root = tmp_path            # no example files there
    with pytest.raises(DataError, match="examples folder"):
        run(cfg, quick=True)
