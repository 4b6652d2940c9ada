"""What every reply module shares: JSON objects, a parameter's text, and the empty reply."""

from __future__ import annotations

from typing import Any, NewType

import attrs

Json = dict[str, Any]
ParamText = NewType("ParamText", str)
"""A parameter's JSON text: at most requests_base.MAX_PARAM_CHARS (both ways)."""


@attrs.frozen
class Empty:
    """A reply with nothing to say but `ok`."""
