"""A whole-node deterministic simulator: real nodes, one clock, in-memory links.

See doc/simulator.md. :class:`~timecoin.sim.cluster.Cluster` builds N complete
nodes on one :class:`~timecoin.sim.clock.SimClock`, joined by a
:class:`~timecoin.sim.network.SimNetwork` whose links have seeded latency,
loss, reordering and partitions.
"""
