"""Property tests: random submit/decide/expire/evict/flush sequences keep the ledger sound.

Invariants after every step: total supply = UTXO total + fees of finalized
transactions; no outpoint is spent by two finalized transactions; the
incremental set hash equals one computed from scratch (from the test's model,
and from the database after a flush); the mempool's counters match its content.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support import ManualFinality, PrivateKey, devnet_funding, sync_node, transfer
from timecoin.ledger.muhash import MuHash
from timecoin.ledger.tx import TxRejected
from timecoin.ledger.utxo import utxo_element

KEYS = [PrivateKey.devnet(i) for i in range(4)]


class LedgerMachine(RuleBasedStateMachine):
    case = None  # the TestCase, for cleanups

    def __init__(self):
        super().__init__()
        self.clock = Clock()
        self.finality = ManualFinality()
        self.node = sync_node(self.case, self.clock, self.finality,
                              {("mempool", "max_count"): 4, ("state", "lock_timeout_s"): 20,
                               ("storage", "flush_interval_ms"): 600_000})
        self.node.startService()
        self.supply = self.node.state.total_amount
        self.fees = 0
        # the model: finalized unspent outputs -> (amount, key)
        self.utxos = {}
        for i in range(4):
            key, op, amount = devnet_funding(i)
            self.utxos[op] = (amount, key)
        self.genesis_others = self.node.state.count - 4
        self.spent = set()
        self.model_hash = MuHash.deserialize(self.node.state.muhash.serialize())

    def teardown(self):
        self.node.stopService()

    @rule(data=st.data(), fee=st.integers(300, 50_000), n_out=st.integers(1, 3),
          stale=st.booleans())
    def submit(self, data, fee, n_out, stale):
        pool = sorted(self.utxos) + (sorted(self.spent) if stale else [])
        if not pool:
            return
        op = data.draw(st.sampled_from(pool))
        amount, key = self.utxos.get(op) or (10**8, KEYS[0])
        to = data.draw(st.sampled_from(KEYS))
        share = max(1, (amount - fee) // (n_out + 1))
        tx = transfer(key, [op], [(share, to.key_hash)] * n_out, fee=fee, total=amount)
        d = self.node.submit(tx)
        outcome = []
        d.addCallbacks(outcome.append, lambda f: outcome.append(f.trap(TxRejected)))
        assert outcome, "storage is synchronous: the submission has an outcome"

    @precondition(lambda self: self.finality.started)
    @rule(data=st.data(), accept=st.booleans())
    def decide(self, data, accept):
        txid = data.draw(st.sampled_from(sorted(self.finality.started)))
        entry = self.node.mempool.get(txid)
        tx = entry.tx
        self.finality.decide(txid, accept)
        if accept:
            for txin in tx.inputs:
                assert txin.prevout not in self.spent, "an outpoint was spent twice"
                amount, key = self.utxos.pop(txin.prevout)
                self.spent.add(txin.prevout)
                self.model_hash.remove(utxo_element(txin.prevout, amount, key.key_hash))
            for op, out in zip(tx.outpoints(), tx.outputs, strict=True):
                key = next(k for k in KEYS if k.key_hash == out.key_hash)
                self.utxos[op] = (out.amount, key)
                self.model_hash.add(utxo_element(op, out.amount, out.key_hash))
            self.fees += entry.fee

    @rule(seconds=st.floats(0, 30))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @rule()
    def flush(self):
        self.node.flush()
        summary = []
        self.node.storage.compute_set_summary().addCallback(summary.append)
        digest, count, total = summary[0]
        assert self.node.flusher.applied_seq == self.node.journal.committed_seq
        assert (digest, count, total) == (self.node.state.set_hash(), self.node.state.count,
                                          self.node.state.total_amount)

    @invariant()
    def supply_is_conserved(self):
        assert self.node.state.total_amount + self.fees == self.supply

    @invariant()
    def set_hash_matches_model(self):
        assert self.node.state.set_hash() == self.model_hash.hexdigest()
        assert self.node.state.count == len(self.utxos) + self.genesis_others

    @invariant()
    def mempool_counters(self):
        pool = self.node.mempool
        entries = [pool.get(t) for t in pool.txids()]
        assert pool.size == len(entries) <= pool.max_count
        assert pool.bytes == sum(e.tx.size for e in entries)
        assert set(pool.txids()) == set(self.finality.started)


class LedgerPropertyTests(unittest.TestCase):
    def test_random_sequences_keep_the_invariants(self):
        LedgerMachine.case = self
        runner = LedgerMachine.TestCase()
        runner.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
        runner.runTest()
