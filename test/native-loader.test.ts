/**
 * @ringline/native's loader on real files in a temporary copy of the package: the local build first,
 * then the shipped prebuilt, else NativeAddonError saying what was tried and how to fix it.
 */
import { spawnSync } from "node:child_process"
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterEach, describe, expect, it } from "vitest"

const native = resolve(import.meta.dirname, "../packages/native")
const built = join(native, "build/Release/ringline.node")
let dir = ""

/** A copy of the package without any binary; `binaries` puts real or broken ones in place. */
const pkg = (binaries: { local?: "good" | "broken"; prebuilt?: "good" | "broken" }): string => {
  dir = mkdtempSync(join(tmpdir(), "ringline-native-"))
  cpSync(join(native, "lib"), join(dir, "lib"), { recursive: true })
  copyFileSync(join(native, "package.json"), join(dir, "package.json"))
  const place = (rel: string, kind: "good" | "broken" | undefined) => {
    if (kind === undefined) return
    mkdirSync(join(dir, rel, ".."), { recursive: true })
    if (kind === "good") copyFileSync(built, join(dir, rel))
    else writeFileSync(join(dir, rel), "not an ELF file\n")
  }
  place("build/Release/ringline.node", binaries.local)
  place("prebuilds/linux-x64-glibc/ringline.node", binaries.prebuilt)
  return dir
}

/** Requires the package in a fresh node and reports what loaded or what was thrown. */
const load = (at: string) => {
  const script = `try { const a = require(${JSON.stringify(at)}); const from = Object.keys(require.cache).filter((f) => f.endsWith(".node")).map((f) => f.slice(${JSON.stringify(at.length + 1)}))
      console.log(JSON.stringify({ loaded: typeof a.Ring, from })) }
    catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, platform: e.platform, arch: e.arch, libc: e.libc, tried: e.tried, message: e.message })) }`
  const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 30_000 })
  expect(r.status, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

afterEach(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true })
})

describe("@ringline/native loader", () => {
  it("loads the shipped prebuilt when there is no local build", () => {
    expect(load(pkg({ prebuilt: "good" }))).toEqual({ loaded: "function", from: ["prebuilds/linux-x64-glibc/ringline.node"] })
  })

  it("prefers a local build, and falls back to the prebuilt when the local build does not load", () => {
    expect(load(pkg({ local: "good", prebuilt: "good" }))).toEqual({ loaded: "function", from: ["build/Release/ringline.node"] })
    rmSync(dir, { recursive: true })
    expect(load(pkg({ local: "broken", prebuilt: "good" }))).toEqual({ loaded: "function", from: ["prebuilds/linux-x64-glibc/ringline.node"] })
  })

  it("with neither, throws NativeAddonError naming the platform, what was tried and the fix", () => {
    const e = load(pkg({ local: "broken" }))
    expect(e).toMatchObject({ name: "NativeAddonError", code: "ERR_RINGLINE_NATIVE_ADDON", platform: "linux", arch: process.arch, libc: "glibc" })
    expect(e.tried).toEqual([
      { path: join(dir, "build/Release/ringline.node"), reason: expect.stringMatching(/^cannot be loaded: \S/) },
      { path: join(dir, "prebuilds/linux-x64-glibc/ringline.node"), reason: "missing (the package was packed without it)" }
    ])
    expect(e.message).toContain(`no loadable io_uring addon for linux-${process.arch} (glibc) under Node ${process.version}`)
    expect(e.message).toContain("apt-get install g++ make python3 liburing-dev")
  })
})
