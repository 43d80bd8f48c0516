// `qiusuo serve` through the official `openai` npm client: chat (non-streaming and streaming),
// usage with prefix-cache hits, reasoning_content, tool calls, JSON mode, completions (FIM) and
// errors surfaced as the client's error types.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer } from "./server.mjs";

let v3, r1;
const client = (srv, extra = {}) => new OpenAI({ baseURL: srv.url + "/v1", apiKey: "unused", maxRetries: 0, ...extra });

before(async () => {
  [v3, r1] = await Promise.all([startServer("v3"), startServer("r1")]);
});
after(async () => {
  assert.equal(await v3?.stop(), 0);
  assert.equal(await r1?.stop(), 0);
});

const ask = (content, extra = {}) => ({
  model: "tiny-v3",
  messages: [{ role: "user", content }],
  max_tokens: 10,
  temperature: 0,
  ...extra,
});

test("models.list", async () => {
  const page = await client(v3).models.list();
  assert.deepEqual(page.data.map((m) => m.id), ["tiny-v3"]);
});

test("non-streaming chat completion", async () => {
  const r = await client(v3).chat.completions.create(ask("Tell me about rivers."));
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, "tiny-v3");
  assert.equal(typeof r.created, "number");
  assert.equal(typeof r.system_fingerprint, "string");
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 10);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 10);
  assert.equal(r.usage.prompt_cache_hit_tokens + r.usage.prompt_cache_miss_tokens, r.usage.prompt_tokens);
  assert.equal(r.usage.prompt_tokens_details.cached_tokens, r.usage.prompt_cache_hit_tokens);
  assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 0);
});

test("streaming chat completion equals the non-streaming one", async () => {
  const c = client(v3);
  const whole = await c.chat.completions.create(ask("Tell me about stones."));
  const stream = await c.chat.completions.create(ask("Tell me about stones.", { stream: true, stream_options: { include_usage: true } }));
  let text = "";
  let chunks = 0;
  let finish = null;
  let usage = null;
  let role = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    chunks++;
    role ??= chunk.choices[0].delta.role;
    text += chunk.choices[0].delta.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(role, "assistant");
  assert.ok(chunks >= 3, "streamed in several chunks");
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, "length");
  assert.equal(usage.completion_tokens, 10);
  assert.equal(usage.prompt_tokens, whole.usage.prompt_tokens);
});

test("usage reports prefix-cache hits of a repeated system prompt", async () => {
  const c = client(v3);
  const system = "You are a patient tutor. " + "Explain every step carefully and check the arithmetic. ".repeat(80);
  const req = (q) => ({ model: "tiny-v3", messages: [{ role: "system", content: system }, { role: "user", content: q }], max_tokens: 2 });
  const a = await c.chat.completions.create(req("What is 2+2?"));
  const b = await c.chat.completions.create(req("What is 3+3?"));
  assert.equal(a.usage.prompt_cache_hit_tokens, 0);
  // Every full block of 64 tokens before the question is reused (the question and the template's
  // tail are under 16 tokens).
  assert.ok(b.usage.prompt_tokens > 384);
  assert.ok(b.usage.prompt_cache_hit_tokens > b.usage.prompt_tokens - 64 - 16, `hits: ${b.usage.prompt_cache_hit_tokens} of ${b.usage.prompt_tokens}`);
  assert.equal(b.usage.prompt_cache_hit_tokens % 64, 0);
  assert.equal(b.usage.prompt_tokens_details.cached_tokens, b.usage.prompt_cache_hit_tokens);
  assert.equal(b.usage.prompt_cache_miss_tokens, b.usage.prompt_tokens - b.usage.prompt_cache_hit_tokens);
});

test("reasoning_content from an R1 template", async () => {
  const c = client(r1);
  const req = { model: "tiny-r1", messages: [{ role: "user", content: "Why is the sky blue?" }], max_tokens: 12, temperature: 0 };
  const r = await c.chat.completions.create(req);
  const m = r.choices[0].message;
  assert.equal(typeof m.reasoning_content, "string");
  assert.ok(m.reasoning_content.length > 0);
  assert.ok(r.usage.completion_tokens_details.reasoning_tokens > 0);
  const stream = await c.chat.completions.create({ ...req, stream: true });
  let reasoning = "";
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta ?? {};
    if (d.reasoning_content) {
      assert.equal(d.content, null, "reasoning chunks carry content: null");
      reasoning += d.reasoning_content;
    }
  }
  assert.equal(reasoning, m.reasoning_content);
});

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather of a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
];

test("tool calls", async () => {
  const c = client(v3);
  const r = await c.chat.completions.create(
    ask("What is the weather in Paris?", { max_tokens: 40, tools, tool_choice: { type: "function", function: { name: "get_weather" } } }),
  );
  const ch = r.choices[0];
  assert.equal(ch.finish_reason, "tool_calls");
  assert.equal(ch.message.tool_calls.length, 1);
  const call = ch.message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.equal(call.function.name, "get_weather");
  assert.equal(typeof JSON.parse(call.function.arguments), "object");
  // The result goes back as a tool message; the conversation continues.
  const next = await c.chat.completions.create({
    model: "tiny-v3",
    max_tokens: 3,
    tools,
    messages: [
      { role: "user", content: "What is the weather in Paris?" },
      { role: "assistant", content: null, tool_calls: [call] },
      { role: "tool", tool_call_id: call.id, content: '{"temperature": 21}' },
    ],
  });
  assert.equal(next.choices[0].message.role, "assistant");
  // Streamed: one delta.tool_calls entry with the whole call.
  const stream = await c.chat.completions.create(ask("Weather?", { max_tokens: 40, tools, tool_choice: "required", stream: true }));
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta;
    if (d?.tool_calls) calls.push(...d.tool_calls);
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(calls.length, 1);
  assert.equal(calls[0].index, 0);
  assert.equal(calls[0].function.name, "get_weather");
  assert.equal(typeof JSON.parse(calls[0].function.arguments), "object");
  assert.equal(finish, "tool_calls");
});

test("JSON mode", async () => {
  for (const max_tokens of [8, 40]) {
    const r = await client(v3).chat.completions.create(
      ask("Reply in json.", { max_tokens, temperature: 1, seed: 5, response_format: { type: "json_object" } }),
    );
    const content = r.choices[0].message.content;
    const value = JSON.parse(content);
    assert.equal(typeof value, "object");
    assert.ok(!Array.isArray(value) && value !== null, content);
  }
});

test("completions and fill in the middle", async () => {
  const c = client(v3);
  const r = await c.completions.create({ model: "tiny-v3", prompt: "def add(a, b):", max_tokens: 4, temperature: 0, logprobs: 2 });
  assert.equal(r.object, "text_completion");
  assert.equal(typeof r.choices[0].text, "string");
  assert.equal(r.choices[0].logprobs.tokens.length, 4);
  const fim = await new OpenAI({ baseURL: v3.url + "/beta", apiKey: "unused", maxRetries: 0 }).completions.create({
    model: "tiny-v3",
    prompt: "def fib(n):\n    ",
    suffix: "\n    return a",
    max_tokens: 4,
  });
  assert.equal(fim.usage.completion_tokens, 4);
});

test("errors are the client's error types", async () => {
  const c = client(v3);
  await assert.rejects(c.chat.completions.create(ask("x", { model: "gpt-4o" })), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, "model");
    return true;
  });
  await assert.rejects(c.chat.completions.create(ask("x", { temperature: 9 })), OpenAI.BadRequestError);
  await assert.rejects(c.chat.completions.create(ask("x", { messages: [] })), OpenAI.BadRequestError);
  await assert.rejects(c.chat.completions.create(ask("x", { max_tokens: "many" })), OpenAI.UnprocessableEntityError);
  await assert.rejects(c.chat.completions.create(ask("x", { max_tokens: 100000 })), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.code, "context_length_exceeded");
    return true;
  });
  await assert.rejects(c.models.retrieve("nope"), OpenAI.NotFoundError);

  const keyed = await startServer("v3", ["--api-key", "sekret"]);
  const busy = await startServer("v3", ["--max-batch", "1", "--queue", "0"]);
  try {
    await assert.rejects(client(keyed, { apiKey: "wrong" }).models.list(), OpenAI.AuthenticationError);
    assert.equal((await client(keyed, { apiKey: "sekret" }).models.list()).data[0].id, "tiny-v3");
    const b = client(busy);
    const results = await Promise.allSettled([0, 1, 2, 3].map((i) => b.chat.completions.create(ask("count " + i, { max_tokens: 300 }))));
    assert.ok(results.some((r) => r.status === "fulfilled"));
    const limited = results.filter((r) => r.status === "rejected");
    assert.ok(limited.length > 0);
    for (const r of limited) assert.ok(r.reason instanceof OpenAI.RateLimitError, String(r.reason));
  } finally {
    assert.equal(await keyed.stop(), 0);
    assert.equal(await busy.stop(), 0);
  }
});
