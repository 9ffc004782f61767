"""The flooding peer of the ``inv`` flood benchmark, run as its own process.

Run by :mod:`timecoin.bench.invflood` as::

    python -m timecoin.bench.floodpeer PORT RATE TXIDS_PER_INV

It connects a :class:`~timecoin.p2p.service.PeerNetworkService` to the node
on ``127.0.0.1:PORT`` and prints ``ready`` once the handshake is done. Told
``on`` (a line on its standard input) it sends ``RATE`` ``inv`` messages a
second of ``TXIDS_PER_INV`` random txids each, and never answers the
``getdata`` that follow, until told ``off``. On SIGTERM it prints
``sent MESSAGES TXIDS CONNECTIONS CONNECTED SECONDS`` (``SECONDS`` flooding)
and exits. In its own process
the flood does not share an event loop with the client that times the
honest transfers: what the benchmark measures is the node's cost.
"""

import os
import random
import sys

from twisted.internet import defer, protocol, stdio, task
from twisted.protocols.basic import LineReceiver

from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.networks import DEVNET
from timecoin.p2p import P2PConfig, PeerNetworkService
from timecoin.p2p import messages as m
from timecoin.p2p.framing import encode_frame
from timecoin.testing.peers import FakePeerHost
from timecoin.testing.processes import forget_child, spawn_child
from timecoin.testing.waiting import wait_until

#: Sends per flood tick (the flood is spread over the second in this many steps).
TICKS_PER_SECOND = 100
#: Bytes the flood lets queue to the node before it waits (its own send
#: budget would cut it at ``max_send_buffer``, 8 MiB).
FLOOD_QUEUE = 2**20
FLOODPEER = [sys.executable, "-m", "timecoin.bench.floodpeer"]


class InvFlood:
    """Sends ``rate`` ``inv`` messages a second of ``per_inv`` random txids each
    over the one connection of ``network``; counts what it sent.

    Frames are a fixed prefix and fresh random bytes, so making them costs
    little. While more than ``FLOOD_QUEUE`` bytes wait for the node to read
    them the flood waits rather than queue without bound (which would get it
    cut by its own send budget): it sends as fast as the node reads, up to
    ``rate``. :attr:`connections` counts the connections it used (more than
    one means it was cut and came back).
    """

    def __init__(self, reactor, network, rate, per_inv):
        self._network = network
        self._per_tick = rate / TICKS_PER_SECOND
        self._owed = 0.0
        self._per_inv = per_inv
        blank = encode_frame(m.Inv((bytes(32),) * per_inv))
        self._prefix = blank[:len(blank) - 32 * per_inv]
        self._random = random.Random(os.urandom(16))
        self.messages = 0
        self.txids = 0
        self.waited = 0
        self._peer_ids = set()
        self._clock = reactor
        self._started = None
        #: Seconds spent flooding (all the on periods together).
        self.seconds = 0.0
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = reactor

    @property
    def connections(self):
        return len(self._peer_ids)

    def start(self):
        if not self._loop.running:
            self._started = self._clock.seconds()
            self._owed = 0.0
            self._loop.start(1 / TICKS_PER_SECOND)

    def stop(self):
        if self._loop.running:
            self._loop.stop()
            self.seconds += self._clock.seconds() - self._started

    def _tick(self):
        self._owed += self._per_tick
        peer = next((p for p in self._network.connections() if p.is_ready), None)
        if peer is None:
            return
        self._peer_ids.add(peer.peer_id)
        while self._owed >= 1:
            if peer.send_buffer.queued() > FLOOD_QUEUE:
                self.waited += 1
                self._owed = min(self._owed, 1.0)
                return
            self._owed -= 1
            peer.send_frame(self._prefix + self._random.randbytes(32 * self._per_inv), m.INV)
            self.messages += 1
            self.txids += self._per_inv


class FloodControl(LineReceiver):
    """The child's standard input: ``on`` starts the flood, ``off`` pauses it;
    each is acknowledged with ``flooding`` or ``paused`` on standard output."""

    delimiter = b"\n"

    def __init__(self, flooder, out):
        self._flooder = flooder
        self._out = out

    def lineReceived(self, line):
        if line == b"on":
            self._flooder.start()
            self._say("flooding")
        elif line == b"off":
            self._flooder.stop()
            self._say("paused")

    def _say(self, word):
        self._out.write(word + "\n")
        self._out.flush()


@defer.inlineCallbacks
def flood(reactor, port, rate, per_inv, out):
    """Connect to the node on ``port``; flood it while told to, until the
    process is stopped."""
    host = FakePeerHost(DEVNET, make_genesis(DEVNET).hash)
    network = PeerNetworkService(reactor, host, None, [f"127.0.0.1:{port}"],
                                 P2PConfig(ping_interval=3600.0))
    yield network.startService()
    yield wait_until(reactor, lambda: network.peer_count() == 1)
    flooder = InvFlood(reactor, network, rate, per_inv)

    def report():
        flooder.stop()
        connected = int(network.peer_count() == 1)
        out.write(f"sent {flooder.messages} {flooder.txids} {flooder.connections} "
                  f"{connected} {flooder.seconds:.3f}\n")
        out.flush()

    reactor.addSystemEventTrigger("before", "shutdown", report)
    stdio.StandardIO(FloodControl(flooder, out), reactor=reactor)
    out.write("ready\n")
    out.flush()
    yield defer.Deferred()  # until SIGTERM stops the reactor


class FloodPeerProcess(protocol.ProcessProtocol):
    """The parent's end of a flooding peer: :attr:`ready` fires once it is
    connected to the node, :meth:`flood` starts or pauses it, :attr:`ended`
    fires with its report ``(messages, txids, connections, connected,
    seconds)`` once it has exited."""

    def __init__(self):
        self.output = b""
        self.pid = None
        self.ready = defer.Deferred()
        self.ended = defer.Deferred()
        self._acks = []  # (line, occurrences of it due, Deferred), in order

    def outReceived(self, data):
        self.output += data
        if not self.ready.called and b"ready\n" in self.output:
            self.ready.callback(None)
        while self._acks:
            line, due, waiting = self._acks[0]
            if self.output.count(line) < due:
                break
            self._acks.pop(0)
            waiting.callback(None)

    errReceived = outReceived

    def flood(self, on):
        """Start (``on``) or pause the flood; a Deferred firing once it has."""
        line = b"flooding\n" if on else b"paused\n"
        waiting = defer.Deferred()
        pending = sum(1 for other, _, _ in self._acks if other == line)
        self._acks.append((line, self.output.count(line) + pending + 1, waiting))
        self.transport.write(b"on\n" if on else b"off\n")
        return waiting

    def report(self):
        for line in self.output.decode(errors="replace").splitlines():
            if line.startswith("sent "):
                messages, txids, connections, connected, seconds = line.split()[1:]
                return (int(messages), int(txids), int(connections), connected == "1",
                        float(seconds))
        raise RuntimeError("the flooding peer gave no report:\n"
                           + self.output.decode(errors="replace"))

    def processEnded(self, reason):
        forget_child(self.pid)
        failure = RuntimeError("the flooding peer exited:\n"
                               + self.output.decode(errors="replace"))
        acks, self._acks = self._acks, []
        for _, _, waiting in acks:
            waiting.errback(failure)
        if not self.ready.called:
            self.ready.errback(failure)
            self.ended.callback(None)
            return
        try:
            self.ended.callback(self.report())
        except RuntimeError as e:
            self.ended.errback(e)

    def stop(self):
        """Ask it to stop (SIGTERM); :attr:`ended` fires with its report."""
        if not self.ended.called:
            self.transport.signalProcess("TERM")
        return self.ended


def start_flood_peer(reactor, port, rate, per_inv):
    """Start a flooding peer process against ``127.0.0.1:port``."""
    return spawn_child(reactor, FloodPeerProcess(),
                       FLOODPEER + [str(port), str(rate), str(per_inv)])


def main(argv=None):
    port, rate, per_inv = (int(a) for a in (argv or sys.argv[1:]))
    task.react(lambda reactor: flood(reactor, port, rate, per_inv, sys.stdout))


if __name__ == "__main__":
    main()
