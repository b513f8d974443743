// Builds the portal into dist/: index.html and assets/ whose every name carries a content
// hash (the service lets browsers keep them for a year). Run by scripts/setup.sh.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import * as esbuild from "esbuild";

const dist = "dist";
const assets = `${dist}/assets`;
rmSync(dist, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

function hashed(file, ext) {
  const digest = createHash("sha256").update(readFileSync(file)).digest("hex").slice(0, 10);
  const name = `${basename(file).replace(/\.[^.]+$/, "")}-${digest}${ext}`;
  copyFileSync(file, `${assets}/${name}`);
  return name;
}

// MapLibre's worker runs as a module worker from its own file.
const worker = hashed("node_modules/maplibre-gl/dist/maplibre-gl-worker.mjs", ".js");

const result = await esbuild.build({
  entryPoints: ["src/main.js", "src/style.css"],
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: false,
  target: ["es2022"],
  outdir: assets,
  entryNames: "[name]-[hash]",
  define: { __WORKER_FILE__: JSON.stringify(worker) },
  metafile: true,
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const script = outputs.find((n) => n.startsWith("main-") && n.endsWith(".js"));
const style = outputs.find((n) => n.startsWith("style-") && n.endsWith(".css"));
const html = readFileSync("src/index.html", "utf8")
  .replace("%SCRIPT%", `/portal/assets/${script}`)
  .replace("%STYLE%", `/portal/assets/${style}`);
writeFileSync(`${dist}/index.html`, html);
console.log(`portal built: ${[worker, ...outputs].join(", ")}`);
