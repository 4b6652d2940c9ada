"""The control protocol's cattrs converter: strict, bounded, and naming the bad field.

No coercion (`"5"` is not a number, `1` is not `true`, `[1]` is not a string), no unknown
keys, every value within the bounds of `daemon.model.requests_base`; a failure becomes one line
per field, `field 'grace': expected a non-negative number`. cattrs is imported on first
use, so what imports the protocol only for its constants never pays for it.
"""

from __future__ import annotations

import functools
import typing
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from daemon.model import replies_base as rp
from daemon.model import requests_base as rq
from daemon.model.descriptor_fields import env_name_problem, env_value_problem
from daemon.model.errors import BadRequest

if TYPE_CHECKING:
    import cattrs

T = TypeVar("T")


@attrs.frozen
class OutOfRange:
    """A JSON number the protocol does not take (NaN, Infinity, 1e400, 10**30): kept as
    its text so the converter can name the field it was in."""

    text: str

    def __repr__(self) -> str:
        return self.text[:40]


class FieldError(ValueError):
    """A value of the wrong type or out of its bounds; the message says what was expected."""


def _check_str(limit: int, what: str = "a string") -> Any:
    def structure(value: Any, _: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(f"expected {what}")
        if len(value) > limit:
            raise FieldError(f"longer than {limit} characters")
        return value

    return structure


def _structure_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError("expected true or false")
    return value


def _no_out_of_range(value: Any) -> None:
    if isinstance(value, OutOfRange):
        raise FieldError(f"number {value!r} out of range")


def _structure_int(value: Any, _: Any) -> int:
    _no_out_of_range(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError("expected an integer")
    return value


def _structure_float(value: Any, _: Any) -> float:
    _no_out_of_range(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError("expected a number")
    return float(value)


def _structure_seconds(value: Any, _: Any) -> float:
    _no_out_of_range(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FieldError("expected a non-negative number")
    if value > rq.MAX_SECONDS:
        raise FieldError(f"expected at most {rq.MAX_SECONDS:g} seconds ({rq.MAX_SECONDS / 86400:g} "
                         "days)")  # fmt: skip
    return float(value)


def _structure_env(value: Any, _: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise FieldError("expected a mapping of strings to strings")
    if len(value) > rq.MAX_ENV_ENTRIES:
        raise FieldError(f"more than {rq.MAX_ENV_ENTRIES} entries")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > rq.MAX_NAME_CHARS:
            raise FieldError(f"entry {key[:40]!r}: expected a string to a string")
        if len(item) > rq.MAX_ENV_VALUE_CHARS:
            raise FieldError(f"entry {key[:40]!r}: longer than {rq.MAX_ENV_VALUE_CHARS}")
        if env_name_problem(key) or env_value_problem(item):  # the rules of a dataflow's env:
            raise FieldError(f"entry {key[:40]!r}: cannot be passed in the environment")
    return dict(value)


def _is_list(type_: Any) -> bool:
    return typing.get_origin(type_) is list


def _list_hook(converter: cattrs.Converter) -> Any:
    """cattrs makes a list of any iterable: a string would be its characters, an object its
    keys (`"topics": "src/out"` read as topics `s`, `r`, ...). Only a JSON array is a list."""

    def structure(value: Any, type_: Any) -> list[Any]:
        if not isinstance(value, list):
            raise FieldError("expected a list")
        (item,) = typing.get_args(type_) or (Any,)
        return [converter.structure(element, item) for element in value]

    return structure


@functools.cache
def converter() -> cattrs.Converter:
    """The strict converter both ends use: no coercion, no extra keys, bounded values.

    Built on first use: `flow run` and the keeper import this module for its constants and
    never pay for cattrs.
    """
    import cattrs

    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(str, _check_str(rq.MAX_STRING_CHARS))
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(rq.Seconds, _structure_seconds)
    converter.register_structure_hook(rq.Env, _structure_env)
    converter.register_structure_hook(rq.Name, _check_str(rq.MAX_NAME_CHARS))
    converter.register_structure_hook(rq.YamlText, _check_str(rq.MAX_TEXT_CHARS))
    converter.register_structure_hook(rp.ParamText, _check_str(rq.MAX_PARAM_CHARS))
    converter.register_structure_hook_func(_is_list, _list_hook(converter))
    return converter


def _format(exc: BaseException, type_: Any) -> str:
    import cattrs

    if isinstance(exc, FieldError):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return (
            "unknown field"
            + ("s " if len(exc.extra_fields) > 1 else " ")
            + ", ".join(repr(k)[:40] for k in sorted(exc.extra_fields))
        )
    return "expected " + getattr(type_, "__name__", str(type_))


def _field_lines(exc: Exception) -> list[str]:
    """cattrs' `msg @ $.grace` lines as `field 'grace': msg` (or `body: msg`)."""
    import cattrs

    lines = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_format):
        message, _, where = line.rpartition(" @ ")
        if where.startswith("$.") and "unknown field" not in message:
            lines.append(f"field {where[2:]!r}: {message}")
        else:
            lines.append(f"body: {message}")
    return lines or [f"body: {exc}"]


def structure(data: Any, cls: type[T]) -> T:
    """`data` as a `cls`; raises BadRequest naming every bad field."""
    if not isinstance(data, dict):
        raise BadRequest("body: expected a JSON object")
    try:
        return converter().structure(data, cls)
    except Exception as exc:  # cattrs' class errors, or any hook's: all about the input
        raise BadRequest("; ".join(_field_lines(exc))) from None


def unstructure(value: Any) -> Any:
    return converter().unstructure(value)
