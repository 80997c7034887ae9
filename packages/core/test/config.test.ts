import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Duration, Effect, Either, Layer } from "effect"
import { readFileSync } from "node:fs"
import { Ringline, RinglineConfig } from "../src/index.js"
import { explainEperm, unavailable } from "../src/internal/unavailable.js"
import { runWithoutIoUring } from "./withoutIoUring.js"

describe("configuration", () => {
  it("defaults follow ringline", () => {
    const c = Either.getOrThrow(RinglineConfig.make())
    expect(c.sqEntries).toBe(256)
    expect(c.recvBuffer).toEqual({ ringSize: 256, bufferSize: 65536 })
    expect(c.maxConnections).toBe(16000)
    expect(c.sendQueueHighWater).toBe(1024 * 1024)
  })

  const bad: Array<[RinglineConfig.RinglineConfigInput, string, string]> = [
    [{ sqEntries: 100 }, "sqEntries", "power of two"],
    [{ sqEntries: 65536 }, "sqEntries", "power of two"],
    [{ recvBuffer: { ringSize: 3 } }, "recvBuffer.ringSize", "power of two"],
    [{ recvBuffer: { bufferSize: 2000000 } }, "recvBuffer.bufferSize", "between 1 and 1048576"],
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
        Effect.provide(Ringline.layerConfig()),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
          ["RINGLINE_SQ_ENTRIES", "64"],
          ["RINGLINE_RECV_RING_SIZE", "32"],
          ["RINGLINE_SHUTDOWN_TIMEOUT", "2 seconds"]
        ])))
      )
      expect(mode).toEqual([64, 32, 2000])
      const err = yield* Effect.flip(Ringline.Ringline.pipe(
        Effect.provide(Ringline.layerConfig()),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["RINGLINE_RECV_BUFFER_SIZE", "0"]])))
      ))
      expect(err._tag === "RinglineConfigError" && err.field).toBe("recvBuffer.bufferSize")
    }))
})

describe("configuration: layerConfig(config) and durations", () => {
  it.live("layerConfig takes a Config, whole or a record of Configs per field, as Effect's layers do", () =>
    Effect.gen(function*() {
      const env = ConfigProvider.fromMap(new Map([["CLIENTS", "300"], ["DRAIN", "250 millis"], ["RINGLINE_SQ_ENTRIES", "64"]]))
      const read = (layer: Layer.Layer<Ringline.Ringline, unknown>) =>
        Ringline.Ringline.pipe(
          Effect.map((r) => [r.config.sqEntries, r.config.maxConnections, r.config.shutdownTimeoutMs]),
          Effect.provide(layer),
          Effect.withConfigProvider(env)
        )
      expect(yield* read(Ringline.layerConfig({
        maxConnections: Config.integer("CLIENTS"),
        shutdownTimeout: Config.duration("DRAIN")
      }))).toEqual([256, 300, 250])
      expect(yield* read(Ringline.layerConfig(RinglineConfig.config.pipe(Config.map((c) => ({ ...c, maxConnections: 7 }))))))
        .toEqual([64, 7, 5000])
      // A missing key is Effect's ConfigError, naming the key.
      const err = yield* Effect.flip(read(Ringline.layerConfig({ maxConnections: Config.integer("NOPE") })))
      expect(String(err)).toContain("NOPE")
    }))

  it("shutdownTimeout is a Duration input; the deprecated shutdownTimeoutMs still works, not both at once", () => {
    const ms = (input: RinglineConfig.RinglineConfigInput) => Either.map(RinglineConfig.make(input), (c) => c.shutdownTimeoutMs)
    expect(ms({ shutdownTimeout: "2 seconds" })).toEqual(Either.right(2000))
    expect(ms({ shutdownTimeout: Duration.millis(150) })).toEqual(Either.right(150))
    expect(ms({ shutdownTimeout: 80 })).toEqual(Either.right(80))
    expect(ms({ shutdownTimeoutMs: 300 })).toEqual(Either.right(300))
    expect(ms({})).toEqual(Either.right(5000))
    for (const bad of [{ shutdownTimeout: "soon" }, { shutdownTimeout: -1 }, { shutdownTimeout: Duration.infinity }, { shutdownTimeout: 1, shutdownTimeoutMs: 1 }]) {
      const e = Either.getLeft(RinglineConfig.make(bad as RinglineConfig.RinglineConfigInput))
      expect(e._tag === "Some" && e.value.field).toBe("shutdownTimeout")
    }
  })
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

  // The sysctl branches are checked on the explanation alone: flipping kernel.io_uring_disabled
  // would break every other ring on the machine while the test runs.
  it("EPERM is explained by the sysctl when it is set, by seccomp otherwise", () => {
    expect(explainEperm("2", "0")).toContain("kernel.io_uring_disabled=2")
    expect(explainEperm("2", "0")).toContain("sysctl -w kernel.io_uring_disabled=0")
    expect(explainEperm("1", "2")).toContain("kernel.io_uring_group")
    const filtered = explainEperm("0", "2")
    expect(filtered).toContain("seccomp filter (Seccomp: 2 in /proc/self/status)")
    expect(filtered).toContain("--security-opt seccomp=unconfined")
    expect(explainEperm("", "0")).toContain("most likely from a seccomp filter")
  })

  // What `docker run` with the default seccomp profile does to io_uring, in a child process of its
  // own (test/withoutIoUring.ts): the sysctl stays as it is, other rings keep working.
  const sysctl = (() => {
    try {
      return readFileSync("/proc/sys/kernel/io_uring_disabled", "utf8").trim()
    } catch {
      return ""
    }
  })()

  it.live("under a seccomp filter refusing io_uring, the Layer and the probe fail with RinglineUnavailable saying seccomp, EPERM and the fix", () =>
    Effect.gen(function*() {
      const child = yield* runWithoutIoUring(`
        import { Effect, Layer } from "effect"
        import { Ring, Ringline } from "@ringline/core"
        const failure = (exit) => exit._tag === "Failure" ? exit.cause.error : undefined
        const show = (e) => ({ tag: e?._tag, reason: e?.reason, errno: e?.errno, message: e?.message })
        const layer = failure(await Effect.runPromiseExit(Effect.scoped(Layer.build(Ringline.layer()))))
        const probe = failure(await Effect.runPromiseExit(Ring.probeOpcodes))
        console.log(JSON.stringify({ layer: show(layer), probe: show(probe) }))
      `)
      expect(child.status, child.stderr).toBe(0)
      for (const e of [child.result.layer, child.result.probe]) {
        expect(e.tag).toBe("RinglineUnavailable")
        expect(e.reason).toBe("Disabled")
        expect(e.errno).toBe(1)
        expect(e.message).toContain("io_uring_setup returned EPERM")
        if (sysctl === "1" || sysctl === "2") {
          // The sysctl, when set, is the one cause that names itself and is reported first.
          expect(e.message).toContain(`kernel.io_uring_disabled=${sysctl}`)
        } else {
          expect(e.message).toContain("seccomp filter (Seccomp: 2 in /proc/self/status)")
          expect(e.message).toContain("allow io_uring_setup, io_uring_enter and io_uring_register")
        }
      }
    }))

  it.live("the filter covers every thread (TSYNC) and a worker's ring, and refuses nothing but io_uring", () =>
    Effect.gen(function*() {
      const child = yield* runWithoutIoUring(`
        import { readdirSync, readFileSync } from "node:fs"
        import * as net from "node:net"
        import { once } from "node:events"
        import { Worker } from "node:worker_threads"
        // Threads that existed before the filter (libuv's pool, V8's platform workers).
        const modes = readdirSync("/proc/self/task").map((t) =>
          readFileSync("/proc/self/task/" + t + "/status", "utf8").match(/^Seccomp:\\s*(\\d)/m)[1])
        // A worker thread started afterwards (without the preload: it inherits the filter), setting up a ring.
        const worker = new Worker(\`
          const { parentPort } = require("node:worker_threads")
          try { new (require("@ringline/native").Ring)({ sqEntries: 2, cqEntries: 8, bufferCount: 1, bufferSize: 1,
            files: 0, sendPoolBytes: 1, argBytes: 1, sqpoll: false, sqpollIdleMs: 0 }, () => {}); parentPort.postMessage("set up") }
          catch (e) { parentPort.postMessage(e.syscall + " " + e.errno) }\`, { eval: true, execArgv: [] })
        const [workerSaid] = await once(worker, "message")
        await worker.terminate()
        // Ordinary sockets (libuv, epoll) still work: a loopback echo.
        const server = net.createServer((s) => s.pipe(s)).listen(0, "127.0.0.1")
        await once(server, "listening")
        const client = net.connect(server.address().port, "127.0.0.1")
        client.end("ping")
        let echoed = ""
        for await (const chunk of client) echoed += chunk
        server.close()
        console.log(JSON.stringify({ threads: modes.length, modes: [...new Set(modes)], workerSaid, echoed }))
      `)
      expect(child.status, child.stderr).toBe(0)
      expect(child.result.threads).toBeGreaterThan(1)
      expect(child.result.modes).toEqual(["2"])
      expect(child.result.workerSaid).toBe("io_uring_setup 1")
      expect(child.result.echoed).toBe("ping")
    }))
})
