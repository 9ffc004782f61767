"""One peer connection: framing, handshake states, rate limits, ping and timeouts."""

import itertools
import random
from time import thread_time

from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.interfaces import IPeer
from timecoin.ledger.encoding import DecodeError
from timecoin.p2p import messages as m
from timecoin.p2p.framing import FrameReceiver, decode_frame, encode_frame
from timecoin.p2p.handshake import AwaitingHello, Closed, Connecting, new_nonce
from timecoin.p2p.messages import decode_message
from timecoin.p2p.ratelimit import BAN, PeerRateLimits
from timecoin.p2p.sendbuffer import SendBuffer
from timecoin.p2p.util import BoundedSet, format_address

_peer_ids = itertools.count(1)
MAX_PENDING_PINGS = 16
#: Seconds a refused connection may take to flush its reason before it is cut.
CLOSE_GRACE = 5.0


def _disable_nagle(transport):
    """Small request/answer messages must not wait for delayed ACKs."""
    for candidate in (transport, getattr(transport, "transport", None)):
        set_no_delay = getattr(candidate, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
            return


@implementer(IPeer)
class PeerProtocol(FrameReceiver):
    """A connection to one peer, from the first byte to the last.

    ``host`` provides :class:`~timecoin.p2p.host.IPeerHost`; ``manager`` (the
    :class:`~timecoin.p2p.service.PeerNetworkService`) is told when the
    connection is made, ready, misbehaving or lost, its ``send_account`` (a
    :class:`~timecoin.p2p.sendbuffer.SendAccount`) sums the send budgets and
    counts disconnections, and its ``ready_state``
    (a :class:`~timecoin.p2p.handshake.Ready`) routes the messages of a ready
    connection. Every message goes through the table of the connection's
    current :class:`~timecoin.p2p.handshake.State`, in :meth:`frameReceived`.
    All timers run on ``clock`` (an ``IReactorTime``).
    """

    log = Logger()

    def __init__(self, host, manager, clock, config, direction, address=None):
        self.host = host
        self.manager = manager
        self.clock = clock
        self.config = config
        self.MAX_LENGTH = config.max_message_size
        self.direction = direction
        self.address = address
        self.peer_id = next(_peer_ids)
        self.state = Connecting()
        self._closed = False
        self._now = clock.seconds()
        self._compress_threshold = config.compress_threshold
        self.remote = None
        self.ping_ms = None
        self.banscore = 0
        self.addr_sent = False  # answered this peer's getaddr (once per connection)
        self.known_inventory = BoundedSet(config.known_inventory_per_peer)
        self.limits = PeerRateLimits(config)
        self._pings = {}
        self._last_received = None
        self._handshake_call = self._idle_call = self._close_call = None
        self._hold_call = None
        self._pinger = None
        self._lost = False
        self._lost_waiters = []
        self.seed = None
        self.connected_at = self._now
        #: When the peer last sent a new transaction or a finality message (eviction).
        self.last_useful = None
        self.send_buffer = SendBuffer(self, clock, config, manager.send_account)
        self._traffic = manager.traffic

    # -- identity ---------------------------------------------------------
    @property
    def ip(self):
        return getattr(self.address, "host", None)

    @property
    def label(self):
        return format_address(self.address)

    @property
    def pubkey(self):
        return self.remote.pubkey if self.remote is not None else None

    @property
    def is_ready(self):
        return self.state.ready

    @property
    def closing(self):
        """True once the connection is being closed."""
        return self._closed

    @property
    def over_budget(self):
        """True while the transport's write buffer is full: serve no getdata, push nothing."""
        return self.send_buffer.over_budget

    def mark_useful(self):
        """The peer just sent something this node wanted (eviction protects such peers)."""
        self.last_useful = self.clock.seconds()

    def hold_receiving(self, seconds):
        """Read nothing more from the peer for ``seconds`` (it announced more
        than its txid budget): frames already read wait, and TCP pushes back
        on the sender. Counted in ``manager.send_account.receive_holds``."""
        if self._closed or self._hold_call is not None or seconds <= 0:
            return
        self.manager.send_account.receive_holds += 1
        self.pauseProducing()
        self._hold_call = self.clock.callLater(seconds, self._end_hold)

    def _end_hold(self):
        self._hold_call = None
        if not self._closed:
            self.resumeProducing()

    def info(self):
        """The ``getpeerinfo`` entry of this peer."""
        return {
            "id": self.peer_id,
            "address": self.label,
            "direction": self.direction,
            "version": self.remote.user_agent if self.remote else "",
            "ping_ms": None if self.ping_ms is None else round(self.ping_ms, 3),
            "banscore": self.banscore,
            "pubkey": self.pubkey.hex() if self.pubkey else None,
            "best_height": self.remote.best_height if self.remote else None,
        }

    # -- connection life ----------------------------------------------------
    def connectionMade(self):
        if self.address is None:
            self.address = self.transport.getPeer()
        _disable_nagle(self.transport)
        self.transport.registerProducer(self.send_buffer, True)
        now = self.clock.seconds()
        self._last_received = now
        nonce = new_nonce()
        self.state = AwaitingHello(nonce, self.manager.ready_state)
        self.manager.peer_connected(self)
        self._handshake_call = self.clock.callLater(
            self.config.handshake_timeout, self._handshake_expired)
        self._idle_call = self.clock.callLater(self.config.idle_timeout, self._check_idle)
        host = self.host
        agent = f"{self.config.user_agent}/{host.version}".encode()[:m.MAX_USER_AGENT]
        self.send(m.Hello(host.network.magic, m.PROTOCOL_VERSION, host.genesis_hash,
                          int(host.best_height()), host.identity.pubkey, nonce,
                          self.manager.listen_port(), agent.decode("utf-8", "ignore")))

    def connectionLost(self, reason):
        self._close()
        self.send_buffer.stopProducing()
        for call in (self._handshake_call, self._idle_call, self._close_call, self._hold_call):
            if call is not None and call.active():
                call.cancel()
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        pending, self._pings = self._pings, {}
        for _, waiting in pending.values():
            waiting.callback(None)
        self._lost = True
        self.manager.peer_lost(self)
        waiters, self._lost_waiters = self._lost_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def when_lost(self):
        """A Deferred firing once the connection is closed."""
        waiter = defer.Deferred()
        if self._lost:
            waiter.callback(None)
        else:
            self._lost_waiters.append(waiter)
        return waiter

    def _handshake_expired(self):
        if not self.state.ready:
            self.drop("handshake timeout")

    def _check_idle(self):
        idle = self.clock.seconds() - self._last_received
        if idle >= self.config.idle_timeout:
            self.drop("idle timeout")
        else:
            self._idle_call = self.clock.callLater(
                self.config.idle_timeout - idle, self._check_idle)

    def _became_ready(self):
        self._handshake_call.cancel()
        if not self.manager.peer_ready(self):
            self.refuse("duplicate-connection", "already connected to this node")
            return
        self.log.info("peer {peer} ready ({direction}, {agent})", peer=self.label,
                      direction=self.direction, agent=self.remote.user_agent)
        self._pinger = task.LoopingCall(self._ping_tick)
        self._pinger.clock = self.clock
        self._pinger.start(self.config.ping_interval, now=True)
        self.manager.announce_ready(self)

    # -- closing --------------------------------------------------------------
    def _close(self):
        self.state = Closed()
        self._closed = True
        self.stopReceiving()

    def drop(self, reason):
        """Close at once, without blame (timeouts, shutdown)."""
        if self._closed:
            return
        self.log.info("dropping peer {peer}: {reason}", peer=self.label, reason=reason)
        self.manager.send_account.disconnects[reason] += 1
        self._close()
        self.transport.abortConnection()

    def misbehave(self, reason):
        """Close at once and have the manager ban the address."""
        if self._closed:
            return
        self.log.info("peer {peer} misbehaved: {reason}", peer=self.label, reason=reason)
        self.manager.send_account.disconnects["misbehaviour"] += 1
        self._close()
        self.banscore = 100
        self.manager.peer_misbehaved(self, reason)
        self.transport.abortConnection()

    def refuse(self, code, message):
        """Tell the peer why, then close (a refusal, not misbehaviour)."""
        if self._closed:
            return
        self.log.info("refusing peer {peer}: {code}", peer=self.label, code=code)
        self.send(m.Reject(code, message))
        self.manager.send_account.disconnects[f"refused {code}"] += 1
        self._close()
        self.manager.peer_refused(self, code)
        self.transport.loseConnection()
        self._close_call = self.clock.callLater(CLOSE_GRACE, self.transport.abortConnection)

    # -- frames in and out --------------------------------------------------
    def send(self, message):
        """Send ``message``; False if the connection is closing."""
        if self._closed:
            return False
        frame = encode_frame(message, self._compress_threshold)
        self.transport.write(frame)
        self._traffic.count_sent(message.KIND, len(frame))
        return self.send_buffer.wrote(len(frame))

    def send_frame(self, frame, kind):
        """Send a complete frame from :func:`~timecoin.p2p.framing.encode_frame`
        carrying a message of ``kind``.

        For one message sent to many peers: it is encoded once.
        """
        if self._closed:
            return False
        self.transport.write(frame)
        self._traffic.count_sent(kind, len(frame))
        return self.send_buffer.wrote(len(frame))

    def lengthLimitExceeded(self, length):
        self.misbehave(f"frame of {length} bytes exceeds {self.MAX_LENGTH}")

    def dataReceived(self, data):
        # One clock reading per read: the frames in it arrived together.
        self._last_received = self._now = self.clock.seconds()
        FrameReceiver.dataReceived(self, data)

    def stringReceived(self, payload):
        """One frame payload, handled as if it had just been read."""
        self._last_received = self._now = self.clock.seconds()
        self.frameReceived(payload, 0, len(payload))

    def frameReceived(self, data, start, end):
        """Decode one frame, apply the rate limits, and route the message through
        the table of the current state: the one place messages are dispatched."""
        if self._closed:
            return
        try:
            if start < end and not data[start]:  # the usual, uncompressed frame
                message = decode_message(data, start + 1, end)
            else:
                message = decode_frame(data, start, end, self.MAX_LENGTH)
        except DecodeError as e:
            self.misbehave(f"undecodable message: {e}")
            return
        kind = message.KIND
        self._traffic.count_received(kind, end - start + 4)  # + the length header
        action = self.limits.check(kind, self._now)
        if action is not None:
            self._traffic.limited(kind, action)
            if action == BAN:
                self.misbehave(f"flood of {m.kind_name(kind)}")
            return
        state = self.state
        handler = state.handlers.get(kind)
        if handler is None:
            state.unexpected(self, message)
            return
        started = thread_time()
        following = handler(self, message)
        self._traffic.handled(kind, thread_time() - started)
        if following is None or self._closed:
            return
        self.state = following
        if following.ready:
            self._became_ready()

    # -- ping -----------------------------------------------------------------
    def _ping_tick(self):
        self.ping()

    def ping(self):
        """Send a ping; a Deferred firing with the round trip in ms (None if lost)."""
        waiting = defer.Deferred()
        if not self.state.ready:
            waiting.callback(None)
            return waiting
        nonce = random.getrandbits(64)
        if len(self._pings) >= MAX_PENDING_PINGS:
            oldest = next(iter(self._pings))
            self._pings.pop(oldest)[1].callback(None)
        self._pings[nonce] = (self.clock.seconds(), waiting)
        self.send(m.Ping(nonce))
        return waiting

    def pong_received(self, nonce):
        """The answer to one of our pings: record the round trip."""
        entry = self._pings.pop(nonce, None)
        if entry is None:
            return
        sent_at, waiting = entry
        self.ping_ms = (self.clock.seconds() - sent_at) * 1000.0
        waiting.callback(self.ping_ms)
