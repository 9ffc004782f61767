"""Safety with real ``twistd`` masternodes on 127.0.0.1: a split brain finalizes
nothing, a node killed and restarted under load rejoins in agreement, and a
frozen node does not stop finality at the other three."""

import signal
from collections import Counter

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.devnet_processes import ProcessDevnet
from tests.support import ACCEPTED, devnet_funding, make_datadir, transfer
from timecoin.ledger.keys import PrivateKey
from timecoin.testing.waiting import wait_until

FINAL = ("finalized", "rejected", "confirmed")


def _hex(tx):
    return tx.raw.hex()


def _pay(index, to_index, amount=1_000_000):
    """A payment from dev key ``index``'s genesis output to dev key ``to_index``."""
    key, outpoint, total = devnet_funding(index)
    return transfer(key, [outpoint], [(amount, PrivateKey.devnet(to_index).key_hash)],
                    total=total)


@defer.inlineCallbacks
def _fan_out(node, index, count):
    """Split dev key ``index``'s genesis output into ``count`` outputs; fire with them."""
    key, outpoint, total = devnet_funding(index)
    share = (total - 10_000 * count) // count
    fan = transfer(key, [outpoint], [(share, key.key_hash)] * count)
    yield node.rpc.call("sendrawtransaction", _hex(fan))
    status = yield node.rpc.call("waitfortransaction", fan.txid.hex(), 60)
    assert status["status"] in ACCEPTED, status
    return key, [(fan.txid, i, share) for i in range(count)]


def _spends(key, outputs, to_index=70):
    from timecoin.ledger.tx import OutPoint
    dest = PrivateKey.devnet(to_index).key_hash
    return [transfer(key, [OutPoint(txid, vout)], [(amount - 10_000, dest)], fee=10_000)
            for txid, vout, amount in outputs]


@defer.inlineCallbacks
def _statuses(node, txids):
    """``{txid: status}``; ``"stalled"`` for a pending one whose set is stalled."""
    out = {}
    for txid in txids:
        try:
            result = yield node.rpc.call("gettransaction", txid.hex())
            stalled = result["status"] == "pending" and (result.get("reason") or "").startswith(
                "stalled")
            # Nodes agree whether or not their next block has confirmed it yet.
            accepted = result["status"] in ACCEPTED
            out[txid] = "stalled" if stalled else "finalized" if accepted else result["status"]
        except Exception:
            out[txid] = None
    return out


@defer.inlineCallbacks
def _agree(testcase, devnet, txids, timeout=90, expect=None):
    """Wait until every running node reports the same final status for each txid
    (exactly ``expect``'s, ``{txid: status}``, if given; ``confirmed`` counts as
    ``finalized``) and the same UTXO set hash at the same block height; fail
    with what differs."""
    last = {}
    deadline = reactor.seconds() + timeout
    while True:
        views = []
        for node in devnet.running():
            statuses = yield _statuses(node, txids)
            views.append((node.index, statuses))
        # The sets, read in one quick pass: equal at equal heights.
        sets = []
        for node in devnet.running():
            height = yield node.rpc.call("getblockcount")
            info = yield node.rpc.call("gettxoutsetinfo")
            sets.append(f"{height}:{info['hash']}")
        views = [(index, st, h) for (index, st), h in zip(views, sets, strict=True)]
        last = views
        if expect is None:
            settled = all(s in FINAL for _, st, _ in views for s in st.values())
        else:
            settled = all(st == expect for _, st, _ in views)
        same = len({tuple(sorted(st.items())) for _, st, _ in views}) == 1
        hashes = {h for _, _, h in views}
        if settled and same and len(hashes) == 1:
            return views[0][1]
        if reactor.seconds() > deadline:
            summary = [(index, sorted(Counter(st.values()).items(), key=str), h[:24])
                       for index, st, h in last]
            stopped = [(n.index, n.process and n.process.exit_code, n.log_tail(8))
                       for n in devnet.nodes if not n.running]
            testcase.fail(f"nodes did not agree within {timeout}s: {summary}; "
                          f"not running: {stopped}")
        yield task.deferLater(reactor, 0.5, lambda: None)


class SafetyTests(unittest.TestCase):
    timeout = 300

    def setUp(self):
        self.devnet = ProcessDevnet(reactor, make_datadir(self), 4)
        self.addCleanup(self.devnet.stop)

    @defer.inlineCallbacks
    def test_two_of_four_finalize_nothing_and_one_down_still_finalizes(self):
        devnet = self.devnet
        n0, n1, n2, n3 = devnet.nodes
        yield devnet.start()
        yield n2.kill()
        yield n3.kill()
        a, b = _pay(20, 60), _pay(20, 61)  # the same coin, to two payees
        yield n0.rpc.call("sendrawtransaction", _hex(a))
        status = yield n0.rpc.call("waitfortransaction", a.txid.hex(), 8)
        self.assertEqual(status["status"], "pending", "two of four finalized a payment")
        yield n0.kill()
        yield n1.kill()
        yield devnet.start([2, 3])
        yield n2.rpc.call("sendrawtransaction", _hex(b))
        status = yield n2.rpc.call("waitfortransaction", b.txid.hex(), 8)
        self.assertEqual(status["status"], "pending", "two of four finalized the double spend")
        yield devnet.start([0, 1])
        # A survived the kill on nodes 0 and 1 (saved when it entered), each node
        # votes only for the member it saved first: two against two, neither side
        # reaches alpha, and both stay pending (stalled) on every node.
        yield _agree(self, devnet, [a.txid, b.txid], timeout=120,
                     expect={a.txid: "stalled", b.txid: "stalled"})
        yield n3.kill()
        c = _pay(21, 62)
        yield n0.rpc.call("sendrawtransaction", _hex(c))
        status = yield n0.rpc.call("waitfortransaction", c.txid.hex(), 30)
        self.assertIn(status["status"], ACCEPTED, "three of four must finalize")
        yield _agree(self, devnet, [a.txid, b.txid, c.txid],
                     expect={a.txid: "stalled", b.txid: "stalled", c.txid: "finalized"})

    @defer.inlineCallbacks
    def test_a_node_killed_and_restarted_under_load_rejoins_in_agreement(self):
        devnet = self.devnet
        n0, n1 = devnet.nodes[:2]
        yield devnet.start()
        key, outputs = yield _fan_out(n0, 30, 400)
        spends = _spends(key, outputs)
        for i in range(0, len(spends), 20):  # bursts of 20 concurrent submissions
            if i == 120:
                yield n1.kill()
            if i == 260:
                yield n1.start()
            answers = yield defer.DeferredList(
                [n0.rpc.call("sendrawtransaction", _hex(tx)) for tx in spends[i:i + 20]],
                consumeErrors=True)
            for ok, value in answers:  # back-pressure or a refusal: both end as statuses too
                self.assertTrue(ok or "internal" not in str(value.value).lower(), value)
            yield task.deferLater(reactor, 0.05, lambda: None)
        yield wait_until(reactor, lambda: n1.running, timeout=10)
        yield _agree(self, devnet, [tx.txid for tx in spends], timeout=120)

    @defer.inlineCallbacks
    def test_a_frozen_masternode_does_not_stop_finality(self):
        devnet = self.devnet
        n0, n3 = devnet.nodes[0], devnet.nodes[3]
        yield devnet.start()
        key, outputs = yield _fan_out(n0, 31, 60)
        spends = _spends(key, outputs)
        n3.signal(signal.SIGSTOP)
        frozen_at = reactor.seconds()
        try:
            times = []
            for tx in spends:
                yield n0.rpc.call("sendrawtransaction", _hex(tx))
                status = yield n0.rpc.call("waitfortransaction", tx.txid.hex(), 10)
                self.assertIn(status["status"], ACCEPTED, status)
                times.append(status["finality_ms"])
            self.assertLess(reactor.seconds() - frozen_at, 20, "the spends outlasted the freeze")
            self.assertLess(max(times), 5000, times)
            yield task.deferLater(reactor, max(0, 20 - (reactor.seconds() - frozen_at)),
                                  lambda: None)
        finally:
            n3.signal(signal.SIGCONT)
        yield _agree(self, devnet, [tx.txid for tx in spends])
