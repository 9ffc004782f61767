"""What a :class:`~timecoin.consensus.simulation.Simulation` run did, seen from its honest nodes."""

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SimReport:
    """What happened in a run, seen from the honest nodes."""

    conflicting_finalizations: list = field(default_factory=list)
    status_changes: list = field(default_factory=list)
    split_decisions: list = field(default_factory=list)
    accepted_share: dict = field(default_factory=dict)
    decided_share: dict = field(default_factory=dict)
    rounds_to_accept: Counter = field(default_factory=Counter)
    finality_s: list = field(default_factory=list)
    preference_flips: int = 0
    polls: int = 0
    aborted_polls: int = 0
    stalled: int = 0
    messages: int = 0
    dropped: int = 0
    sim_time: float = 0.0

    @property
    def safe(self):
        """No two honest nodes finalized conflicting transactions; no status changed."""
        return not self.conflicting_finalizations and not self.status_changes



def build_report(sim):
    """A :class:`SimReport` of ``sim``'s honest nodes' decisions so far."""
    honest = sim.honest_nodes
    report = SimReport(
        polls=sum(n.polls.stats.started for n in honest),
        aborted_polls=sum(n.polls.stats.aborted for n in honest),
        messages=sim.messages_sent, dropped=sim.messages_dropped, sim_time=sim.now,
    )
    accepted_by_outpoint = {}
    for txid, outpoints in sim.txs.items():
        verdicts = [n.decisions[txid][0] for n in honest if txid in n.decisions]
        report.accepted_share[txid] = sum(verdicts) / len(honest)
        report.decided_share[txid] = len(verdicts) / len(honest)
        if any(verdicts) and not all(verdicts):
            report.split_decisions.append(txid)
        if any(verdicts):
            for op in outpoints:
                accepted_by_outpoint.setdefault(op, set()).add(txid)
    for op, txids in sorted(accepted_by_outpoint.items(), key=repr):
        if len(txids) > 1:
            report.conflicting_finalizations.append((op, sorted(txids)))
    for node in honest:
        seen = {}
        for txid, accepted in node.history:
            if seen.setdefault(txid, accepted) != accepted:
                report.status_changes.append((node.node_id, txid))
        for txid, (accepted, _, at) in node.decisions.items():
            if accepted:
                report.finality_s.append(at - sim.submitted_at[txid])
        report.rounds_to_accept.update(node.engine.stats.rounds_to_accept)
        report.preference_flips += node.engine.stats.preference_flips
        report.stalled += node.engine.stats.stalled
    return report
