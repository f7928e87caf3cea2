"""HTTP: tickets, threads, runs and their events, usage data (PROTOCOL.md, HTTP)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from pydantic import AfterValidator
from starlette.responses import Response

from runwire.errors import PayloadTooLarge
from runwire.events.model import MAX_SEQ
from runwire.transport.errors import ReloadRequiredBody, error_responses
from runwire.transport.event_stream import (
    MEDIA_TYPE,
    EventStream,
    parse_last_event_id,
    wants_event_stream,
)
from runwire.transport.params import PathId, refuse_nul
from runwire.transport.principal import CurrentPrincipal
from runwire.transport.replies import (
    ImportReport,
    Message,
    Run,
    RunEvents,
    RunReply,
    SampleLoaded,
    Thread,
    ThreadList,
    ThreadMessages,
    Ticket,
    UsageBatches,
    UsageDeleted,
    UsageSummary,
    User,
    UserReply,
)
from runwire.transport.services import services_of

__all__ = ["IMPORT_MEDIA_TYPES", "router"]

router = APIRouter(prefix="/api", tags=["api"], responses=error_responses(401))

_CSV_EXAMPLE = (
    "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms\n"
    "2026-11-01T09:30:00Z,openai,gpt-4o,1200,300,850\n"
)
_JSONL_EXAMPLE = (
    '{"timestamp": "2026-11-01T09:30:00Z", "provider": "openai", "model": "gpt-4o", '
    '"prompt_tokens": 1200, "completion_tokens": 300, "latency_ms": 850}\n'
)
IMPORT_MEDIA_TYPES = {
    "application/x-ndjson": _JSONL_EXAMPLE,
    "application/jsonl": _JSONL_EXAMPLE,
    "application/json-lines": _JSONL_EXAMPLE,
    "application/x-jsonlines": _JSONL_EXAMPLE,
    "text/csv": _CSV_EXAMPLE,
}
"""The content types ``POST /api/usage/import`` reads, each with an example body."""

_IMPORT_BODY = {
    "required": True,
    "description": (
        "The usage file itself, read by its `Content-Type`: JSON Lines (one JSON object a line) "
        "or CSV with a header line (docs/protocol.md, Usage records). UTF-8; invalid bytes "
        "become U+FFFD. Bad lines are reported and the good ones kept."
    ),
    "content": {
        media: {"schema": {"type": "string"}, "example": example}
        for media, example in IMPORT_MEDIA_TYPES.items()
    },
}


@router.get("/me", summary="The logged-in user")
async def me(principal: CurrentPrincipal, request: Request) -> UserReply:
    user = await services_of(request).auth.user(principal)
    return UserReply(user=User.model_validate(user.public()))


@router.post(
    "/ws-ticket", status_code=201, summary="A single-use ticket to open /ws from a browser"
)
async def ws_ticket(principal: CurrentPrincipal, request: Request) -> Ticket:
    auth = services_of(request).auth
    ticket = await auth.issue_ticket(principal)
    return Ticket(ticket=ticket, expires_in=auth.ticket_ttl_s)


@router.get("/threads", summary="The caller's threads, newest first")
async def threads(principal: CurrentPrincipal, request: Request) -> ThreadList:
    found = await services_of(request).chat.threads(principal.user_id)
    return ThreadList(threads=[Thread.model_validate(t.public()) for t in found])


@router.get(
    "/threads/{thread_id}/messages",
    summary="A thread's messages, oldest first",
    responses=error_responses(404, 422),
)
async def thread_messages(
    thread_id: PathId, principal: CurrentPrincipal, request: Request
) -> ThreadMessages:
    found = await services_of(request).chat.messages(principal.user_id, thread_id)
    return ThreadMessages(
        thread_id=thread_id, messages=[Message.model_validate(m.public()) for m in found]
    )


@router.get(
    "/runs/{run_id}", summary="A run's status and timings", responses=error_responses(404, 422)
)
async def run(run_id: PathId, principal: CurrentPrincipal, request: Request) -> RunReply:
    record = await services_of(request).chat.run(principal.user_id, run_id)
    return RunReply(run=Run.model_validate(record.public()))


# One server-sent event of the stream (as OpenAPI before 3.2 describes an event stream).
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "`<epoch>:<seq>`: the event's whole position."},
        "data": {
            "type": "string",
            "description": "The event's JSON, exactly the frame the WebSocket sent.",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/RunEvent"},
        },
    },
    "required": ["id", "data"],
}


@router.get(
    "/runs/{run_id}/events",
    summary="A run's events with seq > after, in order (as JSON, or as a stream of SSE)",
    description=(
        "JSON by default. With `Accept: text/event-stream`, server-sent events: the events after "
        "the position (`Last-Event-ID: <epoch>:<seq>` wins over `after` and `epoch`), then the "
        "run's live ones until its last event. A position that cannot be served whole is "
        "refused with 409 `reload_required`."
    ),
    response_model=RunEvents,
    responses={
        200: {
            "description": "The events as JSON, or (`Accept: text/event-stream`) as SSE: each "
            "message's `id` is `<epoch>:<seq>` and its `data` the event's JSON.",
            "content": {MEDIA_TYPE: {"schema": _SSE_EVENT}},
        },
        204: {"description": "SSE only: the run has ended and the position is its last event."},
        **error_responses(
            404,
            409,
            422,
            503,
            descriptions={
                409: "The position cannot be served whole (`reload_required`): reload.",
                503: "SSE with the Redis bus only: Redis does not answer (`unavailable`).",
            },
            models={409: ReloadRequiredBody},
        ),
    },
)
async def run_events(
    run_id: PathId,
    principal: CurrentPrincipal,
    request: Request,
    after: int = Query(0, ge=0, le=MAX_SEQ),
    epoch: str | None = Query(None, min_length=1, max_length=100),
    last_event_id: str | None = Header(
        None,
        alias="Last-Event-ID",
        description="SSE only: the `id` of the last event received, `<epoch>:<seq>`.",
    ),
) -> Response:
    services = services_of(request)
    if wants_event_stream(request.headers.get("accept")):
        if last_event_id is not None:
            epoch, after = parse_last_event_id(last_event_id)
        stream = EventStream(
            bus=services.bus,
            chat=services.chat,
            user_id=principal.user_id,
            run_id=run_id,
            revocations=services.revocations,
            session_id=principal.family_id,
            keepalive_s=services.settings.sse_keepalive_s,
            max_pending_bytes=services.settings.outbound_buffer_bytes,
            metrics=services.metrics,
        )
        return await stream.open(after, epoch)
    events = await services.chat.events(principal.user_id, run_id, after, epoch)
    # Each event as the very bytes the WebSocket sent (encoded once, when it was made).
    body = b"".join(
        (
            b'{"run_id":',
            orjson.dumps(run_id),
            b',"events":[',
            b",".join(e.wire for e in events),
            b"]}",
        )
    )
    return Response(body, media_type="application/json")


async def _body(request: Request, limit: int) -> list[bytes]:
    """The body as the chunks it arrived in: joining 20 MB would hold the event loop."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return chunks


UsageName = Annotated[
    str | None,
    Query(
        max_length=200,
        description="The file's name, shown with its batch (GET /api/usage/batches)",
    ),
    AfterValidator(lambda v: v if v is None else refuse_nul(v)),
]


@router.post(
    "/usage/import",
    summary="Import LLM-usage records (JSONL as application/x-ndjson, or CSV as text/csv)",
    description=(
        "Good lines are kept, bad ones reported. Records already stored are not added again "
        "(`already_present`); the new ones (`new`) form one batch (`batch_id`), which "
        "`DELETE /api/usage/batches/{batch_id}` removes."
    ),
    responses=error_responses(413, 415, 422, 429),
    response_model_exclude_unset=True,
    openapi_extra={"requestBody": _IMPORT_BODY},
)
async def usage_import(
    principal: CurrentPrincipal, request: Request, name: UsageName = None
) -> ImportReport:
    services = services_of(request)
    kind = services.workload.format_of(request.headers.get("content-type"), None)
    await services.workload.admit(principal.user_id)  # before reading up to 20 MB
    body = await _body(request, services.settings.max_import_bytes)
    report = await services.workload.import_body(principal.user_id, body, kind, name=name)
    return ImportReport.model_validate(report.public())


@router.post(
    "/usage/sample",
    status_code=201,
    summary="Load a generated, realistic usage set (once: a second load adds nothing)",
    responses=error_responses(429),
)
async def usage_sample(principal: CurrentPrincipal, request: Request) -> SampleLoaded:
    workload = services_of(request).workload
    await workload.admit(principal.user_id)
    loaded = await workload.load_sample(principal.user_id)
    body = loaded.public()
    del body["rejected"]  # a generated set has no lines to reject
    return SampleLoaded.model_validate(body)


@router.get("/usage/summary", summary="How many usage records the caller has")
async def usage_summary(principal: CurrentPrincipal, request: Request) -> UsageSummary:
    count = await services_of(request).workload.count(principal.user_id)
    return UsageSummary(records=count)


@router.get("/usage/batches", summary="The caller's import batches, newest first")
async def usage_batches(principal: CurrentPrincipal, request: Request) -> UsageBatches:
    found = await services_of(request).workload.batches(principal.user_id)
    return UsageBatches.model_validate({"batches": [b.public() for b in found]})


@router.delete(
    "/usage/batches/{batch_id}",
    summary="Delete one import batch's records",
    responses=error_responses(404, 422),
)
async def usage_delete_batch(
    batch_id: PathId, principal: CurrentPrincipal, request: Request
) -> UsageDeleted:
    deleted = await services_of(request).workload.delete(principal.user_id, batch_id)
    return UsageDeleted(deleted=deleted)


@router.delete("/usage/records", summary="Delete all of the caller's usage records")
async def usage_delete_all(principal: CurrentPrincipal, request: Request) -> UsageDeleted:
    deleted = await services_of(request).workload.delete(principal.user_id)
    return UsageDeleted(deleted=deleted)
