// Synchronous socket set-up helpers: done once per listener, never per packet.
// Listening sockets are created with plain syscalls because liburing 2.3 has no BIND/LISTEN
// helpers; every byte of traffic still goes through the ring.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <v8.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "ring.h"

namespace ringline {

namespace {

socklen_t CopyAddr(const Napi::Value& v, sockaddr_storage* ss) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), "address must be a Uint8Array");
  Napi::Uint8Array bytes = v.As<Napi::Uint8Array>();
  if (bytes.ByteLength() > sizeof(sockaddr_storage) || bytes.ByteLength() < 2) {
    throw Napi::RangeError::New(v.Env(), "bad sockaddr length");
  }
  memset(ss, 0, sizeof *ss);
  memcpy(ss, bytes.Data(), bytes.ByteLength());
  return static_cast<socklen_t>(bytes.ByteLength());
}

// listen(sockaddr: Uint8Array, backlog, reusePort, type, noDelay) -> fd
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_storage ss;
  socklen_t len = CopyAddr(info[0], &ss);
  const int backlog = info[1].As<Napi::Number>().Int32Value();
  const bool reuse_port = info[2].ToBoolean();
  const int type = info.Length() > 3 ? info[3].As<Napi::Number>().Int32Value() : SOCK_STREAM;
  const bool no_delay = info.Length() > 4 ? info[4].ToBoolean().Value() : true;
  const int family = ss.ss_family;
  int fd = socket(family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  auto fail = [&](const char* what) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, what, err);
  };
  int one = 1;
  if (family != AF_UNIX) {
    // Not for datagram sockets: there SO_REUSEADDR lets a second socket bind the same port
    // silently (only SO_REUSEPORT, when asked for, may share a UDP port).
    if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
      fail("setsockopt(SO_REUSEADDR)");
    }
    // Accepted sockets inherit TCP_NODELAY from the listener, which saves a setsockopt per
    // connection (impossible anyway on a direct descriptor).
    if (type == SOCK_STREAM && no_delay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
      fail("setsockopt(TCP_NODELAY)");
    }
  }
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    fail("setsockopt(SO_REUSEPORT)");
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) fail("bind");
  if (type == SOCK_STREAM && listen(fd, backlog) < 0) fail("listen");
  return Napi::Number::New(env, fd);
}

// sockName(fd, peer: boolean) -> Uint8Array (raw sockaddr)
Napi::Value SockName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const bool peer = info[1].ToBoolean();
  sockaddr_storage ss {};
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r < 0) ThrowErrno(env, peer ? "getpeername" : "getsockname", errno);
  Napi::Uint8Array out = Napi::Uint8Array::New(env, len);
  memcpy(out.Data(), &ss, len);
  return out;
}

// getIntOpt(fd, level, name) -> number: Connection.getOption on a momentarily installed fd.
Napi::Value GetIntOpt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(),
                 info[2].As<Napi::Number>().Int32Value(), &v, &len) < 0) {
    ThrowErrno(env, "getsockopt", errno);
  }
  return Napi::Number::New(env, v);
}

// setIntOpt(fd, level, name, value): Connection.setOption on a momentarily installed fd.
Napi::Value SetIntOpt(const Napi::CallbackInfo& info) {
  int v = info[3].As<Napi::Number>().Int32Value();
  if (setsockopt(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(),
                 info[2].As<Napi::Number>().Int32Value(), &v, sizeof v) < 0) {
    ThrowErrno(info.Env(), "setsockopt", errno);
  }
  return info.Env().Undefined();
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  if (::close(info[0].As<Napi::Number>().Int32Value()) < 0) ThrowErrno(info.Env(), "close", errno);
  return info.Env().Undefined();
}

// addressOf(view) -> number: where a JS buffer's bytes live, for sends that do not go through
// the send pool. Reading the info materialises on-heap typed arrays off-heap, so the address
// stays valid while JS holds the view.
Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "addressOf expects a Uint8Array");
  Napi::TypedArray t = info[0].As<Napi::TypedArray>();
  uint8_t* base = static_cast<uint8_t*>(t.ArrayBuffer().Data());
  return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(base + t.ByteOffset())));
}

// Pins: the memory behind a view held for as long as the kernel may use it, even if the view's
// ArrayBuffer is detached meanwhile (a transfer hands the memory to a new ArrayBuffer, which may
// be collected, and the memory freed, while a send still reads it or a read still writes it).
// Each pin holds the BackingStore, V8's reference-counted owner of the memory, in this thread's
// table until unpin(id) (the op's slot is released: driver.ts). Node-API cannot reach a
// BackingStore, so the napi_value is read as the v8::Local it is (as Node's v8impl does). A table
// rather than an object per pin: an External's finalizer costs ~1.5 us per pin (a weak handle),
// this ~0.1 us.
thread_local std::vector<std::shared_ptr<v8::BackingStore>> pins;
thread_local std::vector<bool> pinUsed;
thread_local std::vector<uint32_t> freePins;

// The pin of `value` (a view or an ArrayBuffer): its table id.
uint32_t PinStore(Napi::Env env, napi_value value) {
  v8::Local<v8::Value> local;
  static_assert(sizeof(local) == sizeof(value), "napi_value is a v8::Local");
  memcpy(static_cast<void*>(&local), &value, sizeof(value));
  std::shared_ptr<v8::BackingStore> store;
  if (local->IsArrayBufferView()) store = local.As<v8::ArrayBufferView>()->Buffer()->GetBackingStore();
  else if (local->IsArrayBuffer()) store = local.As<v8::ArrayBuffer>()->GetBackingStore();
  else throw Napi::TypeError::New(env, "pin expects an ArrayBufferView or an ArrayBuffer");
  uint32_t id;
  if (!freePins.empty()) {
    id = freePins.back();
    freePins.pop_back();
    pins[id] = std::move(store);
    pinUsed[id] = true;
  } else {
    id = static_cast<uint32_t>(pins.size());
    pins.push_back(std::move(store));
    pinUsed.push_back(true);
  }
  return id;
}

void UnpinId(uint32_t id) {
  if (id < pins.size() && pinUsed[id]) {
    pins[id].reset();
    pinUsed[id] = false;
    freePins.push_back(id);
  }
}

// pin(view | ArrayBuffer) -> id
Napi::Value Pin(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), PinStore(info.Env(), info[0]));
}

// pinAddress(view, out: Int32Array) -> address: addressOf and pin in one call (a send's segment);
// the pin's id goes to out[0].
Napi::Value PinAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray()) throw Napi::TypeError::New(env, "pinAddress expects (view, Int32Array)");
  Napi::TypedArray t = info[0].As<Napi::TypedArray>();
  // The address first: reading the info materialises an on-heap typed array off-heap (its store).
  uint8_t* base = static_cast<uint8_t*>(t.ArrayBuffer().Data());
  Napi::Int32Array out = info[1].As<Napi::Int32Array>();
  out[0] = static_cast<int32_t>(PinStore(env, info[0]));
  return Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(base + t.ByteOffset())));
}

// unpinMany(ids: Int32Array, n): ends the first n pins of `ids` (a completion batch's, at once).
Napi::Value UnpinMany(const Napi::CallbackInfo& info) {
  Napi::Int32Array ids = info[0].As<Napi::Int32Array>();
  const size_t n = std::min<size_t>(info[1].As<Napi::Number>().Uint32Value(), ids.ElementLength());
  for (size_t i = 0; i < n; i++) UnpinId(static_cast<uint32_t>(ids[i]));
  return info.Env().Undefined();
}

// unpin(id): the memory may go with its last ArrayBuffer again.
Napi::Value Unpin(const Napi::CallbackInfo& info) {
  UnpinId(info[0].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}

}  // namespace

Napi::Object InitSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("pin", Napi::Function::New<Pin>(env, "pin"));
  exports.Set("unpin", Napi::Function::New<Unpin>(env, "unpin"));
  exports.Set("pinAddress", Napi::Function::New<PinAddress>(env, "pinAddress"));
  exports.Set("unpinMany", Napi::Function::New<UnpinMany>(env, "unpinMany"));
  exports.Set("listen", Napi::Function::New<Listen>(env, "listen"));
  exports.Set("sockName", Napi::Function::New<SockName>(env, "sockName"));
  exports.Set("getIntOpt", Napi::Function::New<GetIntOpt>(env, "getIntOpt"));
  exports.Set("setIntOpt", Napi::Function::New<SetIntOpt>(env, "setIntOpt"));
  exports.Set("closeFd", Napi::Function::New<CloseFd>(env, "closeFd"));
  exports.Set("addressOf", Napi::Function::New<AddressOf>(env, "addressOf"));
  return exports;
}

}  // namespace ringline
