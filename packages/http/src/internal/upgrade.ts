/**
 * `request.upgrade`: only requests that asked for an upgrade can be upgraded.
 */
import * as HttpServerError from "@effect/platform/HttpServerError"
import type * as ServerRequest from "@effect/platform/HttpServerRequest"
import type * as Socket from "@effect/platform/Socket"
import type { Connection } from "@ringline/core/Connection"
import { Effect } from "effect"
import type { Exchange } from "./exchange.js"

/** @internal */
export const upgradeWebSocket = (
  _conn: Connection,
  exchange: Exchange,
  request: unknown
): Effect.Effect<Socket.Socket, HttpServerError.RequestError> =>
  Effect.fail(
    new HttpServerError.RequestError({
      request: request as ServerRequest.HttpServerRequest,
      reason: "Decode",
      description: exchange.isUpgrade ? "upgrade is not implemented yet" : "not an upgradeable ServerRequest"
    })
  )
