import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { existsSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Address, Unix } from "../src/index.js"
import { load } from "../src/internal/native.js"
import { encodeToBytes } from "../src/internal/sockaddr.js"
import { echo, readN, withRing } from "./helpers.js"

const tempPath = () => {
  const dir = mkdtempSync(join(tmpdir(), "ringline-unix-"))
  return { path: join(dir, "echo.sock"), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

describe("Unix stream sockets", () => {
  it.live("echoes 6 messages; the socket file exists; the peer is a Unix address", () =>
    withRing(Effect.gen(function*() {
      const { path, cleanup } = tempPath()
      yield* Effect.addFinalizer(() => Effect.sync(cleanup))
      const l = yield* Unix.listen({ path })
      expect(existsSync(path) && lstatSync(path).isSocket()).toBe(true)
      expect(l.address).toEqual({ _tag: "UnixAddress", path })
      const peers: Array<unknown> = []
      yield* Effect.forkScoped(l.serve((conn) => Effect.zipRight(Effect.tap(conn.peerAddress, (p) => Effect.sync(() => peers.push(p))), echo(conn))))
      const s = yield* Effect.promise(() => new Promise<net.Socket>((r) => { const c = net.connect(path, () => r(c)) }))
      for (let i = 0; i < 6; i++) {
        const msg = Buffer.from(`message ${i}`)
        s.write(msg)
        expect((yield* Effect.promise(() => readN(s, msg.length))).equals(msg)).toBe(true)
      }
      s.destroy()
      expect(peers).toEqual([{ _tag: "UnixAddress", path: "" }])
    })))

  it.live("a ringline Unix client, a stale socket file, and clean-up on close", () =>
    withRing(Effect.gen(function*() {
      const { path, cleanup } = tempPath()
      yield* Effect.addFinalizer(() => Effect.sync(cleanup))
      // A stale socket file left by a crashed process is replaced.
      const native = load()
      native.closeFd(native.listen(encodeToBytes(Address.unix(path)), 1, false))
      expect(existsSync(path)).toBe(true)
      yield* Effect.scoped(Effect.gen(function*() {
        const l = yield* Unix.listen({ path })
        yield* Effect.forkScoped(l.serve(echo))
        const c = yield* Unix.connect(path)
        yield* c.send(Buffer.from("over unix"))
        yield* c.shutdownWrite
        let got = ""
        while (true) {
          const chunk = yield* c.recv
          if (Option.isNone(chunk)) break
          got += Buffer.from(chunk.value).toString()
        }
        expect(got).toBe("over unix")
        expect(yield* c.peerAddress).toEqual({ _tag: "UnixAddress", path })
      }))
      expect(existsSync(path)).toBe(false)
      // A regular file is never deleted to make room.
      writeFileSync(path, "precious")
      const err = yield* Effect.flip(Effect.scoped(Unix.listen({ path })))
      expect(err.code).toBe("EADDRINUSE")
      expect(existsSync(path)).toBe(true)
      // Connecting to a missing path fails typed.
      const missing = yield* Effect.flip(Effect.scoped(Unix.connect(path + ".nope")))
      expect(missing.reason).toBe("NotFound")
    })))
})
