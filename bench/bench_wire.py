"""Wire benchmark: timecoin p2p endpoints against a bare Int32StringReceiver pair.

Measures, over 127.0.0.1 in one process: one-way messages per second, the
round-trip time of a request/answer, and the time for a transaction to cross
a chain of five nodes. Bounded in count; run with::

    .venv/bin/python bench/bench_wire.py [--messages 20000] [--round-trips 500]
"""

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.protocols.basic import Int32StringReceiver

sys.path.insert(0, ".")
from tests.p2p_fakes import FakePeerHost, make_tx  # noqa: E402
from timecoin.p2p import P2PConfig, PeerNetworkService  # noqa: E402
from timecoin.p2p import messages as m  # noqa: E402

BENCH_KIND = 0x7F00
PAYLOAD = b"x" * 32
CONFIG = P2PConfig(max_per_ip=100, rate_limit_tx=10**9, ping_interval=3600.0)


@m.register_message
@dataclass(frozen=True)
class BenchMessage:
    """A bench-only message kind: an opaque payload."""

    KIND = BENCH_KIND
    data: bytes

    def encode(self, w):
        w.varbytes(self.data, 1024)

    @classmethod
    def decode(cls, r):
        return cls(r.varbytes(1024))


def wait_until(reactor, predicate):
    done = defer.Deferred()

    def poll():
        if predicate():
            loop.stop()
            done.callback(None)

    loop = task.LoopingCall(poll)
    loop.clock = reactor
    loop.start(0.001)
    return done


# -- bare pair -------------------------------------------------------------------
class Bare(Int32StringReceiver):
    MAX_LENGTH = 10 * 1024 * 1024

    def __init__(self, echo):
        self.echo = echo
        self.count = 0
        self.waiting = None

    def stringReceived(self, data):
        self.count += 1
        if self.echo:
            self.sendString(data)
        elif self.waiting is not None:
            waiting, self.waiting = self.waiting, None
            waiting.callback(None)


@defer.inlineCallbacks
def bare_pair(reactor, echo):
    server = Bare(echo)
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        protocol.Factory.forProtocol(lambda: server))
    client = Bare(False)
    yield TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
        protocol.Factory.forProtocol(lambda: client))
    return port, client, server


@defer.inlineCallbacks
def bare_throughput(reactor, n):
    port, client, server = yield bare_pair(reactor, echo=False)
    start = time.perf_counter()
    for _ in range(n):
        client.sendString(PAYLOAD)
    yield wait_until(reactor, lambda: server.count >= n)
    elapsed = time.perf_counter() - start
    client.transport.loseConnection()
    yield port.stopListening()
    return n / elapsed


@defer.inlineCallbacks
def bare_rtt(reactor, n):
    port, client, server = yield bare_pair(reactor, echo=True)
    samples = []
    for _ in range(n):
        client.waiting = defer.Deferred()
        start = time.perf_counter()
        client.sendString(PAYLOAD)
        yield client.waiting
        samples.append((time.perf_counter() - start) * 1000)
    client.transport.loseConnection()
    yield port.stopListening()
    return statistics.median(samples)


# -- timecoin pair ---------------------------------------------------------------
@defer.inlineCallbacks
def start_nodes(reactor, count, chain=True):
    nodes = []
    for _ in range(count):
        seeds = [f"127.0.0.1:{nodes[-1].listen_port()}"] if nodes and chain else []
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
    received = []
    a.register_handler(BENCH_KIND, lambda pid, msg: received.append(1))
    peer_id = b.peers()[0].peer_id
    message = BenchMessage(PAYLOAD)
    start = time.perf_counter()
    for _ in range(n):
        b.send(peer_id, message)
    yield wait_until(reactor, lambda: len(received) >= n)
    elapsed = time.perf_counter() - start
    yield defer.gatherResults([a.stopService(), b.stopService()])
    return n / elapsed


@defer.inlineCallbacks
def timecoin_rtt(reactor, n):
    a, b = yield start_nodes(reactor, 2)
    a.register_handler(BENCH_KIND, lambda pid, msg: a.send(pid, msg))
    waiting = []
    b.register_handler(BENCH_KIND, lambda pid, msg: waiting.pop().callback(None))
    peer_id = b.peers()[0].peer_id
    samples = []
    for _ in range(n):
        d = defer.Deferred()
        waiting.append(d)
        start = time.perf_counter()
        b.send(peer_id, BenchMessage(PAYLOAD))
        yield d
        samples.append((time.perf_counter() - start) * 1000)
    yield defer.gatherResults([a.stopService(), b.stopService()])
    return statistics.median(samples)


@defer.inlineCallbacks
def chain_relay(reactor, hops, txs):
    nodes = yield start_nodes(reactor, hops)
    samples = []
    for i in range(txs):
        tx = make_tx(10_000 + i)
        start = time.perf_counter()
        nodes[0].host.receive_tx(tx.raw, "bench")
        yield wait_until(reactor, lambda tx=tx: nodes[-1].host.have_tx(tx.txid))
        samples.append((time.perf_counter() - start) * 1000)
    yield defer.gatherResults([n.stopService() for n in nodes])
    return statistics.median(samples), max(samples)


@defer.inlineCallbacks
def main(reactor, argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--relay-txs", type=int, default=20)
    args = parser.parse_args(argv)
    bare_rate = yield bare_throughput(reactor, args.messages)
    tc_rate = yield timecoin_throughput(reactor, args.messages)
    bare_ms = yield bare_rtt(reactor, args.round_trips)
    tc_ms = yield timecoin_rtt(reactor, args.round_trips)
    median, worst = yield chain_relay(reactor, 5, args.relay_txs)
    print(f"messages/s  bare {bare_rate:10.0f}  timecoin {tc_rate:10.0f}  "
          f"ratio {tc_rate / bare_rate:.2f}")
    print(f"rtt ms      bare {bare_ms:10.3f}  timecoin {tc_ms:10.3f}  "
          f"ratio {tc_ms / bare_ms:.2f}")
    print(f"relay across 5 nodes (4 hops): median {median:.2f} ms, max {worst:.2f} ms "
          f"over {args.relay_txs} transactions")


if __name__ == "__main__":
    task.react(main, (sys.argv[1:],))
