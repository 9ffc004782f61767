"""Finality: deciding transactions, catching up on decisions, publishing them."""

from zope.interface import Attribute, Interface


class IFinality(Interface):
    """Decides each transaction: finalized or rejected.

    A lone devnet masternode decides alone; the Snowball engine polls the
    masternodes. Either reports through the listeners added here, and either
    answers other nodes' Snowball queries once attached to the peer network.
    """

    max_in_flight = Attribute(
        "Back-pressure bound on transactions being decided, or None; stalled ones are "
        "not counted (see in_flight).")
    accepts_conflicts = Attribute(
        "True if a double spend of a pending transaction may be started too (finality "
        "decides between them); False if the first one holds its inputs.")
    poll_abort_reason = Attribute(
        "Why this node cannot poll now (e.g. too little connected stake), or None.")

    def attach(network, host):
        """Carry queries and votes over ``network`` (an ``IPeerMessaging``);
        ``host`` (an ``IFinalityHost``) says what the node knows of a txid."""

    def start(tx):
        """Begin deciding ``tx`` (already validated, its inputs locked unless a contender)."""

    def cancel(txid):
        """Stop deciding ``txid`` (evicted or expired) if it never entered a poll
        nor was voted on: return True, and no decision is reported. Return False
        otherwise: ``txid`` stays bound to its conflict sets until one member is
        finalized (its locks and mempool entry must stay)."""

    def can_forget(txid):
        """True if ``cancel(txid)`` would return True; changes nothing (the
        mempool asks before it evicts)."""

    def tx_settled(txid):
        """The node refused ``txid`` at entry: queries held for it are answered now."""

    def restore(txs, records):
        """After a restart: ``txs`` (validated again, locks taken unless contenders)
        were pending in the conflict sets ``records`` (``ConflictSetRecord``) this
        node voted on; decide them again, never voting for another member of a
        set than the one it voted for, until that set is decided."""

    def add_listener(callback):
        """``callback(txid, accepted, reason)`` is called once per decision."""

    def report_finalized(txid, outpoints, reporters):
        """Catch-up: masternodes ``reporters`` (public keys) say ``txid`` (spending
        ``outpoints``, already started here) is finalized. Applied at once only if
        they hold more than ``alpha`` of the active stake and ``txid`` conflicts
        with nothing pending; otherwise it is polled as usual. True if ``txid``
        was finalized by this report."""

    def set_masternodes(weights):
        """A block changed the active set: poll by ``weights`` (``{pubkey:
        weight}``) from now on."""

    def in_flight():
        """Number of transactions being decided, not counting stalled ones (they wait
        for the block layer and must not wedge back-pressure)."""

    def stalled():
        """Number of pending transactions whose conflict set is stalled."""

    def pending_reason(txid):
        """Why pending ``txid`` is not decided yet (``"stalled: ..."``), or None."""

    def stalled_sets():
        """The conflict sets with a stalled member, for the block proposer:
        ``[[(txid, confidence)]]``, members in arrival order."""

    def decide_by_block(txid, height):
        """A committed block at ``height`` confirms pending ``txid``: it is
        reported accepted (reason ``decided-by-block``) and its rivals rejected
        (``conflict: decided by block H``) through the listeners, synchronously;
        votes follow. Nothing happens if ``txid`` is not pending here."""

    def may_decide_by_block(txid):
        """True if this node may prevote a block that decides pending ``txid``:
        it never answered "yes" for another member of its conflict sets, and
        those sets were not reloaded after a restart."""

    def vote_for_block(txid):
        """Before this node prevotes a block deciding ``txid``: pin its conflict
        sets to it (this node answers "yes" for no rival from then on, saved
        with the next records). True if allowed (:meth:`may_decide_by_block`)."""

    def statistics():
        """Counters of the deciding process as ``(name, kind, documentation, value)``
        tuples, ``kind`` ``"counter"``, ``"gauge"`` or ``"histogram"`` (``value`` then
        ``{observed value: times}``); empty if there is nothing to count."""

    def stop():
        """Cancel the timers (queries held, polls pending)."""


class IFinalityHost(Interface):
    """What the finality component asks of the node about a transaction."""

    def finalized_recently(txid):
        """True if ``txid`` finalized here lately."""

    def is_validating(txid):
        """True while ``txid`` is being verified or its inputs are loading."""

    def have_tx(txid):
        """True if the node holds, is validating or has decided ``txid``."""

    def settled(txid):
        """True if the node decided ``txid`` itself (refused, finalized, rejected)."""

    def decision(txid):
        """True if ``txid`` finalized here, False if rejected here, None if unknown
        (without storage I/O: from what the node keeps in memory, including the
        last finalized txids read at start)."""

    def save_conflict_sets(records):
        """Make the conflict sets ``records`` (``ConflictSetRecord``) durable, with
        the raw bytes of their members; fire once they are (votes wait for it)."""


class ICatchupHost(Interface):
    """What finality catch-up asks of the node: its journal, and entering what
    other masternodes report (judged by ``IFinality.report_finalized``)."""

    def journal_page(after_seq, limit):
        """Fire with ``[(seq, raw)]`` of committed journal entries after
        ``after_seq`` that no block confirmed yet (below the last block a node
        catches up by block sync)."""

    def finalized_recently(txid):
        """True if ``txid`` finalized here lately."""

    def settled(txid):
        """True if the node decided ``txid`` itself (refused, finalized, rejected)."""

    def have_tx(txid):
        """True if the node holds, is validating or has decided ``txid``."""

    def finalized_here(txid):
        """Fire with True if ``txid`` is finalized here, in memory or in storage."""

    def submit_raw(raw, from_peer=False):
        """Validate, lock and start deciding a transaction as if a peer relayed it
        (``from_peer``); fire with its txid or fail with ``TxRejected``."""


class IFinalitySync(Interface):
    """Serves this node's finality journal and pulls the other masternodes'."""

    applied = Attribute("Number of transactions finalized directly by others' reports.")
    entered = Attribute("Number of reported transactions this node did not have and "
                        "entered (to be polled, or applied by the report).")
    requests = Attribute("Number of journal pages requested.")

    def attach(network):
        """Serve and request journal pages over ``network`` (an ``IPeerMessaging``)."""

    def poll():
        """Ask every connected masternode this node may be behind of."""

    def in_sync(pubkey):
        """True if masternode ``pubkey``'s last page brought nothing new."""


class IBlockHost(Interface):
    """What the block service asks of the node: the chain, the contents of
    blocks, and applying a committed one."""

    def load():
        """Replay what storage holds (blocks, unconfirmed transactions); fire when done."""

    def height():
        """The best block's height."""

    def block_at(height):
        """The committed ``Block`` at ``height`` (>= 1), or None."""

    def certificate_at(height):
        """Its ``CommitCertificate``, or None."""

    def validators():
        """``{pubkey: weight}`` of the active set (the set that signs the next block)."""

    def validators_at(height):
        """``{pubkey: weight}`` of the active set after the block at ``height``
        (0: the genesis set; the set that signed ``height + 1``), or None if
        not known here."""

    def build_block(round_, proposer, now, deactivations=()):
        """The block this node proposes at ``round_`` of the next height; it
        deactivates those of ``deactivations`` (public keys) that are active."""

    def block_bodies(height):
        """Fire with the raw transactions the committed block at ``height``
        confirms, in its order (reward excluded), or None if some are not held."""

    def check_block(block, proposer_of, now, justified=None, bodies=None):
        """Raise ``BlockError`` unless ``block`` is the valid next block here;
        ``MissingTransactions`` while some of its transactions are not finalized here.
        ``justified(pubkey)`` says whether evidence verified here justifies a
        deactivation the block makes (None: none is justified). ``bodies``
        (the raw transactions, block order) only for a block whose commit
        certificate verified here: it is valid if they apply here (certified
        apply: transactions unknown or pending here are checked and entered);
        a body that does not verify raises ``CertifiedBodyError``."""

    def commit_block(block, certificate, bodies=None):
        """Apply the committed ``block`` (checked valid) now: the chain, the UTXO
        state, the registry, finality's weights; fire once it is durable.
        ``bodies``: as given to ``check_block`` for a certified block."""


class IBlockApplyHost(Interface):
    """What applying a certified block asks of the node."""

    def finalize_by_block(tx, height):
        """The certified block at ``height`` confirms ``tx``, not finalized
        here (checked against the UTXO state): rivals pending here are rejected
        (``conflict: decided by block H``), ``tx`` takes its inputs and is
        finalized with its journal record, never to be polled."""

    def unwind_finalized(txid, reason):
        """A certified block overrules ``txid``, finalized here (a safety
        incident): it and every descendant spending its outputs are unwound
        (UTXO state, mempool, unconfirmed list, journal) and ``rejected`` with
        ``reason`` (``safety incident: ...``); return their txids."""

    def report_safety_incident(line):
        """A certified block conflicts with a transaction finalized here
        (``line`` names both and the height): logged at critical level,
        counted in ``timecoin_safety_incidents_total``, shown in ``/health``."""


class IBlockService(Interface):
    """Runs the BFT rounds that commit blocks, and serves and fetches blocks."""

    height = Attribute("The height being decided (best block + 1), None before start.")

    def attach(network):
        """Carry proposals, votes and blocks over ``network`` (an ``IPeerMessaging``)."""

    def is_validator():
        """True if this node votes at the current height."""

    def statistics():
        """Block metrics as ``(name, kind, documentation, value)`` tuples (as
        ``IFinality.statistics``)."""


class IFinalityEvents(Interface):
    """Pushes this node's finality decisions to the peers that subscribed."""

    subscribers = Attribute("Number of subscribed peers.")

    def attach(network):
        """Take ``subscribe`` messages from ``network`` (an ``IPeerMessaging``)."""

    def publish(txid, accepted, reason, finality_ms):
        """Send one decision to every subscriber, and report it to the listeners."""

    def add_listener(callback):
        """``callback(txid, accepted, reason, finality_ms)`` is called for every
        decision published (finalized once durable, or rejected), subscribers or not."""


class IDeadlines(Interface):
    """Items that each expire at a deadline, on one timer of an injected clock."""

    def schedule(timeout, item):
        """Expire ``item`` ``timeout`` seconds from now unless it is done by then."""

    def pending():
        """Number of scheduled items neither done nor expired."""

    def stop():
        """Cancel the timer; nothing scheduled expires any more."""


class ISnapshotSource(Interface):
    """What a node serves of its UTXO snapshots (doc/sync.md)."""

    def newest_offer():
        """Fire with ``(manifest bytes, registry bytes, proof bytes, block
        bytes)`` of the newest snapshot this node serves, or None."""

    def chunk(height, index):
        """Fire with the bytes of chunk ``index`` of the snapshot at
        ``height``, or None if it is not held."""


class ISnapshotInstaller(Interface):
    """Where a fetched and checked snapshot goes (doc/sync.md)."""

    def install(fetched):
        """Make ``fetched`` (a ``timecoin.finality.snapshot_sync.FetchedSnapshot``)
        the node's state, atomically; a Deferred."""
