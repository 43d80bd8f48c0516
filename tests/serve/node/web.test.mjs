// The web chat page of `qiusuo serve` in headless Chromium (Debian's chromium driven by
// playwright-core): markdown, code highlighting and KaTeX from the embedded bundle (no network),
// a message streamed into the page, the stop button, a collapsible reasoning block (R1), the
// conversation kept in localStorage. Screenshots go to $QS_ARTIFACTS (default: the work dir).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { chromium } from "playwright-core";
import { startServer } from "./server.mjs";

const CHROMIUM = process.env.QS_CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = process.env.QS_ARTIFACTS || ".";
// A missing browser fails the test (scripts/install-deps.sh installs Debian's chromium);
// QS_ALLOW_NO_BROWSER=1 skips it instead, for machines without one.
const skip = existsSync(CHROMIUM) || process.env.QS_ALLOW_NO_BROWSER !== "1" ? false : `no browser at ${CHROMIUM}`;

let v3, r1, browser;
before(async () => {
  if (skip) return;
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM} (scripts/install-deps.sh installs chromium; QS_ALLOW_NO_BROWSER=1 skips)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  [v3, r1] = await Promise.all([startServer("v3"), startServer("r1")]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});
after(async () => {
  await browser?.close();
  if (v3) assert.equal(await v3.stop(), 0);
  if (r1) assert.equal(await r1.stop(), 0);
});

async function openPage(srv) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const outside = [];
  page.on("request", (req) => {
    if (!req.url().startsWith(srv.url)) outside.push(req.url());
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(srv.url + "/");
  return { page, context, outside, errors };
}

async function setParam(page, id, value) {
  if (await page.locator("#params").isHidden()) await page.click("#toggle-params");
  await page.fill(id, String(value));
  await page.dispatchEvent(id, "change");
}

test("markdown, code and math render from the embedded bundle", { skip }, async () => {
  const { page, context, outside, errors } = await openPage(v3);
  const html = await page.evaluate(() =>
    window.__qiusuo.renderMarkdown("**bold** and $e^{i\\pi}+1=0$\n\n$$\\int_0^1 x\\,dx$$\n\n```python\nprint('hi')\n```\n\n`$not math$`"),
  );
  assert.match(html, /<strong>bold<\/strong>/);
  assert.match(html, /class="katex"/);
  assert.match(html, /katex-display/);
  assert.match(html, /class="hljs language-python"/);
  assert.match(html, /<code>\$not math\$<\/code>/);
  assert.doesNotMatch(await page.evaluate(() => window.__qiusuo.renderMarkdown("<img src=x onerror=alert(1)>")), /onerror/);
  assert.deepEqual(outside, [], "the page loads nothing from outside the server");
  assert.deepEqual(errors, []);
  await context.close();
});

test("a message streams in, stop ends it, the conversation survives a reload", { skip }, async () => {
  const { page, context, errors } = await openPage(v3);
  await setParam(page, "#p-max_tokens", 3000);
  await page.fill("#input", "Hello, who are you?");
  await page.press("#input", "Enter");
  await page.locator("#stop").waitFor({ state: "visible" });
  const answer = page.locator(".message.assistant .answer").last();
  await page.waitForFunction(() => (document.querySelector(".message.assistant:last-child .answer")?.textContent ?? "").length > 20);
  const early = (await answer.textContent()).length;
  await page.waitForFunction((n) => (document.querySelector(".message.assistant:last-child .answer")?.textContent ?? "").length > n + 20, early);
  await page.click("#stop");
  await page.locator("#send").waitFor({ state: "visible" });
  const stopped = (await answer.textContent()).length;
  assert.ok(stopped > early, "text arrived while streaming");
  await page.waitForTimeout(600);
  assert.equal((await answer.textContent()).length, stopped, "no text after stop");
  assert.match(await page.locator(".message.assistant .meta").last().textContent(), /stopped/);
  // The server cancelled the request: nothing running, no blocks held.
  for (let i = 0; i < 100 && (await v3.metric("qiusuo_batch_size")) !== 0; i++) await page.waitForTimeout(50);
  assert.equal(await v3.metric("qiusuo_batch_size"), 0);
  assert.equal(await v3.metric("qiusuo_kv_blocks_used"), 0);
  await page.reload();
  await page.locator(".message.user").first().waitFor();
  assert.equal(await page.locator(".message.user").first().textContent(), "YouHello, who are you?");
  assert.equal(await page.locator("#conversations li").count(), 1);
  assert.deepEqual(errors, []);
  await context.close();
});

test("reasoning streams into a collapsible block (R1)", { skip }, async () => {
  const { page, context, errors } = await openPage(r1);
  // A conversation with markdown, code and math, kept in the browser, for the screenshot.
  await page.evaluate(() => {
    const demo = {
      id: "demo",
      title: "Math and code",
      messages: [
        { role: "user", content: "Show Euler's identity and a Python snippet." },
        {
          role: "assistant",
          reasoning: "The identity is $e^{i\\pi} + 1 = 0$; a short snippet shows it numerically.",
          content: "Euler's identity:\n\n$$e^{i\\pi} + 1 = 0$$\n\n```python\nimport cmath\nprint(cmath.exp(1j * cmath.pi) + 1)\n```\n\n| term | value |\n|---|---|\n| $e^{i\\pi}$ | $-1$ |",
          meta: "stop · demo",
        },
      ],
    };
    localStorage.setItem("qiusuo.conversations", JSON.stringify([demo]));
    localStorage.setItem("qiusuo.current", JSON.stringify("demo"));
  });
  await page.reload();
  await page.locator(".katex-display").first().waitFor();
  await page.screenshot({ path: `${ARTIFACTS}/web-chat-rendering.png` });
  await page.click("#new-chat");
  await setParam(page, "#p-max_tokens", 60);
  await page.fill("#input", "Why is the sky blue?");
  await page.press("#input", "Enter");
  const block = page.locator(".message.assistant details.reasoning").last();
  await block.waitFor({ state: "visible" });
  await page.waitForFunction(() => (document.querySelector(".message.assistant:last-child .reasoning-content")?.textContent ?? "").length > 10);
  await page.locator("#send").waitFor({ state: "visible", timeout: 60000 });
  assert.ok((await block.locator(".reasoning-content").textContent()).length > 10);
  assert.equal(await block.evaluate((d) => d.open), true);
  await page.screenshot({ path: `${ARTIFACTS}/web-chat-reasoning.png` });
  await block.locator("summary").click();
  assert.equal(await block.evaluate((d) => d.open), false, "the reasoning block collapses");
  await block.locator("summary").click();
  assert.equal(await block.evaluate((d) => d.open), true);
  assert.deepEqual(errors, []);
  await context.close();
});
