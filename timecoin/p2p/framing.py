"""Frames: a 4-byte big-endian length, then ``flags u8`` and the message.

Flag bit 0 means the message bytes are zlib-compressed; the other bits must be
zero. A length above ``max_message_size`` is refused from the header alone,
before any of the payload is buffered, and decompression stops at the same
bound, so a decompression bomb is an ordinary protocol error.
"""

import struct
import zlib

from twisted.protocols.basic import Int32StringReceiver

from timecoin.ledger.encoding import DecodeError
from timecoin.p2p.messages import decode_message, encode_body

DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024
#: Messages at least this long are sent compressed (when it makes them smaller),
#: but for kinds whose class says ``INCOMPRESSIBLE``: lists of hashes, which
#: zlib only spends time on.
COMPRESS_THRESHOLD = 4096

FLAG_COMPRESSED = 0x01
_HEADER = struct.Struct("!I")
_unpack_header = _HEADER.unpack_from


def encode_frame(message, compress_threshold=COMPRESS_THRESHOLD):
    """A complete frame, header included, in one buffer."""
    parts = encode_body(message, [b"", b"\x00"])
    size = sum(map(len, parts)) - 1
    if (compress_threshold is not None and size >= compress_threshold
            and not getattr(message, "INCOMPRESSIBLE", False)):
        body = b"".join(parts[2:])
        packed = zlib.compress(body, 6)
        if len(packed) < len(body):
            return _HEADER.pack(len(packed) + 1) + b"\x01" + packed
    parts[0] = _HEADER.pack(size + 1)
    return b"".join(parts)


def encode_frame_payload(message, compress_threshold=COMPRESS_THRESHOLD):
    """The frame payload (without the length header) carrying ``message``."""
    return encode_frame(message, compress_threshold)[4:]


def inflate(data, max_size):
    """Decompress a zlib stream, refusing output beyond ``max_size`` bytes."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max_size + 1)
    except zlib.error as e:
        raise DecodeError(f"bad compressed data: {e}") from None
    if len(out) > max_size or inflater.unconsumed_tail:
        raise DecodeError(f"decompresses to more than {max_size} bytes")
    if not inflater.eof:
        raise DecodeError("truncated compressed data")
    if inflater.unused_data:
        raise DecodeError("bytes after the compressed data")
    return out


def decode_frame(data, start, end, max_size=DEFAULT_MAX_MESSAGE_SIZE):
    """The message in the frame payload ``data[start:end]``; else :class:`DecodeError`."""
    if start >= end:
        raise DecodeError("empty frame")
    flags = data[start]
    if not flags:
        return decode_message(data, start + 1, end)
    if flags & ~FLAG_COMPRESSED:
        raise DecodeError(f"unknown frame flags {flags:#04x}")
    return decode_message(inflate(data[start + 1:end], max_size))


def decode_frame_payload(payload, max_size=DEFAULT_MAX_MESSAGE_SIZE):
    """The message in a frame payload; :class:`DecodeError` for anything else."""
    return decode_frame(payload, 0, len(payload), max_size)


class FrameReceiver(Int32StringReceiver):
    """Splits a byte stream into frames for :meth:`frameReceived`.

    ``MAX_LENGTH`` is the largest payload accepted; set it per instance from
    the configured ``max_message_size``. The header is checked as soon as its
    four bytes are in, so an oversized frame costs no buffering. Frames are
    cut out of the received chunks by offset, without copying; only an
    incomplete tail is kept, as a list of chunks joined once the frame is
    complete. :meth:`stopReceiving` makes the receiver ignore everything
    after it (used once the connection is being closed).
    """

    MAX_LENGTH = DEFAULT_MAX_MESSAGE_SIZE
    _receiving_stopped = False
    _tail = ()
    _tail_size = 0
    _needed = 4

    def stopReceiving(self):
        self._receiving_stopped = True
        self._tail = ()
        self._tail_size = 0

    def frameReceived(self, data, start, end):
        """One frame payload, ``data[start:end]``; by default :meth:`stringReceived`."""
        self.stringReceived(data[start:end])

    def dataReceived(self, data):
        if self._receiving_stopped:
            return
        if self._tail:
            self._tail.append(data)
            self._tail_size += len(data)
            if self._tail_size < self._needed:
                return
            data = b"".join(self._tail)
            self._tail = ()
            self._tail_size = 0
        size = len(data)
        offset = 0
        needed = 4
        while not self.paused:
            if size - offset < 4:
                break
            (length,) = _unpack_header(data, offset)
            if length > self.MAX_LENGTH:
                self.stopReceiving()
                self.lengthLimitExceeded(length)
                return
            end = offset + 4 + length
            if end > size:
                needed = 4 + length
                break
            self.frameReceived(data, offset + 4, end)
            offset = end
            if self._receiving_stopped:
                return
        else:
            needed = 0  # paused: resumeProducing delivers the rest
        if offset < size:
            self._tail = [data[offset:] if offset else data]
            self._tail_size = size - offset
            self._needed = needed

    def sendFrame(self, payload):
        """Send one frame payload (see :func:`encode_frame_payload`)."""
        self.transport.write(_HEADER.pack(len(payload)) + payload)
