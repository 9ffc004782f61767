"""The ``timecoin`` plugin for twistd and twist."""

from twisted.application.service import ServiceMaker

timecoin = ServiceMaker(
    "timecoin",
    "timecoin.tap",
    "A timecoin full node (instant-finality UTXO cryptocurrency).",
    "timecoin",
)
