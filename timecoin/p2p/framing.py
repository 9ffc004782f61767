"""Frames: a 4-byte big-endian length, then ``flags u8`` and the message.

Flag bit 0 means the message bytes are zlib-compressed; the other bits must be
zero. A length above ``max_message_size`` is refused from the header alone,
before any of the payload is buffered, and decompression stops at the same
bound, so a decompression bomb is an ordinary protocol error.
"""

import struct
import zlib

from twisted.protocols.basic import Int32StringReceiver

from timecoin.encoding import DecodeError
from timecoin.p2p.messages import decode_message, encode_message

DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024
#: Messages at least this long are sent compressed (when it makes them smaller).
COMPRESS_THRESHOLD = 4096

FLAG_COMPRESSED = 0x01
_HEADER = struct.Struct("!I")


def encode_frame_payload(message, compress_threshold=COMPRESS_THRESHOLD):
    """The frame payload (without the length header) carrying ``message``."""
    body = encode_message(message)
    if compress_threshold is not None and len(body) >= compress_threshold:
        packed = zlib.compress(body, 6)
        if len(packed) < len(body):
            return bytes([FLAG_COMPRESSED]) + packed
    return b"\x00" + body


def encode_frame(message, compress_threshold=COMPRESS_THRESHOLD):
    """A complete frame, header included."""
    payload = encode_frame_payload(message, compress_threshold)
    return _HEADER.pack(len(payload)) + payload


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


def decode_frame_payload(payload, max_size=DEFAULT_MAX_MESSAGE_SIZE):
    """The message in a frame payload; :class:`DecodeError` for anything else."""
    if not payload:
        raise DecodeError("empty frame")
    flags = payload[0]
    if flags & ~FLAG_COMPRESSED:
        raise DecodeError(f"unknown frame flags {flags:#04x}")
    body = payload[1:]
    if flags & FLAG_COMPRESSED:
        body = inflate(body, max_size)
    return decode_message(body)


class FrameReceiver(Int32StringReceiver):
    """Splits a byte stream into frame payloads for :meth:`stringReceived`.

    ``MAX_LENGTH`` is the largest payload accepted; set it per instance from
    the configured ``max_message_size``. The header is checked as soon as its
    four bytes are in, so an oversized frame costs no buffering.
    :meth:`stopReceiving` makes the receiver ignore everything after it (used
    once the connection is being closed).
    """

    MAX_LENGTH = DEFAULT_MAX_MESSAGE_SIZE
    _receiving_stopped = False

    def stopReceiving(self):
        self._receiving_stopped = True
        self._frame_buffer = bytearray()

    def dataReceived(self, data):
        if self._receiving_stopped:
            return
        buffer = self.__dict__.setdefault("_frame_buffer", bytearray())
        buffer += data
        offset = 0
        while not self.paused and not self._receiving_stopped:
            if len(buffer) - offset < 4:
                break
            (length,) = _HEADER.unpack_from(buffer, offset)
            if length > self.MAX_LENGTH:
                self.stopReceiving()
                self.lengthLimitExceeded(length)
                return
            end = offset + 4 + length
            if len(buffer) < end:
                break
            payload = bytes(buffer[offset + 4:end])
            offset = end
            self.stringReceived(payload)
            buffer = self._frame_buffer  # stringReceived may have stopped receiving
            if not buffer:
                return
        if offset:
            del buffer[:offset]

    def sendFrame(self, payload):
        """Send one frame payload (see :func:`encode_frame_payload`)."""
        self.transport.write(_HEADER.pack(len(payload)) + payload)
