"""Certified blocks apply on their own, on the whole-node simulator: a node
away for 100 blocks catches up by blocks alone (no journal catch-up)."""

from twisted.trial import unittest

from timecoin.ledger.networks import COIN, DEVNET
from timecoin.ledger.tx import OutPoint, sign_transfer
from timecoin.p2p import messages as m
from timecoin.sim import scenario
from timecoin.sim.byzantine import KindFilter, force_finalized

from .test_sim_blocks import assert_one_chain, heights, make_cluster


def chained_spend(parent, key, amount=COIN // 2):
    """A transfer of ``amount`` from ``parent``'s change output (output 1, ``key``'s)."""
    change = parent.outputs[1].amount - amount - scenario.FEE
    return sign_transfer(key, [OutPoint(parent.txid, 1)],
                         [(amount, scenario.DESTINATION.key_hash), (change, key.key_hash)],
                         DEVNET.network_id)


class CatchUpByBlocksTests(unittest.TestCase):
    def test_a_masternode_away_for_100_blocks_catches_up_by_blocks_alone(self):
        cluster = make_cluster(self, 4, seed=21)
        cluster.run(6)
        away = 3
        before = cluster.nodes[away].chain.height()
        cluster.stop_node(away)
        txids = []
        # Transactions finalized while it is away: transfers, and spends of
        # them (some in the same block as their parent).
        for round_ in range(5):
            parents = [scenario.transfer_from_genesis(i)
                       for i in range(10 + 4 * round_, 14 + 4 * round_)]
            for parent in parents:
                txids.append(cluster.wait(cluster.submit(0, parent), 10))
            cluster.run_until(lambda parents=parents: all(
                (cluster.status(1, p.txid) or {}).get("status") in ("finalized", "confirmed")
                for p in parents),
                20, "the parents finalized")
            for index, parent in zip(range(10 + 4 * round_, 14 + 4 * round_), parents,
                                     strict=True):
                child = chained_spend(parent, scenario.funding(index)[0])
                txids.append(cluster.wait(cluster.submit(1, child), 10))
            cluster.run(20)
        cluster.run_until(lambda: min(heights(cluster, [0, 1, 2])) >= before + 100, 400,
                          "100 blocks committed without it")
        for txid in txids:
            self.assertEqual(set(cluster.statuses(txid)[:3]), {"confirmed"})
        # Back, with the journal catch-up cut off: only blocks bring it back.
        catchup = KindFilter({m.GET_FINALIZED, m.FINALIZED})
        cluster.network.filters[cluster.hosts[away].ip] = catchup
        back = cluster.restart_node(away)
        cluster.run_until(lambda: len(set(heights(cluster))) == 1
                          and len(set(cluster.set_hashes())) == 1, 120,
                          "the same height and set everywhere")
        self.assertGreaterEqual(back.chain.height(), before + 100)
        assert_one_chain(self, cluster)
        self.assertEqual(back.finality_sync.applied, 0)
        self.assertEqual(back.finality_sync.entered, 0)
        self.assertGreater(catchup.dropped, 0)
        self.assertGreaterEqual(back.block_service.synced, 100)
        for txid in txids:
            statuses = cluster.statuses(txid)
            self.assertEqual(set(statuses), {"confirmed"}, statuses)
            self.assertEqual(len({cluster.status(i, txid)["block_height"]
                                  for i in range(4)}), 1)
        # gettxoutsetinfo agrees too.
        infos = [n.queries.txoutset_info() for n in cluster.nodes]
        self.assertEqual(len({tuple(sorted(i.items())) for i in infos}), 1, infos)


class SafetyIncidentTests(unittest.TestCase):
    def test_a_certified_block_wins_over_a_forced_finalization(self):
        cluster = make_cluster(self, 4, seed=23)
        cluster.run(6)
        forced = 3
        scenario.isolate(cluster, forced)
        a = scenario.transfer_from_genesis(30)
        b = scenario.transfer_from_genesis(30, amount=COIN // 2)  # a's rival
        self.assertEqual(cluster.wait(cluster.submit(forced, b), 10), b.txid)
        force_finalized(cluster.nodes[forced], b.txid)
        child = chained_spend(b, scenario.funding(30)[0], amount=COIN // 8)
        self.assertEqual(cluster.wait(cluster.submit(forced, child), 10), child.txid)
        force_finalized(cluster.nodes[forced], child.txid)  # a descendant
        cluster.run(1)
        self.assertEqual(cluster.status(forced, b.txid)["status"], "finalized")
        self.assertEqual(cluster.wait(cluster.submit(0, a), 10), a.txid)
        cluster.run_until(lambda: set(cluster.statuses(a.txid)[:3])
                          == {"confirmed"}, 60, "a confirmed by a block")
        node = cluster.nodes[forced]
        self.assertEqual(node.safety_incidents, 0)
        scenario.heal(cluster)
        cluster.run_until(lambda: len(set(heights(cluster))) == 1
                          and len(set(cluster.set_hashes())) == 1, 120,
                          "the same height and set everywhere")
        self.assertEqual(node.safety_incidents, 1)
        self.assertIn(a.txid.hex(), node.safety_incident)
        self.assertIn(b.txid.hex(), node.safety_incident)
        health = node.queries.health()
        self.assertEqual(health["status"], "degraded")
        self.assertTrue(any("safety incident" in p for p in health["problems"]))
        self.assertEqual(set(cluster.statuses(a.txid)), {"confirmed"})
        for txid in (b.txid, child.txid):
            status = cluster.status(forced, txid)
            self.assertEqual(status["status"], "rejected")
            self.assertTrue(status["reason"].startswith("safety incident: block "))
            self.assertIn(a.txid.hex(), status["reason"])
            # Elsewhere it lost to a (relayed there after the heal) or was never seen.
            self.assertLessEqual({(cluster.status(i, txid) or {}).get("status")
                                  for i in range(3)}, {"rejected", None})
        assert_one_chain(self, cluster)
        infos = [n.queries.txoutset_info() for n in cluster.nodes]
        self.assertEqual(len({tuple(sorted(i.items())) for i in infos}), 1, infos)
        for other in cluster.nodes[:3]:
            self.assertEqual(other.safety_incidents, 0)
