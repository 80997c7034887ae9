// See wide_ring.h: an SQE128 | CQE32 ring for IORING_OP_URING_CMD passthrough.
#include "wide_ring.h"

namespace ringline {

Napi::Function WideRing::Init(Napi::Env env) { return Define(env, "WideRing", {}); }

WideRing::WideRing(const Napi::CallbackInfo& info)
    : LoopWrap(info, {.sqe_bytes = 128, .cqe_words = 8, .count_empty_wakeups = false,
                      .async_name = "ringline:wide-completions"}) {
  Construct(info, "new WideRing({ entries }, onCompletions)");
}

void WideRing::Setup(Napi::Env env, const Napi::Object& opts) {
  Napi::Value e = opts.Get("entries");
  if (!e.IsNumber()) throw Napi::TypeError::New(env, "WideRing option `entries` must be a number");
  const double entries = e.As<Napi::Number>().DoubleValue();
  if (!(entries >= 1 && entries <= 4096) || entries != static_cast<double>(static_cast<unsigned>(entries))) {
    throw Napi::RangeError::New(env, "WideRing option `entries` must be an integer between 1 and 4096");
  }
  // Kernels before 5.19 know neither SQE128 nor CQE32 and fail every mode with EINVAL.
  OpenRing(env, {.sq_entries = static_cast<unsigned>(entries),
                 .flags = IORING_SETUP_SQE128 | IORING_SETUP_CQE32});
  // JS asked for any count up to 4096 and learns the rounded sizes from info().
  MapLoopRegions(env, ring_.sq.ring_entries, ring_.cq.ring_entries);
  StartLoop(env);
}

}  // namespace ringline
