"""Domain types: the nouns every layer shares, at the bottom of the house.

Each module holds one concept and imports nothing of runwire but :mod:`runwire.errors` (an
import-linter contract keeps it so), so the store, the pure protocol core and the agents' pure
analytics can all name a run's status or a usage record without importing one another:

- :mod:`~runwire.domain.run_status`: a run's status and the moves between them;
- :mod:`~runwire.domain.concurrency`: what a message does when its thread is busy;
- :mod:`~runwire.domain.usage`: a user's LLM-call records and the views of them;
- :mod:`~runwire.domain.ids`: opaque ids and run epochs;
- :mod:`~runwire.domain.clock`: the wall clock in epoch milliseconds.
"""
