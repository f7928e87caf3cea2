"""``POST /ag-ui``: a run, asked and watched over AG-UI (the Agent User Interaction protocol),
for the front ends built on it (CopilotKit's, and others).

A thin edge over what the WebSocket does: the body's last user message is accepted as a
``user_message`` of the caller (``ChatService.submit``), and the run's events are streamed from
its first by the same :class:`~runwire.transport.event_stream.EventStream` as
``GET /api/runs/{id}/events``, each translated to AG-UI events
(:class:`~runwire.protocol.agui.AguiTranslation`). The run is an ordinary run: stored, listed,
seen on the user's sockets, stopped by ``stop_agent``; a client that goes away leaves it
running. The client's ``runId`` is the message's ``client_message_id``, so the same request sent
again starts nothing and streams the run it started.
"""

from __future__ import annotations

from ag_ui.core import BaseEvent
from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from runwire.errors import Conflict, RunwireError
from runwire.events.model import RunEvent
from runwire.protocol.agui import AguiTranslation, refusal
from runwire.protocol.agui_input import AguiInput, read_input
from runwire.protocol.inbound import UserMessage
from runwire.transport.errors import error_responses
from runwire.transport.event_stream import MEDIA_TYPE, EventStream
from runwire.transport.principal import CurrentPrincipal
from runwire.transport.services import services_of

__all__ = ["PATH", "AguiCors", "AguiFraming", "router"]

PATH = "/ag-ui"

router = APIRouter(tags=["ag-ui"])

_ENCODER = EventEncoder()


def _sse(events: list[BaseEvent]) -> str:
    return "".join(_ENCODER.encode(event) for event in events)


class AguiFraming:
    """An :class:`~runwire.transport.event_stream.EventStream`'s events as AG-UI's SSE."""

    def __init__(self, translation: AguiTranslation) -> None:
        self._translation = translation

    def frame(self, event: RunEvent) -> str:
        return _sse(self._translation.translate(event))

    def cut(self) -> str:
        return _sse(self._translation.cut())


class AguiCors:
    """CORS for ``POST /ag-ui`` alone: a front end served from an allowed origin
    (``RUNWIRE_ALLOWED_ORIGINS``, as for ``/ws``) may call it from the browser with its Bearer
    token. No cookies, so no credentials mode; every other path is passed on untouched."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH:
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)


# One server-sent event of the stream (as OpenAPI before 3.2 describes an event stream).
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "data": {
            "type": "string",
            "description": "One AG-UI event's JSON (`type`, camelCase fields; docs/protocol.md, "
            "AG-UI).",
            "contentMediaType": "application/json",
        },
    },
    "required": ["data"],
}

_DESCRIPTION = (
    "The body is AG-UI's `RunAgentInput`. `threadId` names a thread of the caller, or a new "
    "thread (started with that id); `runId` is the client's id for the run (sent again, "
    "nothing new starts and the run it started is streamed again); the text of the last "
    '`"user"` message is the question. The rest of `messages`, and `tools`, `state`, '
    "`context` and `forwardedProps`, are not read: the thread's history is the one stored. "
    "The answer is a stream of AG-UI events (docs/protocol.md, AG-UI). A run that cannot "
    "start (the thread is not the caller's, too many runs, a busy thread) is answered with "
    "the stream's only event, `RUN_ERROR` with the code."
)


@router.post(
    PATH,
    summary="Ask a question over AG-UI: the run's events as AG-UI server-sent events",
    description=_DESCRIPTION,
    response_class=Response,
    responses={
        200: {
            "description": "AG-UI events, one per SSE message (`data: <event JSON>`), from "
            "`RUN_STARTED` to `RUN_FINISHED` or `RUN_ERROR`; or a refusal's `RUN_ERROR` alone.",
            "content": {MEDIA_TYPE: {"schema": _SSE_EVENT}},
        },
        **error_responses(
            401,
            413,
            422,
            descriptions={
                413: "The body is larger than 2 MiB (`too_large`).",
                422: "Not a `RunAgentInput`, a bad `threadId` or `runId`, or no user message "
                "with text (`invalid_input`); `detail` names each.",
            },
        ),
    },
)
async def run_agent(body: AguiInput, principal: CurrentPrincipal, request: Request) -> Response:
    asked = read_input(body)
    services = services_of(request)
    try:
        accepted = await services.chat.submit(
            principal.user_id,
            UserMessage(
                content=asked.question, thread_id=asked.thread_id, client_message_id=asked.run_id
            ),
            start_named_thread=True,
        )
        if accepted.thread_id != asked.thread_id:
            raise Conflict(
                "this runId was used before, in another thread: send a new runId",
                code="run_id_reused",
            )
        stream = EventStream(
            bus=services.bus,
            chat=services.chat,
            user_id=principal.user_id,
            run_id=accepted.run_id,
            revocations=services.revocations,
            session_id=principal.family_id,
            keepalive_s=services.settings.sse_keepalive_s,
            max_pending_bytes=services.settings.outbound_buffer_bytes,
            metrics=services.metrics,
            framing=AguiFraming(
                AguiTranslation(
                    thread_id=asked.thread_id,
                    run_id=asked.run_id,
                    runwire_run_id=accepted.run_id,
                    message_id=accepted.message_id,
                )
            ),
        )
        # From the run's first event: a run has at least one, so this is never 204.
        return await stream.open(0, None)
    except RunwireError as exc:
        # The run cannot start (or be read): said in AG-UI, as the stream's only event.
        return Response(
            _sse([refusal(exc)]),
            media_type=MEDIA_TYPE,
            headers={"Cache-Control": "no-store"},
        )
