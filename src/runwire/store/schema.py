"""The SQL schema (SQLAlchemy Core). Portable: the same tables run on SQLite and PostgreSQL.

Times are epoch milliseconds (BigInteger) so ordering and arithmetic are identical on both
databases; ``pk`` integer columns give a total insertion order where two rows share a millisecond.
Migrations in ``store/migrations`` must match this module (a test compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "LEGACY_EPOCH",
    "client_assertions",
    "messages",
    "metadata",
    "outside_identities",
    "refresh_tokens",
    "run_events",
    "runs",
    "service_clients",
    "threads",
    "token_families",
    "usage_batches",
    "usage_records",
    "usage_summaries",
    "usage_versions",
    "users",
    "ws_tickets",
]

LEGACY_EPOCH = "0"
"""The epoch of runs stored before runs had one (migration 0002)."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# The users of outside OpenID Connect issuers: each (issuer, subject) is one runwire user, made
# on first sight (the primary key makes concurrent first requests agree on one). The user's row
# in ``users`` has no password and an address that cannot sign in; ``email`` here is the one the
# issuer vouches for, shown to the user, never used to find or merge an account.
outside_identities = Table(
    "outside_identities",
    metadata,
    Column("issuer", String(2000), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column(
        "user_id",
        String(40),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("email", String(320), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

token_families = Table(
    "token_families",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("revoked_reason", String(40), nullable=True),
    # The revocation feed (GET /auth/revocations) reads the sessions ended lately.
    Index("ix_token_families_revoked_at", "revoked_at"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "family_id",
        String(40),
        ForeignKey("token_families.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

ws_tickets = Table(
    "ws_tickets",
    metadata,
    Column("ticket_hash", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("family_id", String(40), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

threads = Table(
    "threads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_threads_user_updated", "user_id", "updated_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("thread_id", String(40), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(40), nullable=False),
    Column("role", String(20), nullable=False),
    Column("content", Text, nullable=False),
    Column("run_id", String(40), nullable=True),
    Column("client_message_id", String(100), nullable=True),
    Column("partial", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_messages_thread_pk", "thread_id", "pk"),
    UniqueConstraint("user_id", "client_message_id", name="uq_messages_user_client_id"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("thread_id", String(40), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(40), nullable=False, index=True),
    Column("message_id", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("error_code", String(40), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("last_seq", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=True),
    Column("ended_at", BigInteger, nullable=True),
    # The numbering of the run's events that clients' positions refer to (new_epoch()). The
    # server default only fills runs stored before epochs existed: SQLite cannot add a NOT NULL
    # column without one, nor drop it again without rebuilding the table.
    Column("epoch", String(16), nullable=False, server_default=LEGACY_EPOCH),
    Column("trimmed_at", BigInteger, nullable=True),
    # What the run's model turns took (migration 0009); NULL for runs answered offline.
    Column("model_name", String(200), nullable=True),
    Column("model_requests", Integer, nullable=True),
    Column("model_prompt_tokens", BigInteger, nullable=True),
    Column("model_completion_tokens", BigInteger, nullable=True),
    Column("model_cost_usd", Float, nullable=True),
    # The quality gate's verdict on the answer (migration 0010): its score, "passed",
    # "replaced" or "failed", and the reasons as a JSON list; NULL for a run with no answer.
    Column("quality_score", Float, nullable=True),
    Column("quality_outcome", String(16), nullable=True),
    Column("quality_reasons", Text, nullable=True),
    Index("ix_runs_ended_at", "ended_at"),
    Index("ix_runs_status_created", "status", "created_at"),
    Index("ix_runs_thread_created", "thread_id", "created_at"),
    Index("ix_runs_user_status", "user_id", "status"),
)

run_events = Table(
    "run_events",
    metadata,
    # A row holds one event, or a block of one run's consecutive events written in one batch:
    # ``seq`` is the first one's, ``last_seq`` the last one's (NULL: a single event), ``type``
    # the first one's, and ``body`` their wire frames joined by newlines (compact JSON has none).
    # One row per run per batch instead of one per event: SQLite spends ~5 µs of CPU per row.
    Column("run_id", String(40), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("last_seq", Integer, nullable=True),
)

usage_batches = Table(
    "usage_batches",
    metadata,
    # What one import (or the sample) added, so a user can delete it again. ``source`` is
    # "import", "sample" (at most one per user: its id is made from the user's) or "earlier"
    # (the records stored before batches existed, migration 0006); ``name`` is the file's.
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(20), nullable=False),
    Column("name", String(200), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # The batch's records summarized (store/summary.py, JSON), kept as they are added; NULL when
    # unknown: batches stored before summaries (migration 0011), and a batch being deleted.
    Column("summary", Text, nullable=True),
    Index("ix_usage_batches_user_created", "user_id", "created_at"),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column(
        "batch_id",
        String(40),
        ForeignKey("usage_batches.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # Who the record is, for idempotent imports: a hash of its content and of how many equal
    # records came before it in the same import (store/usage.py, record_keys).
    Column("record_key", String(64), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("provider", String(100), nullable=False),
    Column("model", String(200), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("status", String(10), nullable=False),
    Column("prompt_hash", String(200), nullable=True),
    Column("feature", String(200), nullable=True),
    # One index for both: a user's records in time order, and no record stored twice. The key
    # is a hash, so alone it would scatter each slice of an import over the whole index (on
    # SQLite, a slice of 500 rows wrote about 2 MB of pages); after the time, a slice's keys
    # sit together.
    UniqueConstraint("user_id", "timestamp", "record_key", name="uq_usage_records_user_ts_key"),
)

usage_versions = Table(
    "usage_versions",
    metadata,
    # Bumped in the transaction of every import: a user's cached usage set is still current
    # while this is unchanged, which one key lookup per run can tell.
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

usage_summaries = Table(
    "usage_summaries",
    metadata,
    # The user's records summarized (the merge of their batches' summaries), as of ``version``
    # of usage_versions, written in the transaction that made that version: a reader that finds
    # the versions equal has the summary of the records it would read. ``body`` is what the
    # next import merges into (hundreds of kilobytes: every prompt hash); ``digest`` what a
    # question reads (a few kilobytes).
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("digest", Text, nullable=False),
)

service_clients = Table(
    "service_clients",
    metadata,
    # A service that may get service tokens (client credentials, RFC 6749 section 4.4). It proves
    # who it is with a secret (kept as its SHA-256: the secret is 256 random bits) or with
    # assertions signed by the private key of ``public_key`` (PEM; RFC 7523), never both.
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=True),
    Column("public_key", Text, nullable=True),
    Column("scopes", String(1000), nullable=False),  # space-separated, as OAuth writes them
    Column("audience", String(300), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger, nullable=True),
)

client_assertions = Table(
    "client_assertions",
    metadata,
    # The ``jti`` of each client assertion accepted, until it expires: an assertion is good once.
    Column(
        "client_id",
        String(40),
        ForeignKey("service_clients.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("jti", String(200), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)
