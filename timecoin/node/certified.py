"""Certified apply: checking the bodies that came with a certified block.

A block whose commit certificate verified here (more than 2/3 of the active
stake of its height precommitted it) is the authority on what its
transactions are. :func:`plan_certified` checks the raw bodies that came with
it against this node's state, in block order, and says what applying it does
to each transaction:

* finalized here (in the unconfirmed list): confirmed as for any block;
* pending or unknown here: its signatures and inputs checked (an input may
  be an output of an earlier transaction of the same block), then entered
  as finalized by the block (``items``, with its undo data);
* spending an output that a transaction this node *finalized* spent: a
  **safety incident** (``incidents``): the block wins, the local one and its
  descendants are unwound.

A body that does not verify (bad signature, an input that exists nowhere and
that no incident explains, an output spent twice, outputs above inputs) makes
the block invalid: :class:`CertifiedBodyError` (the peer that sent it lies).
Inputs not in memory make it raise :class:`InputsNotLoaded` first: the caller
loads them from storage and checks again.
"""

from dataclasses import dataclass

from timecoin.ledger.block import BlockError, decode_bodies
from timecoin.ledger.checkpoint import CertifiedBodyError, MissingTransactions, Unconfirmed
from timecoin.ledger.tx import (
    KIND_BLOCK_REWARD,
    TxRejected,
    check_signatures,
    check_structure,
    pubkey_matches,
)
from timecoin.ledger.utxo import UtxoStatus

#: Statuses of an output that a transaction of a certified block may spend.
SPENDABLE = (UtxoStatus.UNSPENT, UtxoStatus.LOCKED, UtxoStatus.SPENT_PENDING)


class InputsNotLoaded(MissingTransactions):
    """Inputs of a certified block's transactions are not in memory: ``outpoints``
    (load them from storage, then check again)."""

    def __init__(self, outpoints):
        BlockError.__init__(self, f"{len(outpoints)} inputs of the block are being loaded")
        self.txids = ()
        self.outpoints = tuple(outpoints)


@dataclass(frozen=True)
class CertifiedPlan:
    """What applying a certified block does here: ``items`` maps each of its
    txids not finalized here to its :class:`Unconfirmed` (``seq`` None);
    ``incidents`` lists
    ``(local txid, winning txid)`` of the transactions finalized here that a
    transaction of the block conflicts with."""

    items: dict
    incidents: tuple


def plan_certified(block, bodies, network_id, ledger, state, loaded=frozenset()):
    """Check ``bodies`` (raw transactions, the block's order) of certified
    ``block`` against ``ledger`` (IBlockLedger) and ``state`` (IUtxoState):
    a :class:`CertifiedPlan`, or raise (module docstring). ``loaded``: the
    outpoints already asked of storage (absent there if absent here)."""
    try:
        txs = decode_bodies(block, bodies)
    except BlockError as e:
        raise CertifiedBodyError(str(e)) from None
    spenders = ledger.spenders()
    created = {}  # outpoint -> (amount, key_hash), outputs of earlier transactions
    spent_here = set()
    items, incidents, absent = {}, [], []
    for tx, txid in zip(txs, block.txids, strict=True):
        if txid in ledger:
            spent_here.update(i.prevout for i in tx.inputs)
            continue
        try:
            check_structure(tx, network_id)
            if tx.kind == KIND_BLOCK_REWARD:
                raise TxRejected("unsupported-kind", "a reward transaction among the txids")
            check_signatures(tx)
        except TxRejected as e:
            raise CertifiedBodyError(f"transaction {txid.hex()}: {e}") from None
        spent = []
        for txin in tx.inputs:
            op = txin.prevout
            if op in spent_here:
                raise CertifiedBodyError(f"{op} is spent twice in the block")
            spent_here.add(op)
            undo = _undo_of(op, created, state, ledger, spenders)
            if undo is None:
                if op not in loaded and state.missing([op]):
                    absent.append(op)
                    continue
                raise CertifiedBodyError(f"transaction {txid.hex()} spends {op}, "
                                         "which is not unspent here")
            if not pubkey_matches(txin, undo[1]):
                raise CertifiedBodyError(f"transaction {txid.hex()}: its key does not own {op}")
            local = spenders.get(op)
            if local is not None:
                incidents.append((local, txid))
            spent.append(undo)
        for op, out in zip(tx.outpoints(), tx.outputs, strict=True):
            created[op] = (out.amount, out.key_hash)
        if len(spent) == len(tx.inputs):
            fee = sum(a for a, _ in spent) - tx.output_total
            if fee < 0:
                raise CertifiedBodyError(f"transaction {txid.hex()}: outputs exceed inputs")
            items[txid] = Unconfirmed(None, tx, tuple(spent), fee)
    if absent:
        raise InputsNotLoaded(absent)
    return CertifiedPlan(items, tuple(dict.fromkeys(incidents)))


def _undo_of(op, created, state, ledger, spenders):
    """``(amount, key_hash)`` of ``op`` if a transaction of the block may spend
    it: an output of an earlier one, an output spendable here, or one a
    transaction finalized here spent (an incident); else None."""
    if op in created:
        return created.pop(op)
    entry = state.get(op)
    if entry is not None and entry.status in SPENDABLE:
        return (entry.amount, entry.key_hash)
    local = spenders.get(op)
    if local is not None:
        item = ledger.unconfirmed(local)
        index = [i.prevout for i in item.tx.inputs].index(op)
        return item.spent[index]
    return None
