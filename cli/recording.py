"""MCAP recordings seen from the CLI: where `--record` may write, what a file holds."""

from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.errors import BAD_INPUT, CliError, path_text

INSTALL_HINT = (  # the distribution's name (pyproject.toml): `flow` on PyPI is another one
    "install the record extra: pip install 'flow-runtime[record]' (in a clone: "
    "pip install '.[record]')"
)


def need_mcap() -> None:
    """One clear line when the `mcap` library (the `record` extra) is missing."""
    try:
        import mcap  # noqa: F401
    except ImportError:
        raise CliError(f"recording needs the mcap library: {INSTALL_HINT}", BAD_INPUT) from None


def new_file(text: str, option: str = "--record") -> str:
    """The absolute path `option` names: a file that does not exist yet, in a folder that
    does (a recording never overwrites one)."""
    need_mcap()
    path_text(text, f"{option} ")
    path = Path(text).expanduser().absolute()
    if path.is_symlink() and not path.exists():  # the recorder would not follow it either
        raise CliError(f"{option} {text}: a symbolic link to nothing is there (a recording "
                       "never writes through one)", BAD_INPUT)  # fmt: skip
    if not text.strip() or path.is_dir():
        raise CliError(f"{option} {text!r}: a folder, not a file to record into", BAD_INPUT)
    if path.exists():
        raise CliError(f"{option} {text}: the file exists (a recording never overwrites one)",
                       BAD_INPUT)  # fmt: skip
    if not path.parent.is_dir():
        raise CliError(f"{option} {text}: no such folder {path.parent}", BAD_INPUT)
    if not os.access(path.parent, os.W_OK | os.X_OK):  # else the run goes on unrecorded
        raise CliError(f"{option} {text}: cannot write in {path.parent}", BAD_INPUT)
    return str(path)


@dataclass
class Channel:
    topic: str
    messages: int = 0
    first_ns: int | None = None
    last_ns: int | None = None


@dataclass
class Contents:
    """What a recording holds, from its summary section (or a scan of an unfinished one)."""

    channels: dict[str, Channel] = field(default_factory=dict)
    attachments: list[str] = field(default_factory=list)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    dataflow: str | None = None
    unfinished: bool = False  # no summary or footer: read up to where the file is cut

    @property
    def messages(self) -> int:
        return sum(c.messages for c in self.channels.values())

    @property
    def duration_s(self) -> float:
        starts = [c.first_ns for c in self.channels.values() if c.first_ns is not None]
        ends = [c.last_ns for c in self.channels.values() if c.last_ns is not None]
        return (max(ends) - min(starts)) / 1e9 if starts and ends else 0.0


def read_contents(path: str) -> Contents:
    """Channels with their message counts and times, attachments, metadata of an MCAP file;
    CliError when it is not one."""
    need_mcap()
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    from daemon.model.recording import DATAFLOW_ATTACHMENT
    from daemon.model.recording_chunks import UnboundedChunk, check_chunks

    contents = Contents()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would hold every read below
            raise CliError(f"{path}: not a regular file", BAD_INPUT)
        check_chunks(path)  # before the reader decompresses anything (a chunk bomb)
        with open(path, "rb") as stream:
            reader = make_reader(stream)
            summary = reader.get_summary()
            stats = summary.statistics if summary is not None else None
            if summary is not None and stats is not None:  # a finished file: counts in it
                for channel_id, channel in summary.channels.items():
                    contents.channels[channel.topic] = Channel(
                        channel.topic, stats.channel_message_counts.get(channel_id, 0),
                        stats.message_start_time, stats.message_end_time,
                    )  # fmt: skip
            else:
                for _, channel, message in reader.iter_messages(log_time_order=False):
                    _count(contents, channel.topic, message.log_time)
            for attachment in reader.iter_attachments():
                contents.attachments.append(attachment.name)
                if attachment.name == DATAFLOW_ATTACHMENT:
                    contents.dataflow = bytes(attachment.data).decode("utf-8", "replace")
            for record in reader.iter_metadata():
                contents.metadata[record.name] = dict(record.metadata)
    except FileNotFoundError:
        raise CliError(f"no such recording: {path}", BAD_INPUT) from None
    except UnboundedChunk as exc:
        raise CliError(str(exc), BAD_INPUT) from None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # mcap seeks before the start of a file that short
            raise CliError(f"{path} is not a readable MCAP file: too short to be one",
                           BAD_INPUT) from None  # fmt: skip
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", BAD_INPUT) from None
    except (McapError, ValueError, EOFError, KeyError, struct.error) as exc:
        scanned = _scan_unfinished(path)  # a recorder killed before it finished the file
        if scanned is not None:
            return scanned
        reason = str(exc) or "it ends too early (empty or cut off)"
        if _mcap_magic(path) is False:  # a YAML file, a log: not a recording at all
            reason = "it does not start as one (a recording is the .mcap file flow record wrote)"
        raise CliError(f"{path} is not a readable MCAP file: {reason}", BAD_INPUT) from None
    return contents


def _scan_unfinished(path: str) -> Contents | None:
    """The records of a file cut off before its end, read in order up to the first damaged
    one (the reader that seeks needs the footer); None when not even its start is MCAP."""
    from mcap.records import Attachment, Message, Metadata
    from mcap.records import Channel as McapChannel

    from daemon.model.recording import DATAFLOW_ATTACHMENT
    from daemon.model.recording_chunks import records_to_cut

    contents, started = Contents(unfinished=True), False
    topics: dict[int, str] = {}
    # the cut ends the read: what came before it is what the file holds
    for record in records_to_cut(path):
        started = True
        if isinstance(record, McapChannel):
            topics[record.id] = record.topic
        elif isinstance(record, Message) and record.channel_id in topics:
            _count(contents, topics[record.channel_id], record.log_time)
        elif isinstance(record, Attachment):
            contents.attachments.append(record.name)
            if record.name == DATAFLOW_ATTACHMENT:
                contents.dataflow = bytes(record.data).decode("utf-8", "replace")
        elif isinstance(record, Metadata):
            contents.metadata[record.name] = dict(record.metadata)
    return contents if started else None


def _count(contents: Contents, topic: str, log_time: int) -> None:
    channel = contents.channels.setdefault(topic, Channel(topic))
    channel.messages += 1
    if channel.first_ns is None or log_time < channel.first_ns:
        channel.first_ns = log_time
    if channel.last_ns is None or log_time > channel.last_ns:
        channel.last_ns = log_time


def report(path: str) -> None:
    """The line `flow run|start --record` ends with: what the file holds (what was not
    recorded is in the run's `degraded` line, printed with its result)."""
    from cli import render

    try:
        contents = read_contents(path)
    except CliError as exc:
        render.warning(f"recording: {exc.message}")
        return
    render.info(f"recording: {path}: {holds(contents)} over {contents.duration_s:.2f} s")


def holds(contents: Contents) -> str:
    """`83 messages on 1 output`: what a recording holds, in counted words."""
    messages, outputs = contents.messages, len(contents.channels)
    return (f"{messages} message{'' if messages == 1 else 's'} on "
            f"{outputs} output{'' if outputs == 1 else 's'}")  # fmt: skip


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """A recorder's own summary (`flow record`): per topic recorded and missed."""
    lines = []
    for topic, counts in sorted((summary.get("topics") or {}).items()):
        missed = counts.get("missed") or 0
        lines.append(f"  {topic}: {counts.get('recorded', 0)} recorded"
                     + (f", {missed} not recorded" if missed else ""))  # fmt: skip
    return lines


def _mcap_magic(path: str) -> bool | None:
    """Whether the file starts with MCAP's magic bytes; None when it cannot be read."""
    try:
        with open(path, "rb") as stream:
            return stream.read(8) == b"\x89MCAP0\r\n"
    except OSError:
        return None
