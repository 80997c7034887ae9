// A second, small io_uring with 128-byte SQEs and 32-byte CQEs (IORING_SETUP_SQE128 |
// IORING_SETUP_CQE32), for IORING_OP_URING_CMD passthrough (NVMe generic char devices), whose
// command does not fit the 64-byte SQEs of the main ring (ring.h).
//
// The shared loop of loop_ring.h with 128-byte staged SQEs and 8-word CQEs, minus everything
// ring.h adds (provided buffers, fixed files, sqpoll). Its control block is LoopCtlWord's words;
// ctl[kCtlEmptyWakeups] is not kept. JS side: packages/core/src/internal/ring/wide.ts.
#pragma once

#include <napi.h>

#include "loop_ring.h"

namespace ringline {

class WideRing : public LoopWrap<WideRing> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit WideRing(const Napi::CallbackInfo& info);

 private:
  void Setup(Napi::Env env, const Napi::Object& opts) override;
};

}  // namespace ringline
