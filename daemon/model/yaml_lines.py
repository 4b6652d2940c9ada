"""A YAML loader that keeps the line of every key and list item, for one-line problems."""

from __future__ import annotations

import re
from typing import Any

import attrs
import yaml

from daemon.model.yaml_wording import plain_yaml_error

Path = tuple[str | int, ...]

# Bounds that keep a hostile file (alias bombs, deep nesting) from hurting the daemon.
MAX_YAML_NODES = 200_000
MAX_DEPTH = 64

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_COLLECTION_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}
_DROPPED = {_BOOL, _INT, _FLOAT, _NULL, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core scalars, as dora's serde_yaml reads them.

    YAML 1.1 would turn `on`/`yes` into booleans, `010` into 8 and `1:30` into 90; a dora
    file means the strings (or decimal 10), so those rules are replaced.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Loader.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(node.value)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # decimal even with leading zeros (YAML 1.2)


_Loader.add_constructor(_INT, _construct_int)

if yaml.__with_libyaml__:

    class _FastLoader(yaml.CSafeLoader):
        """The same rules over libyaml's parser: about 3x faster on a large file."""

    _FastLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    _FastLoader.yaml_constructors = _Loader.yaml_constructors
    _LOADER: type[Any] = _FastLoader
    _EVENTS: type[Any] = yaml.CSafeLoader
else:
    _LOADER = _Loader
    _EVENTS = yaml.SafeLoader


class YamlSyntaxError(Exception):
    """The text is not YAML flow can read; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


@attrs.frozen
class Loaded:
    """Plain Python data plus where each part was written.

    `lines[path]` is the line of a mapping entry's key or of a list item; `texts[path]` is a
    scalar's source text (so `1.10` in an env map stays `1.10`); `problems` are structural
    ones found while loading (duplicate keys, non-scalar keys), as (path, line, message).
    """

    value: Any
    lines: dict[Path, int]
    texts: dict[Path, str]
    problems: list[tuple[Path, int, str]]


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, before any composer recurses into it.

    Composers recurse once per level (PyYAML's in Python, libyaml's in C), so a 5,000-deep
    file must be refused before composing, not while walking the result.
    """
    events = _EVENTS(text)
    depth = 0
    try:
        while (event := events.get_event()) is not None:
            if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                depth += 1
                if depth > MAX_DEPTH + 1:  # +1: the document's own top-level collection
                    line = event.start_mark.line + 1 if event.start_mark else 1
                    raise YamlSyntaxError(line, f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                depth -= 1
    finally:
        events.dispose()


def load(text: str) -> Loaded:
    """Parse one YAML document; raises YamlSyntaxError with the line of the fault."""
    loader = _LOADER(text)
    try:
        _check_depth(text)
        root = loader.get_single_node()
        walker = _Walker(loader)
        value = None if root is None else walker.walk(root, (), 0)
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(*plain_yaml_error(exc, text)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines = walker.lines if root is not None else {}
    lines[()] = 1
    texts = walker.texts if root is not None else {}
    problems = walker.problems if root is not None else []
    return Loaded(value=value, lines=lines, texts=texts, problems=problems)


class _Walker:
    """Turns composed nodes into plain values while recording lines per path."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.texts: dict[Path, str] = {}
        self.problems: list[tuple[Path, int, str]] = []
        self.count = 0

    def walk(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > MAX_YAML_NODES:
            # aliases can multiply a small file into billions of values
            raise YamlSyntaxError(line, f"more than {MAX_YAML_NODES} YAML values (alias bomb?)")
        if depth > MAX_DEPTH:
            raise YamlSyntaxError(line, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if node.tag not in _COLLECTION_TAGS:
            # the safe loader would refuse it too; a walk by structure must not skip it
            raise YamlSyntaxError(line, f"invalid YAML: unsupported tag '{node.tag}'")
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, child in enumerate(node.value):
                self.lines[(*path, i)] = child.start_mark.line + 1
                items.append(self.walk(child, (*path, i), depth + 1))
            return items
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        raise YamlSyntaxError(line, f"unsupported YAML node {type(node).__name__}")

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        self.texts[path] = str(node.value)
        value = self.loader.construct_object(node)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        return str(node.value)  # !!binary and the like: keep the text, stay JSON-safe

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append((path, key_line, "a key must be a plain string"))
            elif key_node.tag != "tag:yaml.org,2002:merge":
                key = str(key_node.value)
                if key in seen:
                    msg = f"duplicate key (first at line {seen[key]})"
                    self.problems.append(((*path, key), key_line, msg))
                seen.setdefault(key, key_line)
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor`; explicit keys win
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            # Keys stay as written: `on:` or `1:` is an id, not a bool or an int.
            key = str(key_node.value)
            child = (*path, key)
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self.walk(value_node, child, depth + 1)
        return result
