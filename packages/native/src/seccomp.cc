// blockIoUringForTesting(): installs, on every thread of the process, the seccomp filter that
// Docker's default profile (and systemd's SystemCallFilter=~@io-uring) amounts to for io_uring:
// io_uring_setup / io_uring_enter / io_uring_register fail with EPERM, every other syscall is
// allowed. Tests use it in a child process to prove the "io_uring refused" paths without touching
// the machine-wide sysctl kernel.io_uring_disabled (which would break every other ring running).
// A seccomp filter can never be removed: call it only in a process made for that purpose.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

#include <napi.h>

#include "loop_ring.h"

namespace ringline {

namespace {

#if defined(__x86_64__)
constexpr unsigned kNativeArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kNativeArch = AUDIT_ARCH_AARCH64;
#else
#error "blockIoUringForTesting: add this architecture's AUDIT_ARCH_* value"
#endif

// x32 syscalls arrive with the x86_64 arch word and this bit set in their number.
constexpr unsigned kX32Bit = 0x40000000;

constexpr unsigned kDeny = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);

// Numbers 424+ are shared by every architecture, so these three are the same everywhere.
static_assert(__NR_io_uring_setup == 425 && __NR_io_uring_enter == 426 && __NR_io_uring_register == 427);

Napi::Value BlockIoUringForTesting(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sock_filter filter[] = {
      // A syscall of another ABI (i386 compat) has other numbers: refuse them all rather than let
      // io_uring through a side door; Node on this architecture never makes one.
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kNativeArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, kDeny),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      // x32 (or any number with the x32 bit) is refused for the same reason.
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, kX32Bit, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, kDeny),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, kDeny),
  };
  sock_fprog prog = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  // Without CAP_SYS_ADMIN the kernel accepts a filter only from a no_new_privs thread; TSYNC then
  // gives every thread (libuv's pool, V8's workers) both the flag and the filter.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ThrowErrno(env, "prctl(PR_SET_NO_NEW_PRIVS)", errno);
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (r < 0) ThrowErrno(env, "seccomp(SECCOMP_SET_MODE_FILTER)", errno);
  // A positive result is the id of a thread that could not be synchronised: nothing was installed.
  if (r > 0) ThrowErrno(env, "seccomp(SECCOMP_FILTER_FLAG_TSYNC)", EAGAIN);
  return env.Undefined();
}

}  // namespace

void InitSeccomp(Napi::Env env, Napi::Object exports) {
  exports.Set("blockIoUringForTesting", Napi::Function::New(env, BlockIoUringForTesting, "blockIoUringForTesting"));
}

}  // namespace ringline
