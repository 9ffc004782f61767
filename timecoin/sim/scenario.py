"""Scenario steps on a :class:`~timecoin.sim.cluster.Cluster`, by node index.

Each is one call a test (or a safety battery) makes while the simulation
runs: message loss, partitions and their healing, an isolated or eclipsed
node, restarts of a share of the nodes, byzantine voters, and funded
transfers from the devnet keys.
"""

from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN, DEVNET
from timecoin.ledger.tx import OutPoint, sign_transfer

FEE = 10_000
DESTINATION = PrivateKey.devnet(99)


def set_loss(cluster, loss):
    """Every link drops this fraction of frames (0 to 1), from now on."""
    cluster.network.set_all(loss=loss)


def set_latency(cluster, latency, jitter=0.0, reorder=False):
    """Every link takes ``latency`` (+ up to ``jitter``) seconds per frame."""
    cluster.network.set_all(latency=latency, jitter=jitter, reorder=reorder)


def partition(cluster, *groups):
    """Cut the links between the groups (iterables of node indices); nodes in
    no group form one more group. Frames in flight across the cut are lost."""
    cluster.network.partition(*[[cluster.hosts[i].ip for i in g] for g in groups])


def split(cluster, fraction):
    """Partition into the first ``fraction`` of the nodes and the rest
    (0.5: 50/50, 0.7: 70/30); returns the two lists of indices."""
    cut = round(cluster.size * fraction)
    first, second = list(range(cut)), list(range(cut, cluster.size))
    partition(cluster, first, second)
    return first, second


def isolate(cluster, index):
    """Cut node ``index`` off from every other node."""
    partition(cluster, [index])


def eclipse(cluster, victim, attackers):
    """Node ``victim`` can reach only ``attackers`` (and they it); the other
    nodes still reach the attackers and each other."""
    network = cluster.network
    victim_ip = cluster.hosts[victim].ip
    allowed = {cluster.hosts[i].ip for i in attackers}
    # Attackers talk to both sides, which a partition cannot express: every
    # other link of the victim loses all its frames instead.
    for host in cluster.hosts:
        if host.index != victim and host.ip not in allowed:
            network.set_link(victim_ip, host.ip, loss=1.0)


def heal(cluster):
    """End any partition and give every link back the default conditions."""
    cluster.network.heal()
    cluster.network.reset_links()


def restart_share(cluster, fraction, timeout=60.0):
    """Stop and start again a ``fraction`` of the nodes, chosen with the
    cluster's RNG, one after the other; returns their indices."""
    count = max(1, round(cluster.size * fraction))
    chosen = sorted(cluster.rng.sample(range(cluster.size), count))
    for index in chosen:
        cluster.stop_node(index)
    for index in chosen:
        cluster.restart_node(index, timeout)
    return chosen


def byzantine(cluster, indices, strategy_for):
    """Make each node of ``indices`` answer with ``strategy_for(index)``
    (an :class:`~timecoin.sim.byzantine.IVoteStrategy`); returns the rewriters."""
    return [cluster.make_byzantine(i, strategy_for(i)) for i in indices]


def funding(index):
    """``(key, outpoint, amount)`` of dev key ``index``'s genesis output."""
    tx = make_genesis(DEVNET).txs[0]
    return PrivateKey.devnet(index), OutPoint(tx.txid, index), tx.outputs[index].amount


def transfer_from_genesis(index, amount=COIN, to=DESTINATION.key_hash):
    """A signed transfer of ``amount`` from dev key ``index``'s genesis output,
    the change back to the key (distinct ``amount``: a double spend)."""
    key, outpoint, total = funding(index)
    outputs = [(amount, to)]
    change = total - amount - FEE
    if change > 0:
        outputs.append((change, key.key_hash))
    return sign_transfer(key, [outpoint], outputs, DEVNET.network_id)
