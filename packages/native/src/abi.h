// The io_uring ABI this addon was compiled against, exported to JS as `abi` so that a test can
// compare it entry by entry with the one JS table (packages/core/src/internal/ring/abi.ts).
#pragma once

#include <napi.h>

namespace ringline {

Napi::Object InitAbi(Napi::Env env, Napi::Object exports);

}  // namespace ringline
