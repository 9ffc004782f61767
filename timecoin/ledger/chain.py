"""The block chain as far as it exists yet: the genesis block.

Blocks that checkpoint finalized transactions, agreed by a BFT round among the
masternodes, are a later protocol feature; until then the chain is its
genesis, and this class answers the block queries of the API from it.
"""

from zope.interface import implementer

from timecoin.interfaces import IBlockConsensus
from timecoin.ledger.keys import encode_address, pubkey_hash

#: Collateral tiers and their sampling weights (registration comes later).
TIER_WEIGHTS = {"free": 1, "bronze": 10, "silver": 100, "gold": 1000}


@implementer(IBlockConsensus)
class GenesisChain:
    """A chain of one block: the network's genesis."""

    def __init__(self, genesis, is_active=lambda pubkey: False):
        self._genesis = genesis
        self._is_active = is_active

    def height(self):
        return 0

    def best_block_hash(self):
        return self._genesis.hash

    def get_block(self, height_or_hash):
        if height_or_hash in (0, self._genesis.hash, self._genesis.hash.hex()):
            return self._genesis.block()
        return None

    def masternodes(self):
        network_id = self._genesis.network.network_id
        return [
            {
                "pubkey": pk.hex(),
                "address": encode_address(network_id, pubkey_hash(pk)),
                "tier": "free",
                "weight": TIER_WEIGHTS["free"],
                "active": bool(self._is_active(pk)),
            }
            for pk in self._genesis.masternodes
        ]
