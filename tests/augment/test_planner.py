"""Balancing planner: targets per strategy, generator allocation, plot."""

from __future__ import annotations

import pytest

from emofuse.augment import allocate, class_counts, plan_balance, plot_plan
from emofuse.errors import ConfigError

COUNTS = {"joy": 100, "sad": 60, "surprise": 10, "love": 30}


def test_max_raises_every_class_to_the_largest():
    plan = plan_balance(COUNTS)
    assert plan.targets == {c: 100 for c in COUNTS}
    assert plan.needed == {"joy": 0, "sad": 40, "surprise": 90, "love": 70}
    assert plan.total_needed == 200
    assert plan.after() == plan.targets


def test_fraction_and_caps_never_lower_a_class():
    plan = plan_balance(COUNTS, strategy="fraction", fraction=0.5)
    assert plan.needed == {"joy": 0, "sad": 0, "surprise": 40, "love": 20}
    capped = plan_balance(COUNTS, strategy="max", per_class=25)
    assert capped.needed == {"joy": 0, "sad": 25, "surprise": 25, "love": 25}
    assert plan_balance(COUNTS, cap=5).needed["surprise"] == 5


def test_fixed_and_budget():
    assert plan_balance(COUNTS, strategy="fixed", per_class=7).needed == {c: 7 for c in COUNTS}
    b = plan_balance(COUNTS, strategy="budget", budget=100)
    assert sum(b.needed.values()) == 100
    assert b.needed["joy"] == 0 and b.needed["surprise"] > b.needed["love"] > b.needed["sad"]
    # balanced counts: the budget is shared equally
    assert plan_balance({"a": 5, "b": 5}, strategy="budget", budget=4).needed == {"a": 2, "b": 2}


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown balancing strategy"):
        plan_balance(COUNTS, strategy="nope")
    with pytest.raises(ConfigError, match="per_class"):
        plan_balance(COUNTS, strategy="fixed")
    with pytest.raises(ConfigError, match="budget"):
        plan_balance(COUNTS, strategy="budget")
    with pytest.raises(ConfigError, match="fraction"):
        plan_balance(COUNTS, fraction=0)


def test_allocate_shares_and_respects_capacity():
    out = allocate({"a": 10, "b": 5}, {"llm": 1.0, "eda": 1.0})
    assert out["llm"]["a"] + out["eda"]["a"] == 10 and out["llm"]["b"] + out["eda"]["b"] == 5
    out = allocate({"a": 10}, {"llm": 3.0, "eda": 1.0}, capacity={"llm": {"a": 2}})
    assert out == {"llm": {"a": 2}, "eda": {"a": 8}}
    # what nobody can supply stays unfilled
    out = allocate({"a": 10}, {"llm": 1.0}, capacity={"llm": {"a": 4}})
    assert out == {"llm": {"a": 4}}
    assert allocate({"a": 3}, {"off": 0.0, "on": 1.0})["off"] == {"a": 0}


def test_class_counts_and_table_and_plot(tmp_path):
    class R:
        def __init__(self, label):
            self.label = label

    recs = [R("joy"), R("joy"), R("sad"), R(None)]
    assert class_counts(recs, ["joy", "sad", "love"]) == {"joy": 2, "sad": 1, "love": 0}
    plan = plan_balance(class_counts(recs, ["joy", "sad", "love"]))
    text = plan.table(added={"sad": 1})
    assert "love" in text.splitlines()[-1] and text.splitlines()[0].split()[0] == "class"
    png = plot_plan(plan, tmp_path / "p" / "plan.png", added={"love": 1})
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert plan.to_dict()["needed"] == {"joy": 0, "sad": 1, "love": 2}
