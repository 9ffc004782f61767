"""The outgoing-buffer budget of each connection, and of all of them together.

Each :class:`SendBuffer` is registered with its connection's transport as a
streaming producer (``registerProducer(buffer, True)``): the transport calls
:meth:`~SendBuffer.pauseProducing` once its write buffer holds more than its
own ``bufferSize`` (64 KiB for TCP) and :meth:`~SendBuffer.resumeProducing`
once it is drained. While paused the connection is *over budget*: it serves
no ``getdata`` and receives no pushed transactions, and every byte still
written to it is counted. It is cut when those bytes pass
``max_send_buffer``, or when it stays paused ``send_stall_timeout`` seconds.
The :class:`SendAccount` of the node adds up the bytes queued to every
connection and cuts the largest queue when the sum passes
``max_total_send_buffer``.
"""

from collections import Counter

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

#: The write buffer of a Twisted TCP transport (``FileDescriptor.bufferSize``):
#: a paused connection holds at least this much.
TRANSPORT_BUFFER = 2**16


class SendAccount:
    """The node-wide sums of the peer-memory limits, and their counters."""

    def __init__(self, max_total):
        self.max_total = max_total
        #: Estimated bytes queued to all connections (see :meth:`SendBuffer.queued`).
        self.queued = 0
        self.paused = set()
        #: Disconnections by reason (``timecoin_peer_disconnects_total``).
        self.disconnects = Counter()
        #: ``getdata`` txids not served, and pushes sent as ``inv``, to paused peers.
        self.getdata_skipped = 0
        self.pushes_skipped = 0
        #: Times a connection stopped reading because its peer was over its txid budget.
        self.receive_holds = 0

    def add(self, delta):
        self.queued += delta

    def largest(self):
        """The paused :class:`SendBuffer` holding most bytes, or None."""
        return max(self.paused, key=lambda buffer: buffer.queued(), default=None)


@implementer(IPushProducer)
class SendBuffer:
    """The send budget of one connection (``peer`` has ``drop(reason)``)."""

    def __init__(self, peer, clock, config, account):
        self._peer = peer
        self._clock = clock
        self._limit = config.max_send_buffer
        self._stall_timeout = config.send_stall_timeout
        self._account = account
        self._paused_at = None
        self._written = 0  # bytes written since the transport paused us
        self._stall_call = None

    @property
    def over_budget(self):
        """True while the transport's buffer is past its size (no getdata, no pushes)."""
        return self._paused_at is not None

    def queued(self):
        """A lower bound of the bytes waiting in the transport: 0 when not paused."""
        if self._paused_at is None:
            return 0
        return TRANSPORT_BUFFER + self._written

    # -- IPushProducer: called by the transport ----------------------------------
    def pauseProducing(self):
        if self._paused_at is not None:
            return
        self._paused_at = self._clock.seconds()
        self._written = 0
        self._account.paused.add(self)
        self._account.add(TRANSPORT_BUFFER)
        self._stall_call = self._clock.callLater(self._stall_timeout, self._stalled)

    def resumeProducing(self):
        if self._paused_at is None:
            return
        self._account.add(-self.queued())
        self._account.paused.discard(self)
        self._paused_at = None
        self._written = 0
        if self._stall_call is not None and self._stall_call.active():
            self._stall_call.cancel()
        self._stall_call = None

    def stopProducing(self):
        self.resumeProducing()

    # -- called by the connection ---------------------------------------------------
    def wrote(self, size):
        """``size`` bytes were handed to the transport; False if that cut the peer."""
        if self._paused_at is None:
            return True
        self._written += size
        account = self._account
        account.add(size)
        if self._written > self._limit:
            self._cut("send buffer full")
            return False
        if account.queued > account.max_total:
            largest = account.largest()
            largest._cut("node send budget")
            return largest is not self
        return True

    def _stalled(self):
        self._stall_call = None
        self._cut("send buffer stalled")

    def _cut(self, reason):
        self.resumeProducing()
        self._peer.drop(reason)
