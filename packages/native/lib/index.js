"use strict"
// Loads the compiled addon. Built by `pnpm --filter @ringline/native build` (node-gyp against the
// system Node headers and liburing); the README's set-up command does it for you.
const path = require("node:path")

let addon
try {
  addon = require(path.join(__dirname, "..", "build", "Release", "ringline.node"))
} catch (cause) {
  const err = new Error(
    "@ringline/native is not built: run `pnpm --filter @ringline/native build` " +
      "(needs liburing-dev, g++ and Node's headers in /usr/include/node). Cause: " + cause.message
  )
  err.cause = cause
  throw err
}
module.exports = addon
