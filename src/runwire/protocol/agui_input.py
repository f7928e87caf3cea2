"""AG-UI's run input as runwire reads it: what a client's ``RunAgentInput`` to ``POST /ag-ui``
must hold, and the one thing runwire needs of it (:func:`read_input`).

Pure code, no I/O. Of the input runwire takes which thread, which run (the client's ``runId``,
kept as the message's ``client_message_id``) and the question, the text of the last user message.
The rest of the conversation the client sends is not read: a thread's history is the one runwire
stored. The validation (:class:`AguiInput`) and the JSON Schema of ``POST /ag-ui`` say the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from ag_ui.core import RunAgentInput, UserMessage
from ag_ui.core.types import (
    ActivityMessage,
    AssistantMessage,
    DeveloperMessage,
    ReasoningMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import AfterValidator, Field

from runwire.protocol.inbound import MAX_CONTENT_CHARS, MAX_ID_CHARS

__all__ = ["THREAD_ID_CHARS", "AguiInput", "AguiRequest", "read_input"]

THREAD_ID_CHARS = 40
"""A thread id's most characters (the store's column): a UUID, as AG-UI clients make, fits."""

_THREAD_ID = re.compile(rf"[A-Za-z0-9_.~-]{{1,{THREAD_ID_CHARS}}}")
"""A thread id must also stand in a URL path (``/api/threads/{id}/messages``) as it is."""

_NO_NUL = "^[^\\u0000]*$"


def _question_text(value: str) -> str:
    # What the JSON Schema's pattern says (Python's \s is what str.strip() strips), without
    # a regex that backtracks on 32,000 spaces.
    if len(value) > MAX_CONTENT_CHARS or "\x00" in value or not value.strip():
        raise ValueError(
            f"a user message needs text: 1 to {MAX_CONTENT_CHARS} characters, not blank, "
            "without NUL"
        )
    return value


class AguiUserMessage(UserMessage):
    """A user message as runwire reads it: text (content parts, for media, are not read)."""

    content: Annotated[
        str,
        Field(
            json_schema_extra={
                "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
                "maxLength": MAX_CONTENT_CHARS,
            },
            description=f"The text: 1 to {MAX_CONTENT_CHARS} characters, not blank, without NUL",
        ),
        AfterValidator(_question_text),
    ]


AguiMessage = Annotated[
    DeveloperMessage
    | SystemMessage
    | AssistantMessage
    | AguiUserMessage
    | ToolMessage
    | ActivityMessage
    | ReasoningMessage,
    Field(discriminator="role"),
]


def _messages_schema(schema: dict[str, Any]) -> None:
    """What the validation of ``messages`` checks, said in the API document: each message names
    its ``role`` (the discriminator: AG-UI's own schema leaves it out), one is the user's."""
    schema["items"]["required"] = ["role"]
    schema["contains"] = {
        "type": "object",
        "properties": {"role": {"const": "user"}},
        "required": ["role"],
    }


def _has_a_question(messages: list[AguiMessage]) -> list[AguiMessage]:
    if not any(isinstance(m, UserMessage) for m in messages):
        raise ValueError('no message with role "user": the last one is the question')
    return messages


def _thread_id(value: str) -> str:
    if not _THREAD_ID.fullmatch(value):
        raise ValueError(
            f"1 to {THREAD_ID_CHARS} of the characters A-Z, a-z, 0-9, '_', '.', '~' and '-' "
            "(a thread of yours, or a new thread's id)"
        )
    return value


def _run_id(value: str) -> str:
    if not 1 <= len(value) <= MAX_ID_CHARS or "\x00" in value:
        raise ValueError(f"1 to {MAX_ID_CHARS} characters, without NUL")
    return value


class AguiInput(RunAgentInput):
    """AG-UI's ``RunAgentInput`` as runwire takes it: ``threadId`` a thread id that can stand in
    a URL, ``runId`` an id a message can keep (``client_message_id``), and every user message
    with text. The JSON Schema of ``POST /ag-ui`` says the same."""

    thread_id: Annotated[
        str,
        Field(
            json_schema_extra={"pattern": f"^{_THREAD_ID.pattern}$"},
            description="A thread of the caller, or the id of a new thread",
        ),
        AfterValidator(_thread_id),
    ]
    run_id: Annotated[
        str,
        Field(
            json_schema_extra={"minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": _NO_NUL},
            description="The client's id for the run: the question's client_message_id",
        ),
        AfterValidator(_run_id),
    ]
    messages: Annotated[  # type: ignore[assignment]
        list[AguiMessage],
        Field(
            json_schema_extra=_messages_schema,
            description="The conversation the client holds: only its last user message, the "
            "question, is read",
        ),
        AfterValidator(_has_a_question),
    ]


@dataclass(frozen=True, slots=True)
class AguiRequest:
    """What runwire takes of a ``RunAgentInput``."""

    thread_id: str
    run_id: str  # the client's runId: the question's client_message_id
    question: str


def read_input(body: AguiInput) -> AguiRequest:
    """The thread, the client's run id and the question (the last user message's text)."""
    last = next(m for m in reversed(body.messages) if isinstance(m, AguiUserMessage))
    return AguiRequest(thread_id=body.thread_id, run_id=body.run_id, question=last.content)
