// See wide_ring.h: an SQE128 | CQE32 ring for IORING_OP_URING_CMD passthrough.
#include "wide_ring.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "ring.h"  // ThrowErrno

namespace ringline {

namespace {

// An anonymous, page-rounded mapping owned by the ArrayBuffer handed to JS (unmapped by GC only,
// so a late access from JS after close never touches unmapped memory).
Napi::ArrayBuffer MapExposed(Napi::Env env, size_t visible, void** out) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t len = (visible + page - 1) & ~(page - 1);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) ThrowErrno(env, "mmap", ENOMEM);
  *out = p;
  return Napi::ArrayBuffer::New(
      env, p, visible,
      [](Napi::Env, void* data, size_t* l) {
        munmap(data, *l);
        delete l;
      },
      new size_t(len));
}

}  // namespace

Napi::Function WideRing::Init(Napi::Env env) {
  return DefineClass(env, "WideRing",
                     {
                         InstanceMethod<&WideRing::Flush>("flush"),
                         InstanceMethod<&WideRing::Ref>("ref"),
                         InstanceMethod<&WideRing::Unref>("unref"),
                         InstanceMethod<&WideRing::Close>("close"),
                         InstanceMethod<&WideRing::Info>("info"),
                     });
}

WideRing::WideRing(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WideRing>(info) {
  Napi::Env env = info.Env();
  env_ = env;
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "new WideRing({ entries }, onCompletions)");
  }
  Napi::Value e = info[0].As<Napi::Object>().Get("entries");
  if (!e.IsNumber()) throw Napi::TypeError::New(env, "WideRing option `entries` must be a number");
  const double entries = e.As<Napi::Number>().DoubleValue();
  if (!(entries >= 1 && entries <= 4096) || entries != static_cast<double>(static_cast<unsigned>(entries))) {
    throw Napi::RangeError::New(env, "WideRing option `entries` must be an integer between 1 and 4096");
  }
  on_completions_ = Napi::Persistent(info[1].As<Napi::Function>());
  try {
    Setup(env, static_cast<unsigned>(entries));
  } catch (...) {
    Teardown();
    throw;
  }
}

WideRing::~WideRing() { Teardown(); }

void WideRing::Setup(Napi::Env env, unsigned entries) {
  // Strongest mode first; each fallback exists because older kernels reject the newer flags.
  // Kernels before 5.19 know neither SQE128 nor CQE32 and fail every attempt with EINVAL.
  struct Attempt {
    unsigned flags;
    const char* mode;
  };
  const unsigned wide = IORING_SETUP_SQE128 | IORING_SETUP_CQE32;
  const Attempt attempts[] = {
      {wide | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "defer-taskrun"},
      {wide | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "coop-taskrun"},
      {wide, "plain"},
  };
  int err = 0;
  for (const Attempt& a : attempts) {
    struct io_uring_params p {};
    p.flags = a.flags;
    err = io_uring_queue_init_params(entries, &ring_, &p);
    if (err == 0) {
      setup_flags_ = p.flags;
      features_ = p.features;
      mode_ = a.mode;
      ring_ready_ = true;
      break;
    }
  }
  if (!ring_ready_) ThrowErrno(env, "io_uring_setup", -err);

  stage_cap_ = ring_.sq.ring_entries;
  cq_cap_ = ring_.cq.ring_entries;
  void* p = nullptr;
  Napi::Object exposed = Napi::Object::New(env);
  exposed.Set("ctl", MapExposed(env, kWideCtlWords * 4, &p));
  ctl_ = static_cast<int32_t*>(p);
  exposed.Set("stage", MapExposed(env, stage_cap_ * kWideSqeSize, &p));
  stage_ = static_cast<uint8_t*>(p);
  exposed.Set("cqes", MapExposed(env, cq_cap_ * kWideCqeWords * 4, &p));
  cqes_ = static_cast<int32_t*>(p);
  exposed_ = Napi::Persistent(exposed);

  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) ThrowErrno(env, "eventfd", errno);
  err = io_uring_register_eventfd(&ring_, event_fd_);
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

  async_ctx_ = new Napi::AsyncContext(env, "ringline:wide-completions");
  napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  hook_added_ = true;
}

void WideRing::OnEnvCleanup(void* arg) {
  WideRing* r = static_cast<WideRing*>(arg);
  r->hook_added_ = false;  // being run: nothing to remove
  r->Teardown();
}

// Idempotent. Exiting the ring cancels whatever is still in flight; JS only closes once its op
// table is empty, so no kernel write can land in memory JS already let go.
void WideRing::Teardown() {
  if (closed_) return;
  closed_ = true;
  if (hook_added_) {
    napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
    hook_added_ = false;
  }
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
  if (ring_ready_) {
    if (event_fd_registered_) io_uring_unregister_eventfd(&ring_);
    event_fd_registered_ = false;
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

void WideRing::FlushStaged() {
  if (closed_) return;
  const int staged = ctl_[kWideCtlStaged];
  int copied = 0;
  while (copied < staged) {
    // liburing 2.3 indexes the SQE array with the SQE128 shift, so this is a 128-byte slot.
    struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      ctl_[kWideCtlSqFull]++;
      int r = io_uring_submit(&ring_);
      if (r < 0) {
        ctl_[kWideCtlSubmitErr] = r;
        break;
      }
      ctl_[kWideCtlSubmitted] += r;
      continue;
    }
    memcpy(sqe, stage_ + static_cast<size_t>(copied) * kWideSqeSize, kWideSqeSize);
    copied++;
  }
  if (copied < staged) {
    // The kernel refused to take more (e.g. -EBUSY): keep the rest staged for the next turn.
    memmove(stage_, stage_ + static_cast<size_t>(copied) * kWideSqeSize,
            static_cast<size_t>(staged - copied) * kWideSqeSize);
  }
  ctl_[kWideCtlStaged] = staged - copied;
  if (io_uring_sq_ready(&ring_) > 0) {
    int r = io_uring_submit(&ring_);
    if (r < 0) ctl_[kWideCtlSubmitErr] = r;
    else ctl_[kWideCtlSubmitted] += r;
  }
}

unsigned WideRing::DrainCq() {
  unsigned head;
  unsigned n = 0;
  struct io_uring_cqe* cqe;
  // io_uring_for_each_cqe applies the CQE32 shift: each cqe is followed by big_cqe[2].
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if (n == cq_cap_) break;
    int32_t* out = cqes_ + n * kWideCqeWords;
    out[0] = static_cast<int32_t>(cqe->user_data & 0xffffffffu);
    out[1] = static_cast<int32_t>(cqe->user_data >> 32);
    out[2] = cqe->res;
    out[3] = static_cast<int32_t>(cqe->flags);
    const uint64_t b0 = cqe->big_cqe[0];
    const uint64_t b1 = cqe->big_cqe[1];
    out[4] = static_cast<int32_t>(b0 & 0xffffffffu);
    out[5] = static_cast<int32_t>(b0 >> 32);
    out[6] = static_cast<int32_t>(b1 & 0xffffffffu);
    out[7] = static_cast<int32_t>(b1 >> 32);
    n++;
  }
  io_uring_cq_advance(&ring_, n);
  return n;
}

void WideRing::OnReadable() {
  uint64_t v;
  while (read(event_fd_, &v, sizeof v) > 0) {
  }
  ctl_[kWideCtlWakeups]++;
  // Plain N-API (no C++ wrappers), as in ring.cc: safe while a worker is being terminated.
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return;
  napi_value fn = on_completions_.Value();
  napi_value self = Value();
  for (int round = 0; round < 64 && !closed_; round++) {
    // Under DEFER_TASKRUN/COOP_TASKRUN completions are posted only when this thread enters the
    // kernel; overflowed CQEs are likewise flushed back only on entry.
    const bool overflow = io_uring_cq_has_overflow(&ring_);
    if (overflow) ctl_[kWideCtlOverflow]++;
    if ((setup_flags_ & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN)) || overflow) {
      io_uring_get_events(&ring_);
    }
    const unsigned n = DrainCq();
    if (n == 0) break;
    ctl_[kWideCtlCqes] += n;
    napi_value count;
    napi_value result;
    if (napi_create_uint32(env_, n, &count) != napi_ok) break;
    if (napi_make_callback(env_, *async_ctx_, self, fn, 1, &count, &result) != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env_, &pending);
      if (pending) {
        napi_value error;
        napi_get_and_clear_last_exception(env_, &error);
        napi_fatal_exception(env_, error);
      }
      break;
    }
  }
  napi_close_handle_scope(env_, scope);
}

void WideRing::OnPoll(uv_poll_t* handle, int status, int events) {
  static_cast<WideRing*>(handle->data)->OnReadable();
}

void WideRing::OnPrepare(uv_prepare_t* handle) {
  WideRing* r = static_cast<WideRing*>(handle->data);
  if (r->closed_) return;
  if (r->ctl_[kWideCtlStaged] > 0 || io_uring_sq_ready(&r->ring_) > 0) r->FlushStaged();
}

Napi::Value WideRing::Flush(const Napi::CallbackInfo& info) {
  FlushStaged();
  return info.Env().Undefined();
}

Napi::Value WideRing::Ref(const Napi::CallbackInfo& info) {
  if (!closed_ && !polling_ref_) {
    uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    polling_ref_ = true;
  }
  return info.Env().Undefined();
}

Napi::Value WideRing::Unref(const Napi::CallbackInfo& info) {
  if (!closed_ && polling_ref_) {
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    polling_ref_ = false;
  }
  return info.Env().Undefined();
}

Napi::Value WideRing::Close(const Napi::CallbackInfo& info) {
  Teardown();
  return info.Env().Undefined();
}

Napi::Value WideRing::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "ring is closed");
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", mode_);
  o.Set("setupFlags", setup_flags_);
  o.Set("features", features_);
  o.Set("sqEntries", ring_.sq.ring_entries);
  o.Set("cqEntries", ring_.cq.ring_entries);
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
