"""The chain of committed blocks, sans I/O: the node's ``IBlockConsensus``.

It starts at the genesis and grows by :meth:`BlockChain.append`, one block at
a time, each on the one before (height and ``prev_hash`` checked, body against
header checked). Appending applies the block to the masternode registry
(``apply_block``: confirmed registrations and collateral spends, the block's
deactivations), so the active set that signs the next block is the one the
block names in ``masternode_set_hash``; a mismatch is refused before anything
changes. The certificate is kept as given (an object with ``round`` and
``signatures``, ``(validator id, signature)`` pairs, as
``timecoin.consensus.certificate.CommitCertificate``); checking it is the
block service's job, which holds the validator sets and the signature scheme.

The chain also keeps what the blocks' history decides beyond the registry:
the active set after every height (:meth:`BlockChain.active_set_at`, the set
that signed the next block; kept as the heights where it changed) and the
missed-service counts over the blocks' carried commits
(:class:`~timecoin.ledger.missed.MissedService`). Both are rebuilt at start
by :meth:`BlockChain.restore` from the stored blocks, the stored sets and the
signers of each carried commit, so a restarted node holds what the nodes that
never stopped hold.
"""

import bisect

from zope.interface import implementer

from timecoin.interfaces import IBlockConsensus
from timecoin.ledger.block import BlockError
from timecoin.ledger.missed import MISSED_SERVICE_BLOCKS, MissedService
from timecoin.ledger.registry import MasternodeRegistry, masternode_set_hash


@implementer(IBlockConsensus)
class BlockChain:
    """The genesis and the committed blocks after it (see the module docstring).

    ``is_online(pubkey)`` says whether this node hears from a masternode;
    ``registry`` is the ``IMasternodeRegistry`` blocks drive (the genesis
    registrations when None).
    """

    def __init__(self, genesis, is_online=lambda pubkey: False, registry=None):
        self._genesis = genesis
        self._is_online = is_online
        self.registry = registry if registry is not None else \
            MasternodeRegistry.from_genesis(genesis)
        self._blocks = []  # Block, height i + 1 at index i
        self._certificates = []
        self._by_hash = {}
        self._tx_heights = {}  # txid -> height, for the blocks of this run
        # The active set after each height, as (height, set or None: unknown)
        # at the heights where it changed; the genesis set first.
        self._set_heights = [0]
        self._sets = [MasternodeRegistry.from_genesis(genesis).active_set()]
        self.missed = MissedService()
        self.missed_threshold = MISSED_SERVICE_BLOCKS
        #: Blocks below the first held one (a chain started from a snapshot
        #: at ``base`` holds blocks from ``base`` on; 0: from the genesis).
        self._offset = 0


    @property
    def base(self):
        """The height of the snapshot this chain started from (0: the genesis)."""
        return self._offset + 1 if self._offset else 0

    def start_at(self, block, certificate, signing_set=None):
        """Start an empty chain at ``block`` (the block of an installed
        snapshot, certified by ``certificate``): the registry is already the
        one after it, and the blocks below it are not held. ``signing_set``
        is the active set that signed ``block`` (from the snapshot's verified
        hand-offs; None: the genesis set), so that the next block's carried
        commit can be checked."""
        if self._blocks:
            raise BlockError("a chain holding blocks cannot start at a snapshot")
        block.check()
        self._offset = block.height - 1
        self._add(block, certificate)
        # The sets below the snapshot are not known here; the one after it is
        # the installed registry's. Absences count from the snapshot on.
        genesis_set = self._sets[0]
        self._set_heights, self._sets = [0], [None]
        self._note_set(block.height - 1, dict(signing_set or genesis_set))
        self._note_set(block.height, self.registry.active_set())

    def height(self):
        return self._offset + len(self._blocks)

    def best_block_hash(self):
        return self._blocks[-1].hash if self._blocks else self._genesis.hash

    def block_at(self, height):
        """The committed :class:`~timecoin.ledger.block.Block` at ``height``
        (>= 1), or None (also below a snapshot the chain started from)."""
        if self._offset < height <= self.height():
            return self._blocks[height - 1 - self._offset]
        return None

    def certificate_at(self, height):
        block = self.block_at(height)
        return self._certificates[height - 1 - self._offset] if block is not None else None

    def _height_of(self, height_or_hash):
        if isinstance(height_or_hash, int):
            return height_or_hash
        key = height_or_hash if isinstance(height_or_hash, bytes) else \
            bytes.fromhex(height_or_hash)
        if key == self._genesis.hash:
            return 0
        return self._by_hash.get(key)

    def get_block(self, height_or_hash):
        height = self._height_of(height_or_hash)
        if height == 0:
            return self._genesis.block()
        block = self.block_at(height) if height is not None else None
        return block.fields() if block is not None else None

    def get_block_header(self, height_or_hash):
        """The header fields and ``commit`` (the certificate's signatures), or None."""
        height = self._height_of(height_or_hash)
        if height == 0:
            fields = dict(self._genesis.block())
            fields.pop("txids", None)
            fields["commit"] = []
            return fields
        block = self.block_at(height) if height is not None else None
        if block is None:
            return None
        fields = block.header.fields()
        certificate = self.certificate_at(height)
        fields["commit"] = [{"pubkey": pubkey.hex(), "signature": signature.hex()}
                            for pubkey, signature in certificate.signatures]
        return fields

    def append(self, block, certificate, confirmed_txs, last_signers=None):
        """Add ``block`` (the next height) with its ``certificate``, applying
        ``confirmed_txs`` (its decoded transactions, reward excluded) to the
        registry; ``last_signers`` are the signers of its carried commit
        (None: it carries none). Returns the registry's ``{"joined", "left",
        "deactivated", "rejoined"}``.
        Raises :class:`~timecoin.ledger.block.BlockError` and changes nothing
        if the block does not follow the chain."""
        if block.height != self.height() + 1:
            raise BlockError(f"block {block.height} does not follow height {self.height()}")
        if block.header.prev_hash != self.best_block_hash():
            raise BlockError("the block's prev_hash is not the best block's hash")
        block.check()
        if [tx.txid for tx in confirmed_txs] != list(block.txids):
            raise BlockError("the confirmed transactions are not the block's")
        trial = MasternodeRegistry.from_rows(self.registry.rows())
        trial.apply_block(block.height, confirmed_txs, block.header.deactivated,
                          block.header.missed)
        if trial.masternode_set_hash() != block.header.masternode_set_hash:
            raise BlockError("masternode_set_hash is not the active set after the block")
        changes = self.registry.apply_block(block.height, confirmed_txs,
                                            block.header.deactivated, block.header.missed)
        self._count_missed(block.height, last_signers)
        self._add(block, certificate)
        self._note_set(block.height, self.registry.active_set())
        return changes

    def restore(self, block, certificate, last_signers=None, set_after=None):
        """Replay at start: the next stored block, its registry changes already
        in the stored registry rows (not applied again); ``last_signers`` as
        for :meth:`append`, ``set_after`` the stored active set after it if it
        changed the set (None: it did not, or it was not stored)."""
        if block.height != self.height() + 1 or block.header.prev_hash != self.best_block_hash():
            raise BlockError(f"stored block {block.height} does not follow {self.height()}")
        block.check()
        self._count_missed(block.height, last_signers)
        self._add(block, certificate)
        before = self._sets[-1]
        if set_after is not None:
            after = dict(set_after)
        elif before is not None and \
                masternode_set_hash(before) == block.header.masternode_set_hash:
            after = before
        else:
            after = None  # it changed the set, and the set was not stored
        if after is not None and masternode_set_hash(after) != block.header.masternode_set_hash:
            after = None
        self._note_set(block.height, after)

    def restored(self):
        """After the last :meth:`restore`: the set after the best block is
        the registry's (the stored rows are the state after it)."""
        current = self.registry.active_set()
        if self._sets[-1] != current and \
                masternode_set_hash(current) == self._best_set_hash():
            self._note_set(self.height(), current)

    def _best_set_hash(self):
        block = self.block_at(self.height())
        return block.header.masternode_set_hash if block is not None else \
            masternode_set_hash(self._sets[0])

    def _note_set(self, height, active_set):
        """The set after ``height`` is ``active_set`` (None: unknown)."""
        if active_set == self._sets[-1]:
            return
        if self._set_heights[-1] == height:
            self._sets[-1] = active_set
        else:
            self._set_heights.append(height)
            self._sets.append(active_set)

    def active_set_at(self, height):
        if height < 0 or height > self.height():
            return None
        index = bisect.bisect_right(self._set_heights, height) - 1
        found = self._sets[index]
        return dict(found) if found is not None else None

    def _count_missed(self, height, last_signers):
        """Count the carried commit of the block at ``height`` (a certificate
        of ``height - 1``, signed by the set after ``height - 2``)."""
        if last_signers is None or height < 2:
            return
        signing = self.active_set_at(height - 2)
        if signing is not None:
            self.missed.note(signing, last_signers)

    def missed_candidates(self):
        return self.missed.candidates(self.registry.active_set(), self.missed_threshold)

    def _add(self, block, certificate):
        self._blocks.append(block)
        self._certificates.append(certificate)
        self._by_hash[block.hash] = block.height
        for txid in block.all_txids:
            self._tx_heights[txid] = block.height

    def height_of_tx(self, txid):
        return self._tx_heights.get(txid)

    def masternodes(self):
        described = self.registry.describe(self._genesis.network.network_id)
        for mn in described:
            mn["online"] = bool(self._is_online(bytes.fromhex(mn["pubkey"])))
        return described
