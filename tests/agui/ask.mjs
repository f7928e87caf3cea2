// Asks runwire's POST /ag-ui a thread of questions with the official AG-UI client (HttpAgent,
// whose event verifier checks every stream) and prints what a front end would have seen, as one
// JSON line: per run its event types, the answer's text, the request's size and any error.
//
// Environment: AGUI_URL (the endpoint), AGUI_TOKEN (an access token), AGUI_QUESTIONS (a JSON
// array of questions, asked one after another in one thread). Used by tests/e2e/test_agui.py.
import { HttpAgent } from "@ag-ui/client";

const url = process.env.AGUI_URL;
const token = process.env.AGUI_TOKEN;
const questions = JSON.parse(process.env.AGUI_QUESTIONS ?? "[]");

let requestBytes = 0;
const agent = new HttpAgent({
  url,
  headers: { Authorization: `Bearer ${token}` },
  fetch: (target, init) => {
    requestBytes = Buffer.byteLength(String(init.body ?? ""));
    return fetch(target, init);
  },
});

const runs = [];
for (const [index, question] of questions.entries()) {
  const types = [];
  const steps = [];
  let started = null;
  let finished = null;
  let runError = null;
  agent.addMessage({ id: `question-${index}`, role: "user", content: question });
  const before = new Set(agent.messages.map((m) => m.id));
  let error = null;
  try {
    await agent.runAgent(
      { runId: `run-${index}-${Date.now()}` },
      {
        onEvent: ({ event }) => {
          types.push(event.type);
        },
        onRunStartedEvent: ({ event }) => {
          started = event;
        },
        onStepStartedEvent: ({ event }) => {
          steps.push(event.stepName);
        },
        onRunFinishedEvent: ({ event }) => {
          finished = event;
        },
        onRunErrorEvent: ({ event }) => {
          runError = event;
        },
      },
    );
  } catch (e) {
    error = String(e?.message ?? e);
  }
  const added = agent.messages.filter((m) => !before.has(m.id));
  const answers = added.filter((m) => m.role === "assistant" && typeof m.content === "string");
  runs.push({
    question,
    types,
    steps,
    started,
    finished,
    runError,
    error,
    requestBytes,
    answer: answers.map((m) => m.content).join(""),
    roles: added.map((m) => m.role),
  });
}
process.stdout.write(JSON.stringify({ threadId: agent.threadId, runs }) + "\n");
