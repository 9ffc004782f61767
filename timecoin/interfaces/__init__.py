"""The components of a timecoin node, as ``zope.interface`` Interfaces.

The node (:mod:`timecoin.node.service`) composes one provider of each. The sans-I/O
cores (UTXO state, mempool, finality engines) are driven by method calls and an
injected clock; the I/O components (storage, peer network, API) return
Deferreds and never block the reactor thread. The interfaces are grouped by
layer in the submodules and all importable from here.
"""

from timecoin.interfaces.api import IRpcMethods
from timecoin.interfaces.consensus import IBftMachine, IEvidencePool
from timecoin.interfaces.finality import (
    IBlockApplyHost,
    IBlockHost,
    IBlockService,
    ICatchupHost,
    IDeadlines,
    IFinality,
    IFinalityEvents,
    IFinalityHost,
    IFinalitySync,
    ISnapshotInstaller,
    ISnapshotSource,
)
from timecoin.interfaces.ledger import (
    IBlockConsensus,
    IBlockLedger,
    IMasternodeRegistry,
    IMempool,
    ISnapshotAssembly,
    IUtxoState,
)
from timecoin.interfaces.network import (
    IListeningService,
    IPeer,
    IPeerMessaging,
    IPeerNetwork,
    IPeerPolicing,
)
from timecoin.interfaces.node import (
    IDaemonNode,
    INodeApi,
    INodeComponents,
    INodeMetrics,
    INodeQueries,
    ISignatureVerifier,
    IUtxoFlusher,
)
from timecoin.interfaces.proofs import IFinalityProofs
from timecoin.interfaces.storage import IJournal, ISnapshotStorage, IStorage, IStorageCheck

__all__ = [
    "IBftMachine", "IBlockApplyHost", "IBlockConsensus", "IBlockHost", "IBlockLedger",
    "IBlockService",
    "IEvidencePool",
    "ICatchupHost", "IDaemonNode", "IDeadlines", "IFinality",
    "IFinalityEvents", "IFinalityHost", "IFinalityProofs", "IFinalitySync", "IJournal",
    "IListeningService",
    "IMasternodeRegistry", "IMempool", "INodeApi", "INodeComponents", "INodeMetrics",
    "INodeQueries", "IPeer", "IPeerMessaging", "IPeerNetwork", "IPeerPolicing", "IRpcMethods",
    "ISignatureVerifier", "ISnapshotAssembly", "ISnapshotInstaller", "ISnapshotSource",
    "ISnapshotStorage", "IStorage",
    "IStorageCheck", "IUtxoFlusher", "IUtxoState",
]
