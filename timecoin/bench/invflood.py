"""``inv`` flood benchmark: honest finality on a real node, idle and while a
peer floods it with ``inv`` messages of random txids at the per-peer rate limit.

Run with::

    .venv/bin/python -m timecoin.bench.invflood [--txs 200] [--txids-per-inv 10]

A lone devnet daemon (its own masternode: it finalizes at once) is started on
127.0.0.1 with a fresh data directory. Honest finality is the time from
``sendrawtransaction`` to the answer of ``waitfortransaction`` for a chain of
transfers sent one after the other over the JSON-RPC API. It is measured
idle, then while a second peer (a :class:`~timecoin.p2p.service.PeerNetworkService`
in this process, connected to the daemon's P2P port) sends ``--rate`` ``inv``
messages a second (default: the node's ``rate_limit_tx``, the most it accepts
from one peer), each announcing ``--txids-per-inv`` random txids, and never
answers the ``getdata`` that follow. The ratio of the medians is reported
(goal: at most 2). Bounded: ``--txs`` transactions per phase, ``--timeout``
seconds per transaction; only 127.0.0.1 is used.
"""

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

import treq
from twisted.internet import defer, task

from timecoin.api.client import RpcClient, read_cookie
from timecoin.bench.plan import parse_metrics
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.tx import OutPoint, sign_transfer
from timecoin.p2p import P2PConfig, PeerNetworkService
from timecoin.p2p import messages as m
from timecoin.p2p.framing import encode_frame
from timecoin.testing.peers import FakePeerHost
from timecoin.testing.processes import start_daemon
from timecoin.testing.waiting import wait_until

P2P_LINE = re.compile(rb"peer network listening on .*port=(\d+)")
FEE = 10_000
#: Sends per flood tick (the flood is spread over the second in this many steps).
TICKS_PER_SECOND = 100
WARM_UP_S = 2.0
#: Bytes the flood lets queue to the node before it waits (its own send
#: budget would cut it at ``max_send_buffer``, 8 MiB).
FLOOD_QUEUE = 2**20


class HonestChain:
    """Transfers from dev key 0's genesis output, each spending the last one's change."""

    def __init__(self):
        genesis = make_genesis(DEVNET)
        funding = genesis.txs[0]
        self.key = PrivateKey.devnet(0)
        self.outpoint = OutPoint(funding.txid, 0)
        self.amount = funding.outputs[0].amount

    def next(self):
        change = self.amount - 1000 - FEE
        tx = sign_transfer(self.key, [self.outpoint], [(1000, self.key.key_hash),
                                                       (change, self.key.key_hash)],
                           DEVNET.network_id)
        self.outpoint, self.amount = tx.outpoints()[1], change
        return tx


@defer.inlineCallbacks
def honest_finality(rpc, chain, count, timeout):
    """Milliseconds from send to final answer, for ``count`` transfers in turn."""
    samples = []
    for _ in range(count):
        tx = chain.next()
        start = time.perf_counter()
        txid = yield rpc.call("sendrawtransaction", tx.hex())
        status = yield rpc.call("waitfortransaction", txid, timeout)
        if status["status"] != "finalized":
            raise RuntimeError(f"transaction {txid} is {status['status']} after {timeout} s")
        samples.append((time.perf_counter() - start) * 1000)
    return samples


class InvFlood:
    """Sends ``rate`` ``inv`` messages a second of ``per_inv`` random txids each
    over the one connection of ``network``; counts what it sent.

    Frames are made from a fixed prefix and one ``os.urandom`` call, so the
    flood costs this process (which also times the honest transfers) little.
    While more than ``FLOOD_QUEUE`` bytes wait for the node to read them the
    flood waits rather than queue without bound (which would get it cut by its
    own send budget): it sends as fast as the node reads, up to ``rate``. :attr:`connections` counts
    the connections it used (more than one means it was cut and came back).
    """

    def __init__(self, reactor, network, rate, per_inv):
        self._network = network
        self._per_tick = rate / TICKS_PER_SECOND
        self._owed = 0.0
        self._per_inv = per_inv
        blank = encode_frame(m.Inv((bytes(32),) * per_inv))
        self._prefix = blank[:len(blank) - 32 * per_inv]
        self.messages = 0
        self.txids = 0
        self.waited = 0
        self._peer_ids = set()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = reactor

    @property
    def connections(self):
        return len(self._peer_ids)

    def start(self):
        self._loop.start(1 / TICKS_PER_SECOND)

    def stop(self):
        if self._loop.running:
            self._loop.stop()

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
            peer.send_frame(self._prefix + os.urandom(32 * self._per_inv))
            self.messages += 1
            self.txids += self._per_inv


@defer.inlineCallbacks
def flood_peer(reactor, p2p_port, genesis_hash):
    """A peer network in this process connected to the daemon; fires with it
    once the handshake is done."""
    host = FakePeerHost(DEVNET, genesis_hash)
    config = P2PConfig(ping_interval=3600.0)
    network = PeerNetworkService(reactor, host, None, [f"127.0.0.1:{p2p_port}"], config)
    yield network.startService()
    yield wait_until(reactor, lambda: network.peer_count() == 1)
    return network


@defer.inlineCallbacks
def scrape(reactor, url, names):
    response = yield treq.get(url + "/metrics", persistent=False, reactor=reactor)
    text = yield response.text()
    return parse_metrics(text, names)


def summary(samples):
    ordered = sorted(samples)
    return (statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))])


@defer.inlineCallbacks
def run(reactor, args, out):
    datadir = tempfile.mkdtemp(prefix="timecoin-invflood-")
    daemon = start_daemon(reactor, datadir)
    network = None
    try:
        url = yield daemon.api_url
        port = int((yield daemon.expect(P2P_LINE)).group(1))
        rpc = RpcClient(url, read_cookie(datadir), reactor=reactor)
        chain = HonestChain()
        yield honest_finality(rpc, chain, 10, args.timeout)  # warm-up, not counted
        idle = yield honest_finality(rpc, chain, args.txs, args.timeout)
        network = yield flood_peer(reactor, port, make_genesis(DEVNET).hash)
        rate = args.rate or P2PConfig().rate_limit_tx
        flood = InvFlood(reactor, network, rate, args.txids_per_inv)
        flood.start()
        yield task.deferLater(reactor, WARM_UP_S, lambda: None)
        started, sent_before = time.perf_counter(), flood.messages
        flooded = yield honest_finality(rpc, chain, args.txs, args.timeout)
        offered = (flood.messages - sent_before) / (time.perf_counter() - started)
        flood.stop()
        still_connected = network.peer_count() == 1 and flood.connections == 1
        metrics = yield scrape(reactor, url, ("timecoin_peer_in_flight",
                                              "timecoin_peer_in_flight_refused_total",
                                              "timecoin_peer_inv_txids_dropped_total"))
        yield rpc.close()
        idle_p50, idle_p99 = summary(idle)
        flood_p50, flood_p99 = summary(flooded)
        ratio = flood_p50 / idle_p50
        out.write(f"inv flood: lone devnet daemon on 127.0.0.1, {args.txs} honest transfers "
                  "a phase, sent one after the other\n")
        out.write(f"  idle        finality p50 {idle_p50:7.2f} ms  p99 {idle_p99:7.2f} ms\n")
        out.write(f"  inv flood   finality p50 {flood_p50:7.2f} ms  p99 {flood_p99:7.2f} ms  "
                  f"({offered:,.0f} inv/s of {args.txids_per_inv} random txids, limit "
                  f"{rate}/s; {flood.txids:,} txids sent; flooder "
                  f"{'still connected' if still_connected else 'DISCONNECTED'})\n")
        out.write(f"  node in-flight table {metrics.get('timecoin_peer_in_flight', 0):,.0f} "
                  "entries, requests refused over the per-peer bound "
                  f"{metrics.get('timecoin_peer_in_flight_refused_total', 0):,.0f}, "
                  "txids dropped over the per-peer txid budget "
                  f"{metrics.get('timecoin_peer_inv_txids_dropped_total', 0):,.0f}\n")
        out.write(f"  ratio       {ratio:.2f}  (goal <= 2)\n")
        return ratio <= 2 and still_connected
    finally:
        if network is not None:
            yield network.stopService()
        yield daemon.kill(15)
        shutil.rmtree(datadir, ignore_errors=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m timecoin.bench.invflood",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=200,
                        help="honest transfers per phase (default 200)")
    parser.add_argument("--rate", type=int, default=None,
                        help="inv messages per second (default: the per-peer limit)")
    parser.add_argument("--txids-per-inv", type=int, default=10,
                        help="random txids per inv message (1 to 1000, default 10)")
    parser.add_argument("--timeout", type=int, default=30,
                        help="seconds to wait for each transaction (default 30)")
    args = parser.parse_args(argv)
    if not 1 <= args.txs <= 10_000:
        parser.error("--txs must be from 1 to 10000")
    if not 1 <= args.txids_per_inv <= m.MAX_INV:
        parser.error(f"--txids-per-inv must be from 1 to {m.MAX_INV}")
    if args.rate is not None and not 1 <= args.rate <= P2PConfig().rate_limit_tx:
        parser.error(f"--rate must be from 1 to {P2PConfig().rate_limit_tx} (the limit)")
    if not 1 <= args.timeout <= 600:
        parser.error("--timeout must be from 1 to 600")
    return args


def _main(reactor, args):
    d = run(reactor, args, sys.stdout)
    # Exit status 1 if the goal is missed or the flooder was cut.
    return d.addCallback(lambda passed: None if passed else defer.fail(SystemExit(1)))


def main(argv=None):
    task.react(_main, (parse_args(argv),))


if __name__ == "__main__":
    main()
