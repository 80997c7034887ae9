// The C allocator's policy for a streaming server (glibc only): `tuneMalloc` fixes the mmap and
// trim thresholds. Every received run that a reader keeps is a fresh allocation of up to half a
// MiB (the reassembly hands its memory over instead of copying it again). With glibc's dynamic
// thresholds some of these come from mmap and the heap's top is trimmed back to the kernel and
// regrown, so the same memory is page-faulted in again and again: bulk echo measured about 4
// minor faults per 64 KiB (the C server on the same ring 0.16) and 1.3-2.0 with fixed thresholds.
//
// The fixed trim threshold has a price where no such runs come: every arena (V8's compiler and
// GC threads each have one) then keeps its high-water mark, ~3 MB for a server that JIT-compiles
// while it accepts 1000 idle connections, against ~0.5 MB under glibc's defaults. So the
// thresholds can be kept aside (`deferred`) and applied by the first `mallocLargeRun` of any
// thread: the first large run a reader is handed, i.e. once the process streams.
#include <napi.h>

#include <atomic>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ringline {

namespace {

// Thresholds kept by a deferred tuneMalloc; kArmed while they wait for the first large run.
enum : int { kIdle = 0, kArmed = 1, kApplied = 2 };
std::atomic<int> g_state{kIdle};
std::atomic<int> g_mmap{0};
std::atomic<int> g_trim{0};

bool Apply(int mmap, int trim) {
#if defined(__GLIBC__)
  return mallopt(M_MMAP_THRESHOLD, mmap) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1;
#else
  (void)mmap;
  (void)trim;
  return false;
#endif
}

// tuneMalloc(mmapThreshold, trimThreshold[, deferred]): true when applied (or kept, if deferred),
// false where there is no glibc.
Napi::Value TuneMalloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber() ||
      (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsBoolean())) {
    throw Napi::TypeError::New(env, "tuneMalloc(mmapThreshold, trimThreshold[, deferred]): two numbers and a boolean");
  }
  const double mmap = info[0].As<Napi::Number>().DoubleValue();
  const double trim = info[1].As<Napi::Number>().DoubleValue();
  // glibc caps M_MMAP_THRESHOLD at 32 MiB on 64-bit (mallopt answers 0 above it).
  if (!(mmap >= 0 && mmap <= 32.0 * 1024 * 1024) || !(trim >= 0 && trim <= 1024.0 * 1024 * 1024)) {
    throw Napi::RangeError::New(env, "tuneMalloc: mmapThreshold must be 0..32 MiB, trimThreshold 0..1 GiB");
  }
  const bool deferred = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
#if defined(__GLIBC__)
  if (deferred) {
    g_mmap.store(static_cast<int>(mmap));
    g_trim.store(static_cast<int>(trim));
    int idle = kIdle;
    g_state.compare_exchange_strong(idle, kArmed);
    return Napi::Boolean::New(env, true);
  }
  return Napi::Boolean::New(env, Apply(static_cast<int>(mmap), static_cast<int>(trim)));
#else
  (void)deferred;
  return Napi::Boolean::New(env, false);
#endif
}

// mallocLargeRun(): applies deferred thresholds, once per process; true when this call did.
Napi::Value MallocLargeRun(const Napi::CallbackInfo& info) {
  int armed = kArmed;
  const bool now = g_state.compare_exchange_strong(armed, kApplied);
  return Napi::Boolean::New(info.Env(), now && Apply(g_mmap.load(), g_trim.load()));
}

}  // namespace

void InitMalloc(Napi::Env env, Napi::Object exports) {
  exports.Set("tuneMalloc", Napi::Function::New(env, TuneMalloc, "tuneMalloc"));
  exports.Set("mallocLargeRun", Napi::Function::New(env, MallocLargeRun, "mallocLargeRun"));
}

}  // namespace ringline
