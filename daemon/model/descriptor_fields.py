"""Field checks for dataflow files: each bad value becomes one `FILE:LINE: path: cause` line."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from daemon.model.run_names import refusal
from daemon.model.units import DurationError, parse_duration

if TYPE_CHECKING:  # a type only: the CLI's request models import this module, not YAML
    from daemon.model.yaml_lines import Path

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ID_RULE = "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_MISSING = object()

# unit -> nanoseconds per unit; `hz` is a frequency and handled apart
TIMER_UNITS: dict[str, int] = {
    "secs": 1_000_000_000, "millis": 1_000_000, "micros": 1_000, "nanos": 1,
}  # fmt: skip
TIMER_PREFIXES = ("flow/timer/", "dora/timer/")
BUILT_IN_SOURCES = frozenset({"flow", "dora"})  # no node may be called so


def format_path(path: Path) -> str:
    """`nodes[2].inputs.tick`, as cattrs' transform_error writes it, without the `$.`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY_RE.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def describe(value: Any) -> str:
    """How a wrong value reads in a message: `an integer (3)`, `a list`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Report:
    """Collects every problem of one file; `lines()` gives them sorted by line."""

    def __init__(self, file: str, lines: Mapping[Path, int]) -> None:
        self.file = file
        self.line_map = lines
        self._problems: list[tuple[int, int, str]] = []

    def __bool__(self) -> bool:
        return bool(self._problems)

    def line_of(self, path: Path) -> int:
        """The line of `path`, or of its nearest written parent (a missing key's mapping)."""
        for end in range(len(path), -1, -1):
            line = self.line_map.get(path[:end])
            if line is not None:
                return line
        return 1

    def add(self, path: Path, message: str, line: int | None = None) -> None:
        line = self.line_of(path) if line is None else line
        where = format_path(path)
        text = (
            f"{self.file}:{line}: {where}: {message}" if where else f"{self.file}:{line}: {message}"
        )
        self._problems.append((line, len(self._problems), text))

    def lines(self) -> list[str]:
        return [text for _, _, text in sorted(self._problems)]


def check_keys(
    report: Report,
    mapping: Mapping[str, Any],
    path: Path,
    allowed: Collection[str],
    refused: Mapping[str, str],
) -> None:
    """Unknown keys are errors; dora keys flow lacks say so, with the reason, rather than
    vanish silently."""
    for key in mapping:
        if key in allowed:
            continue
        if key in refused:
            if mapping[key] is None:
                continue  # `dora expand` writes `health_check_interval: null`: not set
            report.add((*path, key), f"'{key}' is a dora key not supported by flow: "
                                     f"{refused[key]}")  # fmt: skip
            continue
        close = difflib.get_close_matches(key, list(allowed), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(sorted(allowed))
        report.add((*path, key), f"unknown key ({hint})")


def get_str(
    report: Report, mapping: Mapping[str, Any], key: str, path: Path, *, required: bool = False
) -> str | None:
    """A string field; None when absent (a problem when required)."""
    value = mapping.get(key, _MISSING)
    if value is _MISSING or (value is None and required):
        if required:
            report.add((*path, key), "required field missing", line=report.line_of(path))
        return None
    if value is None:
        return None
    if not isinstance(value, str):
        report.add((*path, key), f"expected a string, got {describe(value)}")
        return None
    if required and not value.strip():
        report.add((*path, key), "must not be empty")
        return None
    return value


def get_run_name(report: Report, top: Mapping[str, Any]) -> str | None:
    """The top-level `name`: the run's default name, refused as `--name` is when it could
    inject into a terminal or read as a run id (daemon/model/run_names.py)."""
    name = get_str(report, top, "name", ())
    if (why := refusal(name)) is not None:
        report.add(("name",), f"run name {why}")
        return None
    return name


def get_bool(
    report: Report, mapping: Mapping[str, Any], key: str, path: Path, default: bool
) -> bool:
    value = mapping.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        report.add((*path, key), f"expected true or false, got {describe(value)}")
        return default
    return value


def get_number(
    report: Report,
    mapping: Mapping[str, Any],
    key: str,
    path: Path,
    default: float,
    *,
    integer: bool = False,
    minimum: float = 0.0,
    inclusive: bool = False,
) -> float:
    """A number above `minimum` (or at it when `inclusive`); the default when absent or bad."""
    value = mapping.get(key)
    if value is None:
        return default
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        report.add((*path, key), f"expected {kind}, got {describe(value)}")
        return default
    if value < minimum or (value == minimum and not inclusive):
        bound = f"at least {minimum:g}" if inclusive else f"more than {minimum:g}"
        report.add((*path, key), f"must be {bound}, got {value}")
        return default
    return float(value)


def get_shell_lines(report: Report, mapping: Mapping[str, Any], key: str, path: Path
                    ) -> tuple[str, ...]:  # fmt: skip
    """Shell lines (`build:`): one string of lines, or a list of strings; blank ones left out."""
    value = mapping.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(line.strip() for line in value.splitlines() if line.strip())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item for item in value if item.strip())
    report.add((*path, key), f"expected shell lines as a string, got {describe(value)}")
    return ()


def get_choice(
    report: Report, mapping: Mapping[str, Any], key: str, path: Path, choices: tuple[str, ...]
) -> str:
    """One of `choices`; the first one (the default) when absent or bad."""
    value = mapping.get(key)
    if value is None:
        return choices[0]
    if value not in choices:
        report.add((*path, key), f"expected one of {', '.join(choices)}, got {describe(value)}")
        return choices[0]
    return str(value)


def env_map(report: Report, value: Any, path: Path, texts: Mapping[Path, str]) -> dict[str, str]:
    """`{K: str|int|float|bool}` as strings: bools as `true`/`false`, numbers as written."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add(path, f"expected a mapping of variables, got {describe(value)}")
        return {}
    env: dict[str, str] = {}
    for key, item in value.items():
        if env_name_problem(key):
            report.add((*path, key), "not a valid environment variable name")
        elif isinstance(item, bool):
            env[key] = "true" if item else "false"
        elif isinstance(item, int | float):
            env[key] = texts.get((*path, key), str(item))  # `1.10` stays `1.10`
        elif isinstance(item, str):
            if env_value_problem(item):
                report.add((*path, key), "a NUL character cannot be passed in the environment")
            env[key] = item
        else:
            report.add((*path, key), f"expected a string, number or boolean, got {describe(item)}")
    return env


class SourceError(ValueError):
    """An input source that cannot be read; the message is the problem's cause."""


def timer_period_ns(spec: str) -> int:
    """`flow/timer/millis/100` -> 100_000_000; raises SourceError with the cause."""
    parts = spec.split("/")
    if len(parts) != 4:
        raise SourceError(f"expected a timer like 'flow/timer/millis/100', got '{spec}'")
    unit, amount = parts[2], parts[3]
    if unit != "hz" and unit not in TIMER_UNITS:
        raise SourceError(f"unknown timer unit '{unit}' (use millis, secs, micros, nanos or hz)")
    try:
        number = float(amount)
    except ValueError:
        raise SourceError(f"timer interval '{amount}' is not a number") from None
    if not math.isfinite(number) or number <= 0:
        what = "frequency" if unit == "hz" else "interval"
        raise SourceError(f"timer {what} must be a finite number more than 0, got '{amount}'")
    period = 1e9 / number if unit == "hz" else number * TIMER_UNITS[unit]
    if period < 1:
        raise SourceError(f"timer period of '{spec}' is below one nanosecond")
    return round(period)


def split_source(source: str) -> tuple[str, str]:
    """`node/output` split at the first `/`; raises SourceError when either side is empty."""
    node, sep, output = source.partition("/")
    if not sep or not node or not output:
        raise SourceError(
            f"expected 'node/output' or a timer like 'flow/timer/millis/100', got '{source}'"
        )
    return node, output


def built_in_problem(source: str) -> str:
    """Why `dora/...` or `flow/...` that is neither a timer nor `dora/logs` reads as none."""
    prefix = source.partition("/")[0]
    return (f"unknown built-in source '{source}': expected a timer like "
            f"'{prefix}/timer/millis/100' (units: millis, secs, micros, nanos, hz)"
            + (" or dora/logs[/LEVEL[/NODE]]" if prefix == "dora" else ""))  # fmt: skip


def is_timer(source: str) -> bool:
    return source.startswith(TIMER_PREFIXES)


def env_name_problem(key: str) -> bool:
    """Whether `key` cannot be an environment variable name (the OS would refuse it)."""
    return not key or "=" in key or "\0" in key or not key.isprintable()


def env_value_problem(value: str) -> bool:
    """Whether `value` cannot be passed in the environment (a NUL, or not encodable)."""
    if "\0" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return True
    return False


MAX_CONNECT_TIMEOUT_S = 86400.0


def get_duration(report: Report, mapping: Mapping[str, Any], key: str, path: Path) -> float | None:
    """A positive duration: seconds as a number or text with units (`90s`, `2m`); None when
    absent or bad (reported)."""
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except DurationError:
            report.add((*path, key), f"expected a duration like 60s or 2m, got {value!r}")
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        report.add((*path, key), f"expected a duration like 60s or 2m, got {describe(value)}")
        return None
    if not 0 < seconds <= MAX_CONNECT_TIMEOUT_S or not math.isfinite(seconds):
        report.add((*path, key), f"must be more than 0 and at most 1d, got {value}")
        return None
    return seconds
