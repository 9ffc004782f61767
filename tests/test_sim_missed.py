"""Missed service on the whole-node simulator: a crashed masternode is
deactivated by one block on every node, blocks keep committing, and it
rejoins by announcing again; proposer priorities survive restarts after set
changes; a proposer that invents absences is refused. Seeded."""

from twisted.trial import unittest

from tests.test_sim_blocks import assert_one_chain, heights, make_cluster
from timecoin.consensus.certificate import CommitCertificate
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.missed import MISSED_SERVICE_BLOCKS
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.registration import BRONZE, Registration
from timecoin.ledger.tx import sign_registration
from timecoin.sim import scenario


def reannouncement(node, index):
    """Dev key ``index`` (a genesis masternode, its own collateral's owner)
    announces its masternode again: a Bronze registration of the same key that
    spends its collateral and re-creates it, the fee from its genesis funding."""
    key, funding, total = scenario.funding(index)
    collateral = node.chain.registry.get(key.pubkey).collateral
    outputs = [(BRONZE.collateral, key.key_hash), (total - scenario.FEE, key.key_hash)]
    return sign_registration(key, [collateral, funding], outputs, DEVNET.network_id,
                             Registration(BRONZE.code, 0, key.pubkey, key.key_hash), key)


def carried_signers(block):
    return {pk for pk, _ in CommitCertificate.decode(block.last_commit).signatures}


class MissedServiceTests(unittest.TestCase):
    """A crashed masternode is deactivated for missed service by one block on
    every node; it comes back by announcing again and votes again."""

    def test_a_crashed_masternode_is_deactivated_and_rejoins_by_announcing(self):
        cluster = make_cluster(self, 4, seed=23)
        crashed = cluster.nodes[3].block_service._key.pubkey
        cluster.run(10)
        cluster.stop_node(3)
        live = [0, 1, 2]

        def deactivated_everywhere():
            return all(crashed not in cluster.nodes[i].chain.registry.active_set()
                       for i in live)
        cluster.run_until(deactivated_everywhere,
                          3 * MISSED_SERVICE_BLOCKS * DEVNET.block_interval_s,
                          "the crashed masternode deactivated")
        at = set()
        for i in live:
            chain = cluster.nodes[i].chain
            found = [h for h in range(1, chain.height() + 1)
                     if crashed in chain.block_at(h).header.missed]
            self.assertEqual(len(found), 1, i)
            at.update(found)
            self.assertEqual(chain.registry.get(crashed).deactivated_at, found[0])
            self.assertTrue(chain.registry.get(crashed).missed_service)
            self.assertEqual(len(chain.registry.active_set()), 3)
        self.assertEqual(len(at), 1)
        height = at.pop()
        chain = cluster.nodes[0].chain
        # The block came after MISSED_SERVICE_BLOCKS carried commits without it.
        absent = [h for h in range(2, height)
                  if crashed not in carried_signers(chain.block_at(h))]
        self.assertGreaterEqual(len(absent), MISSED_SERVICE_BLOCKS)
        self.assertEqual(absent[-MISSED_SERVICE_BLOCKS:],
                         list(range(height - MISSED_SERVICE_BLOCKS, height)))
        # Blocks keep committing after it, on one chain.
        before = min(heights(cluster, live))
        cluster.run(20)
        self.assertGreaterEqual(min(heights(cluster, live)), before + 7)
        assert_one_chain(self, cluster, live)
        # It restarts, follows, and (still deactivated) does not vote; its
        # replayed proposer priorities are the others'.
        back = cluster.start_node(3)
        cluster.run_until(lambda: len(set(heights(cluster))) == 1, 60, "node 3 caught up")
        self.assertNotIn(crashed, back.chain.registry.active_set())
        self.assertFalse(back.block_service.is_validator())
        # Announcing again brings it back at the block that confirms it.
        txid = cluster.wait(cluster.submit(0, reannouncement(cluster.nodes[0], 3)), 20)
        cluster.run_until(lambda: all(crashed in n.chain.registry.active_set()
                                      for n in cluster.nodes), 30, "the masternode back")
        self.assertEqual({cluster.status(i, txid)["status"] for i in range(4)}, {"confirmed"})
        self.assertEqual({cluster.status(i, txid)["block_height"] for i in range(4)},
                         {cluster.nodes[0].chain.registry.get(crashed).registered_height})
        self.assertFalse(cluster.nodes[0].chain.registry.get(crashed).missed_service)
        cluster.run(20)
        self.assertTrue(back.block_service.is_validator())
        top = assert_one_chain(self, cluster)
        rejoined = cluster.nodes[0].chain.registry.get(crashed).registered_height
        self.assertGreaterEqual(top, rejoined + 5)
        signed = [h for h in range(rejoined + 2, top + 1)
                  if crashed in carried_signers(cluster.nodes[0].chain.block_at(h))]
        self.assertGreater(len(signed), 0)
        # Back in service: a carried commit holds the first precommits of more
        # than 2/3 of the stake, which need not include it every time, so its
        # count of consecutive absences restarts from each one that does.
        self.assertLess(cluster.nodes[0].chain.missed.count(crashed), MISSED_SERVICE_BLOCKS // 5)
        self.assertIn(crashed, cluster.nodes[0].chain.registry.active_set())

    def test_a_node_restarted_after_set_changes_picks_the_same_proposers(self):
        cluster = make_cluster(self, 4, seed=29)
        crashed = cluster.nodes[3].block_service._key.pubkey
        cluster.run(10)
        cluster.stop_node(3)
        cluster.run_until(lambda: crashed not in cluster.nodes[0].chain.registry.active_set(),
                          3 * MISSED_SERVICE_BLOCKS * DEVNET.block_interval_s)
        cluster.start_node(3)
        cluster.run_until(lambda: len(set(heights(cluster))) == 1, 60, "node 3 caught up")
        cluster.wait(cluster.submit(0, reannouncement(cluster.nodes[0], 3)), 20)
        cluster.run_until(lambda: all(crashed in n.chain.registry.active_set()
                                      for n in cluster.nodes), 60, "the masternode back")
        cluster.run(10)
        # Node 1 never stopped; restarted now, it replays two set changes.
        cluster.stop_node(1)
        cluster.run(10)
        restarted = cluster.start_node(1)
        cluster.run(30)
        cluster.run_until(lambda: len(set(heights(cluster))) == 1, 30, "one height")
        machines = [n.block_service.machine for n in cluster.nodes]
        self.assertEqual(len({m.height for m in machines}), 1)
        for m in machines:
            self.assertEqual(m.priorities.priorities, machines[0].priorities.priorities)
            self.assertEqual(m.validators, machines[0].validators)
        self.assertEqual(restarted.block_service.machine.proposer(0), machines[0].proposer(0))
        # And the blocks it committed after the restart were proposed as the
        # others expected (one chain, every block certified).
        assert_one_chain(self, cluster)
        self.assertTrue(restarted.block_service.is_validator())


class MissedServiceSweepTests(unittest.TestCase):
    """Seeded: 3 of 10 masternodes (30% of the stake) crash at once; one block
    deactivates all three on every node, and the seven keep committing."""

    def crash_three_of_ten(self, seed):
        cluster = make_cluster(self, 10, seed=seed)
        cluster.run(6)
        crashed = {cluster.nodes[i].block_service._key.pubkey for i in (2, 5, 9)}
        for i in (2, 5, 9):
            cluster.stop_node(i)
        live = [i for i in range(10) if i not in (2, 5, 9)]

        def gone():
            return all(not crashed & set(cluster.nodes[i].chain.registry.active_set())
                       for i in live)
        cluster.run_until(gone, 3 * MISSED_SERVICE_BLOCKS * DEVNET.block_interval_s,
                          f"seed {seed}: the crashed masternodes deactivated")
        chain = cluster.nodes[live[0]].chain
        found = [h for h in range(1, chain.height() + 1) if chain.block_at(h).header.missed]
        self.assertEqual(len(found), 1, seed)
        self.assertEqual(chain.block_at(found[0]).header.missed, tuple(sorted(crashed)))
        before = min(heights(cluster, live))
        cluster.run(20)
        self.assertGreaterEqual(min(heights(cluster, live)), before + 7, seed)
        assert_one_chain(self, cluster, live)
        self.assertEqual({len(cluster.nodes[i].chain.registry.active_set()) for i in live},
                         {7})
        cluster.close()

    def test_three_of_ten_crash_over_seeds(self):
        for seed in (31, 37):
            self.crash_three_of_ten(seed)

    def test_a_proposer_that_invents_missed_service_is_refused(self):
        victim = []

        def lying_counts(index, node):
            """Masternode 0 builds its blocks as if masternode 1 missed every
            block: they deactivate 1 (consistently with their set hash); it
            checks the others' blocks honestly."""
            if index != 0:
                return
            victim.append(cluster_keys[1])
            honest_build = node.block_ledger.build
            counts = node.chain.missed_candidates

            def build(*args, **kwargs):
                node.chain.missed_candidates = lambda: [(cluster_keys[1], 10**6)]
                try:
                    return honest_build(*args, **kwargs)
                finally:
                    node.chain.missed_candidates = counts
            node.block_ledger.build = build
        cluster_keys = [PrivateKey.devnet(i).pubkey for i in range(4)]
        cluster = make_cluster(self, 4, listener=lying_counts, seed=41)
        cluster.run(60)
        honest = [1, 2, 3]
        built = cluster.nodes[0].block_service._blocks.values()
        self.assertTrue(all(b.header.missed == (victim[0],) for b in built
                            if b.header.proposer == cluster_keys[0]))
        for i in honest:
            chain = cluster.nodes[i].chain
            self.assertIn(victim[0], chain.registry.active_set())
            self.assertFalse(any(chain.block_at(h).header.missed
                                 for h in range(1, chain.height() + 1)))
        self.assertGreaterEqual(min(heights(cluster, honest)), 15)
        self.assertGreater(sum(cluster.nodes[i].block_service.bad_blocks for i in honest), 0)
        assert_one_chain(self, cluster, honest)
