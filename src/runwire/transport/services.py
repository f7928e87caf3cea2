"""What the edge needs from the core, wired once by the app factory and held on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from runwire.auth.client_credentials import ClientCredentials
from runwire.auth.jwks import JwksKeys
from runwire.auth.key_files import KeyRing
from runwire.auth.service import AuthService
from runwire.auth.service_tokens import ServiceTokens
from runwire.auth.test_tokens import E2ETokens
from runwire.bus.base import EventBus
from runwire.chat import ChatService
from runwire.config import Settings
from runwire.connections.base import ConnectionRegistry
from runwire.limits.buckets import Clock
from runwire.readiness import Readiness
from runwire.revocations.base import Revocations
from runwire.runs.executor import RunExecutor
from runwire.store.store import Store
from runwire.telemetry.metrics import Metrics
from runwire.telemetry.traces import Tracing
from runwire.transport.flusher import Flusher
from runwire.usage.workload import Workload

__all__ = ["Services", "services_of"]


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: Store
    auth: AuthService
    # The access-token keys: the signing keys (roles all, auth; published at
    # /.well-known/jwks.json), or the issuer's published ones (role chat).
    keys: KeyRing | JwksKeys
    # Service tokens: verified on every node (the internal API, the revocation feed).
    service_tokens: ServiceTokens
    chat: ChatService
    bus: EventBus
    connections: ConnectionRegistry  # the per-user connection cap, over every node
    revocations: Revocations  # ended sessions, over every node: their sockets close
    executor: RunExecutor
    workload: Workload
    readiness: Readiness  # what /ready checks (runwire doctor runs the same)
    metrics: Metrics  # this app instance's measurements, exposed at /metrics
    tracing: Tracing  # this app instance's spans (recording only with an OTLP endpoint)
    clock: Clock  # monotonic seconds, for rate limits (tests pass a fake one)
    # POST /auth/test-token's issuer: only with RUNWIRE_TEST_TOKEN_KEY (never in production).
    e2e_tokens: E2ETokens | None = None
    # POST /auth/token's grant: on the nodes that issue tokens (roles all and auth).
    client_credentials: ClientCredentials | None = None
    # The one writer of the sockets with frames waiting (transport/flusher.py).
    flusher: Flusher = field(default_factory=Flusher)


def services_of(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services
