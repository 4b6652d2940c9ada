"""`dora.builder.DataflowBuilder`: write a dataflow YAML from Python, as dora's builder does.

The YAML it writes is a plain dataflow file for `flow run` (or `dora.run`). Operators are
not offered: flow runs no operators (`flow check` says so).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

QUEUE_POLICIES = ("drop_oldest", "backpressure")


class Output:
    """One output of a node; what `add_input` takes as its source (`node/output`)."""

    def __init__(self, node: Node, output_id: str) -> None:
        self.node = node
        self.output_id = output_id

    def __str__(self) -> str:
        return f"{self.node.id}/{self.output_id}"


class Node:
    """A node of the dataflow being built; every key given becomes a YAML key."""

    def __init__(self, id: str, **keys: Any) -> None:
        self.id = id
        self.config: dict[str, Any] = {"id": id, **keys}

    def path(self, path: str) -> Node:
        self.config["path"] = path
        return self

    def args(self, args: str) -> Node:
        self.config["args"] = args
        return self

    def env(self, env: dict[str, Any]) -> Node:
        self.config["env"] = env
        return self

    def build(self, build_command: str) -> Node:
        self.config["build"] = build_command
        return self

    def add_output(self, output_id: str) -> Output:
        outputs: list[str] = self.config.setdefault("outputs", [])
        if output_id not in outputs:
            outputs.append(output_id)
        return Output(self, output_id)

    def add_input(
        self,
        input_id: str,
        source: str | Output,
        queue_size: int | None = None,
        queue_policy: str | None = None,
    ) -> Node:
        """An input from `source` (`"node/output"`, an `Output` or `"dora/timer/millis/N"`)."""
        if queue_policy is not None and queue_policy not in QUEUE_POLICIES:
            raise ValueError(f"queue_policy must be one of {QUEUE_POLICIES}, not {queue_policy!r}")
        if queue_size is not None and queue_size < 1:
            raise ValueError(f"queue_size must be 1 or more, not {queue_size}")
        entry: Any = str(source)
        if queue_size is not None or queue_policy is not None:
            entry = {"source": entry}
            if queue_size is not None:
                entry["queue_size"] = queue_size
            if queue_policy is not None:
                entry["queue_policy"] = queue_policy
        self.config.setdefault("inputs", {})[input_id] = entry
        return self

    def to_dict(self) -> dict[str, Any]:
        return dict(self.config)


class DataflowBuilder:
    """A dataflow: `add_node`, then `to_yaml(path)` (or `to_yaml()` for the text)."""

    def __init__(self, name: str = "dora-dataflow") -> None:
        self.name = name
        self.nodes: list[Node] = []

    def add_node(self, id: str, **keys: Any) -> Node:
        node = Node(id, **keys)
        self.nodes.append(node)
        return node

    def to_yaml(self, path: str | None = None) -> str | None:
        """The YAML text, or None once written to `path`."""
        import yaml

        text: str = yaml.safe_dump(
            {"nodes": [node.to_dict() for node in self.nodes]}, sort_keys=False
        )
        if path is None:
            return text
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return None

    def __enter__(self) -> DataflowBuilder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None
