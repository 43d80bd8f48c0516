// Starts `qiusuo serve` on a free loopback port for the Node.js tests and stops it with SIGTERM.
// Environment (set by run.sh / CTest): QIUSUO_BIN, QS_MODELS (directory of the tiny models),
// QS_FIXTURES, QS_SOURCE_DIR.
import { spawn, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { once } from "node:events";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (run the Node.js tests through tests/serve/node/run.sh)`);
  return v;
};

export function tinyModel(kind) {
  const dir = `${env("QS_MODELS")}/tiny-${kind}`;
  if (!existsSync(`${dir}/tokenizer_config.json`))
    execFileSync(`${env("QS_SOURCE_DIR")}/tests/serve/make_models.sh`, [env("QIUSUO_BIN"), env("QS_MODELS"), env("QS_FIXTURES")], { stdio: "inherit" });
  return dir;
}

export async function startServer(kind, args = []) {
  const child = spawn(env("QIUSUO_BIN"), ["serve", "--model", tinyModel(kind), "--port", "0", "--quiet", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr.on("data", (d) => (log += d.toString()));
  const deadline = Date.now() + 60000;
  let port = 0;
  while (!port) {
    const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    if (m) port = Number(m[1]);
    else if (child.exitCode !== null || Date.now() > deadline) throw new Error("qiusuo serve did not start:\n" + log);
    else await new Promise((r) => setTimeout(r, 20));
  }
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    try {
      const r = await fetch(url + "/health");
      if (r.ok) break;
    } catch {}
    if (child.exitCode !== null || Date.now() > deadline) throw new Error("qiusuo serve did not get ready:\n" + log);
    await new Promise((r) => setTimeout(r, 30));
  }
  return {
    url,
    port,
    log: () => log,
    async metric(name) {
      const text = await (await fetch(url + "/metrics", { headers: args.includes("--api-key") ? { Authorization: "Bearer " + args[args.indexOf("--api-key") + 1] } : {} })).text();
      const line = text.split("\n").find((l) => l.startsWith(name + " "));
      return line ? Number(line.split(" ")[1]) : NaN;
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      return code;
    },
  };
}
