"""Raw pyzmq PUSH/PULL, the floor: `raw_peer.py send|recv ENDPOINT` (same env).

Over ipc for `python -m bench`; over tcp with CURVE for `python -m bench.cluster`, which
passes the keys in BENCH_CURVE (JSON: the server's public and secret keys, Z85).
"""

import json
import os
import struct
import sys
import time

import zmq

role, endpoint = sys.argv[1], sys.argv[2]
size = int(os.environ["BENCH_SIZE"])
paced, burst = int(os.environ["BENCH_LAT"]), int(os.environ["BENCH_THR"])
head = struct.Struct("<QQB")
curve = json.loads(os.environ.get("BENCH_CURVE", "null"))
ctx = zmq.Context()
if role == "send":
    sock = ctx.socket(zmq.PUSH)
    if curve:
        sock.curve_serverkey = curve["public"].encode()
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    sock.connect(endpoint)
    body = bytes(size)
    time.sleep(float(os.environ.get("BENCH_SETTLE", "0.3")))
    interval = float(os.environ["BENCH_INTERVAL"])
    for seq in range(1, paced + burst + 1):
        p = 0 if seq <= paced else 1
        sock.send_multipart([head.pack(seq, time.time_ns(), p), body], copy=size < 65536)
        if p == 0:
            time.sleep(interval)
    sock.close(linger=10_000)
else:
    sock = ctx.socket(zmq.PULL)
    # zmq throws away what is in flight on a connection held back by the receiver's HWM
    # when the sender disconnects (the end of a burst): flow's inputs avoid it the same way
    sock.rcvhwm = 0
    if curve:
        sock.curve_server = True
        sock.curve_publickey = curve["public"].encode()
        sock.curve_secretkey = curve["secret"].encode()
    sock.bind(endpoint)
    print("ready", flush=True)
    expected = paced + burst
    lat, last, gaps, got, first_sent, last_recv = [], 0, 0, 0, None, None
    while got < expected:
        if not sock.poll(10_000):
            break  # the sender is done: what never came is counted as lost
        frames = sock.recv_multipart(copy=False)
        t = time.time_ns()
        seq, stamp, p = head.unpack(frames[0].bytes)
        gaps += seq - last - 1
        last = seq
        got += 1
        if p == 0:
            lat.append(t - stamp)
        else:
            first_sent = stamp if first_sent is None else first_sent
            last_recv = t
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(
            {
                "sdk": "raw",
                "received": got,
                "expected": expected,
                "gaps": gaps,
                "lat_ns": lat,
                "burst_ns": (last_recv or 0) - (first_sent or 0),
            },
            out,
        )
    sock.close(linger=0)
ctx.term()
