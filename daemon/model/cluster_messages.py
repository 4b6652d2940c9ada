"""The cluster link's messages (member <-> coordinator) and their one total decoder.

One JSON object per ZeroMQ message, `t` naming its kind (docs/cluster.md). `decode` takes
any bytes and gives a message or raises `LinkMessageError`: size, depth and string length
are bounded, unknown or missing keys refused, nothing coerced. Who sent a message is never
taken from its body: the coordinator reads it from the CURVE key ZAP authenticated.
"""

from __future__ import annotations

import json
from typing import Any, Final

import attrs
import cattrs

from node_sdk.strictjson import depth, lone_surrogate

MAX_MESSAGE_BYTES: Final = 16 * 1024
# a relayed run message (`Carry`): a node's spawn carries its FLOW_NODE_CONFIG; still below
# the 64 KiB libzmq drops a peer at (link.MAX_MESSAGE)
MAX_CARRY_BYTES: Final = 48 * 1024
MAX_DEPTH: Final = 4
MAX_STRING: Final = 1024


class LinkMessageError(ValueError):
    """Bytes on the cluster link that are not one of its messages."""


# ------------------------------------------------------------------ member -> coordinator


@attrs.frozen
class Join:
    """Sent with a token's admission key: admit the machine `name`, known by `public_key`."""

    name: str
    public_key: str
    # only on a plain (--insecure-loopback) link, which has no CURVE key to read: the
    # token's admission public key
    admission: str = ""


@attrs.frozen
class Hello:
    """Sent with the machine's own key when its link (re)opens: it is `name`."""

    name: str
    key: str = ""  # only on a plain (--insecure-loopback) link: the machine's public key


@attrs.frozen
class Bye:
    """The member's daemon is going down on purpose (`flow down`): it has `left`."""

    key: str = ""  # only on a plain link


# ------------------------------------------------------------------ coordinator -> member


@attrs.frozen
class Admitted:
    """The join succeeded; reconnect with your own key."""

    name: str
    coordinator: str  # the coordinator's machine name


@attrs.frozen
class Refused:
    """A join or hello the coordinator will not take, with the one-line reason."""

    reason: str


@attrs.frozen
class Welcome:
    """The hello was accepted: the link is up."""

    coordinator: str


@attrs.frozen
class Leave:
    """The machine was removed (`flow cluster remove`): stop using the link."""

    reason: str


# ------------------------------------------------------------------ both ways


# observe, unobserve, samples, usage: `flow topic echo|hz` and `flow top` of nodes placed on
# a member (daemon/cluster/remote_watch.py, daemon/cluster/host_watch.py)
WATCH_KINDS: Final = frozenset({"observe", "unobserve", "samples", "usage"})
# follow, loglines: `flow logs -f` across machines (daemon/cluster/log_forward.py)
FOLLOW_KINDS: Final = frozenset({"follow", "loglines"})
# a dynamic node attaching on a member (daemon/cluster/remote_attach.py): member ->
# coordinator, `body` its node-channel attach request, `ident` a token; back, the answer.
# `gone`: member -> coordinator, the process attached as node identity `ident` has ended
ATTACH_KIND: Final = "attach"
GONE_KIND: Final = "gone"
CARRY_KINDS: Final = (frozenset({"keeper", "node", "ports", "logs", "hosted", ATTACH_KIND,
                                 GONE_KIND})
                      | WATCH_KINDS | FOLLOW_KINDS)  # fmt: skip
LOG_TAIL_BYTES: Final = 32 * 1024  # of a node's log fetched from its machine (`flow logs`)


@attrs.frozen
class Carry:
    """A message of run `run` relayed across the link (docs/cluster.md, "Placement").

    `kind` keeper: `body` is a keeper-channel message (coordinator -> member: to the run's
    keeper on the member; back: what that keeper reports). `kind` node: `body` is a node
    channel frame of the node whose channel identity is `ident`, in either direction.
    `kind` ports: coordinator -> member, `body` a count of free tcp ports wanted on the
    member; back, `body` those port numbers, space separated. `kind` logs: coordinator ->
    member, the log of node `ident`; back, its last LOG_TAIL_BYTES (whole lines). `kind`
    follow: coordinator -> member, `body` `start` (forward node `ident`'s log from its last
    LOG_TAIL_BYTES on) or `renew` (go on: the follow's lease); back, `loglines`: `body`
    whole lines of that log, in order. The
    hosted: member -> coordinator on each welcome, `body` the ids of the runs it hosts for
    it, space separated (`run` empty). The
    WATCH_KINDS are the observers and usage of the nodes a member hosts (docs/cluster.md,
    "Seen from the coordinator"). The body is decoded by its own channel's total
    decoder where it arrives.
    """

    run: str
    kind: str
    body: str
    ident: str = ""


@attrs.frozen
class Beat:
    """The application heartbeat, every `cluster_heartbeat` in each direction."""

    key: str = ""  # only on a plain link, member -> coordinator


# ------------------------------------------------------------------ link probes
# (`flow doctor --cluster`, daemon/cluster/probe*.py): numbers travel as decimal text,
# since the link's decoder takes no JSON numbers


@attrs.frozen
class ProbeListen:
    """Coordinator -> member: bind a probe receiver on `host` (a port reserved here, as for
    a node's input), admitting only `sender_key`, for at most `wait_s` seconds."""

    probe: str
    host: str
    sender_key: str
    wait_s: str


@attrs.frozen
class ProbeSend:
    """Coordinator -> member: send the probe's messages (8 B twice, then `large` bytes) to
    `endpoint`, whose machine key is `server_key`, each acknowledged within `timeout_s`."""

    probe: str
    endpoint: str
    server_key: str
    large: str
    timeout_s: str


@attrs.frozen
class ProbeReport:
    """Member -> coordinator: a receiver's `port`, or a sender's round trips; `error` when
    it failed."""

    probe: str
    port: str = ""
    small_s: str = ""
    large_s: str = ""
    error: str = ""


ToCoordinator = Join | Hello | Bye | Beat | Carry | ProbeReport
ToMember = Admitted | Refused | Welcome | Leave | Beat | Carry | ProbeListen | ProbeSend
LinkMessage = ToCoordinator | ToMember

TAGS: Final[dict[type[Any], str]] = {
    Join: "join", Hello: "hello", Bye: "bye", Admitted: "admitted", Refused: "refused",
    Welcome: "welcome", Leave: "leave", Beat: "beat", Carry: "carry",
    ProbeListen: "probe_listen", ProbeSend: "probe_send", ProbeReport: "probe_report",
}  # fmt: skip
_KINDS: Final = {tag: kind for kind, tag in TAGS.items()}


def _strict_str(value: object, _: type) -> str:
    if type(value) is not str or len(value) > MAX_STRING:
        raise ValueError(f"not a string of at most {MAX_STRING} characters")
    return value


def _carry(value: object, _: type) -> Carry:
    """A relayed message: its body may be long (bounded by MAX_CARRY_BYTES as a whole)."""
    if not isinstance(value, dict) or not {"run", "kind", "body"} <= value.keys() <= {
        "run", "kind", "body", "ident"}:  # fmt: skip
        raise ValueError("expected keys run, kind, body and maybe ident")
    body = value["body"]
    if type(body) is not str:
        raise ValueError("body: not a string")
    carry = Carry(_strict_str(value["run"], str), _strict_str(value["kind"], str), body,
                  _strict_str(value.get("ident", ""), str))  # fmt: skip
    if carry.kind not in CARRY_KINDS:
        raise ValueError(f"unknown kind {carry.kind[:40]!r}")
    return carry


_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(str, _strict_str)
_converter.register_structure_hook(Carry, _carry)


def encode(message: LinkMessage) -> bytes:
    body = _converter.unstructure(message)
    return json.dumps({"t": TAGS[type(message)], **body}, separators=(",", ":")).encode()


def _refuse_number(text: str) -> object:
    raise ValueError(f"a number ({text[:20]}) where none belongs")


def decode(data: bytes) -> LinkMessage:
    """One message from any bytes, or `LinkMessageError` (and nothing else)."""
    if len(data) > MAX_CARRY_BYTES:
        raise LinkMessageError(f"message too large ({len(data)} bytes)")
    if depth(data) > MAX_DEPTH:
        raise LinkMessageError(f"nested deeper than {MAX_DEPTH}")
    try:
        raw = json.loads(
            data,
            parse_constant=_refuse_number,
            parse_float=_refuse_number,
            parse_int=_refuse_number,
        )
    except (ValueError, RecursionError) as exc:
        raise LinkMessageError(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise LinkMessageError("not a JSON object")
    if lone_surrogate(data, raw):
        raise LinkMessageError("a string that is not valid Unicode (a lone surrogate)")
    kind = _KINDS.get(raw.pop("t", None)) if isinstance(raw.get("t"), str) else None
    if kind is None:
        raise LinkMessageError("no known message kind in `t`")
    try:
        message: LinkMessage = _converter.structure(raw, kind)
    except Exception as exc:  # cattrs' own, or a hook's: all mean "not this message"
        raise LinkMessageError(f"bad {TAGS[kind]}: {str(exc)[:200]}") from None
    if len(data) > MAX_MESSAGE_BYTES and not isinstance(message, Carry):
        raise LinkMessageError(f"message too large ({len(data)} bytes)")
    return message
