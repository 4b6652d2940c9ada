#!/usr/bin/env python3
"""A fake camera: one 480x640x3 uint8 frame per tick, FRAMES frames, then exit."""

import os

import numpy as np

from node_sdk import Node

FRAMES = int(os.environ.get("FRAMES", "40"))
HEIGHT, WIDTH = 480, 640

node = Node()
rng = np.random.default_rng(seed=7)
sent = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        sent += 1
        # noise on a brightness that rises frame by frame, so the means tell frames apart
        noise = rng.integers(0, 64, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        frame = noise + np.uint8(sent * 4 % 192)
        node.send_output("image", frame, {"frame": sent, "encoding": "rgb8"})
        if sent >= FRAMES:
            break
    elif event["type"] == "STOP":
        break
print(f"camera sent {sent} frames")
