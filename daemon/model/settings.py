"""flow's settings: defaults < `$FLOW_HOME/config.toml` < environment, validated once at start.

A process reads them once (`install(load(...))` at its start: the daemon, `flow run`, the
CLI) and every part asks `current()` at the moment it needs a value, so nothing is parsed
at import time. Processes flow starts get the daemon's values, never their own reading:
the run keeper through its argument, nodes through `FLOW_NODE_CONFIG`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from daemon.model.errors import did_you_mean
from daemon.model.units import UnitError, format_duration, format_size, parse_duration, parse_size

__all__ = [
    "CONFIG_FILE",
    "KEYS",
    "Key",
    "Settings",
    "SettingsError",
    "current",
    "from_mapping",
    "install",
    "load",
]

CONFIG_FILE: Final = "config.toml"
MAX_CONFIG_BYTES: Final = 64 * 1024
DEFAULT: Final = "default"
ENVIRONMENT: Final = "environment"
LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Kind = Literal["duration", "size", "level"]
Value = float | int | str


class SettingsError(ValueError):
    """A setting that cannot be used; the message is one line naming the key and its source."""


@attrs.frozen
class Key:
    """One setting: its name in config.toml, its environment variable, kind, default, bounds."""

    name: str
    env: str
    kind: Kind
    default: Value
    help: str
    minimum: float = 0.0  # inclusive; a duration of 0 or less is refused whatever it says
    why_minimum: str = ""  # what a shorter value would do, said with the refusal
    maximum: float = 0.0

    def render(self, value: Value) -> str:
        """The value as a user would write it."""
        if self.kind == "duration":
            return format_duration(float(value))
        if self.kind == "size":
            return format_size(int(value))
        return str(value)


KEYS: Final[tuple[Key, ...]] = (
    Key(
        "start_timeout",
        "FLOW_START_TIMEOUT",
        "duration",
        30.0,
        "how long a run's nodes have to connect before its start fails; a node waits as long "
        "for its start",
        maximum=3600.0,
    ),
    Key(
        "daemon_grace",
        "FLOW_DAEMON_GRACE",
        "duration",
        30.0,
        "how long nodes and run keepers outlive a daemon that stopped answering",
        minimum=2.0,
        why_minimum=" (a run keeper hears from its daemon every second: a shorter grace "
        "would take it for gone and stop every node)",
        maximum=86400.0,
    ),
    Key(
        "send_timeout",
        "FLOW_SEND_TIMEOUT",
        "duration",
        10.0,
        "how long a node's send on a backpressure edge may block before it fails",
        maximum=3600.0,
    ),
    Key(
        "log_max_bytes",
        "FLOW_LOG_MAX_BYTES",
        "size",
        16 << 20,
        "the size at which a node's log file is rotated (3 older files are kept)",
        minimum=4096,
        maximum=float(1 << 40),
    ),
    Key(
        "cluster_heartbeat",
        "FLOW_CLUSTER_HEARTBEAT",
        "duration",
        1.0,
        "how often machines of a cluster send each other a heartbeat (docs/cluster.md)",
        minimum=0.05,
        why_minimum=" (more often, the heartbeats alone would keep the link busy)",
        maximum=60.0,
    ),
    Key(
        "cluster_lost_after",
        "FLOW_CLUSTER_LOST_AFTER",
        "duration",
        3.0,
        "silence after which a machine (or a member's coordinator) is `lost`; at least two "
        "heartbeats are waited for",
        maximum=600.0,
    ),
    Key(
        "cluster_grace",
        "FLOW_CLUSTER_GRACE",
        "duration",
        30.0,
        "how long a lost machine's nodes are waited for (kept running, re-adopted if it "
        "comes back) before they count as lost for good and stop by themselves",
        maximum=86400.0,
    ),
    Key("daemon_log_level", "FLOW_DAEMON_LOG_LEVEL", "level", "INFO", "the daemon log's level"),
    Key(
        "log_level",
        "FLOW_LOG_LEVEL",
        "level",
        "INFO",
        "the level of nodes' Python logging; a node's own `env:` may set FLOW_LOG_LEVEL",
    ),
)
_BY_NAME: Final = {key.name: key for key in KEYS}


@attrs.frozen
class Settings:
    """The effective settings of this process; `sources` says where each value came from."""

    start_timeout: float = 30.0
    daemon_grace: float = 30.0
    send_timeout: float = 10.0
    log_max_bytes: int = 16 << 20
    cluster_heartbeat: float = 1.0
    cluster_lost_after: float = 3.0
    cluster_grace: float = 30.0
    daemon_log_level: str = "INFO"
    log_level: str = "INFO"
    # (key, "default" | "config.toml" | "environment"), in KEYS order
    sources: tuple[tuple[str, str], ...] = ()
    config_file: str | None = None  # the config.toml read, if there was one

    def source(self, name: str) -> str:
        return dict(self.sources).get(name, DEFAULT)

    def values(self) -> dict[str, Value]:
        """Key name -> value, for handing the settings to another process."""
        return {key.name: getattr(self, key.name) for key in KEYS}


def load(home: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then `home/config.toml` when it exists, then the environment; SettingsError
    names every bad value, each with its key and source."""
    env = os.environ if environ is None else environ
    path = home / CONFIG_FILE
    values: dict[str, Value] = {key.name: key.default for key in KEYS}
    sources = {key.name: DEFAULT for key in KEYS}
    problems: list[str] = []
    table = _read_config(path)
    if table is not None:
        for name, raw in table.items():
            key = _BY_NAME.get(name)
            if key is None:
                hint = did_you_mean(name, _BY_NAME) or f" (known: {', '.join(_BY_NAME)})"
                problems.append(f"{path}: unknown key {name!r}{hint}")
                continue
            try:
                values[name] = _from_toml(key, raw)
                sources[name] = CONFIG_FILE
            except SettingsError as exc:
                problems.append(f"{path}: {name}: {exc}")
    for key in KEYS:
        text = env.get(key.env, "").strip()
        if not text:
            continue  # an empty variable is an unset one, as shells tend to leave them
        try:
            values[key.name] = _from_text(key, text)
            sources[key.name] = ENVIRONMENT
        except SettingsError as exc:
            problems.append(f"{key.env}={_show(text)} (environment): {exc}")
    if problems:
        raise SettingsError("; ".join(problems))
    return Settings(
        **values,  # type: ignore[arg-type]
        sources=tuple((key.name, sources[key.name]) for key in KEYS),
        config_file=str(path) if table is not None else None,
    )


def from_mapping(raw: Mapping[str, Any], origin: str) -> Settings:
    """Settings handed over by another flow process (`Settings.values()`), checked again."""
    problems: list[str] = []
    values: dict[str, Value] = {}
    for key in KEYS:
        if key.name not in raw:
            continue
        try:
            values[key.name] = _from_toml(key, raw[key.name])
        except SettingsError as exc:
            problems.append(f"{origin}: {key.name}: {exc}")
    if problems:
        raise SettingsError("; ".join(problems))
    return Settings(**values, sources=tuple((name, origin) for name in values))  # type: ignore[arg-type]


_current: Settings | None = None


def install(settings: Settings) -> Settings:
    """Make `settings` this process's own; done once, at its start."""
    global _current
    _current = settings
    return settings


def current() -> Settings:
    """This process's settings; read from FLOW_HOME and the environment if none was
    installed (a library user, a test), so that no import ever parses them."""
    if _current is None:
        from node_sdk import paths

        install(load(paths.flow_home()))
    assert _current is not None
    return _current


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        # O_NONBLOCK: a FIFO put there is opened without waiting for a writer, then refused
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a FIFO, a device
            raise SettingsError(f"{path}: not a regular file")
        data = os.read(fd, MAX_CONFIG_BYTES + 1)  # one read: a regular file gives it all
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise SettingsError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    # only when there is a file (about 10 ms): every daemon, keeper and node reads settings
    import tomllib  # flow needs Python >= 3.11

    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # arrays nested hundreds deep: tomllib recurses per level
        raise SettingsError(f"{path}: not valid TOML: nested too deep") from None


def _from_toml(key: Key, raw: object) -> Value:
    """A config.toml value: a string with units, or a bare number (seconds, bytes)."""
    if isinstance(raw, str):
        return _from_text(key, raw)
    if key.kind != "level" and isinstance(raw, int | float) and not isinstance(raw, bool):
        if key.kind == "size" and not isinstance(raw, int):
            raise SettingsError(f"expected a size like {_example(key)}, got {raw!r}")
        return _check(key, raw)
    raise SettingsError(f"expected {_expected(key)}, got {type(raw).__name__} {raw!r}")


def _from_text(key: Key, text: str) -> Value:
    if key.kind == "level":
        level = text.strip().upper()
        if level == "WARN":
            level = "WARNING"
        if level not in LEVELS:
            raise SettingsError(f"expected {_expected(key)}")
        return level
    try:
        number: float = parse_duration(text) if key.kind == "duration" else parse_size(text)
    except UnitError:
        raise SettingsError(f"expected {_expected(key)}") from None
    return _check(key, number)


def _check(key: Key, number: float) -> Value:
    if number != number or number in (float("inf"), float("-inf")):
        raise SettingsError(f"expected {_expected(key)}")
    if key.kind == "duration":
        if key.minimum and not key.minimum <= number <= key.maximum:
            raise SettingsError(f"must be at least {key.render(key.minimum)} and at most "
                                f"{key.render(key.maximum)}{key.why_minimum}")  # fmt: skip
        if not 0 < number <= key.maximum:
            raise SettingsError(f"must be more than 0s and at most {key.render(key.maximum)}")
        return float(number)
    if not key.minimum <= number <= key.maximum:
        low, high = key.render(int(key.minimum)), key.render(int(key.maximum))
        raise SettingsError(f"must be between {low} and {high}")
    return int(number)


def _expected(key: Key) -> str:
    if key.kind == "level":
        return f"a log level ({', '.join(LEVELS).lower()})"
    return f"a {key.kind} like {_example(key)}"


def _example(key: Key) -> str:
    return key.render(key.default)


def _show(text: str) -> str:
    """The value as the user gave it, cut short and without control characters."""
    shown = text if text.isprintable() else repr(text)
    return shown if len(shown) <= 40 else f"{shown[:37]}..."
