// One io_uring owned by one JS thread, driven by that thread's libuv loop.
//
// JS and the ring talk through memory both can see, never through a call per operation:
//   - JS writes complete 64-byte SQEs into a staging area and bumps ctl[kCtlStaged];
//     an unref'd uv_prepare_t copies them into the SQ and submits once per loop turn.
//   - CQEs are copied as [user_data lo, user_data hi, res, flags] quads into a completion area;
//     one JS callback receives a whole batch.
//   - Provided (recv) buffers are handed back by writing their ids into a recycle list.
// The ring's eventfd is watched by a uv_poll_t, so no helper thread exists.
#pragma once

#include <liburing.h>
#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <set>

namespace ringline {

// Words of the shared control block (Int32Array `ctl` on the JS side). Keep in sync with
// packages/core/src/internal/native.ts.
enum CtlWord : int {
  kCtlStaged = 0,     // SQEs staged by JS and not yet copied into the SQ
  kCtlRecycled = 1,   // buffer ids in the recycle list not yet returned to the buffer ring
  kCtlSubmitted = 2,  // SQEs submitted (wrapping counter)
  kCtlSqFull = 3,     // times the SQ filled up during a flush and had to be submitted early
  kCtlCqes = 4,       // CQEs delivered (wrapping counter)
  kCtlWakeups = 5,    // eventfd wake-ups
  kCtlSubmitErr = 6,  // last negative errno from io_uring_submit, 0 if none
  kCtlOverflow = 7,   // times the CQ had overflowed into the kernel's backlog
  kCtlEmptyWakeups = 8,  // wake-ups that found no CQE
  kCtlWords = 16
};

constexpr size_t kSqeSize = 64;
constexpr size_t kCqeWords = 4;

// An anonymous mapping; when exposed to JS its lifetime follows the ArrayBuffer (GC), so a
// late access from JS after close can never touch unmapped memory.
struct Region {
  void* ptr = nullptr;
  size_t len = 0;
};

class Ring : public Napi::ObjectWrap<Ring> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Ring(const Napi::CallbackInfo& info);
  ~Ring() override;

 private:
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value BufferStatus(const Napi::CallbackInfo& info);
  Napi::Value Own(const Napi::CallbackInfo& info);
  Napi::Value Disown(const Napi::CallbackInfo& info);
  Napi::Value RegisterDirectPool(const Napi::CallbackInfo& info);    // storage: O_DIRECT pool
  Napi::Value UnregisterDirectPool(const Napi::CallbackInfo& info);

  void Setup(Napi::Env env, const Napi::Object& opts);
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
  bool polling_ref_ = false;
  unsigned setup_flags_ = 0;
  unsigned features_ = 0;
  const char* mode_ = "none";

  int event_fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  uv_prepare_t* prepare_ = nullptr;
  napi_env env_ = nullptr;

  // Shared with JS.
  int32_t* ctl_ = nullptr;
  uint8_t* stage_ = nullptr;
  unsigned stage_cap_ = 0;
  int32_t* cqes_ = nullptr;
  unsigned cq_cap_ = 0;
  int32_t* recycle_ = nullptr;
  uint8_t* recv_bufs_ = nullptr;
  unsigned buf_count_ = 0;
  unsigned buf_size_ = 0;

  // Owned by the kernel registration only.
  Region buf_ring_mem_;
  struct io_uring_buf_ring* buf_ring_ = nullptr;
  bool buf_ring_registered_ = false;
  unsigned files_ = 0;

  // Ordinary fds (listening sockets) that die with the ring, so that a worker terminated with a
  // listener open leaks nothing.
  std::set<int> owned_fds_;

  // Page-aligned pool registered with io_uring_register_buffers (one iovec, buf_index 0) for
  // READ_FIXED/WRITE_FIXED; the mapping is owned by the ArrayBuffer handed to JS, referenced here
  // while registered.
  bool direct_pool_registered_ = false;
  Napi::Reference<Napi::ArrayBuffer> direct_pool_;

  Napi::FunctionReference on_completions_;
  Napi::ObjectReference exposed_;  // the regions handed to JS, kept for Info()
  Napi::AsyncContext* async_ctx_ = nullptr;
};

// Throws a JS Error carrying `errno`, `code` and `syscall`, the shape node:fs errors have.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, int err);

Napi::Object InitSockets(Napi::Env env, Napi::Object exports);
Napi::Object InitProcess(Napi::Env env, Napi::Object exports);  // process.cc

}  // namespace ringline
