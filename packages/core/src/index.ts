/**
 * ringline: io_uring-native networking for Effect.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Address from "./Address.js"
/** @since 0.1.0 */
export * as Blocking from "./Blocking.js"
/** @since 0.1.0 */
export * as Connection from "./Connection.js"
/** @since 0.1.0 */
export * as Listener from "./Listener.js"
/** @since 0.1.0 */
export * as Process from "./Process.js"
/** @since 0.1.0 */
export * as Resolver from "./Resolver.js"
/** @since 0.1.0 */
export * as Ring from "./Ring.js"
/** @since 0.1.0 */
export * as Ringline from "./Ringline.js"
/** @since 0.1.0 */
export * as RinglineClock from "./RinglineClock.js"
/** @since 0.1.0 */
export * as RinglineCommandExecutor from "./RinglineCommandExecutor.js"
/** @since 0.1.0 */
export * as RinglineConfig from "./RinglineConfig.js"
/** @since 0.1.0 */
export * as RinglineError from "./RinglineError.js"
/** @since 0.1.0 */
export * as RinglineMetrics from "./RinglineMetrics.js"
/** @since 0.1.0 */
export * as RinglineSocket from "./RinglineSocket.js"
/** @since 0.1.0 */
export * as RinglineSocketServer from "./RinglineSocketServer.js"
/** @since 0.1.0 */
export * as RinglineTest from "./RinglineTest.js"
/** @since 0.1.0 */
export * as RinglineTesting from "./RinglineTesting.js"
/** @since 0.1.0 */
export * as RinglineWorkers from "./RinglineWorkers.js"
/** @since 0.1.0 */
export * as Tcp from "./Tcp.js"
/** @since 0.1.0 */
export * as Transport from "./Transport.js"
/** @since 0.1.0 */
export * as Udp from "./Udp.js"
/** @since 0.1.0 */
export * as Unix from "./Unix.js"
