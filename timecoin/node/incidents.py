"""Unwinding transactions finalized here that a certified block overrules.

A certified block (more than 2/3 of the active stake signed it) that holds a
transaction conflicting with one this node finalized is a **safety incident**:
honest stake cannot produce it, so this node's own finality was wrong (forced,
eclipsed or faulty). The block wins. :func:`unwind_finalized` takes the local
transaction and every descendant spending its outputs back out of the node's
state, newest first: pending spenders in the mempool are rejected; finalized
ones leave the UTXO state (their outputs go, their inputs are unspent again),
the ledger's unconfirmed list and the journal's recent records. Each becomes
``rejected`` with a reason starting ``safety incident: `` -- the one case in
which a status leaves ``finalized``.
"""


def descendants(ledger, mempool, txid):
    """``(finalized, pending)``: the txids of the unconfirmed transactions in
    ``ledger`` (IBlockLedger) that spend, directly or through others, outputs
    of ``txid`` (``txid`` first, finality order), and the mempool's pending
    spenders of any of their outputs."""
    finalized = [txid]
    unwound = {txid}
    spenders = ledger.spenders()
    queue = [txid]
    while queue:
        parent = queue.pop()
        item = ledger.unconfirmed(parent)
        for op in item.tx.outpoints():
            child = spenders.get(op)
            if child is not None and child not in unwound:
                unwound.add(child)
                finalized.append(child)
                queue.append(child)
    pending = [entry_txid for entry_txid in _mempool_spenders(mempool, ledger, finalized)
               if entry_txid not in unwound]
    order = {t: n for n, t in enumerate(finalized)}
    finalized.sort(key=lambda t: (ledger.unconfirmed(t).seq or 0, order[t]))
    return finalized, pending


def _mempool_spenders(mempool, ledger, txids):
    outputs = {op for t in txids for op in ledger.unconfirmed(t).tx.outpoints()}
    found = []
    for entry_txid in mempool.txids():
        entry = mempool.get(entry_txid)
        if entry is not None and any(i.prevout in outputs for i in entry.tx.inputs):
            found.append(entry_txid)
    return list(dict.fromkeys(found))


def unwind_finalized(node, txid, reason):
    """Unwind ``txid``, finalized here, and its descendants from ``node``'s
    components (module docstring); each is ``rejected`` with ``reason``.
    Returns the txids unwound, newest first."""
    finalized, pending = descendants(node.block_ledger, node.mempool, txid)
    for spender in pending:
        node.reject_pending(spender, reason)
    out = []
    for unwound in reversed(finalized):
        item = node.block_ledger.unconfirmed(unwound)
        node.state.unwind(item.tx, item.spent)
        node.block_ledger.remove(unwound)
        node.journal.forget(unwound)
        node.mark_unwound(unwound, reason)
        out.append(unwound)
    return out
