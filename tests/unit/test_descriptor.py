"""Dataflow files -> the frozen model: values, defaults, dora shapes and every problem."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from daemon.model.descriptor import (
    MAX_NODES,
    MAX_YAML_BYTES,
    Dataflow,
    Input,
    OutputRef,
    RestartPolicy,
    Timer,
    expand_env,
    parse_dataflow,
)
from daemon.model.errors import DataflowInvalid


def write(tmp_path: Path, text: str, name: str = "df.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def problems(path: Path, text: str | None = None, **kw: object) -> list[str]:
    with pytest.raises(DataflowInvalid) as info:
        parse_dataflow(path, text, **kw)  # type: ignore[arg-type]
    return info.value.problems


def one_node(tmp_path: Path, body: str) -> Dataflow:
    return parse_dataflow(write(tmp_path, "nodes:\n  - id: a\n    path: dynamic\n" + body))


@pytest.mark.parametrize(
    ("source", "period_ns"),
    [
        ("dora/timer/millis/50", 50_000_000),
        ("flow/timer/millis/1", 1_000_000),
        ("dora/timer/secs/2", 2_000_000_000),
        ("flow/timer/secs/0.5", 500_000_000),
        ("flow/timer/micros/250", 250_000),
        ("flow/timer/hz/30", 33_333_333),
        ("dora/timer/hz/1000", 1_000_000),
    ],
)
def test_timers_become_periods_in_ns(tmp_path: Path, source: str, period_ns: int) -> None:
    df = one_node(tmp_path, f"    inputs:\n      tick: {source}\n")
    assert df.nodes[0].input("tick").source == Timer(period_ns=period_ns, spec=source)
    assert df.connections == 0


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        (
            "dora/timer/hours/1",
            "unknown timer unit 'hours' (use millis, secs, micros, nanos or hz)",
        ),
        ("flow/timer/millis/0", "timer interval must be a finite number more than 0, got '0'"),
        ("flow/timer/secs/-1", "timer interval must be a finite number more than 0, got '-1'"),
        ("flow/timer/hz/0", "timer frequency must be a finite number more than 0, got '0'"),
        ("flow/timer/millis/ten", "timer interval 'ten' is not a number"),
        ("flow/timer/millis/nan", "timer interval must be a finite number more than 0, got 'nan'"),
        (
            "flow/timer/millis",
            "expected a timer like 'flow/timer/millis/100', got 'flow/timer/millis'",
        ),
        ("flow/timer/millis/inf", "timer interval must be a finite number more than 0, got 'inf'"),
        # a built-in source mistyped: not a node's output (it was wired to the logs, or a
        # KeyError in the checker)
        ("dora/timer", "unknown built-in source 'dora/timer': expected a timer like "
                       "'dora/timer/millis/100' (units: millis, secs, micros, nanos, hz) or "
                       "dora/logs[/LEVEL[/NODE]]"),
        ("dora/timers/millis/30", "unknown built-in source 'dora/timers/millis/30': expected a"
                                  " timer like 'dora/timer/millis/100' (units: millis, secs, "
                                  "micros, nanos, hz) or dora/logs[/LEVEL[/NODE]]"),
        ("flow/timers/hz/30", "unknown built-in source 'flow/timers/hz/30': expected a timer "
                              "like 'flow/timer/millis/100' (units: millis, secs, micros, nanos,"
                              " hz)"),
    ],
)
def test_bad_timers(tmp_path: Path, source: str, cause: str) -> None:
    path = write(
        tmp_path, f"nodes:\n  - id: a\n    path: dynamic\n    inputs:\n      t: {source}\n"
    )
    assert problems(path) == [f"{path}:5: nodes[0].inputs.t: {cause}"]


@pytest.mark.parametrize("reserved", ["dora", "flow"])
def test_a_node_may_not_be_called_as_the_built_in_sources(tmp_path: Path, reserved: str) -> None:
    path = write(tmp_path, f"nodes:\n  - id: {reserved}\n    path: dynamic\n")
    assert problems(path) == [f"{path}:2: nodes[0].id: node id '{reserved}' is reserved: "
                              f"sources that begin with '{reserved}/' are timers and logs"]


def test_dora_webcam_yolo_example_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "webcam.py").write_text("")
    (tmp_path / "plot.py").write_text("")
    path = write(
        tmp_path,
        """\
nodes:
  - id: camera
    build: pip install opencv-video-capture
    path: webcam.py
    inputs:
      tick: dora/timer/millis/50
    outputs:
      - image
    env:
      CAPTURE_PATH: 0
      IMAGE_WIDTH: 640
      IMAGE_HEIGHT: 480
    _unstable_deploy:
      machine: robot

  - id: object-detection
    build: |
      pip install dora-yolo
      pip install torch
    path: dora-yolo
    inputs:
      image: camera/image
    outputs:
      - bbox
    env:
      MODEL: yolov8n.pt

  - id: plot
    path: plot.py
    inputs:
      image:
        source: camera/image
        queue_size: 1
      boxes2d: object-detection/bbox
""",
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    yolo = executable(bin_dir / "dora-yolo")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    df = parse_dataflow(path, machines=frozenset({"robot"}))
    camera, detect, plot = df.nodes
    assert camera.executable == str(tmp_path / "webcam.py")
    assert camera.is_python
    assert camera.build == ("pip install opencv-video-capture",)
    assert camera.env == {"CAPTURE_PATH": "0", "IMAGE_WIDTH": "640", "IMAGE_HEIGHT": "480"}
    assert camera.machine == "robot"
    assert camera.line == 2
    assert detect.line == 16
    assert plot.line == 28
    assert detect.executable == str(yolo)
    assert not detect.is_python
    assert detect.build == ("pip install dora-yolo", "pip install torch")
    assert plot.input("image") == Input("image", OutputRef("camera", "image"), queue_size=1)
    assert plot.input("boxes2d").source == OutputRef("object-detection", "bbox")
    assert df.connections == 3
    assert df.node("plot") is plot
    assert df.folder == tmp_path
    assert plot.raw["inputs"]["image"] == {"source": "camera/image", "queue_size": 1}
    with pytest.raises(KeyError):
        df.node("nope")
    with pytest.raises(KeyError):
        plot.input("nope")


def test_defaults(tmp_path: Path) -> None:
    df = one_node(tmp_path, "")
    node = df.nodes[0]
    assert df.name is None
    assert df.recover is True
    assert df.env == {}
    assert node.is_dynamic
    assert node.executable is None
    assert node.args == ()
    assert node.inputs == ()
    assert node.outputs == ()
    assert node.build == ()
    assert node.restart == RestartPolicy()
    assert node.restart.max_restarts == 5
    assert node.restart.restart_delay == 0.5
    assert node.send_stdout_as is None
    assert node.machine is None
    assert df.path == tmp_path / "df.yml"
    assert df.path.is_absolute()


def test_every_field(tmp_path: Path) -> None:
    df = parse_dataflow(
        write(
            tmp_path,
            """\
name: demo
recover: false
env: {GLOBAL: yes, N: 3}
nodes:
  - id: a.b_c-1
    name: The A
    description: makes things
    path: sh
    args: ["-c", 'echo "$X"', 7]
    outputs: [out, log]
    send_stdout_as: log
    restart_policy: on-failure
    max_restarts: 1
    restart_window: 10
    restart_delay: 0.1
    max_restart_delay: 2
    deploy: {machine: m1}
    inputs:
      back: {source: a.b_c-1x/out, queue_policy: backpressure}
  - id: a.b_c-1x
    path: dynamic
    outputs: [out]
    inputs:
      in: a.b_c-1/out
""",
        )
    )
    a = df.nodes[0]
    assert df.name == "demo"
    assert df.recover is False
    assert df.env == {"GLOBAL": "yes", "N": "3"}  # YAML 1.2: `yes` is a string
    assert a.name == "The A"
    assert a.description == "makes things"
    assert a.args == ("-c", 'echo "$X"', "7")
    assert a.send_stdout_as == "log"
    assert a.machine == "m1"
    assert a.restart == RestartPolicy("on-failure", 1, 10.0, 0.1, 2.0)
    assert a.input("back").queue_policy == "backpressure"
    assert df.connections == 2  # a cycle is allowed


def test_env_values_are_stringified_as_written(tmp_path: Path) -> None:
    df = one_node(
        tmp_path,
        "    env:\n      F: 1.10\n      T: true\n      B: False\n      I: 010\n      S: 'x'\n"
        "      E: 1e3\n",
    )
    assert df.nodes[0].env == {
        "F": "1.10",
        "T": "true",
        "B": "false",
        "I": "010",
        "S": "x",
        "E": "1e3",
    }


def test_yaml_12_scalars(tmp_path: Path) -> None:
    # YAML 1.1 would read `on` as true and `1:30` as 90; dora (serde_yaml) reads strings
    df = one_node(tmp_path, "    args: [on, off, '1:30', 1:30]\n    outputs: [x]\n")
    assert df.nodes[0].args == ("on", "off", "1:30", "1:30")
    path = write(
        tmp_path,
        "nodes:\n  - {id: a, path: dynamic, outputs: [x]}\n"
        "  - {id: b, path: dynamic, inputs: {on: a/x, 1: a/x}}\n",
        "keys.yml",
    )
    assert [i.id for i in parse_dataflow(path).nodes[1].inputs] == ["on", "1"]


def test_args_string_is_shlex_split(tmp_path: Path) -> None:
    df = one_node(tmp_path, """    args: --name 'two words' -v "a b" c\\ d\n""")
    assert df.nodes[0].args == ("--name", "two words", "-v", "a b", "c d")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$HOME/x", "/home/u/x"),
        ("${HOME}/x", "/home/u/x"),
        ("$UNSET-${UNSET}!", "-!"),
        ("a$", "a$"),
        ("$1 ${", "$1 ${"),
        ("$HOME$HOME", "/home/u/home/u"),
    ],
)
def test_expand_env(value: str, expected: str) -> None:
    assert expand_env(value, {"HOME": "/home/u"}) == expected


def test_env_is_not_expanded_at_parse(tmp_path: Path) -> None:
    assert one_node(tmp_path, "    env: {P: $HOME/x}\n").nodes[0].env == {"P": "$HOME/x"}


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path: Path) -> None:
    sub = tmp_path / "nodes"
    sub.mkdir()
    exe = executable(sub / "run")
    (tmp_path / "n.py").write_text("")
    path = write(tmp_path, "nodes:\n  - id: a\n    path: nodes/run\n  - id: b\n    path: n.py\n")
    df = parse_dataflow(Path(os.path.relpath(path)))
    assert df.nodes[0].executable == str(exe)
    assert df.nodes[1].executable == str(tmp_path / "n.py")


def test_check_paths_false_skips_existence(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes:\n  - id: a\n    path: target/release/a\n")
    df = parse_dataflow(path, check_paths=False)
    assert df.nodes[0].executable == str(tmp_path / "target/release/a")
    assert "no such file" in problems(path)[0]


def test_machines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "nodes:\n  - id: a\n    path: dynamic\n    _unstable_deploy:\n      machine: far\n",
    )
    assert parse_dataflow(path).nodes[0].machine == "far"  # no check without machines
    assert problems(path, machines=frozenset({"near"})) == [
        f"{path}:5: nodes[0]._unstable_deploy.machine: machine 'far' is not served by any daemon"
    ]


def test_all_problems_at_once_sorted_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
nodes:
  - id: a
    path: dynamic
    outputs: [x]
    inputs:
      t: dora/timer/hours/1
      u: b/nope
  - id: b
    path: dynamic
    send_stdout_as: nope
    custom:
      source: x
  - 7
oops: 1
""",
    )
    assert problems(path) == [
        f"{path}:6: nodes[0].inputs.t: unknown timer unit 'hours' "
        "(use millis, secs, micros, nanos or hz)",
        f"{path}:10: nodes[1].send_stdout_as: 'nope' is not one of the node's outputs "
        "(declare it in outputs)",
        f"{path}:11: nodes[1].custom: 'custom' is a dora key not supported by flow: dora's old "
        "node form: give path, args and env at the node's top level",
        f"{path}:13: nodes[2]: expected a node mapping, got an integer (7)",
        f"{path}:14: oops: unknown key (allowed: _unstable_debug, debug, deploy, env, "
        "health_check_interval, name, nodes, recover)",
    ]


def test_text_argument_is_used_instead_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "never-written.yml"
    df = parse_dataflow(path, "nodes:\n  - id: a\n    path: dynamic\n")
    assert df.nodes[0].id == "a"
    assert df.path == path


def test_oversized_file(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes: []\n" + "#" * MAX_YAML_BYTES)
    assert problems(path) == [f"{path}:1: the file is larger than {MAX_YAML_BYTES} bytes"]
    assert problems(path, path.read_text())[0].endswith("larger than 1048576 bytes")


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    assert problems(tmp_path / "none.yml")[0].endswith(
        "cannot read the file: No such file or directory"
    )
    path = tmp_path / "bin.yml"
    path.write_bytes(b"nodes:\n\xff\xfe\n")
    assert problems(path) == [f"{path}:2: the file is not UTF-8 text"]


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = write(tmp_path, "\n".join(lines) + "\nnodes: *a7\n")
    (problem,) = problems(path)
    assert "alias bomb" in problem


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("nodes:\n" + "  - " * 5000 + "x\n", 2),  # block style
        ("a: " + "{x: " * 5000 + "1" + "}" * 5000 + "\n", 1),  # flow mappings
        ("nodes:\n  - id: a\n    env: " + "[" * 5000 + "]" * 5000 + "\n", 3),  # flow lists
    ],
    ids=["block", "flow-mapping", "flow-list"],
)
def test_deep_nesting_is_one_problem_not_a_recursion_error(
    tmp_path: Path, text: str, line: int
) -> None:
    path = write(tmp_path, text)
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:{line}: ")
    assert "nest" in problem


def test_node_count_is_bounded(tmp_path: Path) -> None:
    count = MAX_NODES + 1
    nodes = "".join(f"  - id: n{i}\n    path: dynamic\n" for i in range(count))
    path = write(tmp_path, "nodes:\n" + nodes)
    assert problems(path) == [
        f"{path}:1: nodes: {count} nodes, more than the {MAX_NODES} a dataflow may hold"
    ]


def test_merge_keys_are_supported(tmp_path: Path) -> None:
    df = parse_dataflow(
        write(
            tmp_path,
            "nodes:\n  - &base {id: a, path: dynamic, outputs: [x]}\n  - <<: *base\n    id: b\n",
        )
    )
    assert [n.id for n in df.nodes] == ["a", "b"]
    assert df.nodes[1].outputs == ("x",)


def test_models_are_frozen(tmp_path: Path) -> None:
    df = one_node(tmp_path, "")
    with pytest.raises(AttributeError):
        df.nodes[0].id = "b"  # type: ignore[misc]


def test_max_restarts_zero_is_unlimited_and_below_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes:\n  - id: a\n    path: dynamic\n    max_restarts: 0\n")
    assert parse_dataflow(path).nodes[0].restart.max_restarts == 0  # dora's "no limit"
    path = write(tmp_path, "nodes:\n  - id: a\n    path: dynamic\n    max_restarts: -1\n")
    assert problems(path) == [f"{path}:4: nodes[0].max_restarts: must be at least 0, got -1"]


@pytest.mark.parametrize(
    ("first_line", "cause"),
    [
        ("#!/nonexistent/python3", "#! interpreter /nonexistent/python3 does not exist"),
        ("#!/usr/bin/env no-such-interpreter-here", "runs 'no-such-interpreter-here'"),
        ("#!", "names no interpreter"),
    ],
)
def test_a_script_whose_interpreter_is_missing_is_refused(
    tmp_path: Path, first_line: str, cause: str
) -> None:
    script = tmp_path / "tool"
    script.write_text(first_line + "\necho hi\n")
    script.chmod(0o755)
    path = write(tmp_path, "nodes:\n  - id: a\n    path: tool\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:3: nodes[0].path: {script}: its #!")
    assert cause in problem


def test_a_script_with_a_working_interpreter_is_accepted(tmp_path: Path) -> None:
    for name, first_line in [("a", "#!/bin/sh"), ("b", "#!/usr/bin/env sh"), ("c", "")]:
        (tmp_path / name).write_text(first_line + "\necho hi\n")
        (tmp_path / name).chmod(0o755)
    nodes = "".join(f"  - id: {n}\n    path: ./{n}\n" for n in "abc")
    assert parse_dataflow(write(tmp_path, "nodes:\n" + nodes)).nodes


@pytest.mark.parametrize(
    "node_id", ["a/b", "../up", "..", "a\\0b", "\\xe9t\\xe9", "-lead", "x" * 65, ""]
)
def test_row6_ids_that_could_become_paths_are_refused(tmp_path: Path, node_id: str) -> None:
    """Node ids name log files: none may leave the run's folder (fault matrix row 6)."""
    path = write(tmp_path, f'nodes:\n  - id: "{node_id}"\n    path: dynamic\n')
    found = problems(path)
    assert len(found) == 1, found
    expected = "must not be empty" if not node_id else "invalid node id"
    assert f"nodes[0].id: {expected}" in found[0], found


@pytest.mark.parametrize(("value", "seconds"), [("90s", 90.0), ("2m", 120.0), ("45", 45.0)])
def test_connect_timeout_takes_a_duration(tmp_path: Path, value: str, seconds: float) -> None:
    node = one_node(tmp_path, f"    connect_timeout: {value}\n").nodes[0]
    assert node.connect_timeout == seconds
    assert one_node(tmp_path, "").nodes[0].connect_timeout is None  # the setting decides


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        ("soon", "expected a duration like 60s or 2m, got 'soon'"),
        ("0", "must be more than 0 and at most 1d, got 0"),
        ("2d", "must be more than 0 and at most 1d, got 2d"),
        ("[1]", "expected a duration like 60s or 2m, got a list"),
    ],
)
def test_bad_connect_timeouts(tmp_path: Path, value: str, cause: str) -> None:
    path = write(tmp_path, f"nodes:\n  - id: a\n    path: dynamic\n    connect_timeout: {value}\n")
    assert problems(path) == [f"{path}:4: nodes[0].connect_timeout: {cause}"]


def test_spawn_and_a_restart_delay_of_zero(tmp_path: Path) -> None:
    df = one_node(tmp_path, "    restart_delay: 0\n    spawn: exec\n")
    assert df.nodes[0].restart.restart_delay == 0.0
    assert df.nodes[0].spawn == "exec"
    assert one_node(tmp_path, "").nodes[0].spawn == "fork"
    path = write(tmp_path, "nodes:\n  - id: a\n    path: dynamic\n    spawn: vfork\n")
    assert any("spawn" in p and "fork, exec" in p for p in problems(path))
    path = write(tmp_path, "nodes:\n  - id: a\n    path: dynamic\n    restart_delay: -1\n")
    assert any("restart_delay" in p for p in problems(path))
