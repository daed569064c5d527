"""The one layout of a records message, kept in kleio_client.protocol: the bytes the
client frames by hand (fixed-width headers, records copied once) read back as what
msgpack packs, and the lists the daemon cuts out of them read back too."""

from __future__ import annotations

import msgpack
import pytest

from kleio_client import protocol

PACK = msgpack.Packer(use_bin_type=True).pack


def _statistics(count: int) -> list[protocol.PackedRecord]:
    return [PACK({"step": i, "loss": 1.0 / (i + 1)}) for i in range(count)]


@pytest.mark.parametrize("count", [1, 15, 16, 4096, protocol.MAX_RECORDS_PER_MESSAGE - 1])
def test_a_framed_batch_of_statistics_reads_as_what_msgpack_packs(count: int):
    items = _statistics(count)
    message = protocol.unpack(protocol.records_frame("t" * 32, 3, "p" * 16, 7, items))
    packed = protocol.unpack(
        protocol.pack(
            protocol.records(
                "t" * 32,
                3,
                "p" * 16,
                7,
                msgpack.packb([[protocol.STATISTIC, msgpack.unpackb(i)] for i in items]),
            )
        )
    )
    assert {**message, "records": None} == {**packed, "records": None}
    assert msgpack.unpackb(message["records"]) == msgpack.unpackb(packed["records"])


def test_a_batch_with_other_kinds_is_framed_alike():
    output = (
        protocol.RECORD_PREFIXES[protocol.OUTPUT],
        PACK({"stream": "stdout", "data": b"hi\n"}),
    )
    items = [*_statistics(2), output, *_statistics(1)]
    message = protocol.unpack(protocol.records_frame("t", 1, "p", 1, items))
    assert [kind for kind, _ in msgpack.unpackb(message["records"])] == [
        "statistic",
        "statistic",
        "output",
        "statistic",
    ]


@pytest.mark.parametrize("count", [0, 1, 15, 16, 65535, 65536])
def test_a_packed_list_of_packed_records_reads_back(count: int):
    pairs = [[protocol.STATISTIC, {"i": i}] for i in range(count)]
    joined = b"".join(PACK(pair) for pair in pairs)
    assert msgpack.unpackb(protocol.packed_list(count, joined)) == pairs
