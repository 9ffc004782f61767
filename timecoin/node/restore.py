"""The conflict sets a node voted on, saved before each vote and re-entered
after a restart.

:func:`conflict_set_batch` turns the finality engine's records into the rows
the journal commits (with the raw bytes of every member, from the mempool);
:func:`readmit` takes what the database read back at open, validates each
pending transaction again, loads its inputs, re-locks them (the first member
of a set holds them, the others are contenders) and rebuilds the records for
``IFinality.restore``.
"""

from twisted.logger import Logger

from timecoin.consensus.state import ConflictSetRecord
from timecoin.ledger.tx import TxRejected, check_stateless, decode_tx
from timecoin.storage.conflict_tables import ConflictSetBatch, StoredConflictSet

log = Logger()


def conflict_set_batch(records, mempool):
    """The :class:`ConflictSetBatch` saving ``records`` and their members' bytes."""
    batch = ConflictSetBatch()
    for record in records:
        members = tuple(txid for txid, _ in record.members)
        batch.sets.append(StoredConflictSet(record.outpoint, members, record.preferred))
        for txid in members:
            entry = mempool.get(txid)
            if entry is not None:
                batch.raws[txid] = entry.tx.raw
    return batch


def _readmit_one(tx, state, mempool):
    """Lock ``tx``'s inputs again (a contender if another member holds them);
    False if they are gone (a conflicting transaction was finalized)."""
    contender = False
    try:
        input_total = state.check_inputs(tx)
    except TxRejected as e:
        if e.code != "input-locked":
            return False
        input_total = state.check_inputs(tx, allow_locked=True)
        contender = True
    evicted = mempool.add(tx, input_total - tx.output_total, contender=contender)
    if evicted:
        log.warn("re-entering conflict sets evicted {n} transactions", n=len(evicted))
    if not contender:
        state.lock(tx, pending=True)
    return True


def readmit(restored, state, mempool, network_id):
    """``(txs, records)``: the pending transactions re-entered, and the saved
    conflict sets restricted to them."""
    if restored is None or not restored.sets:
        return [], []
    state.load(restored.utxos)
    entered = {}
    for txid, raw in restored.pending:
        try:
            tx = decode_tx(raw)
            check_stateless(tx, network_id)
            if tx.txid != txid or tx.txid in mempool:
                continue
            if _readmit_one(tx, state, mempool):
                entered[txid] = tx
        except (TxRejected, ValueError) as e:
            log.info("saved pending transaction {txid} not re-entered: {error}",
                     txid=txid.hex(), error=e)
    records = []
    for stored in restored.sets:
        members = tuple(
            (t, tuple(dict.fromkeys(i.prevout for i in entered[t].inputs)))
            for t in stored.members if t in entered)
        if members:
            records.append(ConflictSetRecord(stored.outpoint, members, stored.preferred))
    return list(entered.values()), records
