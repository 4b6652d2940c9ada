"""What the keeper sent on one `send_stdout_as` output, counted as an SDK node counts one.

The counts are a generation's, as an SDK node's are its process's: a restarted node's
next generation counts from 0 again (the daemon's rates take a fall for one never-negative
step, as they do for an SDK node). `due` says when they are worth a `stdout_stats` report:
at a generation's start, while they change, and once more after, so that a rate the daemon
derives from them falls back to 0 when the node stops printing.
"""

from __future__ import annotations

import attrs

from daemon.model.keeper_messages import OutputCounts


@attrs.define
class SentCounts:
    """Messages sent (each line once, however many edges it went out on), the payload bytes
    of those messages (each once), and dropped, summed over the receivers (a line that two
    full queues refused is two)."""

    sent: int = 0
    dropped: int = 0
    bytes: int = 0
    reported: tuple[int, int, int] | None = None  # as last reported; None: never
    settled: bool = False  # the last report showed no change since the one before

    def due(self) -> bool:
        """True (and taken as reported) when a report of them is worth sending now."""
        counts = (self.sent, self.dropped, self.bytes)
        if counts != self.reported:
            self.reported, self.settled = counts, False
            return True
        if not self.settled:
            self.settled = True  # this report, unchanged, gives the daemon a rate of 0
            return True
        return False

    def report(self, source: str, generation: int) -> OutputCounts:
        """Of output `source` (`node/output`) in `generation`."""
        node, _, output = source.partition("/")
        return OutputCounts(node, generation, output, self.sent, self.dropped, self.bytes)
