"""``runwire check``: the golden path, probed from outside as a client of any deployment.

A client written from docs/protocol.md: it imports nothing of the server (an import-linter
contract holds it to that). ``steps`` orders the steps by what each needs and runs them,
``walk`` is the steps, ``sessions`` signs in, ``exchanges`` speaks on the socket,
``transcript`` checks a run's events, ``client`` speaks HTTP and the WebSocket, ``report`` and
``rendering`` say what was found, and ``monitor`` repeats the walk and serves Prometheus metrics.
"""
