"""``aug-speech-diffusion``: the core-containing subsets, the arm settings, and a --quick run
on the real RAVDESS subset (skipped without the data)."""

from __future__ import annotations

import json

import pytest

from emofuse.errors import ConfigError


def test_subsets_contain_the_core_and_params():
    from emofuse.config import load_config
    from emofuse.corpora import Record
    from emofuse.recipes import config_path
    from emofuse.recipes.aug_diffusion import AugDiffusionParams, with_core
    from emofuse.recipes.aug_tts import speaker_stratified

    classes = ["neutral", "angry"]
    recs = [Record(id=f"{s}-{c}-{i}", corpus="x", label_native=c, label=c, speaker=s)
            for s in "abcd" for c in classes for i in range(10)]
    core = speaker_stratified(recs, classes, 0.1, seed=0)
    assert with_core(recs, core, classes, 0.1, 0.1, seed=3) == core
    for seed in range(3):
        sub = with_core(recs, core, classes, 0.5, 0.1, seed=seed)
        assert {r.id for r in core} <= {r.id for r in sub} and len(sub) == 40
    assert with_core(recs, core, classes, 1.0, 0.1, seed=0) == recs
    cfg = load_config(config_path("aug-speech-diffusion"))
    p = AugDiffusionParams.of(cfg.model)
    assert p.arms["ddpm"].engines == ["ddpm"] and p.arms["real"].engines == []
    assert p.arms["ddpm_neutral"].classes == ["neutral"]
    assert p.arms["all"].engines == ["ddpm", "piper", "espeak"]
    assert p.tts_pool.model_dump() == {"per_class": 60, "seed": 0, "generator": {}}  # = tts
    assert p.quick.generator == {"steps": 3, "griffin_lim_iter": 2, "ddim_steps": 3, "crops": 1}
    cfg.model.params["arms"] = {"real": {}, "x": {"engine": ["piper"]}}
    with pytest.raises(ConfigError, match="unknown key"):
        AugDiffusionParams.of(cfg.model)
    cfg.model.params["arms"] = {"real": {}, "x": {"engines": ["gan"]}}
    with pytest.raises(ConfigError, match="engines"):
        AugDiffusionParams.of(cfg.model)
    cfg.model.params["arms"] = {"real": {}}
    cfg.model.params["core"] = 0.5
    with pytest.raises(ConfigError, match="core"):
        AugDiffusionParams.of(cfg.model)


@pytest.mark.slow
def test_quick_suite_on_ravdess(shared_data, tmp_path):
    from emofuse.config import load_config
    from emofuse.evaluate.results import write_result
    from emofuse.recipes import config_path, get_suite

    cfg = load_config(config_path("aug-speech-diffusion"))
    cfg.model.params["pool_dir"] = str(tmp_path / "pools")
    result = get_suite("aug-speech-diffusion").run(cfg, quick=True, log=lambda m: None)
    M = result["metrics"]
    for f in ("f50", "f100"):
        for arm in ("real", "ddpm", "ddpm_neutral", "tts", "all"):
            assert 0 <= M[f"ua_{arm}_{f}"]["mean"] <= 1
        assert "t_p" in result["comparisons"][f"ddpm_{f}"]["ua"]
        # + all draws from every generator's pool (quick: 2 per class, one from ddpm, piper)
        assert result["comparisons"][f"all_{f}"]["n_synthetic"] > 0
    g = result["generation"]["fold1"]
    assert g["clips"] == 16 and 0 < g["fitted_on_n"] == g["core_clips"]
    q = result["quality"]
    assert {"confidence", "diversity", "nearest_real_mean", "frechet"} <= set(q["ddpm"]["overall"])
    assert q["memorisation"]["synthetic_to_core_mean"] > 0
    assert "real + 10 synthetic clips per class (ddpm)" in result["notes"]
    assert "(ddpm + piper + espeak)" in result["notes"]
    assert {"ddpm", "piper", "espeak", "all"} <= set(q)
    result["suite"] += "-quick"
    jpath, mpath = write_result(result, tmp_path)
    assert json.loads(jpath.read_text())["settings"]["generator"]["ddim_steps"] == 3
    assert "Memorisation" in mpath.read_text()
    # a second run takes the fold's pool from the cache (two arms suffice to show it)
    cfg.model.params["arms"] = {a: cfg.model.params["arms"][a] for a in ("real", "ddpm")}
    again = get_suite("aug-speech-diffusion").run(cfg, quick=True, log=lambda m: None)
    assert again["generation"]["fold1"]["created"] == g["created"]      # pool from the cache
