// A second, small io_uring with 128-byte SQEs and 32-byte CQEs (IORING_SETUP_SQE128 |
// IORING_SETUP_CQE32), for IORING_OP_URING_CMD passthrough (NVMe generic char devices), whose
// command does not fit the 64-byte SQEs of the main ring (ring.h).
//
// Same protocol as the main ring, minus provided buffers and fixed files:
//   - JS writes complete 128-byte SQEs into `stage` and bumps ctl[kWideCtlStaged]; an unref'd
//     uv_prepare_t copies them into the SQ and submits once per loop turn (or flush() now).
//   - CQEs are copied into `cqes` as 8 Int32 words each: user_data lo, user_data hi, res, flags,
//     big_cqe[0] lo, big_cqe[0] hi, big_cqe[1] lo, big_cqe[1] hi; one JS callback per batch.
//   - The ring's eventfd is watched by a uv_poll_t (unref'd; JS refs it while ops are in flight).
#pragma once

#include <liburing.h>
#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>

namespace ringline {

// Words of the WideRing control block; same numbering as the main ring's CtlWord where shared.
// Keep in sync with packages/storage/src/internal/wideRing.ts.
enum WideCtlWord : int {
  kWideCtlStaged = 0,     // SQEs staged by JS and not yet copied into the SQ
  kWideCtlSubmitted = 2,  // SQEs submitted (wrapping counter)
  kWideCtlSqFull = 3,     // times the SQ filled up during a flush
  kWideCtlCqes = 4,       // CQEs delivered (wrapping counter)
  kWideCtlWakeups = 5,    // eventfd wake-ups
  kWideCtlSubmitErr = 6,  // last negative errno from io_uring_submit, 0 if none
  kWideCtlOverflow = 7,   // times the CQ had overflowed into the kernel's backlog
  kWideCtlWords = 16
};

constexpr size_t kWideSqeSize = 128;
constexpr size_t kWideCqeWords = 8;

class WideRing : public Napi::ObjectWrap<WideRing> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit WideRing(const Napi::CallbackInfo& info);
  ~WideRing() override;

 private:
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);

  void Setup(Napi::Env env, unsigned entries);
  void FlushStaged();
  unsigned DrainCq();
  void OnReadable();
  void Teardown();

  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnPrepare(uv_prepare_t* handle);
  static void OnEnvCleanup(void* arg);

  struct io_uring ring_ {};
  bool ring_ready_ = false;
  bool closed_ = false;
  bool hook_added_ = false;
  bool polling_ref_ = false;
  unsigned setup_flags_ = 0;
  unsigned features_ = 0;
  const char* mode_ = "none";

  int event_fd_ = -1;
  bool event_fd_registered_ = false;
  uv_poll_t* poll_ = nullptr;
  uv_prepare_t* prepare_ = nullptr;
  napi_env env_ = nullptr;

  // Shared with JS (the mappings are owned by the ArrayBuffers in exposed_).
  int32_t* ctl_ = nullptr;
  uint8_t* stage_ = nullptr;
  unsigned stage_cap_ = 0;
  int32_t* cqes_ = nullptr;
  unsigned cq_cap_ = 0;

  Napi::FunctionReference on_completions_;
  Napi::ObjectReference exposed_;
  Napi::AsyncContext* async_ctx_ = nullptr;
};

}  // namespace ringline
