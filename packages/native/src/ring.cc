// See ring.h for the shape of the JS <-> ring protocol.
#include "ring.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ringline {

namespace {

constexpr int kBufGroup = 0;
constexpr unsigned kRegisterPbufStatus = 26;  // IORING_REGISTER_PBUF_STATUS (6.8+), not in liburing 2.3

struct PbufStatus {
  uint32_t buf_group;
  uint32_t head;
  uint32_t resv[8];
};

Region MapRegion(size_t len) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  len = (len + page - 1) & ~(page - 1);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Region{};
  return Region{p, len};
}

// The ArrayBuffer owns the mapping: it is unmapped only when JS can no longer reach it.
Napi::ArrayBuffer Expose(Napi::Env env, Region r, size_t visible) {
  return Napi::ArrayBuffer::New(
      env, r.ptr, visible,
      [](Napi::Env, void* data, size_t* len) {
        munmap(data, *len);
        delete len;
      },
      new size_t(r.len));
}

uint32_t GetU32(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) {
    throw Napi::TypeError::New(o.Env(), std::string("ring option `") + key + "` must be a number");
  }
  return v.As<Napi::Number>().Uint32Value();
}

}  // namespace

void ThrowErrno(Napi::Env env, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  throw e;
}

Napi::Function Ring::Init(Napi::Env env) {
  return DefineClass(env, "Ring",
                     {
                         InstanceMethod<&Ring::Flush>("flush"),
                         InstanceMethod<&Ring::Ref>("ref"),
                         InstanceMethod<&Ring::Unref>("unref"),
                         InstanceMethod<&Ring::Close>("close"),
                         InstanceMethod<&Ring::Info>("info"),
                         InstanceMethod<&Ring::BufferStatus>("bufferStatus"),
                         InstanceMethod<&Ring::Own>("own"),
                         InstanceMethod<&Ring::Disown>("disown"),
                         InstanceMethod<&Ring::RegisterDirectPool>("registerDirectPool"),
                         InstanceMethod<&Ring::UnregisterDirectPool>("unregisterDirectPool"),
                     });
}

Ring::Ring(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Ring>(info) {
  Napi::Env env = info.Env();
  env_ = env;
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "new Ring(options, onCompletions)");
  }
  on_completions_ = Napi::Persistent(info[1].As<Napi::Function>());
  try {
    Setup(env, info[0].As<Napi::Object>());
  } catch (...) {
    Teardown();
    throw;
  }
}

Ring::~Ring() { Teardown(); }

void Ring::Setup(Napi::Env env, const Napi::Object& opts) {
  const unsigned sq_entries = GetU32(opts, "sqEntries");
  const unsigned cq_entries = GetU32(opts, "cqEntries");
  buf_count_ = GetU32(opts, "bufferCount");
  buf_size_ = GetU32(opts, "bufferSize");
  files_ = GetU32(opts, "files");
  const unsigned send_bytes = GetU32(opts, "sendPoolBytes");
  const unsigned arg_bytes = GetU32(opts, "argBytes");
  const bool sqpoll = opts.Get("sqpoll").ToBoolean();
  const unsigned sqpoll_idle = GetU32(opts, "sqpollIdleMs");
  if (buf_count_ == 0 || (buf_count_ & (buf_count_ - 1)) != 0 || buf_count_ > 32768) {
    throw Napi::RangeError::New(env, "bufferCount must be a power of two <= 32768");
  }

  // Strongest mode first; each fallback exists because older kernels reject the newer flags.
  struct Attempt {
    unsigned flags;
    const char* mode;
  };
  const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  Attempt attempts[3];
  int n_attempts = 0;
  if (sqpoll) {
    attempts[n_attempts++] = {base | IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER, "sqpoll"};
    attempts[n_attempts++] = {base | IORING_SETUP_SQPOLL, "sqpoll"};
  } else {
    attempts[n_attempts++] = {base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                              "defer-taskrun"};
    attempts[n_attempts++] = {base | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
                              "coop-taskrun"};
  }
  attempts[n_attempts++] = {IORING_SETUP_CQSIZE, "plain"};
  int err = 0;
  for (int i = 0; i < n_attempts; i++) {
    struct io_uring_params p {};
    p.flags = attempts[i].flags;
    p.cq_entries = cq_entries;
    if (p.flags & IORING_SETUP_SQPOLL) p.sq_thread_idle = sqpoll_idle;
    err = io_uring_queue_init_params(sq_entries, &ring_, &p);
    if (err == 0) {
      setup_flags_ = p.flags;
      features_ = p.features;
      mode_ = attempts[i].mode;
      ring_ready_ = true;
      break;
    }
  }
  if (!ring_ready_) ThrowErrno(env, "io_uring_setup", -err);

  // Regions shared with JS.
  Region ctl = MapRegion(kCtlWords * 4);
  stage_cap_ = sq_entries;
  Region stage = MapRegion(stage_cap_ * kSqeSize);
  cq_cap_ = cq_entries;
  Region cqes = MapRegion(cq_cap_ * kCqeWords * 4);
  Region recycle = MapRegion(buf_count_ * 4);
  Region bufs = MapRegion(static_cast<size_t>(buf_count_) * buf_size_);
  Region send = MapRegion(send_bytes);
  Region args = MapRegion(arg_bytes);
  for (Region* r : {&ctl, &stage, &cqes, &recycle, &bufs, &send, &args}) {
    if (r->ptr == nullptr) ThrowErrno(env, "mmap", ENOMEM);
  }
  ctl_ = static_cast<int32_t*>(ctl.ptr);
  stage_ = static_cast<uint8_t*>(stage.ptr);
  cqes_ = static_cast<int32_t*>(cqes.ptr);
  recycle_ = static_cast<int32_t*>(recycle.ptr);
  recv_bufs_ = static_cast<uint8_t*>(bufs.ptr);
  Napi::Object exposed = Napi::Object::New(env);
  exposed.Set("ctl", Expose(env, ctl, kCtlWords * 4));
  exposed.Set("stage", Expose(env, stage, stage_cap_ * kSqeSize));
  exposed.Set("cqes", Expose(env, cqes, cq_cap_ * kCqeWords * 4));
  exposed.Set("recycle", Expose(env, recycle, buf_count_ * 4));
  exposed.Set("recvBuffers", Expose(env, bufs, static_cast<size_t>(buf_count_) * buf_size_));
  exposed.Set("sendPool", Expose(env, send, send_bytes));
  exposed.Set("args", Expose(env, args, arg_bytes));
  // JS writes absolute addresses into SQEs; x86-64/arm64 user addresses fit in 2^53.
  exposed.Set("sendPoolBase", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(send.ptr))));
  exposed.Set("argsBase", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(args.ptr))));
  exposed.Set("recvBuffersBase", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(bufs.ptr))));
  exposed_ = Napi::Persistent(exposed);

  // Provided-buffer ring, mapped and registered by hand (liburing 2.3 has no setup helper).
  buf_ring_mem_ = MapRegion(buf_count_ * sizeof(struct io_uring_buf));
  if (buf_ring_mem_.ptr == nullptr) ThrowErrno(env, "mmap", ENOMEM);
  buf_ring_ = static_cast<struct io_uring_buf_ring*>(buf_ring_mem_.ptr);
  struct io_uring_buf_reg reg {};
  reg.ring_addr = reinterpret_cast<uintptr_t>(buf_ring_);
  reg.ring_entries = buf_count_;
  reg.bgid = kBufGroup;
  err = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (err != 0) ThrowErrno(env, "io_uring_register_buf_ring", -err);
  buf_ring_registered_ = true;
  io_uring_buf_ring_init(buf_ring_);
  const int mask = io_uring_buf_ring_mask(buf_count_);
  for (unsigned i = 0; i < buf_count_; i++) {
    io_uring_buf_ring_add(buf_ring_, recv_bufs_ + static_cast<size_t>(i) * buf_size_, buf_size_, i,
                          mask, i);
  }
  io_uring_buf_ring_advance(buf_ring_, buf_count_);

  if (files_ > 0) {
    err = io_uring_register_files_sparse(&ring_, files_);
    if (err != 0) ThrowErrno(env, "io_uring_register_files_sparse", -err);
  }

  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) ThrowErrno(env, "eventfd", errno);
  err = io_uring_register_eventfd(&ring_, event_fd_);
  if (err != 0) ThrowErrno(env, "io_uring_register_eventfd", -err);

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

  async_ctx_ = new Napi::AsyncContext(env, "ringline:completions");
  napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
}

void Ring::OnEnvCleanup(void* arg) { static_cast<Ring*>(arg)->Teardown(); }

void Ring::Teardown() {
  if (closed_) return;
  closed_ = true;
  if (env_ != nullptr && ring_ready_) napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
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
    if (event_fd_ >= 0) io_uring_unregister_eventfd(&ring_);
    if (buf_ring_registered_) io_uring_unregister_buf_ring(&ring_, kBufGroup);
    if (direct_pool_registered_) io_uring_unregister_buffers(&ring_);
    direct_pool_registered_ = false;
    // Exiting the ring cancels whatever is still in flight and drops every fixed file.
    io_uring_queue_exit(&ring_);
    ring_ready_ = false;
  }
  if (buf_ring_mem_.ptr != nullptr) {
    munmap(buf_ring_mem_.ptr, buf_ring_mem_.len);
    buf_ring_mem_ = Region{};
  }
  if (event_fd_ >= 0) {
    ::close(event_fd_);
    event_fd_ = -1;
  }
  for (int fd : owned_fds_) ::close(fd);
  owned_fds_.clear();
  delete async_ctx_;
  async_ctx_ = nullptr;
}

// Copies staged SQEs into the SQ and returns recycled buffers, then submits: one syscall per
// loop turn however many operations JS queued.
void Ring::FlushStaged() {
  if (closed_) return;
  const int recycled = ctl_[kCtlRecycled];
  if (recycled > 0) {
    const int mask = io_uring_buf_ring_mask(buf_count_);
    int added = 0;
    for (int i = 0; i < recycled; i++) {
      const uint32_t bid = static_cast<uint32_t>(recycle_[i]);
      if (bid >= buf_count_) continue;  // never hand the kernel memory outside the pool
      io_uring_buf_ring_add(buf_ring_, recv_bufs_ + static_cast<size_t>(bid) * buf_size_, buf_size_,
                            bid, mask, added++);
    }
    io_uring_buf_ring_advance(buf_ring_, added);
    ctl_[kCtlRecycled] = 0;
  }
  const int staged = ctl_[kCtlStaged];
  int copied = 0;
  while (copied < staged) {
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
    memcpy(sqe, stage_ + static_cast<size_t>(copied) * kSqeSize, kSqeSize);
    copied++;
  }
  if (copied < staged) {
    // The kernel refused to take more (e.g. -EBUSY): keep the rest staged for the next turn.
    memmove(stage_, stage_ + static_cast<size_t>(copied) * kSqeSize,
            static_cast<size_t>(staged - copied) * kSqeSize);
  }
  ctl_[kCtlStaged] = staged - copied;
  if (io_uring_sq_ready(&ring_) > 0) {
    int r = io_uring_submit(&ring_);
    if (r < 0) ctl_[kCtlSubmitErr] = r;
    else ctl_[kCtlSubmitted] += r;
  }
}

unsigned Ring::DrainCq() {
  unsigned head;
  unsigned n = 0;
  struct io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if (n == cq_cap_) break;
    int32_t* out = cqes_ + n * kCqeWords;
    out[0] = static_cast<int32_t>(cqe->user_data & 0xffffffffu);
    out[1] = static_cast<int32_t>(cqe->user_data >> 32);
    out[2] = cqe->res;
    out[3] = static_cast<int32_t>(cqe->flags);
    n++;
  }
  io_uring_cq_advance(&ring_, n);
  return n;
}

void Ring::OnReadable() {
  uint64_t v;
  while (read(event_fd_, &v, sizeof v) > 0) {
  }
  ctl_[kCtlWakeups]++;
  // Plain N-API here, no C++ wrappers: while a worker is being terminated JS cannot run, and the
  // wrappers would try to build Error objects for that, which aborts the process.
  napi_handle_scope scope;
  if (napi_open_handle_scope(env_, &scope) != napi_ok) return;
  napi_value fn = on_completions_.Value();
  napi_value self = Value();
  // Bounded so that a peer flooding us cannot starve the rest of the event loop.
  for (int round = 0; round < 64 && !closed_; round++) {
    // Under DEFER_TASKRUN/COOP_TASKRUN completions are posted only when this thread enters the
    // kernel; overflowed CQEs are likewise flushed back only on entry.
    const bool overflow = io_uring_cq_has_overflow(&ring_);
    if (overflow) ctl_[kCtlOverflow]++;
    if ((setup_flags_ & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN)) || overflow) {
      io_uring_get_events(&ring_);
    }
    const unsigned n = DrainCq();
    if (n == 0) {
      if (round == 0) ctl_[kCtlEmptyWakeups]++;
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

void Ring::OnPoll(uv_poll_t* handle, int status, int events) {
  static_cast<Ring*>(handle->data)->OnReadable();
}

void Ring::OnPrepare(uv_prepare_t* handle) {
  Ring* r = static_cast<Ring*>(handle->data);
  if (r->closed_) return;
  if (r->ctl_[kCtlStaged] > 0 || r->ctl_[kCtlRecycled] > 0 || io_uring_sq_ready(&r->ring_) > 0) {
    r->FlushStaged();
  }
}

Napi::Value Ring::Flush(const Napi::CallbackInfo& info) {
  FlushStaged();
  return info.Env().Undefined();
}

Napi::Value Ring::Ref(const Napi::CallbackInfo& info) {
  if (!closed_ && !polling_ref_) {
    uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    polling_ref_ = true;
  }
  return info.Env().Undefined();
}

Napi::Value Ring::Unref(const Napi::CallbackInfo& info) {
  if (!closed_ && polling_ref_) {
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    polling_ref_ = false;
  }
  return info.Env().Undefined();
}

Napi::Value Ring::Close(const Napi::CallbackInfo& info) {
  Teardown();
  return info.Env().Undefined();
}

Napi::Value Ring::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "ring is closed");
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", mode_);
  o.Set("setupFlags", setup_flags_);
  o.Set("features", features_);
  o.Set("sqEntries", ring_.sq.ring_entries);
  o.Set("cqEntries", ring_.cq.ring_entries);
  o.Set("files", files_);
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

Napi::Value Ring::Own(const Napi::CallbackInfo& info) {
  owned_fds_.insert(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value Ring::Disown(const Napi::CallbackInfo& info) {
  owned_fds_.erase(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// registerDirectPool(bytes) -> { buffer, base }: a page-aligned anonymous mapping (so any
// O_DIRECT memory alignment up to the page size holds), registered as fixed buffer 0 for
// READ_FIXED/WRITE_FIXED. One pool per ring (the kernel has one buffer table): EBUSY otherwise.
Napi::Value Ring::RegisterDirectPool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "ring is closed");
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "registerDirectPool(bytes)");
  const double want = info[0].As<Napi::Number>().DoubleValue();
  if (!(want >= 1 && want <= 1073741824.0)) {
    throw Napi::RangeError::New(env, "direct pool size must be between 1 byte and 1 GiB");
  }
  if (direct_pool_registered_) ThrowErrno(env, "io_uring_register_buffers", EBUSY);
  const size_t bytes = static_cast<size_t>(want);
  Region r = MapRegion(bytes);
  if (r.ptr == nullptr) ThrowErrno(env, "mmap", ENOMEM);
  struct iovec iov {};
  iov.iov_base = r.ptr;
  iov.iov_len = r.len;
  int err = io_uring_register_buffers(&ring_, &iov, 1);
  if (err != 0) {
    munmap(r.ptr, r.len);
    ThrowErrno(env, "io_uring_register_buffers", -err);
  }
  direct_pool_registered_ = true;
  Napi::ArrayBuffer buf = Expose(env, r, r.len);
  direct_pool_ = Napi::Persistent(buf);
  Napi::Object o = Napi::Object::New(env);
  o.Set("buffer", buf);
  o.Set("base", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(r.ptr))));
  return o;
}

// Drops the registration (no READ_FIXED/WRITE_FIXED may be in flight); the memory lives on
// until JS lets go of the ArrayBuffer.
Napi::Value Ring::UnregisterDirectPool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!closed_ && direct_pool_registered_) {
    int err = io_uring_unregister_buffers(&ring_);
    if (err != 0) ThrowErrno(env, "io_uring_unregister_buffers", -err);
    direct_pool_registered_ = false;
    direct_pool_.Reset();
  }
  return env.Undefined();
}

// How many provided buffers the kernel has consumed (IORING_REGISTER_PBUF_STATUS); lets tests
// prove that every buffer went back to the ring.
Napi::Value Ring::BufferStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "ring is closed");
  PbufStatus st {};
  st.buf_group = kBufGroup;
  int r = io_uring_register(ring_.ring_fd, kRegisterPbufStatus, &st, 1);
  if (r < 0) ThrowErrno(env, "io_uring_register(PBUF_STATUS)", -r);
  Napi::Object o = Napi::Object::New(env);
  o.Set("head", st.head & 0xffff);
  o.Set("tail", static_cast<uint32_t>(buf_ring_->tail));
  o.Set("available", static_cast<uint32_t>((buf_ring_->tail - st.head) & 0xffff));
  return o;
}

}  // namespace ringline
