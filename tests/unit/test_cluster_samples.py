"""Observed messages relayed across the cluster link (daemon/cluster/samples.py): bounded,
decoded by the CLI as the node sent them, a batch that is not one refused whole."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from daemon.cluster.samples import (
    BATCH_BYTES,
    MAX_SAMPLE,
    SAMPLE_PAYLOAD,
    pack_batch,
    reduce,
    shm_descriptor,
    unpack_batch,
)
from daemon.model.cluster_messages import MAX_CARRY_BYTES, Carry, decode, encode
from node_sdk.frames import decode_data, encode_data
from node_sdk.wire import FLAG_PACKED, KIND_BYTES, KIND_SHM, pack_header, unpack_header


def _frames(value: object, **metadata: object) -> list[bytes]:
    frames = encode_data(value, source="cam/image", generation=2, seq=7,
                         timestamp_ns=123, metadata=metadata)  # fmt: skip
    return [bytes(f) for f in frames]


def test_a_small_message_is_relayed_whole_and_decodes_as_sent() -> None:
    sample, descriptor = reduce(_frames("hello", n=3), dropped=0)
    assert sample is not None
    assert descriptor is None
    message = decode_data([sample])
    assert (message.value, message.metadata, message.source) == ("hello", {"n": 3}, "cam/image")
    header = message.header
    assert (header.generation, header.seq, header.timestamp_ns) == (2, 7, 123)
    assert "cut" not in header.extra
    assert "rd" not in header.extra


def test_a_large_payload_is_cut_to_its_kind_and_size_and_drops_are_counted() -> None:
    value = bytes(SAMPLE_PAYLOAD + 1)
    sample, _ = reduce(_frames(value), dropped=4)
    assert sample is not None
    assert len(sample) < 200
    header = unpack_header(sample)
    assert header.kind == KIND_BYTES
    assert header.extra["cut"] == len(value)
    assert header.extra["rd"] == 4
    big, _ = reduce(_frames(bytes(200_000)), dropped=0)  # two frames: [header, payload]
    assert big is not None
    assert unpack_header(big).extra["cut"] == 200_000


def test_a_shared_memory_descriptor_is_found_without_decoding() -> None:
    descriptor = b"FLWS" + bytes(40)
    frame = pack_header(KIND_SHM, 1, 1, 1, b'{"m":{"a":1}}', FLAG_PACKED) + descriptor
    assert shm_descriptor([frame]) == descriptor
    assert shm_descriptor(_frames("x")) is None
    assert shm_descriptor(_frames(bytes(100_000))) is None  # large, but inline
    assert shm_descriptor([b"x"]) is None


def test_what_is_not_a_data_message_is_no_sample() -> None:
    assert reduce([], 0) == (None, None)
    assert reduce([b"garbage"], 0) == (None, None)
    assert reduce([*_frames("x"), b"more"], 0) == (None, None)
    # metadata past the bound: the sample is dropped (and counted by its caller)
    assert reduce(_frames("x", note="y" * MAX_SAMPLE), 0) == (None, None)


def test_a_full_batch_fits_one_carry() -> None:
    samples = []
    while sum(4 + len(s) for s in samples) + 4 + MAX_SAMPLE <= BATCH_BYTES:
        samples.append(bytes(MAX_SAMPLE))
    carry = Carry("r" * 36, "samples", pack_batch(samples), "0" * 16)
    assert len(encode(carry)) <= MAX_CARRY_BYTES
    assert decode(encode(carry)) == carry
    assert unpack_batch(carry.body) == samples


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_batches_round_trip(samples: list[bytes]) -> None:
    assert unpack_batch(pack_batch(samples)) == samples


def test_a_damaged_batch_gives_nothing() -> None:
    good = pack_batch([b"abc", b"de"])
    raw = base64.b64decode(good)
    for body in ("not base64!", base64.b64encode(raw[:-1]).decode(),
                 base64.b64encode(b"\xff\xff\xff\xff" + raw).decode()):  # fmt: skip
        assert unpack_batch(body) == []
