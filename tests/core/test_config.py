"""driftloop.yaml and environment overrides."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from driftloop.core.config import SETTINGS, env_var, load_config, parse_duration
from driftloop.errors import ConfigError


def test_defaults_apply_without_a_config_file(tmp_path: Path) -> None:
    """A folder without driftloop.yaml gets the embedded defaults (SQLite and local files)."""
    config = load_config(tmp_path, env={})
    assert config.metadata.url == f"sqlite:///{tmp_path.resolve()}/.driftloop/metadata.db"
    assert config.artifacts.uri == ".driftloop/artifacts"
    assert config.ingest.future_tolerance == timedelta(minutes=5)
    assert config.source is None


def test_file_values_are_read_and_nested_keys_map_to_dotted_settings(tmp_path: Path) -> None:
    """Nested YAML mappings set the dotted settings they spell."""
    (tmp_path / "driftloop.yaml").write_text(
        "name: shop\nmetadata:\n  url: postgresql+psycopg://u@h/db\n"
        "ingest:\n  future_tolerance: 1h\n  sample_failures: 3\n"
    )
    config = load_config(tmp_path, env={})
    assert config.name == "shop"
    assert config.metadata.url == "postgresql+psycopg://u@h/db"
    assert config.ingest.future_tolerance == timedelta(hours=1)
    assert config.ingest.sample_failures == 3


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    """DRIFTLOOP_METADATA_URL wins over the file's metadata.url."""
    (tmp_path / "driftloop.yaml").write_text("metadata:\n  url: sqlite:///a.db\n")
    config = load_config(tmp_path, env={"DRIFTLOOP_METADATA_URL": "sqlite:////tmp/b.db"})
    assert config.metadata.url == "sqlite:////tmp/b.db"


def test_unknown_key_is_an_error_naming_key_and_file(tmp_path: Path) -> None:
    """A misspelt setting is refused with its dotted key and the file."""
    path = tmp_path / "driftloop.yaml"
    path.write_text("metadata:\n  ulr: sqlite:///x.db\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    assert info.value.key == "metadata.ulr"
    assert info.value.file == str(path)
    assert "metadata.ulr" in str(info.value)


def test_wrong_type_names_the_key_and_the_environment_variable(tmp_path: Path) -> None:
    """A value of the wrong type from the environment names the variable."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={"DRIFTLOOP_INGEST_SAMPLE_FAILURES": "many"})
    assert info.value.key == "ingest.sample_failures"
    assert "DRIFTLOOP_INGEST_SAMPLE_FAILURES" in str(info.value)


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    """Broken YAML is a ConfigError with the line and column of the problem."""
    (tmp_path / "driftloop.yaml").write_text("name: x\nmetadata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+"):
        load_config(tmp_path, env={})


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    """The config file must be a mapping."""
    (tmp_path / "driftloop.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path, env={})


def test_every_setting_has_help_and_an_environment_variable() -> None:
    """Each declared setting documents itself and can be overridden from the environment."""
    for setting in SETTINGS:
        assert setting.help
        assert env_var(setting.key).startswith("DRIFTLOOP_")


def test_every_setting_is_documented_in_the_configuration_page() -> None:
    """docs/configuration.md lists every setting key and its environment variable."""
    page = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.key}`" in page
        assert env_var(setting.key) in page


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("6h", timedelta(hours=6)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_durations_parse_with_units(text: str, expected: timedelta) -> None:
    """Durations are written as a number and a unit."""
    assert parse_duration(text) == expected


def test_a_duration_without_unit_is_refused() -> None:
    """'7' alone is ambiguous and refused."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration("7")
