// What every ring of the addon shares: one io_uring owned by one JS thread, driven by that
// thread's libuv loop, and talking to JS through memory both can see, never through a call per
// operation:
//   - JS writes complete SQEs (64 bytes, or 128 on an SQE128 ring) into `stage` and bumps
//     ctl[kCtlStaged]; an unref'd uv_prepare_t copies them into the SQ and submits once per loop
//     turn (or flush() now).
//   - CQEs are copied into `cqes` as 4 Int32 words each (user_data lo, user_data hi, res, flags),
//     or 8 on a CQE32 ring (then big_cqe[0] lo, hi, big_cqe[1] lo, hi); one JS callback receives
//     a whole batch.
// The ring's eventfd is watched by a uv_poll_t, so no helper thread exists.
//
// Ring (ring.h) and WideRing (wide_ring.h) derive from LoopWrap (LoopRing joined to their
// ObjectWrap) and keep only what is theirs.
#pragma once

#include <liburing.h>
#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace ringline {

// The words of the control block (Int32Array `ctl` on the JS side) that the loop itself keeps;
// a derived ring numbers its own words in the gaps (see ring.h).
enum LoopCtlWord : int {
  kCtlStaged = 0,        // SQEs staged by JS and not yet copied into the SQ
  kCtlSubmitted = 2,     // SQEs submitted (wrapping counter)
  kCtlSqFull = 3,        // times the SQ filled up during a flush and had to be submitted early
  kCtlCqes = 4,          // CQEs delivered (wrapping counter)
  kCtlWakeups = 5,       // eventfd wake-ups
  kCtlSubmitErr = 6,     // last negative errno from io_uring_submit, 0 if none
  kCtlOverflow = 7,      // times the CQ had overflowed into the kernel's backlog
  kCtlEmptyWakeups = 8,  // wake-ups that found no CQE (only where LoopShape asks for it)
  kCtlWords = 16
};

// An anonymous mapping; when exposed to JS its lifetime follows the ArrayBuffer (GC), so a
// late access from JS after close can never touch unmapped memory.
struct Region {
  void* ptr = nullptr;
  size_t len = 0;
};

// Page-rounded; an empty Region when the mapping fails.
Region MapRegion(size_t len);
// The ArrayBuffer owns the mapping: it is unmapped only when JS can no longer reach it.
Napi::ArrayBuffer Expose(Napi::Env env, Region r, size_t visible);
// Maps `visible` bytes and hands them to JS as exposed[name]; throws ENOMEM when mapping fails.
void* MapExposed(Napi::Env env, Napi::Object exposed, const char* name, size_t visible);

// Throws a JS Error carrying `errno`, `code` and `syscall`, the shape node:fs errors have.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, int err);

// What differs between kinds of ring on the shared path; fixed per class.
struct LoopShape {
  size_t sqe_bytes;           // 64, or 128 with IORING_SETUP_SQE128
  unsigned cqe_words;         // 4, or 8 with IORING_SETUP_CQE32 (big_cqe follows)
  bool count_empty_wakeups;   // whether ctl[kCtlEmptyWakeups] is kept (JS reads it on Ring only)
  const char* async_name;     // async resource of the completion callback, seen by async_hooks
};

class LoopRing {
 public:
  LoopRing(const LoopRing&) = delete;
  LoopRing& operator=(const LoopRing&) = delete;
  virtual ~LoopRing() { Teardown(); }

 protected:
  LoopRing(napi_env env, const LoopShape& shape) : env_(env), shape_(shape) {}

  // Checks (options, onCompletions) and runs Setup(options); whatever Setup acquired before
  // failing is released before the error reaches JS. Call from the derived constructor, whose
  // overrides are in place by then.
  void Construct(const Napi::CallbackInfo& info, const char* usage);

  struct RingParams {
    unsigned sq_entries = 0;
    unsigned cq_entries = 0;  // honoured only with IORING_SETUP_CQSIZE in `flags`
    unsigned flags = 0;       // kept in every mode, "plain" included
    bool sqpoll = false;
    unsigned sqpoll_idle_ms = 0;
  };
  // Setup happens in this order, with the derived ring's own work in between as it needs.
  void OpenRing(Napi::Env env, const RingParams& params);
  Napi::Object MapLoopRegions(Napi::Env env, unsigned stage_cap, unsigned cq_cap);
  void StartLoop(Napi::Env env);

  // Idempotent. Exiting the ring cancels whatever is still in flight; JS only closes once its op
  // table is empty, so no kernel write can land in memory JS already let go. A ring that
  // overrides ReleaseOwn must call it from its own destructor: from ~LoopRing the override is gone.
  void Teardown();

  virtual void Setup(Napi::Env env, const Napi::Object& opts) = 0;
  virtual napi_value JsObject() = 0;
  // Work JS staged besides SQEs, done right before the SQEs are copied.
  virtual bool HasOwnStaged() const { return false; }
  virtual void FlushOwnStaged() {}
  // Runs once from Teardown, before the ring exits, so registrations can still be dropped.
  virtual void ReleaseOwn() {}
  // Keys inserted into info() between cqEntries and regions.
  virtual void AddInfo(Napi::Object& info) {}

  struct io_uring ring_ {};
  bool ring_ready_ = false;
  bool closed_ = false;
  napi_env env_ = nullptr;
  int32_t* ctl_ = nullptr;  // shared with JS

 private:
  template <typename T>
  friend class LoopWrap;

  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);

  // `get_events`: also run pending completion work in the same syscall (see OnPrepare).
  void FlushStaged(bool get_events = false);
  unsigned DrainCq();
  void OnReadable();
  // Drains the CQ into JS in bounded rounds; `from_wakeup` counts an empty first round.
  void Deliver(bool from_wakeup);
  // DEFER_TASKRUN only: eventfd notifications off (see evfd_quiet_).
  void Quiet();
  // Whether entering the kernel could post completions now: task work queued for this thread or
  // an overflowed CQ. With IORING_SETUP_TASKRUN_FLAG the kernel says so in the SQ flags (set
  // when work lands on an empty list, cleared when it starts running it), so an idle loop turn
  // costs no syscall; without the flag every turn has to ask.
  bool CompletionWorkPending() const;

  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnPrepare(uv_prepare_t* handle);
  static void OnEnvCleanup(void* arg);

  const LoopShape shape_;
  bool hook_added_ = false;
  bool polling_ref_ = false;
  unsigned setup_flags_ = 0;
  unsigned features_ = 0;
  const char* mode_ = "none";

  int event_fd_ = -1;
  bool event_fd_registered_ = false;
  // DEFER_TASKRUN only: eventfd notifications are off from a wake-up until the loop is about to
  // block again (OnReadable → OnPrepare). While we are awake and draining anyway, every CQE we
  // post ourselves would otherwise signal the eventfd and cost one empty wake-up.
  bool evfd_quiet_ = false;
  // Rounds of flush-and-deliver one prepare callback may run before it lets the loop go round.
  static constexpr int kPrepareTurns = 4;
  uv_poll_t* poll_ = nullptr;
  uv_prepare_t* prepare_ = nullptr;

  // Shared with JS (the mappings are owned by the ArrayBuffers in exposed_).
  uint8_t* stage_ = nullptr;
  int32_t* cqes_ = nullptr;
  unsigned cq_cap_ = 0;

  Napi::FunctionReference on_completions_;
  Napi::ObjectReference exposed_;  // the regions handed to JS, kept for Info()
  Napi::AsyncContext* async_ctx_ = nullptr;
};

// Joins LoopRing to the ObjectWrap of a concrete ring T, which derives from LoopWrap<T>.
template <typename T>
class LoopWrap : public Napi::ObjectWrap<T>, public LoopRing {
 protected:
  LoopWrap(const Napi::CallbackInfo& info, const LoopShape& shape)
      : Napi::ObjectWrap<T>(info), LoopRing(info.Env(), shape) {}

  // The JS methods every ring has, then T's own. Named through LoopRing because ObjectWrap's
  // Reference base also has Ref() and Unref().
  static Napi::Function Define(Napi::Env env, const char* name,
                               std::initializer_list<Napi::ClassPropertyDescriptor<T>> own) {
    using W = Napi::ObjectWrap<T>;
    std::vector<Napi::ClassPropertyDescriptor<T>> all = {
        W::InstanceMethod("flush", &LoopRing::Flush),
        W::InstanceMethod("ref", &LoopRing::Ref),
        W::InstanceMethod("unref", &LoopRing::Unref),
        W::InstanceMethod("close", &LoopRing::Close),
        W::InstanceMethod("info", &LoopRing::Info),
    };
    all.insert(all.end(), own.begin(), own.end());
    return W::DefineClass(env, name, all);
  }

 private:
  napi_value JsObject() override { return this->Value(); }
};

}  // namespace ringline
