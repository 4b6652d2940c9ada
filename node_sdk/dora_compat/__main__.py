"""`python -m node_sdk.dora_compat`: the PYTHONPATH that adds flow's `dora` module."""

import os

from node_sdk.dora_compat import with_folder

print(with_folder(os.environ.get("PYTHONPATH")))
