"""Test node: a camera; sends a 240x320 RGB frame (above the shared-memory threshold) on
`image` at every tick, with its number in the metadata (and a NaN, as a
camera without an exposure reading might send)."""

import math

import numpy as np

from node_sdk import Node

frame = np.zeros((240, 320, 3), dtype=np.uint8)
with Node() as node:
    sent = 0
    for event in node:
        if event["type"] == "INPUT":
            sent += 1
            frame[0, 0, 0] = sent % 256
            node.send_output("image", frame, {"frame": sent, "exposure": math.nan})
