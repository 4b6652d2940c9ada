"""Plain words for YAML syntax errors: what a person most likely did, and the line to look at.

PyYAML and libyaml describe the parser's state (`expected <block end>, but found '?';
while parsing a block collection`); a person wants the likely mistake and the text near it.
Both loaders' wordings are covered: `flow` uses libyaml when it is there, PyYAML otherwise.
"""

from __future__ import annotations

import yaml

__all__ = ["plain_yaml_error"]

NEAR_CHARS = 40

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
        "bad indentation or a missing `-`/`:`",
        False,
    ),
)


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
            return line, f"invalid YAML: {plain}" + (f" near `{near}`" if near else "")
    parts = [part for part in (problem, context) if part]
    line = _line_of(exc.problem_mark or exc.context_mark)
    return line, "invalid YAML: " + ("; ".join(parts) if parts else "cannot parse")


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
