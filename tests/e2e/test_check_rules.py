"""`flow check` on one bad file per validation rule: FILE:LINE: field path: cause, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO, flow

BAD = REPO / "tests" / "data" / "bad"

# file -> (line, field path, a fragment of the cause)
RULES = {
    "args_quote.yml": (5, "nodes[0].args", "No closing quotation"),
    "bad_id.yml": (3, "nodes[0].id", "invalid node id 'my node'"),
    "bad_source.yml": (6, "nodes[0].inputs.x", "expected 'node/output' or a timer"),
    "deploy_labels.yml": (7, "nodes[0].deploy.labels", "not supported by flow"),
    "dora_git.yml": (6, "nodes[1].git", "not supported by flow"),
    "dora_input_timeout.yml": (8, "nodes[0].inputs.x.input_timeout", "not supported by flow"),
    "dora_operators.yml": (4, "nodes[0].operators", "not supported by flow"),
    "dora_top_deploy.yml": (2, "_unstable_deploy", "not supported by flow"),
    "duplicate_id.yml": (7, "nodes[2].id", "duplicate node id 'a'"),
    "duplicate_key.yml": (5, "nodes[0].path", "duplicate key"),
    "duplicate_output.yml": (7, "nodes[0].outputs[1]", "declared twice"),
    "empty.yml": (1, "", "must be a mapping with a 'nodes' list"),
    "env_value.yml": (7, "nodes[0].env.LIST", "expected a string, number or boolean"),
    "input_missing_source.yml": (6, "nodes[0].inputs.x.source", "required field missing"),
    "max_restarts.yml": (5, "nodes[0].max_restarts", "expected an integer"),
    "missing_id.yml": (5, "nodes[1].id", "required field missing"),
    "missing_nodes.yml": (1, "nodes", "required field missing"),
    "missing_path.yml": (3, "nodes[0].path", "required field missing"),
    "nodes_not_list.yml": (2, "nodes", "expected a list of nodes"),
    "not_mapping.yml": (1, "", "must be a mapping"),
    "outputs_not_list.yml": (5, "nodes[0].outputs", "expected a list of output ids"),
    "own_output.yml": (6, "nodes[0].inputs.again", "the node's own output"),
    "path_missing_file.yml": (4, "nodes[0].path", "no such file"),
    "path_missing_python.yml": (4, "nodes[0].path", "no such file"),
    "path_not_executable.yml": (4, "nodes[0].path", "not executable"),
    "path_not_on_path.yml": (4, "nodes[0].path", "nor on PATH"),
    "queue_policy.yml": (6, "nodes[0].inputs.x.queue_policy", "expected one of drop_oldest"),
    "queue_size.yml": (8, "nodes[0].inputs.x.queue_size", "must be at least 1"),
    "recover_not_bool.yml": (2, "recover", "expected true or false"),
    "restart_delay.yml": (6, "nodes[0].restart_delay", "must be more than 0"),
    "restart_policy.yml": (5, "nodes[0].restart_policy", "expected one of never"),
    "send_stdout_as.yml": (6, "nodes[0].send_stdout_as", "not one of the node's outputs"),
    "timer_not_number.yml": (6, "nodes[0].inputs.tick", "is not a number"),
    "timer_unit.yml": (6, "nodes[0].inputs.tick", "unknown timer unit 'hours'"),
    "timer_zero.yml": (6, "nodes[0].inputs.tick", "must be more than 0"),
    "undeclared_output.yml": (9, "nodes[1].inputs.image", "has no output 'frame'"),
    "unknown_node_key.yml": (5, "nodes[0].inptus", "unknown key"),
    "unknown_source_node.yml": (9, "nodes[1].inputs.image", "unknown node 'camra'"),
    "unknown_top_key.yml": (5, "colour", "unknown key"),
    "unsafe_tag.yml": (3, "", "invalid YAML"),
    "yaml_syntax.yml": (6, "", "invalid YAML"),
}


def test_every_bad_file_has_a_rule() -> None:
    files = {p.name for p in BAD.glob("*.yml")} - {"ok.yml"}
    assert files == set(RULES)


@pytest.mark.parametrize("name", sorted(RULES))
def test_check_names_file_line_field_and_cause(flow_home: Path, name: str) -> None:
    line, field, cause = RULES[name]
    done = flow("check", str(BAD / name), home=flow_home)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    prefix = f"{BAD / name}:{line}: " + (f"{field}: " if field else "")
    matching = [x for x in done.stderr.splitlines() if x.startswith(prefix) and cause in x]
    assert matching, (prefix, cause, done.stderr)


def test_all_problems_are_reported_at_once(flow_home: Path) -> None:
    done = flow("check", str(BAD / "dora_git.yml"), home=flow_home)
    assert len(done.stderr.strip().splitlines()) >= 2  # the dora key and the missing file


def test_a_good_file_is_ok(flow_home: Path) -> None:
    done = flow("check", str(BAD / "ok.yml"), home=flow_home)
    assert done.returncode == 0
    assert done.stdout.strip() == "ok: 2 nodes, 1 connection"


def test_a_machine_no_daemon_serves_is_refused_at_start(daemon: Path, tmp_path: Path) -> None:
    node = tmp_path / "n.py"
    node.write_text("print('hi')\n")
    yml = tmp_path / "far.yml"
    yml.write_text(f"nodes:\n  - id: far\n    path: {node}\n    deploy:\n      machine: mars\n")
    done = flow("start", str(yml), "--detach", home=daemon)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{yml}:5: nodes[0].deploy.machine" in done.stderr
    assert "mars" in done.stderr
