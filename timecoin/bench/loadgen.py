"""Shared helpers of the ledger benchmarks: pre-signed devnet transactions and a
devnet daemon run as a child process on 127.0.0.1.

Devnet's genesis gives dev keys 0..99 one output of 100,000 TIME each. A
*fan-out* spends one of them into up to 500 equal outputs of the same key; a
*spend* moves one fan-out output, less a fee, to the next dev key. Every
transaction is signed before anything is timed.
"""

import os
import shutil
import signal
import tempfile

from twisted.internet import defer

from timecoin.api.client import RpcClient, read_cookie  # noqa: E402
from timecoin.bench.plan import ACCEPTED  # noqa: E402
from timecoin.ledger.genesis import DEVNET_FUNDED_KEYS, make_genesis  # noqa: E402
from timecoin.ledger.keys import PrivateKey  # noqa: E402
from timecoin.ledger.networks import DEVNET  # noqa: E402
from timecoin.ledger.tx import MAX_OUTPUTS, OutPoint, sign_transfer  # noqa: E402
from timecoin.testing.processes import start_daemon  # noqa: E402

FEE = 10_000
FANOUT_FEE = 100_000


class Funds:
    """Pre-signed fan-outs and spends from the dev keys' genesis outputs."""

    def __init__(self, n_spends, first_key=0, per_fanout=MAX_OUTPUTS):
        genesis = make_genesis(DEVNET)
        gtx = genesis.txs[0]
        n_fanouts = -(-n_spends // per_fanout)
        if first_key + n_fanouts > DEVNET_FUNDED_KEYS:
            raise ValueError(f"{n_spends} spends need more than {DEVNET_FUNDED_KEYS} dev keys")
        self.keys = [PrivateKey.devnet(i) for i in range(DEVNET_FUNDED_KEYS)]
        self.fanouts, self.spends = [], []
        for f in range(n_fanouts):
            index = first_key + f
            key = self.keys[index]
            total = gtx.outputs[index].amount
            count = min(per_fanout, n_spends - f * per_fanout)
            each = (total - FANOUT_FEE) // count
            fan = sign_transfer(key, [OutPoint(gtx.txid, index)],
                                [(each, key.key_hash)] * count, DEVNET.network_id)
            self.fanouts.append(fan)
            dest = self.keys[(index + 1) % DEVNET_FUNDED_KEYS].key_hash
            for vout in range(count):
                self.spends.append(sign_transfer(key, [OutPoint(fan.txid, vout)],
                                                 [(each - FEE, dest)], DEVNET.network_id))


class Daemon:
    """``twistd -n timecoin --network devnet`` on 127.0.0.1 in a temporary datadir."""

    def __init__(self, reactor, config_text=""):
        self.reactor = reactor
        self.datadir = tempfile.mkdtemp(prefix="timecoin-bench-")
        if config_text:
            with open(os.path.join(self.datadir, "timecoin.toml"), "w") as f:
                f.write(config_text)
        self.proc = None
        self.client = None
        self.pool = None

    @defer.inlineCallbacks
    def start(self):
        from twisted.web.client import HTTPConnectionPool

        self.proc = start_daemon(self.reactor, self.datadir)
        url = yield self.proc.api_url
        self.url = url
        self.pool = HTTPConnectionPool(self.reactor, persistent=True)
        self.pool.maxPersistentPerHost = 32
        self.client = RpcClient(url, read_cookie(self.datadir), reactor=self.reactor,
                                pool=self.pool, timeout=120)
        return self

    @defer.inlineCallbacks
    def stop(self):
        """Stop gracefully (SIGTERM), killing it if it has not exited in 20 s."""
        if self.pool is not None:
            yield self.pool.closeCachedConnections()
        if self.proc is not None and self.proc.exit_code is None:
            timer = self.reactor.callLater(20, self.proc.kill)
            yield self.proc.kill(signal.SIGTERM)
            if timer.active():
                timer.cancel()
        shutil.rmtree(self.datadir, ignore_errors=True)


def rpc_ok(results):
    """Raise the first error among a batch's results."""
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


@defer.inlineCallbacks
def submit_and_wait(client, txs, timeout_s=60):
    """Send ``txs`` in one batch and wait until each is final; their statuses."""
    yield client.batch([("sendrawtransaction", [tx.hex()]) for tx in txs]).addCallback(rpc_ok)
    statuses = yield client.batch(
        [("waitfortransaction", [tx.txid.hex(), timeout_s]) for tx in txs]).addCallback(rpc_ok)
    bad = [s for s in statuses if s["status"] not in ACCEPTED]
    if bad:
        raise RuntimeError(f"{len(bad)} transactions not finalized: {bad[0]}")
    return statuses
