"""dora keys flow refuses (each with its reason), and dora's type annotations, checked.

Every key of dora's schema is either read by the parser (docs/yaml-reference.md) or listed
here with the reason flow does not take it, so a dora file never loses a setting silently.
`output_types` / `input_types` are checked where both ends of an edge declare a type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.model import descriptor_fields as f
from daemon.model.units import SizeError, parse_size
from daemon.model.yaml_lines import Path as Where

_OPERATOR = "dora operators run inside dora's runtime process; write the operator as a node"
_GIT = "flow does not fetch node sources: clone the repository and give `path`"

TOP: Mapping[str, str] = {
    "_unstable_deploy": "a dataflow-wide machine: give each node `deploy: {machine: NAME}`",
    "communication": "flow's transport is fixed (ipc:// on a machine, CURVE tcp:// between)",
    "strict_types": "flow always refuses a declared type mismatch and has no strict mode",
    "exit_when_nodes_finish": "a flow run ends when all its nodes have ended",
    "type_rules": "flow knows only the built-in type widenings (docs/yaml-reference.md)",
}
NODE: Mapping[str, str] = {
    "operators": _OPERATOR,
    "operator": _OPERATOR,
    "custom": "dora's old node form: give path, args and env at the node's top level",
    "source": "dora's old node form: give path, args and env at the node's top level",
    "ros2": "flow has no ROS 2 bridge",
    "git": _GIT, "branch": _GIT, "tag": _GIT, "rev": _GIT,
    "hub": "flow does not fetch nodes from a hub: install the node and give its `path`",
    "path_sha256": "flow does not download node programs",
    "max_rotated_files": "flow keeps 3 rotated log files of a node",
    "output_framing": "flow frames every message itself",
    "output_metadata": "flow has no per-output metadata declarations",
    "pattern": "flow has no service/action patterns",
    "shared_memory_pool_size": "flow sizes shared memory per message (payloads of 64 KiB+)",
    "finish_grace_secs": "give the grace on the command: `flow stop --grace 10s`",
    "startup_timeout": "flow's key is `connect_timeout`",
}
NODE_SOURCES = frozenset({"operators", "operator", "custom", "source", "ros2", "hub", "git"})
INPUT: Mapping[str, str] = {}  # every input key of dora's is read
DEPLOY: Mapping[str, str] = {
    "working_dir": "a node runs in its dataflow's folder",
    "labels": "flow places nodes by machine name only",
    "distribute": "flow places nodes by machine name only",
}
# dora's min_log_level -> the level of the node's Python logging (FLOW_LOG_LEVEL)
LOG_LEVELS = {"error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG",
              "trace": "DEBUG", "stdout": "DEBUG"}  # fmt: skip
# set with min_log_level: without it a dora node's log_* records are kept at every level
MIN_LOG_LEVEL_ENV = "FLOW_DORA_MIN_LOG_LEVEL"
DEBUG_KEYS = frozenset({"enable_debug_inspection", "publish_all_messages_to_zenoh"})

# dora's built-in widenings: a sender's type may feed an input of a wider one
_WIDER: Mapping[str, str] = {
    "std/core/v1/UInt8": "std/core/v1/UInt32",
    "std/core/v1/UInt32": "std/core/v1/UInt64",
    "std/core/v1/Int32": "std/core/v1/Int64",
    "std/core/v1/Float32": "std/core/v1/Float64",
}
ANY_TYPE = "std/core/v1/Bytes"  # every type may feed an input declared as bytes


def check_debug(report: f.Report, top: Mapping[str, Any], key: str) -> None:
    """`debug:` is accepted: flow's topic tools (`flow topic echo|hz|info|pub`) work on
    every run, so dora's switch for them has nothing left to turn on; its keys are checked."""
    value = top.get(key)
    if value is None:
        return
    if not isinstance(value, dict):
        report.add((key,), f"expected a mapping, got {f.describe(value)}")
        return
    for name, item in value.items():
        if name not in DEBUG_KEYS:
            report.add((key, name), f"unknown key (allowed: {', '.join(sorted(DEBUG_KEYS))})")
        elif not isinstance(item, bool):
            report.add((key, name), f"expected true or false, got {f.describe(item)}")


def node_env(
    report: f.Report, raw: Mapping[str, Any], where: Where, texts: Mapping[Where, str]
) -> dict[str, str]:
    """The node's env; dora's `min_log_level` sets the level of its Python logging (records
    below it are never written, nor sent by `send_logs_as`)."""
    env = f.env_map(report, raw.get("env"), (*where, "env"), texts)
    level = raw.get("min_log_level")
    if level is not None and level not in LOG_LEVELS:
        report.add((*where, "min_log_level"),
                   f"expected one of {', '.join(LOG_LEVELS)}, got {f.describe(level)}")  # fmt: skip
    elif level is not None and "FLOW_LOG_LEVEL" in env:
        report.add((*where, "min_log_level"),
                   "give min_log_level or env FLOW_LOG_LEVEL, not both")  # fmt: skip
    elif level is not None:
        env["FLOW_LOG_LEVEL"] = LOG_LEVELS[level]
        env[MIN_LOG_LEVEL_ENV] = level  # a dora node's log_* calls then keep to it too
    return env


MIN_LOG_BYTES = 1000  # dora's examples rotate at "1KB"
MAX_LOG_BYTES = 1 << 40


def log_size(report: f.Report, raw: Mapping[str, Any], where: Where) -> int | None:
    """dora's `max_log_size` (`"100MB"`, `"1KB"`, or bytes): the size at which this node's
    log file is rotated, instead of the log_max_bytes setting."""
    value = raw.get("max_log_size")
    if value is None:
        return None
    at = (*where, "max_log_size")
    try:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise SizeError(value)
        size = value if isinstance(value, int) else parse_size(value)
    except SizeError:
        report.add(at, f"expected a size like 100MB or 512KiB, got {f.describe(value)}")
        return None
    if not MIN_LOG_BYTES <= size <= MAX_LOG_BYTES:
        report.add(at, f"must be from 1KB to 1TiB, got {value}")
        return None
    return size


MAX_CPU = 1024  # the size of Linux's cpu_set_t, as dora bounds it


def cpu_affinity(report: f.Report, raw: Mapping[str, Any], where: Where) -> tuple[int, ...] | None:
    """dora's `cpu_affinity: [0, 1]`: the CPUs the node's process is pinned to (the keeper
    sets it as it starts the node; CPUs the machine lacks fail the spawn in one line)."""
    value = raw.get("cpu_affinity")
    if value is None:
        return None
    at = (*where, "cpu_affinity")
    wanted = f"expected a list of CPU numbers (0 to {MAX_CPU - 1})"
    if not isinstance(value, list) or not value:
        got = "an empty list" if isinstance(value, list) else f.describe(value)
        report.add(at, f"{wanted}, got {got}")
        return None
    bad = [cpu for cpu in value if type(cpu) is not int or not 0 <= cpu < MAX_CPU]
    if bad:  # name the entry: "got a list" does not say which
        report.add(at, f"{wanted}, got {bad[0]!r}"[:200])
        return None
    return tuple(sorted(set(value)))


def port_types(
    report: f.Report, raw: Mapping[str, Any], key: str, where: Where, ports: tuple[str, ...]
) -> dict[str, str]:
    """`output_types` / `input_types`: a type name per declared port."""
    value = raw.get(key)
    if value is None:
        return {}
    at = (*where, key)
    if not isinstance(value, dict):
        report.add(at, f"expected a mapping of port: type, got {f.describe(value)}")
        return {}
    types: dict[str, str] = {}
    what = "output" if key == "output_types" else "input"
    for port, urn in value.items():
        if port not in ports:
            report.add((*at, port), f"'{port}' is not one of the node's {what}s")
        elif not isinstance(urn, str) or not urn.strip():
            report.add((*at, port), f"expected a type name, got {f.describe(urn)}")
        else:
            types[port] = urn.strip()
    return types


def types_fit(sent: str, wanted: str) -> bool:
    """Whether messages of type `sent` may feed an input of type `wanted`."""
    if wanted == ANY_TYPE:
        return True
    sent_base, sent_params = _split(sent)
    wanted_base, wanted_params = _split(wanted)
    if sent_base == wanted_base:
        common = sent_params.keys() & wanted_params.keys()
        return all(sent_params[k] == wanted_params[k] for k in common)
    step, hops = sent_base, 0
    while step in _WIDER and hops < 3:
        step, hops = _WIDER[step], hops + 1
        if step == wanted_base:
            return True
    return False


def _split(urn: str) -> tuple[str, dict[str, str]]:
    """`std/media/v1/Image[encoding=rgb8]` -> base and parameters."""
    base, bracket, rest = urn.partition("[")
    if not bracket:
        return urn, {}
    params: dict[str, str] = {}
    for part in rest.rstrip("]").split(","):
        name, _, value = part.partition("=")
        params[name.strip()] = value.strip()
    return base, params
