// Turns wasm-bindgen's `--target module` output into the Workers bundle, as worker-build 0.8.7
// does after its wasm-bindgen step (its src/main.rs: generate_handlers, add_export_wrappers,
// bundle, fix_wasm_import, remove_unused_files), so the build needs no worker-build binary.
//   node tools/workers/bundle.mjs STAGE_DIR ESBUILD_BIN
// STAGE_DIR holds index.js and index_bg.wasm from wasm-bindgen; it ends up holding the bundled
// index.js (the shim, wasm-bindgen's glue and its snippets, minified) beside index_bg.wasm.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The `worker` crate version the shim belongs to (tests/bundle.rs compares it with Cargo.lock).
export const WORKER_VERSION = "0.8.7";

// wasm-bindgen exports that the shim calls itself rather than exposing as handlers.
const SYSTEM_FNS = new Set(["__wbg_reset_state", "__worker_init_state"]);
// Entry points the runtime calls with (arg, env, ctx).
const EVENT_HANDLERS = new Set(["fetch", "queue", "scheduled", "email", "connect"]);

/** Each `export` declaration in the module text, from the keyword on. */
function* exportDecls(content) {
  for (let i = content.indexOf("export "); i !== -1; i = content.indexOf("export ", i + 1)) {
    if (i === 0 || /[\s;}]/.test(content[i - 1])) yield content.slice(i);
  }
}

/** The exported functions and classes of wasm-bindgen's index.js. */
export function exportsOf(content) {
  const functions = [];
  const classes = [];
  for (const decl of exportDecls(content)) {
    let m;
    if ((m = /^export (?:async )?function\s*([^(\s]+)\s*\(/.exec(decl))) {
      if (!SYSTEM_FNS.has(m[1])) functions.push(m[1]);
    } else if ((m = /^export \{[^}]*? as ([^}\s]+)\s*\}/.exec(decl))) {
      if (!SYSTEM_FNS.has(m[1])) functions.push(m[1]);
    } else if ((m = /^export class ([^{\s]+)\s*\{/.exec(decl))) {
      classes.push(m[1]);
    }
  }
  return { functions, classes };
}

/** The shim's source for these exports. */
export function shimSource(template, { functions, classes }) {
  const handlers = functions
    .map((name) =>
      EVENT_HANDLERS.has(name)
        ? `Entrypoint.prototype.${name} = function ${name} (arg) {\n` +
          `  return exports.${name}.call(this, arg, this.env, this.ctx);\n}\n`
        : `Entrypoint.prototype.${name} = exports.${name};\n`,
    )
    .join("");
  const wrappers = classes
    .map((name) => `export const ${name} = new Proxy(exports.${name}, classProxyHooks);\n`)
    .join("");
  if (template.split("$HANDLERS").length !== 2) throw new Error("shim.js must hold $HANDLERS once");
  return template.replace("$HANDLERS", () => handlers) + wrappers;
}

function main([stage, esbuild]) {
  if (!stage || !esbuild) {
    console.error("usage: node tools/workers/bundle.mjs STAGE_DIR ESBUILD_BIN");
    process.exit(2);
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const index = join(stage, "index.js");
  const found = exportsOf(readFileSync(index, "utf8"));
  if (!found.functions.includes("fetch")) {
    throw new Error(`${index} exports no fetch handler: is this wasm-bindgen's output?`);
  }
  writeFileSync(join(stage, "shim.js"), shimSource(readFileSync(join(here, "shim.js"), "utf8"), found));
  execFileSync(
    esbuild,
    [
      "--external:./index_bg.wasm",
      "--external:cloudflare:*",
      "--format=esm",
      "--bundle",
      "./shim.js",
      "--outfile=index.js",
      "--allow-overwrite",
      "--minify",
      "--log-level=warning",
    ],
    { cwd: stage, stdio: "inherit" },
  );
  writeFileSync(index, readFileSync(index, "utf8").replaceAll("import source ", "import "));
  rmSync(join(stage, "shim.js"));
  rmSync(join(stage, "snippets"), { recursive: true, force: true });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
