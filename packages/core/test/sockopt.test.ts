/**
 * Typed socket options on Connection (getOption / setOption / setNoDelay / setKeepAlive): each
 * value set is read back from the kernel, bad values fail before the kernel with EINVAL naming
 * the option, the kernel's own refusals keep their errno.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { Tcp, Unix } from "../src/index.js"
import type { Connection } from "../src/index.js"
import { portOf, withRing } from "./helpers.js"
import { tmpdir } from "node:os"
import { join } from "node:path"

describe("Connection socket options", () => {
  it.live("each option set is what the kernel reports back, on both ends of a TCP connection", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const client = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
      const server = yield* l.accept
      for (const c of [client, server]) {
        expect(yield* c.getOption("noDelay")).toBe(true)
        yield* c.setNoDelay(false)
        expect(yield* c.getOption("noDelay")).toBe(false)
        expect(yield* c.getOption("keepAlive")).toBe(false)
        yield* c.setKeepAlive(true, "42 seconds")
        expect(yield* c.getOption("keepAlive")).toBe(true)
        expect(Duration.toSeconds(yield* c.getOption("keepAliveIdle"))).toBe(42)
        yield* c.setOption("keepAliveIdle", Duration.minutes(2))
        expect(Duration.toSeconds(yield* c.getOption("keepAliveIdle"))).toBe(120)
        // Linux doubles SO_SNDBUF/SO_RCVBUF (bookkeeping overhead) and reports the doubled value.
        yield* c.setOption("sendBufferSize", 65536)
        expect(yield* c.getOption("sendBufferSize")).toBe(131072)
        yield* c.setOption("receiveBufferSize", 32768)
        expect(yield* c.getOption("receiveBufferSize")).toBe(65536)
      }
    })))

  it.live("bad values fail with EINVAL naming the option; the kernel's refusal keeps its errno", () =>
    withRing(Effect.gen(function*() {
      const l = yield* Tcp.listen({ port: 0 })
      const c = yield* Tcp.connect({ host: "127.0.0.1", port: portOf(l) })
      const bad: Array<[Effect.Effect<void, unknown>, string]> = [
        [c.setOption("sendBufferSize", 0), "sendBufferSize"],
        [c.setOption("receiveBufferSize", 1.5), "receiveBufferSize"],
        [c.setOption("keepAliveIdle", "0 seconds"), "keepAliveIdle"],
        [c.setOption("keepAliveIdle", Duration.infinity), "keepAliveIdle"],
        [c.setOption("noDelay", "yes" as unknown as boolean), "noDelay"],
        [c.setOption("nagle" as keyof Connection.SocketOptions, true), "name"],
        [Effect.asVoid(c.getOption("nagle" as keyof Connection.SocketOptions)), "name"]
      ]
      for (const [effect, argument] of bad) {
        const e = yield* Effect.flip(effect)
        expect(e).toMatchObject({ _tag: "SocketError", code: "EINVAL", argument })
      }
      // TCP_NODELAY on a Unix socket: the kernel says EOPNOTSUPP (95, which Node names ENOTSUP).
      const path = join(tmpdir(), `ringline-sockopt-${process.pid}.sock`)
      yield* Unix.listen({ path })
      const uc = yield* Unix.connect(path)
      const e = yield* Effect.flip(uc.getOption("noDelay"))
      expect(e).toMatchObject({ _tag: "SocketError", errno: 95, operation: "getsockopt" })
    })))
})
