// See loop_ring.h for the shape of the JS <-> ring protocol.
#include "loop_ring.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace ringline {

Region MapRegion(size_t len) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  len = (len + page - 1) & ~(page - 1);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Region{};
  return Region{p, len};
}

Napi::ArrayBuffer Expose(Napi::Env env, Region r, size_t visible) {
  return Napi::ArrayBuffer::New(
      env, r.ptr, visible,
      [](Napi::Env, void* data, size_t* len) {
        munmap(data, *len);
        delete len;
      },
      new size_t(r.len));
}

void* MapExposed(Napi::Env env, Napi::Object exposed, const char* name, size_t visible) {
  Region r = MapRegion(visible);
  if (r.ptr == nullptr) ThrowErrno(env, "mmap", ENOMEM);
  exposed.Set(name, Expose(env, r, visible));
  return r.ptr;
}

void ThrowErrno(Napi::Env env, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  throw e;
}

void LoopRing::Construct(const Napi::CallbackInfo& info, const char* usage) {
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    throw Napi::TypeError::New(info.Env(), usage);
  }
  on_completions_ = Napi::Persistent(info[1].As<Napi::Function>());
  try {
    Setup(info.Env(), info[0].As<Napi::Object>());
  } catch (...) {
    Teardown();
    throw;
  }
}

void LoopRing::OpenRing(Napi::Env env, const RingParams& params) {
  // Strongest mode first; each fallback exists because older kernels reject the newer flags.
  struct Attempt {
    unsigned flags;
    const char* mode;
  };
  const unsigned base = params.flags | IORING_SETUP_SUBMIT_ALL;
  Attempt attempts[3];
  int n_attempts = 0;
  if (params.sqpoll) {
    attempts[n_attempts++] = {base | IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER, "sqpoll"};
    attempts[n_attempts++] = {base | IORING_SETUP_SQPOLL, "sqpoll"};
  } else {
    // TASKRUN_FLAG: the kernel marks pending completion work in the SQ flags, so the loop
    // enters the kernel for it only when there is some (CompletionWorkPending).
    attempts[n_attempts++] = {base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                  IORING_SETUP_TASKRUN_FLAG,
                              "defer-taskrun"};
    attempts[n_attempts++] = {base | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
                              "coop-taskrun"};
  }
  attempts[n_attempts++] = {params.flags, "plain"};
  int err = 0;
  for (int i = 0; i < n_attempts; i++) {
    struct io_uring_params p {};
    p.flags = attempts[i].flags;
    p.cq_entries = params.cq_entries;
    if (p.flags & IORING_SETUP_SQPOLL) p.sq_thread_idle = params.sqpoll_idle_ms;
    err = io_uring_queue_init_params(params.sq_entries, &ring_, &p);
    if (err == 0) {
      setup_flags_ = p.flags;
      features_ = p.features;
      mode_ = attempts[i].mode;
      ring_ready_ = true;
      break;
    }
  }
  if (!ring_ready_) ThrowErrno(env, "io_uring_setup", -err);
}

Napi::Object LoopRing::MapLoopRegions(Napi::Env env, unsigned stage_cap, unsigned cq_cap) {
  Napi::Object exposed = Napi::Object::New(env);
  ctl_ = static_cast<int32_t*>(MapExposed(env, exposed, "ctl", kCtlWords * 4));
  stage_ = static_cast<uint8_t*>(MapExposed(env, exposed, "stage", stage_cap * shape_.sqe_bytes));
  cq_cap_ = cq_cap;
  cqes_ = static_cast<int32_t*>(MapExposed(env, exposed, "cqes", cq_cap * shape_.cqe_words * 4));
  exposed_ = Napi::Persistent(exposed);
  return exposed;
}

void LoopRing::StartLoop(Napi::Env env) {
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) ThrowErrno(env, "eventfd", errno);
  int err = io_uring_register_eventfd(&ring_, event_fd_);
  if (err != 0) ThrowErrno(env, "io_uring_register_eventfd", -err);
  event_fd_registered_ = true;

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    throw Napi::Error::New(env, "napi_get_uv_event_loop failed");
  }
  poll_ = new uv_poll_t;
  uv_poll_init(loop, poll_, event_fd_);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, OnPoll);
  // Only in-flight operations keep the process alive (JS calls ref/unref on 0 <-> 1).
  uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  prepare_ = new uv_prepare_t;
  uv_prepare_init(loop, prepare_);
  prepare_->data = this;
  uv_prepare_start(prepare_, OnPrepare);
  uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));

  async_ctx_ = new Napi::AsyncContext(env, shape_.async_name);
  napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  hook_added_ = true;
}

void LoopRing::OnEnvCleanup(void* arg) {
  LoopRing* r = static_cast<LoopRing*>(arg);
  r->hook_added_ = false;  // being run: nothing to remove
  r->Teardown();
}

void LoopRing::Teardown() {
  if (closed_) return;
  closed_ = true;
  if (hook_added_) {
    napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
    hook_added_ = false;
  }
  // The handles are freed by libuv's close callback, which may run after this object is gone.
  auto close_handle = [](uv_handle_t* h) {
    uv_close(h, [](uv_handle_t* hh) {
      if (hh->type == UV_POLL) delete reinterpret_cast<uv_poll_t*>(hh);
      else delete reinterpret_cast<uv_prepare_t*>(hh);
    });
  };
  if (poll_ != nullptr) {
    uv_poll_stop(poll_);
    close_handle(reinterpret_cast<uv_handle_t*>(poll_));
    poll_ = nullptr;
  }
  if (prepare_ != nullptr) {
    uv_prepare_stop(prepare_);
    close_handle(reinterpret_cast<uv_handle_t*>(prepare_));
    prepare_ = nullptr;
  }
  if (event_fd_registered_) io_uring_unregister_eventfd(&ring_);
  event_fd_registered_ = false;
  ReleaseOwn();
  if (ring_ready_) {
    // Exiting the ring cancels whatever is still in flight and drops every registration left.
    io_uring_queue_exit(&ring_);
    ring_ready_ = false;
  }
  if (event_fd_ >= 0) {
    ::close(event_fd_);
    event_fd_ = -1;
  }
  delete async_ctx_;
  async_ctx_ = nullptr;
}

// Copies staged SQEs into the SQ, then submits: one syscall per loop turn however many
// operations JS queued.
void LoopRing::FlushStaged(bool get_events) {
  if (closed_) return;
  FlushOwnStaged();
  const size_t sqe_bytes = shape_.sqe_bytes;
  const int staged = ctl_[kCtlStaged];
  int copied = 0;
  while (copied < staged) {
    // liburing 2.3 indexes the SQE array with the SQE128 shift, so the slot is sqe_bytes long.
    struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      ctl_[kCtlSqFull]++;
      int r = io_uring_submit(&ring_);
      if (r < 0) {
        ctl_[kCtlSubmitErr] = r;
        break;
      }
      ctl_[kCtlSubmitted] += r;
      continue;
    }
    memcpy(sqe, stage_ + static_cast<size_t>(copied) * sqe_bytes, sqe_bytes);
    copied++;
  }
  if (copied < staged) {
    // The kernel refused to take more (e.g. -EBUSY): keep the rest staged for the next turn.
    memmove(stage_, stage_ + static_cast<size_t>(copied) * sqe_bytes,
            static_cast<size_t>(staged - copied) * sqe_bytes);
  }
  ctl_[kCtlStaged] = staged - copied;
  get_events = get_events && CompletionWorkPending();
  if (io_uring_sq_ready(&ring_) > 0) {
    int r = get_events ? io_uring_submit_and_get_events(&ring_) : io_uring_submit(&ring_);
    if (r < 0) ctl_[kCtlSubmitErr] = r;
    else ctl_[kCtlSubmitted] += r;
  } else if (get_events) {
    io_uring_get_events(&ring_);
  }
}

bool LoopRing::CompletionWorkPending() const {
  if (!(setup_flags_ & IORING_SETUP_TASKRUN_FLAG)) return true;
  // liburing's own test before entering for completions (cq_ring_needs_flush).
  return (IO_URING_READ_ONCE(*ring_.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

unsigned LoopRing::DrainCq() {
  const unsigned words = shape_.cqe_words;
  unsigned head;
  unsigned n = 0;
  struct io_uring_cqe* cqe;
  // On a CQE32 ring io_uring_for_each_cqe applies the shift: each cqe is followed by big_cqe[2].
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if (n == cq_cap_) break;
    int32_t* out = cqes_ + n * words;
    out[0] = static_cast<int32_t>(cqe->user_data & 0xffffffffu);
    out[1] = static_cast<int32_t>(cqe->user_data >> 32);
    out[2] = cqe->res;
    out[3] = static_cast<int32_t>(cqe->flags);
    if (words == 8) {
      const uint64_t b0 = cqe->big_cqe[0];
      const uint64_t b1 = cqe->big_cqe[1];
      out[4] = static_cast<int32_t>(b0 & 0xffffffffu);
      out[5] = static_cast<int32_t>(b0 >> 32);
      out[6] = static_cast<int32_t>(b1 & 0xffffffffu);
      out[7] = static_cast<int32_t>(b1 >> 32);
    }
    n++;
  }
  io_uring_cq_advance(&ring_, n);
  return n;
}

void LoopRing::OnReadable() {
  uint64_t v;
  // Not EFD_SEMAPHORE: one read takes the whole count (a second would only say EAGAIN).
  (void)!read(event_fd_, &v, sizeof v);
  ctl_[kCtlWakeups]++;
  Quiet();
  Deliver(true);
}

void LoopRing::Quiet() {
  if ((setup_flags_ & IORING_SETUP_DEFER_TASKRUN) && !evfd_quiet_ && io_uring_cq_eventfd_toggle(&ring_, false) == 0) {
    evfd_quiet_ = true;
  }
}

void LoopRing::Deliver(bool from_wakeup) {
  // Plain N-API here, no C++ wrappers: while a worker is being terminated JS cannot run, and the
  // wrappers would try to build Error objects for that, which aborts the process.
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return;
  napi_value fn = on_completions_.Value();
  napi_value self = JsObject();
  // Bounded so that a peer flooding us cannot starve the rest of the event loop.
  for (int round = 0; round < 64 && !closed_; round++) {
    // Under DEFER_TASKRUN/COOP_TASKRUN completions are posted only when this thread enters the
    // kernel; overflowed CQEs are likewise flushed back only on entry.
    const bool overflow = io_uring_cq_has_overflow(&ring_);
    if (overflow) ctl_[kCtlOverflow]++;
    if (overflow ||
        ((setup_flags_ & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN)) && CompletionWorkPending())) {
      // We enter the kernel anyway: SQEs the previous round's callback staged (the next reads of
      // the fibers it woke) go with this enter, instead of waiting in the stage until the loop's
      // prepare phase while rounds of completions keep coming (one enter for both; a device read
      // that waits there leaves the device's queue short).
      if (ctl_[kCtlStaged] > 0 || HasOwnStaged() || io_uring_sq_ready(&ring_) > 0) FlushStaged(true);
      else io_uring_get_events(&ring_);
    }
    const unsigned n = DrainCq();
    if (n == 0) {
      if (round == 0 && from_wakeup && shape_.count_empty_wakeups) ctl_[kCtlEmptyWakeups]++;
      break;
    }
    ctl_[kCtlCqes] += n;
    napi_value count;
    napi_value result;
    if (napi_create_uint32(env_, n, &count) != napi_ok) break;
    if (napi_make_callback(env_, *async_ctx_, self, fn, 1, &count, &result) != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env_, &pending);
      if (pending) {
        // Same path as an exception thrown by any other event-loop callback.
        napi_value error;
        napi_get_and_clear_last_exception(env_, &error);
        napi_fatal_exception(env_, error);
      }
      break;
    }
  }
  napi_close_handle_scope(env_, scope);
}

void LoopRing::OnPoll(uv_poll_t* handle, int status, int events) {
  static_cast<LoopRing*>(handle->data)->OnReadable();
}

void LoopRing::OnPrepare(uv_prepare_t* handle) {
  LoopRing* r = static_cast<LoopRing*>(handle->data);
  if (r->closed_) return;
  if (!(r->setup_flags_ & IORING_SETUP_DEFER_TASKRUN)) {
    // Completions our submit posts signal the eventfd themselves: the poll delivers them.
    if (r->ctl_[kCtlStaged] > 0 || r->HasOwnStaged() || io_uring_sq_ready(&r->ring_) > 0) r->FlushStaged();
    return;
  }
  // DEFER_TASKRUN: this thread posts every CQE itself, so it knows when some are ready without
  // the eventfd. Notifications stay off while we are awake; completions our submit posts (a
  // send that finished inline, the source side of a MSG_RING) are delivered here at once, not
  // through an eventfd write and another epoll turn. Bounded, then the loop goes round.
  const bool was_quiet = r->evfd_quiet_;
  r->Quiet();
  if (!was_quiet && (r->CompletionWorkPending() || io_uring_cq_ready(&r->ring_) > 0)) {
    // Notifications were on (the loop woke for something else): the kernel may have signalled
    // the eventfd for this work already. It is taken here, so take that signal too, or the poll
    // wakes for nothing. Nothing signals after Quiet, so no later work's signal is lost.
    uint64_t v;
    (void)!read(r->event_fd_, &v, sizeof v);
  }
  for (int turn = 0; turn < kPrepareTurns && !r->closed_; turn++) {
    if (r->ctl_[kCtlStaged] > 0 || r->HasOwnStaged() || io_uring_sq_ready(&r->ring_) > 0 ||
        r->CompletionWorkPending()) {
      r->FlushStaged(true);
    }
    if (io_uring_cq_ready(&r->ring_) == 0) {
      // About to block: notifications back on, then look again for completion work queued
      // while they were off (the kernel signals only when work lands on an empty list, and
      // marks it with IORING_SQ_TASKRUN instead while we are quiet). The fence orders our flag
      // store before that read; the kernel sets the bit with a locked RMW before it reads ours,
      // so either we see the bit or it sees notifications on and signals.
      io_uring_cq_eventfd_toggle(&r->ring_, true);
      r->evfd_quiet_ = false;
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      if (!r->CompletionWorkPending() && io_uring_cq_ready(&r->ring_) == 0) return;
      r->Quiet();
      continue;
    }
    r->Deliver(false);
  }
  if (r->closed_) return;
  // The bound is reached: notifications on (same rule as above), and if work is left, wake the
  // poll ourselves so the rest of the loop (timers, other handles) runs before we come back.
  io_uring_cq_eventfd_toggle(&r->ring_, true);
  r->evfd_quiet_ = false;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (r->CompletionWorkPending() || io_uring_cq_ready(&r->ring_) > 0 || r->ctl_[kCtlStaged] > 0 || r->HasOwnStaged()) {
    eventfd_write(r->event_fd_, 1);
  }
}

Napi::Value LoopRing::Flush(const Napi::CallbackInfo& info) {
  FlushStaged();
  return info.Env().Undefined();
}

Napi::Value LoopRing::Ref(const Napi::CallbackInfo& info) {
  if (!closed_ && !polling_ref_) {
    uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    polling_ref_ = true;
  }
  return info.Env().Undefined();
}

Napi::Value LoopRing::Unref(const Napi::CallbackInfo& info) {
  if (!closed_ && polling_ref_) {
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    polling_ref_ = false;
  }
  return info.Env().Undefined();
}

Napi::Value LoopRing::Close(const Napi::CallbackInfo& info) {
  Teardown();
  return info.Env().Undefined();
}

Napi::Value LoopRing::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "ring is closed");
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", mode_);
  o.Set("setupFlags", setup_flags_);
  o.Set("features", features_);
  o.Set("sqEntries", ring_.sq.ring_entries);
  o.Set("cqEntries", ring_.cq.ring_entries);
  AddInfo(o);
  o.Set("regions", exposed_.Value());
  struct io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  Napi::Uint8Array ops = Napi::Uint8Array::New(env, 256);
  if (probe != nullptr) {
    for (int i = 0; i <= probe->last_op && i < 256; i++) {
      ops[i] = (probe->ops[i].flags & IO_URING_OP_SUPPORTED) ? 1 : 0;
    }
    io_uring_free_probe(probe);
  }
  o.Set("opcodes", ops);
  return o;
}

}  // namespace ringline
