// The C allocator's policy for a streaming server (glibc only): `tuneMalloc` fixes the mmap and
// trim thresholds. Every received run that a reader keeps is a fresh allocation of up to half a
// MiB (the reassembly hands its memory over instead of copying it again). With glibc's dynamic
// thresholds some of these come from mmap and the heap's top is trimmed back to the kernel and
// regrown, so the same memory is page-faulted in again and again: bulk echo measured about 4
// minor faults per 64 KiB (the C server on the same ring 0.16) and 1.3-2.0 with fixed thresholds.
#include <napi.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ringline {

namespace {

// tuneMalloc(mmapThreshold, trimThreshold): true when applied, false where there is no glibc.
Napi::Value TuneMalloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "tuneMalloc(mmapThreshold, trimThreshold): two numbers");
  }
  const double mmap = info[0].As<Napi::Number>().DoubleValue();
  const double trim = info[1].As<Napi::Number>().DoubleValue();
  // glibc caps M_MMAP_THRESHOLD at 32 MiB on 64-bit (mallopt answers 0 above it).
  if (!(mmap >= 0 && mmap <= 32.0 * 1024 * 1024) || !(trim >= 0 && trim <= 1024.0 * 1024 * 1024)) {
    throw Napi::RangeError::New(env, "tuneMalloc: mmapThreshold must be 0..32 MiB, trimThreshold 0..1 GiB");
  }
#if defined(__GLIBC__)
  const bool ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap)) == 1 &&
                  mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim)) == 1;
  return Napi::Boolean::New(env, ok);
#else
  return Napi::Boolean::New(env, false);
#endif
}

}  // namespace

void InitMalloc(Napi::Env env, Napi::Object exports) {
  exports.Set("tuneMalloc", Napi::Function::New(env, TuneMalloc, "tuneMalloc"));
}

}  // namespace ringline
