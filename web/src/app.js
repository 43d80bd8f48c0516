// The web chat page of `qiusuo serve`: streams /v1/chat/completions (SSE), renders markdown with
// highlighted code and KaTeX math, shows reasoning_content in a collapsible block, and keeps
// conversations and parameters in localStorage. Everything is bundled by build.mjs; nothing is
// fetched from elsewhere at run time.
import { Marked } from "marked";
import DOMPurify from "dompurify";
import katex from "katex";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

for (const [name, lang] of Object.entries({ bash, c, cpp, css, diff, go, java, javascript, json, markdown, python, rust, sql, typescript, xml, yaml }))
  hljs.registerLanguage(name, lang);

// ---- markdown + math --------------------------------------------------------------------------

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    code({ text, lang }) {
      const language = (lang || "").split(/\s/)[0];
      let html;
      try {
        html = language && hljs.getLanguage(language) ? hljs.highlight(text, { language }).value : hljs.highlightAuto(text).value;
      } catch {
        html = escapeHtml(text);
      }
      return `<pre><code class="hljs${language ? " language-" + escapeHtml(language) : ""}">${html}</code></pre>\n`;
    },
  },
});

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
}

// Math ($$..$$, \[..\], \(..\), $..$) is taken out before markdown (which would mangle it) and
// put back rendered by KaTeX after sanitizing; code spans and blocks keep their dollars.
const MATH = /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)|\$(?=\S)((?:[^$\n\\]|\\.)+?)(?<=\S)\$(?!\d)/g;
const CODE = /(```[\s\S]*?(?:```|$)|`[^`\n]*`)/g;

export function renderMarkdown(src) {
  const math = [];
  const parts = src.split(CODE);
  for (let i = 0; i < parts.length; i += 2) {
    parts[i] = parts[i].replace(MATH, (m, d1, d2, i1, i2) => {
      const display = d1 !== undefined || d2 !== undefined;
      math.push({ tex: d1 ?? d2 ?? i1 ?? i2, display });
      return `@@MATH${math.length - 1}@@`;
    });
  }
  let html = DOMPurify.sanitize(marked.parse(parts.join("")));
  html = html.replace(/@@MATH(\d+)@@/g, (m, k) => {
    const { tex, display } = math[Number(k)];
    try {
      return katex.renderToString(tex, { displayMode: display, throwOnError: false, output: "htmlAndMathml" });
    } catch {
      return escapeHtml(tex);
    }
  });
  return html;
}

// ---- state (localStorage) ---------------------------------------------------------------------

const DEFAULTS = { model: "", system: "", temperature: 0.7, top_p: 1, max_tokens: 1024, presence_penalty: 0, frequency_penalty: 0, seed: "", api_key: "" };
const store = {
  load(key, fallback) {
    try {
      const v = JSON.parse(localStorage.getItem(key));
      return v ?? fallback;
    } catch {
      return fallback;
    }
  },
  save(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {
      /* storage full or disabled: the page still works */
    }
  },
};
let params = { ...DEFAULTS, ...store.load("qiusuo.params", {}) };
let conversations = store.load("qiusuo.conversations", []);
let currentId = store.load("qiusuo.current", null);
let busy = null; // { controller, message }

const $ = (id) => document.getElementById(id);
const saveConversations = () => {
  store.save("qiusuo.conversations", conversations);
  store.save("qiusuo.current", currentId);
};

function current() {
  let conv = conversations.find((c) => c.id === currentId);
  if (!conv) {
    conv = { id: String(Date.now()) + Math.random().toString(16).slice(2, 6), title: "New chat", messages: [] };
    conversations.unshift(conv);
    currentId = conv.id;
  }
  return conv;
}

// ---- rendering ----------------------------------------------------------------------------------

function renderSidebar() {
  const ul = $("conversations");
  ul.replaceChildren();
  for (const conv of conversations) {
    const li = document.createElement("li");
    li.className = conv.id === currentId ? "active" : "";
    const span = document.createElement("span");
    span.textContent = conv.title;
    const del = document.createElement("button");
    del.textContent = "×";
    del.title = "Delete";
    del.onclick = (e) => {
      e.stopPropagation();
      conversations = conversations.filter((c) => c.id !== conv.id);
      if (currentId === conv.id) currentId = conversations[0]?.id ?? null;
      saveConversations();
      renderAll();
    };
    li.append(span, del);
    li.onclick = () => {
      if (busy) return;
      currentId = conv.id;
      saveConversations();
      renderAll();
    };
    ul.append(li);
  }
}

function messageNode(m, streaming) {
  const div = document.createElement("div");
  div.className = "message " + m.role;
  const role = document.createElement("div");
  role.className = "role";
  role.textContent = m.role === "user" ? "You" : "Assistant";
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  if (m.role === "user") {
    bubble.textContent = m.content;
  } else {
    if (m.reasoning) {
      const det = document.createElement("details");
      det.className = "reasoning";
      det.open = m.reasoningOpen ?? true;
      det.ontoggle = () => (m.reasoningOpen = det.open);
      const sum = document.createElement("summary");
      sum.textContent = streaming && !m.content ? "Thinking…" : "Reasoning";
      const body = document.createElement("div");
      body.className = "content reasoning-content";
      body.innerHTML = renderMarkdown(m.reasoning);
      det.append(sum, body);
      bubble.append(det);
    }
    const content = document.createElement("div");
    content.className = "content answer" + (streaming ? " cursor" : "");
    content.innerHTML = renderMarkdown(m.content || "");
    bubble.append(content);
    if (m.error) {
      const e = document.createElement("div");
      e.className = "error";
      e.textContent = m.error;
      bubble.append(e);
    }
    if (m.meta) {
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = m.meta;
      bubble.append(meta);
    }
  }
  div.append(role, bubble);
  return div;
}

function renderMessages() {
  const box = $("messages");
  const conv = current();
  box.replaceChildren(...conv.messages.map((m) => messageNode(m, busy && busy.message === m)));
  box.scrollTop = box.scrollHeight;
}

function renderAll() {
  renderSidebar();
  renderMessages();
  $("send").hidden = !!busy;
  $("stop").hidden = !busy;
}

// Re-rendering the streamed message at most once per frame.
let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    const box = $("messages");
    const last = box.lastElementChild;
    const conv = current();
    const m = conv.messages[conv.messages.length - 1];
    const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const node = messageNode(m, !!busy);
    if (last) box.replaceChild(node, last);
    else box.append(node);
    if (stick) box.scrollTop = box.scrollHeight;
  });
}

// ---- parameters -----------------------------------------------------------------------------------

const FIELDS = ["system", "temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "seed", "api_key"];
function showParams() {
  for (const f of FIELDS) $("p-" + f).value = params[f] ?? "";
}
function readParams() {
  for (const f of FIELDS) params[f] = $("p-" + f).value;
  params.model = $("p-model").value;
  store.save("qiusuo.params", params);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if (params.api_key) h.Authorization = "Bearer " + params.api_key;
  return h;
}

async function loadModels() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    const sel = $("p-model");
    sel.replaceChildren();
    for (const m of j.data || []) {
      const o = document.createElement("option");
      o.value = o.textContent = m.id;
      sel.append(o);
    }
    if (params.model && [...sel.options].some((o) => o.value === params.model)) sel.value = params.model;
    params.model = sel.value;
    $("model-name").textContent = sel.value || "qiusuo";
  } catch (e) {
    $("status").textContent = "cannot list models: " + e;
  }
}

// ---- sending ----------------------------------------------------------------------------------------

function numberOrUndefined(v) {
  if (v === "" || v === null || v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

async function send(text) {
  const conv = current();
  conv.messages.push({ role: "user", content: text });
  if (conv.title === "New chat") conv.title = text.slice(0, 40) || "New chat";
  const reply = { role: "assistant", content: "", reasoning: "" };
  conv.messages.push(reply);
  const controller = new AbortController();
  busy = { controller, message: reply };
  saveConversations();
  renderAll();

  const history = [];
  if (params.system) history.push({ role: "system", content: params.system });
  for (const m of conv.messages.slice(0, -1)) if (!m.error || m.content) history.push({ role: m.role, content: m.content });
  const body = {
    model: params.model,
    messages: history,
    stream: true,
    stream_options: { include_usage: true },
    temperature: numberOrUndefined(params.temperature),
    top_p: numberOrUndefined(params.top_p),
    max_tokens: numberOrUndefined(params.max_tokens),
    presence_penalty: numberOrUndefined(params.presence_penalty),
    frequency_penalty: numberOrUndefined(params.frequency_penalty),
    seed: numberOrUndefined(params.seed),
  };
  const t0 = performance.now();
  let first = 0;
  let tokens = 0;
  let usage = null;
  let finish = "";
  try {
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try {
        msg = (await r.json()).error.message;
      } catch {}
      throw new Error(msg);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let at;
      while ((at = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, at);
        buf = buf.slice(at + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) usage = j.usage;
          const ch = j.choices && j.choices[0];
          if (!ch) continue;
          const d = ch.delta || {};
          if (d.reasoning_content) reply.reasoning += d.reasoning_content;
          if (d.content) reply.content += d.content;
          if (d.reasoning_content || d.content) {
            tokens++;
            if (!first) first = performance.now();
          }
          if (ch.finish_reason) finish = ch.finish_reason;
          scheduleRender();
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") finish = "stopped";
    else reply.error = String(e.message || e);
  }
  const secs = (performance.now() - t0) / 1000;
  const parts = [];
  if (finish) parts.push(finish);
  if (usage) {
    parts.push(`${usage.completion_tokens} tokens`);
    parts.push(`prompt ${usage.prompt_tokens} (${usage.prompt_cache_hit_tokens} cached)`);
  }
  if (first && tokens > 1) parts.push(`${((tokens - 1) / Math.max(1e-3, (performance.now() - first) / 1000)).toFixed(1)} tok/s`);
  parts.push(`${secs.toFixed(1)} s`);
  reply.meta = parts.join(" · ");
  busy = null;
  saveConversations();
  renderAll();
}

// ---- wiring -------------------------------------------------------------------------------------------

function init() {
  showParams();
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("input").value.trim();
    if (!text || busy) return;
    $("input").value = "";
    send(text);
  });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").onclick = () => busy && busy.controller.abort();
  $("new-chat").onclick = () => {
    if (busy) return;
    currentId = null;
    current();
    saveConversations();
    renderAll();
    $("input").focus();
  };
  $("toggle-params").onclick = () => {
    const p = $("params");
    p.hidden = !p.hidden;
    $("toggle-params").setAttribute("aria-expanded", String(!p.hidden));
  };
  for (const f of FIELDS) $("p-" + f).addEventListener("change", readParams);
  $("p-api_key").addEventListener("change", loadModels);
  $("p-model").addEventListener("change", () => {
    readParams();
    $("model-name").textContent = params.model;
  });
  $("reset-params").onclick = () => {
    params = { ...DEFAULTS, model: params.model };
    store.save("qiusuo.params", params);
    showParams();
  };
  fetch("/health")
    .then((r) => ($("status").textContent = r.ok ? "" : "the model is loading…"))
    .catch(() => ($("status").textContent = "server unreachable"));
  loadModels();
  renderAll();
}

if (typeof window !== "undefined") window.__qiusuo = { renderMarkdown };  // for the browser test
if (typeof document !== "undefined") init();
