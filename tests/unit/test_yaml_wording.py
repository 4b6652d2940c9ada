"""YAML syntax errors in plain words, the same from PyYAML's pure loader and from libyaml."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from daemon.model.yaml_wording import plain_yaml_error

LOADERS: list[Any] = [yaml.SafeLoader]
if yaml.__with_libyaml__:
    LOADERS.append(yaml.CSafeLoader)

CASES = [
    # (text, line, plain words)
    (
        "nodes:\n  - id: a\n    path: a.py\n    id: b\n  path: c\n",
        5,
        "bad indentation: `path:` is left of `id:` on line 4 (the keys of one mapping line up",
    ),
    (
        "nodes:\n  - id: a\n    path: a.py\n   inputs:\n      x: b/y\n",
        4,
        "bad indentation: `inputs:` is left of `path:` on line 3",
    ),
    # a node's `inputs:` dedented to its `- `, a comment and a blank line between
    (
        "nodes:\n  - id: a\n    path: a.py\n\n    # its inputs\n  inputs:\n    x: b/y\n",
        6,
        "bad indentation: `inputs:` is left of `path:` on line 3",
    ),
    # a `- ` item's first key counts where it starts, after the `- `
    ("nodes:\n  - id: a\n  path: a.py\n", 3, "bad indentation: `path:` is left of `id:` on line 2"),
    # a line that is no key keeps the general words
    ("nodes:\n  - id: a\n    path: a.py\n  ? x\n", 4, "bad indentation or a missing `-`/`:`"),
    # the key it belongs with, not a nested block's
    (
        "nodes:\n  - id: a\n    inputs:\n      x: b/y\n   outputs: [z]\n",
        5,
        "bad indentation: `outputs:` is left of `inputs:` on line 3",
    ),
    ("nodes:\n  - id: a\n    path a.py\n    inputs: {}\n", 3, "a key without its `:`"),
    ("nodes:\n  - id: a\n    args: \"open\n    path: a.py\n", 3, "a quote that is never closed"),
    ("nodes:\n  - id: [a\n    path: a.py\n", 2, "a `[` list that is not closed with `]`"),
    ("nodes:\n  - id: a\n    inputs: {x: b/y\n", 3, "a `{` mapping that is not closed"),
    ("nodes:\n  - id: a\n    args: a: b\n", 3, "a second `: ` on one line"),
    # one `: ` on the line: the key is indented deeper than `id` above it
    ("nodes:\n  - id: a\n      path: a.py\n", 3, "a key indented deeper than the key above it"),
    ("nodes:\n  - id: a\n    path: *x\n", 3, "an alias `*name` with no `&name` anchor"),
    ("nodes:\n  - id: a\n\tpath: a.py\n", 3, "a tab in the indentation"),
]


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
@pytest.mark.parametrize(("text", "line", "words"), CASES)
def test_plain_words_and_the_line_to_look_at(
    loader: Any, text: str, line: int, words: str
) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as raised:
        yaml.load(text, Loader=loader)
    got_line, message = plain_yaml_error(raised.value, text)
    assert message.startswith(f"invalid YAML: {words}"), message
    assert got_line == line
    assert "while parsing" not in message
