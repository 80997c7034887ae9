"use strict"
// Finds and loads the addon, in this order:
//   1. build/Release/ringline.node — a local build from source (what this repo's set-up makes);
//   2. prebuilds/<platform>-<arch>-<libc>/ringline.node — the binary shipped in the package tarball
//      (Node-API, so one binary serves every Node >= 20; liburing is linked into it statically).
// When neither loads, the error says what was tried, why each failed, and how to fix it: this is
// the message users see (as RinglineUnavailable, reason NativeAddon, from @ringline/core).
const path = require("node:path")
const fs = require("node:fs")

const root = path.join(__dirname, "..")
/** The prebuilt binaries this package ships (`pnpm run pack` builds them). */
const SHIPPED = ["linux-x64-glibc"]

/** "glibc", "musl", or "" off Linux. Node's report names the glibc it runs on; musl has none. */
const libcOf = () => {
  if (process.platform !== "linux") return ""
  const report = process.report
  if (report === undefined || typeof report.getReport !== "function") return "glibc"
  const excludeNetwork = report.excludeNetwork
  report.excludeNetwork = true // skip the socket listing: only the header is needed
  try {
    return report.getReport().header.glibcVersionRuntime ? "glibc" : "musl"
  } finally {
    report.excludeNetwork = excludeNetwork
  }
}

class NativeAddonError extends Error {
  constructor(target, tried) {
    const lines = [
      `@ringline/native: no loadable io_uring addon for ${target.platform}-${target.arch}` +
        (target.libc ? ` (${target.libc})` : "") + ` under Node ${process.version}.`,
      "Tried:",
      ...tried.map((t) => `  ${t.path}: ${t.reason}`)
    ]
    if (target.platform !== "linux") {
      lines.push("ringline needs Linux 6.8+ (io_uring); it cannot run on " + target.platform + ".")
    } else {
      lines.push(
        `Prebuilt binaries ship for ${SHIPPED.join(", ")} (ringline needs Linux 6.8+ with io_uring allowed).`,
        "To build from source instead: in a checkout of the ringline repository run `bash scripts/dev.sh setup`",
        "(needs Node >= 20 with its headers, g++, make, python3 and liburing-dev — on Debian/Ubuntu",
        "`apt-get install g++ make python3 liburing-dev`), then `pnpm run pack` and install the tarballs",
        "from dist-pack/, or `pnpm --filter @ringline/native run build` to rebuild the local build."
      )
    }
    super(lines.join("\n"))
    this.name = "NativeAddonError"
    this.code = "ERR_RINGLINE_NATIVE_ADDON"
    this.platform = target.platform
    this.arch = target.arch
    this.libc = target.libc
    this.tried = tried
  }
}

const load = () => {
  const target = { platform: process.platform, arch: process.arch, libc: "" }
  const tried = []
  const attempt = (file, missing) => {
    if (!fs.existsSync(file)) {
      tried.push({ path: file, reason: missing })
      return undefined
    }
    try {
      return require(file)
    } catch (cause) {
      // dlopen's message starts with the path again.
      tried.push({ path: file, reason: `cannot be loaded: ${cause.message.split("\n")[0].replace(`${file}: `, "")}` })
      return undefined
    }
  }
  const local = attempt(path.join(root, "build", "Release", "ringline.node"), "no local build")
  if (local !== undefined) return local
  target.libc = libcOf()
  const dir = [target.platform, target.arch, target.libc].filter(Boolean).join("-")
  const prebuilt = attempt(
    path.join(root, "prebuilds", dir, "ringline.node"),
    SHIPPED.includes(dir) ? "missing (the package was packed without it)" : `no prebuilt binary for ${dir}`
  )
  if (prebuilt !== undefined) return prebuilt
  throw new NativeAddonError(target, tried)
}

module.exports = load()
