"""Run dispatch: the queue that hands accepted runs to a node, and the per-run leases that say
which node runs each one (``base``: the port; ``memory``: one process; ``redis``: several nodes)."""
