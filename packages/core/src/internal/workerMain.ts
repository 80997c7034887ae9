/**
 * The entry point of every RinglineWorkers worker thread: pin the thread, build this thread's
 * ring, import the user's module and run its program with a WorkerContext, and speak a small
 * protocol with the launcher (internal/workers.ts) over parentPort:
 *
 *   main → worker  { type: "start" }                every worker has its ring: run the program
 *                  { type: "port", port }         the shared port, once worker 0 bound it (reusePort, port 0)
 *                  { type: "drain", expected }    stop; acceptor mode: after `expected` handoffs arrived
 *                  { type: "stats", id }          reply with this ring's counters
 *   worker → main  { type: "ready", tid, cpus }   ring up, module loaded, program starting
 *                  { type: "listening", port }    the program listened
 *                  { type: "stats", id, stats, errors }
 *                  { type: "done", ok, cause? }   the program ended (drained, failed, or returned)
 */
import { Cause, Deferred, Effect, Exit, FiberId } from "effect"
import type { Scope } from "effect"
import { parentPort, workerData } from "node:worker_threads"
import * as Addr from "../Address.js"
import type { Listener } from "../Listener.js"
import * as Ringline from "../Ringline.js"
import type { RinglineConfig } from "../RinglineConfig.js"
import { WorkerChannelError, WorkerContext } from "../RinglineWorkers.js"
import { Inbox } from "./inbox.js"
import { Mailboxes } from "./mailbox.js"
import { fromOf, joinU64, Kind, kindOf, postData, splitU64 } from "./msgRing.js"
import { load } from "./native.js"
import { WorkerMessages } from "./workerMessages.js"
import { errnoName } from "./errno.js"

export interface WorkerInit {
  readonly id: number
  readonly count: number
  readonly mode: "reusePort" | "acceptor"
  readonly module: string
  readonly cpu: number
  readonly host: string
  readonly port: number
  readonly backlog: number
  readonly config: RinglineConfig
  readonly ringFds: SharedArrayBuffer
  readonly load: SharedArrayBuffer
  readonly mailbox: SharedArrayBuffer
  readonly mailboxBytes: number
  readonly data: unknown
}

const init = workerData as WorkerInit
const port = parentPort!
const post = (m: unknown) => port.postMessage(m)

const run = Effect.gen(function*() {
  const native = load()
  if (init.cpu >= 0) native.setAffinity([init.cpu])
  const cpus = native.getAffinity()

  const ring = yield* Ringline.make(init.config)
  const driver = ring.driver!
  const ringFds = new Int32Array(init.ringFds)
  const loads = new Int32Array(init.load)
  const mailboxes = new Mailboxes(init.mailbox, init.count, init.mailboxBytes)
  const messages = new WorkerMessages(mailboxes, init.id)
  const inbox = new Inbox(driver, (delta) => Atomics.add(loads, init.id, delta))

  // The first failed delivery to each worker since the last notify/send to it (see `refusal`).
  const undelivered = new Map<number, WorkerChannelError>()

  // Messages from other rings: handed connections, notifications, mailbox wake-ups; and this
  // ring's own messages that could not be delivered.
  driver.onRingMessage = (lo, hi, res) => {
    const kind = kindOf(lo)
    const from = fromOf(lo)
    if (kind === Kind.Fd) inbox.arrive(res)
    else if (kind === Kind.Notify) messages.offer({ _tag: "Notify", from, payload: joinU64(hi, res) })
    else if (kind === Kind.Body && from < init.count) messages.bodyWaiting(from)
    else if (kind === Kind.Undelivered) {
      driver.countError(errnoName(res))
      if (!undelivered.has(from)) {
        const what = hi === Kind.Body ? "send (its wake-up)" : "notify"
        undelivered.set(
          from,
          new WorkerChannelError({ reason: "WorkerGone", to: from, errno: -res, detail: `an earlier ${what} to it was not delivered: IORING_OP_MSG_RING failed with ${errnoName(res)}` })
        )
      }
    }
  }
  Atomics.store(ringFds, init.id, driver.ring.info().ringFd)
  // Before the ring exits, so that nobody targets a closed (or reused) fd.
  yield* Effect.addFinalizer(() => Effect.sync(() => Atomics.store(ringFds, init.id, -1)))

  const sharedPort = Deferred.unsafeMake<number>(FiberId.none)
  if (init.port !== 0 || init.id === 0 || init.mode === "acceptor") Deferred.unsafeDone(sharedPort, Exit.succeed(init.port))
  onMessage.port = (p) => Deferred.unsafeDone(sharedPort, Exit.succeed(p))
  onMessage.inbox = inbox

  let listened = false
  const reportListening = (port: number) =>
    Effect.sync(() => {
      if (listened) return
      listened = true
      post({ type: "listening", port })
    })
  const listen = Effect.gen(function*() {
    let listener: Listener
    if (init.mode === "acceptor") {
      const address = Addr.tcp(init.host, yield* Deferred.await(sharedPort))
      listener = yield* ring.adopt!((track) => inbox.open(track), address)
    } else {
      const p = yield* Deferred.await(sharedPort)
      listener = yield* ring.listen({ _tag: "Tcp", host: init.host, port: p, backlog: init.backlog, reusePort: true })
    }
    yield* reportListening(listener.address._tag === "TcpAddress" ? listener.address.port : 0)
    return listener
  })

  // Fire and forget (msgRing.postData): a message completes once staged (it goes to the kernel
  // before this thread's event loop next waits); a failed delivery comes back as an Undelivered
  // CQE, is kept per target and fails the next notify/send to that worker (`refusal`).
  const refusal = (to: number, fd: number): Effect.Effect<never, WorkerChannelError> | undefined => {
    const failed = undelivered.get(to)
    if (failed !== undefined) {
      undelivered.delete(to)
      return Effect.fail(failed)
    }
    if (fd >= 0) return undefined
    return Effect.fail(new WorkerChannelError({ reason: "WorkerGone", to, detail: "it has no ring now (exited or restarting)" }))
  }
  const noSuchWorker = (to: number) =>
    Number.isInteger(to) && to >= 0 && to < init.count
      ? undefined
      : Effect.fail(new WorkerChannelError({ reason: "NoSuchWorker", to, detail: `workers are 0..${init.count - 1}` }))

  const context: WorkerContext = {
    id: init.id,
    count: init.count,
    mode: init.mode,
    cpus,
    data: init.data,
    listen,
    reportListening: Effect.flatMap(Deferred.await(sharedPort), reportListening),
    port: Deferred.await(sharedPort),
    notify: (to, payload) =>
      Effect.suspend(() => {
        const bad = noSuchWorker(to)
        if (bad !== undefined) return bad
        if (to === init.id) {
          messages.offer({ _tag: "Notify", from: to, payload: BigInt.asUintN(64, payload) })
          return Effect.void
        }
        const fd = Atomics.load(ringFds, to)
        const refused = refusal(to, fd)
        if (refused !== undefined) return refused
        const [hi, lo] = splitU64(payload)
        postData(driver, fd, to, Kind.Notify, init.id, hi, lo)
        return Effect.void
      }),
    send: (to, body) =>
      Effect.suspend(() => {
        const bad = noSuchWorker(to)
        if (bad !== undefined) return bad
        if (body.length > mailboxes.maxBody) {
          return Effect.fail(new WorkerChannelError({ reason: "TooLarge", to, detail: `${body.length} bytes; the most is ${mailboxes.maxBody} (mailboxBytes / 2 - 4)` }))
        }
        if (to === init.id) {
          messages.offer({ _tag: "Body", from: to, body: body.slice() })
          return Effect.void
        }
        const fd = Atomics.load(ringFds, to)
        const refused = refusal(to, fd)
        if (refused !== undefined) return refused
        if (!mailboxes.put(init.id, to, body)) {
          return Effect.fail(new WorkerChannelError({ reason: "MailboxFull", to, detail: `its mailbox from worker ${init.id} has no room for ${body.length} bytes` }))
        }
        postData(driver, fd, to, Kind.Body, init.id, 0, 0)
        return Effect.void
      }),
    receive: messages.receive
  }

  onMessage.stats = (id) =>
    Effect.runFork(Effect.map(ring.stats, (stats) => post({ type: "stats", id, stats, errors: Object.fromEntries(driver.errors) })))

  const ns = yield* Effect.tryPromise({
    try: () => import(init.module),
    catch: (e) => new Error(`cannot import ${init.module}: ${(e as Error)?.stack ?? e}`)
  }).pipe(Effect.orDie)
  const program = ns.default ?? ns.program
  if (!Effect.isEffect(program)) {
    return yield* Effect.die(new TypeError(`${init.module} must export an Effect as its default export (or as \`program\`), got ${typeof program}`))
  }
  // Programs start together, once every worker's ring exists, so a first message never finds
  // its target missing.
  post({ type: "ready", tid: native.threadId(), cpus })
  yield* Deferred.await(startGate)
  return yield* (program as Effect.Effect<unknown, unknown, WorkerContext | Ringline.Ringline | Scope.Scope>).pipe(
    Effect.provideService(WorkerContext, context),
    Effect.provideService(Ringline.Ringline, ring)
  )
}).pipe(Effect.scoped)

const startGate = Deferred.unsafeMake<void>(FiberId.none)

const onMessage: {
  port?: (p: number) => void
  inbox?: Inbox
  stats?: (id: number) => void
} = {}

let draining = false
const fiber = Effect.runFork(run)

port.on("message", (m: any) => {
  if (m?.type === "start") Deferred.unsafeDone(startGate, Exit.void)
  else if (m?.type === "port") onMessage.port?.(m.port)
  else if (m?.type === "stats") onMessage.stats?.(m.id)
  else if (m?.type === "drain" && !draining) {
    draining = true
    const stop = () => fiber.unsafeInterruptAsFork(fiber.id())
    // Acceptor mode: everything the acceptor handed over must have arrived and been taken by a
    // handler first (bounded, in case a transfer never lands).
    if (m.expected > 0 && onMessage.inbox !== undefined) {
      const timer = setTimeout(stop, init.config.shutdownTimeoutMs)
      onMessage.inbox.whenSettled(m.expected, () => {
        clearTimeout(timer)
        stop()
      })
    } else {
      stop()
    }
  }
})

fiber.addObserver((exit) => {
  const ok = Exit.isSuccess(exit) || (draining && Cause.isInterruptedOnly(exit.cause))
  post({
    type: "done",
    ok: ok && draining,
    cause: ok ? (draining ? undefined : "the program ended on its own") : Cause.pretty(exit.cause)
  })
  // Nothing else keeps this thread: the ring is closed, the port goes.
  port.close()
})

