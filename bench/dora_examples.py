"""Run dora-rs's Python-only examples, unchanged, on flow, and print the pass/fail table.

    python -m bench.dora_examples DORA_CHECKOUT [--only SUBSTRING] [--markdown]
    python -m bench.dora_examples DORA_CHECKOUT --check

Each dataflow of `bench.dora_example_list` runs with `flow run FILE` (or `flow start` and
the README's `flow node ...` live edits) in a fresh FLOW_HOME, from its own folder; its
output is judged by the example's success criterion. Examples that need a camera, a GPU,
model downloads or ROS 2 are listed with the reason and not run. Exit status 1 if an
example that can run here fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.dora_example_list import EXAMPLES, Example, select

RUN_BOUND_S = 180.0  # one example's whole run, generous for a loaded machine


def _flow(
    home: Path, *args: str, cwd: Path, timeout: float = RUN_BOUND_S
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOW_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run_plain(example: Example, home: Path, yml: Path) -> tuple[int, str]:
    stop = ("--stop-after", example.stop_after) if example.stop_after else ()
    done = _flow(home, "run", yml.name, *stop, cwd=yml.parent)
    return done.returncode, done.stdout + done.stderr


def _run_live(example: Example, home: Path, yml: Path) -> tuple[int, str]:
    """`flow up`, `flow start --detach`, the README's live edits, the logs, `flow down`."""
    name = "demo"
    out = [_flow(home, "up", cwd=yml.parent).stderr]
    try:
        started = _flow(home, "start", yml.name, "--name", name, "--detach", cwd=yml.parent)
        out.append(started.stdout + started.stderr)
        if started.returncode != 0:
            return started.returncode, "".join(out)
        time.sleep(3)  # the README's "the receiver logs ..." before the first edit
        for command in example.live_edit:
            if command[0] == "sleep":
                time.sleep(float(command[1]))
                continue
            edit = _flow(home, *(part.format(run=name) for part in command), cwd=yml.parent)
            said = f"{edit.stdout}{edit.stderr}"
            out.append(f"$ flow {' '.join(command)} -> {edit.returncode}\n{said}")
            if edit.returncode != 0:
                return edit.returncode, "".join(out)
        stopped = _flow(home, "stop", name, cwd=yml.parent)
        logs = _flow(home, "logs", name, cwd=yml.parent)
        out.append(logs.stdout + logs.stderr)
        return stopped.returncode, "".join(out)
    finally:
        _flow(home, "down", cwd=yml.parent)


def judge(example: Example, status: int, output: str) -> tuple[bool, str]:
    """Pass or fail by the example's criterion, with the first reason it failed."""
    if status != 0:
        return False, f"flow exited {status}"
    for pattern in example.expect:
        if not re.search(pattern, output):
            return False, f"missing in the output: {pattern}"
    for pattern in example.forbid:
        if re.search(pattern, output):
            return False, f"found in the output: {pattern}"
    return True, ""


def run_example(example: Example, checkout: Path, keep: Path | None) -> tuple[str, str]:
    """(`pass` | `FAIL` | `cannot run here`, detail) for one example."""
    missing = [m for m in example.needs if importlib.util.find_spec(m) is None]
    if example.cannot:
        return "cannot run here", example.cannot
    if missing:
        return "cannot run here", f"missing Python modules: {', '.join(missing)}"
    yml = checkout / example.yaml
    home = Path(tempfile.mkdtemp(prefix="flow-dora-ex-"))
    try:
        if example.check_only:
            checked = _flow(home, "check", yml.name, cwd=yml.parent)
            # refused (exit 2) is this fixture's success
            status, output = (0 if checked.returncode == 2 else 1), checked.stderr
        else:
            runner = _run_live if example.live_edit else _run_plain
            status, output = runner(example, home, yml)
    except subprocess.TimeoutExpired:
        status, output = -1, "timed out"
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if keep is not None:
        (keep / (example.yaml.replace("/", "_") + ".out")).write_text(output)
    ok, why = judge(example, status, output)
    return ("pass", "") if ok else ("FAIL", why)


# the kinds of `flow check` line the issue allows on dora's files (anything else is a gap)
LINE_KINDS = (
    ("no such file (a Rust/C/C++ node not built, or a file not in dora's tree)",
     r"path: no such file: "),
    ("a pip-installed hub node not installed", r"is not a file next to the dataflow nor on PATH"),
    ("operator not supported by flow", r"'operators?' is a dora key not supported by flow"),
    ("ROS 2 not supported by flow", r"'ros2' is a dora key not supported by flow"),
    ("git source not supported by flow", r"'(git|rev|branch|tag)' is a dora key not supported"),
    ("hub source not supported by flow", r"'hub' is a dora key not supported by flow"),
    ("type mismatch (dora's type-mismatch fixture, refused on purpose)", r": type mismatch: "),
)  # fmt: skip


def check_all(checkout: Path) -> int:
    """`flow check` on every dataflow YAML of examples/ and tests/: how many are accepted,
    and each kind of line the others get; 1 if a line is of none of the allowed kinds."""
    files = sorted([*checkout.glob("examples/**/*.y*ml"), *checkout.glob("tests/**/*.y*ml")])
    accepted, kinds, other = 0, dict.fromkeys((k for k, _ in LINE_KINDS), 0), []
    home = Path(tempfile.mkdtemp(prefix="flow-dora-check-"))
    try:
        for path in files:
            done = _flow(home, "check", path.name, cwd=path.parent)
            accepted += done.returncode == 0
            for line in done.stderr.splitlines()[1:] if done.returncode else ():
                kind = next((k for k, rx in LINE_KINDS if re.search(rx, line)), None)
                if kind is None:
                    other.append(line)
                else:
                    kinds[kind] += 1
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"{accepted} of {len(files)} accepted; the others' lines:")
    for kind, count in kinds.items():
        print(f"  {count:4}  {kind}")
    for line in other:
        print(f"  other: {line}")
    return 1 if other else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dora_examples", description=__doc__)
    parser.add_argument("checkout", type=Path, help="a dora-rs checkout (its examples/ and tests/)")
    parser.add_argument("--only", default="", help="run the examples whose path has this")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--keep", type=Path, help="write each run's output in this folder")
    parser.add_argument("--check", action="store_true", help="`flow check` every YAML instead")
    args = parser.parse_args(argv)
    if args.check:
        return check_all(args.checkout)
    selected = set(select(args.checkout))
    listed = {example.yaml for example in EXAMPLES}
    if selected != listed:
        new, gone = sorted(selected - listed), sorted(listed - selected)
        print(f"the checkout's Python-only dataflows differ from the list: new {new}, "
              f"gone {gone}", file=sys.stderr)  # fmt: skip
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    failed = 0
    if args.markdown:
        print("| example | result | how checked |\n|---|---|---|")
    for example in EXAMPLES:
        if args.only not in example.yaml:
            continue
        result, detail = run_example(example, args.checkout, args.keep)
        failed += result == "FAIL"
        how = example.criterion + (f" ({detail})" if detail else "")
        if args.markdown:
            print(f"| `{example.yaml}` | {result} | {how} |", flush=True)
        else:
            print(f"{result:16} {example.yaml}: {how}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
