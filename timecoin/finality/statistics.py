"""The finality metrics, one list for every finality component.

:func:`finality_statistics` builds the ``IFinality.statistics()`` tuples
``(name, kind, doc, value)`` from plain counts, so a lone masternode
(:class:`~timecoin.finality.local.LocalFinality`) and Snowball
(:class:`~timecoin.finality.snowball.SnowballFinality`) expose the same names.
A ``"histogram"``'s value is ``{observed value: times}``; names ending in
``_seconds`` are observed in seconds.
"""


def finality_statistics(*, flips=0, polls=0, replies=0, missing=0, stalled_now=0, rounds=None,
                        votes=0, stalled=0, aborted=0, early=0, votes_per_poll=None,
                        round_trips_s=None):
    """The statistics tuples (see the module docstring); counts default to 0."""
    asked = replies + missing
    return [
        ("timecoin_snowball_preference_flips", "counter",
         "Preference changes in conflict sets", flips),
        ("timecoin_snowball_polls", "counter", "Polls finished", polls),
        ("timecoin_snowball_replies", "counter", "Validator replies received", replies),
        ("timecoin_snowball_missing_replies", "counter",
         "Sampled validators that did not answer in time", missing),
        ("timecoin_snowball_validator_response_rate", "gauge",
         "Share of sampled validators that answered", replies / asked if asked else 1.0),
        ("timecoin_snowball_stalled_transactions", "gauge",
         "Pending transactions whose conflict set is stalled", stalled_now),
        ("timecoin_snowball_rounds_per_tx", "histogram",
         "Poll rounds a transaction took to finalize (0: decided without polling)",
         dict(rounds or {})),
        ("timecoin_snowball_votes", "counter", "Votes counted in finished polls", votes),
        ("timecoin_snowball_stalled", "counter",
         "Transactions that reached max_rounds undecided (stalled)", stalled),
        ("timecoin_snowball_polls_aborted", "counter",
         "Polls not started: too little connected stake", aborted),
        ("timecoin_snowball_polls_early_terminated", "counter",
         "Polls ended before every sampled validator answered", early),
        ("timecoin_snowball_votes_per_poll", "histogram", "Votes counted per poll",
         dict(votes_per_poll or {})),
        ("timecoin_snowball_poll_round_trip_seconds", "histogram",
         "Time from sending a poll's query to a validator's reply", dict(round_trips_s or {})),
    ]
