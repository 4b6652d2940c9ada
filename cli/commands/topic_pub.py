"""`flow topic pub`: send messages into one input of a live run, as a source of its own.

The daemon names the input's endpoint and a source name no node has; the messages go
straight to the node like any sender's (seq 1, 2, ...), then an end-of-stream closes this
source only: the input stays open for its real senders. On a `backpressure` input it sends
against the receiver's credits like a node does. Bounded: at most MAX_MESSAGES messages,
each as large as an inline message may be.
"""

from __future__ import annotations

import json
import time
from typing import Any

from cli.errors import BAD_INPUT, FAILED, CliError
from cli.run_ref import add_run_argument

MAX_MESSAGES = 10_000
CREDIT_WAIT_S = 10.0  # a backpressure receiver that takes nothing for this long: give up
LINGER_MS = 5000  # what is queued when we close is delivered for at most this long
KINDS = ("str", "bytes", "json")


def add_arguments(pub: Any) -> None:
    from cli.durations import duration_arg

    add_run_argument(pub)  # argparse gives the words to NODE/INPUT and VALUE first
    pub.add_argument("target", metavar="NODE/INPUT", help="the input to send to")
    pub.add_argument("values", metavar="VALUE", nargs="+", help="one message each")
    pub.add_argument(
        "--as", dest="kind", choices=KINDS, default="str",
        help="str (default), bytes (the UTF-8 of the text), or json: a number or a list of "
        "numbers, strings or booleans sent as a pyarrow array (needs flow-runtime[arrow])",
    )  # fmt: skip
    pub.add_argument("--repeat", type=int, default=1, metavar="N", help="send the values N times")
    pub.add_argument(
        "--every", type=duration_arg, default=0.0, metavar="DURATION",
        help="time between two messages (100ms, 1s; default: none)",
    )  # fmt: skip
    pub.add_argument("--meta", metavar="JSON", help="metadata of every message, a JSON object")


def publish(args: Any) -> int:
    from cli import client, render
    from daemon.model.requests_watch import TopicPublish

    if args.repeat < 1:
        raise CliError(f"--repeat must be 1 or more (got {args.repeat})", BAD_INPUT)
    total = len(args.values) * args.repeat
    if total > MAX_MESSAGES:
        raise CliError(f"{total} messages: at most {MAX_MESSAGES} per `flow topic pub`", BAD_INPUT)
    values = [_value(text, args.kind) for text in args.values]
    metadata = _metadata(args.meta)
    target = client.call(TopicPublish(run=args.run, target=args.target))
    sent = _send(target, values * args.repeat, metadata, args.every, args.target)
    render.info(f"sent {sent} message{'s' if sent != 1 else ''} to {args.target}")
    return 0


def _value(text: str, kind: str) -> Any:
    if kind == "str":
        return text
    if kind == "bytes":
        return text.encode()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--as json: {text!r} is not JSON ({exc})", BAD_INPUT) from None
    try:
        import pyarrow as pa
    except ImportError:
        hint = "--as json needs pyarrow: pip install 'flow-runtime[arrow]'"
        raise CliError(hint, BAD_INPUT) from None
    items = value if isinstance(value, list) else [value]
    try:
        return pa.array(items)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CliError(f"--as json: {text!r} is not an array of one type ({exc})",
                       BAD_INPUT) from None  # fmt: skip


def _metadata(text: str | None) -> dict[str, Any] | None:
    from node_sdk.errors import NodeError
    from node_sdk.wire import validate_metadata

    if text is None:
        return None
    try:
        metadata = json.loads(text)
        return validate_metadata(metadata)
    except (ValueError, NodeError) as exc:
        raise CliError(f"--meta: {exc}", BAD_INPUT) from None


def _send(
    target: Any, values: list[Any], metadata: dict[str, Any] | None, every: float, name: str
) -> int:
    """Send `values` then end-of-stream to the input `name` (NODE/INPUT); the number sent."""
    import zmq

    from node_sdk.errors import NodeError
    from node_sdk.frames import encode_data, encode_eos
    from node_sdk.wire import unpack_credit

    backpressure = target.policy == "backpressure"
    context = zmq.Context()
    sock = context.socket(zmq.DEALER if backpressure else zmq.PUSH)
    sock.setsockopt(zmq.LINGER, LINGER_MS)
    sock.setsockopt(zmq.SNDHWM, max(target.queue_size + 1, 1000))
    sock.setsockopt(zmq.SNDTIMEO, int(CREDIT_WAIT_S * 1000))
    credits = target.queue_size  # a backpressure receiver has room for this many at first
    seq = sent = 0
    try:
        sock.connect(target.endpoint)
        for value in values:
            if backpressure:
                while credits <= 0:
                    if not sock.poll(int(CREDIT_WAIT_S * 1000)):
                        raise CliError(
                            f"input {name} took nothing for {CREDIT_WAIT_S:g}s after {seq} "
                            "message(s): its node or its run ended, or it is stuck", FAILED,
                        )  # fmt: skip
                    credits += unpack_credit(sock.recv())
                credits -= 1
            seq += 1
            try:
                frames = encode_data(value, source=target.source, generation=1, seq=seq,
                                     timestamp_ns=time.time_ns(), metadata=metadata)  # fmt: skip
            except NodeError as exc:
                raise CliError(f"message {seq}: {exc}", BAD_INPUT) from None
            sock.send_multipart(frames)
            sent = seq
            if every and seq < len(values):
                time.sleep(every)
        sock.send_multipart(encode_eos(target.source, 1, seq, time.time_ns()))
    except zmq.Again:
        raise CliError(f"input {name} took nothing for {CREDIT_WAIT_S:g}s after {sent} "
                       "message(s): its node or its run ended, or it is stuck", FAILED) from None
    finally:
        sock.close()  # lingers: what is queued still goes out
        context.term()
    return seq
