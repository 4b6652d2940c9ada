"""Test node: fork a long-sleeping child (same process group), write its pid, exit 0."""

import os
import subprocess
import sys
from pathlib import Path

from node_sdk import Node

with Node() as node:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(os.environ["CHILD_FILE"]).write_text(str(child.pid))
    print(f"forker: left child {child.pid} behind", flush=True)
