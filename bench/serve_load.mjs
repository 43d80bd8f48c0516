#!/usr/bin/env node
// Serving load generator with the metrics of vLLM's benchmark_serving.py: request and output-token
// throughput, TTFT, TPOT and ITL (mean, p50, p99) and end-to-end latency, at each concurrency.
// Requests are streamed OpenAI /v1/completions calls with token-id prompts (the same ids for every
// server: no tokenizer differences), random lengths around --input-len / --output-len
// (±--range-ratio, seeded), `ignore_eos` so every request generates exactly its output length,
// greedy. Works against `qiusuo serve` and llama.cpp's `llama-server` alike.
//
//   node bench/serve_load.mjs --url http://127.0.0.1:8080 --model NAME --concurrency 1,4,16,64 \
//        [--requests-per-level 4x] [--input-len 128] [--output-len 64] [--range-ratio 0.5] \
//        [--vocab-lo 1000 --vocab-hi 30000] [--seed 0] [--warmup 1] [--label qiusuo] [--out FILE.json]
//
// --requests-per-level: a number, or "Kx" for K times the concurrency (at least 8).
// Prints one JSON object per level (and the list to --out).
import { writeFileSync } from "node:fs";

function args() {
  const a = {
    url: "http://127.0.0.1:8080", model: "", concurrency: "1,4,16,64", "requests-per-level": "2x",
    "input-len": 128, "output-len": 64, "range-ratio": 0.5, "vocab-lo": 1000, "vocab-hi": 30000,
    seed: 0, warmup: 1, label: "", out: "", "api-key": "", timeout: 1800,
  };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (!v[i].startsWith("--")) throw new Error(`unexpected argument ${v[i]}`);
    const k = v[i].slice(2);
    if (!(k in a)) throw new Error(`unknown option --${k}`);
    a[k] = v[++i];
  }
  for (const k of ["input-len", "output-len", "range-ratio", "vocab-lo", "vocab-hi", "seed", "warmup", "timeout"]) a[k] = Number(a[k]);
  a.levels = String(a.concurrency).split(",").map(Number);
  return a;
}

// mulberry32: a small seeded generator, the same prompts on every run.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function dataset(a, n, seed) {
  const r = rng(seed);
  const len = (mean) => Math.max(1, Math.round(mean * (1 - a["range-ratio"] + 2 * a["range-ratio"] * r())));
  const out = [];
  for (let i = 0; i < n; i++) {
    const input = len(a["input-len"]);
    const ids = Array.from({ length: input }, () => a["vocab-lo"] + Math.floor(r() * (a["vocab-hi"] - a["vocab-lo"])));
    out.push({ prompt: ids, output: len(a["output-len"]) });
  }
  return out;
}

async function one(a, req) {
  const body = {
    model: a.model, prompt: req.prompt, max_tokens: req.output, temperature: 0, ignore_eos: true,
    stream: true, stream_options: { include_usage: true },
  };
  const headers = { "Content-Type": "application/json" };
  if (a["api-key"]) headers.Authorization = "Bearer " + a["api-key"];
  const t0 = performance.now();
  const res = await fetch(a.url + "/v1/completions", { method: "POST", headers, body: JSON.stringify(body) });
  if (!res.ok) return { ok: false, error: `${res.status} ${(await res.text()).slice(0, 200)}` };
  const times = [];
  let usage = null;
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const now = performance.now();
    buf += dec.decode(value, { stream: true });
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, at);
      buf = buf.slice(at + 2);
      for (const line of ev.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const d = line.slice(6).trim();
        if (d === "[DONE]") continue;
        let j;
        try {
          j = JSON.parse(d);
        } catch {
          continue;
        }
        if (j.usage) usage = j.usage;
        const text = j.choices?.[0]?.text ?? j.content;
        if (typeof text === "string" && text.length > 0) times.push(now);
      }
    }
  }
  const end = performance.now();
  const tokens = usage?.completion_tokens ?? req.output;
  if (times.length === 0) return { ok: false, error: "no tokens streamed" };
  const ttft = (times[0] - t0) / 1000;
  const e2e = (end - t0) / 1000;
  const itl = [];
  for (let i = 1; i < times.length; i++) itl.push((times[i] - times[i - 1]) / 1000);
  return { ok: true, ttft, e2e, tokens, tpot: tokens > 1 ? (e2e - ttft) / (tokens - 1) : 0, itl, prompt: req.prompt.length };
}

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  const k = (s.length - 1) * p;
  const lo = Math.floor(k), hi = Math.ceil(k);
  return s[lo] + (s[hi] - s[lo]) * (k - lo);
};
const mean = (xs) => (xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : NaN);
const ms = (x) => Math.round(x * 1e4) / 10;

async function level(a, c) {
  const perLevel = String(a["requests-per-level"]);
  const n = perLevel.endsWith("x") ? Math.max(8, Math.round(Number(perLevel.slice(0, -1)) * c)) : Number(perLevel);
  const reqs = dataset(a, n, a.seed * 1000 + c);
  if (a.warmup) await Promise.all(dataset(a, Math.min(c, 4), 999 + c).map((r) => one(a, { ...r, output: 4 })));
  const results = new Array(n);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      for (let i = next++; i < n; i = next++) results[i] = await one(a, reqs[i]);
    }),
  );
  const dur = (performance.now() - t0) / 1000;
  const ok = results.filter((r) => r.ok);
  const outTok = ok.reduce((s, r) => s + r.tokens, 0);
  const inTok = ok.reduce((s, r) => s + r.prompt, 0);
  const itl = ok.flatMap((r) => r.itl);
  return {
    label: a.label, concurrency: c, requests: n, completed: ok.length, failed: n - ok.length,
    errors: [...new Set(results.filter((r) => !r.ok).map((r) => r.error))].slice(0, 3),
    duration_s: Math.round(dur * 100) / 100,
    request_throughput: ok.length / dur, output_token_throughput: outTok / dur, total_token_throughput: (inTok + outTok) / dur,
    input_tokens: inTok, output_tokens: outTok,
    ttft_ms: { mean: ms(mean(ok.map((r) => r.ttft))), p50: ms(pct(ok.map((r) => r.ttft), 0.5)), p99: ms(pct(ok.map((r) => r.ttft), 0.99)) },
    tpot_ms: { mean: ms(mean(ok.map((r) => r.tpot))), p50: ms(pct(ok.map((r) => r.tpot), 0.5)), p99: ms(pct(ok.map((r) => r.tpot), 0.99)) },
    itl_ms: { mean: ms(mean(itl)), p50: ms(pct(itl, 0.5)), p99: ms(pct(itl, 0.99)) },
    e2e_ms: { mean: ms(mean(ok.map((r) => r.e2e))), p50: ms(pct(ok.map((r) => r.e2e), 0.5)), p99: ms(pct(ok.map((r) => r.e2e), 0.99)) },
  };
}

const a = args();
if (!a.model) {
  const m = await (await fetch(a.url + "/v1/models", { headers: a["api-key"] ? { Authorization: "Bearer " + a["api-key"] } : {} })).json();
  a.model = m.data[0].id;
}
const all = [];
for (const c of a.levels) {
  const r = await level(a, c);
  for (const k of ["request_throughput", "output_token_throughput", "total_token_throughput"]) r[k] = Math.round(r[k] * 1000) / 1000;
  console.log(JSON.stringify(r));
  all.push(r);
}
if (a.out) writeFileSync(a.out, JSON.stringify(all, null, 1));
