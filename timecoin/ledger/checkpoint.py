"""What the next block checkpoints, sans I/O: building and checking its contents.

:class:`BlockLedger` keeps the transactions this node finalized that no block
confirmed yet, in its finality order, each with its undo data (the amount and
key hash of every output it spent) and its fee, and the MuHash of the UTXO set
at the last block. From these it builds the block a proposer proposes
(:meth:`BlockLedger.build`) and checks a proposed one (:meth:`BlockLedger.check`):

* ``txids``: the unconfirmed transactions in finality order (at most
  ``max_txs``, the oldest first);
* the reward transaction (:func:`~timecoin.ledger.emission.reward_transaction`):
  the block reward plus the fees of those transactions, to the active set;
* ``utxo_set_hash``: the set at the last block with the block's transactions
  and reward folded in (MuHash is independent of order, so every node that
  finalized the same transactions computes the same hash);
* ``masternode_set_hash``: the registry's active set after the block.

A proposed block is valid here only if every transaction in it is finalized
here (a transaction this node rejected or never saw is refused, or waited
for), it is the block ``build`` would make with exactly those transactions,
and it follows the chain. :meth:`BlockLedger.applied` moves the checkpoint
once a block is committed.

A block may also decide a stalled conflict set: ``decided`` (given to
``build`` and ``check`` by the node) holds members of sets pending here,
valid against this node's UTXO state, with their undo data; at most
``MAX_DECIDED_PER_BLOCK`` of them come after the finalized transactions. The
node finalizes such a member when the block commits, before ``applied``.

Every block after the first carries the previous block's commit certificate
(its *last commit*, ``last_commit`` given to ``build`` by the node: the
certificate it stored with that block). ``check`` refuses a block at height 1
that carries one and a later block that carries none, and has
``verify_last_commit(block)`` (the node's: signatures and > 2/3 of the stake
of the set that signed the previous block) raise for a bad one. A block's
``missed`` list must be exactly the missed-service deactivations this node's
chain gives (:func:`~timecoin.ledger.missed.select_missed` over
``chain.missed_candidates()``): every node computes the same list.
"""

from dataclasses import dataclass

from zope.interface import implementer

from timecoin.interfaces import IBlockLedger
from timecoin.ledger.block import (
    MAX_BLOCK_TXS,
    Block,
    BlockError,
    BlockHeader,
    last_commit_hash,
)
from timecoin.ledger.emission import check_reward, reward_transaction
from timecoin.ledger.merkle import merkle_root
from timecoin.ledger.missed import select_missed
from timecoin.ledger.registry import MasternodeRegistry
from timecoin.ledger.tx import decode_tx
from timecoin.ledger.utxo import utxo_element

#: How far ahead of this node's clock a block's time may be (seconds).
MAX_FUTURE_S = 30
#: How many members of stalled conflict sets one block may decide.
MAX_DECIDED_PER_BLOCK = 1


@dataclass(frozen=True)
class Unconfirmed:
    """A finalized transaction no block confirmed yet: ``spent`` is its undo data,
    ``[(amount, key_hash)]`` per input, ``fee`` what it pays."""

    seq: int
    tx: object
    spent: tuple
    fee: int


class MissingTransactions(BlockError):
    """A proposed block names transactions not finalized here (yet): ``txids``."""

    def __init__(self, txids):
        super().__init__(f"{len(txids)} transactions of the block are not finalized here")
        self.txids = tuple(txids)


class CertifiedBodyError(BlockError):
    """A body that came with a certified block is invalid: the sender lies."""


def fold(muhash, tx, spent):
    """``muhash`` with ``tx``'s spends (``spent``: undo data) and outputs folded in."""
    for txin, (amount, key_hash) in zip(tx.inputs, spent, strict=True):
        muhash.remove(utxo_element(txin.prevout, amount, key_hash))
    for op, out in zip(tx.outpoints(), tx.outputs, strict=True):
        muhash.add(utxo_element(op, out.amount, out.key_hash))
    return muhash


def unconfirmed_from_row(seq, raw, spent):
    """An :class:`Unconfirmed` from a stored journal row (``spent`` decoded)."""
    tx = decode_tx(raw)
    spent = tuple((amount, bytes(key_hash)) for amount, key_hash in spent)
    return Unconfirmed(seq, tx, spent, sum(a for a, _ in spent) - tx.output_total)


def unfold(muhash, tx, spent):
    """Inverse of :func:`fold`: the set before ``tx``."""
    for op, out in zip(tx.outpoints(), tx.outputs, strict=True):
        muhash.remove(utxo_element(op, out.amount, out.key_hash))
    for txin, (amount, key_hash) in zip(tx.inputs, spent, strict=True):
        muhash.add(utxo_element(txin.prevout, amount, key_hash))
    return muhash


@implementer(IBlockLedger)
class BlockLedger:
    """The unconfirmed finalized transactions and the checkpoint (module docstring).

    ``chain`` is the node's ``BlockChain`` (its ``registry`` the active set);
    ``muhash`` the UTXO set's MuHash *now*, after ``unconfirmed`` (an iterable of
    :class:`Unconfirmed`, finality order): the checkpoint is derived from it.
    """

    def __init__(self, network, chain, muhash, unconfirmed=(), max_txs=MAX_BLOCK_TXS):
        self.network = network
        self.chain = chain
        self.max_txs = max_txs
        self._pending = {}  # txid -> Unconfirmed, in finality order
        self._checkpoint = muhash.copy()
        self._folded = {}  # block hash -> the MuHash after it, as built or checked
        self.restore(unconfirmed)

    # -- what finality adds ----------------------------------------------------

    def add(self, seq, tx, spent):
        """``tx`` finalized here as journal entry ``seq``, spending ``spent``
        (``[(amount, key_hash)]``)."""
        if tx.txid in self._pending:
            return
        spent = tuple((amount, key_hash) for amount, key_hash in spent)
        fee = sum(amount for amount, _ in spent) - tx.output_total
        self._pending[tx.txid] = Unconfirmed(seq, tx, spent, fee)

    def restore(self, items):
        """At start: ``items`` (:class:`Unconfirmed`) were finalized before this
        run and no block confirmed them; the checkpoint is the set without them."""
        fresh = [i for i in items if i.tx.txid not in self._pending]
        for item in fresh:
            unfold(self._checkpoint, item.tx, item.spent)
        merged = sorted(list(self._pending.values()) + fresh, key=lambda u: u.seq)
        self._pending = {item.tx.txid: item for item in merged}

    def __contains__(self, txid):
        return txid in self._pending

    def __len__(self):
        return len(self._pending)

    def checkpoint_hash(self):
        """The UTXO set hash at the last block (bytes)."""
        return self._checkpoint.digest()

    # -- building and checking -------------------------------------------------

    def _recipients(self):
        return [(e.reward_key_hash, e.weight) for e in self.chain.registry.entries() if e.active]

    def _contents(self, height, items, deactivations=(), missed=()):
        """(reward tx, MuHash after, masternode_set_hash) of a block of ``items``
        that deactivates ``deactivations`` (evidence) and ``missed``."""
        muhash = self._checkpoint.copy()
        for item in items:
            fold(muhash, item.tx, item.spent)
        reward = reward_transaction(self.network, height, sum(i.fee for i in items),
                                    self._recipients())
        if reward is not None:
            fold(muhash, reward, ())
        trial = MasternodeRegistry.from_rows(self.chain.registry.rows())
        trial.apply_block(height, [i.tx for i in items], deactivations, missed)
        return reward, muhash, trial.masternode_set_hash()

    def _remember(self, block_hash, muhash):
        """Keep the set after a block built or checked here, for :meth:`applied`
        (a few per height: the proposals of its rounds)."""
        if len(self._folded) >= 16:
            self._folded.pop(next(iter(self._folded)))
        self._folded[block_hash] = muhash

    def _missed(self, deactivated):
        """The missed-service deactivations of the next block (module docstring)."""
        return select_missed(self.chain.registry.active_set(), self.chain.missed_candidates(),
                             deactivated, self.network.min_masternodes)

    def build(self, round_, proposer, time, deactivations=(), decided=(), last_commit=b""):
        """The next block, proposed at ``round_`` by ``proposer`` at ``time``;
        it deactivates those of ``deactivations`` that are active (sorted),
        and those the chain shows absent for missed service;
        ``decided``: members of stalled sets (:class:`Unconfirmed`, ``seq`` None)
        the block decides, the first ``MAX_DECIDED_PER_BLOCK`` taken;
        ``last_commit``: the encoded commit certificate of the best block
        (``b""`` at height 1)."""
        height = self.chain.height() + 1
        extra = [d for d in decided if d.tx.txid not in self._pending][:MAX_DECIDED_PER_BLOCK]
        items = list(self._pending.values())[:self.max_txs - len(extra)] + extra
        active = self.chain.registry.active_set()
        deactivated = tuple(sorted({pk for pk in deactivations if pk in active}))
        missed = self._missed(deactivated)
        reward, muhash, set_hash = self._contents(height, items, deactivated, missed)
        utxo_hash = muhash.digest()
        txids = tuple(i.tx.txid for i in items)
        all_txids = txids + ((reward.txid,) if reward is not None else ())
        header = BlockHeader(self.network.network_id, height, self.chain.best_block_hash(),
                             max(int(time), self._min_time()), round_, proposer,
                             merkle_root(all_txids), utxo_hash, set_hash,
                             reward.output_total - sum(i.fee for i in items) if reward else 0,
                             deactivated, missed, last_commit_hash(last_commit))
        block = Block(header, txids, reward, bytes(last_commit))
        self._remember(block.hash, muhash)
        return block

    def _min_time(self):
        last = self.chain.block_at(self.chain.height())
        return last.header.time if last is not None else 0

    def unconfirmed(self, txid):
        """The :class:`Unconfirmed` of ``txid`` finalized here, or None."""
        return self._pending.get(txid)

    def spenders(self):
        """``{outpoint: txid}`` of every input of the unconfirmed transactions."""
        return {i.prevout: txid for txid, item in self._pending.items() for i in item.tx.inputs}

    def check(self, block, proposer_of, now, justified=None, decided=None, certified=False,
              verify_last_commit=None):
        """Raise :class:`~timecoin.ledger.block.BlockError` unless ``block`` is a
        valid next block here; :class:`MissingTransactions` if only some of its
        transactions are not finalized here (yet). ``proposer_of(round)`` is the
        proposer of a round at this height; ``justified(pubkey)`` is True if
        evidence verified here justifies deactivating ``pubkey`` (None: nothing
        does); ``decided`` maps the txids of members of stalled sets pending
        here, valid against the UTXO state, to their :class:`Unconfirmed`
        (``seq`` None): the block may decide one of them; with ``certified``
        (its commit certificate verified here), ``decided`` holds every one of
        its transactions not finalized here, checked against the UTXO state
        by the caller, and there is no bound on how many;
        ``verify_last_commit(block)`` raises :class:`BlockError` unless the
        block's carried commit is a valid certificate of the best block
        (None: no carried commit is accepted)."""
        decided = decided or {}
        header = block.header
        if header.network_id != self.network.network_id:
            raise BlockError("the block is of another network")
        if header.height != self.chain.height() + 1:
            raise BlockError(f"block {header.height} does not follow {self.chain.height()}")
        if header.prev_hash != self.chain.best_block_hash():
            raise BlockError("the block's prev_hash is not the best block's hash")
        # A certified block: more than 2/3 of the stake checked its proposer
        # and its missed-service list (a node that joined by snapshot, or
        # lags, may not hold the history they are computed from).
        if not certified and header.proposer != proposer_of(header.round):
            raise BlockError("the block's proposer is not the proposer of its round")
        if header.time < self._min_time() or header.time > now + MAX_FUTURE_S:
            raise BlockError("the block's time is out of range")
        self._check_deactivations(header.deactivated, justified)
        if not certified and header.missed != self._missed(header.deactivated):
            raise BlockError("the missed-service deactivations are not the ones this "
                             "chain's carried commits show")
        self._check_last_commit(block, verify_last_commit)
        if len(block.txids) > self.max_txs:
            raise BlockError("the block holds too many transactions")
        block.check()
        extra = [t for t in block.txids if t not in self._pending and t in decided]
        if len(extra) > MAX_DECIDED_PER_BLOCK and not certified:
            # Not refused: a node that lags still polls what the others
            # finalized; once those finalize here the block is checked again.
            raise MissingTransactions(extra)
        missing = [t for t in block.txids if t not in self._pending and t not in decided]
        if missing:
            raise MissingTransactions(missing)
        items = [self._pending.get(t) or decided[t] for t in block.txids]
        reward, muhash, set_hash = self._contents(header.height, items, header.deactivated,
                                                  header.missed)
        utxo_hash = muhash.digest()
        try:
            check_reward(block.reward_tx, self.network, header.height,
                         sum(i.fee for i in items), self._recipients())
        except ValueError as e:
            raise BlockError(str(e)) from None
        paid = reward.output_total - sum(i.fee for i in items) if reward else 0
        if header.reward != paid:
            raise BlockError("the block's reward field is not the reward due")
        if header.utxo_set_hash != utxo_hash:
            raise BlockError("utxo_set_hash is not the set after the block's transactions")
        if header.masternode_set_hash != set_hash:
            raise BlockError("masternode_set_hash is not the active set after the block")
        self._remember(block.hash, muhash)

    def _check_deactivations(self, deactivated, justified):
        """Each deactivated masternode is active, listed once in ascending
        order, and its deactivation is justified here."""
        if list(deactivated) != sorted(set(deactivated)):
            raise BlockError("the deactivations are not distinct and sorted")
        active = self.chain.registry.active_set()
        for pubkey in deactivated:
            if pubkey not in active:
                raise BlockError(f"deactivates {pubkey.hex()}, not in the active set")
            if justified is None or not justified(pubkey):
                raise BlockError(f"deactivates {pubkey.hex()} without evidence verified here")

    def _check_last_commit(self, block, verify_last_commit):
        if last_commit_hash(block.last_commit) != block.header.last_commit_hash:
            raise BlockError("last_commit_hash is not the hash of the carried commit")
        if block.height == 1:
            if block.last_commit:
                raise BlockError("the first block carries a commit")
            return
        if not block.last_commit:
            raise BlockError("the block carries no commit of the block before it")
        if verify_last_commit is None:
            raise BlockError("no carried commit can be verified here")
        verify_last_commit(block)

    def remove(self, txid):
        """``txid`` finalized here is unwound (a safety incident: a certified
        block conflicts with it); it leaves the unconfirmed list."""
        self._pending.pop(txid, None)
        self._folded.clear()

    def transactions(self, block):
        """The decoded transactions ``block`` confirms (reward excluded), in order."""
        return [self._pending[t].tx for t in block.txids]

    def spent_outpoints(self, block):
        """Every outpoint the block's transactions spend."""
        return [i.prevout for t in block.txids for i in self._pending[t].tx.inputs]

    def applied(self, block):
        """``block`` was committed: its transactions and reward leave the pending
        list and enter the checkpoint."""
        folded = self._folded.pop(block.hash, None)
        self._folded.clear()  # of this height: the next one starts from this block
        for txid in block.txids:
            item = self._pending.pop(txid)
            if folded is None:
                fold(self._checkpoint, item.tx, item.spent)
        if folded is not None:
            self._checkpoint = folded
        elif block.reward_tx is not None:
            fold(self._checkpoint, block.reward_tx, ())
