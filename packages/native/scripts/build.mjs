// Builds build/Release/ringline.node with node-gyp, but only when something it is made from changed:
// `pnpm install` runs this every time, and a full rebuild costs ~10 s for nothing.
//
//   node scripts/build.mjs            # build if stale (configure again only if binding.gyp, Node or the libraries changed)
//   node scripts/build.mjs --force    # configure and build from scratch
//
// The stamp (build/ringline.stamp) records two hashes: what `node-gyp configure` depends on (binding.gyp,
// Node's version and ABI, whose headers are compiled against, node-addon-api, liburing.a) and the sources.
// A changed source only needs `node-gyp build` (make recompiles what changed); anything else reconfigures.
import { execFileSync, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const require = createRequire(join(root, "package.json"))
const stampFile = join(root, "build", "ringline.stamp")
const binary = join(root, "build", "Release", "ringline.node")
const force = process.argv.includes("--force")
const say = (msg) => process.stderr.write(`[ringline] ${msg}\n`)

const hash = (parts) => {
  const h = createHash("sha256")
  for (const part of parts) h.update(part).update("\0")
  return h.digest("hex").slice(0, 16)
}

/** The file node-gyp will link, as the compiler would find it ("" when absent: the build then fails loudly). */
const liburingArchive = () => {
  try {
    const file = execFileSync("gcc", ["-print-file-name=liburing.a"], { encoding: "utf8" }).trim()
    const st = statSync(file)
    return `${file} ${st.size} ${st.mtimeMs}`
  } catch {
    return ""
  }
}

const configureKey = hash([
  readFileSync(join(root, "binding.gyp")),
  `${process.platform}-${process.arch} node ${process.version} abi ${process.versions.modules} napi ${process.versions.napi}`,
  `node-addon-api ${require("node-addon-api/package.json").version}`,
  liburingArchive()
])
const srcDir = join(root, "src")
const sourcesKey = hash(
  readdirSync(srcDir).sort().flatMap((f) => [f, readFileSync(join(srcDir, f))])
)

let stamp = {}
try {
  stamp = JSON.parse(readFileSync(stampFile, "utf8"))
} catch {
  // No stamp: never built by this script.
}
const configured = !force && existsSync(join(root, "build", "Makefile")) && stamp.configure === configureKey
if (configured && stamp.sources === sourcesKey && existsSync(binary)) {
  say("native addon up to date (build/Release/ringline.node)")
  process.exit(0)
}

// Against the running node's own headers (next to its executable): no download.
const nodedir = resolve(process.execPath, "..", "..")
const nodeGyp = require.resolve("node-gyp/bin/node-gyp.js")
const command = configured ? "build" : "rebuild"
say(`building the native addon (node-gyp ${command}${configured ? ": sources changed" : ""})`)
const result = spawnSync(process.execPath, [nodeGyp, command, "--silent", `--nodedir=${nodedir}`], {
  cwd: root,
  stdio: "inherit"
})
if (result.status !== 0) {
  say(`node-gyp ${command} failed (exit ${result.status ?? result.signal}); needs g++, make, python3, liburing-dev and Node's headers in ${nodedir}/include/node`)
  process.exit(1)
}
writeFileSync(stampFile, JSON.stringify({ configure: configureKey, sources: sourcesKey }) + "\n")
