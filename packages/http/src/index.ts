/**
 * @ringline/http — an `@effect/platform` HttpServer on the ring.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as RinglineHttpServer from "./RinglineHttpServer.js"
