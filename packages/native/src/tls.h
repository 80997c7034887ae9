// TLS records on the ring, with the OpenSSL that Node itself exports (compiled against Node's
// headers, never linked with -lssl: two OpenSSL builds in one process would mix their state).
//
// Ciphertext never enters JS:
//   - Received bytes are read by OpenSSL straight from the provided buffer JS hands to `feed`
//     (a custom BIO whose read side is "the current input span"); only an unconsumed tail (when
//     the plaintext output filled up) is copied, into `carry_`.
//   - Records OpenSSL writes go into native chunks; each call reports the new bytes as spans
//     (chunk id, address, length) that JS's ordered send queue points SENDs at. JS hands chunk ids
//     back once no send references them any more (batched into the next call); they go to a
//     per-thread pool, so an idle connection holds no ciphertext memory.
// Results of every call are written into one shared Float64Array (`io`), so a call costs one
// N-API crossing no matter how many records it produced or consumed.
#pragma once

#include <napi.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace ringline {

// Layout of the shared Float64Array; keep in sync with packages/tls/src/internal/engine.ts.
enum TlsIo : int {
  kIoPlain = 0,        // out: plaintext bytes written into the output view (feed)
  kIoEvents = 1,       // out: TlsEvent bits
  kIoSpans = 2,        // out: number of ciphertext spans at kIoSpanBase
  kIoConsumed = 3,     // out: plaintext bytes taken (write)
  kIoReleases = 4,     // in: number of chunk ids at kIoReleaseBase to free before anything else
  kIoReleaseBase = 64,
  kIoReleaseMax = 960,
  kIoSpanBase = 1024,  // (chunk id, address, length) triples
  kIoSpanMax = 1024,
  kIoLength = 1024 + 3 * 1024,
};

enum TlsEvent : int {
  kEvHandshakeDone = 1,
  kEvCloseNotify = 2,
  kEvError = 4,
  kEvMore = 8,      // the plaintext view filled up: call feed again (with no input)
  kEvParked = 16,   // a write waits for the peer (OpenSSL wants a read first)
};

class TlsContext : public Napi::ObjectWrap<TlsContext> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit TlsContext(const Napi::CallbackInfo& info);
  ~TlsContext() override;

  SSL_CTX* ctx() const { return ctx_; }
  bool server() const { return server_; }
  // Client session cache (resumption), keyed by what the caller chose (e.g. "host:port").
  SSL_SESSION* TakeSession(const std::string& key);
  void StoreSession(const std::string& key, SSL_SESSION* session);

 private:
  static int SelectAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                        unsigned int inlen, void* arg);
  static int OnClientHello(SSL* ssl, int* alert, void* arg);
  static int OnNewSession(SSL* ssl, SSL_SESSION* session);
  static int OnTicketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                         int enc);
  SSL_CTX* ForName(const std::string& name) const;
  Napi::Value SetTicketKeys(const Napi::CallbackInfo& info);

  // Session-ticket keys, newest first: tickets are issued with the first and accepted with any
  // (a rotation keeps the previous key so that tickets issued just before still resume).
  struct TicketKey {
    unsigned char name[16];
    unsigned char hmac[32];
    unsigned char aes[32];
  };
  std::vector<TicketKey> ticket_keys_;

  SSL_CTX* ctx_ = nullptr;
  bool server_ = false;
  std::string alpn_;  // wire format: length-prefixed protocol names, in preference order
  std::vector<std::pair<std::string, SSL_CTX*>> sni_;
  std::vector<Napi::ObjectReference> sni_refs_;  // keeps the SNI contexts (and their callbacks' state) alive
  std::unordered_map<std::string, SSL_SESSION*> sessions_;
};

class TlsSession : public Napi::ObjectWrap<TlsSession> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit TlsSession(const Napi::CallbackInfo& info);
  ~TlsSession() override;

  // BIO callbacks.
  size_t ReadInput(uint8_t* out, size_t len);
  void WriteOutput(const uint8_t* data, size_t len);
  const std::string& session_key() const { return session_key_; }
  TlsContext* context() const { return context_; }

 private:
  struct Chunk {
    uint8_t* data;
    size_t cap;
    size_t len;
    size_t reported;
  };

  Napi::Value Handshake(const Napi::CallbackInfo& info);
  Napi::Value Feed(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value WriteScratch(const Napi::CallbackInfo& info);
  Napi::Value Shutdown(const Napi::CallbackInfo& info);
  Napi::Value KeyUpdate(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value Copy(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Error(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);

  void Begin();
  int Finish(int events);
  int DriveHandshake(int events);
  int RetryParked(int events);
  int Fail(int ssl_error, int events);
  int WritePlain(const uint8_t* p, size_t len);
  void FreeAll();

  SSL* ssl_ = nullptr;
  TlsContext* context_ = nullptr;
  Napi::ObjectReference context_ref_;
  Napi::Reference<Napi::Float64Array> io_ref_;
  double* io_ = nullptr;
  // Bytes after the io area in its ArrayBuffer (kept alive by io_ref_): small writes are copied
  // there by JS and encrypted from there (writeScratch), not passed as typed arrays.
  const uint8_t* scratch_ = nullptr;
  size_t scratch_len_ = 0;
  std::string session_key_;

  // Input of the current call, then what is left of earlier calls.
  const uint8_t* in_ = nullptr;
  size_t in_len_ = 0;
  std::vector<uint8_t> carry_;
  size_t carry_off_ = 0;

  // Ciphertext output.
  std::unordered_map<uint32_t, Chunk> chunks_;
  std::vector<uint32_t> dirty_;  // chunks with unreported bytes, in write order
  uint32_t tail_ = 0;            // chunk being appended to (0: none); may be released (pooled) once sent
  uint32_t next_chunk_ = 1;
  bool overflow_ = false;        // more spans than the io area holds (never with JS's write limit)

  // A write OpenSSL could not finish before reading: retried after each feed with the same length.
  std::string parked_;
  size_t retry_len_ = 0;

  bool handshake_done_ = false;
  bool failed_ = false;
  std::string error_;
};

Napi::Object InitTls(Napi::Env env, Napi::Object exports);

}  // namespace ringline
