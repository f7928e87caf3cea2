"""SQL text made once for the hot paths (store/statements.py): a statement compiled for the
driver and run with positional parameters, and the bulk INSERT texts of each driver's
placeholder style (tests/integration/test_store_contract.py runs them on both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import BigInteger, Column, MetaData, String, Table, bindparam, create_engine, select
from sqlalchemy.dialects import postgresql, sqlite

from runwire.store.prepared import prepare
from runwire.store.statements import columns_insert, positional_insert

pytestmark = pytest.mark.unit

TABLE = Table(
    "things",
    MetaData(),
    Column("id", String(20), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)


def test_positional_inserts_use_each_drivers_placeholders() -> None:
    assert positional_insert("qmark", "things", ["id", "seq"]) == (
        "INSERT INTO things (id, seq) VALUES (?, ?)"
    )
    assert positional_insert("format", "things", ["id", "seq"], skip_existing=True) == (
        "INSERT INTO things (id, seq) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    )
    assert positional_insert("numeric_dollar", "things", ["id", "seq"], rows=3) == (
        "INSERT INTO things (id, seq) VALUES ($1, $2), ($3, $4), ($5, $6)"
    )
    with pytest.raises(ValueError, match="unsupported paramstyle named"):
        positional_insert("named", "things", ["id"])


def test_a_columns_insert_takes_one_typed_array_a_column() -> None:
    assert columns_insert(TABLE, postgresql.asyncpg.dialect()) == (
        "INSERT INTO things (id, seq) SELECT * FROM unnest($1::VARCHAR(20)[], $2::BIGINT[])"
    )
    assert columns_insert(TABLE, postgresql.asyncpg.dialect(), skip_existing=True).endswith(
        "[]) ON CONFLICT DO NOTHING"
    )


def test_a_prepared_statement_runs_with_its_parameters_by_name_and_keeps_the_rest() -> None:
    statement = select(TABLE.c.id).where(TABLE.c.seq > bindparam("after"), TABLE.c.id != "skipped")
    prepared = prepare(statement.order_by(TABLE.c.seq), sqlite.pysqlite.dialect())
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            TABLE.create(conn)
            conn.execute(
                TABLE.insert(),
                [{"id": "a", "seq": 1}, {"id": "skipped", "seq": 2}, {"id": "c", "seq": 3}],
            )
            assert [row[0] for row in prepared.run(conn, after=0)] == ["a", "c"]
            assert [row[0] for row in prepared.run(conn, after=1)] == ["c"]
            # A parameter not given keeps the value it was built with (None: seq > NULL).
            assert [row[0] for row in prepared.run(conn)] == []
    finally:
        engine.dispose()
