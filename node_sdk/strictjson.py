"""Bounded JSON in, typed fields out: the one total reader of the node channel and the config.

`loads` refuses, with `NodeError` and nothing else, what `json.loads` would turn into a
RecursionError, an infinity, a 4,300-digit int or a megabyte of text: size and nesting
depth are checked on the bytes before parsing, non-finite numbers while parsing. `Fields`
then reads one object's keys with explicit types and ranges, naming the path at fault.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any, Final, NoReturn

from node_sdk.errors import NodeError

MAX_INT: Final = 2**63 - 1  # any integer field beyond its own bound is also beyond this
MAX_STR: Final = 4096  # ids, endpoints, paths, error lines
# Possessive, and a string left open runs to the end: a plain `"(...)*"` backtracks from
# every quote of an unterminated string of escaped quotes, quadratic in the frame's size.
_STRINGS: Final = re.compile(rb'"(?:[^"\\]|\\.)*+"?', re.DOTALL)
_OTHERS: Final = re.compile(rb"[^\[\]{}]+")
_STEP: Final = tuple(1 if b in b"[{" else -1 for b in range(256))  # only brackets are left


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is not finite")
    return value


def _no_constant(text: str) -> NoReturn:
    raise ValueError(f"{text} is not a number")


_DECODER: Final = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)


# a `\uD800`-`\uDFFF` escape: how JSON text (UTF-8 itself cannot) carries a surrogate
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SURROGATE_ESCAPE_TEXT: Final = re.compile(_SURROGATE_ESCAPE.pattern.decode())


def lone_surrogate(data: bytes | str, obj: Any) -> bool:
    """Whether `obj`, parsed from `data`, holds a string with a lone surrogate (`"\\ud800"`):
    valid JSON, a Python str that cannot be encoded, so a store write, a log line or a
    reply made of it raises. Only text with a surrogate escape is looked at further (a
    pair of them is one character: fine)."""
    # text is searched as it is: a data frame's extra is text already, and encoding it
    # again would cost every received message a copy
    escape = _SURROGATE_ESCAPE_TEXT if isinstance(data, str) else _SURROGATE_ESCAPE
    if escape.search(data) is None:  # type: ignore[arg-type]  # the pattern fits the type
        return False
    stack = [obj]  # as deep as the text's nesting, which every caller has bounded
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)  # its keys
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def depth(data: bytes) -> int:
    """The deepest nesting of `[`/`{` in JSON text, strings left out (not checked for
    balance: the parser does that). C-speed iteration all the way: a hostile megabyte of
    brackets costs the daemon milliseconds, not a Python loop per byte."""
    brackets = _OTHERS.sub(b"", _STRINGS.sub(b"", data))
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets))))


def loads(data: bytes | str, what: str, *, max_bytes: int, max_depth: int) -> Any:
    """Parse one bounded JSON document; NodeError naming `what` for anything else."""
    try:
        raw = data.encode() if isinstance(data, str) else bytes(data)
    except (TypeError, UnicodeEncodeError) as exc:
        raise NodeError(f"{what}: not JSON text ({exc})") from None
    if len(raw) > max_bytes:
        raise NodeError(f"{what}: {len(raw)} bytes (at most {max_bytes})")
    if depth(raw) > max_depth:
        raise NodeError(f"{what}: nested deeper than {max_depth}")
    try:
        obj = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise NodeError(f"{what}: not JSON ({exc})") from None
    if lone_surrogate(raw, obj):
        raise NodeError(f"{what}: a string that is not valid Unicode (a lone surrogate)")
    return obj


class Fields:
    """The keys of one decoded JSON object, read with types and bounds; NodeError names
    `where` (`$.inputs.tick`) and the key."""

    __slots__ = ("raw", "what", "where")

    def __init__(self, raw: object, what: str, where: str = "$") -> None:
        if not isinstance(raw, dict):
            raise NodeError(f"{what}: {where} is not an object")
        self.raw: dict[str, Any] = raw
        self.what = what
        self.where = where

    def fail(self, key: str, why: str) -> NoReturn:
        raise NodeError(f"{self.what}: {self.where}.{key} {why}")

    def has(self, key: str) -> bool:
        return key in self.raw

    def text(self, key: str, *, max_len: int = MAX_STR, empty: bool = False) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or len(value) > max_len or (not value and not empty):
            self.fail(key, f"must be a {'' if empty else 'non-empty '}string of <= {max_len}")
        return value

    def opt_text(self, key: str, *, max_len: int = MAX_STR) -> str | None:
        if self.raw.get(key) is None:
            return None
        return self.text(key, max_len=max_len, empty=True)

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int:
        value = self.raw.get(key, default)
        # a bool is an int to Python, never to this protocol
        if type(value) is not int or not low <= value <= high:
            self.fail(key, f"must be an integer in {low}..{high}")
        return value

    def flag(self, key: str) -> bool:
        """A boolean key; absent is False."""
        value = self.raw.get(key, False)
        if type(value) is not bool:
            self.fail(key, "must be true or false")
        return value

    def number(self, key: str, low: float, high: float, default: float | None = None) -> float:
        value = self.raw.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.fail(key, f"must be a number in {low:g}..{high:g}")
        if not low <= value <= high:
            self.fail(key, f"must be a number in {low:g}..{high:g}")
        return float(value)

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.raw.get(key, default)
        if type(value) is not str or value not in allowed:
            shown = repr(value)[:40]  # bounded: the value may be anything
            self.fail(key, f"{shown} is not one of {', '.join(allowed)}")
        return value

    def texts(self, key: str, *, max_items: int, max_len: int = MAX_STR) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or len(value) > max_items:
            self.fail(key, f"must be a list of at most {max_items} strings")
        for item in value:
            if not isinstance(item, str) or not item or len(item) > max_len:
                self.fail(key, f"must be a list of non-empty strings of <= {max_len}")
        return tuple(value)

    def integers(self, key: str, low: int, high: int, *, max_items: int) -> tuple[int, ...]:
        """A list of integers (absent: empty), each in `low`..`high`."""
        value = self.raw.get(key, [])
        if not isinstance(value, list) or len(value) > max_items or not all(
            type(item) is int and low <= item <= high for item in value
        ):
            self.fail(key, f"must be a list of at most {max_items} integers in {low}..{high}")
        return tuple(value)

    def obj(self, key: str, *, optional: bool = False) -> Fields:
        value = self.raw.get(key)
        if value is None and optional:
            value = {}
        return Fields(value, self.what, f"{self.where}.{key}")

    def mapping(self, key: str, *, max_items: int) -> Mapping[str, Any]:
        """An object of any values (keys are strings in JSON), at most `max_items` keys."""
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or len(value) > max_items:
            self.fail(key, f"must be an object of at most {max_items} keys")
        return value
