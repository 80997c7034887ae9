import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import { accessSync, constants, readFileSync } from "node:fs"
import { Ringline, RinglineConfig } from "../src/index.js"
import { unavailable } from "../src/internal/service.js"

describe("configuration", () => {
  it("defaults follow ringline", () => {
    const c = Either.getOrThrow(RinglineConfig.make())
    expect(c.sqEntries).toBe(256)
    expect(c.recvBuffer).toEqual({ ringSize: 256, bufferSize: 16384 })
    expect(c.maxConnections).toBe(16000)
    expect(c.sendQueueHighWater).toBe(1024 * 1024)
  })

  const bad: Array<[RinglineConfig.RinglineConfigInput, string, string]> = [
    [{ sqEntries: 100 }, "sqEntries", "power of two"],
    [{ sqEntries: 65536 }, "sqEntries", "power of two"],
    [{ recvBuffer: { ringSize: 3 } }, "recvBuffer.ringSize", "power of two"],
    [{ recvBuffer: { bufferSize: 70000 } }, "recvBuffer.bufferSize", "between 1 and 65535"],
    [{ maxConnections: 0 }, "maxConnections", "between 1"],
    [{ backlog: 0 }, "backlog", "positive"],
    [{ submitBatch: -1 }, "submitBatch", "between 0 and 32768"],
    [{ sendPool: { slots: -1 } }, "sendPool.slots", "positive"],
    [{ sendQueueHighWater: 100, sendQueueLowWater: 200 }, "sendQueueLowWater", "must not exceed"]
  ]
  for (const [input, field, rule] of bad) {
    it(`rejects ${JSON.stringify(input)} naming ${field}`, () => {
      const err = Either.getLeft(RinglineConfig.make(input)).pipe((o) => (o._tag === "Some" ? o.value : undefined))
      expect(err?._tag).toBe("RinglineConfigError")
      expect(err?.field).toBe(field)
      expect(err?.message).toContain(field)
      expect(err?.message).toContain(rule)
    })
  }

  it.effect("the Layer fails with the config error, before touching the kernel", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(Effect.scoped(Layer.build(Ringline.layer({ sqEntries: 3 }))))
      expect(err._tag).toBe("RinglineConfigError")
    }))

  it.live("layerConfig reads the environment", () =>
    Effect.gen(function*() {
      const mode = yield* Ringline.Ringline.pipe(
        Effect.map((r) => [r.config.sqEntries, r.config.recvBuffer.ringSize, r.config.shutdownTimeoutMs]),
        Effect.provide(Ringline.layerConfig),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
          ["RINGLINE_SQ_ENTRIES", "64"],
          ["RINGLINE_RECV_RING_SIZE", "32"],
          ["RINGLINE_SHUTDOWN_TIMEOUT", "2 seconds"]
        ])))
      )
      expect(mode).toEqual([64, 32, 2000])
      const err = yield* Effect.flip(Ringline.Ringline.pipe(
        Effect.provide(Ringline.layerConfig),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RINGLINE_RECV_BUFFER_SIZE", "0"]])))
      ))
      expect(err._tag === "RinglineConfigError" && err.field).toBe("recvBuffer.bufferSize")
    }))
})

describe("io_uring availability", () => {
  it.live("the driver reports the strongest ring mode the kernel accepted", () =>
    Effect.gen(function*() {
      const r = yield* Effect.provide(Ringline.Ringline, Ringline.layer())
      expect(["defer-taskrun", "coop-taskrun", "plain"]).toContain(r.mode)
    }))

  it("errno from io_uring_setup becomes a message with the cause and the fix", () => {
    const cfg = Either.getOrThrow(RinglineConfig.make())
    const enosys = unavailable({ errno: 38, syscall: "io_uring_setup" }, cfg)
    expect(enosys.reason).toBe("KernelTooOld")
    expect(enosys.message).toContain("CONFIG_IO_URING")
    const enomem = unavailable({ errno: 12, syscall: "io_uring_setup" }, cfg)
    expect(enomem.reason).toBe("MemoryLimit")
    expect(enomem.message).toContain("ulimit -l")
    const emfile = unavailable({ errno: 24, syscall: "io_uring_register_files_sparse" }, cfg)
    expect(emfile.message).toContain("maxConnections=16000")
  })

  // A real refusal: kernel.io_uring_disabled=2 makes io_uring_setup fail with EPERM for every new
  // ring. Needs root and a writable sysctl; the child process sees it, then the value is restored.
  const sysctl = "/proc/sys/kernel/io_uring_disabled"
  let writable = false
  try {
    accessSync(sysctl, constants.W_OK)
    writable = process.getuid?.() === 0
  } catch {
    writable = false
  }
  if (!writable) console.log(`SKIP io_uring_disabled test: ${sysctl} is not writable here (needs root)`)
  it.skipIf(!writable)("with kernel.io_uring_disabled=2 the Layer fails with RinglineUnavailable naming the sysctl", () => {
    const before = readFileSync(sysctl, "utf8").trim()
    const script = `
      import { Effect, Layer } from "effect"
      import { Ringline } from "${new URL("../dist/index.js", import.meta.url).pathname}"
      const exit = await Effect.runPromiseExit(Effect.scoped(Layer.build(Ringline.layer())))
      const e = exit._tag === "Failure" ? exit.cause.error : undefined
      console.log(JSON.stringify({ tag: e?._tag, reason: e?.reason, message: e?.message }))
    `
    try {
      execFileSync("sh", ["-c", `echo 2 > ${sysctl}`])
      const out = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        encoding: "utf8",
        cwd: new URL("..", import.meta.url).pathname
      })
      const r = JSON.parse(out.stdout.trim().split("\n").pop() || `{"stderr":${JSON.stringify(out.stderr)}}`)
      expect(r.tag).toBe("RinglineUnavailable")
      expect(r.reason).toBe("Disabled")
      expect(r.message).toContain("kernel.io_uring_disabled=2")
      expect(r.message).toContain("sysctl -w kernel.io_uring_disabled=0")
    } finally {
      execFileSync("sh", ["-c", `echo ${before} > ${sysctl}`])
    }
  })
})
