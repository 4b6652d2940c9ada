"""Plain words for YAML syntax errors: what a person most likely did, and the line to look at.

PyYAML and libyaml describe the parser's state (`expected <block end>, but found '?';
while parsing a block collection`); a person wants the likely mistake and the text near it.
Both loaders' wordings are covered: `flow` uses libyaml when it is there, PyYAML otherwise.
"""

from __future__ import annotations

import re

import yaml

__all__ = ["plain_yaml_error"]

NEAR_CHARS = 40

_BAD_INDENT = "bad indentation or a missing `-`/`:`"
_SECOND_COLON = "a second `: ` on one line: quote a value that contains `: `"
# the same error for a line with one `: `: a key indented deeper than the key above it,
# which YAML reads as more of that key's value
_INDENTED = ("a key indented deeper than the key above it (or a value with `: ` in it: "
             "quote it)")  # fmt: skip

# (words in the parser's problem or context, the plain wording, use the context's line)
# the context's line is where the construct began: the key missing its `:`, the quote
# never closed, the `[` never matched
_RULES: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (("could not find expected ':'",), "a key without its `:` (write `key: value`)", True),
    (("tab", "'\\t'"), "a tab in the indentation: indent with spaces", False),
    (("quoted scalar",), "a quote that is never closed", True),
    (("flow sequence",), "a `[` list that is not closed with `]` (or a missing `,`)", True),
    (("flow mapping",), "a `{` mapping that is not closed with `}` (or a missing `,`)", True),
    (("flow node",), "an empty key or value inside `{...}` or `[...]`", False),
    (("mapping values are not allowed",), _SECOND_COLON, False),
    (("undefined alias",), "an alias `*name` with no `&name` anchor before it", False),
    (
        ("block collection", "block mapping", "block end", "expected key", "indicator"),
        _BAD_INDENT,
        False,
    ),
)
_KEY = re.compile(r"([\w.-]+):(\s|$)")


def plain_yaml_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[int, str]:
    """(1-based line, one plain line) for a YAML syntax error in `text`."""
    problem, context = exc.problem or "", exc.context or ""
    said = f"{problem} {context}".lower()
    for words, plain, at_context in _RULES:
        if any(word in said for word in words):
            mark = exc.context_mark if at_context and exc.context_mark else exc.problem_mark
            line = _line_of(mark)
            near = _text_near(text, line)
            if plain is _SECOND_COLON and near.count(": ") + near.endswith(":") < 2:
                plain = _INDENTED  # one `: ` on the line: the key is where the trouble is
            elif plain is _BAD_INDENT and (dedented := _dedented_key(text, line)):
                return line, f"invalid YAML: {dedented}"
            return line, f"invalid YAML: {plain}" + (f" near `{near}`" if near else "")
    parts = [part for part in (problem, context) if part]
    line = _line_of(exc.problem_mark or exc.context_mark)
    return line, "invalid YAML: " + ("; ".join(parts) if parts else "cannot parse")


def _dedented_key(text: str, line: int) -> str | None:
    """The plain words for a key left of the keys it belongs with (a node's `inputs:`
    dedented to the list's `-`), or None when `line` is not that. Its would-be sibling is
    the least indented key above it, up to the first line indented no deeper than it."""
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return None
    here = lines[line - 1]
    key = _KEY.match(here.lstrip())
    indent = len(here) - len(here.lstrip())
    sibling: tuple[int, int, str] | None = None  # (its key's indent, its line, its key)
    for above in range(line - 2, -1, -1):
        text_above = lines[above].lstrip()
        if not text_above or text_above.startswith("#"):
            continue
        item = text_above.removeprefix("- ").lstrip()  # `- id: a`: its key after the `- `
        at = len(lines[above]) - len(item)
        if at <= indent:
            break
        found = _KEY.match(item)
        if found is not None and (sibling is None or at < sibling[0]):  # the nearest
            sibling = (at, above + 1, found.group(1))
    if key is None or sibling is None:
        return None
    return (f"bad indentation: `{key.group(1)}:` is left of `{sibling[2]}:` on line "
            f"{sibling[1]} (the keys of one mapping line up; a new list item starts with "
            "`- `)")  # fmt: skip


def _line_of(mark: yaml.Mark | None) -> int:
    return mark.line + 1 if mark is not None else 1


def _text_near(text: str, line: int) -> str:
    """The line's text, stripped and cut short; the one above when the line is empty (the
    parser often stops at the end of the file, after the faulty line)."""
    lines = text.splitlines()
    for index in (line - 1, line - 2):
        if 0 <= index < len(lines) and lines[index].strip():
            near = lines[index].strip().replace("`", "'")
            return near if len(near) <= NEAR_CHARS else near[: NEAR_CHARS - 3] + "..."
    return ""
