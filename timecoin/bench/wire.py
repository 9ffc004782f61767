"""Wire benchmark: timecoin p2p endpoints against a bare Int32StringReceiver pair.

Measures, over 127.0.0.1 in one process and on the same reactor: one-way
messages per second, the median round-trip time of a request/answer, and the
time for a transaction to cross a chain of five nodes. Run with::

    .venv/bin/python -m timecoin.bench.wire [--messages 50000] [--round-trips 2000]

Like for like: both pairs set TCP_NODELAY, send frames of the same size
(the bare pair sends the very frame payloads timecoin puts on the wire) and
stop the clock when the receiver has seen the last message. For timecoin a
message is a real protocol message, fully decoded, rate limited and
dispatched: ``inv`` of one txid (which the receiver already has, so no
``getdata`` follows) for throughput, ``ping``/``pong`` for the round trip.
Each measurement is repeated (``--repeat``), alternating bare and timecoin,
and the medians are compared. Ratios are "timecoin as good as bare": rate
over rate, and bare round trip over timecoin round trip.
"""

import argparse
import hashlib
import statistics
import sys
import time

from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.protocols.basic import Int32StringReceiver

from timecoin.p2p import P2PConfig, PeerNetworkService  # noqa: E402
from timecoin.p2p import messages as m  # noqa: E402
from timecoin.p2p.framing import encode_frame_payload  # noqa: E402
from timecoin.testing.peers import FakePeerHost, make_tx  # noqa: E402

CONFIG = P2PConfig(max_per_ip=100, rate_limit_tx=10**9, rate_limit_ping=10**9,
                   ping_interval=3600.0)


def txids(n):
    return [hashlib.blake2b(b"bench %d" % i, digest_size=32).digest() for i in range(n)]


def wait_until(reactor, predicate):
    """Poll ``predicate`` (set-up only; never inside a timed section)."""
    done = defer.Deferred()

    def poll():
        if predicate():
            loop.stop()
            done.callback(None)

    loop = task.LoopingCall(poll)
    loop.clock = reactor
    loop.start(0.001)
    return done


class Counter:
    """Counts arrivals; ``done`` fires when ``target`` is reached."""

    def __init__(self, target):
        self.target = target
        self.count = 0
        self.done = defer.Deferred()

    def __call__(self, *args):
        self.count += 1
        if self.count == self.target:
            self.done.callback(None)


# -- bare pair -------------------------------------------------------------------
class Bare(Int32StringReceiver):
    MAX_LENGTH = 10 * 1024 * 1024

    def __init__(self, echo, on_message=None):
        self.echo = echo
        self.on_message = on_message

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)

    def stringReceived(self, data):
        if self.echo:
            self.sendString(data)
        elif self.on_message is not None:
            self.on_message(data)


@defer.inlineCallbacks
def bare_pair(reactor, echo, on_message=None):
    server = Bare(echo, None if echo else on_message)
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        protocol.Factory.forProtocol(lambda: server))
    client = Bare(False, on_message if echo else None)
    yield TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
        protocol.Factory.forProtocol(lambda: client))
    return port, client


@defer.inlineCallbacks
def bare_throughput(reactor, n):
    counter = Counter(n)
    port, client = yield bare_pair(reactor, echo=False, on_message=counter)
    frames = [encode_frame_payload(m.Inv((txid,))) for txid in txids(n)]
    start = time.perf_counter()
    for frame in frames:
        client.sendString(frame)
    yield counter.done
    elapsed = time.perf_counter() - start
    client.transport.loseConnection()
    yield port.stopListening()
    return n / elapsed


@defer.inlineCallbacks
def bare_rtt(reactor, n):
    waiting = []
    port, client = yield bare_pair(reactor, echo=True,
                                   on_message=lambda data: waiting.pop().callback(None))
    samples = []
    for i in range(n):
        frame = encode_frame_payload(m.Ping(i))
        d = defer.Deferred()
        waiting.append(d)
        start = time.perf_counter()
        client.sendString(frame)
        yield d
        samples.append((time.perf_counter() - start) * 1000)
    client.transport.loseConnection()
    yield port.stopListening()
    return statistics.median(samples)


# -- timecoin nodes --------------------------------------------------------------
@defer.inlineCallbacks
def start_nodes(reactor, count):
    nodes = []
    for _ in range(count):
        seeds = [f"127.0.0.1:{nodes[-1].listen_port()}"] if nodes else []
        host = FakePeerHost()
        node = PeerNetworkService(reactor, host, "tcp:0:interface=127.0.0.1", seeds, CONFIG)
        host.on_accept.append(node.broadcast_tx)
        yield node.startService()
        nodes.append(node)
    yield wait_until(reactor, lambda: all(
        n.peer_count() == (1 if i in (0, count - 1) else 2) for i, n in enumerate(nodes)))
    return nodes


@defer.inlineCallbacks
def timecoin_throughput(reactor, n):
    a, b = yield start_nodes(reactor, 2)
    counter = Counter(n)
    a.register_handler(m.INV, counter)
    announced = [m.Inv((txid,)) for txid in txids(n)]
    for message in announced:  # the receiver has them: no getdata follows
        a.host.txs[message.txids[0]] = b""
    peer_id = b.peers()[0].peer_id
    start = time.perf_counter()
    for message in announced:
        b.send(peer_id, message)
    yield counter.done
    elapsed = time.perf_counter() - start
    yield defer.gatherResults([a.stopService(), b.stopService()])
    return n / elapsed


@defer.inlineCallbacks
def timecoin_rtt(reactor, n):
    a, b = yield start_nodes(reactor, 2)
    peer = b.get_peer(b.peers()[0].peer_id)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        yield peer.ping()
        samples.append((time.perf_counter() - start) * 1000)
    yield defer.gatherResults([a.stopService(), b.stopService()])
    return statistics.median(samples)


@defer.inlineCallbacks
def chain_relay(reactor, hops, txs):
    nodes = yield start_nodes(reactor, hops)
    arrived = {}
    nodes[-1].host.on_accept.append(lambda tx: arrived.pop(tx.txid).callback(None))
    samples = []
    for i in range(txs):
        tx = make_tx(10_000 + i)
        d = arrived[tx.txid] = defer.Deferred()
        start = time.perf_counter()
        nodes[0].host.receive_tx(tx.raw, "bench")
        yield d
        samples.append((time.perf_counter() - start) * 1000)
    yield defer.gatherResults([n.stopService() for n in nodes])
    return statistics.median(samples), max(samples)


@defer.inlineCallbacks
def main(reactor, argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--relay-txs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    rates = {"bare": [], "timecoin": []}
    rtts = {"bare": [], "timecoin": []}
    for _ in range(args.repeat):
        rates["bare"].append((yield bare_throughput(reactor, args.messages)))
        rates["timecoin"].append((yield timecoin_throughput(reactor, args.messages)))
        rtts["bare"].append((yield bare_rtt(reactor, args.round_trips)))
        rtts["timecoin"].append((yield timecoin_rtt(reactor, args.round_trips)))
    median, worst = yield chain_relay(reactor, 5, args.relay_txs)
    bare_rate, tc_rate = (statistics.median(rates[k]) for k in ("bare", "timecoin"))
    bare_ms, tc_ms = (statistics.median(rtts[k]) for k in ("bare", "timecoin"))
    print(f"messages/s  bare {bare_rate:10.0f}  timecoin {tc_rate:10.0f}  "
          f"ratio {tc_rate / bare_rate:.2f}")
    print(f"rtt ms      bare {bare_ms:10.3f}  timecoin {tc_ms:10.3f}  "
          f"ratio {bare_ms / tc_ms:.2f}")
    print(f"relay across 5 nodes (4 hops): median {median:.2f} ms, max {worst:.2f} ms "
          f"over {args.relay_txs} transactions")


if __name__ == "__main__":
    task.react(main, (sys.argv[1:],))
