"""A run's toolbox: :data:`~runwire.agents.tools.TOOLS` bound to one run's records and price
table, each called by name with its arguments as a model (or an offline agent) gives them.

Arguments are validated against the tool's model (bad ones are an :class:`InputError` saying
which). A tool over a :class:`UsageView` whose records are not read yet answers from the digest in
its memo when it can; when it needs the records, they are read first, off the event loop, and it
runs again (:func:`with_records`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from runwire.agents.tools import TOOLS, Bench, Tool
from runwire.domain.usage import RecordsNotRead, UsageRecord, UsageView
from runwire.errors import InputError
from runwire.usage.pricing import PricingTable

__all__ = ["Toolbox", "with_records"]

T = TypeVar("T")


async def with_records(records: Sequence[UsageRecord], compute: Callable[[], T]) -> T:
    """``compute()``, which reads ``records``; if they are a :class:`UsageView` whose records
    are not read yet and it needs them (what the digest in its memo does not answer), they are
    read first, off the event loop, and it runs again. The analyses keep nothing of a run that
    stopped half-way (a memoized result is kept once computed), so running again is safe."""
    try:
        return compute()
    except RecordsNotRead:
        return await _read_first(records, compute)


class Toolbox:
    """:data:`TOOLS` bound to one run's records and price table."""

    def __init__(
        self,
        records: Sequence[UsageRecord],
        pricing: PricingTable,
        tools: Sequence[Tool] = TOOLS,
    ) -> None:
        self._bench = Bench(records, pricing)
        self._tools = {tool.name: tool for tool in tools}

    @property
    def names(self) -> tuple[str, ...]:
        """The tools' names."""
        return tuple(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        """Every tool as a function definition, to offer a model."""
        return [tool.definition() for tool in self._tools.values()]

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        """Run tool ``name`` with ``args``; an unknown tool or bad arguments raise InputError."""
        result = self.call_now(name, args)
        return await result if inspect.isawaitable(result) else result

    def call_now(self, name: str, args: dict[str, Any]) -> Any:
        """:meth:`call`, at once: its result, or (when the tool needs records of a
        :class:`UsageView` not read yet) an awaitable of it that reads them first. What most
        calls need is in the records' memo, and a plain result lets ``AgentContext.call_tool``
        skip arming the tool timeout (docs/benchmarks.md, "Hot path, session 13")."""
        tool = self._tools.get(name)
        if tool is None:
            raise InputError(f"no tool named {name!r}; tools: {', '.join(self._tools)}")
        try:
            parsed = tool.arguments.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InputError(f"bad arguments for {name}: {problems}") from None
        records = self._bench.records

        def compute() -> Any:
            return tool.run(self._bench, parsed)

        try:
            return compute()
        except RecordsNotRead:
            return _read_first(records, compute)

    def function(self, name: str) -> Callable[..., Any]:
        """Tool ``name`` as a function of its arguments, for ``AgentContext.call_tool``: it
        returns the result, or an awaitable of it (see :meth:`call_now`)."""

        def run(**args: Any) -> Any:
            return self.call_now(name, args)

        return run


async def _read_first(records: Sequence[UsageRecord], compute: Callable[[], T]) -> T:
    """``compute()`` again once ``records`` (a :class:`UsageView`) are read, off the event loop
    (see :func:`with_records`)."""
    assert isinstance(records, UsageView)
    await records.read()
    return compute()
