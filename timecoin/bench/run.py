"""The load engine of ``timecoin bench``: preparing funds, sending at a steady
rate and watching each transaction until it is final.

Every load transaction is signed before the clock starts. Sending: every
``tick`` seconds the transactions due by then (``rate × elapsed``) are queued
round-robin on the senders; a sender posts its queue as one JSON-RPC batch of
``sendrawtransaction`` calls, with one batch in flight at a time (a node that
cannot keep up therefore slows the offered load instead of piling up
requests). Watching: with a :class:`~timecoin.bench.watch.FinalityWatcher`,
the finality events each node pushes for the transactions sent to it; polling
(``gettransaction`` in batches every ``poll`` seconds) then only covers
transactions that have waited longer than ``POLL_AFTER_S`` (an event could be
lost with a connection). Without a watcher, every outstanding transaction is
polled.
"""

import collections
import resource

import treq
from twisted.internet import defer, task

from timecoin.api.client import NOT_FOUND, RpcClient, RpcClientError
from timecoin.bench.plan import (
    ACCEPTED,
    FANOUT_FEE,
    FIRST_KEY,
    Coin,
    block_handler_cpu,
    build_fanouts,
    due,
    parse_metrics,
    sign_loads,
)
from timecoin.cli.registry import CommandError
from timecoin.ledger.genesis import DEVNET_FUNDED_KEYS
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.tx import OutPoint

MAX_BATCH = 1000
SEND_BATCH = 500
CPU = "timecoin_process_cpu_seconds_total"
RSS = "timecoin_process_peak_rss_bytes"
HEIGHT = "timecoin_block_height"
#: The scraped sample holding :func:`~timecoin.bench.plan.block_handler_cpu`.
BLOCK_CPU = "block_handler_cpu_s"
#: With finality events, poll only transactions outstanding this long.
POLL_AFTER_S = 2.0


def client_cpu_seconds():
    """CPU seconds used by this process so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@defer.inlineCallbacks
def scrape(reactor, url):
    """CPU seconds and peak RSS of the node at ``url`` (``{}`` if unavailable)."""
    try:
        response = yield treq.get(url.rstrip("/") + "/metrics", persistent=False, timeout=10,
                                  reactor=reactor)
        text = yield response.text()
    except Exception:
        return {}
    found = parse_metrics(text, (CPU, RSS, HEIGHT))
    block_cpu = block_handler_cpu(text)
    if block_cpu is not None:
        found[BLOCK_CPU] = block_cpu
    return found


def _check(results, what):
    for r in results:
        if isinstance(r, Exception):
            raise CommandError(f"{what}: {r}")
    return results


@defer.inlineCallbacks
def find_coins(client, network_id, first_key=FIRST_KEY):
    """The largest unspent output of each development key from ``first_key`` on."""
    keys = [PrivateKey.devnet(i) for i in range(first_key, DEVNET_FUNDED_KEYS)]
    rows = yield client.batch([("listunspent", [k.address(network_id)]) for k in keys])
    _check(rows, "listunspent")
    coins = []
    for key, unspent in zip(keys, rows, strict=True):
        usable = [u for u in unspent if u["status"] == "unspent" and u["amount"] > FANOUT_FEE]
        if usable:
            best = max(usable, key=lambda u: u["amount"])
            coins.append(Coin(key, OutPoint(bytes.fromhex(best["txid"]), best["vout"]),
                              best["amount"]))
    coins.sort(key=lambda c: -c.amount)
    return coins


@defer.inlineCallbacks
def submit_final(clients, txs, timeout_s=120):
    """Send ``txs`` (spread over ``clients``) and wait until every one is finalized."""
    for start in range(0, len(txs), MAX_BATCH):
        chunk = txs[start:start + MAX_BATCH]
        sends = [clients[i % len(clients)].batch([("sendrawtransaction", [tx.hex()])])
                 for i, tx in enumerate(chunk)]
        for results in (yield defer.gatherResults(sends, consumeErrors=True)):
            _check(results, "fan-out refused")
        waits = yield clients[0].batch([("waitfortransaction", [tx.txid.hex(), timeout_s])
                                        for tx in chunk], timeout=timeout_s + 30)
        _check(waits, "fan-out")
        bad = [w for w in waits if w["status"] not in ACCEPTED]
        if bad:
            raise CommandError(f"{len(bad)} fan-out transactions not finalized "
                               f"(e.g. {bad[0]['txid']}: {bad[0]['status']})")


@defer.inlineCallbacks
def prepare(clients, count, network_id, first_key=FIRST_KEY):
    """Fan out the development keys' funds and sign ``count`` load transactions.

    Fires with ``(loads, fanout_count)``."""
    coins = yield find_coins(clients[0], network_id, first_key)
    try:
        levels, outputs = build_fanouts(coins, count, network_id)
    except ValueError as e:
        raise CommandError(f"cannot prepare {count} transactions: {e}") from None
    for level in levels:
        yield submit_final(clients, level)
    return sign_loads(outputs, network_id), sum(len(level) for level in levels)


class Sender:
    """One sending client: a queue of transaction indexes and one node."""

    def __init__(self, run, client, node):
        self.run, self.client, self.node = run, client, node
        self.queue = collections.deque()
        self.busy = False

    def pump(self):
        if self.busy or not self.queue:
            return
        batch = [self.queue.popleft() for _ in range(min(SEND_BATCH, len(self.queue)))]
        run = self.run
        now = run.reactor.seconds()
        for i in batch:
            run.sent_at[i] = now
        self.busy = True
        d = self.client.batch([("sendrawtransaction", [run.hexes[i]]) for i in batch])
        d.addCallbacks(self._sent, self._failed, (batch,), errbackArgs=(batch,))
        d.addBoth(self._idle)

    def _sent(self, results, batch):
        outstanding = self.run.outstanding[self.node]
        for i, r in zip(batch, results, strict=True):
            if isinstance(r, Exception):
                self.run.reject(i, f"refused: {r.message}")
            elif self.run.status[i] is None:  # its finality event may have come first
                outstanding[i] = None

    def _failed(self, failure, batch):
        failure.trap(RpcClientError)
        for i in batch:
            self.run.fail(i, f"send: {failure.getErrorMessage()}")

    def _idle(self, _):
        self.busy = False
        self.run.check_done()


class LoadRun:
    """One timed run: send ``txs`` at ``rate`` and record when each is final.

    ``clients[n]`` talks to node ``n`` (``urls[n]`` for ``/metrics``);
    ``senders`` more clients, from ``make_client(n)``, spread over the nodes.
    The measured window is ``[warmup, warmup + duration)`` after the start.
    """

    def __init__(self, reactor, clients, urls, txs, rate, *, senders=1, make_client=None,
                 warmup=0.0, duration=1.0, tick=0.01, poll=0.02, drain=30.0, progress=None):
        self.reactor, self.clients, self.urls = reactor, clients, urls
        self.hexes = [tx.hex() for tx in txs]
        self.txids = [tx.txid.hex() for tx in txs]
        self.rate, self.warmup, self.duration = rate, warmup, duration
        self.tick, self.poll, self.drain = tick, poll, drain
        self.progress = progress
        n = len(self.hexes)
        self.sent_at, self.final_at = [None] * n, [None] * n
        self.node_ms, self.status = [None] * n, [None] * n
        self.outstanding = [dict() for _ in clients]
        self.polling = [False] * len(clients)
        make_client = make_client or (lambda node: clients[node])
        self.senders = [Sender(self, make_client(s % len(clients)), s % len(clients))
                        for s in range(max(1, senders))]
        self.queued = 0
        self.reasons = collections.Counter()
        self.errors = collections.Counter()
        self.samples = {}
        self._pending_scrapes = []
        self.done = defer.Deferred()
        self._finishing = False
        self.t0 = None
        self.finished_at = None
        self.index = {txid: i for i, txid in enumerate(self.txids)}
        self.target = [self.senders[i % len(self.senders)].node for i in range(n)]
        self.watching = False

    # -- outcomes ----------------------------------------------------------------

    def reject(self, i, reason):
        self.status[i] = "rejected"
        self.reasons[reason] += 1

    def fail(self, i, reason):
        self.status[i] = "error"
        self.errors[reason] += 1

    def finality_event(self, node, txid, accepted, reason, finality_ms):
        """A node pushed its decision on ``txid`` (see FinalityWatcher)."""
        i = self.index.get(txid)
        if i is None or self.target[i] != node or self.final_at[i] is not None:
            return
        if self.status[i] not in (None, "pending"):
            return
        self.outstanding[node].pop(i, None)
        if accepted:
            self.final_at[i], self.node_ms[i], self.status[i] = (
                self.reactor.seconds(), finality_ms, "finalized")
        else:
            self.reject(i, f"rejected after admission: {reason or 'no reason given'}")

    def counts(self):
        sent = sum(1 for t in self.sent_at if t is not None)
        final = sum(1 for t in self.final_at if t is not None)
        return sent, final

    # -- the run -----------------------------------------------------------------

    def start(self):
        """Start sending and watching; ``self.done`` fires when the run is over."""
        self.t0 = self.reactor.seconds()
        self.load_end = self.t0 + self.warmup + self.duration
        self._scrape("start")
        if self.warmup > 0:
            self.reactor.callLater(self.warmup, self._scrape, "window_start")
        self._window_end = self.reactor.callLater(self.warmup + self.duration, self._scrape,
                                                  "window_end")
        loops = [(self._send_tick, self.tick), (self._poll_tick, self.poll)]
        if self.progress is not None:
            loops.append((self._show, 0.25))
        self._loops = []
        for fn, interval in loops:
            loop = task.LoopingCall(fn)
            loop.clock = self.reactor
            loop.start(interval, now=True)
            self._loops.append(loop)
        return self.done

    def _scrape(self, when):
        ds = [scrape(self.reactor, url) for url in self.urls]
        sample = {"at": self.reactor.seconds(), "client_cpu": client_cpu_seconds()}

        def got(nodes):
            sample["nodes"] = nodes
            self.samples[when] = sample
            if when == "start" and self.warmup <= 0:
                self.samples["window_start"] = sample
        d = defer.gatherResults(ds).addCallback(got)
        self._pending_scrapes.append(d)
        return d

    def _send_tick(self):
        now = self.reactor.seconds()
        target = due(self.rate, now - self.t0, len(self.hexes))
        senders = self.senders
        for i in range(self.queued, target):
            senders[i % len(senders)].queue.append(i)
        self.queued = max(self.queued, target)
        for sender in senders:
            sender.pump()

    def _poll_tick(self):
        old = self.reactor.seconds() - POLL_AFTER_S
        for node, waiting in enumerate(self.outstanding):
            if self.polling[node] or not waiting:
                continue
            if self.watching:
                batch = [i for i in _first(waiting, MAX_BATCH) if self.sent_at[i] < old]
                if not batch:
                    continue
            else:
                batch = list(_first(waiting, MAX_BATCH))
            self.polling[node] = True
            d = self.clients[node].batch([("gettransaction", [self.txids[i]]) for i in batch])
            d.addCallbacks(self._polled, self._poll_failed, (node, batch), None, (node,))
            d.addBoth(self._poll_idle, node)
        self.check_done()

    def _polled(self, results, node, batch):
        now = self.reactor.seconds()
        waiting = self.outstanding[node]
        for i, r in zip(batch, results, strict=True):
            if isinstance(r, Exception):
                if getattr(r, "code", None) != NOT_FOUND:
                    self.errors[f"gettransaction: {r}"] += 1
                continue
            status = r.get("status")
            if status in ACCEPTED:
                self.final_at[i], self.node_ms[i], self.status[i] = now, r.get("finality_ms"), \
                    "finalized"
                del waiting[i]
            elif status == "rejected":
                self.reject(i, "rejected after admission: "
                               f"{r.get('reason') or 'no reason given'}")
                del waiting[i]

    def _poll_failed(self, failure, node):
        failure.trap(RpcClientError)
        self.errors[f"gettransaction: {failure.getErrorMessage()}"] += 1

    def _poll_idle(self, _, node):
        self.polling[node] = False

    def check_done(self):
        if self.done.called or self.t0 is None:
            return
        now = self.reactor.seconds()
        sending = self.queued < len(self.hexes) or any(
            s.busy or s.queue for s in self.senders)
        waiting = any(self.outstanding)
        if (not sending and not waiting) or now > self.load_end + self.drain:
            self._finish()

    def _finish(self):
        if not self._finishing:
            self._finishing = True
            self._finish_async().chainDeferred(self.done)

    @defer.inlineCallbacks
    def _finish_async(self):
        for loop in self._loops:
            loop.stop()
        self.finished_at = self.reactor.seconds()
        while self._window_end.active():
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        yield defer.gatherResults(self._pending_scrapes)
        yield self._scrape("end")
        for waiting in self.outstanding:
            for i in waiting:
                self.fail(i, "not final when the run ended")
        return self

    def _show(self):
        sent, final = self.counts()
        elapsed = self.reactor.seconds() - self.t0
        span = self.warmup + self.duration
        filled = int(20 * min(1.0, elapsed / span)) if span > 0 else 20
        self.progress(f"\r[{'#' * filled}{' ' * (20 - filled)}] {elapsed:5.1f}s "
                      f"sent {sent} finalized {final} ")


def _first(mapping, n):
    for count, key in enumerate(mapping):
        if count >= n:
            return
        yield key


def make_clients(reactor, targets, timeout=60):
    """One :class:`RpcClient` per ``(url, auth)`` target."""
    return [RpcClient(url, auth, reactor=reactor, timeout=timeout) for url, auth in targets]
