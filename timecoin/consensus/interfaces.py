"""The contracts of the Snowball core, as ``zope.interface`` Interfaces.

:class:`ISnowballEngine` is the decision state of one node (preferences,
counters, decisions, durable conflict-set records); :class:`IPollManager`
runs polls over the stake-weighted active set for it. Both are sans-I/O: the
finality service (:mod:`timecoin.finality.snowball`) and the simulation drive
them with method calls and an injected clock. See ``doc/snowball.md``.
"""

from zope.interface import Attribute, Interface


class ISnowballEngine(Interface):
    """Snowball over conflict sets; decisions are ``(txid, accepted, reason)`` tuples."""

    params = Attribute("The SnowballParams in force.")
    stats = Attribute("EngineStats: polls, rounds, flips, accepted, rejected, stalled, reports.")

    def add(txid, outpoints):
        """A validated transaction entered (joins or opens conflict sets); return decisions."""

    def cancel(txid):
        """Forget ``txid`` if it was never polled nor voted on; True if forgotten."""

    def can_forget(txid):
        """True if ``cancel(txid)`` would forget it (pending, never polled nor voted on)."""

    def status(txid):
        """``"pending"``, ``"accepted"``, ``"rejected"`` or None."""

    def snapshot(txid):
        """A TxSnapshot of a pending transaction (counters, stalled, reason), or None."""

    def is_contested(txid):
        """True if pending ``txid`` has (had) a conflicting transaction."""

    def is_stalled(txid):
        """True if pending ``txid`` ran ``max_rounds`` polls undecided."""

    def conflicts(txid):
        """The pending transactions sharing an outpoint with ``txid``."""

    def is_preferred(txid):
        """This node's vote on ``txid`` (decisions, then ``lookup``, then preferences)."""

    def votes(txids):
        """The answer to a query; records the conflict sets voted on as dirty."""

    def dirty_records():
        """ConflictSetRecords changed by votes since the last call: persist before sending."""

    def restore(records):
        """Reload saved records after a restart (pins each set's voted side); decisions."""

    def in_flight(limit=None, contested=True):
        """The next poll's batch, oldest first; stalled transactions back off."""

    def record_poll(results):
        """One finished poll ``{txid: (yes, sample_size)}``; return decisions."""

    def stalled_sets():
        """The conflict sets with a stalled member: ``[[(txid, confidence)]]``."""

    def decide_by_block(txid, height):
        """A committed block at ``height`` confirms pending ``txid``: accept it,
        reject its rivals; return the decisions."""

    def may_decide_by_block(txid):
        """True if this node may vote for a block deciding pending ``txid`` (it
        never answered "yes" for a rival, and the set was not reloaded)."""

    def vote_for_block(txid):
        """Pin ``txid``'s sets to it before voting for a block deciding it;
        True if allowed (:meth:`may_decide_by_block`)."""

    def report_finalized(txid, outpoints, trusted):
        """Catch-up information: applied only if ``trusted`` and unconflicted; decisions."""

    def __len__():
        """The number of pending transactions."""


class IPollManager(Interface):
    """Samples the whole active set by stake, batches queries, tallies replies."""

    engine = Attribute("The ISnowballEngine fed with finished polls.")
    stats = Attribute("PollStats: started, completed, early_terminated, expired, aborted, ...")
    abort_reason = Attribute("Why the last attempt to poll started nothing, or None.")
    polls_in_flight = Attribute("Polls started and not finished.")
    query_timeout_s = Attribute("A poll's deadline after its start, in seconds.")

    def set_validators(weights, connected=None):
        """The active set ``{id: stake}`` (this node may be in it) and the connected ids."""

    def set_connected(connected):
        """The validator ids this node can reach now."""

    def reachable_stake():
        """``(reachable, total)`` active stake, this node included."""

    def has_quorum():
        """True if the reachable stake is at least ``alpha`` of the active stake."""

    def trusted_report(reporters):
        """True if ``reporters`` hold more than ``alpha`` of the active stake."""

    def report_finalized(txid, outpoints, reporters):
        """Catch-up: peers report ``txid`` finalized; return the engine's decisions."""

    def can_start():
        """True if a poll may start now (counts and explains an abort for lack of stake)."""

    def start_poll(now):
        """Start a poll; return the Query list to send (unreachable validators get none)."""

    def on_reply(poll_id, validator, votes):
        """A reply; return decisions if it ended the poll (early termination included)."""

    def on_tick(now):
        """Expire polls whose deadline passed; return their decisions."""

    def next_deadline():
        """The earliest deadline in flight, or None."""

    def cancel(txid):
        """Cancel ``txid`` in the engine if it was never polled; True if forgotten."""

    def can_forget(txid):
        """True if ``cancel(txid)`` would forget it; changes nothing."""
