"""What answers a run: the chat model, when one is configured, and the agent function the run
executor calls for each run (the ``Supervisor`` over the run's context).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial

from runwire.agents import AgentContext, ChatModel, OfflineProvider, Supervisor
from runwire.agents.chat_model import RetryPolicy
from runwire.config import ModelFallback, Settings
from runwire.domain.usage import UsageRecord
from runwire.events.redaction import Redactor
from runwire.runs.executor import AgentFn, Emit, RunInput
from runwire.store.store import Store
from runwire.telemetry.traces import Tracing
from runwire.usage.pricing import PricingTable

__all__ = ["build_agent", "build_chat_model"]


@asynccontextmanager
async def build_chat_model(settings: Settings) -> AsyncIterator[ChatModel | None]:
    """With RUNWIRE_LLM_BASE_URL, the model that drives the tools (its connection pool is
    closed on the way out); without it None: the offline agents answer."""
    if not settings.llm_base_url:
        yield None
        return
    # Imported here: the SDK takes seconds to import on a busy machine, and only a server with a
    # model configured needs it (the CLI and offline servers start without it).
    from runwire.agents.openai_model import OpenAIChatModel

    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    async with OpenAIChatModel(
        base_url=settings.llm_base_url,
        api_key=key,
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
        retry=RetryPolicy(settings.llm_max_retries, settings.llm_retry_base_s),
    ) as model:
        yield model


def build_agent(
    settings: Settings,
    store: Store,
    pricing: PricingTable,
    tracing: Tracing | None = None,
    model: ChatModel | None = None,
) -> AgentFn:
    llm = OfflineProvider(settings.offline_delay_ms)
    supervisor = Supervisor()
    redactor = Redactor(max_chars=settings.event_value_max_chars)

    async def run_agent(run: RunInput, emit: Emit) -> str:
        loaded: list[Sequence[UsageRecord]] = []

        async def load_usage() -> Sequence[UsageRecord]:
            # Every tool of the run reads the same data: one read per run, not one per tool; its
            # records are read only if a tool needs what the store's summary does not answer.
            if not loaded:
                loaded.append(await store.usage.usage_of(run.user_id, version=run.usage_version))
            return loaded[0]

        ctx = AgentContext(
            run_id=run.run_id,
            question=run.question,
            history=run.history,
            load_usage=load_usage,
            emit=emit,
            llm=llm,
            tool_timeout_s=settings.tool_timeout_s,
            llm_timeout_s=settings.llm_timeout_s,
            redactor=redactor,
            pricing=pricing,
            tracing=tracing,
            model=model,
            model_fallback=settings.llm_fallback is ModelFallback.OFFLINE,
            keep_model_usage=partial(store.runs.set_model_usage, run.run_id),
            # Kept with the run's end (the executor writes it with it), not written now.
            keep_quality=run.keeps.keep_quality,
            # A plain function given as the emitter (as tests do) emits a batch one by one.
            emit_batch=getattr(emit, "emit_batch", None),
        )
        return await supervisor.run(ctx)

    return run_agent
