// See ring.h for what this ring adds to the shared loop of loop_ring.h.
#include "ring.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ringline {

namespace {

constexpr int kBufGroup = 0;
constexpr unsigned kRegisterPbufStatus = 26;  // IORING_REGISTER_PBUF_STATUS (6.8+), not in liburing 2.3

struct PbufStatus {
  uint32_t buf_group;
  uint32_t head;
  uint32_t resv[8];
};

uint32_t GetU32(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) {
    throw Napi::TypeError::New(o.Env(), std::string("ring option `") + key + "` must be a number");
  }
  return v.As<Napi::Number>().Uint32Value();
}

}  // namespace

Napi::Function Ring::Init(Napi::Env env) {
  return Define(env, "Ring",
                {
                    InstanceMethod<&Ring::BufferStatus>("bufferStatus"),
                    InstanceMethod<&Ring::Own>("own"),
                    InstanceMethod<&Ring::Disown>("disown"),
                    InstanceMethod<&Ring::RegisterDirectPool>("registerDirectPool"),
                    InstanceMethod<&Ring::UnregisterDirectPool>("unregisterDirectPool"),
                });
}

Ring::Ring(const Napi::CallbackInfo& info)
    : LoopWrap(info, {.sqe_bytes = 64, .cqe_words = 4, .count_empty_wakeups = true,
                      .async_name = "ringline:completions"}) {
  Construct(info, "new Ring(options, onCompletions)");
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

  OpenRing(env, {.sq_entries = sq_entries,
                 .cq_entries = cq_entries,
                 .flags = IORING_SETUP_CQSIZE,
                 .sqpoll = sqpoll,
                 .sqpoll_idle_ms = sqpoll_idle});

  // The caps are the sizes asked for, which JS also knows, rather than the kernel's rounding.
  Napi::Object exposed = MapLoopRegions(env, sq_entries, cq_entries);
  recycle_ = static_cast<int32_t*>(MapExposed(env, exposed, "recycle", buf_count_ * 4));
  const size_t bufs_bytes = static_cast<size_t>(buf_count_) * buf_size_;
  recv_bufs_ = static_cast<uint8_t*>(MapExposed(env, exposed, "recvBuffers", bufs_bytes));
  void* send = MapExposed(env, exposed, "sendPool", send_bytes);
  void* args = MapExposed(env, exposed, "args", arg_bytes);
  // JS writes absolute addresses into SQEs; x86-64/arm64 user addresses fit in 2^53.
  exposed.Set("sendPoolBase", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(send))));
  exposed.Set("argsBase", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(args))));
  exposed.Set("recvBuffersBase", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(recv_bufs_))));

  // Provided-buffer ring, mapped and registered by hand (liburing 2.3 has no setup helper).
  buf_ring_mem_ = MapRegion(buf_count_ * sizeof(struct io_uring_buf));
  if (buf_ring_mem_.ptr == nullptr) ThrowErrno(env, "mmap", ENOMEM);
  buf_ring_ = static_cast<struct io_uring_buf_ring*>(buf_ring_mem_.ptr);
  struct io_uring_buf_reg reg {};
  reg.ring_addr = reinterpret_cast<uintptr_t>(buf_ring_);
  reg.ring_entries = buf_count_;
  reg.bgid = kBufGroup;
  int err = io_uring_register_buf_ring(&ring_, &reg, 0);
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

  StartLoop(env);
}

void Ring::ReleaseOwn() {
  if (buf_ring_registered_) io_uring_unregister_buf_ring(&ring_, kBufGroup);
  buf_ring_registered_ = false;
  if (direct_pool_registered_) io_uring_unregister_buffers(&ring_);
  direct_pool_registered_ = false;
  // Unregistered above, so the kernel no longer reads it.
  if (buf_ring_mem_.ptr != nullptr) {
    munmap(buf_ring_mem_.ptr, buf_ring_mem_.len);
    buf_ring_mem_ = Region{};
  }
  for (int fd : owned_fds_) ::close(fd);
  owned_fds_.clear();
}

// Returns recycled buffers to the kernel in the same loop turn that submits the staged SQEs.
void Ring::FlushOwnStaged() {
  const int recycled = ctl_[kCtlRecycled];
  if (recycled <= 0) return;
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
