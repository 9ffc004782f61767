"""Building finality proofs from a node's chain of blocks, sans I/O.

:class:`ChainProofs` follows the chain as blocks are committed or replayed
(:meth:`ChainProofs.note_block`) and keeps, for every block whose
``masternode_set_hash`` differs from the set before it, the hand-off: its
header, its certificate and the set after it (which the node stores with the
block, ``block_sets``, so that it survives a restart). A proof for a txid in
any block of the chain is then :func:`~timecoin.proofs.verify.make_proof`
over the hand-offs below that block.
"""

from zope.interface import implementer

from timecoin.interfaces import IFinalityProofs
from timecoin.ledger.registry import masternode_set_hash
from timecoin.proofs.finality import SetHandoff
from timecoin.proofs.verify import make_proof


class ProofUnavailable(Exception):
    """No proof can be built: ``reason`` is ``no-block`` (the chain holds no
    block at that height), ``txid-not-in-block`` (the block does not hold
    the txid) or ``missing-set`` (a block below changed the set and its set
    was not stored: a database from before schema version 5)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


@implementer(IFinalityProofs)
class ChainProofs:
    """The hand-offs of a chain from ``genesis``, and proofs built from them
    (see the module docstring)."""

    def __init__(self, genesis):
        self._genesis = genesis
        self._last_hash = genesis.masternode_set_hash()
        self._noted = 0
        self._handoffs = {}  # height -> SetHandoff
        self._missing = []  # heights that changed the set, with no set given

    def start_at(self, block, handoffs):
        """Follow a chain started from a snapshot at ``block``: ``handoffs``
        are ``(header, certificate, {pubkey: weight})`` of every block up to
        and including it that changed the set (stored with the snapshot)."""
        if self._noted:
            raise ValueError("blocks were noted already")
        for header, certificate, active_set in handoffs:
            if masternode_set_hash(active_set) != header.masternode_set_hash:
                raise ValueError(f"the set given for block {header.height} is not its header's")
            self._handoffs[header.height] = SetHandoff(header, certificate,
                                                       tuple(sorted(active_set.items())))
        self._last_hash = block.header.masternode_set_hash
        self._noted = block.height

    def note_block(self, block, certificate, active_set):
        """``block`` (the next height) was committed with ``certificate``;
        ``active_set`` is ``{pubkey: weight}`` after it if it changed the set
        (None if it did not, or if the set is not known). A set that does not
        hash to the header's is a :class:`ValueError`, nothing noted."""
        header = block.header
        if header.height != self._noted + 1:
            raise ValueError(f"block {header.height} noted after {self._noted}")
        changed = header.masternode_set_hash != self._last_hash
        if active_set is not None and masternode_set_hash(active_set) != \
                header.masternode_set_hash:
            raise ValueError(f"the set given for block {header.height} is not its header's")
        if changed and active_set is not None:
            self._handoffs[header.height] = SetHandoff(header, certificate,
                                                       tuple(sorted(active_set.items())))
        elif changed:
            self._missing.append(header.height)
        self._last_hash = header.masternode_set_hash
        self._noted = header.height

    def handoff_heights(self):
        """The heights of the blocks that changed the set, with a stored set."""
        return sorted(self._handoffs)

    def missing_sets(self):
        """The heights of blocks that changed the set whose set is not known."""
        return list(self._missing)

    def proof(self, block, certificate, txid):
        """The :class:`~timecoin.proofs.finality.FinalityProof` that ``txid``
        is in ``block`` (noted already), committed by ``certificate``;
        :class:`ProofUnavailable` if it cannot be built."""
        height = block.height
        if height > self._noted:
            raise ProofUnavailable("no-block", f"block {height} is not in the chain yet")
        if txid not in block.all_txids:
            raise ProofUnavailable("txid-not-in-block",
                                   f"block {height} does not hold {txid.hex()}")
        missing = [h for h in self._missing if h < height]
        if missing:
            raise ProofUnavailable(
                "missing-set", f"the active set after block {missing[0]} was not stored "
                "(a database from before schema version 5): no proof above it")
        handoffs = [self._handoffs[h] for h in sorted(self._handoffs) if h < height]
        return make_proof(self._genesis, handoffs, block, certificate, txid)
