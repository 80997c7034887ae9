// TLS engine: contexts (certificates, trust, ALPN, SNI, tickets) and per-connection sessions that
// decrypt from provided buffers and encrypt into native chunks. See tls.h for the memory rules.
#include "tls.h"

#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace ringline {

namespace {

constexpr size_t kChunkSize = 64 * 1024;
constexpr size_t kPoolMax = 256;  // free chunks kept per thread (16 MiB)

// Chunks nothing references any more, per thread (each JS thread has its own sessions): an idle
// connection holds no ciphertext memory, a busy one reuses chunks without malloc.
thread_local std::vector<uint8_t*> chunk_pool;

uint8_t* TakeChunk(size_t cap) {
  if (cap == kChunkSize && !chunk_pool.empty()) {
    uint8_t* c = chunk_pool.back();
    chunk_pool.pop_back();
    return c;
  }
  return static_cast<uint8_t*>(malloc(cap));
}

void GiveChunk(uint8_t* c, size_t cap) {
  if (cap == kChunkSize && chunk_pool.size() < kPoolMax) chunk_pool.push_back(c);
  else free(c);
}
constexpr size_t kMaxSessions = 1024;
const unsigned char kSessionIdContext[] = "ringline";

// The OpenSSL error queue is per thread and shared with Node's own crypto: always leave it empty.
std::string TakeSslError(const char* fallback) {
  unsigned long e = ERR_peek_last_error();
  std::string out;
  if (e != 0) {
    const char* reason = ERR_reason_error_string(e);
    out = reason != nullptr ? reason : "error:" + std::to_string(e);
  } else {
    out = fallback;
  }
  ERR_clear_error();
  return out;
}

[[noreturn]] void ThrowSsl(Napi::Env env, const std::string& what) {
  Napi::Error err = Napi::Error::New(env, what + ": " + TakeSslError("unknown OpenSSL error"));
  throw err;
}

// ---- the BIO whose read side is the current input span and whose write side is the chunks ----

int BioCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

int BioRead(BIO* b, char* out, size_t len, size_t* read) {
  auto* s = static_cast<TlsSession*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  size_t n = s == nullptr ? 0 : s->ReadInput(reinterpret_cast<uint8_t*>(out), len);
  if (n == 0) {
    BIO_set_retry_read(b);
    *read = 0;
    return 0;
  }
  *read = n;
  return 1;
}

int BioWrite(BIO* b, const char* data, size_t len, size_t* written) {
  auto* s = static_cast<TlsSession*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (s != nullptr) s->WriteOutput(reinterpret_cast<const uint8_t*>(data), len);
  *written = len;
  return 1;
}

long BioCtrl(BIO* b, int cmd, long num, void* ptr) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;
  }
}

BIO_METHOD* RingBioMethod() {
  static BIO_METHOD* method = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringline");
    BIO_meth_set_create(method, BioCreate);
    BIO_meth_set_read_ex(method, BioRead);
    BIO_meth_set_write_ex(method, BioWrite);
    BIO_meth_set_ctrl(method, BioCtrl);
  });
  return method;
}

int SessionIndex() {
  static int index = -1;
  static std::once_flag once;
  std::call_once(once, [] { index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr); });
  return index;
}

std::string GetString(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

std::vector<std::string> GetStrings(const Napi::Object& o, const char* key) {
  std::vector<std::string> out;
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) return out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

int GetInt(const Napi::Object& o, const char* key, int fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : fallback;
}

// Every PEM certificate in `pem`, in order.
std::vector<X509*> ReadCerts(Napi::Env env, const std::string& pem, const char* field) {
  std::vector<X509*> out;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out.push_back(x);
  BIO_free(bio);
  ERR_clear_error();  // the loop ends on "no start line"
  if (out.empty()) throw Napi::Error::New(env, std::string(field) + ": no PEM certificate found");
  return out;
}

}  // namespace

// ---- TlsContext ---------------------------------------------------------------------------------

Napi::Function TlsContext::Init(Napi::Env env) {
  return DefineClass(env, "TlsContext", {InstanceMethod<&TlsContext::SetTicketKeys>("setTicketKeys")});
}

// setTicketKeys(keys: Uint8Array): 80-byte keys (16 name, 32 HMAC, 32 AES), newest first.
Napi::Value TlsContext::SetTicketKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array keys = info[0].As<Napi::Uint8Array>();
  if (keys.ByteLength() == 0 || keys.ByteLength() % sizeof(TicketKey) != 0) {
    throw Napi::RangeError::New(env, "ticketKeys: each key is 80 bytes (16 name, 32 HMAC, 32 AES)");
  }
  std::vector<TicketKey> next(keys.ByteLength() / sizeof(TicketKey));
  memcpy(next.data(), keys.Data(), keys.ByteLength());
  ticket_keys_.swap(next);
  if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx_, OnTicketKey) != 1) ThrowSsl(env, "ticketKeys");
  return env.Undefined();
}

int TlsContext::OnTicketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                            EVP_MAC_CTX* mac, int enc) {
  // Tickets belong to the context the connection started on (SNI switches do not change it).
  auto* self = static_cast<TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  auto* session = static_cast<TlsSession*>(SSL_get_ex_data(ssl, SessionIndex()));
  if (session != nullptr) self = session->context();
  if (self == nullptr || self->ticket_keys_.empty()) return -1;
  const TicketKey* key = nullptr;
  int result = 1;
  if (enc == 1) {
    key = &self->ticket_keys_[0];
    memcpy(name, key->name, sizeof key->name);
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
  } else {
    for (size_t i = 0; i < self->ticket_keys_.size(); i++) {
      if (memcmp(name, self->ticket_keys_[i].name, sizeof key->name) == 0) {
        key = &self->ticket_keys_[i];
        result = i == 0 ? 1 : 2;  // 2: accept, and issue a fresh ticket under the newest key
        break;
      }
    }
    if (key == nullptr) return 0;  // unknown key: full handshake
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string("key", const_cast<unsigned char*>(key->hmac), sizeof key->hmac),
      OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("sha256"), 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  if (EVP_CipherInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes, iv, enc) != 1) return -1;
  return result;
}

// new TlsContext({ server, cert?, key?, ca?: string[], alpn?: string[], minVersion?, maxVersion?,
//                  verify: 0 none | 1 verify peer | 2 verify and require a peer certificate,
//                  sni?: Array<[name, TlsContext]>, tickets?: boolean })
TlsContext::TlsContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TlsContext>(info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  server_ = o.Get("server").ToBoolean();
  ERR_clear_error();
  ctx_ = SSL_CTX_new(server_ ? TLS_server_method() : TLS_client_method());
  if (ctx_ == nullptr) ThrowSsl(env, "SSL_CTX_new");
  // Records may be written in pieces (each call writes at most one record's worth), and the
  // write buffer is not required to stay at the same address across a retry.
  SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  const int min_version = GetInt(o, "minVersion", TLS1_2_VERSION);
  const int max_version = GetInt(o, "maxVersion", 0);
  if (SSL_CTX_set_min_proto_version(ctx_, min_version) != 1) ThrowSsl(env, "minVersion");
  if (max_version != 0 && SSL_CTX_set_max_proto_version(ctx_, max_version) != 1) ThrowSsl(env, "maxVersion");
  SSL_CTX_set_session_id_context(ctx_, kSessionIdContext, sizeof kSessionIdContext - 1);

  const std::string cert = GetString(o, "cert");
  if (!cert.empty()) {
    std::vector<X509*> chain = ReadCerts(env, cert, "cert");
    int ok = SSL_CTX_use_certificate(ctx_, chain[0]);
    for (size_t i = 1; ok == 1 && i < chain.size(); i++) ok = SSL_CTX_add1_chain_cert(ctx_, chain[i]);
    for (X509* x : chain) X509_free(x);
    if (ok != 1) ThrowSsl(env, "cert");
  }
  const std::string key = GetString(o, "key");
  if (!key.empty()) {
    BIO* bio = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
    EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (pkey == nullptr) ThrowSsl(env, "key");
    const int ok = SSL_CTX_use_PrivateKey(ctx_, pkey);
    EVP_PKEY_free(pkey);
    if (ok != 1) ThrowSsl(env, "key");
    if (SSL_CTX_check_private_key(ctx_) != 1) ThrowSsl(env, "key does not match cert");
  }

  X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
  for (const std::string& pem : GetStrings(o, "ca")) {
    for (X509* x : ReadCerts(env, pem, "ca")) {
      X509_STORE_add_cert(store, x);
      // A server asking for client certificates names the CAs it accepts.
      if (server_) SSL_CTX_add_client_CA(ctx_, x);
      X509_free(x);
    }
  }
  ERR_clear_error();  // duplicate certificates in the store are not an error for us

  const int verify = GetInt(o, "verify", 0);
  SSL_CTX_set_verify(ctx_,
                     verify == 0 ? SSL_VERIFY_NONE
                                 : SSL_VERIFY_PEER | (verify == 2 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                     nullptr);

  std::vector<std::string> alpn = GetStrings(o, "alpn");
  for (const std::string& p : alpn) {
    if (p.empty() || p.size() > 255) throw Napi::RangeError::New(env, "alpn: protocol names are 1..255 bytes");
    alpn_.push_back(static_cast<char>(p.size()));
    alpn_ += p;
  }
  if (!alpn_.empty()) {
    if (server_) {
      SSL_CTX_set_alpn_select_cb(ctx_, SelectAlpn, this);
    } else if (SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(alpn_.data()),
                                       static_cast<unsigned>(alpn_.size())) != 0) {
      ThrowSsl(env, "alpn");
    }
  }

  if (server_) {
    Napi::Value sni = o.Get("sni");
    if (sni.IsArray()) {
      Napi::Array list = sni.As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); i++) {
        Napi::Array pair = list.Get(i).As<Napi::Array>();
        Napi::Object other = pair.Get(1u).As<Napi::Object>();
        TlsContext* c = Napi::ObjectWrap<TlsContext>::Unwrap(other);
        sni_.emplace_back(pair.Get(0u).As<Napi::String>().Utf8Value(), c->ctx());
        sni_refs_.push_back(Napi::Persistent(other));
      }
      if (!sni_.empty()) SSL_CTX_set_client_hello_cb(ctx_, OnClientHello, this);
    }
    if (!o.Get("tickets").ToBoolean()) SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
    // Resumption is by tickets (stateless): no per-context store of every session (as Node does).
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  } else {
    // Client resumption: OpenSSL hands every new session (TLS 1.3 tickets arrive after the
    // handshake) to OnNewSession, which keeps the newest per key.
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx_, OnNewSession);
  }
}

TlsContext::~TlsContext() {
  for (auto& [key, s] : sessions_) SSL_SESSION_free(s);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

int TlsContext::SelectAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                           unsigned int inlen, void* arg) {
  auto* self = static_cast<TlsContext*>(arg);
  unsigned char* selected = nullptr;
  // Server preference: the first of our protocols the client offers.
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(self->alpn_.data()),
                            static_cast<unsigned>(self->alpn_.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol, as RFC 7301 asks
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

SSL_CTX* TlsContext::ForName(const std::string& name) const {
  for (const auto& [pattern, ctx] : sni_) {
    if (strcasecmp(pattern.c_str(), name.c_str()) == 0) return ctx;
  }
  for (const auto& [pattern, ctx] : sni_) {
    // "*.example.com" matches exactly one more label.
    if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
      const size_t dot = name.find('.');
      if (dot != std::string::npos && strcasecmp(pattern.c_str() + 1, name.c_str() + dot) == 0) return ctx;
    }
  }
  return nullptr;
}

// Picks the certificate by the server_name extension before anything else of the ClientHello is
// processed (so ALPN and verification settings of the chosen context apply).
int TlsContext::OnClientHello(SSL* ssl, int* alert, void* arg) {
  auto* self = static_cast<TlsContext*>(arg);
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1) return SSL_CLIENT_HELLO_SUCCESS;
  // ServerNameList: u16 length, then entries of (u8 type, u16 length, name).
  if (len < 5 || ((size_t(p[0]) << 8) | p[1]) + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  const size_t name_len = (size_t(p[3]) << 8) | p[4];
  if (name_len + 5 > len) return SSL_CLIENT_HELLO_SUCCESS;
  std::string name(reinterpret_cast<const char*>(p + 5), name_len);
  if (SSL_CTX* ctx = self->ForName(name)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_CLIENT_HELLO_SUCCESS;
}

int TlsContext::OnNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* s = static_cast<TlsSession*>(SSL_get_ex_data(ssl, SessionIndex()));
  if (s == nullptr || s->session_key().empty()) return 0;
  s->context()->StoreSession(s->session_key(), session);
  return 1;  // we keep the reference
}

void TlsContext::StoreSession(const std::string& key, SSL_SESSION* session) {
  auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    SSL_SESSION_free(it->second);
    it->second = session;
    return;
  }
  if (sessions_.size() >= kMaxSessions) {
    SSL_SESSION_free(sessions_.begin()->second);
    sessions_.erase(sessions_.begin());
  }
  sessions_.emplace(key, session);
}

SSL_SESSION* TlsContext::TakeSession(const std::string& key) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return nullptr;
  SSL_SESSION* s = it->second;
  sessions_.erase(it);
  // TLS 1.3 tickets are single-use; a TLS 1.2 session could be reused but we keep it simple.
  if (!SSL_SESSION_is_resumable(s)) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

// ---- TlsSession ---------------------------------------------------------------------------------

Napi::Function TlsSession::Init(Napi::Env env) {
  return DefineClass(env, "TlsSession",
                     {
                         InstanceMethod<&TlsSession::Handshake>("handshake"),
                         InstanceMethod<&TlsSession::Feed>("feed"),
                         InstanceMethod<&TlsSession::Write>("write"),
                         InstanceMethod<&TlsSession::WriteScratch>("writeScratch"),
                         InstanceMethod<&TlsSession::Shutdown>("shutdown"),
                         InstanceMethod<&TlsSession::KeyUpdate>("keyUpdate"),
                         InstanceMethod<&TlsSession::Release>("release"),
                         InstanceMethod<&TlsSession::Copy>("copy"),
                         InstanceMethod<&TlsSession::Info>("info"),
                         InstanceMethod<&TlsSession::Error>("error"),
                         InstanceMethod<&TlsSession::Free>("free"),
                     });
}

// new TlsSession(context, io: Float64Array, { servername?, verifyHost?, verifyIp?, sessionKey? }); `io`
// may be a view of a larger ArrayBuffer: the bytes after it are the scratch of writeScratch.
TlsSession::TlsSession(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TlsSession>(info) {
  Napi::Env env = info.Env();
  Napi::Object ctx_obj = info[0].As<Napi::Object>();
  context_ = Napi::ObjectWrap<TlsContext>::Unwrap(ctx_obj);
  context_ref_ = Napi::Persistent(ctx_obj);
  Napi::Float64Array io = info[1].As<Napi::Float64Array>();
  if (io.ElementLength() < kIoLength) throw Napi::RangeError::New(env, "io area too small");
  io_ = io.Data();
  io_ref_ = Napi::Persistent(io);
  // What follows the io area in its buffer is the scratch of writeScratch (none if nothing does).
  const size_t scratch_at = io.ByteOffset() + kIoLength * sizeof(double);
  Napi::ArrayBuffer io_buffer = io.ArrayBuffer();
  if (io_buffer.ByteLength() > scratch_at) {
    scratch_ = static_cast<const uint8_t*>(io_buffer.Data()) + scratch_at;
    scratch_len_ = io_buffer.ByteLength() - scratch_at;
  }
  Napi::Object o = info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);

  ERR_clear_error();
  ssl_ = SSL_new(context_->ctx());
  if (ssl_ == nullptr) ThrowSsl(env, "SSL_new");
  SSL_set_ex_data(ssl_, SessionIndex(), this);
  BIO* bio = BIO_new(RingBioMethod());
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);
  if (context_->server()) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  const std::string servername = GetString(o, "servername");
  if (!servername.empty() && SSL_set_tlsext_host_name(ssl_, servername.c_str()) != 1) ThrowSsl(env, "servername");
  const std::string host = GetString(o, "verifyHost");
  if (!host.empty() && SSL_set1_host(ssl_, host.c_str()) != 1) ThrowSsl(env, "verifyHost");
  const std::string ip = GetString(o, "verifyIp");
  if (!ip.empty() && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), ip.c_str()) != 1) ThrowSsl(env, "verifyIp");
  session_key_ = GetString(o, "sessionKey");
  if (!session_key_.empty()) {
    if (SSL_SESSION* s = context_->TakeSession(session_key_)) {
      SSL_set_session(ssl_, s);
      SSL_SESSION_free(s);
    }
  }
}

TlsSession::~TlsSession() { FreeAll(); }

void TlsSession::FreeAll() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);  // frees the BIO too
    ssl_ = nullptr;
  }
  for (auto& [id, c] : chunks_) GiveChunk(c.data, c.cap);
  chunks_.clear();
  dirty_.clear();
  tail_ = 0;
  carry_.clear();
  carry_off_ = 0;
}

size_t TlsSession::ReadInput(uint8_t* out, size_t len) {
  size_t n = 0;
  if (carry_off_ < carry_.size()) {
    n = std::min(len, carry_.size() - carry_off_);
    memcpy(out, carry_.data() + carry_off_, n);
    carry_off_ += n;
    if (carry_off_ == carry_.size()) {
      carry_.clear();
      carry_off_ = 0;
    }
  }
  if (n < len && in_len_ > 0) {
    const size_t m = std::min(len - n, in_len_);
    memcpy(out + n, in_, m);
    in_ += m;
    in_len_ -= m;
    n += m;
  }
  return n;
}

void TlsSession::WriteOutput(const uint8_t* data, size_t len) {
  Chunk* c = tail_ == 0 ? nullptr : &chunks_[tail_];
  if (c == nullptr || c->cap - c->len < len) {
    // Chunks never move or grow: their reported bytes may be in flight to the kernel.
    const size_t cap = std::max(kChunkSize, len);
    uint8_t* mem = TakeChunk(cap);
    if (mem == nullptr) throw std::bad_alloc();
    tail_ = next_chunk_++;
    if (next_chunk_ == 0) next_chunk_ = 1;
    c = &chunks_[tail_];
    *c = Chunk{mem, cap, 0, 0};
  }
  if (c->len == c->reported) dirty_.push_back(tail_);
  memcpy(c->data + c->len, data, len);
  c->len += len;
}

// Frees the chunks JS no longer sends from, then clears the per-call outputs.
void TlsSession::Begin() {
  const int n = static_cast<int>(io_[kIoReleases]);
  for (int i = 0; i < n && i < kIoReleaseMax; i++) {
    const uint32_t id = static_cast<uint32_t>(io_[kIoReleaseBase + i]);
    auto it = chunks_.find(id);
    if (it == chunks_.end()) continue;
    GiveChunk(it->second.data, it->second.cap);
    chunks_.erase(it);
    if (id == tail_) tail_ = 0;
  }
  io_[kIoReleases] = 0;
  io_[kIoPlain] = 0;
  io_[kIoSpans] = 0;
  io_[kIoConsumed] = 0;
  // SSL_get_error needs an empty queue before each call. Every path of ours leaves it empty, so
  // only a foreign leftover is cleared (peeking costs a fraction of a clear, on every record).
  if (ERR_peek_error() != 0) ERR_clear_error();
}

// Reports every byte written since the last call as spans, in order.
int TlsSession::Finish(int events) {
  int spans = 0;
  for (uint32_t id : dirty_) {
    Chunk& c = chunks_[id];
    if (c.len == c.reported) continue;
    if (spans == kIoSpanMax) {
      overflow_ = true;
      break;
    }
    double* s = io_ + kIoSpanBase + 3 * spans++;
    s[0] = id;
    s[1] = static_cast<double>(reinterpret_cast<uintptr_t>(c.data + c.reported));
    s[2] = static_cast<double>(c.len - c.reported);
    c.reported = c.len;
  }
  dirty_.clear();
  io_[kIoSpans] = spans;
  if (!parked_.empty()) events |= kEvParked;
  if (failed_ || overflow_) {
    if (overflow_ && error_.empty()) error_ = "too many ciphertext spans in one call";
    events |= kEvError;
  }
  io_[kIoEvents] = events;
  return events;
}

int TlsSession::Fail(int ssl_error, int events) {
  if (!failed_) {
    failed_ = true;
    std::string reason;
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK && !handshake_done_) {
      // "certificate verify failed" says less than the verifier's own reason.
      reason = X509_verify_cert_error_string(verify);
      ERR_clear_error();
    } else if (ssl_error == SSL_ERROR_SYSCALL) {
      reason = TakeSslError("unexpected eof while reading");
    } else {
      reason = TakeSslError("protocol error");
    }
    error_ = reason;
  }
  ERR_clear_error();
  return events | kEvError;
}

int TlsSession::DriveHandshake(int events) {
  if (handshake_done_ || failed_) return events;
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    handshake_done_ = true;
    return events | kEvHandshakeDone;
  }
  const int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return events;
  return Fail(err, events);
}

int TlsSession::RetryParked(int events) {
  if (parked_.empty() || !handshake_done_ || failed_) return events;
  size_t off = 0;
  while (off < parked_.size()) {
    const size_t len = retry_len_ != 0 ? retry_len_ : parked_.size() - off;
    size_t n = 0;
    const int r = SSL_write_ex(ssl_, parked_.data() + off, len, &n);
    if (r == 1) {
      retry_len_ = 0;
      off += n;
      continue;
    }
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      retry_len_ = len;  // OpenSSL's rule: retry with the same length
      break;
    }
    events = Fail(err, events);
    break;
  }
  parked_.erase(0, off);
  return events;
}

// handshake(): starts the handshake (a client writes its ClientHello).
Napi::Value TlsSession::Handshake(const Napi::CallbackInfo& info) {
  if (ssl_ == nullptr) return Napi::Number::New(info.Env(), kEvError);
  Begin();
  return Napi::Number::New(info.Env(), Finish(DriveHandshake(0)));
}

// feed(input: Uint8Array | null, plain: Uint8Array): ciphertext in, plaintext out (io[kIoPlain]).
// All of `input` is consumed; what does not fit the plaintext view waits (kEvMore).
Napi::Value TlsSession::Feed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ssl_ == nullptr) return Napi::Number::New(env, kEvError);
  Begin();
  if (info[0].IsTypedArray()) {
    Napi::Uint8Array in = info[0].As<Napi::Uint8Array>();
    in_ = in.Data();
    in_len_ = in.ByteLength();
  }
  Napi::Uint8Array plain = info[1].As<Napi::Uint8Array>();
  uint8_t* out = plain.Data();
  const size_t cap = plain.ByteLength();
  size_t got = 0;
  int events = DriveHandshake(0);
  bool full = false;
  while (handshake_done_ && !failed_) {
    if (got == cap) {
      full = true;
      break;
    }
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, out + got, cap - got, &n);
    if (r == 1) {
      got += n;
      // Every byte given is read and OpenSSL holds nothing (no partial record, no unread
      // plaintext): another SSL_read could only find the BIO dry (WANT_READ). Skipping it saves
      // a full pass through the record layer per received chunk. (Post-handshake messages in
      // this chunk were handled by the calls that read them: a KeyUpdate is answered there.)
      if (in_len_ == 0 && carry_off_ >= carry_.size() && SSL_has_pending(ssl_) == 0) break;
      continue;
    }
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_ZERO_RETURN) {
      events |= kEvCloseNotify;
    } else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
      events = Fail(err, events);
    }
    break;
  }
  // OpenSSL reads until the BIO runs dry, except when we stopped early: keep the rest.
  if (in_len_ > 0) {
    carry_.insert(carry_.end(), in_, in_ + in_len_);
  }
  in_ = nullptr;
  in_len_ = 0;
  if (full && (SSL_pending(ssl_) > 0 || carry_off_ < carry_.size())) events |= kEvMore;
  events = RetryParked(events);
  io_[kIoPlain] = static_cast<double>(got);
  return Napi::Number::New(env, Finish(events));
}

// write(plain: Uint8Array): encrypts all of it (io[kIoConsumed]); parked while OpenSSL wants a read.
Napi::Value TlsSession::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ssl_ == nullptr) return Napi::Number::New(env, kEvError);
  Begin();
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  return Napi::Number::New(env, Finish(WritePlain(data.Data(), data.ByteLength())));
}

// writeScratch(len): write() of the first `len` bytes of the scratch after the io area. For small
// writes: a typed array's info costs more than copying them there, and a small array V8 keeps on
// its heap (<= 64 bytes) would be moved off-heap by it (an allocation and a copy per call).
Napi::Value TlsSession::WriteScratch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ssl_ == nullptr) return Napi::Number::New(env, kEvError);
  const double len = info[0].As<Napi::Number>().DoubleValue();
  if (!(len >= 0) || len > static_cast<double>(scratch_len_)) {
    throw Napi::RangeError::New(env, "writeScratch: length outside the scratch after the io area");
  }
  Begin();
  return Napi::Number::New(env, Finish(WritePlain(scratch_, static_cast<size_t>(len))));
}

// Encrypts p[0, len) (io[kIoConsumed] = len); what OpenSSL cannot take before a read is parked.
int TlsSession::WritePlain(const uint8_t* p, size_t len) {
  int events = 0;
  size_t off = 0;
  if (!failed_ && parked_.empty() && handshake_done_) {
    while (off < len) {
      size_t n = 0;
      const int r = SSL_write_ex(ssl_, p + off, len - off, &n);
      if (r == 1) {
        off += n;
        continue;
      }
      const int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        retry_len_ = len - off;
        break;
      }
      events = Fail(err, events);
      off = len;
      break;
    }
  }
  if (off < len && !failed_) parked_.append(reinterpret_cast<const char*>(p + off), len - off);
  io_[kIoConsumed] = static_cast<double>(len);
  return events;
}

// shutdown(): queues close_notify (the peer's is not waited for).
Napi::Value TlsSession::Shutdown(const Napi::CallbackInfo& info) {
  if (ssl_ == nullptr) return Napi::Number::New(info.Env(), kEvError);
  Begin();
  if (handshake_done_ && !failed_) SSL_shutdown(ssl_);
  ERR_clear_error();
  return Napi::Number::New(info.Env(), Finish(0));
}

// keyUpdate(requestPeer): sends a KeyUpdate now (and asks the peer to update too).
Napi::Value TlsSession::KeyUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ssl_ == nullptr) return Napi::Number::New(env, kEvError);
  Begin();
  int events = 0;
  if (SSL_version(ssl_) != TLS1_3_VERSION || !handshake_done_) {
    ERR_clear_error();
    throw Napi::Error::New(env, "KeyUpdate needs an established TLS 1.3 session");
  }
  if (SSL_key_update(ssl_, info[0].ToBoolean() ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) != 1) {
    ThrowSsl(env, "SSL_key_update");
  }
  const int r = SSL_do_handshake(ssl_);  // sends the scheduled KeyUpdate now
  if (r != 1) {
    const int err = SSL_get_error(ssl_, r);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) events = Fail(err, events);
  }
  return Napi::Number::New(env, Finish(events));
}

// release(): only frees the chunks listed in the io area (when JS has too many to wait).
Napi::Value TlsSession::Release(const Napi::CallbackInfo& info) {
  if (ssl_ == nullptr) return info.Env().Undefined();
  Begin();
  Finish(0);
  return info.Env().Undefined();
}

// copy(chunk, addr, len) -> Uint8Array: the bytes of a reported span, for connections whose wire
// sends from JS memory (RinglineTest's in-memory network) instead of pointing the kernel at the
// chunk. The span must lie inside that chunk's written bytes: no other memory can be read.
Napi::Value TlsSession::Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  const double addr = info[1].As<Napi::Number>().DoubleValue();
  const double len = info[2].As<Napi::Number>().DoubleValue();
  auto it = chunks_.find(id);
  if (it == chunks_.end()) throw Napi::RangeError::New(env, "TlsSession.copy: no such chunk");
  const Chunk& c = it->second;
  const double base = static_cast<double>(reinterpret_cast<uintptr_t>(c.data));
  if (!(len >= 0) || !(addr >= base) || addr + len > base + static_cast<double>(c.len)) {
    throw Napi::RangeError::New(env, "TlsSession.copy: span outside the chunk's bytes");
  }
  const size_t n = static_cast<size_t>(len);
  Napi::Uint8Array out = Napi::Uint8Array::New(env, n);
  memcpy(out.Data(), c.data + static_cast<size_t>(addr - base), n);
  return out;
}

Napi::Value TlsSession::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  if (ssl_ == nullptr) return o;
  o.Set("protocol", SSL_get_version(ssl_));
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_)) {
    const char* name = SSL_CIPHER_standard_name(c);
    o.Set("cipher", name != nullptr ? name : SSL_CIPHER_get_name(c));
  }
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
  if (alpn_len > 0) o.Set("alpn", std::string(reinterpret_cast<const char*>(alpn), alpn_len));
  if (const char* sn = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) o.Set("servername", sn);
  o.Set("resumed", SSL_session_reused(ssl_) == 1);
  const long verify = SSL_get_verify_result(ssl_);
  o.Set("verifyError", verify == X509_V_OK ? env.Null() : Napi::String::New(env, X509_verify_cert_error_string(verify)));
  if (X509* peer = SSL_get0_peer_certificate(ssl_)) {
    BIO* mem = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(mem, peer);
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem, &data);
    o.Set("peerCertificate", std::string(data, static_cast<size_t>(n)));
    BIO_free(mem);
  }
  ERR_clear_error();
  return o;
}

Napi::Value TlsSession::Error(const Napi::CallbackInfo& info) {
  return error_.empty() ? info.Env().Null() : Napi::String::New(info.Env(), error_);
}

// free(): drops the SSL and every chunk. Only once no send references a chunk any more.
Napi::Value TlsSession::Free(const Napi::CallbackInfo& info) {
  FreeAll();
  context_ref_.Reset();
  return info.Env().Undefined();
}

Napi::Object InitTls(Napi::Env env, Napi::Object exports) {
  exports.Set("TlsContext", TlsContext::Init(env));
  exports.Set("TlsSession", TlsSession::Init(env));
  // Whether the OpenSSL compiled against (Node's own) can hand records to kernel TLS (KTLS):
  // the kernel-TLS path needs this as well as the kernel's "tls" ULP (KernelTls.probe).
#ifdef OPENSSL_NO_KTLS
  exports.Set("tlsOpensslKtls", Napi::Boolean::New(env, false));
#else
  exports.Set("tlsOpensslKtls", Napi::Boolean::New(env, true));
#endif
  exports.Set("tlsOpensslVersion", Napi::String::New(env, OpenSSL_version(OPENSSL_VERSION)));
  return exports;
}

}  // namespace ringline
