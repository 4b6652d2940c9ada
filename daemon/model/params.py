"""Node parameters, pure: their bounds, the YAML `params:` reader, value checks, the table.

A parameter is a key and a JSON value. The YAML gives a node's initial values; `flow param
set|delete` change them while the run lives (docs/parameters.md). Values travel and are
stored as compact JSON text, checked here once, so every later hop copies a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from daemon.model import descriptor_fields as f
from daemon.model.errors import BadRequest
from daemon.model.yaml_lines import Path as Where
from node_sdk.errors import NodeError
from node_sdk.strictjson import loads

MAX_VALUE_BYTES: Final = 64 * 1024  # one value's JSON text
MAX_PARAMS: Final = 128  # keys of one node
MAX_DEPTH: Final = 16
KEY_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}")
KEY_RULE: Final = (
    "use 1-128 letters, digits, '_', '.', '/' or '-', starting with a letter, digit or '_'"
)
ACK_TIMEOUT_S: Final = 5.0  # how long `flow param set` waits for the node's answer

# The values `flow param set|delete` changed: a row per key, `value` NULL when deleted, so a
# key the YAML gave and a user deleted stays deleted. Current = YAML, then these rows.
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (run_id, node_id, key)
);
"""


def check_key(key: str) -> str:
    """A key as given, or BadRequest naming the rule."""
    if not KEY_RE.fullmatch(key):
        raise BadRequest(f"invalid parameter key {key[:60]!r}: {KEY_RULE}")
    return key


def value_text(text: str, key: str) -> str:
    """JSON text from a user -> its compact form; BadRequest naming the key when it is not
    one bounded JSON value."""
    try:
        value = loads(text, f"parameter {key!r}", max_bytes=MAX_VALUE_BYTES, max_depth=MAX_DEPTH)
    except NodeError as exc:
        raise BadRequest(f"{exc} (give a JSON value: 3, 0.5, true, '\"text\"', '[1, 2]')") from None
    return _compact(value, key)


def _compact(value: Any, key: str) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if len(text.encode()) > MAX_VALUE_BYTES:
        raise BadRequest(f"parameter {key!r}: longer than {MAX_VALUE_BYTES} bytes as JSON")
    return text


def _checked_depth(text: str, key: str) -> str:
    """A YAML value nested deeper than a node reads (node_sdk/params.py) would be dropped
    by every node it reaches: refused here as `flow param set` refuses it."""
    try:
        loads(text, f"parameter {key!r}", max_bytes=MAX_VALUE_BYTES, max_depth=MAX_DEPTH)
    except NodeError as exc:
        raise BadRequest(str(exc)) from None
    return text


def current(initial: Mapping[str, str], changed: Mapping[str, str | None]) -> dict[str, str]:
    """The values now: the YAML's, then every change (None: deleted), in key order."""
    merged = {**initial, **changed}
    return {key: merged[key] for key in sorted(merged) if merged[key] is not None}  # type: ignore[misc]


def from_yaml(report: f.Report, raw: Mapping[str, Any], where: Where) -> dict[str, str]:
    """A node's `params:` mapping -> key -> JSON text; each bad entry is one problem line."""
    value = raw.get("params")
    at = (*where, "params")
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add(at, f"expected a mapping of parameter names to values, got {f.describe(value)}")
        return {}
    if len(value) > MAX_PARAMS:
        report.add(at, f"{len(value)} parameters (at most {MAX_PARAMS})")
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        try:
            out[check_key(str(key))] = _checked_depth(_compact(item, str(key)), str(key))
        except BadRequest as exc:
            report.add((*at, str(key)), str(exc))
        except (TypeError, ValueError) as exc:  # a YAML date, a .nan: not JSON
            report.add((*at, str(key)), f"not a JSON value: {exc}")
    return out
