// Entry point of the ringline addon. Context-aware: every JS thread (main or worker) gets its own
// exports and its own rings; nothing is shared between threads.
#include <napi.h>

#include "abi.h"
#include "ring.h"
#include "tls.h"
#include "wide_ring.h"

namespace ringline {
void InitHttp(Napi::Env env, Napi::Object exports);  // http_parser.cc
void InitSeccomp(Napi::Env env, Napi::Object exports);  // seccomp.cc
void InitMalloc(Napi::Env env, Napi::Object exports);  // malloc.cc
}  // namespace ringline

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Ring", ringline::Ring::Init(env));
  exports.Set("WideRing", ringline::WideRing::Init(env));
  ringline::InitProcess(env, exports);
  ringline::InitWorkers(env, exports);
  ringline::InitAbi(env, exports);
  ringline::InitTls(env, exports);  // tls.cc: TlsContext, TlsSession
  ringline::InitHttp(env, exports);
  ringline::InitSeccomp(env, exports);
  ringline::InitMalloc(env, exports);
  return ringline::InitSockets(env, exports);
}

}  // namespace

NODE_API_MODULE(ringline, Init)
