// Thread-per-core support: what a worker thread needs from the kernel that Node does not offer.
//   - pinning the calling thread (not the process) to CPUs with sched_setaffinity(0, ...), which
//     on Linux applies to the calling thread only, so each worker_threads worker pins itself;
//   - the calling thread's kernel id (gettid), so a test can read /proc/self/task/<tid>/status.
// Cross-ring messages (IORING_OP_MSG_RING, data and IORING_MSG_SEND_FD) need no native code: JS
// stages those SQEs like any other (packages/core/src/internal/msgRing.ts); the target ring is
// named by its fd, which Ring.info().ringFd reports.
#include <napi.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "loop_ring.h"

namespace ringline {

namespace {

// setAffinity(cpus: number[]): pins the calling thread to exactly these CPUs.
Napi::Value SetAffinity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "setAffinity(cpus: number[])");
  Napi::Array cpus = info[0].As<Napi::Array>();
  if (cpus.Length() == 0) throw Napi::RangeError::New(env, "setAffinity needs at least one CPU");
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < cpus.Length(); i++) {
    Napi::Value v = cpus.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, "setAffinity: CPUs are numbers");
    const int cpu = v.As<Napi::Number>().Int32Value();
    if (cpu < 0 || cpu >= CPU_SETSIZE) throw Napi::RangeError::New(env, "setAffinity: CPU out of range");
    CPU_SET(cpu, &set);
  }
  if (sched_setaffinity(0, sizeof(set), &set) != 0) ThrowErrno(env, "sched_setaffinity", errno);
  return env.Undefined();
}

// getAffinity(): the CPUs the calling thread may run on.
Napi::Value GetAffinity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) ThrowErrno(env, "sched_getaffinity", errno);
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (CPU_ISSET(cpu, &set)) out.Set(n++, Napi::Number::New(env, cpu));
  }
  return out;
}

// threadId(): gettid() of the calling thread.
Napi::Value ThreadId(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(syscall(SYS_gettid)));
}

}  // namespace

Napi::Object InitWorkers(Napi::Env env, Napi::Object exports) {
  exports.Set("setAffinity", Napi::Function::New<SetAffinity>(env, "setAffinity"));
  exports.Set("getAffinity", Napi::Function::New<GetAffinity>(env, "getAffinity"));
  exports.Set("threadId", Napi::Function::New<ThreadId>(env, "threadId"));
  return exports;
}

}  // namespace ringline
