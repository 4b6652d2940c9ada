"""Hostile input to the newer features (parameters, recording): refused in one line naming
the field at fault, and the daemon still answers (review of the day's features)."""

from __future__ import annotations

from pathlib import Path

from helpers import flow, start_stream
from procs import RawClient


def test_record_start_topics_must_be_a_list_not_a_string(daemon: Path, tmp_path: Path) -> None:
    # cattrs made a list of any iterable: "counter/count" became the topics "c", "o", ...
    start_stream(daemon, tmp_path, "rec")
    client = RawClient(daemon)
    try:
        path = str(tmp_path / "out.mcap")
        for topics in ("counter/count", {"counter/count": 1}):
            reply = client.request("record_start", {"run": "rec", "path": path, "topics": topics})
            assert not reply["ok"], reply
            assert reply["error"]["message"] == "field 'topics': expected a list", reply
        assert client.request("ping", {})["ok"]
    finally:
        client.close()
    assert not (tmp_path / "out.mcap").exists()
    assert flow("status", home=daemon).returncode == 0


def test_yaml_params_nested_deeper_than_a_node_reads_are_refused(
    flow_home: Path, tmp_path: Path
) -> None:
    # Accepted before, and then dropped by the node with a warning: it never saw the value.
    deep = "{b: " * 20 + "1" + "}" * 20
    yml = tmp_path / "deep.yml"
    yml.write_text(f"nodes:\n  - id: n\n    path: n.py\n    params: {{a: {deep}}}\n")
    (tmp_path / "n.py").write_text("")
    done = flow("check", str(yml), home=flow_home)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert f"{yml}:4: nodes[0].params.a: parameter 'a': nested deeper than 16" in done.stderr
