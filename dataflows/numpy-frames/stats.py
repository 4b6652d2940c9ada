#!/usr/bin/env python3
"""Print the shape and mean of every frame that arrives; ends when the camera is done."""

from node_sdk import Node

node = Node()
for event in node:
    if event["type"] == "INPUT" and event["id"] == "image":
        frame = event["value"]
        channels = frame.reshape(-1, frame.shape[-1]).mean(axis=0)
        print(
            f"frame {event['metadata'].get('frame')}: {'x'.join(map(str, frame.shape))} "
            f"{frame.dtype} mean {frame.mean():.1f} "
            f"(r {channels[0]:.1f} g {channels[1]:.1f} b {channels[2]:.1f})"
        )
    elif event["type"] == "STOP":
        break
