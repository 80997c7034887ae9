// Makes the binary the package tarball ships: prebuilds/linux-x64-glibc/ringline.node (run by `prepack`).
// It is the local build (brought up to date first), stripped, after checking that it needs nothing
// but the C/C++ runtime: liburing is linked in statically (binding.gyp) and none of its symbols leak.
import { execFileSync } from "node:child_process"
import { copyFileSync, mkdirSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const fail = (msg) => {
  process.stderr.write(`[ringline] prebuild: ${msg}\n`)
  process.exit(1)
}

const report = process.report.getReport()
const target = `${process.platform}-${process.arch}-${report.header.glibcVersionRuntime ? "glibc" : "musl"}`
if (target !== "linux-x64-glibc") fail(`the shipped prebuilt is linux-x64-glibc; this machine is ${target}`)

execFileSync(process.execPath, [join(root, "scripts", "build.mjs")], { stdio: "inherit" })
const built = join(root, "build", "Release", "ringline.node")

// Only the C/C++ runtime may be needed at load time.
const allowed = /^(linux-vdso|libc|libm|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so/
const needed = execFileSync("ldd", [built], { encoding: "utf8" }).split("\n").map((l) => l.trim().split(/\s/)[0])
  .filter(Boolean).map((l) => l.replace(/^.*\//, ""))
const extra = needed.filter((lib) => !allowed.test(lib))
if (extra.length > 0) fail(`${built} needs ${extra.join(", ")} at run time (liburing must be linked statically)`)
const uringSymbols = execFileSync("nm", ["-D", built], { encoding: "utf8" }).split("\n").filter((l) => /\bio_uring_/.test(l))
if (uringSymbols.length > 0) fail(`${built} imports or exports liburing symbols:\n${uringSymbols.join("\n")}`)

const dir = join(root, "prebuilds", target)
const out = join(dir, "ringline.node")
mkdirSync(dir, { recursive: true })
copyFileSync(built, out)
execFileSync("strip", ["--strip-unneeded", out])
createRequire(import.meta.url)(out) // it loads

// The newest glibc symbol version it references is the oldest glibc it runs on.
const glibc = execFileSync("objdump", ["-T", out], { encoding: "utf8" }).match(/GLIBC_[0-9.]+/g) ?? []
const newest = glibc.map((v) => v.slice(6)).sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).pop()
process.stderr.write(`[ringline] prebuilt ${out} (needs ${needed.join(", ")}; glibc >= ${newest})\n`)
