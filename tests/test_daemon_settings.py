"""One table of akidad settings (daemon/settings.py) drives the config file parser, the
SIGHUP reload, the range checks and `akidad --help`; the docs' table is the table's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from akida_rt.daemon.app import build_parser
from akida_rt.daemon.config import Config, apply_file, check_ranges
from akida_rt.daemon.settings import BY_NAME, RELOADABLE, SETTINGS, markdown_table

from akida_rt.errors import DaemonError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "daemon.md"
NOT_SETTINGS = {"user_mode", "config_path", "generation"}  # where a config came from


def test_config_fields_are_the_settings_with_their_types_and_defaults() -> None:
    fields = {f.name: f for f in dataclasses.fields(Config) if f.name not in NOT_SETTINGS}
    assert set(fields) == set(BY_NAME)
    config = Config()
    for s in SETTINGS:
        value = getattr(config, s.name)
        assert isinstance(value, s.type), s.name
        assert value == s.default, s.name


def test_the_docs_table_is_the_settings_table() -> None:
    assert markdown_table() in DOCS.read_text(), (
        "docs/daemon.md's settings table is not daemon/settings.py's: paste the output of "
        "`python -m akida_rt.daemon.settings`"
    )


def test_every_option_is_a_setting_with_its_meaning() -> None:
    parser = build_parser()
    help_text = parser.format_help()
    for s in SETTINGS:
        if s.option:
            assert s.option in help_text and parser.get_default(s.name) is None


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.range_text], ids=lambda s: s.name)
def test_each_range_is_enforced_from_file_and_command_line(setting, tmp_path) -> None:
    bad = (setting.at_least - 1) if setting.at_least is not None else setting.above
    bad = setting.type(bad)
    with pytest.raises(DaemonError, match=setting.name):
        check_ranges({setting.name: bad}, "command line")
    path = tmp_path / "akidad.toml"
    path.write_text(f"{setting.name} = {bad!r}\n")
    with pytest.raises(DaemonError, match=f"{path}: {setting.name} must be"):
        apply_file(Config(), path)


def test_reload_takes_only_reloadable_settings(tmp_path) -> None:
    path = tmp_path / "akidad.toml"
    path.write_text('log_level = "DEBUG"\nshm_threshold = 8192\ndevice_timeout_scale = 3.0\n')
    new = apply_file(Config(), path, only_reloadable=True)
    assert (new.log_level, new.shm_threshold, new.device_timeout_scale) == ("DEBUG", 8192, 1.0)
    assert "device_timeout_scale" not in RELOADABLE and "log_level" in RELOADABLE
