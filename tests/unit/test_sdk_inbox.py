"""The inbox: bounded queues, arrival order across inputs, drop and gap counting."""

from __future__ import annotations

import time
from typing import Any

from node_sdk.config import DataInput
from node_sdk.events import Event, EventType, StopCause
from node_sdk.inbox import BACKSTOP_MAX_S, Inbox
from node_sdk.wire import KIND_BYTES, KIND_EOS


def make_inbox(inputs: list[DataInput]) -> Inbox:
    return Inbox(inputs, lambda _descriptor: None)  # no shared memory in these tests


def spec(input_id: str, size: int = 10, policy: str = "drop_oldest", sources: int = 1) -> DataInput:
    names = tuple(f"s{n}/out" for n in range(sources))
    return DataInput(input_id, f"ipc:///x/{input_id}", size, policy, names)


def frame(seq: int, source: str = "s0/out", generation: int = 1, kind: int = KIND_BYTES,
          route: bytes | None = None) -> Any:  # fmt: skip
    return (source, generation, seq, 0, kind, {}, f"{source}#{seq}", route)


def drain(inbox: Inbox) -> list[Any]:
    out = []
    while True:
        entry, _ = inbox.pop()
        if entry is None:
            return out
        if isinstance(entry, Event):
            out.append((entry.type, entry.id))
        else:
            out.append((entry[0], entry[1][4]))


def test_drop_oldest_keeps_the_newest_and_counts_what_it_dropped() -> None:
    inbox = make_inbox([spec("in", size=3)])
    sent = 10
    for seq in range(1, sent + 1):
        inbox.push("in", [frame(seq)])
    delivered = drain(inbox)
    assert delivered == [("in", "s0/out#8"), ("in", "s0/out#9"), ("in", "s0/out#10")]
    stats = inbox.statistics()["in"]
    assert len(delivered) + stats.dropped == sent
    assert (stats.received, stats.queued) == (sent, 0)


def test_events_leave_in_arrival_order_across_inputs() -> None:
    inbox = make_inbox([spec("a", size=2), spec("b", size=5)])
    inbox.push("a", [frame(1)])
    inbox.push("b", [frame(1)])
    inbox.push("a", [frame(2), frame(3), frame(4)])  # a drops 1 and 2
    inbox.push("b", [frame(2)])
    assert drain(inbox) == [("b", "s0/out#1"), ("a", "s0/out#3"), ("a", "s0/out#4"),
                            ("b", "s0/out#2")]  # fmt: skip


def test_a_gap_in_sequence_numbers_is_counted_as_dropped() -> None:
    inbox = make_inbox([spec("in")])
    inbox.push("in", [frame(1), frame(4), frame(5)])
    inbox.push("in", [frame(9, kind=KIND_EOS)])  # end-of-stream: the last seq sent was 9
    stats = inbox.statistics()["in"]
    assert (stats.received, stats.dropped) == (3, 2 + 4)


def test_repeats_and_older_generations_are_refused() -> None:
    inbox = make_inbox([spec("in")])
    inbox.push("in", [frame(1, generation=2), frame(1, generation=2), frame(5, generation=1)])
    inbox.push("in", [frame(1, generation=3)])  # a restarted sender counts from 1 again
    assert [v for _, v in drain(inbox)] == ["s0/out#1", "s0/out#1"]
    stats = inbox.statistics()["in"]
    assert (stats.received, stats.refused, stats.dropped) == (2, 2, 0)


def test_gaps_are_counted_per_source() -> None:
    inbox = make_inbox([spec("in", sources=2)])
    inbox.push("in", [frame(1, "s0/out"), frame(1, "s1/out"), frame(2, "s0/out"),
                      frame(2, "s1/out")])  # fmt: skip
    assert inbox.statistics()["in"].dropped == 0


def test_input_closes_when_every_source_ended_then_stop() -> None:
    inbox = make_inbox([spec("a", sources=2), spec("b")])
    inbox.push("a", [frame(1, "s0/out"), frame(1, "s0/out", kind=KIND_EOS)])
    assert drain(inbox) == [("a", "s0/out#1")]
    inbox.close_source("a", "s1/out")  # the daemon: that sender died
    inbox.push("b", [frame(0, kind=KIND_EOS)])
    assert drain(inbox) == [
        (EventType.INPUT_CLOSED, "a"),
        (EventType.INPUT_CLOSED, "b"),
        (EventType.STOP, StopCause.ALL_INPUTS_CLOSED),
    ]
    inbox.push("b", [frame(1)])  # closed for good
    inbox.close_source("a", "s1/out")  # twice is harmless
    assert drain(inbox) == []


def test_input_closed_comes_after_the_inputs_data() -> None:
    inbox = make_inbox([spec("in")])
    inbox.push("in", [frame(1), frame(2), frame(2, kind=KIND_EOS)])
    assert [k for k, _ in drain(inbox)] == ["in", "in", EventType.INPUT_CLOSED, EventType.STOP]


def test_only_one_stop_and_the_first_cause_wins() -> None:
    inbox = make_inbox([spec("in")])
    inbox.push_stop(StopCause.STOP_REQUESTED)
    inbox.close_source("in", "s0/out")
    inbox.push_stop(StopCause.STOP_REQUESTED)
    assert drain(inbox) == [(EventType.STOP, StopCause.STOP_REQUESTED),
                            (EventType.INPUT_CLOSED, "in")]  # fmt: skip


def test_backpressure_never_drops_and_owes_credits_to_each_sender() -> None:
    inbox = make_inbox([spec("in", size=4, policy="backpressure")])
    inbox.push("in", [frame(n, route=b"A") for n in range(1, 7)])  # more than the queue
    dues = [inbox.pop()[1] for _ in range(3)]
    assert dues == [False, True, False]  # after size // 2, once until they are taken
    assert inbox.take_credits() == [("in", b"A", 3)]
    dues = [inbox.pop()[1] for _ in range(3)]
    assert dues == [False, True, False]
    assert inbox.take_credits() == [("in", b"A", 3)]
    assert inbox.take_credits() == []
    inbox.push("in", [frame(7, route=b"A")])
    assert inbox.pop()[1]  # the queue is empty after it: pay back before going idle
    assert inbox.statistics()["in"].dropped == 0


def generation_end(seq: int, generation: int) -> Any:
    """The end-of-stream of one generation of a sender that may be restarted."""
    return ("s0/out", generation, seq, 0, KIND_EOS, {"ge": 1}, None, None)


def test_a_generations_end_keeps_the_input_open_for_the_next_one() -> None:
    inbox = make_inbox([spec("in")])
    inbox.push("in", [frame(1), frame(2), generation_end(2, 1)])
    inbox.push("in", [frame(1, generation=2), frame(2, generation=2)])  # the restart
    assert [k for k, _ in drain(inbox)] == ["in"] * 4  # no INPUT_CLOSED, no STOP
    stats = inbox.statistics()["in"]
    assert (stats.received, stats.dropped, stats.refused) == (4, 0, 0)


def test_a_source_is_at_rest_between_generations_and_once_closed() -> None:
    inbox = make_inbox([spec("in")])
    assert not inbox.at_rest("in", "s0/out")  # not heard yet
    inbox.push("in", [frame(1)])
    assert not inbox.at_rest("in", "s0/out")
    inbox.push("in", [generation_end(1, 1)])
    assert inbox.at_rest("in", "s0/out")  # a restart may follow
    inbox.push("in", [frame(1, generation=2)])
    assert not inbox.at_rest("in", "s0/out")
    inbox.push("in", [("s0/out", 2, 2, 0, KIND_EOS, {}, None, None)])  # its stream's end
    assert inbox.at_rest("in", "s0/out")
    assert not inbox.at_rest("in", "nobody/out")
    assert not inbox.at_rest("nothing", "s0/out")


def test_the_daemon_closes_a_source_after_its_last_generations_end() -> None:
    inbox = make_inbox([spec("in")])
    inbox.push("in", [frame(1, generation=2)])
    inbox.close_source("in", "s0/out", generation=2)  # before its end-of-stream is in
    assert drain(inbox) == [("in", "s0/out#1")]  # not overtaken: still open
    inbox.push("in", [frame(2, generation=2), generation_end(2, 2)])
    assert drain(inbox) == [
        ("in", "s0/out#2"),
        (EventType.INPUT_CLOSED, "in"),
        (EventType.STOP, StopCause.ALL_INPUTS_CLOSED),
    ]
    later = make_inbox([spec("in")])
    later.push("in", [frame(1), generation_end(1, 1)])
    later.close_source("in", "s0/out", generation=1)  # after it: closed at once
    assert [k for k, _ in drain(later)] == ["in", EventType.INPUT_CLOSED, EventType.STOP]


def test_the_daemons_backstop_closes_an_awaited_source_only_once_read_empty() -> None:
    inbox = make_inbox([spec("in")])
    inbox.push("in", [frame(1)])
    inbox.close_source("in", "s0/out", generation=1)  # the sender said goodbye
    inbox.close_source("in", "s0/out")  # the backstop, while its messages are still coming
    inbox.push("in", [frame(2), frame(3)])  # read from the socket after it: still delivered
    assert drain(inbox) == [("in", "s0/out#1"), ("in", "s0/out#2"), ("in", "s0/out#3")]
    assert [b[:2] for b in inbox.backstops] == [("in", "s0/out")]
    assert 0 < inbox.backstop_deadline - time.monotonic() <= BACKSTOP_MAX_S  # the bound
    assert not inbox.settle("in", read_empty=False)  # not read empty, and not overdue
    assert inbox.settle("in")  # the socket was read empty: closed now
    assert [k for k, _ in drain(inbox)] == [EventType.INPUT_CLOSED, EventType.STOP]
    assert inbox.backstops == []
    assert not inbox.settle("in")
    late = make_inbox([spec("in")])
    late.close_source("in", "s0/out", generation=1)
    late.close_source("in", "s0/out")
    late.backstops = [(i, s, time.monotonic() - 1) for i, s, _ in late.backstops]
    assert late.settle("in", read_empty=False)  # past its deadline: closed unread
    assert [k for k, _ in drain(late)] == [EventType.INPUT_CLOSED, EventType.STOP]
    died = make_inbox([spec("in")])
    died.close_source("in", "s0/out")  # a sender that died with no goodbye: at once
    assert [k for k, _ in drain(died)] == [EventType.INPUT_CLOSED, EventType.STOP]
    assert died.backstops == []


def test_a_restarted_receiver_counts_gaps_from_each_sources_first_message() -> None:
    inbox = Inbox([spec("in")], lambda _descriptor: None, resumed=True)
    inbox.push("in", [frame(41), frame(42), frame(44)])  # 1..40 went to the last generation
    assert inbox.statistics()["in"].dropped == 1  # only the real gap
    fresh = make_inbox([spec("in")])
    fresh.push("in", [frame(41)])
    assert fresh.statistics()["in"].dropped == 40


def test_input_timeout_closes_a_silent_input_until_it_speaks_again() -> None:
    """dora's input_timeout: armed by the first message; silence closes the input for a
    while (no ALL_INPUTS_CLOSED), the next message comes after INPUT_RECOVERED; the real
    end then gives no second INPUT_CLOSED."""
    timed = DataInput("in", "ipc:///x/in", 10, "drop_oldest", ("s0/out",), timeout_s=0.5)
    inbox = make_inbox([timed])
    assert inbox.next_deadline() is None  # not armed before a message
    inbox.push("in", [frame(1)])
    due = inbox.next_deadline()
    assert due is not None
    assert not inbox.expire(due - 0.1)
    assert inbox.expire(due + 0.1)
    assert not inbox.expire(due + 5)  # once
    assert inbox.next_deadline() is None
    inbox.push("in", [frame(2)])
    inbox.push("in", [frame(3, kind=KIND_EOS)])
    assert drain(inbox) == [
        ("in", "s0/out#1"), (EventType.INPUT_CLOSED, "in"), (EventType.INPUT_RECOVERED, "in"),
        ("in", "s0/out#2"), (EventType.INPUT_CLOSED, "in"),
        (EventType.STOP, StopCause.ALL_INPUTS_CLOSED),
    ]  # fmt: skip


def test_a_timed_out_input_that_ends_closes_once() -> None:
    timed = DataInput("in", "ipc:///x/in", 10, "drop_oldest", ("s0/out",), timeout_s=0.5)
    inbox = make_inbox([timed])
    inbox.push("in", [frame(1)])
    assert inbox.expire(inbox.next_deadline() or 0.0)
    assert drain(inbox)[-1] == (EventType.INPUT_CLOSED, "in")
    inbox.push("in", [frame(2, kind=KIND_EOS)])
    assert drain(inbox) == [(EventType.STOP, StopCause.ALL_INPUTS_CLOSED)]
