"""The MCAP recording format of flow (docs/recording.md): one JSON message per data message.

Shared by the recorder process (`daemon.recorder`), the player node that replays a
recording, and the CLI (`flow replay --info`). Pure: no zmq, no trio; the `mcap` library
(the `record` extra) is imported by the callers that read or write files.

Every channel is `NODE/OUTPUT`, message encoding `json`, schema `flow.Message`
(jsonschema): `seq`, `generation`, `metadata` and the payload by `kind`: `str` as text in
`value`; `bytes`, `numpy` (with `dtype` and `shape`) and `arrow` (an Arrow IPC stream, with
`arrow_type` for people) as base64 in `data`; `none` with neither. So the `mcap` CLI and
Foxglove show the metadata and string payloads as they are, and a replay gives back each
value of its exact kind.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final

from daemon.model import recording_floats
from node_sdk import arrow_buffers, arrow_ipc, arrow_layout
from node_sdk.errors import NodeError
from node_sdk.wire import KIND_ARROW, KIND_BYTES, KIND_NONE, KIND_NUMPY, KIND_STR, decode_payload

SCHEMA_NAME: Final = "flow.Message"
MESSAGE_ENCODING: Final = "json"
PROFILE: Final = "flow"
DATAFLOW_ATTACHMENT: Final = "dataflow.yml"
RUN_METADATA: Final = "flow.run"  # run id, name, the dataflow file's path
TALLY_METADATA: Final = "flow.recording"  # per topic: recorded and missed, at the end

SCHEMA: Final[dict[str, Any]] = {
    "title": SCHEMA_NAME,
    "description": "one data message of a flow output (docs/recording.md)",
    "type": "object",
    "properties": {
        "seq": {"type": "integer", "description": "the sender's sequence number on this edge"},
        "generation": {"type": "integer", "description": "the sender's restart generation"},
        "metadata": {"type": "object", "description": "the message's metadata"},
        "kind": {"type": "string", "enum": ["none", "bytes", "str", "numpy", "arrow"]},
        "value": {"type": "string", "description": "a str payload"},
        "data": {"type": "string", "contentEncoding": "base64",
                 "description": "bytes, numpy raw data, or an Arrow IPC stream"},
        "dtype": {"type": "string", "description": "numpy dtype (e.g. <f4)"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "arrow_type": {"type": "string", "description": "the Arrow array's type"},
        "nonfinite": {"type": "array", "items": {"type": "array"},
                      "description": "metadata places ([key] or [key, index]) of floats "
                                     "written as \"NaN\", \"Infinity\" or \"-Infinity\""},
    },
    "required": ["seq", "generation", "metadata", "kind"],
}  # fmt: skip

KIND_NAMES: Final = {KIND_NONE: "none", KIND_BYTES: "bytes", KIND_STR: "str",
                     KIND_NUMPY: "numpy", KIND_ARROW: "arrow"}  # fmt: skip


def schema_bytes() -> bytes:
    return json.dumps(SCHEMA, sort_keys=True).encode()


def encode_message(
    kind: int,
    payload: bytes | memoryview,
    extra: Mapping[str, Any],
    *,
    seq: int,
    generation: int,
    metadata: Mapping[str, Any],
) -> bytes:
    """One received data message (its payload bytes as sent) -> the JSON of its record."""
    name = KIND_NAMES.get(kind)
    if name is None:
        raise ValueError(f"payload kind {kind} cannot be recorded")
    spelled, nonfinite = recording_floats.written(metadata)
    record: dict[str, Any] = {"seq": seq, "generation": generation,
                              "metadata": spelled, "kind": name}  # fmt: skip
    if nonfinite:
        record["nonfinite"] = nonfinite
    if kind == KIND_STR:
        record["value"] = str(payload, "utf-8")
    if kind == KIND_NUMPY:
        record["dtype"] = extra.get("dt")
        record["shape"] = extra.get("sh")
    elif kind == KIND_ARROW:
        record["arrow_type"] = arrow_type(payload)
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
    if kind in (KIND_NONE, KIND_STR):
        return text
    # base64 needs no JSON escaping: spliced in, a MiB is not scanned by the JSON encoder
    return b"".join((text[:-1], b',"data":"', base64.b64encode(payload), b'"}'))


def arrow_stream(payload: bytes | memoryview) -> bytes:
    """An arrow payload of the array's own buffers (kind 7) -> the Arrow IPC stream that
    kind 4 sends (what a recording holds); NodeError when the payload does not add up."""
    import pyarrow as pa

    array = arrow_buffers.decode(payload)
    return bytes(arrow_ipc.encode(pa, array, arrow_layout.of(pa, array.type)).join())


def arrow_type(stream: bytes | memoryview) -> str:
    """The type of the one column of an Arrow IPC stream, as Arrow spells it; ValueError
    for bytes that are not one (a peer's bug or a hostile one)."""
    import pyarrow as pa
    import pyarrow.ipc  # pa.ipc is a submodule

    try:
        return str(pa.ipc.open_stream(pa.py_buffer(stream)).schema.field(0).type)
    except Exception as exc:  # Arrow raises OSError, IndexError, ArrowInvalid... here
        # never an OSError out of here: the recorder reads that as its disk failing
        raise ValueError(f"arrow payload that is not an Arrow IPC stream: {exc!r}") from None


def decode_message(data: bytes | memoryview) -> tuple[Any, dict[str, Any], int]:
    """A record's JSON -> (the value of its exact kind, its metadata, its seq); ValueError
    for a record that is not one flow writes, or whose value does not decode (a numpy
    dtype with no raw layout, an Arrow stream that fails Arrow's validation...)."""
    try:
        record = json.loads(bytes(data))
        kind = record.get("kind")
        metadata = dict(record.get("metadata") or {})
        if "nonfinite" in record:
            recording_floats.read(metadata, record["nonfinite"])
        seq = int(record.get("seq", 0))
        if kind == "none":
            return None, metadata, seq
        if kind == "str":
            return str(record["value"]), metadata, seq
        raw = base64.b64decode(record["data"], validate=True)
        if kind == "bytes":
            return raw, metadata, seq
        if kind == "numpy":  # the receiver's own checks: dtype, shape, size
            fields = {"dt": record.get("dtype"), "sh": record.get("shape")}
            return decode_payload(KIND_NUMPY, raw, fields), metadata, seq
        if kind == "arrow":  # validated in full, as a receiver does
            return decode_payload(KIND_ARROW, raw, {}), metadata, seq
    except NodeError as exc:
        raise ValueError(str(exc)) from None
    except (AttributeError, KeyError, TypeError, RecursionError) as exc:  # not a record
        raise ValueError(f"a recorded message that is not flow's: {exc!r}") from None
    raise ValueError(f"a recorded message of unknown kind {kind!r}")


def tally_text(tally: Mapping[str, Mapping[str, int]]) -> dict[str, str]:
    """Per-topic counts as MCAP metadata (a map of strings): `recorded=N missed=M`."""
    return {topic: f"recorded={c.get('recorded', 0)} missed={c.get('missed', 0)}"
            for topic, c in tally.items()}  # fmt: skip
