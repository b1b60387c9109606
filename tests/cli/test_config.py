"""Run configuration files: the documented default loads; mistakes are named."""

from __future__ import annotations

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
