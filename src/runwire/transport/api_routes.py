"""HTTP: tickets, threads, runs and their events, usage data (PROTOCOL.md, HTTP)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import AfterValidator
from starlette.responses import Response

from runwire.errors import PayloadTooLarge
from runwire.events.model import MAX_SEQ
from runwire.transport.event_stream import EventStream, parse_last_event_id, wants_event_stream
from runwire.transport.params import PathId, refuse_nul
from runwire.transport.principal import CurrentPrincipal
from runwire.transport.services import services_of

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["api"])


@router.get("/me", summary="The logged-in user")
async def me(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    user = await services_of(request).auth.user(principal)
    return {"user": user.public()}


@router.post(
    "/ws-ticket", status_code=201, summary="A single-use ticket to open /ws from a browser"
)
async def ws_ticket(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    auth = services_of(request).auth
    ticket = await auth.issue_ticket(principal)
    return {"ticket": ticket, "expires_in": auth.ticket_ttl_s}


@router.get("/threads", summary="The caller's threads, newest first")
async def threads(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    found = await services_of(request).chat.threads(principal.user_id)
    return {"threads": [t.public() for t in found]}


@router.get("/threads/{thread_id}/messages", summary="A thread's messages, oldest first")
async def thread_messages(
    thread_id: PathId, principal: CurrentPrincipal, request: Request
) -> dict[str, Any]:
    found = await services_of(request).chat.messages(principal.user_id, thread_id)
    return {"thread_id": thread_id, "messages": [m.public() for m in found]}


@router.get("/runs/{run_id}", summary="A run's status and timings")
async def run(run_id: PathId, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    record = await services_of(request).chat.run(principal.user_id, run_id)
    return {"run": record.public()}


@router.get(
    "/runs/{run_id}/events",
    summary="A run's events with seq > after, in order (as JSON, or as a stream of SSE)",
    description=(
        "JSON by default. With `Accept: text/event-stream`, server-sent events: the events after "
        "the position (`Last-Event-ID: <epoch>:<seq>` wins over `after` and `epoch`), then the "
        "run's live ones until its last event. A position that cannot be served whole is "
        "refused with 409 `reload_required`."
    ),
    response_model=None,
)
async def run_events(
    run_id: PathId,
    principal: CurrentPrincipal,
    request: Request,
    after: int = Query(0, ge=0, le=MAX_SEQ),
    epoch: str | None = Query(None, min_length=1, max_length=100),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> dict[str, Any] | Response:
    services = services_of(request)
    if wants_event_stream(request.headers.get("accept")):
        if last_event_id is not None:
            epoch, after = parse_last_event_id(last_event_id)
        stream = EventStream(
            bus=services.bus,
            chat=services.chat,
            user_id=principal.user_id,
            run_id=run_id,
            keepalive_s=services.settings.sse_keepalive_s,
            max_pending_bytes=services.settings.outbound_buffer_bytes,
        )
        return await stream.open(after, epoch)
    events = await services.chat.events(principal.user_id, run_id, after, epoch)
    return {"run_id": run_id, "events": [e.to_wire() for e in events]}


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
)
async def usage_import(
    principal: CurrentPrincipal, request: Request, name: UsageName = None
) -> dict[str, Any]:
    services = services_of(request)
    kind = services.workload.format_of(request.headers.get("content-type"), None)
    await services.workload.admit(principal.user_id)  # before reading up to 20 MB
    body = await _body(request, services.settings.max_import_bytes)
    report = await services.workload.import_body(principal.user_id, body, kind, name=name)
    return report.public()


@router.post(
    "/usage/sample",
    status_code=201,
    summary="Load a generated, realistic usage set (once: a second load adds nothing)",
)
async def usage_sample(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    workload = services_of(request).workload
    await workload.admit(principal.user_id)
    loaded = await workload.load_sample(principal.user_id)
    body = loaded.public()
    del body["rejected"]  # a generated set has no lines to reject
    return body


@router.get("/usage/summary", summary="How many usage records the caller has")
async def usage_summary(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    count = await services_of(request).workload.count(principal.user_id)
    return {"records": count}


@router.get("/usage/batches", summary="The caller's import batches, newest first")
async def usage_batches(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    found = await services_of(request).workload.batches(principal.user_id)
    return {"batches": [b.public() for b in found]}


@router.delete("/usage/batches/{batch_id}", summary="Delete one import batch's records")
async def usage_delete_batch(
    batch_id: PathId, principal: CurrentPrincipal, request: Request
) -> dict[str, Any]:
    deleted = await services_of(request).workload.delete(principal.user_id, batch_id)
    return {"deleted": deleted}


@router.delete("/usage/records", summary="Delete all of the caller's usage records")
async def usage_delete_all(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    deleted = await services_of(request).workload.delete(principal.user_id)
    return {"deleted": deleted}
