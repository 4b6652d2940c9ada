"""Example lines for every command's `--help`, kept in one table beside the parser.

`cli.main.build_parser` attaches them as each subparser's epilog after the command modules
have registered, so a command module never carries its own examples, and the CLI reference
(`python -m cli.docs`) prints the same lines.
"""

from __future__ import annotations

import argparse

__all__ = ["EXAMPLES", "HEADING", "ExamplesFormatter", "attach"]

HEADING = "examples:"

# command (as typed after `flow`) -> example lines; every command and sub-verb has one
# (tests/unit/test_cli_examples.py)
EXAMPLES: dict[str, tuple[str, ...]] = {
    "up": (
        "flow up",
        "flow up --machine robot --listen tcp://192.168.1.10:7890",
        "flow up --machine gpu --join flow-join.eyJ2Ijox...",
        "flow up --metrics 127.0.0.1:9464",
        "flow up --otlp http://127.0.0.1:4318/v1/metrics",
    ),
    "down": ("flow down", "flow down --grace 2"),
    "start": (
        "flow start dataflow.yml",
        "flow start dataflow.yml --detach --name cam --env LOG=debug",
        "flow start robot.yml --probe",
        "flow start dataflow.yml --detach --name cam --record cam.mcap",
    ),
    "stop": ("flow stop", "flow stop cam --grace 2", "flow stop --all"),
    "restart": ("flow restart cam",),
    "list": ("flow list", "flow list --all --limit 20", "flow list --json"),
    "logs": ("flow logs cam", "flow logs cam camera -f", "flow logs cam --tail 50"),
    "run": (
        "flow run dataflow.yml",
        "flow run dataflow.yml --stop-after 10s",
        "flow run dataflow.yml --record run.mcap",
    ),
    "record": (
        "flow record cam -o cam.mcap",
        "flow record cam -o images.mcap --topics camera/image --duration 30s",
    ),
    "replay": (
        "flow replay cam.mcap --info",
        "flow replay cam.mcap --replace camera",
        "flow replay cam.mcap --replace camera --speed 2 --loop --dataflow dataflow.yml",
    ),
    "check": ("flow check dataflow.yml",),
    "status": ("flow status",),
    "build": ("flow build dataflow.yml", "flow build dataflow.yml -v"),
    "graph": (
        "flow graph dataflow.yml > graph.mmd",
        "flow graph dataflow.yml --html graph.html --open",
    ),
    "new": ("flow new my_flow", "flow new --kind node detector"),
    "node": ("flow node list cam", "flow node restart cam camera"),
    "node list": ("flow node list cam",),
    "node info": ("flow node info cam camera", "flow node info cam camera --json"),
    "param": ("flow param list cam detector", "flow param set cam detector threshold 0.7"),
    "param list": ("flow param list cam detector", "flow param list cam detector --json"),
    "param get": ("flow param get cam detector threshold",),
    "param set": (
        "flow param set cam detector threshold 0.7",
        "flow param set cam detector labels '[\"car\", \"bus\"]' --timeout 10s",
    ),
    "param delete": ("flow param delete cam detector threshold",),
    "node stop": ("flow node stop cam camera",),
    "node restart": ("flow node restart cam camera --grace 2",),
    "node add": ("flow node add cam recorder.yml",),
    "node remove": ("flow node remove cam recorder",),
    "node connect": ("flow node connect cam camera/image recorder/image",),
    "node disconnect": ("flow node disconnect cam camera/image recorder/image",),
    "topic": ("flow topic list cam", "flow topic hz cam camera/image"),
    "topic list": ("flow topic list cam",),
    "topic echo": ("flow topic echo cam camera/image --count 5",),
    "topic hz": ("flow topic hz cam camera/image --window 30",),
    "topic info": ("flow topic info cam camera/image", "flow topic info cam camera/image --json"),
    "topic pub": (
        "flow topic pub cam filter/threshold 0.5 --as json",
        "flow topic pub cam logger/line hello --repeat 10 --every 100ms",
    ),
    "top": ("flow top", "flow top --once"),
    "config": ("flow config", "flow config --json"),
    "completion": (
        "flow completion bash > ~/.local/share/bash-completion/completions/flow",
        "flow completion zsh > ~/.zfunc/_flow",
        "flow completion fish > ~/.config/fish/completions/flow.fish",
    ),
    "doctor": (
        "flow doctor",
        "flow doctor --json",
        "flow doctor --cluster robot.yml",
        "flow doctor --cluster --large 16MiB --timeout 30s",
    ),
    "prune": ("flow prune --older-than 2d --dry-run", "flow prune --older-than 12h"),
    "cluster": ("flow cluster token", "flow cluster status"),
    "cluster token": (
        "flow cluster token",
        "flow cluster token --ttl 10m",
        "flow cluster token --revoke 3f9a0c12",
    ),
    "cluster status": ("flow cluster status", "flow cluster status --json"),
    "cluster remove": ("flow cluster remove gpu",),
}


class ExamplesFormatter(argparse.HelpFormatter):
    """Wraps the description as usual, but prints the examples epilog line by line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(HEADING):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def epilog(command: str) -> str | None:
    """The examples block of `command` (e.g. "node add"), or None when it has none."""
    lines = EXAMPLES.get(command)
    if not lines:
        return None
    return "\n".join([HEADING, *(f"  {line}" for line in lines)])


def attach(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Give every subparser under `parser` its examples epilog and the formatter for it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                command = f"{prefix} {name}".strip()
                sub.epilog = epilog(command)
                sub.formatter_class = ExamplesFormatter
                attach(sub, command)
