// Builds web/dist from web/src with esbuild: one JS bundle (marked, DOMPurify, KaTeX,
// highlight.js core + common languages), one CSS bundle (page, KaTeX, highlight theme) with
// KaTeX's woff2 fonts, and index.html. The result is embedded into `qiusuo` by CMake
// (cmake/embed_files.cmake); nothing is loaded from a CDN.
import { build } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync, rmSync, copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "assets"), { recursive: true });

// KaTeX's stylesheet lists woff2, woff and ttf for each font: keep woff2 (every browser that
// runs this page reads it).
const katexDir = join(here, "node_modules", "katex", "dist");
let katexCss = readFileSync(join(katexDir, "katex.css"), "utf8");
katexCss = katexCss.replace(/,\s*url\([^)]*\.(?:woff|ttf)\) format\("(?:woff|truetype)"\)/g, "");
katexCss = katexCss.replace(/url\(fonts\//g, `url(${join(katexDir, "fonts")}/`);
writeFileSync(join(here, "src", "katex.css"), katexCss);

const common = { bundle: true, minify: true, logLevel: "warning", legalComments: "none", target: ["es2020"] };
await build({ ...common, entryPoints: [join(here, "src", "app.js")], outfile: join(dist, "assets", "app.js"), format: "iife" });
await build({
  ...common,
  entryPoints: [join(here, "src", "style.css")],
  outfile: join(dist, "assets", "app.css"),
  loader: { ".woff2": "file" },
  assetNames: "fonts/[name]",
});
rmSync(join(here, "src", "katex.css"));
copyFileSync(join(here, "src", "index.html"), join(dist, "index.html"));
console.log("web/dist built");
