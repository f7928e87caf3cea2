/* runwire web client: plain JavaScript, no build step, no third-party code.
 *
 * Sections: 1. Markdown (safe)  2. Session & HTTP  3. WebSocket (reconnect + resume)
 *           4. Run view (live agent activity)  5. Threads, messages, usage  6. Wiring
 *
 * Safety rule for the whole file: text that came from the network or the user is only ever put
 * in the page through textContent, or through renderMarkdown(), which escapes it first and emits
 * a fixed set of tags with checked attributes. Nothing else is assigned to innerHTML.
 */
"use strict";

(() => {
  // ---------------------------------------------------------------------------------------------
  // 1. Markdown: a small, safe renderer (headings, emphasis, code, lists, tables, quotes, links)
  // ---------------------------------------------------------------------------------------------

  const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
  }

  function unescapeHtml(text) {
    return text
      .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'").replace(/&amp;/g, "&");
  }

  const SAFE_URL = /^(https?:\/\/|mailto:|\/(?!\/)|\.{1,2}\/|#)/i;

  function link(url, labelHtml, title) {
    const titleAttr = title ? ` title="${title}"` : "";
    const target = url.startsWith("#") ? "" : ' target="_blank" rel="noopener noreferrer"';
    return `<a href="${url}"${titleAttr}${target}>${labelHtml}</a>`;
  }

  /** Inline Markdown of one block of raw text → HTML. Escapes first, then adds our own tags. */
  function renderInline(raw) {
    const slots = [];
    const keep = (html) => `\u0000${slots.push(html) - 1}\u0000`;
    let text = String(raw);
    // Code spans first: their content is literal.
    text = text.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_m, _ticks, code) =>
      keep(`<code>${escapeHtml(code.replace(/^ (.*) $/s, "$1"))}</code>`));
    // Backslash escapes of punctuation.
    text = text.replace(/\\([\\`*_{}[\]()#+\-.!|~>])/g, (_m, ch) => keep(escapeHtml(ch)));
    // Autolinks <https://…>.
    text = text.replace(/<(https?:\/\/[^\s<>]+)>/g, (_m, url) => keep(link(escapeHtml(url), escapeHtml(url))));
    text = escapeHtml(text);
    // Links [text](url "title"): only http(s), mailto, same-site paths and fragments.
    text = text.replace(/\[([^\]\n]+)\]\(\s*([^\s)]+)(?:\s+&quot;([^\n]*?)&quot;)?\s*\)/g,
      (match, label, url, title) => {
        if (!SAFE_URL.test(unescapeHtml(url))) return keep(emphasis(label));
        return keep(link(url, emphasis(label), title));
      });
    // Bare URLs.
    text = text.replace(/\bhttps?:\/\/[^\s<>\u0000]*[^\s<>\u0000.,;:!?)\]'*_]/g, (url) => {
      // Quotes and angle brackets (escaped by now) are not part of a URL: cut there.
      const cut = url.search(/&(?:quot|gt|lt|#39)/);
      const clean = (cut >= 0 ? url.slice(0, cut) : url).replace(/[.,;:!?)\]'*_]+$/, "");
      if (!/^https?:\/\/./.test(clean)) return url;
      return keep(link(clean, clean)) + url.slice(clean.length);
    });
    text = emphasis(text);
    text = text.replace(/ {2,}\n|\\\n/g, "<br>").replace(/\n/g, "<br>");
    // Restore kept pieces (they may nest: a link label can hold a code span).
    for (let i = 0; i < 3 && text.includes("\u0000"); i++) {
      text = text.replace(/\u0000(\d+)\u0000/g, (_m, n) => slots[Number(n)]);
    }
    return text;
  }

  function emphasis(html) {
    return html
      .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
      .replace(/(^|[^*\w])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?!\*)/g, "$1<em>$2</em>")
      .replace(/(^|[^\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
      .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
  }

  const RE_FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
  const RE_HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$/;
  const RE_HR = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
  const RE_LIST = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const RE_QUOTE = /^ {0,3}>\s?(.*)$/;
  const RE_TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

  function splitRow(line) {
    let row = line.trim();
    if (row.startsWith("|")) row = row.slice(1);
    if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
    const cells = [];
    let cell = "";
    let inCode = false;
    for (let i = 0; i < row.length; i++) {
      const ch = row[i];
      if (ch === "\\" && row[i + 1] === "|") { cell += "|"; i++; continue; }
      if (ch === "`") inCode = !inCode;
      if (ch === "|" && !inCode) { cells.push(cell.trim()); cell = ""; continue; }
      cell += ch;
    }
    cells.push(cell.trim());
    return cells;
  }

  function isBlockStart(line) {
    return RE_FENCE.test(line) || RE_HEADING.test(line) || RE_HR.test(line) ||
      RE_QUOTE.test(line) || RE_LIST.test(line);
  }

  function renderTable(lines, start) {
    const header = splitRow(lines[start]);
    const aligns = splitRow(lines[start + 1]).map((c) =>
      c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : c.startsWith(":") ? "left" : "");
    const cell = (tag, text, i) => {
      const align = aligns[i] ? ` class="align-${aligns[i]}"` : "";
      return `<${tag}${align}>${renderInline(text)}</${tag}>`;
    };
    let html = '<div class="md-table-wrap"><table><thead><tr>' +
      header.map((h, i) => cell("th", h, i)).join("") + "</tr></thead><tbody>";
    let i = start + 2;
    while (i < lines.length && lines[i].includes("|") && lines[i].trim() !== "") {
      const cells = splitRow(lines[i]);
      html += "<tr>" + header.map((_h, c) => cell("td", cells[c] ?? "", c)).join("") + "</tr>";
      i++;
    }
    return { html: html + "</tbody></table></div>", next: i };
  }

  function renderList(lines, start) {
    // Collect the list's lines: items, their indented continuations, and blank lines between them.
    const items = [];
    let i = start;
    while (i < lines.length) {
      const line = lines[i];
      const m = line.match(RE_LIST);
      if (m && !RE_HR.test(line)) {
        items.push({ indent: m[1].replace(/\t/g, "    ").length, marker: m[2], lines: [m[3]] });
        i++;
        continue;
      }
      if (line.trim() === "") {
        const nextLine = lines[i + 1];
        if (nextLine !== undefined && (RE_LIST.test(nextLine) || /^\s{2,}\S/.test(nextLine))) { i++; continue; }
        break;
      }
      if (items.length && (/^\s{2,}\S/.test(line) || !isBlockStart(line))) {
        items[items.length - 1].lines.push(line.trim());
        i++;
        continue;
      }
      break;
    }
    // Nest by indentation.
    const root = { indent: -1, children: [] };
    const stack = [root];
    for (const item of items) {
      while (stack.length > 1 && item.indent <= stack[stack.length - 1].indent) stack.pop();
      const node = { ...item, children: [] };
      stack[stack.length - 1].children.push(node);
      stack.push(node);
    }
    const renderItems = (nodes) => {
      let html = "";
      let k = 0;
      while (k < nodes.length) {
        const ordered = /\d/.test(nodes[k].marker);
        const group = [];
        while (k < nodes.length && /\d/.test(nodes[k].marker) === ordered) group.push(nodes[k++]);
        const first = ordered ? parseInt(group[0].marker, 10) : 1;
        html += ordered ? (first !== 1 ? `<ol start="${first}">` : "<ol>") : "<ul>";
        for (const node of group) {
          let body = node.lines.join("\n");
          let task = "";
          const t = body.match(/^\[([ xX])\]\s+/);
          if (t) {
            task = t[1] === " " ? '<span class="md-task" aria-label="to do">☐</span> '
              : '<span class="md-task done" aria-label="done">☑</span> ';
            body = body.slice(t[0].length);
          }
          html += `<li>${task}${renderInline(body)}${node.children.length ? renderItems(node.children) : ""}</li>`;
        }
        html += ordered ? "</ol>" : "</ul>";
      }
      return html;
    };
    return { html: renderItems(root.children), next: i };
  }

  /** Markdown → safe HTML. Tolerates unfinished input (a stream cut mid-block). */
  function renderMarkdown(source) {
    const lines = String(source ?? "").replace(/\u0000/g, "\uFFFD").replace(/\r\n?/g, "\n").split("\n");
    const out = [];
    let para = [];
    const flush = () => {
      if (para.length) out.push(`<p>${renderInline(para.join("\n"))}</p>`);
      para = [];
    };
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m = line.match(RE_FENCE);
      if (m) {
        flush();
        const fence = m[1];
        const lang = m[2];
        const body = [];
        i++;
        while (i < lines.length && !(lines[i].trim().startsWith(fence) && lines[i].trim().replace(/[`~]/g, "") === "")) {
          body.push(lines[i]);
          i++;
        }
        i++;
        const langAttr = lang ? ` data-lang="${escapeHtml(lang)}"` : "";
        out.push(`<pre class="md-code"${langAttr}><code>${escapeHtml(body.join("\n"))}</code></pre>`);
        continue;
      }
      if (line.trim() === "") { flush(); i++; continue; }
      m = line.match(RE_HEADING);
      if (m) {
        flush();
        // Headings in an answer sit below the page's own h1/h2: # → h3 … ### and deeper → h5/h6.
        const level = Math.min(6, m[1].length + 2);
        out.push(`<h${level} class="md-h">${renderInline(m[2] || "")}</h${level}>`);
        i++;
        continue;
      }
      m = line.match(/^ {0,3}(=+|-+)\s*$/);
      if (m && para.length) {
        // Setext heading: the paragraph above, underlined with === or ---.
        const level = m[1][0] === "=" ? 3 : 4;
        out.push(`<h${level} class="md-h">${renderInline(para.join("\n"))}</h${level}>`);
        para = [];
        i++;
        continue;
      }
      if (RE_HR.test(line)) {
        flush();
        out.push("<hr>");
        i++;
        continue;
      }
      if (line.includes("|") && i + 1 < lines.length && RE_TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
        flush();
        const table = renderTable(lines, i);
        out.push(table.html);
        i = table.next;
        continue;
      }
      if (RE_QUOTE.test(line)) {
        flush();
        const quoted = [];
        while (i < lines.length && (m = lines[i].match(RE_QUOTE))) { quoted.push(m[1]); i++; }
        out.push(`<blockquote>${renderMarkdown(quoted.join("\n"))}</blockquote>`);
        continue;
      }
      if (RE_LIST.test(line) && (!para.length || !/^\s/.test(line))) {
        flush();
        const list = renderList(lines, i);
        out.push(list.html);
        i = list.next;
        continue;
      }
      para.push(line.trim());
      i++;
    }
    flush();
    return out.join("\n");
  }

  // ---------------------------------------------------------------------------------------------
  // 2. Session & HTTP
  // ---------------------------------------------------------------------------------------------

  /* Where the tokens live: localStorage, so a reload (or a second tab) keeps you logged in.
   * The trade-off: any script running on this origin could read them. We keep that risk small:
   * the page loads only its own scripts (a CSP forbids inline and third-party script), never puts
   * untrusted text into the DOM without escaping it, the access token is short-lived, and the
   * refresh token rotates (the server revokes the whole family when a used one is replayed).
   * sessionStorage would lose the login on every new tab; an HttpOnly cookie would need server
   * changes (and CSRF protection) that the wire contract does not have. */
  const SESSION_KEY = "runwire.session.v1";

  const session = { access: "", refresh: "", expiresAt: 0, user: null };
  let refreshTimer = null;
  let refreshing = null;

  function readStoredSession() {
    try {
      const raw = localStorage.getItem(SESSION_KEY);
      if (!raw) return null;
      const data = JSON.parse(raw);
      return data && typeof data.refresh === "string" && data.refresh ? data : null;
    } catch {
      return null;
    }
  }

  function adoptSession(data) {
    session.access = data.access || "";
    session.refresh = data.refresh || "";
    session.expiresAt = Number(data.expiresAt) || 0;
    session.user = data.user || session.user || null;
    scheduleRefresh();
  }

  function storeTokens(body) {
    adoptSession({
      access: body.access_token,
      refresh: body.refresh_token,
      expiresAt: Date.now() + Math.max(1, Number(body.expires_in) || 60) * 1000,
      user: body.user || session.user,
    });
    try {
      localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    } catch {
      /* storage full or disabled: the session still works until the page is closed */
    }
  }

  function forgetSession() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    session.access = "";
    session.refresh = "";
    session.expiresAt = 0;
    session.user = null;
    try { localStorage.removeItem(SESSION_KEY); } catch { /* ignore */ }
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!session.refresh || !session.expiresAt) return;
    const left = session.expiresAt - Date.now();
    // Refresh when 80% of the lifetime has passed (at most a minute early), never sooner than 1 s.
    const margin = Math.min(60_000, Math.max(1000, left * 0.2));
    refreshTimer = setTimeout(() => {
      refreshTokens().then((ok) => { if (!ok) sessionEnded(); })
        .catch(() => { refreshTimer = setTimeout(scheduleRefresh, 10_000); });
    }, Math.max(1000, left - margin));
  }

  /** Exchange the refresh token for a new pair, once at a time (across tabs when the browser can). */
  function refreshTokens() {
    if (!refreshing) {
      const work = () => doRefresh();
      const locked = navigator.locks && navigator.locks.request
        ? navigator.locks.request("runwire-token-refresh", work)
        : work();
      refreshing = Promise.resolve(locked).finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  // Where /auth/* lives: this origin, or on a split deployment the auth service named by the
  // chat node's GET /api/config (docs/auth.md, "Roles").
  let authBase = "";
  // Set when this node takes its users' tokens from an outside OpenID Connect issuer: the page
  // cannot sign in there (docs/auth.md, "Outside identity providers").
  let outsideIssuer = "";
  const authUrl = (path) => authBase + path;

  async function discoverAuth() {
    try {
      const response = await fetch("/api/config", { cache: "no-store" });
      if (response.ok) {
        const config = await response.json();
        authBase = config.auth_url || "";
        outsideIssuer = config.issuer || "";
      }
    } catch {
      // unreachable: this origin, as before; the calls themselves report the failure
    }
  }

  async function doRefresh() {
    // Another tab may have rotated the pair already: using our old refresh token again would
    // look like a replay and revoke the session, so adopt theirs instead.
    const stored = readStoredSession();
    if (stored && stored.refresh !== session.refresh && stored.expiresAt - Date.now() > 5000) {
      adoptSession(stored);
      return true;
    }
    const token = (stored && stored.refresh) || session.refresh;
    if (!token) return false;
    const response = await fetch(authUrl("/auth/refresh"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: token }),
      cache: "no-store",
    });
    if (response.ok) {
      storeTokens(await response.json());
      return true;
    }
    if (response.status === 401 || response.status === 422) return false;
    throw new Error(`refresh failed with HTTP ${response.status}`);
  }

  class HttpError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** fetch() with the Bearer token; refreshes before expiry and once more on a 401. */
  async function api(method, path, options = {}) {
    const { json, body, headers = {}, auth = true } = options;
    const send = () => {
      const h = { ...headers };
      let payload = body;
      if (json !== undefined) {
        h["Content-Type"] = "application/json";
        payload = JSON.stringify(json);
      }
      if (auth && session.access) h.Authorization = `Bearer ${session.access}`;
      return fetch(path, { method, headers: h, body: payload, cache: "no-store", credentials: "same-origin" });
    };
    if (auth && session.refresh && Date.now() > session.expiresAt - 5000) {
      await refreshTokens().catch(() => false);
    }
    let response = await send();
    if (response.status === 401 && auth && session.refresh) {
      let ok;
      try {
        ok = await refreshTokens();
      } catch {
        return response; // the server is unreachable: keep the session, the caller reports it
      }
      if (ok) response = await send();
      if (response.status === 401) sessionEnded();
    }
    return response;
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  /** A readable message from an error response ({detail, code} bodies; FastAPI lists too). */
  async function errorOf(response) {
    const body = await readJson(response);
    let detail = body && (body.detail ?? body.message);
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    if (typeof detail !== "string" || !detail) detail = `${response.status} ${response.statusText || "error"}`.trim();
    return new HttpError(response.status, (body && body.code) || "", detail);
  }

  async function apiJson(method, path, options) {
    const response = await api(method, path, options);
    if (!response.ok) throw await errorOf(response);
    return response.status === 204 ? null : readJson(response);
  }

  function newId(prefix) {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---------------------------------------------------------------------------------------------
  // 3. WebSocket: one socket, reconnect with backoff and a fresh ticket, resume unfinished runs
  // ---------------------------------------------------------------------------------------------

  const PING_EVERY_MS = 25_000;
  const PONG_GRACE_MS = 10_000;

  const conn = {
    ws: null,
    state: "offline", // offline | connecting | connected | reconnecting
    attempt: 0,
    wanted: false,
    retryTimer: null,
    pingTimer: null,
    pongTimer: null,
    everConnected: false,
  };

  function setConnState(state, detail) {
    conn.state = state;
    const el = $("#conn-status");
    el.dataset.state = state;
    const labels = { connected: "Connected", connecting: "Connecting…", reconnecting: "Reconnecting…", offline: "Offline" };
    el.querySelector(".conn-label").textContent = detail || labels[state];
    updateComposer();
  }

  function connect() {
    conn.wanted = true;
    if (conn.ws || conn.retryTimer) return;
    openSocket();
  }

  async function openSocket() {
    conn.retryTimer = null;
    if (!conn.wanted) return;
    setConnState(conn.everConnected ? "reconnecting" : "connecting");
    let ticket;
    try {
      ticket = (await apiJson("POST", "/api/ws-ticket")).ticket;
    } catch (err) {
      if (err instanceof HttpError && err.status === 401) return; // sessionEnded() took over
      scheduleReconnect();
      return;
    }
    if (!conn.wanted) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}`);
    conn.ws = ws;
    ws.addEventListener("message", (e) => {
      if (conn.ws !== ws) return;
      clearTimeout(conn.pongTimer);
      conn.pongTimer = null;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      if (frame && typeof frame === "object") onFrame(frame);
    });
    ws.addEventListener("close", (e) => {
      if (conn.ws !== ws) return;
      conn.ws = null;
      clearInterval(conn.pingTimer);
      clearTimeout(conn.pongTimer);
      conn.pingTimer = conn.pongTimer = null;
      if (!conn.wanted) { setConnState("offline"); return; }
      if (e.code === 4010) {
        // The session ended (logged out in another tab or device, or the password changed).
        sessionEnded();
        return;
      }
      if (e.code === 1008) {
        // Policy close: usually the session behind the ticket ended. A refresh tells us which.
        refreshTokens().then((ok) => (ok ? scheduleReconnect() : sessionEnded())).catch(scheduleReconnect);
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (!conn.wanted || conn.retryTimer) return;
    const base = Math.min(10_000, 500 * 2 ** conn.attempt);
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    conn.attempt++;
    setConnState(conn.everConnected ? "reconnecting" : "connecting",
      `${conn.everConnected ? "Reconnecting" : "Connecting"} in ${Math.max(1, Math.round(delay / 1000))} s…`);
    conn.retryTimer = setTimeout(openSocket, delay);
  }

  function reconnectNow() {
    if (!conn.wanted || conn.ws) return;
    clearTimeout(conn.retryTimer);
    conn.retryTimer = null;
    conn.attempt = 0;
    openSocket();
  }

  function disconnect() {
    conn.wanted = false;
    clearTimeout(conn.retryTimer);
    clearInterval(conn.pingTimer);
    clearTimeout(conn.pongTimer);
    conn.retryTimer = conn.pingTimer = conn.pongTimer = null;
    const ws = conn.ws;
    conn.ws = null;
    if (ws) ws.close(1000, "logout");
    conn.everConnected = false;
    conn.attempt = 0;
    setConnState("offline");
  }

  function sendFrame(frame) {
    if (!conn.ws || conn.ws.readyState !== WebSocket.OPEN || conn.state !== "connected") return false;
    conn.ws.send(JSON.stringify(frame));
    return true;
  }

  function onConnected() {
    conn.attempt = 0;
    conn.everConnected = true;
    setConnState("connected");
    clearInterval(conn.pingTimer);
    conn.pingTimer = setInterval(() => {
      if (!sendFrame({ type: "ping", request_id: newId("ping_") })) return;
      clearTimeout(conn.pongTimer);
      const ws = conn.ws;
      conn.pongTimer = setTimeout(() => { if (conn.ws === ws) ws.close(4000, "no pong"); }, PONG_GRACE_MS);
    }, PING_EVERY_MS);
    // Resume every run we have not seen finish, after the last event we saw.
    for (const run of runs.values()) {
      if (!run.finished) run.requestResume(true);
    }
    // Messages sent but never acknowledged: send again; client_message_id makes it idempotent.
    for (const pending of pendingSends.values()) sendFrame(pending.frame);
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "connection_established": onConnected(); return;
      case "message_accepted": onAccepted(frame); return;
      case "error": onErrorFrame(frame); return;
      case "pong": case "thread_history": return;
      case "server_closing":
        // Runs still stream during the grace; then the socket closes (1012) and we reconnect.
        setConnState("connected", "Server restarting soon…");
        return;
      default:
        if (typeof frame.run_id === "string" && Number.isInteger(frame.seq)) onRunEvent(frame);
        // Anything else is a type this client does not know: ignored on purpose.
    }
  }

  // ---------------------------------------------------------------------------------------------
  // 4. Runs: each run's events, de-duplicated by seq, drawn as a live agent tree + the answer
  // ---------------------------------------------------------------------------------------------

  const runs = new Map(); // run_id → RunView
  const pendingSends = new Map(); // request_id → {frame, bubble, viewToken}
  const orphans = new Map(); // run_id → events seen before we knew the run (message_accepted late)
  const TERMINAL = new Set(["agent_completed", "agent_error", "agent_stopped"]);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "title" || key === "type" || key === "id") node.setAttribute(key, value === true ? "" : String(value));
      else node[key] = value;
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function prettyJson(value) {
    let text;
    if (typeof value === "string") {
      try { text = JSON.stringify(JSON.parse(value), null, 2); } catch { text = value; }
    } else {
      try { text = JSON.stringify(value, null, 2); } catch { text = String(value); }
    }
    if (text === undefined) text = "null";
    return text.length > 20_000 ? `${text.slice(0, 20_000)}\n… (truncated)` : text;
  }

  /** US dollars with enough digits that a fraction of a cent still shows ($0.0007). */
  function formatCost(usd) {
    if (usd === 0) return "$0";
    const digits = usd >= 1 ? 2 : Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(usd))));
    return `$${usd.toFixed(digits)}`;
  }

  function formatDuration(ms) {
    if (!Number.isFinite(ms)) return "";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  }

  function agentLabel(name) {
    return String(name || "agent").replace(/[_-]+/g, " ");
  }

  /** One run as the user watches it: the agent tree, tool calls and the streaming answer. */
  class RunView {
    constructor({ runId, threadId, live = true, answer = true }) {
      this.runId = runId;
      this.threadId = threadId;
      this.live = live;
      this.lastSeq = 0;
      this.epoch = null; // the numbering lastSeq belongs to; a resume names it
      this.finished = false;
      this.outcome = "";
      this.stopping = false;
      this.agents = new Map();
      this.tools = new Map();
      this.root = null;
      this.answerText = "";
      this.renderQueued = false;
      this.firstTs = null;
      this.toolCount = 0;
      this.resumeAskedAt = -1;
      this.ahead = new Map(); // events past a gap, by seq: a connection never sends a seq twice

      this.summaryLabel = el("span", { class: "activity-label", text: live ? "Starting…" : "Agent activity" });
      this.summaryMeta = el("span", { class: "activity-meta" });
      // What the run's model took (the model_usage event); empty for a run answered offline.
      this.usageMeta = el("span", { class: "activity-meta model-usage", "data-testid": "model-usage", hidden: true });
      this.tree = el("div", { class: "agent-tree" });
      this.activity = el("details", { class: "activity", open: true, "data-testid": "event-list", "data-state": "running" },
        el("summary", {}, el("span", { class: "spinner", "aria-hidden": "true" }), this.summaryLabel, this.summaryMeta, this.usageMeta),
        this.tree);
      this.userToggled = false;
      this.activity.firstChild.addEventListener("click", () => { this.userToggled = true; });
      this.answerEl = answer
        ? el("div", { class: "answer markdown streaming", "data-testid": "assistant-message", "data-state": "streaming", "data-run-id": runId })
        : null;
      this.note = el("div", { class: "run-note", hidden: true, role: "status" });
      // The quality gate's warning (the quality_warning event): above the answer it concerns.
      this.qualityEl = el("div", { class: "quality-warning", hidden: true, role: "status", "data-testid": "quality-warning" });
      this.element = el("article", { class: "msg assistant", "data-run-id": runId, "data-testid": "assistant-turn" },
        el("div", { class: "avatar", "aria-hidden": "true", text: "rw" }),
        el("div", { class: "msg-body" }, this.activity, this.qualityEl, this.answerEl, this.note));
      if (this.answerEl) this.answerEl.append(el("span", { class: "placeholder", text: "Thinking…" }));
    }

    /** Apply one event, and any held ones it makes contiguous; false when it was a duplicate
     *  (dropped) or is held until the events before it arrive. */
    apply(ev) {
      if (this.finished && this.live) return false;
      if (ev.seq <= this.lastSeq) return false;
      if (ev.seq !== this.lastSeq + 1 && this.live) {
        // A gap: keep this one (after a reconnect, live events can come before the replay, and
        // the server does not send a seq twice) and ask for what lies between.
        if (this.ahead.size < 5000) this.ahead.set(ev.seq, ev);
        this.requestResume();
        return false;
      }
      this.applyInOrder(ev);
      for (let next = this.ahead.get(this.lastSeq + 1); next && !this.finished; next = this.ahead.get(this.lastSeq + 1)) {
        this.ahead.delete(next.seq);
        this.applyInOrder(next);
      }
      return true;
    }

    applyInOrder(ev) {
      this.lastSeq = ev.seq;
      if (typeof ev.epoch === "string") this.epoch = ev.epoch;
      if (this.firstTs === null) this.firstTs = Date.parse(ev.timestamp);
      const isRoot = ev.parent_agent === null || ev.parent_agent === undefined;
      const handler = EVENT_HANDLERS[ev.type];
      if (handler) handler.call(this, ev, isRoot);
      if (isRoot && TERMINAL.has(ev.type)) this.finish(ev);
    }

    /** Ask for the events after the last one we have; once per position unless ``force``d
     *  (a new socket forgets what the old one was asked). */
    requestResume(force = false) {
      if (this.finished || (!force && this.resumeAskedAt === this.lastSeq)) return;
      const frame = { type: "resume", run_id: this.runId, after_seq: this.lastSeq, request_id: newId("resume_") };
      if (this.epoch !== null) frame.epoch = this.epoch;
      if (sendFrame(frame)) {
        this.resumeAskedAt = this.lastSeq;
      }
    }

    agent(name, parent) {
      let node = this.agents.get(name);
      if (node) return node;
      const steps = el("ol", { class: "agent-steps" });
      const state = el("span", { class: "agent-state", text: "running" });
      const section = el("section", { class: "agent", "data-testid": "agent", "data-agent": name, "data-state": "running" },
        el("div", { class: "agent-head" },
          el("span", { class: "agent-dot", "aria-hidden": "true" }),
          el("span", { class: "agent-name", text: agentLabel(name) }),
          state),
        steps);
      node = { name, section, steps, state };
      this.agents.set(name, node);
      if (parent == null && !this.root) {
        this.root = node;
        section.classList.add("root");
        this.tree.append(section);
      } else {
        const host = (parent != null && this.agents.get(parent)) || this.root || this.agent(parent || "supervisor", null);
        host.steps.append(el("li", { class: "step step-agent" }, section));
      }
      return node;
    }

    setAgentState(node, state, label) {
      node.section.dataset.state = state;
      node.state.textContent = label || state;
    }

    /** Keep the newest step in view while the run streams, unless the user scrolled up. */
    follow() {
      const tree = this.tree;
      if (tree.scrollHeight - tree.scrollTop - tree.clientHeight < 80) {
        requestAnimationFrame(() => { tree.scrollTop = tree.scrollHeight; });
      }
      scrollIfNear();
    }

    setActivity(label) {
      this.summaryLabel.textContent = label;
    }

    updateMeta() {
      const agents = this.agents.size;
      const bits = [];
      if (agents) bits.push(`${agents} agent${agents === 1 ? "" : "s"}`);
      if (this.toolCount) bits.push(`${this.toolCount} tool call${this.toolCount === 1 ? "" : "s"}`);
      this.summaryMeta.textContent = bits.length ? ` · ${bits.join(" · ")}` : "";
    }

    queueAnswerRender() {
      if (!this.answerEl || this.renderQueued) return;
      this.renderQueued = true;
      requestAnimationFrame(() => {
        this.renderQueued = false;
        this.renderAnswer();
      });
    }

    renderAnswer() {
      if (!this.answerEl) return;
      const stick = nearBottom();
      if (this.answerText) {
        this.answerEl.innerHTML = renderMarkdown(this.answerText); // escaped by renderMarkdown
      } else if (this.finished) {
        this.answerEl.textContent = "";
      }
      if (stick) scrollToBottom();
    }

    finish(ev) {
      this.finished = true;
      this.outcome = ev.type === "agent_completed" ? "completed" : ev.type === "agent_error" ? "error" : "stopped";
      const took = Date.parse(ev.timestamp) - this.firstTs;
      const time = Number.isFinite(took) && took >= 0 ? ` in ${formatDuration(took)}` : "";
      this.activity.dataset.state = this.outcome;
      if (this.outcome === "completed") {
        if (typeof ev.final_response === "string" && ev.final_response.trim()) this.answerText = ev.final_response;
        this.setActivity(`Done${time}`);
        // The answer is what matters now: fold the activity away (one click brings it back).
        if (this.answerEl && this.answerText && !this.userToggled) this.activity.open = false;
      } else if (this.outcome === "stopped") {
        this.setActivity(`Stopped${time}`);
        this.showNote("Stopped. The answer above may be incomplete.", "stopped");
      } else {
        this.setActivity(`Failed${time}`);
        this.showNote(`The run failed: ${ev.message || "unknown error"}${ev.code ? ` (${ev.code})` : ""}`, "error");
      }
      if (this.answerEl) {
        this.answerEl.classList.remove("streaming");
        this.answerEl.dataset.state = this.outcome === "completed" ? "done" : this.outcome;
        if (ev.message_id) this.answerEl.dataset.messageId = ev.message_id;
        this.renderAnswer();
        if (!this.answerText && this.outcome !== "completed") this.answerEl.hidden = true;
      }
      // Close anything the stream left open (a stop can cut tools and agents short).
      for (const node of this.agents.values()) {
        if (node.section.dataset.state === "running") this.setAgentState(node, this.outcome === "completed" ? "done" : this.outcome);
      }
      for (const tool of this.tools.values()) {
        if (tool.details.dataset.status === "running") {
          tool.details.dataset.status = "cancelled";
          tool.badge.textContent = "cancelled";
        }
      }
      if (this.live) runFinished(this);
    }

    showNote(text, kind) {
      this.note.hidden = false;
      this.note.className = `run-note ${kind}`;
      this.note.dataset.testid = kind === "error" ? "run-error" : "run-note";
      this.note.textContent = text;
    }
  }

  const EVENT_HANDLERS = {
    agent_started(ev) {
      const node = this.agent(ev.agent_name, ev.parent_agent);
      this.setAgentState(node, "running");
      this.setActivity(`Working · ${agentLabel(ev.agent_name)}`);
      this.updateMeta();
      this.follow();
    },
    agent_thinking(ev) {
      const node = this.agent(ev.agent_name, ev.parent_agent);
      const text = typeof ev.reasoning === "string" ? ev.reasoning : prettyJson(ev.reasoning);
      node.steps.append(el("li", { class: "step thinking", "data-testid": "thinking-line", text }));
      this.setActivity(`Thinking · ${agentLabel(ev.agent_name)}`);
      this.follow();
    },
    tool_executing(ev) {
      const node = this.agent(ev.agent_name, ev.parent_agent);
      const badge = el("span", { class: "badge", text: "running…" });
      const duration = el("span", { class: "duration" });
      const result = el("div", { class: "tool-section tool-result", hidden: true });
      const details = el("details", { class: "tool-call", "data-testid": "tool-call", "data-status": "running", "data-tool-name": ev.tool_name, "data-tool-call-id": ev.tool_call_id },
        el("summary", {},
          el("span", { class: "tool-icon", "aria-hidden": "true", text: "⚙" }),
          el("code", { class: "tool-name", text: ev.tool_name || "tool" }),
          badge, duration),
        el("div", { class: "tool-section" },
          el("h4", { text: "Arguments" }),
          el("pre", { class: "json", "data-testid": "tool-args", text: prettyJson(ev.tool_args ?? {}) })),
        result);
      this.tools.set(ev.tool_call_id, { details, badge, duration, result });
      node.steps.append(el("li", { class: "step step-tool" }, details));
      this.toolCount++;
      this.updateMeta();
      this.setActivity(`Running ${ev.tool_name || "a tool"} · ${agentLabel(ev.agent_name)}`);
      this.follow();
    },
    tool_completed(ev) {
      let tool = this.tools.get(ev.tool_call_id);
      if (!tool) {
        EVENT_HANDLERS.tool_executing.call(this, { ...ev, tool_args: ev.tool_args ?? {} });
        tool = this.tools.get(ev.tool_call_id);
      }
      const ok = ev.success !== false;
      tool.details.dataset.status = ok ? "ok" : "failed";
      tool.badge.textContent = ok ? "ok" : "failed";
      tool.duration.textContent = Number.isFinite(ev.duration_ms) ? formatDuration(ev.duration_ms) : "";
      tool.result.hidden = false;
      const parts = [el("h4", { text: ok ? "Result" : "Error" })];
      if (ev.error) parts.push(el("p", { class: "tool-error", "data-testid": "tool-error", text: typeof ev.error === "string" ? ev.error : prettyJson(ev.error) }));
      if (ev.result !== undefined && (ev.result !== null || !ev.error)) {
        parts.push(el("pre", { class: "json", "data-testid": "tool-result", text: prettyJson(ev.result) }));
      }
      tool.result.replaceChildren(...parts);
    },
    text_delta(ev) {
      if (typeof ev.delta !== "string" || !this.answerEl) return;
      this.answerText += ev.delta;
      this.setActivity(`Writing the answer · ${agentLabel(ev.agent_name)}`);
      this.queueAnswerRender();
    },
    quality_warning(ev) {
      // A replaced answer: the model's text already shown is dropped; the offline answer that
      // follows (more text_delta events) is the answer, and the one stored.
      if (ev.replaced && this.answerEl) {
        this.answerText = "";
        this.queueAnswerRender();
      }
      this.qualityEl.textContent = typeof ev.message === "string" ? ev.message : "This answer failed the quality check.";
      this.qualityEl.hidden = false;
    },
    model_usage(ev) {
      const tokens = Number.isFinite(ev.total_tokens) ? ev.total_tokens : 0;
      const bits = [`${ev.model || "model"}: ${tokens.toLocaleString("en-US")} tokens`];
      if (Number.isFinite(ev.cost_usd)) bits.push(formatCost(ev.cost_usd));
      this.usageMeta.textContent = ` · ${bits.join(" · ")}`;
      this.usageMeta.title = `${ev.requests} model request${ev.requests === 1 ? "" : "s"}: ${ev.prompt_tokens} prompt and ${ev.completion_tokens} completion tokens${Number.isFinite(ev.cost_usd) ? ", at list price" : ""}`;
      this.usageMeta.hidden = false;
    },
    agent_completed(ev, isRoot) {
      const node = this.agent(ev.agent_name, ev.parent_agent);
      this.setAgentState(node, "done");
      if (!isRoot && ev.final_response !== undefined && ev.final_response !== null && ev.final_response !== "") {
        const text = typeof ev.final_response === "string" ? ev.final_response : prettyJson(ev.final_response);
        node.steps.append(el("li", { class: "step agent-output" },
          el("details", {}, el("summary", { text: "Output" }), el("pre", { class: "json", text }))));
      }
    },
    agent_error(ev) {
      const node = this.agent(ev.agent_name, ev.parent_agent);
      this.setAgentState(node, "error", "failed");
      node.steps.append(el("li", { class: "step step-error", "data-testid": "agent-error",
        text: `${ev.message || "The agent failed."}${ev.code ? ` (${ev.code})` : ""}` }));
    },
    agent_stopped(ev) {
      const node = this.agent(ev.agent_name, ev.parent_agent);
      this.setAgentState(node, "stopped");
    },
  };

  function onRunEvent(ev) {
    let run = runs.get(ev.run_id);
    if (!run) {
      if (ev.thread_id && ev.thread_id === view.threadId && !view.loading) {
        // A run on the open thread that this page did not start (another tab): show it too.
        run = startRun(ev.run_id, ev.thread_id, null);
        if (ev.seq !== 1) {
          run.requestResume();
          return;
        }
      } else {
        if (pendingSends.size) {
          // message_accepted may still be on its way: keep the events for a moment.
          const list = orphans.get(ev.run_id) || [];
          if (list.length < 2000) list.push(ev);
          orphans.set(ev.run_id, list);
          if (orphans.size > 50) orphans.delete(orphans.keys().next().value);
        } else if (TERMINAL.has(ev.type) && ev.parent_agent == null) {
          refreshThreadsSoon();
        }
        return;
      }
    }
    run.apply(ev);
  }

  function startRun(runId, threadId, afterEl) {
    const run = new RunView({ runId, threadId });
    runs.set(runId, run);
    if ((afterEl && afterEl.isConnected) || (threadId === view.threadId && !view.loading)) {
      if (afterEl && afterEl.isConnected) afterEl.after(run.element);
      else $("#messages").append(run.element);
      showEmptyState();
      scrollToBottom();
    }
    const buffered = orphans.get(runId);
    if (buffered) {
      orphans.delete(runId);
      buffered.sort((a, b) => a.seq - b.seq).forEach((ev) => run.apply(ev));
    }
    updateComposer();
    return run;
  }

  function runFinished(run) {
    const said = { completed: "The answer is ready.", stopped: "The run was stopped.", error: "The run failed." };
    $("#announcer").textContent = said[run.outcome] || "";
    updateComposer();
    refreshThreadsSoon();
    if (run.outcome === "completed") loadUsageCount();
  }

  function onAccepted(frame) {
    const pending = frame.request_id && pendingSends.get(frame.request_id);
    if (!pending) return;
    pendingSends.delete(frame.request_id);
    pending.bubble.classList.remove("pending");
    pending.bubble.dataset.messageId = frame.message_id;
    pending.bubble.dataset.threadId = frame.thread_id;
    if (pending.viewToken === view.token && view.threadId === null) {
      view.threadId = frame.thread_id;
      history.replaceState(null, "", `#thread=${encodeURIComponent(frame.thread_id)}`);
      // Until the thread list reloads with the server's title, name the chat after the question.
      const question = pending.frame.content.replace(/\s+/g, " ");
      $("#chat-title").textContent = question.length > 80 ? `${question.slice(0, 79)}…` : question;
    }
    let run = runs.get(frame.run_id);
    if (!run) run = startRun(frame.run_id, frame.thread_id, pending.bubble);
    // A re-sent message: its run may have gone on while we were away; fetch what we missed.
    if (frame.duplicate && !run.finished) run.requestResume();
    refreshThreadsSoon();
    updateComposer();
  }

  function onErrorFrame(frame) {
    const text = `${frame.message || "Something went wrong."}${frame.code ? ` (${frame.code})` : ""}`;
    const pending = frame.request_id && pendingSends.get(frame.request_id);
    if (pending) {
      pendingSends.delete(frame.request_id);
      pending.bubble.classList.remove("pending");
      pending.bubble.classList.add("failed");
      pending.bubble.querySelector(".msg-body").append(el("p", { class: "msg-failed", text: `Not sent: ${text}` }));
      showError(`Your message was not sent: ${text}`);
      updateComposer();
      return;
    }
    if (frame.code === "run_finished") return; // a stop that arrived after the run ended
    if (frame.code === "reload_required") { reloadRun(frame.run_id); return; }
    showError(text);
  }

  /** The server cannot continue a run from where this page is (it restarted and renumbered the
   *  run, or its events expired): drop what we drew of it and reload the thread's messages, which
   *  shows the reply if there is one and picks the run up from its start if it is still going. */
  function reloadRun(runId) {
    const run = runs.get(runId);
    if (!run) return;
    runs.delete(runId);
    run.element.remove();
    updateComposer();
    if (run.threadId === view.threadId) openThread(view.threadId);
  }

  // ---------------------------------------------------------------------------------------------
  // 5. Threads, messages, usage data
  // ---------------------------------------------------------------------------------------------

  const view = { threadId: null, token: 0, loading: false };
  let threadsCache = [];
  let threadsTimer = null;

  function $(selector) {
    return document.querySelector(selector);
  }

  function nearBottom() {
    const box = $("#messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  }

  function scrollToBottom() {
    const box = $("#messages");
    box.scrollTop = box.scrollHeight;
  }

  function scrollIfNear() {
    if (nearBottom()) requestAnimationFrame(scrollToBottom);
  }

  function showError(text) {
    const banner = $("#chat-error");
    banner.querySelector(".banner-text").textContent = text;
    banner.hidden = false;
  }

  function hideError() {
    $("#chat-error").hidden = true;
  }

  function relativeTime(iso) {
    const t = Date.parse(iso);
    if (!Number.isFinite(t)) return "";
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 45) return "just now";
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
    return new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }

  function renderThreads() {
    const list = $("#thread-list");
    list.replaceChildren(...threadsCache.map((t) => {
      const button = el("button", { type: "button", class: "thread-item", "data-testid": "thread-item", "data-thread-id": t.id,
        "aria-current": t.id === view.threadId ? "true" : null },
      el("span", { class: "thread-title", text: t.title || "Untitled chat" }),
      el("time", { class: "thread-time", dateTime: t.updated_at || t.created_at, text: relativeTime(t.updated_at || t.created_at) }));
      button.addEventListener("click", () => { openThread(t.id); closeSidebar(); });
      return el("li", {}, button);
    }));
    $("#threads-empty").hidden = threadsCache.length > 0;
    const current = threadsCache.find((t) => t.id === view.threadId);
    $("#chat-title").textContent = current ? current.title || "Untitled chat" : view.threadId ? "Chat" : "New chat";
  }

  async function loadThreads() {
    try {
      const body = await apiJson("GET", "/api/threads");
      threadsCache = Array.isArray(body && body.threads) ? body.threads : [];
      renderThreads();
    } catch (err) {
      if (!(err instanceof HttpError && err.status === 401)) showError(`Could not load your chats: ${err.message}`);
    }
  }

  function refreshThreadsSoon() {
    clearTimeout(threadsTimer);
    threadsTimer = setTimeout(loadThreads, 150);
  }

  function showEmptyState() {
    const empty = view.threadId === null && $("#messages").children.length === 0;
    $("#empty-state").hidden = !empty;
    $("#messages").hidden = empty;
  }

  function userBubble(content, createdAt) {
    return el("article", { class: "msg user", "data-testid": "user-message" },
      el("div", { class: "avatar", "aria-hidden": "true", text: "You" }),
      el("div", { class: "msg-body" },
        el("div", { class: "msg-text", text: content }),
        createdAt ? el("time", { class: "msg-time", dateTime: createdAt, text: new Date(createdAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) }) : null));
  }

  function assistantBubble(message) {
    const answer = el("div", { class: "answer markdown", "data-testid": "assistant-message", "data-state": message.partial ? "partial" : "done",
      "data-message-id": message.id, "data-run-id": message.run_id });
    answer.innerHTML = renderMarkdown(message.content); // escaped by renderMarkdown
    const body = el("div", { class: "msg-body" });
    if (message.run_id) {
      const show = el("button", { type: "button", class: "link-button", "data-testid": "show-activity", text: "Show agent activity" });
      show.addEventListener("click", () => showPastActivity(message.run_id, body, show));
      body.append(show);
    }
    body.append(answer);
    if (message.partial) body.append(el("div", { class: "run-note stopped", text: "This answer is incomplete: its run was stopped or failed." }));
    return el("article", { class: "msg assistant", "data-testid": "assistant-turn", "data-run-id": message.run_id }, el("div", { class: "avatar", "aria-hidden": "true", text: "rw" }), body);
  }

  async function showPastActivity(runId, body, button) {
    button.disabled = true;
    button.textContent = "Loading activity…";
    try {
      const data = await apiJson("GET", `/api/runs/${encodeURIComponent(runId)}/events?after=0`);
      const replay = new RunView({ runId, threadId: view.threadId, live: false, answer: false });
      for (const ev of (data && data.events) || []) replay.apply(ev);
      replay.activity.open = true;
      button.replaceWith(replay.activity);
    } catch (err) {
      button.disabled = false;
      button.textContent = "Show agent activity";
      showError(`Could not load the run's events: ${err.message}`);
    }
  }

  function newChat() {
    view.token++;
    view.threadId = null;
    view.loading = false;
    history.replaceState(null, "", location.pathname);
    $("#messages").replaceChildren();
    hideError();
    renderThreads();
    showEmptyState();
    updateComposer();
    $("#composer-input").focus();
  }

  async function openThread(threadId) {
    const token = ++view.token;
    view.threadId = threadId;
    view.loading = true;
    history.replaceState(null, "", `#thread=${encodeURIComponent(threadId)}`);
    hideError();
    renderThreads();
    const box = $("#messages");
    box.replaceChildren(el("p", { class: "muted loading", text: "Loading…" }));
    showEmptyState();
    updateComposer();
    let data;
    try {
      data = await apiJson("GET", `/api/threads/${encodeURIComponent(threadId)}/messages`);
    } catch (err) {
      if (token !== view.token) return;
      view.loading = false;
      if (err instanceof HttpError && err.status === 404) {
        newChat();
        showError("That chat does not exist (or is not yours).");
      } else {
        box.replaceChildren();
        showError(`Could not load the chat: ${err.message}`);
      }
      return;
    }
    if (token !== view.token) return;
    view.loading = false;
    const messages = (data && data.messages) || [];
    const answered = new Set(messages.filter((m) => m.role === "assistant" && m.run_id).map((m) => m.run_id));
    const nodes = [];
    const toCheck = [];
    for (const m of messages) {
      if (m.role === "user") {
        nodes.push(userBubble(m.content, m.created_at));
        const live = m.run_id && runs.get(m.run_id);
        if (live && (!live.finished || !answered.has(m.run_id))) nodes.push(live.element);
        else if (m.run_id && !answered.has(m.run_id)) toCheck.push(m.run_id);
      } else if (m.role === "assistant") {
        const live = m.run_id && runs.get(m.run_id);
        if (live && !live.finished) continue; // the live view already shows it
        nodes.push(assistantBubble(m));
      }
    }
    box.replaceChildren(...nodes);
    showEmptyState();
    scrollToBottom();
    updateComposer();
    // A question without an answer may still be running (e.g. after a reload): pick it up live.
    for (const runId of toCheck) {
      apiJson("GET", `/api/runs/${encodeURIComponent(runId)}`).then((body) => {
        const status = body && body.run && body.run.status;
        if (token !== view.token || runs.has(runId) || (status !== "running" && status !== "queued")) return;
        startRun(runId, threadId, null).requestResume();
      }).catch(() => {});
    }
  }

  function activeRunsHere() {
    return [...runs.values()].filter((r) => !r.finished && r.live && r.threadId === view.threadId && view.threadId !== null);
  }

  function updateComposer() {
    const connected = conn.state === "connected";
    const send = $("#send");
    send.disabled = !connected || view.loading;
    send.title = connected ? "" : "Waiting for the connection…";
    const active = activeRunsHere();
    const stop = $("#stop");
    stop.hidden = active.length === 0;
    stop.disabled = active.every((r) => r.stopping);
    stop.lastChild.textContent = stop.disabled && active.length ? " Stopping…" : " Stop";
  }

  function submitMessage() {
    const input = $("#composer-input");
    const content = input.value.trim();
    if (!content) { input.focus(); return; }
    if (conn.state !== "connected") {
      showError("Not connected yet: your message is still in the box; send it once the status says Connected.");
      return;
    }
    hideError();
    const requestId = newId("req_");
    const frame = { type: "user_message", content, client_message_id: newId("cm_"), request_id: requestId };
    if (view.threadId) frame.thread_id = view.threadId;
    const bubble = userBubble(content, new Date().toISOString());
    bubble.classList.add("pending");
    $("#messages").append(bubble);
    pendingSends.set(requestId, { frame, bubble, viewToken: view.token });
    showEmptyState();
    scrollToBottom();
    sendFrame(frame);
    input.value = "";
    autosize();
  }

  function stopRuns() {
    for (const run of activeRunsHere()) {
      if (sendFrame({ type: "stop_agent", run_id: run.runId, request_id: newId("stop_") })) run.stopping = true;
    }
    updateComposer();
  }

  function autosize() {
    const input = $("#composer-input");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 220)}px`;
  }

  async function loadUsageCount() {
    try {
      const response = await api("GET", "/api/usage/summary");
      if (!response.ok) return;
      const body = await readJson(response);
      const n = Number(body && body.records);
      if (Number.isFinite(n)) {
        $("#usage-count").textContent = n === 0 ? "No usage records yet." : `${n.toLocaleString("en-US")} usage record${n === 1 ? "" : "s"} on file.`;
      }
    } catch { /* the count is a nicety */ }
  }

  async function loadSample() {
    const button = $("#load-sample");
    const status = $("#sample-status");
    button.disabled = true;
    status.className = "usage-status";
    status.textContent = "Loading sample data…";
    try {
      const body = await apiJson("POST", "/api/usage/sample");
      const n = Number(body && body.imported) || 0;
      const added = Number(body && body.new) || 0;
      status.className = "usage-status ok";
      status.dataset.imported = String(n);
      status.dataset.new = String(added);
      // The sample is loaded once: a second click adds nothing, and says so.
      status.textContent = added
        ? `Loaded ${n.toLocaleString("en-US")} sample records.`
        : `The sample data is already loaded (${n.toLocaleString("en-US")} records).`;
      loadUsageCount();
    } catch (err) {
      status.className = "usage-status error";
      status.textContent = `Could not load sample data: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  }

  function contentTypeOf(file) {
    const name = file.name.toLowerCase();
    if (name.endsWith(".jsonl") || name.endsWith(".ndjson")) return "application/x-ndjson";
    if (name.endsWith(".csv")) return "text/csv";
    if (file.type === "application/x-ndjson" || file.type === "text/csv") return file.type;
    return null;
  }

  async function uploadUsage(file) {
    const status = $("#upload-status");
    status.className = "usage-status";
    status.replaceChildren();
    const type = contentTypeOf(file);
    if (!type) {
      status.className = "usage-status error";
      status.textContent = `${file.name}: choose a .jsonl, .ndjson or .csv file.`;
      return;
    }
    status.textContent = `Uploading ${file.name}…`;
    try {
      const path = `/api/usage/import?name=${encodeURIComponent(file.name.slice(0, 200))}`;
      const response = await api("POST", path, { body: file, headers: { "Content-Type": type } });
      if (!response.ok) {
        const err = await errorOf(response);
        const hint = response.status === 413 ? "The file is too large. " : response.status === 415 ? "That file type is not accepted. " : "";
        throw new HttpError(response.status, err.code, hint + err.message);
      }
      const body = (await readJson(response)) || {};
      const imported = Number(body.imported) || 0;
      const present = Number(body.already_present) || 0;
      const rejected = Array.isArray(body.rejected) ? body.rejected : [];
      status.className = `usage-status ${rejected.length ? "warn" : "ok"}`;
      status.dataset.imported = String(imported);
      status.dataset.new = String(Number(body.new) || 0);
      status.dataset.rejected = String(rejected.length);
      // Records already stored (the same file imported again) are not added twice.
      const already = present ? ` (${present.toLocaleString("en-US")} already there)` : "";
      const summary = el("p", { text: `${file.name}: imported ${imported.toLocaleString("en-US")} record${imported === 1 ? "" : "s"}${already}` +
        (rejected.length ? `, rejected ${rejected.length} line${rejected.length === 1 ? "" : "s"}:` : ".") });
      status.append(summary);
      if (rejected.length) {
        const list = el("ul", { class: "rejected", "data-testid": "rejected-lines" },
          ...rejected.slice(0, 50).map((r) => el("li", { text: `Line ${r.line}: ${r.error}` })));
        status.append(list);
        if (rejected.length > 50) status.append(el("p", { class: "muted small", text: `…and ${rejected.length - 50} more.` }));
      }
      loadUsageCount();
    } catch (err) {
      status.className = "usage-status error";
      status.textContent = `Could not import ${file.name}: ${err.message}`;
    }
  }

  async function deleteUsage() {
    const button = $("#delete-usage");
    const status = $("#delete-status");
    const ask = "Delete all your usage records? The agents have nothing to analyse until you upload a file or load the sample again.";
    if (!window.confirm(ask)) return;
    button.disabled = true;
    status.className = "usage-status";
    status.textContent = "Deleting usage data…";
    try {
      const body = await apiJson("DELETE", "/api/usage/records");
      const n = Number(body && body.deleted) || 0;
      $("#sample-status").textContent = "";
      $("#upload-status").replaceChildren();
      status.className = "usage-status ok";
      status.dataset.deleted = String(n);
      status.textContent = `Deleted ${n.toLocaleString("en-US")} usage record${n === 1 ? "" : "s"}.`;
      loadUsageCount();
    } catch (err) {
      status.className = "usage-status error";
      status.textContent = `Could not delete usage data: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // 6. Auth views and wiring
  // ---------------------------------------------------------------------------------------------

  function authMessage(text, kind = "error") {
    const box = $("#auth-message");
    box.hidden = !text;
    box.className = `form-message ${kind}`;
    box.dataset.kind = kind;
    box.textContent = text || "";
  }

  function credentials() {
    return { email: $("#auth-email").value.trim(), password: $("#auth-password").value };
  }

  function readable422(detail) {
    const d = String(detail || "").toLowerCase();
    if (d.includes("password")) return "The password must be at least 8 characters long.";
    if (d.includes("email")) return "Please enter a valid email address.";
    return detail || "Please check the email and password.";
  }

  function setAuthBusy(busy) {
    $("#login").disabled = busy;
    $("#register").disabled = busy;
  }

  async function login(creds, { quiet = false } = {}) {
    const response = await fetch(authUrl("/auth/login"), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(creds), cache: "no-store",
    });
    if (response.ok) {
      storeTokens(await response.json());
      enterApp();
      return true;
    }
    if (response.status === 401) authMessage("Wrong email or password.");
    else if (response.status === 422) authMessage(readable422((await errorOf(response)).message));
    else if (!quiet) authMessage(`Could not log in: ${(await errorOf(response)).message}`);
    return false;
  }

  async function onLogin(event) {
    event.preventDefault();
    const creds = credentials();
    if (!creds.email || !creds.password) { authMessage("Enter your email and password."); return; }
    setAuthBusy(true);
    authMessage("");
    try {
      await login(creds);
    } catch {
      authMessage("Cannot reach the server. Check your connection and try again.");
    } finally {
      setAuthBusy(false);
    }
  }

  async function onRegister() {
    const creds = credentials();
    if (!creds.email || !creds.password) { authMessage("Enter an email and a password (at least 8 characters) to create an account."); return; }
    setAuthBusy(true);
    authMessage("");
    try {
      const response = await fetch(authUrl("/auth/register"), {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(creds), cache: "no-store",
      });
      if (response.status === 201) {
        authMessage("Account created. Logging you in…", "ok");
        await login(creds);
      } else if (response.status === 409) {
        authMessage("An account with this email already exists. Log in instead.");
      } else if (response.status === 422) {
        authMessage(readable422((await errorOf(response)).message));
      } else {
        authMessage(`Could not create the account: ${(await errorOf(response)).message}`);
      }
    } catch {
      authMessage("Cannot reach the server. Check your connection and try again.");
    } finally {
      setAuthBusy(false);
    }
  }

  async function onLogout() {
    const button = $("#logout");
    button.disabled = true;
    disconnect(); // before the server closes it (4010), which would read as "session ended"
    try {
      if (session.access) await fetch(authUrl("/auth/logout"), { method: "POST", headers: { Authorization: `Bearer ${session.access}` }, cache: "no-store" });
    } catch { /* logging out locally is what matters */ }
    button.disabled = false;
    leaveApp("You are logged out.", "ok");
  }

  function sessionEnded() {
    if (!session.refresh && $("#app-view").hidden) return;
    leaveApp("Your session has ended. Please log in again.", "error");
  }

  function resetChatState() {
    runs.clear();
    pendingSends.clear();
    orphans.clear();
    threadsCache = [];
    view.threadId = null;
    view.token++;
    $("#messages").replaceChildren();
    $("#thread-list").replaceChildren();
    $("#sample-status").textContent = "";
    $("#upload-status").replaceChildren();
    $("#delete-status").textContent = "";
    $("#usage-count").textContent = "No usage records yet.";
  }

  function leaveApp(message, kind) {
    disconnect();
    forgetSession();
    resetChatState();
    history.replaceState(null, "", location.pathname);
    document.body.classList.remove("signed-in");
    $("#app-view").hidden = true;
    $("#auth-view").hidden = false;
    $("#logout").hidden = true;
    $("#user-email").hidden = true;
    $("#auth-password").value = "";
    authMessage(message, kind);
    $("#auth-email").focus();
  }

  function enterApp() {
    document.body.classList.add("signed-in");
    $("#auth-view").hidden = true;
    $("#app-view").hidden = false;
    $("#logout").hidden = false;
    const email = $("#user-email");
    email.textContent = (session.user && session.user.email) || "";
    email.hidden = !email.textContent;
    authMessage("");
    $("#auth-password").value = "";
    connect();
    const wanted = new URLSearchParams(location.hash.slice(1)).get("thread");
    if (wanted) openThread(wanted); else newChat();
    loadThreads();
    loadUsageCount();
    if (!session.user) {
      apiJson("GET", "/api/me").then((body) => {
        if (body && body.user) {
          session.user = body.user;
          email.textContent = body.user.email;
          email.hidden = false;
        }
      }).catch(() => {});
    }
  }

  function openSidebar() {
    document.body.classList.add("sidebar-open");
    $("#sidebar-toggle").setAttribute("aria-expanded", "true");
    $("#sidebar-backdrop").hidden = false;
  }

  function closeSidebar() {
    document.body.classList.remove("sidebar-open");
    $("#sidebar-toggle").setAttribute("aria-expanded", "false");
    $("#sidebar-backdrop").hidden = true;
  }

  function wire() {
    $("#auth-form").addEventListener("submit", onLogin);
    $("#register").addEventListener("click", onRegister);
    $("#logout").addEventListener("click", onLogout);
    $("#new-chat").addEventListener("click", () => { newChat(); closeSidebar(); });
    $("#load-sample").addEventListener("click", loadSample);
    $("#delete-usage").addEventListener("click", deleteUsage);
    $("#usage-upload").addEventListener("change", (e) => {
      const file = e.target.files && e.target.files[0];
      if (file) uploadUsage(file).finally(() => { e.target.value = ""; });
    });
    $("#composer").addEventListener("submit", (e) => { e.preventDefault(); submitMessage(); });
    const input = $("#composer-input");
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submitMessage(); }
    });
    input.addEventListener("input", autosize);
    $("#stop").addEventListener("click", stopRuns);
    $("#chat-error .banner-close").addEventListener("click", hideError);
    for (const chip of document.querySelectorAll("[data-suggestion]")) {
      chip.addEventListener("click", () => { input.value = chip.textContent; autosize(); input.focus(); });
    }
    $("#sidebar-toggle").addEventListener("click", () =>
      (document.body.classList.contains("sidebar-open") ? closeSidebar() : openSidebar()));
    $("#sidebar-backdrop").addEventListener("click", closeSidebar);
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeSidebar(); });
    window.addEventListener("online", reconnectNow);
    // A pasted or edited #thread=… link (our own navigation uses replaceState, which is silent).
    window.addEventListener("hashchange", () => {
      if (!session.refresh) return;
      const wanted = new URLSearchParams(location.hash.slice(1)).get("thread");
      if (wanted && wanted !== view.threadId) openThread(wanted);
      else if (!wanted && view.threadId) newChat();
    });
    // Another tab logged out, logged in or rotated the tokens.
    window.addEventListener("storage", (e) => {
      if (e.key !== SESSION_KEY) return;
      const stored = readStoredSession();
      if (!stored) { if (session.refresh) leaveApp("You logged out in another tab.", "ok"); return; }
      const wasIn = Boolean(session.refresh);
      adoptSession(stored);
      if (!wasIn) enterApp();
    });
    // Test hook: lets the browser test cut the socket to exercise reconnect + resume.
    window.runwireDebug = Object.freeze({
      dropConnection() { if (conn.ws) conn.ws.close(4001, "dropped by test"); },
      renderMarkdown,
    });
  }

  async function boot() {
    wire();
    await discoverAuth();
    if (outsideIssuer) {
      leaveApp(
        `This server signs people in at ${outsideIssuer}, not on this page. Use an app that ` +
          "gets your access token there; it works with this server's API and WebSocket.",
        "error",
      );
      for (const field of $("#auth-form").elements) field.disabled = true;
      return;
    }
    const stored = readStoredSession();
    if (!stored) { leaveApp("", "ok"); return; }
    adoptSession(stored);
    if (Date.now() > session.expiresAt - 5000) {
      let ok = false;
      try {
        ok = await refreshTokens();
      } catch {
        ok = true; // server unreachable: keep the session, the socket will keep retrying
      }
      if (!ok) { leaveApp("Your session has ended. Please log in again.", "error"); return; }
    }
    enterApp();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
