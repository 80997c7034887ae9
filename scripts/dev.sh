#!/usr/bin/env bash
# One entry point from a fresh machine: installs whatever is missing, builds, then runs something.
#
#   bash scripts/dev.sh demo [--port 7878] [--host 127.0.0.1]   # the io_uring echo server
#   bash scripts/dev.sh test                                      # the whole test suite
#   bash scripts/dev.sh bench [--quick]                           # the benchmark suite
#   bash scripts/dev.sh bench-http [--quick]                      # the HTTP benchmark (installs wrk)
#   bash scripts/dev.sh http [--port 8080] [--host 127.0.0.1]     # the HTTP demo server
#   bash scripts/dev.sh setup                                     # only install and build
#
# Idempotent: a second run skips what is already there. `pnpm install` builds the addon through
# @ringline/native's install script, against the running node's own headers (no download), and
# only when its sources, binding.gyp or Node changed (packages/native/scripts/build.mjs).
# Needs Linux with io_uring, Node >= 20, and apt (Debian/Ubuntu) for missing system packages.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[ringline] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(uname -s)" = Linux ] || die "ringline needs Linux (io_uring); this is $(uname -s)"
command -v node >/dev/null || die "Node.js >= 20 is required (https://nodejs.org)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is required, found $(node --version)"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root to run: $*"; fi; }

# System packages: liburing (the addon links it), a C++ toolchain and python3 for node-gyp,
# strace for the test that proves socket I/O goes through the ring, wrk for the HTTP smoke test.
missing=()
[ -f /usr/include/liburing.h ] || missing+=(liburing-dev)
# node-llhttp: the C sources of Node's HTTP parser, compiled into the addon for @ringline/http.
[ -f /usr/share/llhttp/llhttp.c ] || missing+=(node-llhttp)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v python3 >/dev/null || missing+=(python3)
command -v strace >/dev/null || missing+=(strace)
# wrk: the HTTP server's smoke test (and the HTTP benchmark).
command -v wrk >/dev/null || missing+=(wrk)
command -v gcc >/dev/null || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -f "$(node -p 'require("path").resolve(process.execPath, "../../include/node/node.h")')" ] ||
  die "Node's headers are missing next to $(command -v node) (include/node/node.h); install the Node.js dev headers"

# pnpm: prefer an installed one, else install it with npm (corepack's signature checks can fail).
if command -v pnpm >/dev/null && pnpm --version 2>/dev/null | grep -q '^10\.'; then
  PNPM=(pnpm)
else
  say "installing pnpm@10 with npm"
  if npm install -g pnpm@10 >/dev/null 2>&1 && command -v pnpm >/dev/null; then PNPM=(pnpm); else PNPM=(npx -y pnpm@10); fi
fi

say "installing dependencies"
"${PNPM[@]}" install --frozen-lockfile --reporter=silent

# pnpm install already ran it (the addon's install script); it rebuilds only what changed.
node packages/native/scripts/build.mjs
say "building TypeScript"
"${PNPM[@]}" exec tsc -b

action=${1:-setup}
[ $# -gt 0 ] && shift
case "$action" in
  setup) say "ready" ;;
  demo) exec "${PNPM[@]}" run echo "$@" ;;
  test)
    say "type-checking the tests (tsconfig.test.json)"
    "${PNPM[@]}" exec tsc -p tsconfig.test.json
    exec "${PNPM[@]}" test "$@" ;;
  bench) exec "${PNPM[@]}" run bench "$@" ;;
  bench-http)
    if ! command -v wrk >/dev/null; then
      command -v apt-get >/dev/null || die "the HTTP benchmark needs wrk and there is no apt-get to install it"
      say "installing wrk (apt)"
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk >/dev/null
    fi
    exec "${PNPM[@]}" run bench:http "$@" ;;
  http) exec "${PNPM[@]}" run http "$@" ;;
  *) die "unknown action '$action' (demo | test | bench | bench-http | http | setup)" ;;
esac
