// Exports `abi`: the values JS must agree with, taken from where the addon takes them: liburing's
// <liburing/io_uring.h> (opcodes, flags), offsetof on its struct io_uring_sqe / io_uring_cqe, the
// control-word enums of loop_ring.h and ring.h, and the CQE copy format of LoopRing::Drain.
//
// liburing 2.3's header stops at IORING_OP_SENDMSG_ZC (Linux 6.1). The few newer values ringline
// uses are written once below from the kernel's uapi header, next to a check that the header's
// enum still ends where they continue it.
#include "abi.h"

#include <liburing.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "loop_ring.h"
#include "ring.h"

namespace ringline {
namespace {

// uapi <linux/io_uring.h> values newer than liburing 2.3's copy of it.
constexpr unsigned kOpWaitid = 50;          // IORING_OP_WAITID, Linux 6.5
constexpr unsigned kOpFixedFdInstall = 54;  // IORING_OP_FIXED_FD_INSTALL, Linux 6.8
constexpr unsigned kOpFtruncate = 55;       // IORING_OP_FTRUNCATE, Linux 6.9
constexpr unsigned kSocketUringOpSetsockopt = 3;  // SOCKET_URING_OP_SETSOCKOPT, Linux 6.7
constexpr unsigned kNopInjectResult = 1u << 0;     // IORING_NOP_INJECT_RESULT (sqe->nop_flags), Linux 6.10
static_assert(IORING_OP_SENDMSG_ZC == 48, "liburing's opcode enum moved: recheck the values above");

void Set(Napi::Env env, Napi::Object& o, const char* name, double value) {
  o.Set(name, Napi::Number::New(env, value));
}

// prepSqe(name, args): a zeroed SQE filled by liburing's io_uring_prep_<name>(sqe, ...args), so a
// test can compare JS's prep helpers with liburing's byte for byte. Addresses are numbers.
Napi::Value PrepSqe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info[0].As<Napi::String>();
  const Napi::Array a = info[1].As<Napi::Array>();
  auto n = [&](uint32_t i) { return a.Get(i).As<Napi::Number>().DoubleValue(); };
  auto i32 = [&](uint32_t i) { return static_cast<int>(n(i)); };
  auto u32 = [&](uint32_t i) { return static_cast<unsigned>(static_cast<int64_t>(n(i))); };
  auto u64 = [&](uint32_t i) { return static_cast<uint64_t>(static_cast<int64_t>(n(i))); };
  auto ptr = [&](uint32_t i) { return reinterpret_cast<void*>(static_cast<uintptr_t>(n(i))); };
  auto str = [&](uint32_t i) { return static_cast<const char*>(ptr(i)); };
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, sizeof(io_uring_sqe));
  auto* sqe = static_cast<io_uring_sqe*>(out.Data());
  memset(sqe, 0, sizeof(*sqe));
  if (name == "rw") io_uring_prep_rw(i32(0), sqe, i32(1), ptr(2), u32(3), u64(4));
  else if (name == "nop") io_uring_prep_nop(sqe);
  else if (name == "read") io_uring_prep_read(sqe, i32(0), ptr(1), u32(2), u64(3));
  else if (name == "write") io_uring_prep_write(sqe, i32(0), ptr(1), u32(2), u64(3));
  else if (name == "readv") io_uring_prep_readv(sqe, i32(0), static_cast<const iovec*>(ptr(1)), u32(2), u64(3));
  else if (name == "writev") io_uring_prep_writev(sqe, i32(0), static_cast<const iovec*>(ptr(1)), u32(2), u64(3));
  else if (name == "readFixed") io_uring_prep_read_fixed(sqe, i32(0), ptr(1), u32(2), u64(3), i32(4));
  else if (name == "writeFixed") io_uring_prep_write_fixed(sqe, i32(0), ptr(1), u32(2), u64(3), i32(4));
  else if (name == "fsync") io_uring_prep_fsync(sqe, i32(0), u32(1));
  else if (name == "fallocate") io_uring_prep_fallocate(sqe, i32(0), i32(1), static_cast<off_t>(n(2)), static_cast<off_t>(n(3)));
  else if (name == "openat") io_uring_prep_openat(sqe, i32(0), str(1), i32(2), u32(3));
  else if (name == "openatDirect") io_uring_prep_openat_direct(sqe, i32(0), str(1), i32(2), u32(3), u32(4));
  else if (name == "close") io_uring_prep_close(sqe, i32(0));
  else if (name == "closeDirect") io_uring_prep_close_direct(sqe, u32(0));
  else if (name == "statx") io_uring_prep_statx(sqe, i32(0), str(1), i32(2), u32(3), static_cast<struct statx*>(ptr(4)));
  else if (name == "renameat") io_uring_prep_renameat(sqe, i32(0), str(1), i32(2), str(3), u32(4));
  else if (name == "unlinkat") io_uring_prep_unlinkat(sqe, i32(0), str(1), i32(2));
  else if (name == "mkdirat") io_uring_prep_mkdirat(sqe, i32(0), str(1), u32(2));
  else if (name == "symlinkat") io_uring_prep_symlinkat(sqe, str(0), i32(1), str(2));
  else if (name == "linkat") io_uring_prep_linkat(sqe, i32(0), str(1), i32(2), str(3), i32(4));
  else if (name == "timeout") io_uring_prep_timeout(sqe, static_cast<__kernel_timespec*>(ptr(0)), u32(1), u32(2));
  else if (name == "pollAdd") io_uring_prep_poll_add(sqe, i32(0), u32(1));
  else if (name == "send") io_uring_prep_send(sqe, i32(0), ptr(1), u32(2), i32(3));
  else if (name == "sendZc") io_uring_prep_send_zc(sqe, i32(0), ptr(1), u32(2), i32(3), u32(4));
  else if (name == "sendmsg") io_uring_prep_sendmsg(sqe, i32(0), static_cast<const msghdr*>(ptr(1)), u32(2));
  else if (name == "sendmsgZc") io_uring_prep_sendmsg_zc(sqe, i32(0), static_cast<const msghdr*>(ptr(1)), u32(2));
  else if (name == "recv") io_uring_prep_recv(sqe, i32(0), ptr(1), u32(2), i32(3));
  else if (name == "recvMultishot") io_uring_prep_recv_multishot(sqe, i32(0), ptr(1), u32(2), i32(3));
  else if (name == "shutdown") io_uring_prep_shutdown(sqe, i32(0), i32(1));
  else if (name == "accept") io_uring_prep_accept(sqe, i32(0), static_cast<sockaddr*>(ptr(1)), static_cast<socklen_t*>(ptr(2)), i32(3));
  else if (name == "acceptDirect") io_uring_prep_accept_direct(sqe, i32(0), static_cast<sockaddr*>(ptr(1)), static_cast<socklen_t*>(ptr(2)), i32(3), u32(4));
  else if (name == "multishotAcceptDirect") io_uring_prep_multishot_accept_direct(sqe, i32(0), static_cast<sockaddr*>(ptr(1)), static_cast<socklen_t*>(ptr(2)), i32(3));
  else if (name == "connect") io_uring_prep_connect(sqe, i32(0), static_cast<const sockaddr*>(ptr(1)), u32(2));
  else if (name == "socketDirectAlloc") io_uring_prep_socket_direct_alloc(sqe, i32(0), i32(1), i32(2), u32(3));
  else if (name == "linkTimeout") io_uring_prep_link_timeout(sqe, static_cast<__kernel_timespec*>(ptr(0)), u32(1));
  else throw Napi::Error::New(env, "prepSqe: no liburing helper named " + name);
  return out;
}

}  // namespace

Napi::Object InitAbi(Napi::Env env, Napi::Object exports) {
  Napi::Object abi = Napi::Object::New(env);

  Napi::Object op = Napi::Object::New(env);
  Set(env, op, "NOP", IORING_OP_NOP);
  Set(env, op, "READV", IORING_OP_READV);
  Set(env, op, "WRITEV", IORING_OP_WRITEV);
  Set(env, op, "FSYNC", IORING_OP_FSYNC);
  Set(env, op, "READ_FIXED", IORING_OP_READ_FIXED);
  Set(env, op, "WRITE_FIXED", IORING_OP_WRITE_FIXED);
  Set(env, op, "POLL_ADD", IORING_OP_POLL_ADD);
  Set(env, op, "SENDMSG", IORING_OP_SENDMSG);
  Set(env, op, "RECVMSG", IORING_OP_RECVMSG);
  Set(env, op, "TIMEOUT", IORING_OP_TIMEOUT);
  Set(env, op, "ACCEPT", IORING_OP_ACCEPT);
  Set(env, op, "ASYNC_CANCEL", IORING_OP_ASYNC_CANCEL);
  Set(env, op, "LINK_TIMEOUT", IORING_OP_LINK_TIMEOUT);
  Set(env, op, "CONNECT", IORING_OP_CONNECT);
  Set(env, op, "FALLOCATE", IORING_OP_FALLOCATE);
  Set(env, op, "OPENAT", IORING_OP_OPENAT);
  Set(env, op, "CLOSE", IORING_OP_CLOSE);
  Set(env, op, "STATX", IORING_OP_STATX);
  Set(env, op, "READ", IORING_OP_READ);
  Set(env, op, "WRITE", IORING_OP_WRITE);
  Set(env, op, "SEND", IORING_OP_SEND);
  Set(env, op, "RECV", IORING_OP_RECV);
  Set(env, op, "SHUTDOWN", IORING_OP_SHUTDOWN);
  Set(env, op, "RENAMEAT", IORING_OP_RENAMEAT);
  Set(env, op, "UNLINKAT", IORING_OP_UNLINKAT);
  Set(env, op, "MKDIRAT", IORING_OP_MKDIRAT);
  Set(env, op, "SYMLINKAT", IORING_OP_SYMLINKAT);
  Set(env, op, "LINKAT", IORING_OP_LINKAT);
  Set(env, op, "SOCKET", IORING_OP_SOCKET);
  Set(env, op, "URING_CMD", IORING_OP_URING_CMD);
  Set(env, op, "SEND_ZC", IORING_OP_SEND_ZC);
  Set(env, op, "SENDMSG_ZC", IORING_OP_SENDMSG_ZC);
  Set(env, op, "WAITID", kOpWaitid);
  Set(env, op, "FIXED_FD_INSTALL", kOpFixedFdInstall);
  Set(env, op, "FTRUNCATE", kOpFtruncate);
  abi.Set("op", op);

  Napi::Object sqe_flag = Napi::Object::New(env);
  Set(env, sqe_flag, "FIXED_FILE", IOSQE_FIXED_FILE);
  Set(env, sqe_flag, "IO_DRAIN", IOSQE_IO_DRAIN);
  Set(env, sqe_flag, "IO_LINK", IOSQE_IO_LINK);
  Set(env, sqe_flag, "IO_HARDLINK", IOSQE_IO_HARDLINK);
  Set(env, sqe_flag, "ASYNC", IOSQE_ASYNC);
  Set(env, sqe_flag, "BUFFER_SELECT", IOSQE_BUFFER_SELECT);
  Set(env, sqe_flag, "CQE_SKIP_SUCCESS", IOSQE_CQE_SKIP_SUCCESS);
  abi.Set("sqeFlag", sqe_flag);

  Napi::Object cqe_flag = Napi::Object::New(env);
  Set(env, cqe_flag, "BUFFER", IORING_CQE_F_BUFFER);
  Set(env, cqe_flag, "MORE", IORING_CQE_F_MORE);
  Set(env, cqe_flag, "SOCK_NONEMPTY", IORING_CQE_F_SOCK_NONEMPTY);
  Set(env, cqe_flag, "NOTIF", IORING_CQE_F_NOTIF);
  abi.Set("cqeFlag", cqe_flag);

  Napi::Object setup = Napi::Object::New(env);
  Set(env, setup, "SQPOLL", IORING_SETUP_SQPOLL);
  Set(env, setup, "CQSIZE", IORING_SETUP_CQSIZE);
  Set(env, setup, "SUBMIT_ALL", IORING_SETUP_SUBMIT_ALL);
  Set(env, setup, "COOP_TASKRUN", IORING_SETUP_COOP_TASKRUN);
  Set(env, setup, "TASKRUN_FLAG", IORING_SETUP_TASKRUN_FLAG);
  Set(env, setup, "SQE128", IORING_SETUP_SQE128);
  Set(env, setup, "CQE32", IORING_SETUP_CQE32);
  Set(env, setup, "SINGLE_ISSUER", IORING_SETUP_SINGLE_ISSUER);
  Set(env, setup, "DEFER_TASKRUN", IORING_SETUP_DEFER_TASKRUN);
  abi.Set("setupFlag", setup);

  Napi::Object values = Napi::Object::New(env);
  Set(env, values, "CQE_BUFFER_SHIFT", IORING_CQE_BUFFER_SHIFT);
  Set(env, values, "IOPRIO_ACCEPT_MULTISHOT", IORING_ACCEPT_MULTISHOT);
  Set(env, values, "IOPRIO_RECV_MULTISHOT", IORING_RECV_MULTISHOT);
  Set(env, values, "FILE_INDEX_ALLOC", static_cast<int32_t>(IORING_FILE_INDEX_ALLOC));
  Set(env, values, "FSYNC_DATASYNC", IORING_FSYNC_DATASYNC);
  Set(env, values, "TIMEOUT_ABS", IORING_TIMEOUT_ABS);
  Set(env, values, "SOCKET_URING_OP_SETSOCKOPT", kSocketUringOpSetsockopt);
  Set(env, values, "NOP_INJECT_RESULT", kNopInjectResult);
  Set(env, values, "MSG_NOSIGNAL", MSG_NOSIGNAL);
  Set(env, values, "SQE_BYTES", sizeof(io_uring_sqe));
  Set(env, values, "SQE128_BYTES", 2 * sizeof(io_uring_sqe));
  // LoopRing::Drain copies each CQE as Int32 words: user_data lo/hi, res, flags (+ big_cqe).
  Set(env, values, "CQE_WORDS", sizeof(io_uring_cqe) / 4);
  Set(env, values, "CQE32_WORDS", (sizeof(io_uring_cqe) + 2 * sizeof(uint64_t)) / 4);
  abi.Set("values", values);

  Napi::Object sqe = Napi::Object::New(env);
  Set(env, sqe, "opcode", offsetof(io_uring_sqe, opcode));
  Set(env, sqe, "flags", offsetof(io_uring_sqe, flags));
  Set(env, sqe, "ioprio", offsetof(io_uring_sqe, ioprio));
  Set(env, sqe, "fd", offsetof(io_uring_sqe, fd));
  Set(env, sqe, "off", offsetof(io_uring_sqe, off));
  Set(env, sqe, "addr", offsetof(io_uring_sqe, addr));
  Set(env, sqe, "len", offsetof(io_uring_sqe, len));
  Set(env, sqe, "opFlags", offsetof(io_uring_sqe, rw_flags));
  Set(env, sqe, "userData", offsetof(io_uring_sqe, user_data));
  Set(env, sqe, "bufIndex", offsetof(io_uring_sqe, buf_index));
  Set(env, sqe, "personality", offsetof(io_uring_sqe, personality));
  Set(env, sqe, "fileIndex", offsetof(io_uring_sqe, file_index));
  Set(env, sqe, "addr3", offsetof(io_uring_sqe, addr3));
  abi.Set("sqeOffset", sqe);

  Napi::Object cqe = Napi::Object::New(env);
  Set(env, cqe, "userData", offsetof(io_uring_cqe, user_data));
  Set(env, cqe, "res", offsetof(io_uring_cqe, res));
  Set(env, cqe, "flags", offsetof(io_uring_cqe, flags));
  Set(env, cqe, "bigCqe", offsetof(io_uring_cqe, big_cqe));
  abi.Set("cqeOffset", cqe);

  Napi::Object ctl = Napi::Object::New(env);
  Set(env, ctl, "staged", kCtlStaged);
  Set(env, ctl, "recycled", kCtlRecycled);
  Set(env, ctl, "submitted", kCtlSubmitted);
  Set(env, ctl, "sqFull", kCtlSqFull);
  Set(env, ctl, "cqes", kCtlCqes);
  Set(env, ctl, "wakeups", kCtlWakeups);
  Set(env, ctl, "submitErr", kCtlSubmitErr);
  Set(env, ctl, "overflow", kCtlOverflow);
  Set(env, ctl, "emptyWakeups", kCtlEmptyWakeups);
  Set(env, ctl, "words", kCtlWords);
  abi.Set("ctl", ctl);

  abi.Set("prepSqe", Napi::Function::New(env, PrepSqe, "prepSqe"));
  exports.Set("abi", abi);
  return exports;
}

}  // namespace ringline
