/**
 * The packed tarballs, as a user gets them: `pnpm run pack`, then an app in a temporary folder outside
 * the repository installs them with npm and with pnpm (default settings: no install script approved)
 * and runs a TCP echo round trip and a file read through RinglineFileSystem on the shipped prebuilt
 * binary. Then the binary is taken away or broken, and the app's failure must explain itself.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const repo = resolve(import.meta.dirname, "..")
const packDir = join(repo, "dist-pack")
const apps: Array<string> = []

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end, killed after `timeoutMs` (then the result says so: no hang). */
const run = (cmd: string, args: Array<string>, cwd: string, timeoutMs: number): Promise<Run> =>
  new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      stderr += `\n[killed: ${cmd} ${args.join(" ")} took longer than ${timeoutMs} ms]`
    }, timeoutMs)
    child.on("error", fail)
    child.on("close", (code) => {
      clearTimeout(timer)
      done({ code, stdout, stderr })
    })
  })

const ok = async (cmd: string, args: Array<string>, cwd: string, timeoutMs: number): Promise<Run> => {
  const r = await run(cmd, args, cwd, timeoutMs)
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) exited with ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`)
  }
  return r
}

const lines = (r: Run, re: RegExp): Array<string> => (r.stdout + r.stderr).split("\n").filter((l) => re.test(l))

const tarball = (name: string): string => {
  const file = readdirSync(packDir).find((f) => f.startsWith(`ringline-${name}-`) && f.endsWith(".tgz"))
  if (file === undefined) throw new Error(`no ${name} tarball in ${packDir}`)
  return join(packDir, file)
}

/** The ranges the workspace itself uses, so the app gets the Effect the packages were built against. */
const workspaceRange = (dep: string): string => JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).devDependencies[dep]

// The user's program: a TCP echo round trip on the ring, then a file read through RinglineFileSystem.
const program = `
import { FileSystem } from "@effect/platform"
import { Ringline, Tcp } from "@ringline/core"
import { RinglineFileSystem } from "@ringline/storage"
import { Effect, Layer, Stream } from "effect"

const program = Effect.gen(function*() {
  const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
  yield* Effect.forkScoped(listener.serve((conn) => Stream.run(conn.stream, conn.sink)))
  const conn = yield* Tcp.connect(listener.address, { timeout: "5 seconds" })
  yield* conn.send(new TextEncoder().encode("hello, io_uring\\n"))
  const [line] = yield* conn.stream.pipe(Stream.decodeText(), Stream.splitLines, Stream.take(1), Stream.runCollect)
  console.log("tcp: " + line)
  const fs = yield* FileSystem.FileSystem
  console.log("file: " + (yield* fs.readFileString(process.argv[2])).trim())
  const stats = yield* Ringline.stats
  console.log("ring completions: " + (stats.cqes > 0))
})
Ringline.runMain(program.pipe(
  Effect.scoped,
  Effect.provide(RinglineFileSystem.layer.pipe(Layer.provideMerge(Ringline.layer())))
))
`

/** Makes an app folder outside the repository with the program, a data file, and these dependencies. */
const makeApp = (manager: string, extra: Record<string, unknown> = {}): string => {
  const dir = mkdtempSync(join(tmpdir(), `ringline-app-${manager}-`))
  apps.push(dir)
  const deps = {
    "@ringline/core": `file:${tarball("core")}`,
    "@ringline/native": `file:${tarball("native")}`,
    "@ringline/storage": `file:${tarball("storage")}`,
    "effect": workspaceRange("effect"),
    "@effect/platform": workspaceRange("@effect/platform")
  }
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "app", private: true, type: "module", dependencies: deps, ...extra }, null, 2))
  writeFileSync(join(dir, "main.mjs"), program)
  writeFileSync(join(dir, "data.txt"), "read on the ring\n")
  return dir
}

const expectRuns = async (app: string) => {
  const r = await ok(process.execPath, ["main.mjs", join(app, "data.txt")], app, 60_000)
  expect(r.stdout.split("\n")).toEqual(["tcp: hello, io_uring", "file: read on the ring", "ring completions: true", ""])
  // Installed from the tarball, the package has no local build: the shipped prebuilt ran.
  expect(existsSync(join(app, "node_modules/@ringline/native/build"))).toBe(false)
  expect(existsSync(join(app, "node_modules/@ringline/native/prebuilds/linux-x64-glibc/ringline.node"))).toBe(true)
}

let npmApp = ""

beforeAll(async () => {
  await ok(process.execPath, [join(repo, "scripts/pack.mjs")], repo, 300_000)
})

afterAll(() => {
  for (const dir of apps) rmSync(dir, { recursive: true, force: true })
})

describe("the packed tarballs in an app outside the repository", () => {
  it("install with npm (no install scripts run or asked for) and run a TCP echo and a file read", async () => {
    npmApp = makeApp("npm")
    const install = await ok("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], npmApp, 300_000)
    // npm lists the packages whose install scripts it did not run: none of ours has one.
    expect(lines(install, /install-scripts/).join("\n")).not.toMatch(/@ringline/)
    await expectRuns(npmApp)
  })

  it("install with pnpm and run a TCP echo and a file read", async () => {
    // pnpm resolves each dependency's own dependencies by version: point @ringline/* at the tarballs
    // (they are not published), as a user of the tarballs must too.
    const app = makeApp("pnpm")
    const pkg = JSON.parse(readFileSync(join(app, "package.json"), "utf8"))
    pkg.pnpm = { overrides: Object.fromEntries(["core", "native", "storage"].map((n) => [`@ringline/${n}`, `file:${tarball(n)}`])) }
    writeFileSync(join(app, "package.json"), JSON.stringify(pkg, null, 2))
    // The pnpm running the tests (`pnpm test`), else PATH's.
    const cli = /pnpm/.test(process.env.npm_execpath ?? "") ? process.env.npm_execpath! : undefined
    const install = await ok(cli ? process.execPath : "pnpm", [...(cli ? [cli] : []), "install", "--prefer-offline"], app, 300_000)
    // pnpm 10 lists the dependencies whose build scripts it ignored: none of ours has one.
    expect(install.stdout).toMatch(/\+ @ringline\/native 0\.1\.0/)
    expect(lines(install, /Ignored build scripts/).join("\n")).not.toMatch(/@ringline/)
    await expectRuns(app)
  })

  it("without a loadable binary, runMain reports RinglineUnavailable (NativeAddon) with the platform and the fix", async () => {
    expect(npmApp, "the npm app of the first test").not.toBe("")
    const binary = join(npmApp, "node_modules/@ringline/native/prebuilds/linux-x64-glibc/ringline.node")
    const good = readFileSync(binary)
    try {
      // Missing, as on a platform no prebuilt exists for.
      rmSync(binary)
      const missing = await run(process.execPath, ["main.mjs", join(npmApp, "data.txt")], npmApp, 60_000)
      expect(missing.code, missing.stderr).toBe(1)
      expect(missing.stdout).toBe("")
      expect(missing.stderr).toContain("ringline: the program failed")
      expect(missing.stderr).toContain("RinglineUnavailable: io_uring is unavailable (NativeAddon): @ringline/native: no loadable io_uring addon for linux-x64 (glibc)")
      expect(missing.stderr).toContain("build/Release/ringline.node: no local build")
      expect(missing.stderr).toContain("prebuilds/linux-x64-glibc/ringline.node: missing")
      expect(missing.stderr).toContain("apt-get install g++ make python3 liburing-dev")
      // Present but not loadable (a truncated file).
      writeFileSync(binary, good.subarray(0, 64))
      const broken = await run(process.execPath, ["main.mjs", join(npmApp, "data.txt")], npmApp, 60_000)
      expect(broken.code, broken.stderr).toBe(1)
      expect(broken.stderr).toContain("RinglineUnavailable: io_uring is unavailable (NativeAddon)")
      expect(broken.stderr).toMatch(/prebuilds\/linux-x64-glibc\/ringline\.node: cannot be loaded: \S/)
    } finally {
      writeFileSync(binary, good)
    }
    await expectRuns(npmApp)
  })
})
