"""Run configuration files: the documented default loads; mistakes are named."""

from __future__ import annotations

import json

import pytest

from kscout.config import DEFAULT_CONFIG, ConfigError, RunConfig, load_config


def test_default_config_file_matches_the_models():
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.model_dump(exclude={"harness": {"cache_dir", "threads"}}) == \
        RunConfig().model_dump(exclude={"harness": {"cache_dir", "threads"}})
    assert "~" not in str(cfg.harness.cache_dir)


def test_unknown_field_and_bad_value_are_named(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('workload = "softmax"\n[search]\nattempts = 0\n[agents]\nproposer = "gpt"\n')
    with pytest.raises(ConfigError) as e:
        load_config(f)
    msg = str(e.value)
    assert str(f) in msg and "search.attempts" in msg and "agents.proposer" in msg


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_several_targets_become_one_config_each_with_its_backend():
    cfg = RunConfig.model_validate({"backend": "triton", "cluster": {"targets": ["H100=cuda", "accelerator_type:A100"]}})
    runs = cfg.per_target()
    assert [(c.cluster.target, c.backend, c.cluster.targets) for c in runs] == \
        [("H100", "cuda", []), ("accelerator_type:A100", "triton", [])]
    assert cfg.cluster.targets == ["H100=cuda", "accelerator_type:A100"]   # the search's own config is untouched
    assert RunConfig().per_target() == [RunConfig()]


@pytest.mark.parametrize("cluster, says", [
    ({"targets": ["H100", "H100=cuda"]}, "names a target twice"),
    ({"targets": ["H100="]}, "write NAME or NAME=BACKEND"),
    ({"target": "H100", "targets": ["MI300X"]}, "not both"),
    ({"targets": ["MI300X=rocm"]}, "names backend 'rocm', not a harness backend"),
])
def test_bad_targets_are_refused_naming_the_fix(tmp_path, cluster, says):
    f = tmp_path / "c.toml"
    f.write_text("[cluster]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in cluster.items()))
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert says in str(e.value) and str(f) in str(e.value)
