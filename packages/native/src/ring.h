// The main io_uring of a JS thread: 64-byte SQEs and 4-word CQEs over the shared loop of
// loop_ring.h, plus what only this ring has:
//   - Provided (recv) buffers, handed back by JS writing their ids into a recycle list.
//   - A send pool and an args region JS points SQEs at, a sparse fixed-file table, an optional
//     SQPOLL mode, and a page-aligned pool registered for READ_FIXED/WRITE_FIXED on request.
#pragma once

#include <liburing.h>
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <set>

#include "loop_ring.h"

namespace ringline {

// The control block is LoopCtlWord's words plus these. Keep both in sync with
// packages/core/src/internal/ring/abi.ts (test/abi.test.ts checks it through abi.cc).
enum CtlWord : int {
  kCtlRecycled = 1,  // buffer ids in the recycle list not yet returned to the buffer ring
};

class Ring : public LoopWrap<Ring> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Ring(const Napi::CallbackInfo& info);
  ~Ring() override;  // Teardown while ReleaseOwn is still Ring's

 private:
  Napi::Value BufferStatus(const Napi::CallbackInfo& info);
  Napi::Value Own(const Napi::CallbackInfo& info);
  Napi::Value Disown(const Napi::CallbackInfo& info);
  Napi::Value RegisterDirectPool(const Napi::CallbackInfo& info);    // storage: O_DIRECT pool
  Napi::Value UnregisterDirectPool(const Napi::CallbackInfo& info);

  void Setup(Napi::Env env, const Napi::Object& opts) override;
  bool HasOwnStaged() const override { return ctl_[kCtlRecycled] > 0; }
  void FlushOwnStaged() override;
  void ReleaseOwn() override;
  void AddInfo(Napi::Object& info) override {
    info.Set("files", files_);
    info.Set("ringFd", ring_.ring_fd);  // the target of IORING_OP_MSG_RING from other threads
  }

  // Shared with JS.
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
};

Napi::Object InitSockets(Napi::Env env, Napi::Object exports);
Napi::Object InitProcess(Napi::Env env, Napi::Object exports);  // process.cc
Napi::Object InitWorkers(Napi::Env env, Napi::Object exports);  // workers.cc

}  // namespace ringline
