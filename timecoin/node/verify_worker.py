"""A signature-verification worker process (``python -m timecoin.node.verify_worker``).

The node starts these children and talks to them over their standard input
and output, one length-prefixed frame per chunk of transactions, answered in
order. The worker first writes an empty frame, once it is ready. A request
is the transactions' encodings, each prefixed by its length;
the answer is one 32-bit word per transaction: ``OK``, ``MALFORMED``, or the
index of the first input whose signature does not verify. All lengths and
words are big-endian unsigned 32-bit integers.

The worker ends when its input closes (the node stopping, or dying). It
ignores SIGINT and SIGTERM: a Ctrl-C in the node's terminal, or a service
manager signalling the node's whole process group, stops the node, which then
closes its workers in order.
"""

import signal
import struct
import sys

from timecoin.ledger.tx import MAX_TX_SIZE, TxRejected, decode_tx, first_bad_signature

WORD = struct.Struct("!I")
OK = 0xFFFFFFFF
MALFORMED = 0xFFFFFFFE
#: Transactions per request, at most (the node sends fewer).
MAX_CHUNK_TXS = 4096
MAX_FRAME = MAX_CHUNK_TXS * (4 + MAX_TX_SIZE)


class FrameError(ValueError):
    """A request or an answer breaks the framing."""


def encode_request(raws):
    return b"".join(WORD.pack(len(raw)) + raw for raw in raws)


def decode_request(body):
    """The encodings in a request body."""
    raws, pos, size = [], 0, len(body)
    while pos < size:
        if pos + 4 > size:
            raise FrameError("truncated length")
        (n,) = WORD.unpack_from(body, pos)
        pos += 4
        if n > MAX_TX_SIZE or pos + n > size:
            raise FrameError("transaction length out of bounds")
        raws.append(body[pos:pos + n])
        pos += n
        if len(raws) > MAX_CHUNK_TXS:
            raise FrameError("too many transactions in one request")
    return raws


def check_request(body):
    """The answer body for a request body."""
    words = []
    for raw in decode_request(body):
        try:
            bad = first_bad_signature(decode_tx(raw))
        except TxRejected:
            words.append(MALFORMED)
            continue
        words.append(OK if bad is None else bad)
    return b"".join(map(WORD.pack, words))


def decode_answer(body, expected):
    """The words of an answer that must cover ``expected`` transactions."""
    if len(body) != 4 * expected:
        raise FrameError(f"answer covers {len(body) // 4} transactions, not {expected}")
    return [w for (w,) in WORD.iter_unpack(body)]


def serve(stdin, stdout, stderr=None):
    """Say ready, then answer requests until ``stdin`` closes; return the exit
    status. Why a request was refused goes to ``stderr`` (the node logs it)."""
    stderr = stderr or sys.stderr
    stdout.write(WORD.pack(0))
    stdout.flush()
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return 0 if not head else 1
        (n,) = WORD.unpack(head)
        if n > MAX_FRAME:
            stderr.write(f"verify worker: request of {n} bytes exceeds {MAX_FRAME}\n")
            return 1
        body = stdin.read(n)
        if len(body) < n:
            return 1
        try:
            answer = check_request(body)
        except FrameError as e:
            stderr.write(f"verify worker: bad request: {e}\n")
            return 1
        stdout.write(WORD.pack(len(answer)) + answer)
        stdout.flush()


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
