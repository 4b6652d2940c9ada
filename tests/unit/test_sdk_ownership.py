"""The two threads' input ownership and credit protocol (node_sdk/ownership.py), driven step
by step by hypothesis, without processes or sockets.

Each rule is one step one of the threads takes in the real code (`Events` for the node's
thread, `Receiver._serve` for the other), acting on the real `Ownership` and `Inbox`; a
list stands for the input socket and a counter for the backpressure sender's credits.
The invariants are the ones ownership.py writes down: one owner at a time, only the owner
pays, no credit lost or paid twice, and every credit owed comes back within a hand-off.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from node_sdk.config import DataInput
from node_sdk.inbox import Frame, Inbox
from node_sdk.ownership import CREDIT, GIVE, MAIN, RECEIVER, Ownership
from node_sdk.wire import KIND_BYTES

WINDOW = 4  # the input's queue_size: the sender's credits at start
ROUTE = b"sender"


class OwnershipMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        spec = DataInput("in", "ipc:///unused", WINDOW, "backpressure", ("s/out",))
        self.inbox = Inbox([spec], lambda _descriptor: None)
        self.own = Ownership()
        self.socket: list[int] = []  # frames sent, not yet read by the inputs' owner
        self.credits = WINDOW  # the sender's
        self.seq = 0
        self.delivered: list[int] = []
        self.to_receiver: list[bytes] = []  # the PAIR, node -> receiver thread
        self.node_inside = False
        self.node_owned = False  # what the node's thread believes (set from `enter`)
        self.receiver_owned = False
        self.receiver_seen = 0

    # ------------------------------------------------------------ helpers

    def _pay(self, who: int) -> None:
        assert self.own.owner == who, "credits paid by a thread that does not own the sockets"
        for _input, route, count in self.inbox.take_credits():
            assert route == ROUTE
            self.credits += count

    def _drain(self, who: int) -> None:
        assert self.own.owner == who, "the input socket read by a thread that does not own it"
        frames: list[Frame] = [
            ("s/out", 1, seq, 0, KIND_BYTES, {}, b"x", ROUTE) for seq in self.socket
        ]
        self.socket.clear()
        if frames:
            self.inbox.push("in", frames)

    # ------------------------------------------------------------ the sender

    @precondition(lambda self: self.credits > 0)
    @rule()
    def sender_sends(self) -> None:
        self.credits -= 1
        self.seq += 1
        self.socket.append(self.seq)

    # ------------------------------------------------------------ the node's thread

    @precondition(lambda self: not self.node_inside)
    @rule()
    def node_enters_next(self) -> None:
        self.node_inside = True
        self.node_owned = self.own.enter()
        if not self.node_owned and not self.own.asked:
            self.own.asked = True
            self.to_receiver.append(GIVE)
        if self.node_owned and self.inbox.credit_asked:
            self._pay(MAIN)

    @precondition(lambda self: self.node_inside)
    @rule()
    def node_leaves_next(self) -> None:
        self.own.leave()
        self.node_inside = self.node_owned = False

    @precondition(lambda self: self.node_inside)
    @rule()
    def node_pops(self) -> None:
        entry, due = self.inbox.pop()
        if entry is None:
            return
        assert isinstance(entry, tuple)
        self.delivered.append(entry[1][0])
        if due:
            if self.node_owned:
                self._pay(MAIN)
            else:
                self.to_receiver.append(CREDIT)

    @precondition(lambda self: self.node_inside and self.node_owned)
    @rule()
    def node_drains(self) -> None:
        self._drain(MAIN)

    @precondition(lambda self: self.node_inside and not self.node_owned)
    @rule()
    def node_looks_after_a_word(self) -> None:
        if self.own.owned_by_main():  # handed back: what is owed is paid here
            self.node_owned = True
            self._pay(MAIN)

    # ------------------------------------------------------------ the receiver thread

    @precondition(lambda self: not self.receiver_owned)
    @rule()
    def receiver_checks(self) -> None:
        if self.own.take(self.receiver_seen):
            self.receiver_owned = True
            if self.inbox.credit_asked:
                self._pay(RECEIVER)
        self.receiver_seen = self.own.exits

    @precondition(lambda self: bool(self.to_receiver))
    @rule()
    def receiver_runs_a_command(self) -> None:
        command = self.to_receiver.pop(0)
        if command == CREDIT and self.receiver_owned:
            self._pay(RECEIVER)
        elif command == GIVE and self.receiver_owned:
            self.receiver_owned = False
            self.own.give_back()

    @precondition(lambda self: self.receiver_owned)
    @rule()
    def receiver_drains(self) -> None:
        self._drain(RECEIVER)

    # ------------------------------------------------------------ settling

    @rule()
    def settle(self) -> None:
        """The node's thread calls `next()` until nothing is left: it gets the sockets back
        within one hand-off, and every credit owed comes back to the sender."""
        if not self.node_inside:
            self.node_enters_next()
        for _ in range(4):  # GIVE, then the word back: a bounded number of steps
            if self.node_owned:
                break
            while self.to_receiver:
                self.receiver_runs_a_command()
            self.node_looks_after_a_word()
        assert self.node_owned, "the node's thread never got its inputs back"
        while self.socket or self.inbox.statistics()["in"].queued:
            self.node_drains()
            self.node_pops()
        assert self.credits == WINDOW, "a credit owed was never paid back"
        self.node_leaves_next()

    # ------------------------------------------------------------ invariants

    @invariant()
    def one_owner(self) -> None:
        assert self.receiver_owned == (self.own.owner == RECEIVER)
        if self.node_inside and self.node_owned:
            assert self.own.owner == MAIN
            assert not self.receiver_owned

    @invariant()
    def no_credit_lost_or_made(self) -> None:
        state = self.inbox._inputs["in"]
        owed = sum(state.owed.values())
        assert self.credits + len(self.socket) + len(state.queue) + owed == WINDOW

    @invariant()
    def nothing_owed_is_forgotten(self) -> None:
        state = self.inbox._inputs["in"]
        stuck = self.credits == 0 and not self.socket and not state.queue
        assert not (stuck and sum(state.owed.values()) and not self.inbox.credit_asked)

    @invariant()
    def lossless_and_in_order(self) -> None:
        assert self.delivered == list(range(1, len(self.delivered) + 1))


OwnershipMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None
)
test_ownership_and_credits = OwnershipMachine.TestCase
