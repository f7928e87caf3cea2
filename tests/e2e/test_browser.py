"""The web page in a real headless Chromium against the real ``runwire serve`` process.

The golden path as a person does it: register, log in, load sample data, ask a question, watch the
agents think and call tools while the answer streams in, reload, and find the conversation again.
Plus: reconnect + resume after the socket drops mid-run, usage upload with a rejected line, and the
Markdown renderer's safety. Every wait is bounded by a multiple of ``tests.timing.unit``.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    Page,
    Route,
    WebSocket,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from tests.timing import unit

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUESTION = "Where can we cut our LLM costs?"
PASSWORD = "correct horse battery"
# e.g. /tmp/runwire-page.png, to look at the page
SCREENSHOT = os.environ.get("RUNWIRE_TEST_SCREENSHOT")


def ms(n: float) -> float:
    """``n`` time units in milliseconds (Playwright's unit)."""
    return unit(n) * 1000


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium, closed (with Playwright's own event loop) when the block ends; a
    skip where it is not installed (a failure in CI, which installs it)."""
    if not CHROMIUM.exists():
        reason = (
            "headless Chromium not found: apt-get install chromium (CI installs it via .ci/run)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=ms(30)
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Watch:
    """What the page did that a test should know about: JS errors, foreign requests, WS frames."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.sockets: list[WebSocket] = []
        self.frames: list[tuple[int, dict[str, Any]]] = []  # (socket number, frame)

    def on_socket(self, ws: WebSocket) -> None:
        number = len(self.sockets)
        self.sockets.append(ws)
        ws.on("framereceived", lambda payload: self._on_frame(number, payload))

    def _on_frame(self, number: int, payload: str | bytes) -> None:
        try:
            frame = json.loads(payload)
        except ValueError:
            return
        if isinstance(frame, dict):
            self.frames.append((number, frame))

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events as the page received them, each seq once."""
        seen: dict[int, dict[str, Any]] = {}
        for _n, f in self.frames:
            if f.get("run_id") == run_id and isinstance(f.get("seq"), int):
                seen.setdefault(f["seq"], f)
        return [seen[k] for k in sorted(seen)]

    def assert_run_delivered(self, run_id: str, *, one_socket: bool) -> None:
        """Over all sockets, seq 1..last with no gap, ending on the root's terminal event; on an
        undisturbed socket (``one_socket``), each seq once and in order. (After a reconnect, a
        live event may arrive before the replay the page asked for, and be in it too: the page
        drops such repeats, which the tests check on the page itself.)"""
        per_socket: dict[int, list[int]] = {}
        for n, f in self.frames:
            if f.get("run_id") == run_id and isinstance(f.get("seq"), int):
                per_socket.setdefault(n, []).append(f["seq"])
        if one_socket:
            assert len(per_socket) == 1, per_socket.keys()
            for seqs in per_socket.values():
                assert seqs == sorted(set(seqs)), f"a seq came twice or out of order: {seqs}"
        union = sorted({s for seqs in per_socket.values() for s in seqs})
        assert union == list(range(1, len(union) + 1)), f"gap in the events received: {union}"
        assert self.run_events(run_id)[-1]["parent_agent"] is None


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser: Browser, server_url: str, watch: Watch) -> Iterator[Page]:
    context = browser.new_context(base_url=server_url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(ms(15))
    expect.set_options(timeout=ms(15))

    def only_our_server(route: Route) -> None:
        url = route.request.url
        if url.startswith((server_url, server_url.replace("http", "ws", 1), "data:")):
            route.continue_()
        else:
            watch.foreign.append(url)
            route.abort()

    context.route("**/*", only_our_server)
    opened = context.new_page()
    opened.on("pageerror", lambda exc: watch.errors.append(f"page error: {exc}"))
    opened.on(
        "console",
        lambda msg: (
            watch.errors.append(f"console: {msg.text}")
            # The browser logs every non-2xx response; the tests provoke some (409, 401) on purpose.
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    opened.on("websocket", watch.on_socket)
    try:
        yield opened
    finally:
        context.close()
    assert not watch.errors, watch.errors
    assert not watch.foreign, f"the page fetched something off the server: {watch.foreign}"


# Counts thinking lines and tool calls as they are added to a run that is still running.
WATCH_LIVE_RENDERING = """() => {
  window.__live = {thinking: 0, tools: 0};
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (!(node instanceof Element)) continue;
        const run = node.closest('[data-testid="event-list"]');
        if (!run || run.dataset.state !== 'running') continue;
        if (node.matches('[data-testid="thinking-line"]')) window.__live.thinking++;
        if (node.querySelector('[data-testid="tool-call"]')) window.__live.tools++;
      }
    }
  }).observe(document.getElementById('messages'), {childList: true, subtree: true});
}"""


def new_email() -> str:
    return f"web-{uuid.uuid4().hex[:12]}@example.com"


def register(page: Page, email: str, password: str = PASSWORD) -> None:
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("password").fill(password)
    page.get_by_test_id("register").click()


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("password").fill(password)
    page.get_by_test_id("login").click()


def expect_signed_in(page: Page) -> None:
    expect(page.get_by_test_id("logout")).to_be_visible()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")


def sign_up(page: Page) -> str:
    page.goto("/")
    email = new_email()
    register(page, email)
    expect_signed_in(page)
    return email


def load_sample(page: Page) -> int:
    page.get_by_test_id("load-sample").click()
    status = page.get_by_test_id("sample-status")
    expect(status).to_have_text(re.compile(r"Loaded [\d,]+ sample records"))
    count = int(status.get_attribute("data-imported") or "0")
    assert count > 0
    return count


def ask(page: Page, question: str) -> None:
    page.get_by_test_id("message-input").fill(question)
    page.get_by_test_id("send").click()


def test_golden_path_register_ask_reload(page: Page, watch: Watch) -> None:
    page.goto("/")
    expect(page.get_by_test_id("email")).to_be_visible()
    email = new_email()

    # Readable errors: an invalid password (422), then a fresh account (logs straight in).
    register(page, email, "short")
    expect(page.get_by_test_id("auth-message")).to_contain_text("at least 8 characters")
    register(page, email)
    expect_signed_in(page)
    expect(page.get_by_test_id("user-email")).to_have_text(email)

    # Log out; the address is now taken (409); a wrong password (401); then the right one.
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("email")).to_be_visible()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "offline")
    register(page, email)
    expect(page.get_by_test_id("auth-message")).to_contain_text("already exists")
    log_in(page, email, "wrong password!")
    expect(page.get_by_test_id("auth-message")).to_contain_text("Wrong email or password")
    log_in(page, email)
    expect_signed_in(page)

    count = load_sample(page)
    expect(page.get_by_test_id("usage-count")).to_contain_text(f"{count:,} usage records")

    page.evaluate(WATCH_LIVE_RENDERING)
    ask(page, QUESTION)
    expect(page.get_by_test_id("user-message").last).to_contain_text(QUESTION)
    answer = page.get_by_test_id("assistant-message").last
    expect(answer).to_have_attribute("data-state", "done", timeout=ms(30))
    expect(answer).to_contain_text("$")
    expect(page.get_by_test_id("stop")).to_be_hidden()
    # Thinking lines and tool calls were drawn while the run was still going, not at its end.
    live = page.evaluate("() => window.__live")
    assert live["thinking"] > 0 and live["tools"] > 0, live

    # Once answered, the activity folds away; a click on its summary brings it back.
    events = page.get_by_test_id("event-list").last
    expect(events).to_have_attribute("data-state", "completed")
    expect(events.get_by_test_id("thinking-line").first).to_be_hidden()
    events.locator("summary").first.click()
    expect(events.get_by_test_id("thinking-line").first).to_be_visible()
    tool = events.get_by_test_id("tool-call").first
    expect(tool).to_be_visible()

    # Sub-agents are nested under the supervisor, and tool calls open to show args and result.
    root = events.locator('[data-testid="agent"][data-agent="supervisor"]')
    expect(root).to_have_count(1)
    assert root.get_by_test_id("agent").count() >= 2
    expect(tool).to_have_attribute("data-status", "ok")
    tool.locator("summary").click()
    expect(tool.get_by_test_id("tool-args")).to_be_visible()
    json.loads(tool.get_by_test_id("tool-result").inner_text())

    # On the wire: the answer was streamed as text_delta chunks, and events came in order.
    run_id = answer.get_attribute("data-run-id")
    assert run_id
    run_events = watch.run_events(run_id)
    assert any(e["type"] == "text_delta" for e in run_events)
    assert any(e["type"] == "agent_thinking" for e in run_events)
    watch.assert_run_delivered(run_id, one_socket=True)
    # No duplicates in the UI either: one element per thinking event and per tool call.
    thinking = [e for e in run_events if e["type"] == "agent_thinking"]
    expect(events.get_by_test_id("thinking-line")).to_have_count(len(thinking))
    tools = {e["tool_call_id"] for e in run_events if e["type"] == "tool_executing"}
    expect(events.get_by_test_id("tool-call")).to_have_count(len(tools))
    answer_text = answer.inner_text()
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)

    # A reload keeps the session; the thread is listed; opening it shows the conversation again.
    page.reload()
    expect_signed_in(page)
    item = page.get_by_test_id("thread-item")
    expect(item).to_have_count(1)
    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("user-message")).to_have_count(0)
    item.first.click()
    expect(item.first).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_contain_text(QUESTION)
    restored = page.get_by_test_id("assistant-message")
    expect(restored).to_have_count(1)
    expect(restored).to_contain_text("$")
    assert restored.inner_text() == answer_text

    # The stored run's activity can be replayed from HTTP.
    page.get_by_test_id("show-activity").click()
    expect(page.get_by_test_id("event-list").get_by_test_id("tool-call")).to_have_count(len(tools))

    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("email")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("email")).to_be_visible()
    expect(page.get_by_test_id("logout")).to_be_hidden()


def test_socket_drop_mid_run_reconnects_and_resumes(page: Page, watch: Watch) -> None:
    sign_up(page)
    load_sample(page)
    page.get_by_test_id("message-input").fill(QUESTION)
    # Send and cut the socket in the same tick: the acknowledgement and the run's events are lost
    # with it. The page must reconnect with a fresh ticket, re-send the message (idempotent by
    # client_message_id) and resume the run, showing each event exactly once.
    page.evaluate(
        "() => { document.querySelector('[data-testid=send]').click();"
        " window.runwireDebug.dropConnection(); }"
    )
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    answer = page.get_by_test_id("assistant-message")
    expect(answer).to_have_count(1)
    expect(answer).to_have_attribute("data-state", "done", timeout=ms(30))
    expect(answer).to_contain_text("$")
    assert len(watch.sockets) >= 2

    run_id = answer.get_attribute("data-run-id")
    assert run_id
    run_events = watch.run_events(run_id)
    watch.assert_run_delivered(run_id, one_socket=False)
    events = page.get_by_test_id("event-list")
    thinking = {e["seq"] for e in run_events if e["type"] == "agent_thinking"}
    expect(events.get_by_test_id("thinking-line")).to_have_count(len(thinking))
    tools = {e["tool_call_id"] for e in run_events if e["type"] == "tool_executing"}
    expect(events.get_by_test_id("tool-call")).to_have_count(len(tools))

    # The message was stored once, whatever was re-sent.
    page.reload()
    expect_signed_in(page)
    expect(page.get_by_test_id("thread-item")).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(page.get_by_test_id("assistant-message")).to_have_count(1)


def test_a_resume_the_server_refuses_reloads_the_thread(page: Page) -> None:
    # The page's first resume names an epoch the run no longer has (as after a server restart);
    # the server answers reload_required, and the page must reload the thread, not show an error.
    refusals: list[dict[str, Any]] = []

    def stale_first_resume(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "resume" and not refusals:
                frame["epoch"] = "stale"
            server.send(json.dumps(frame))

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("code") == "reload_required":
                refusals.append(frame)
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws\b"), stale_first_resume)
    sign_up(page)
    load_sample(page)
    page.get_by_test_id("message-input").fill(QUESTION)
    # Send and cut the socket in the same tick, so the page must resume the run after reconnecting.
    with page.expect_request(re.compile(r"/api/threads/[^/]+/messages$"), timeout=ms(15)):
        page.evaluate(
            "() => { document.querySelector('[data-testid=send]').click();"
            " window.runwireDebug.dropConnection(); }"
        )
    assert [f["reason"] for f in refusals] == ["epoch_changed"]
    answer = page.get_by_test_id("assistant-message")
    expect(answer).to_have_count(1)
    expect(answer).to_have_attribute("data-state", "done", timeout=ms(30))
    expect(answer).to_contain_text("$")
    expect(page.get_by_test_id("user-message")).to_have_count(1)
    expect(page.locator("#chat-error")).to_be_hidden()


SESSION = "() => JSON.parse(localStorage.getItem('runwire.session.v1'))"
SPOIL = """(fields) => {
  const s = JSON.parse(localStorage.getItem('runwire.session.v1'));
  localStorage.setItem('runwire.session.v1', JSON.stringify({...s, ...fields}));
}"""


def test_rejected_access_token_is_refreshed_then_a_dead_session_ends(page: Page) -> None:
    sign_up(page)
    before = page.evaluate(SESSION)
    # The access token no longer works (expired, say): one refresh, then every call goes through.
    page.evaluate(SPOIL, {"access": "not-a-token"})
    page.reload()
    expect_signed_in(page)
    page.get_by_test_id("load-sample").click()
    expect(page.get_by_test_id("sample-status")).to_contain_text("Loaded")
    after = page.evaluate(SESSION)
    assert after["access"] != "not-a-token"
    assert after["refresh"] != before["refresh"]  # rotated

    # A refresh token the server no longer accepts: the page says so and asks to log in again.
    page.evaluate(SPOIL, {"access": "not-a-token", "refresh": "not-a-refresh-token"})
    page.reload()
    expect(page.get_by_test_id("auth-message")).to_contain_text("session has ended")
    expect(page.get_by_test_id("logout")).to_be_hidden()
    assert page.evaluate(SESSION) is None


def test_a_logout_elsewhere_ends_the_session_on_the_page(page: Page, server_url: str) -> None:
    sign_up(page)
    access = page.evaluate(SESSION)["access"]
    # The same session logs out from elsewhere (another tab, a script): the server closes the
    # page's socket with 4010, and the page asks to log in again, without a reload.
    answer = httpx.post(
        f"{server_url}/auth/logout", headers={"Authorization": f"Bearer {access}"}, timeout=unit(5)
    )
    assert answer.status_code == 204
    expect(page.get_by_test_id("auth-message")).to_contain_text("session has ended")
    expect(page.get_by_test_id("logout")).to_be_hidden()
    assert page.evaluate(SESSION) is None


def test_usage_upload_reports_rejected_lines(page: Page) -> None:
    sign_up(page)
    upload = page.get_by_test_id("upload-input")
    status = page.get_by_test_id("upload-status")
    csv = (
        "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms\n"
        "2025-01-02T10:00:00Z,openai,gpt-4o,1200,300,850\n"
        "2025-01-02T10:01:00Z,openai,gpt-4o-mini,800,120,400\n"
        "not a time,openai,gpt-4o,-5,1,1\n"
    )
    upload.set_input_files(
        files=[{"name": "usage.csv", "mimeType": "text/csv", "buffer": csv.encode()}]
    )
    expect(status).to_have_attribute("data-imported", "2")
    expect(status).to_have_attribute("data-rejected", "1")
    expect(status.get_by_test_id("rejected-lines")).to_contain_text("Line")

    good = {
        "timestamp": "2025-01-03T09:00:00Z",
        "provider": "anthropic",
        "model": "claude-3-5-haiku",
        "prompt_tokens": 500,
        "completion_tokens": 80,
        "latency_ms": 320.5,
    }
    jsonl = "\n".join(json.dumps(good) for _ in range(3)) + "\n"
    upload.set_input_files(
        files=[{"name": "usage.jsonl", "mimeType": "", "buffer": jsonl.encode()}]
    )
    expect(status).to_have_attribute("data-imported", "3")
    expect(status).to_have_attribute("data-rejected", "0")
    expect(page.get_by_test_id("usage-count")).to_contain_text("5 usage records")

    upload.set_input_files(files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi"}])
    expect(status).to_contain_text("choose a .jsonl, .ndjson or .csv file")

    # A link to a chat that is not there (or not yours) says so and falls back to a new chat.
    page.goto("/#thread=thr_0123456789abcdef")
    expect(page.get_by_test_id("chat-error")).to_contain_text("does not exist")
    expect(page.get_by_test_id("chat-title")).to_have_text("New chat")


def test_usage_data_is_added_once_and_can_be_deleted(page: Page) -> None:
    sign_up(page)
    count = load_sample(page)
    # A second click adds nothing (it once doubled the records), and says so.
    page.get_by_test_id("load-sample").click()
    sample = page.get_by_test_id("sample-status")
    expect(sample).to_have_text(f"The sample data is already loaded ({count:,} records).")
    expect(sample).to_have_attribute("data-new", "0")
    expect(page.get_by_test_id("usage-count")).to_contain_text(f"{count:,} usage records")

    good = {
        "timestamp": "2025-01-03T09:00:00Z",
        "provider": "anthropic",
        "model": "claude-3-5-haiku",
        "prompt_tokens": 500,
        "completion_tokens": 80,
        "latency_ms": 320.5,
    }
    file = {"name": "calls.jsonl", "mimeType": "", "buffer": (json.dumps(good) + "\n").encode()}
    upload = page.get_by_test_id("upload-input")
    status = page.get_by_test_id("upload-status")
    upload.set_input_files(files=[file])
    expect(status).to_have_attribute("data-new", "1")
    upload.set_input_files(files=[file])
    expect(status).to_have_attribute("data-new", "0")
    expect(status).to_contain_text("calls.jsonl: imported 1 record (1 already there).")
    expect(page.get_by_test_id("usage-count")).to_contain_text(f"{count + 1:,} usage records")

    # Deleting asks first; declined, nothing goes.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_test_id("delete-usage").click()
    expect(page.get_by_test_id("delete-status")).to_be_empty()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("delete-usage").click()
    deleted = page.get_by_test_id("delete-status")
    expect(deleted).to_have_text(f"Deleted {count + 1:,} usage records.")
    expect(page.get_by_test_id("usage-count")).to_have_text("No usage records yet.")
    expect(status).to_be_empty()
    # Once deleted, the sample loads afresh.
    load_sample(page)


def test_markdown_renderer_is_safe_and_complete(page: Page) -> None:
    sign_up(page)
    render = "(src) => window.runwireDebug.renderMarkdown(src)"
    hostile = page.evaluate(
        render,
        '<img src=x onerror="alert(1)"> <script>alert(2)</script> [x](javascript:alert(3)) '
        '`<b>` **<i>bold</i>** [ok](https://example.com/a?b=1&c="2")',
    )
    assert "<img" not in hostile and "<script" not in hostile and "<i>" not in hostile
    assert "javascript:" not in hostile
    assert "&lt;img" in hostile and "<code>&lt;b&gt;</code>" in hostile
    assert '<a href="https://example.com/a?b=1&amp;c=&quot;2&quot;"' in hostile

    doc = page.evaluate(
        render,
        "# Savings\n\nSome **bold**, *italic* and `code`.\n\n"
        "- one\n- two\n  - nested\n\n1. first\n2. second\n\n"
        "| model | cost |\n|---|---:|\n| gpt-4o | $12.50 |\n\n"
        "```python\nprint('<hi>')\n```\n\n> quoted\n\n[docs](/docs)",
    )
    for fragment in (
        '<h3 class="md-h">Savings</h3>',
        "<strong>bold</strong>",
        "<em>italic</em>",
        "<code>code</code>",
        "<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>",
        "<ol><li>first</li><li>second</li></ol>",
        "<th>model</th>",
        '<td class="align-right">$12.50</td>',
        "print(&#39;&lt;hi&gt;&#39;)",
        "<blockquote>",
        'href="/docs"',
    ):
        assert fragment in doc, (fragment, doc)
    # Unfinished input (mid-stream) renders without throwing and without raw HTML.
    partial = page.evaluate(render, "Here is **bo\n\n```js\nlet a = '<x>'")
    assert "<x>" not in partial and "&lt;x&gt;" in partial

    # What a user types is shown as text, never as markup.
    typed = '<img src=x onerror="window.__pwned=1">'
    ask(page, f"{typed} hello")
    expect(page.get_by_test_id("user-message")).to_contain_text(typed)
    answer = page.get_by_test_id("assistant-message")
    expect(answer).to_have_attribute("data-state", "done", timeout=ms(30))
    assert page.evaluate("() => window.__pwned === undefined")


def test_api_reference_renders_from_the_server_alone(page: Page) -> None:
    """``/docs`` (Swagger UI) draws every operation of the OpenAPI document with nothing but the
    server: the ``page`` fixture refuses, and fails on, any request to another host, so a machine
    without internet sees the same page."""
    document = page.request.get("/openapi.json").json()
    operations = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    assert len(operations) > 10

    page.goto("/docs")
    listed = page.locator(".opblock")
    expect(listed).to_have_count(len(operations))
    drawn = {
        (
            op.locator(".opblock-summary-method").inner_text(),
            op.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for op in listed.all()
    }
    assert drawn == operations
    # An operation opens to its declared answers, the error bodies among them.
    events = page.locator(".opblock", has=page.locator('[data-path="/api/runs/{run_id}/events"]'))
    events.locator(".opblock-summary").click()
    answers = events.locator(".responses-table").first
    for status in ("200", "204", "401", "404", "409", "422"):
        expect(answers.locator(f'tr[data-code="{status}"]')).to_have_count(1)
