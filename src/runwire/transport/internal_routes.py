"""The chat node's API for services (docs/auth.md, "Service accounts"): post a message into a
user's thread on their behalf, as a scheduler or a partner's backend does. It takes a service
token with ``messages:write``, never a user's access token. The message starts its run exactly
as one sent over the user's WebSocket does: the user's sockets see the run, and the user's run
limits apply."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import AfterValidator, BaseModel, Field

from runwire.auth.service_tokens import Scope, ServiceClaims
from runwire.protocol.inbound import MAX_CONTENT_CHARS, UserMessage
from runwire.telemetry.logs import bind_log_context
from runwire.transport.errors import error_responses
from runwire.transport.params import PathId, refuse_nul
from runwire.transport.principal import service_caller
from runwire.transport.replies import MessageAccepted
from runwire.transport.services import services_of

__all__ = ["router"]

_DESCRIPTIONS = {
    401: "No service token, a user's access token (`service_token_required`), or an invalid "
    "or expired one (`unauthorized`).",
    403: "The service token lacks `messages:write` (`insufficient_scope`).",
    404: "No such user, or no such thread of the user (`not_found`).",
    409: "The user has as many unfinished runs as allowed (`too_many_runs`), or the thread "
    "is busy under the `reject` policy (`thread_busy`).",
    413: "The body is larger than 400 KiB (`too_large`).",
    503: "The server is shutting down (`server_closing`): send it again.",
}

router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    responses=error_responses(401, 403, 404, 409, 413, 422, 503, descriptions=_DESCRIPTIONS),
)

MessageWriter = Annotated[ServiceClaims, service_caller(Scope.MESSAGES_WRITE)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return refuse_nul(value)


class ServiceMessage(BaseModel):
    content: Annotated[
        str, Field(min_length=1, max_length=MAX_CONTENT_CHARS), AfterValidator(_not_blank)
    ]
    client_message_id: Annotated[
        str | None,
        Field(
            None,
            min_length=1,
            max_length=100,
            description="Your id for the message: sent again, nothing new starts and the first "
            "acceptance is answered (`duplicate`: true). Unique per user.",
        ),
        AfterValidator(lambda v: v if v is None else refuse_nul(v)),
    ] = None


async def _post(
    request: Request, user_id: str, thread_id: str | None, body: ServiceMessage
) -> MessageAccepted:
    bind_log_context(user_id=user_id)
    accepted = await services_of(request).chat.submit_on_behalf(
        user_id,
        UserMessage(
            content=body.content, thread_id=thread_id, client_message_id=body.client_message_id
        ),
    )
    return MessageAccepted(
        thread_id=accepted.thread_id,
        message_id=accepted.message_id,
        run_id=accepted.run_id,
        duplicate=accepted.duplicate,
    )


@router.post(
    "/users/{user_id}/threads",
    status_code=202,
    summary="Start a new thread of a user with a message, on their behalf",
)
async def new_thread(
    user_id: PathId, body: ServiceMessage, request: Request, _caller: MessageWriter
) -> MessageAccepted:
    return await _post(request, user_id, None, body)


@router.post(
    "/users/{user_id}/threads/{thread_id}/messages",
    status_code=202,
    summary="Post a message into a user's thread, on their behalf",
)
async def thread_message(
    user_id: PathId,
    thread_id: PathId,
    body: ServiceMessage,
    request: Request,
    _caller: MessageWriter,
) -> MessageAccepted:
    return await _post(request, user_id, thread_id, body)
