"""The three timecoin networks and the constants the whole node shares."""

import os
from dataclasses import dataclass

#: Units in one TIME.
COIN = 10**8
#: No amount, sum or balance may ever exceed this many units (21 million TIME).
MAX_SUPPLY = 21_000_000 * COIN


@dataclass(frozen=True)
class Network:
    """Fixed facts of one network: ids, ports, prefixes and defaults."""

    name: str
    network_id: int
    magic: bytes
    p2p_port: int
    api_port: int
    datadir: str
    min_masternodes: int
    block_interval_s: int
    tls_default: bool

    @property
    def address_prefix(self):
        return f"TIME{self.network_id}"

    def default_datadir(self):
        return os.path.expanduser(self.datadir)


TESTNET = Network("testnet", 0, b"TMt0", 24100, 24101, "~/.timecoin/testnet", 3, 60, True)
MAINNET = Network("mainnet", 1, b"TMm1", 24000, 24001, "~/.timecoin", 3, 600, True)
DEVNET = Network("devnet", 2, b"TMd2", 24200, 24201, "~/.timecoin/devnet", 1, 2, False)



def signing_network_id(network):
    """The network id every BFT signature covers (``bft_messages.sign_bytes``):
    the network's magic bytes, distinct per network. The block service signs
    with it and a finality proof is verified with it: the one definition."""
    return network.magic


NETWORKS = {n.name: n for n in (TESTNET, MAINNET, DEVNET)}
BY_ID = {n.network_id: n for n in NETWORKS.values()}


def get_network(name):
    """The :class:`Network` called ``name``; ``ValueError`` naming the choices."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(
            f"unknown network {name!r} (choose devnet, testnet or mainnet)"
        ) from None
