"""Raw pyzmq PUSH/PULL, the floor: `raw_peer.py send|recv ENDPOINT` (same env as the nodes).

The sender builds each value as the bench's flow and dora senders do (common.Values) and
sends its buffers as they are (multipart, no serialization, no copy from 64 KiB on); a
metadata run adds the same small dict as JSON in a first frame. The receiver takes the
frames, turns them back into the value that was sent (a numpy or pyarrow array, as flow's
and dora's receivers get one: `Values.rebuild`), and keeps what receiver.py keeps.
Over ipc for `python -m bench`; over tcp with CURVE for `python -m bench.cluster`, which
passes the keys in BENCH_CURVE (JSON: the server's public and secret keys, Z85).
"""

import json
import os
import sys
import time

import zmq
from common import Values, cpu_s, now, phases, write_result

role, endpoint = sys.argv[1], sys.argv[2]
size = int(os.environ["BENCH_SIZE"])
kind = os.environ.get("BENCH_KIND", "bytes")
with_meta = os.environ.get("BENCH_META", "1") == "1"
paced, burst = phases()
curve = json.loads(os.environ.get("BENCH_CURVE", "null"))
ctx = zmq.Context()
if role == "send":
    sock = ctx.socket(zmq.PUSH)
    if curve:
        sock.curve_serverkey = curve["public"].encode()
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    sock.connect(endpoint)
    values = Values(kind, size)
    copy = size < 65536
    time.sleep(float(os.environ.get("BENCH_SETTLE", "0.3")))
    stamps: list[int] = []
    cpu: list[float] = []
    seq = 0
    for phase, count, interval in [(p, c, i) for p, (c, i) in enumerate(paced)] + [
        (len(paced), burst, 0.0)
    ]:
        started = cpu_s()
        for _ in range(count):
            seq += 1
            frames = values.frames(values.make(seq))
            stamp = now()
            stamps.append(stamp)
            if with_meta:
                head = json.dumps({"seq": seq, "t": stamp, "p": phase}).encode()
                frames = [head, *frames]
            sock.send_multipart(frames, copy=copy)
            if interval:
                time.sleep(interval)
        cpu.append(cpu_s() - started)
    write_result({"sdk": "raw", "stamps": stamps, "cpu_s": cpu})
    sock.close(linger=30_000)
else:
    values = Values(kind, size)  # the kind's modules are imported before the first message
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
    expected = sum(c for c, _ in paced) + burst
    edges: set[int] = set()
    start = 0
    for count in [c for c, _ in paced] + [burst]:
        if count:
            edges.update((start, start + count - 1))
        start += count
    stamps = []
    cpu_at: dict[int, float] = {}
    last, gaps, got = 0, 0, 0
    while got < expected:
        if not sock.poll(30_000):
            break  # the sender is done: what never came is counted as lost
        copy = size < 65536
        frames = sock.recv_multipart(copy=copy)
        # stamped once the value and its metadata are the receiver's to use, as flow's and
        # dora's receivers stamp an event their SDK has decoded
        values.rebuild(frames)
        meta = json.loads(frames[0] if copy else frames[0].bytes) if with_meta else None
        t = now()
        if meta is not None:
            gaps += meta["seq"] - last - 1
            last = meta["seq"]
        stamps.append(t)
        if got in edges:
            cpu_at[got] = cpu_s()
        got += 1
    write_result({"sdk": "raw", "received": got, "expected": expected, "gaps": gaps,
                  "stamps": stamps, "cpu_at": cpu_at})  # fmt: skip
    sock.close(linger=0)
ctx.term()
