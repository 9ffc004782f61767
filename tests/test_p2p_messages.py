"""Message codecs, the registry and framing: round trips, bounds, fuzzing."""

import struct
import zlib
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from timecoin.finality.messages import SnowballQuery
from timecoin.ledger.encoding import DecodeError
from timecoin.p2p import messages as m
from timecoin.p2p.config import P2PConfig
from timecoin.p2p.framing import (
    FrameReceiver,
    decode_frame_payload,
    encode_frame,
    encode_frame_payload,
    inflate,
)
from timecoin.p2p.ratelimit import BAN, PeerRateLimits
from timecoin.p2p.util import BoundedDict, BoundedSet

SAMPLES = [
    m.Hello(b"TMd2", 1, b"g" * 32, 12, b"p" * 32, b"n" * 32, 24200, "timecoin/0.1.0"),
    m.Auth(b"s" * 64),
    m.Ping(2**64 - 1),
    m.Pong(0),
    m.GetAddr(),
    m.Addr((m.PeerAddress("127.0.0.1", 24200, 5), m.PeerAddress("::1", 1, 2**40))),
    m.Inv(tuple(bytes([i]) * 32 for i in range(3))),
    m.GetData((b"\x07" * 32,)),
    m.TxMessage(b"raw transaction bytes"),
    m.Reject("wrong-network", "this node is on devnet"),
]


class Codecs(unittest.TestCase):
    def test_round_trips(self):
        for message in SAMPLES:
            self.assertEqual(m.decode_message(m.encode_message(message)), message)
            self.assertEqual(decode_frame_payload(encode_frame_payload(message)), message)

    def test_every_reserved_kind_is_named_and_distinct(self):
        names = ["hello", "auth", "ping", "pong", "getaddr", "addr", "inv", "getdata", "tx",
                 "reject", "snowball_query", "snowball_votes", "finality_event", "subscribe",
                 "get_finalized", "finalized",
                 "block_proposal", "block_prevote", "block_precommit", "getblocks", "blocks",
                 "evidence", "tip",
                 "snapshot", "get_snapshot", "snapshot_offer", "get_snapshot_chunk",
                 "snapshot_chunk"]
        self.assertEqual(sorted(m.KIND_NAMES[k] for k in m.KIND_NAMES if k < 0x1000),
                         sorted(names))

    def test_trailing_bytes_refused(self):
        with self.assertRaises(DecodeError):
            m.decode_message(m.encode_message(m.Ping(1)) + b"\x00")

    def test_bounds_enforced(self):
        too_many = struct.pack("<HI", m.INV, m.MAX_INV + 1)
        with self.assertRaises(DecodeError):
            m.decode_message(too_many)
        with self.assertRaises(ValueError):
            m.encode_message(m.Inv((b"x" * 32,) * (m.MAX_INV + 1)))

    def test_reserved_kind_without_codec_is_unknown(self):
        with self.assertRaises(DecodeError):
            m.decode_message(struct.pack("<H", m.SNOWBALL_QUERY))

    def test_registering_a_new_kind(self):
        @dataclass(frozen=True)
        class Probe:
            KIND = 0x7F01
            value: int

            def encode(self, w):
                w.u32(self.value)

            @classmethod
            def decode(cls, r):
                if (value := r.u32()) > 10:
                    raise ValueError("too big")
                return cls(value)

        m.register_message(Probe)
        self.addCleanup(m._CODECS.pop, Probe.KIND)
        self.addCleanup(m.KIND_NAMES.pop, Probe.KIND)
        self.assertEqual(m.decode_message(m.encode_message(Probe(3))), Probe(3))
        # A codec's own exception still surfaces as DecodeError.
        with self.assertRaises(DecodeError):
            m.decode_message(m.encode_message(Probe(11)))
        with self.assertRaises(ValueError):
            m.register_message(Probe)

    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=300))
    def test_fuzz_decoder_only_raises_decode_error(self, data):
        for payload in (data, b"\x00" + data, b"\x01" + data):
            try:
                decode_frame_payload(payload, 4096)
            except DecodeError:
                pass

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200), st.binary(max_size=8), st.binary(max_size=8))
    def test_fuzz_in_place_decoding_matches_a_copy(self, data, before, after):
        """Decoding a slice of a larger buffer never reads outside the slice."""
        def outcome(*args):
            try:
                return m.decode_message(*args)
            except DecodeError:
                return DecodeError
        buffer = before + data + after
        self.assertEqual(outcome(buffer, len(before), len(before) + len(data)), outcome(data))

    def test_in_place_truncation_refused(self):
        for message in SAMPLES:
            encoded = m.encode_message(message)
            buffer = b"j" + encoded + b"\xff" * 300
            self.assertEqual(m.decode_message(buffer, 1, 1 + len(encoded)), message)
            for cut in range(len(encoded)):
                with self.assertRaises(DecodeError):
                    m.decode_message(buffer, 1, 1 + cut)

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(SAMPLES), st.data())
    def test_fuzz_mutated_messages(self, message, data):
        encoded = bytearray(m.encode_message(message))
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(encoded)))
        try:
            m.decode_message(bytes(encoded[:cut]))
        except DecodeError:
            pass


class Compression(unittest.TestCase):
    def test_large_messages_compressed(self):
        message = m.TxMessage(bytes(50_000))
        payload = encode_frame_payload(message)
        self.assertEqual(payload[0], 1)
        self.assertLess(len(payload), 1000)
        self.assertEqual(decode_frame_payload(payload), message)

    def test_lists_of_hashes_not_compressed(self):
        txids = tuple(bytes([i % 256, i // 256]) * 16 for i in range(1000))
        for message in (m.Inv(txids), m.GetData(txids), SnowballQuery(7, txids)):
            payload = encode_frame_payload(message, compress_threshold=100)
            self.assertEqual(payload[0], 0, type(message).__name__)
            self.assertEqual(decode_frame_payload(payload), message)

    def test_small_messages_not_compressed(self):
        self.assertEqual(encode_frame_payload(m.Ping(1))[0], 0)

    def test_bomb_refused(self):
        bomb = zlib.compress(bytes(10_000_000), 9)
        with self.assertRaises(DecodeError):
            inflate(bomb, 1_000_000)

    def test_bad_streams_refused(self):
        good = zlib.compress(b"x" * 100)
        for bad in (good[:-2], good + b"junk", b"not zlib"):
            with self.assertRaises(DecodeError):
                inflate(bad, 1000)

    def test_unknown_flags_refused(self):
        with self.assertRaises(DecodeError):
            decode_frame_payload(b"\x02" + m.encode_message(m.Ping(1)))
        with self.assertRaises(DecodeError):
            decode_frame_payload(b"")


class Collector(FrameReceiver):
    MAX_LENGTH = 1000

    def __init__(self):
        self.frames = []
        self.exceeded = []

    def stringReceived(self, payload):
        self.frames.append(payload)

    def lengthLimitExceeded(self, length):
        self.exceeded.append(length)


class Framing(unittest.TestCase):
    def test_split_at_every_offset(self):
        data = b"".join(encode_frame(msg) for msg in SAMPLES)
        expected = [encode_frame_payload(msg) for msg in SAMPLES]
        for cut in range(len(data) + 1):
            receiver = Collector()
            receiver.dataReceived(data[:cut])
            receiver.dataReceived(data[cut:])
            self.assertEqual(receiver.frames, expected)

    def test_one_byte_at_a_time(self):
        receiver = Collector()
        data = b"".join(encode_frame(msg) for msg in SAMPLES)
        for i in range(len(data)):
            receiver.dataReceived(data[i:i + 1])
        self.assertEqual(len(receiver.frames), len(SAMPLES))

    def test_oversized_length_refused_from_header_alone(self):
        receiver = Collector()
        receiver.dataReceived(b"\x00\x00")
        self.assertEqual(receiver.exceeded, [])
        receiver.dataReceived(b"\x03\xe9")
        self.assertEqual(receiver.exceeded, [1001])
        receiver.dataReceived(b"x" * 5000)
        self.assertEqual(receiver.frames, [])
        self.assertEqual(receiver._tail_size, 0)

    def test_large_frame_in_small_chunks(self):
        receiver = Collector()
        receiver.MAX_LENGTH = 200_000
        message = m.TxMessage(bytes(range(256)) * 300)
        data = encode_frame(message, None) + encode_frame(m.Ping(1))
        for i in range(0, len(data), 1000):
            receiver.dataReceived(data[i:i + 1000])
        self.assertEqual([decode_frame_payload(p) for p in receiver.frames], [message, m.Ping(1)])
        self.assertEqual(receiver._tail_size, 0)

    def test_paused_receiver_resumes_where_it_stopped(self):
        receiver = Collector()
        receiver.transport = StringTransport()
        receiver.stringReceived = lambda payload: (receiver.frames.append(payload),
                                                   receiver.pauseProducing())
        receiver.dataReceived(b"".join(encode_frame(msg) for msg in SAMPLES[:3]))
        self.assertEqual(len(receiver.frames), 1)
        receiver.resumeProducing()
        receiver.resumeProducing()
        self.assertEqual(receiver.frames, [encode_frame_payload(msg) for msg in SAMPLES[:3]])

    def test_maximum_length(self):
        receiver = Collector()
        receiver.dataReceived(b"\xff\xff\xff\xff")
        self.assertEqual(receiver.exceeded, [2**32 - 1])


class Containers(unittest.TestCase):
    def test_bounded_set_forgets_oldest(self):
        known = BoundedSet(3)
        for item in [1, 2, 2, 3, 4, 5]:
            known.add(item)
        self.assertEqual([i in known for i in range(1, 6)], [False, False, True, True, True])
        self.assertEqual(len(known), 3)

    def test_bounded_dict_forgets_oldest_written(self):
        cache = BoundedDict(2)
        cache["a"], cache["b"], cache["a"], cache["c"] = 1, 2, 3, 4
        self.assertEqual((cache.get("a"), "b" in cache, cache.get("c")), (3, False, 4))
        self.assertEqual(cache.pop("a"), 3)
        self.assertEqual(len(cache), 1)


class RateLimits(unittest.TestCase):
    def test_ping_limit_configurable(self):
        limits = PeerRateLimits(P2PConfig(rate_limit_ping=1))
        self.assertEqual([limits.check(m.PING, 0.0) for _ in range(5)], [None] * 4 + [BAN])
        self.assertIsNone(limits.check(m.PING, 1.0))
        self.assertEqual(limits.check(m.GETADDR, 0.0), None)
