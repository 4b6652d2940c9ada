"""Settings: units, validation with one line naming key and source, and precedence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.model import settings
from daemon.model.settings import Settings, SettingsError, from_mapping, load
from daemon.model.units import (
    DurationError,
    SizeError,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("16M", 16 << 20),
        ("16m", 16 << 20),
        ("16MiB", 16 << 20),
        ("1GiB", 1 << 30),
        ("512k", 512 << 10),
        ("1.5K", 1536),
        ("2 MB", 2_000_000),
        ("1kB", 1000),
        ("10b", 10),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "16Q", "-1M", "1e9", "nan", "16 M B", "x" * 100])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(SizeError):
        parse_size(text)


@pytest.mark.parametrize("text", ["", "abc", "1e3", "inf", "-5s", "10 s", "5x", "1" * 100])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.25, 1.0, 30.0, 1.5, 120.0, 5400.0, 7200.0, 0.001])
def test_format_duration_reads_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("size", [1, 4096, 16 << 20, 1 << 30, 3 << 40, 1000])
def test_format_size_reads_back(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    got = load(tmp_path, {})
    assert got == Settings(sources=got.sources)
    assert {got.source(key.name) for key in settings.KEYS} == {"default"}
    assert got.config_file is None


def test_environment_overrides_config_file_overrides_defaults(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'start_timeout = "2m"\ndaemon_grace = 5\nlog_max_bytes = "1GiB"\n'
    )
    got = load(tmp_path, {"FLOW_START_TIMEOUT": "250ms", "FLOW_DAEMON_LOG_LEVEL": "debug"})
    assert (got.start_timeout, got.daemon_grace, got.log_max_bytes) == (0.25, 5.0, 1 << 30)
    assert got.daemon_log_level == "DEBUG"
    assert got.send_timeout == 10.0
    assert dict(got.sources) == {
        "start_timeout": "environment",
        "daemon_grace": "config.toml",
        "send_timeout": "default",
        "log_max_bytes": "config.toml",
        "cluster_heartbeat": "default",
        "cluster_lost_after": "default",
        "cluster_grace": "default",
        "daemon_log_level": "environment",
        "log_level": "default",
    }
    assert got.config_file == str(tmp_path / "config.toml")


def test_an_empty_variable_is_unset(tmp_path: Path) -> None:
    assert load(tmp_path, {"FLOW_START_TIMEOUT": "  "}).source("start_timeout") == "default"


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"FLOW_START_TIMEOUT": "abc"},
            "FLOW_START_TIMEOUT=abc (environment): expected a duration like 30s",
        ),
        (
            {"FLOW_LOG_MAX_BYTES": "16Q"},
            "FLOW_LOG_MAX_BYTES=16Q (environment): expected a size like 16MiB",
        ),
        (
            {"FLOW_START_TIMEOUT": "0"},
            "FLOW_START_TIMEOUT=0 (environment): must be more than 0s and at most 1h",
        ),
        (
            {"FLOW_DAEMON_GRACE": "100ms"},
            "FLOW_DAEMON_GRACE=100ms (environment): must be at least 2s and at most 24h (a run "
            "keeper hears from its daemon every second: a shorter grace would take it for gone "
            "and stop every node)",
        ),
        (
            {"FLOW_LOG_MAX_BYTES": "100"},
            "FLOW_LOG_MAX_BYTES=100 (environment): must be between 4KiB and 1TiB",
        ),
        (
            {"FLOW_DAEMON_LOG_LEVEL": "loud"},
            "FLOW_DAEMON_LOG_LEVEL=loud (environment): "
            "expected a log level (debug, info, warning, error, critical)",
        ),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, env)
    assert str(caught.value) == line


def test_the_size_the_old_parser_refused_is_accepted(tmp_path: Path) -> None:
    assert load(tmp_path, {"FLOW_LOG_MAX_BYTES": "16M"}).log_max_bytes == 16 << 20


@pytest.mark.parametrize(
    ("text", "tail"),
    [
        ('start_timeout = "abc"\n', "start_timeout: expected a duration like 30s"),
        ("start_timeout = true\n", "start_timeout: expected a duration like 30s, got bool True"),
        ("log_max_bytes = 1.5\n", "log_max_bytes: expected a size like 16MiB, got 1.5"),
        ("daemon_log_level = 10\n", "daemon_log_level: expected a log level"),
        ("start_timout = 5\n", "unknown key 'start_timout' (did you mean 'start_timeout'?)"),
        ("zzz = 5\n", "unknown key 'zzz' (known: start_timeout,"),
        ("start_timeout = [\n", "not valid TOML"),
        ("x = " + "[" * 500 + "]" * 500 + "\n", "not valid TOML: nested too deep"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, tail: str
) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, {})
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'config.toml'}: ")
    assert tail in message
    assert "\n" not in message


def test_a_fifo_in_place_of_the_config_file_is_refused_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.toml")  # opened plainly, it waits for a writer for ever
    with pytest.raises(SettingsError, match=r"config\.toml: not a regular file$"):
        load(tmp_path, {})


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('send_timeout = "x"\n')
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, {"FLOW_START_TIMEOUT": "abc"})
    assert "config.toml: send_timeout:" in str(caught.value)
    assert "FLOW_START_TIMEOUT=abc (environment)" in str(caught.value)


def test_handed_over_settings_are_checked_again() -> None:
    got = from_mapping({"log_max_bytes": 8192, "daemon_grace": 2.5}, "the daemon")
    assert (got.log_max_bytes, got.daemon_grace, got.start_timeout) == (8192, 2.5, 30.0)
    assert got.source("log_max_bytes") == "the daemon"
    with pytest.raises(SettingsError, match=r"^the daemon: log_max_bytes: must be between"):
        from_mapping({"log_max_bytes": -1}, "the daemon")
    assert from_mapping(Settings(start_timeout=3.0).values(), "x").start_timeout == 3.0


def test_current_reads_flow_home_once_when_none_was_installed(
    flow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "_current", None)
    (flow_home / "config.toml").write_text('send_timeout = "3s"\n')
    assert settings.current().send_timeout == 3.0
    (flow_home / "config.toml").write_text('send_timeout = "4s"\n')
    assert settings.current().send_timeout == 3.0  # read once
    assert settings.install(Settings(send_timeout=5.0)) is settings.current()


def test_an_unreadable_or_oversized_config_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").mkdir()
    with pytest.raises(SettingsError, match=r"config\.toml: not a regular file$"):
        load(tmp_path, {})
    (tmp_path / "config.toml").rmdir()
    (tmp_path / "config.toml").write_text("# padding\n" * 10_000)
    with pytest.raises(SettingsError, match=r"config\.toml: larger than 65536 bytes$"):
        load(tmp_path, {})
    (tmp_path / "config.toml").write_bytes(b"start_timeout = '\xff'\n")
    with pytest.raises(SettingsError, match=r"config\.toml: not UTF-8 text$"):
        load(tmp_path, {})
