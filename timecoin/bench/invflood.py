"""``inv`` flood benchmark: honest finality on a real node, idle and while a
peer floods it with ``inv`` messages of random txids at the per-peer rate limit.

Run with::

    .venv/bin/python -m timecoin.bench.invflood [--txs 200] [--txids-per-inv 10]

A lone devnet daemon (its own masternode: it finalizes at once) is started on
127.0.0.1 with a fresh data directory. Honest finality is the time from
``sendrawtransaction`` to the answer of ``waitfortransaction`` for a chain of
transfers sent one after the other over the JSON-RPC API. It is measured
idle, then while a second peer (:mod:`timecoin.bench.floodpeer`, a process of
its own connected to the daemon's P2P port) sends ``--rate`` ``inv``
messages a second (default: the node's ``rate_limit_tx``, the most it accepts
from one peer), each announcing ``--txids-per-inv`` random txids, and never
answers the ``getdata`` that follow. The flooding peer stays connected
throughout; idle and flood phases alternate ``--rounds`` times (``--txs``
transfers each kind in all), so that other load on a shared machine weighs
on both alike. The ratio of the medians is reported
(goal: at most 2), with the rate of txids the node dropped over the flooder's
txid budget (see :mod:`timecoin.p2p.ratelimit`). Bounded: ``--txs``
transactions per phase, ``--timeout`` seconds per transaction; only
127.0.0.1 is used.
"""

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import namedtuple

import treq
from twisted.internet import defer, task

from timecoin.api.client import RpcClient, read_cookie
from timecoin.bench.floodpeer import start_flood_peer
from timecoin.bench.plan import parse_metrics
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.tx import OutPoint, sign_transfer
from timecoin.p2p import P2PConfig
from timecoin.p2p import messages as m
from timecoin.testing.processes import start_daemon

P2P_LINE = re.compile(rb"peer network listening on .*port=(\d+)")
FEE = 10_000
#: Seconds of flood before the honest transfers of a flood phase start.
WARM_UP_S = 1.0
#: Seconds after the flood pauses before the next idle phase (the node reads
#: what was still queued to it).
SETTLE_S = 0.5
DROPPED = "timecoin_peer_inv_txids_dropped_total"
HOLDS = "timecoin_peer_receive_holds_total"


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
        if status["status"] not in ("finalized", "confirmed"):  # confirmed: in a block already
            raise RuntimeError(f"transaction {txid} is {status['status']} after {timeout} s")
        samples.append((time.perf_counter() - start) * 1000)
    return samples


@defer.inlineCallbacks
def scrape(reactor, url, names):
    response = yield treq.get(url + "/metrics", persistent=False, reactor=reactor)
    text = yield response.text()
    return parse_metrics(text, names)


class FloodResult(namedtuple("FloodResult",
                             "ratio still_connected inv_rate dropped_rate hold_rate")):
    """What one run measured: the ratio of the medians, whether the flooder
    kept its one connection, the ``inv`` messages a second it sent, and a
    second of flood, the txids the node dropped over its txid budget and the
    times it stopped reading the flooder."""

    __slots__ = ()

    @property
    def passed(self):
        return self.ratio <= 2 and self.still_connected


def cpu_seconds(pid):
    """User and system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phase:
    """The samples of one kind of phase (idle or flood) over all rounds, with
    the node's CPU and the wall time they took."""

    def __init__(self):
        self.samples = []
        self.cpu = self.flooder_cpu = self.wall = 0.0

    @defer.inlineCallbacks
    def measure(self, rpc, chain, count, timeout, pid, flooder_pid):
        """Add the finality of ``count`` transfers, and the CPU of the node and
        of the flooding peer meanwhile."""
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        flooder_cpu = cpu_seconds(flooder_pid)
        self.samples += yield honest_finality(rpc, chain, count, timeout)
        self.cpu += cpu_seconds(pid) - cpu
        self.flooder_cpu += cpu_seconds(flooder_pid) - flooder_cpu
        self.wall += time.perf_counter() - wall

    @property
    def cpu_share(self):
        """The node's CPU seconds a second of the phases: its share of a core."""
        return self.cpu / self.wall if self.wall else 0.0


def round_sizes(total, rounds):
    """``total`` transfers split into ``rounds`` near-equal counts."""
    return [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]


def summary(samples):
    ordered = sorted(samples)
    return (statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))])


@defer.inlineCallbacks
def run(reactor, args, out):
    datadir = tempfile.mkdtemp(prefix="timecoin-invflood-")
    daemon = start_daemon(reactor, datadir)
    flooder = None
    try:
        url = yield daemon.api_url
        port = int((yield daemon.expect(P2P_LINE)).group(1))
        rpc = RpcClient(url, read_cookie(datadir), reactor=reactor)
        chain = HonestChain()
        yield honest_finality(rpc, chain, 10, args.timeout)  # warm-up, not counted
        rate = args.rate or P2PConfig().rate_limit_tx
        flooder = start_flood_peer(reactor, port, rate, args.txids_per_inv)
        yield flooder.ready
        idle, flood = Phase(), Phase()
        dropped = holds = 0.0
        for count in round_sizes(args.txs, args.rounds):
            yield idle.measure(rpc, chain, count, args.timeout, daemon.pid, flooder.pid)
            yield flooder.flood(True)
            yield task.deferLater(reactor, WARM_UP_S, lambda: None)
            before = yield scrape(reactor, url, (DROPPED, HOLDS))
            yield flood.measure(rpc, chain, count, args.timeout, daemon.pid, flooder.pid)
            after = yield scrape(reactor, url, (DROPPED, HOLDS))
            dropped += after.get(DROPPED, 0) - before.get(DROPPED, 0)
            holds += after.get(HOLDS, 0) - before.get(HOLDS, 0)
            yield flooder.flood(False)
            yield task.deferLater(reactor, SETTLE_S, lambda: None)
        metrics = yield scrape(reactor, url, ("timecoin_peer_in_flight",
                                              "timecoin_peer_in_flight_refused_total"))
        messages, txids, connections, connected, seconds = yield flooder.stop()
        flooder = None
        still_connected = connected and connections == 1
        yield rpc.close()
        idle_p50, idle_p99 = summary(idle.samples)
        flood_p50, flood_p99 = summary(flood.samples)
        ratio = flood_p50 / idle_p50
        out.write(f"inv flood: lone devnet daemon on 127.0.0.1, {args.txs} honest transfers "
                  f"a phase, sent one after the other, in {args.rounds} rounds of idle "
                  "then flood\n")
        out.write(f"  idle        finality p50 {idle_p50:7.2f} ms  p99 {idle_p99:7.2f} ms  "
                  f"(node CPU {idle.cpu_share:.0%} of a core)\n")
        out.write(f"  inv flood   finality p50 {flood_p50:7.2f} ms  p99 {flood_p99:7.2f} ms  "
                  f"({messages / seconds:,.0f} inv/s of {args.txids_per_inv} "
                  f"random txids sent, offered at {rate}/s (the limit); {txids:,} txids "
                  "sent; flooder "
                  f"{'still connected' if still_connected else 'DISCONNECTED'}; "
                  f"node CPU {flood.cpu_share:.0%} of a core)\n")
        out.write(f"  node in-flight table {metrics.get('timecoin_peer_in_flight', 0):,.0f} "
                  "entries, requests refused over the per-peer bound "
                  f"{metrics.get('timecoin_peer_in_flight_refused_total', 0):,.0f}, "
                  f"txids dropped over the per-peer txid budget {dropped / flood.wall:,.0f}/s, "
                  f"reading held {holds / flood.wall:,.0f} times/s\n")
        out.write(f"  ratio       {ratio:.2f}  (goal <= 2; the flooding process took "
                  f"{flood.flooder_cpu / flood.wall:.0%} of a core; load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")
        return FloodResult(ratio, still_connected, messages / seconds, dropped / flood.wall,
                           holds / flood.wall)
    finally:
        if flooder is not None:
            yield flooder.stop()
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
    parser.add_argument("--rounds", type=int, default=4,
                        help="idle and flood phases alternate this many times, so that "
                             "other load on the machine weighs on both alike (default 4)")
    parser.add_argument("--timeout", type=int, default=30,
                        help="seconds to wait for each transaction (default 30)")
    args = parser.parse_args(argv)
    if not 1 <= args.txs <= 10_000:
        parser.error("--txs must be from 1 to 10000")
    if not 1 <= args.txids_per_inv <= m.MAX_INV:
        parser.error(f"--txids-per-inv must be from 1 to {m.MAX_INV}")
    if args.rate is not None and not 1 <= args.rate <= P2PConfig().rate_limit_tx:
        parser.error(f"--rate must be from 1 to {P2PConfig().rate_limit_tx} (the limit)")
    if not 1 <= args.rounds <= min(50, args.txs):
        parser.error("--rounds must be from 1 to 50, and at most --txs")
    if not 1 <= args.timeout <= 600:
        parser.error("--timeout must be from 1 to 600")
    return args


def _main(reactor, args):
    d = run(reactor, args, sys.stdout)
    # Exit status 1 if the goal is missed or the flooder was cut.
    return d.addCallback(lambda result: None if result.passed else defer.fail(SystemExit(1)))


def main(argv=None):
    task.react(_main, (parse_args(argv),))


if __name__ == "__main__":
    main()
