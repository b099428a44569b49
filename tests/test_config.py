"""Configuration: defaults, file, environment overrides, and a clear message for each error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seglake import cli
from seglake.config import ConfigError, SeglakeConfig, env_overrides, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seglake.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_holds_the_documented_local_defaults():
    config = load_config(REPO / "conf" / "seglake.yaml", environ={})
    assert config == SeglakeConfig()
    assert config.lakehouse.root == "./lakehouse"
    assert config.landing.root == "./demo/landing"
    assert config.truth.root == "./demo/truth"
    assert config.reports.root == "./reports"
    assert config.lakehouse.backend == "auto"


def test_environment_overrides_single_values(tmp_path):
    path = write(tmp_path, "lakehouse:\n  root: /data/lh\nspark:\n  shuffle_partitions: 16\n")
    config = load_config(path, environ={
        "SEGLAKE__LAKEHOUSE__ROOT": "/tmp/lh",
        "SEGLAKE__SPARK__SHUFFLE_PARTITIONS": "4",
        "SEGLAKE__SPARK__UI_ENABLED": "true",
        "SEGLAKE__SPARK__CONF__SPARK.EXECUTOR.MEMORY": "8g",
        "UNRELATED": "x",
    })
    assert config.lakehouse.root == "/tmp/lh"
    assert config.spark.shuffle_partitions == 4
    assert config.spark.ui_enabled is True
    assert config.spark.conf == {"spark.executor.memory": "8g"}
    assert config.spark.master == "local[*]"  # untouched keys keep the file's or default value


def test_unknown_key_is_named_with_its_file(tmp_path):
    path = write(tmp_path, "lakehouse:\n  rooot: /x\n")
    with pytest.raises(ConfigError, match=r"unknown key 'lakehouse.rooot' in .*seglake.yaml"):
        load_config(path, environ={})


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'lakehose'"):
        load_config(write(tmp_path, "lakehose:\n  root: /x\n"), environ={})


def test_wrong_type_is_named_with_the_value(tmp_path):
    path = write(tmp_path, "spark:\n  shuffle_partitions: many\n")
    with pytest.raises(ConfigError, match=r"key 'spark.shuffle_partitions'.*'many'"):
        load_config(path, environ={})


def test_bad_value_from_environment_names_the_variable():
    with pytest.raises(ConfigError, match="SEGLAKE__LAKEHOUSE__BACKEND"):
        load_config(None, environ={"SEGLAKE__LAKEHOUSE__BACKEND": "parquet"})
    with pytest.raises(ConfigError, match="unknown key 'lakehouse.colour'.*SEGLAKE__LAKEHOUSE"):
        load_config(None, environ={"SEGLAKE__LAKEHOUSE__COLOUR": "red"})


def test_malformed_variable_name():
    with pytest.raises(ConfigError, match="SEGLAKE__<SECTION>__<KEY>"):
        env_overrides({"SEGLAKE__LAKEHOUSE": "x"})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_invalid_yaml_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(write(tmp_path, "lakehouse: [unclosed\n"), environ={})
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(write(tmp_path, "- a\n- b\n"), environ={})


def test_cli_reports_config_errors_before_spark_starts(tmp_path, monkeypatch, capsys):
    import seglake.session

    def no_spark(*_args, **_kwargs):
        raise AssertionError("Spark must not start on a bad config")

    monkeypatch.setattr(seglake.session, "get_spark", no_spark)
    assert cli.main(["check", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    bad = write(tmp_path, "spark:\n  master: 3\n  shuffle_partitions: -1\n")
    assert cli.main(["--config", str(bad), "check"]) == 2
    err = capsys.readouterr().err
    assert "spark.shuffle_partitions" in err and "spark.master" in err


def test_docs_hold_the_generated_config_reference_and_the_readme_fits_on_a_screen():
    from seglake.config import config_reference

    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert config_reference() in docs, "run `seglake config --reference` and paste it"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert len(readme.splitlines()) < 200
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):  # every linked page exists
        assert (REPO / link).is_file(), link


def test_list_valued_keys_are_overridden_from_the_environment():
    config = load_config(None, environ={
        "SEGLAKE__QUALITY__BLOCKING": "[]",
        "SEGLAKE__IDENTITY__DETERMINISTIC": "[[email], [loyalty_id]]"})
    assert config.quality.blocking == []
    assert config.identity.deterministic == [["email"], ["loyalty_id"]]
