"""`flow new NAME [--kind dataflow|node]`: scaffold a runnable dataflow or a node template."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from string import Template

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

DATAFLOW_YML = Template("""\
# $name: a timer-driven source and a sink. Run it with:
#   flow run $name/dataflow.yml
name: $name
nodes:
  - id: source
    path: source.py
    inputs:
      tick: flow/timer/millis/100
    outputs:
      - count

  - id: sink
    path: sink.py
    inputs:
      count: source/count
""")

SOURCE_PY = Template('''\
#!/usr/bin/env python3
"""$name source: send a counter on every timer tick, COUNT times, then exit."""

import os

from node_sdk import Node

COUNT = int(os.environ.get("COUNT", "10"))

node = Node()
sent = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        sent += 1
        node.send_output("count", str(sent))
        if sent >= COUNT:
            break  # leaving ends this node; the sink's input then closes
    elif event["type"] == "STOP":
        break
''')

SINK_PY = Template('''\
#!/usr/bin/env python3
"""$name sink: print every value; ends when its input closes."""

from node_sdk import Node

node = Node()
for event in node:
    if event["type"] == "INPUT" and event["id"] == "count":
        print(f"sink received {event['value']}")
    elif event["type"] == "STOP":
        break
''')

NODE_PY = Template('''\
#!/usr/bin/env python3
"""$name: a flow node. Declare it in a dataflow.yml:

  - id: $name
    path: $name.py
    inputs:
      in: some_node/some_output
    outputs:
      - out
"""

from node_sdk import Node


def main() -> None:
    node = Node()
    for event in node:
        if event["type"] == "INPUT":
            # event["id"] is the input id, event["value"] the data (bytes as a memoryview,
            # str, numpy array or pyarrow array), event["metadata"] a dict
            node.send_output("out", event["value"])
        elif event["type"] == "INPUT_CLOSED":
            print(f"input {event['id']} closed")
        elif event["type"] == "STOP":
            break


if __name__ == "__main__":
    main()
''')


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "new",
        help="scaffold a new dataflow or node",
        description="Create NAME/ with a runnable dataflow, or NAME.py with a node template.",
    )
    parser.add_argument("name", metavar="NAME", help="folder (dataflow) or file stem (node)")
    parser.add_argument(
        "--kind",
        choices=("dataflow", "node"),
        default="dataflow",
        help="a runnable dataflow folder (the default) or one node template",
    )
    parser.add_argument(
        "--lang",
        choices=("python",),
        default="python",
        help="the nodes' language (dora's option: flow writes Python nodes)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.render import error, info

    name = str(args.name)
    if args.kind == "node":
        name = name.removesuffix(".py")
    if not NAME_RE.fullmatch(name):
        error(f"invalid name {name!r}: use letters, digits, '_', '.', '-' (at most 64)")
        return 2
    target = Path(name if args.kind == "dataflow" else f"{name}.py")
    if target.exists() or target.is_symlink():
        error(f"{target} already exists")
        return 2
    try:
        if args.kind == "node":
            _write(target, NODE_PY.substitute(name=name), executable=True)
            info(f"created {target}")
            return 0
        target.mkdir()
        _write(target / "dataflow.yml", DATAFLOW_YML.substitute(name=name))
        _write(target / "source.py", SOURCE_PY.substitute(name=name), executable=True)
        _write(target / "sink.py", SINK_PY.substitute(name=name), executable=True)
    except OSError as exc:
        error(f"cannot create {target}: {exc.strerror or exc}")
        return 1
    info(f"created {target}/ with dataflow.yml, source.py, sink.py")
    info(f"run it: flow run {target}/dataflow.yml")
    return 0


def _write(path: Path, text: str, *, executable: bool = False) -> None:
    path.write_text(text)
    if executable:
        path.chmod(0o755)
