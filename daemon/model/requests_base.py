"""What every control request shares: the bounds of its fields, their types, its base class.

The request classes live in `requests_runs`, `requests_nodes`, `requests_watch` and
`requests_cluster` (a `flow` command imports the one it sends, not all of them);
`daemon.model.requests` gathers them into the registry by name.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, NewType, TypeVar

import attrs

from daemon.model.replies_base import Empty

# Bounds of the fields (SPEC 10: every input is bounded).
MAX_STRING_CHARS = 4096  # run refs, node ids, paths, endpoints, leases
MAX_NAME_CHARS = 256  # run names, env keys
MAX_TEXT_CHARS = 1 << 20  # a YAML file's text (descriptor.MAX_YAML_BYTES bounds its bytes)
MAX_ENV_ENTRIES = 1024
MAX_ENV_VALUE_CHARS = 64 * 1024
MAX_PARAM_CHARS = 64 * 1024  # daemon.model.params bounds its bytes
MAX_SECONDS = 31 * 86400.0  # graces, timeouts, samples, a join token's ttl (30 days at most)

Seconds = NewType("Seconds", float)
"""A non-negative duration in seconds, at most MAX_SECONDS."""
Name = NewType("Name", str)
"""A short string: at most MAX_NAME_CHARS."""
YamlText = NewType("YamlText", str)
"""A YAML document's text: at most MAX_TEXT_CHARS."""
Env = NewType("Env", dict[str, str])
"""Environment variables: at most MAX_ENV_ENTRIES, strings to strings."""


R = TypeVar("R")


@attrs.frozen
class Request(Generic[R]):
    """Base of every request body; `TYPE` and `REPLY` (the class `R`) are set by each
    subclass, so a client's `call(Stop(...))` is typed as returning a `RunReply`."""

    TYPE: ClassVar[str] = ""
    REPLY: ClassVar[type[Any]] = Empty
    HOOK: ClassVar[bool] = False  # a test hook, accepted only with FLOW_TEST_HOOKS=1
    DOC: ClassVar[str] = ""
