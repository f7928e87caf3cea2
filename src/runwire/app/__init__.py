"""The app factory: the one place where runwire's parts are built and wired together.

``create_app(settings)`` (``app/factory.py``) builds nothing that does work: the database, the
event bus, the run queue, this node's runs and the retention task start in its lifespan. Its
parts, one concept a module: ``backends`` (in process or in Redis), ``agent`` (the model and the
agent a run calls), ``tokens`` (keys, tokens and revocations), ``monitoring`` (gauges, probes,
the metrics listener), ``middleware`` and ``routes`` (what a role serves).
"""

from runwire.app.factory import create_app

__all__ = ["create_app"]
