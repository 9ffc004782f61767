"""The block chain as far as it exists yet: the genesis block.

Blocks that checkpoint finalized transactions, agreed by a BFT round among the
masternodes, are a later protocol feature; until then the chain is its
genesis, and this class answers the block queries of the API from it.
"""

from zope.interface import implementer

from timecoin.interfaces import IBlockConsensus
from timecoin.ledger.registration import TIER_WEIGHTS
from timecoin.ledger.registry import MasternodeRegistry

__all__ = ["TIER_WEIGHTS", "GenesisChain"]


@implementer(IBlockConsensus)
class GenesisChain:
    """A chain of one block: the network's genesis.

    Its masternodes are the ``registry``'s (an ``IMasternodeRegistry``; the
    genesis registrations when None); ``is_online(pubkey)`` says whether this
    node hears from one.
    """

    def __init__(self, genesis, is_online=lambda pubkey: False, registry=None):
        self._genesis = genesis
        self._is_online = is_online
        self.registry = registry if registry is not None else \
            MasternodeRegistry.from_genesis(genesis)

    def height(self):
        return 0

    def best_block_hash(self):
        return self._genesis.hash

    def get_block(self, height_or_hash):
        if height_or_hash in (0, self._genesis.hash, self._genesis.hash.hex()):
            return self._genesis.block()
        return None

    def masternodes(self):
        described = self.registry.describe(self._genesis.network.network_id)
        for mn in described:
            mn["online"] = bool(self._is_online(bytes.fromhex(mn["pubkey"])))
        return described
