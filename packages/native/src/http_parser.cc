// HTTP/1.1 request parsing for @ringline/http with llhttp (Node's own parser, strict against request
// smuggling), compiled from the system's node-llhttp sources with LLHTTP_STRICT_MODE=1: llhttp 8.1
// otherwise accepts spaces in header names ("X : a"), which Node's own llhttp 9 rejects.
//
// One native call per received chunk: `httpParse(id, view, maxHeads)` runs llhttp over the bytes
// of a provided buffer (or the connection's reassembly buffer) and writes compact records into a
// per-thread Int32Array shared with JS, so a chunk carrying many pipelined requests costs one
// N-API call. Offsets in records are relative to the view; JS copies what it keeps before the view
// goes back to the kernel.
//
// A request head is handed over only when it is complete: if a chunk ends inside a head, the
// parser state is restored to the snapshot taken at the message start and the call reports the
// head's first byte as "consumed up to", so the connection keeps those bytes and offers them again
// with more. Bodies stream: each body span is a record as soon as it is seen.
#include <llhttp.h>
#include <napi.h>
#include <strings.h>

#include <cstring>
#include <vector>

namespace ringline {

namespace {

// Record kinds (first word of each record). Keep in sync with packages/http/src/internal/parser.ts.
constexpr int32_t kHead = 1;   // kHead, method, flags, version, clHi, clLo, headStart, headEnd,
                               // urlStart, urlEnd, nHeaders, then nHeaders × (nameStart, nameLen,
                               // valueStart, valueLen)
constexpr int32_t kBody = 2;   // kBody, start, length
constexpr int32_t kEnd = 3;    // kEnd (message complete)
constexpr int32_t kError = 4;  // kError, status (400 | 431), llhttp errno, reason index

constexpr int32_t kHeadFixed = 11;

// Head flags.
constexpr int32_t kKeepAlive = 1;
constexpr int32_t kUpgrade = 2;
constexpr int32_t kChunked = 4;
constexpr int32_t kHasContentLength = 8;
constexpr int32_t kExpectContinue = 16;

// Words of the shared record array: [0] = words used, records from [2].
constexpr size_t kRecordWords = 1 << 16;
constexpr size_t kRecordStart = 2;
// Room kept for the records that may follow a head inside one call (body, end, error).
constexpr size_t kMargin = 16;

struct HttpEnv;

struct Parser {
  llhttp_t p;
  HttpEnv* env;
  const char* base = nullptr;
  bool live = false;
  bool in_head = false;
  bool in_message = false;  // between on_message_begin and on_message_complete
  bool completed = false;   // set by on_message_complete, read by the execute loop
  bool upgrade = false;
  bool keep_alive = true;
  bool too_large = false;
  bool field_expect = false;
  bool value_seen = false;  // the current header field already has its value span
  int32_t head_rec = 0;   // index of the current head record
  int32_t cur_header = -1;
  size_t head_start = 0;
  size_t last_end = 0;
  uint32_t max_head_bytes = 16384;
  uint32_t max_headers = 256;
};

struct HttpEnv {
  int32_t* rec = nullptr;
  size_t n = kRecordStart;
  std::vector<Parser*> parsers;
  std::vector<int32_t> free_ids;
  llhttp_settings_t settings;
};

inline Parser* Of(llhttp_t* p) { return static_cast<Parser*>(p->data); }
inline int32_t Off(Parser* ps, const char* at) { return static_cast<int32_t>(at - ps->base); }

int OnMessageBegin(llhttp_t* p) {
  Parser* ps = Of(p);
  HttpEnv* e = ps->env;
  ps->in_head = true;
  ps->in_message = true;
  ps->cur_header = -1;
  ps->field_expect = false;
  ps->head_rec = static_cast<int32_t>(e->n);
  int32_t* r = e->rec + e->n;
  std::memset(r, 0, kHeadFixed * sizeof(int32_t));
  r[0] = kHead;
  r[6] = static_cast<int32_t>(ps->head_start);
  e->n += kHeadFixed;
  return 0;
}

int OnUrl(llhttp_t* p, const char* at, size_t len) {
  Parser* ps = Of(p);
  int32_t* r = ps->env->rec + ps->head_rec;
  if (r[9] == 0) r[8] = Off(ps, at);
  r[9] = Off(ps, at + len);
  ps->last_end = at + len - ps->base;
  return 0;
}

int OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  Parser* ps = Of(p);
  if (!ps->in_head) return 0;  // a trailer field of a chunked body: not kept
  HttpEnv* e = ps->env;
  int32_t* r = e->rec + ps->head_rec;
  if (static_cast<uint32_t>(r[10]) >= ps->max_headers) {
    ps->too_large = true;
    llhttp_set_error_reason(p, "too many header fields");
    return HPE_USER;
  }
  int32_t* h = e->rec + e->n;
  h[0] = Off(ps, at);
  h[1] = static_cast<int32_t>(len);
  h[2] = Off(ps, at + len);
  h[3] = 0;
  ps->cur_header = static_cast<int32_t>(e->n);
  ps->value_seen = false;
  e->n += 4;
  r[10]++;
  ps->field_expect = len == 6 && strncasecmp(at, "expect", 6) == 0;
  ps->last_end = at + len - ps->base;
  return 0;
}

int OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  Parser* ps = Of(p);
  if (!ps->in_head || ps->cur_header < 0) return 0;  // trailer fields of a chunked body are not kept
  int32_t* h = ps->env->rec + ps->cur_header;
  if (h[3] != 0 || ps->value_seen) {
    // obs-fold (a value continued on the next line): rejected, as RFC 9112 §5.2 allows.
    llhttp_set_error_reason(p, "obsolete line folding in a header value");
    return HPE_USER;
  }
  ps->value_seen = true;
  h[2] = Off(ps, at);
  h[3] = static_cast<int32_t>(len);
  if (ps->field_expect && len == 12 && strncasecmp(at, "100-continue", 12) == 0) {
    ps->env->rec[ps->head_rec + 2] |= kExpectContinue;
  }
  ps->last_end = at + len - ps->base;
  return 0;
}

int OnHeadersComplete(llhttp_t* p) {
  Parser* ps = Of(p);
  if (ps->last_end - ps->head_start > ps->max_head_bytes) {
    ps->too_large = true;
    llhttp_set_error_reason(p, "header section too large");
    return HPE_USER;
  }
  int32_t* r = ps->env->rec + ps->head_rec;
  int32_t flags = r[2];
  ps->keep_alive = llhttp_should_keep_alive(p) != 0;
  ps->upgrade = p->upgrade != 0;
  if (ps->keep_alive) flags |= kKeepAlive;
  if (ps->upgrade) flags |= kUpgrade;
  if (p->flags & F_CHUNKED) flags |= kChunked;
  if (p->flags & F_CONTENT_LENGTH) flags |= kHasContentLength;
  r[1] = p->method;
  r[2] = flags;
  r[3] = p->http_major * 10 + p->http_minor;
  r[4] = static_cast<int32_t>(p->content_length >> 32);
  r[5] = static_cast<int32_t>(p->content_length & 0xffffffffu);
  r[7] = static_cast<int32_t>(ps->last_end);
  ps->in_head = false;
  ps->cur_header = -1;
  return 0;
}

int OnBody(llhttp_t* p, const char* at, size_t len) {
  Parser* ps = Of(p);
  HttpEnv* e = ps->env;
  int32_t* r = e->rec + e->n;
  r[0] = kBody;
  r[1] = Off(ps, at);
  r[2] = static_cast<int32_t>(len);
  e->n += 3;
  return 0;
}

int OnMessageComplete(llhttp_t* p) {
  Parser* ps = Of(p);
  HttpEnv* e = ps->env;
  e->rec[e->n++] = kEnd;
  ps->completed = true;
  ps->in_message = false;
  // Pause after every message: the loop snapshots the state at the next message start.
  return HPE_PAUSED;
}

int OnChunkComplete(llhttp_t* p) {
  Parser* ps = Of(p);
  // Many tiny chunks in one view: stop before the record array runs out of room.
  return kRecordWords - ps->env->n < kMargin * 4 ? HPE_PAUSED : 0;
}

void PushError(HttpEnv* e, int32_t status, int32_t err) {
  int32_t* r = e->rec + e->n;
  r[0] = kError;
  r[1] = status;
  r[2] = err;
  r[3] = 0;
  e->n += 4;
}

HttpEnv* EnvOf(const Napi::CallbackInfo& info) { return static_cast<HttpEnv*>(info.Data()); }

Parser* ParserOf(const Napi::CallbackInfo& info, HttpEnv* e) {
  const int32_t id = info[0].As<Napi::Number>().Int32Value();
  if (id < 0 || static_cast<size_t>(id) >= e->parsers.size() || e->parsers[id] == nullptr) {
    throw Napi::RangeError::New(info.Env(), "unknown http parser id");
  }
  return e->parsers[id];
}

// httpParserCreate(maxHeadBytes, maxHeaders) -> id
Napi::Value Create(const Napi::CallbackInfo& info) {
  HttpEnv* e = EnvOf(info);
  auto* ps = new Parser();
  ps->env = e;
  ps->max_head_bytes = info[0].As<Napi::Number>().Uint32Value();
  ps->max_headers = info[1].As<Napi::Number>().Uint32Value();
  if (ps->max_headers > (kRecordWords - kRecordStart - kHeadFixed - kMargin) / 4 / 2) {
    delete ps;
    throw Napi::RangeError::New(info.Env(), "maxHeaders too large");
  }
  llhttp_init(&ps->p, HTTP_REQUEST, &e->settings);
  ps->p.data = ps;
  ps->live = true;
  int32_t id;
  if (!e->free_ids.empty()) {
    id = e->free_ids.back();
    e->free_ids.pop_back();
    e->parsers[id] = ps;
  } else {
    id = static_cast<int32_t>(e->parsers.size());
    e->parsers.push_back(ps);
  }
  return Napi::Number::New(info.Env(), id);
}

// httpParserFree(id)
void Free(const Napi::CallbackInfo& info) {
  HttpEnv* e = EnvOf(info);
  Parser* ps = ParserOf(info, e);
  const int32_t id = info[0].As<Napi::Number>().Int32Value();
  delete ps;
  e->parsers[id] = nullptr;
  e->free_ids.push_back(id);
}

// httpParse(id, view, maxHeads) -> bytes consumed; records in httpRecords() (word 0 = words used).
Napi::Value Parse(const Napi::CallbackInfo& info) {
  HttpEnv* e = EnvOf(info);
  Parser* ps = ParserOf(info, e);
  Napi::Uint8Array view = info[1].As<Napi::Uint8Array>();
  int32_t max_heads = info[2].As<Napi::Number>().Int32Value();
  const char* data = reinterpret_cast<const char*>(view.Data());
  const size_t len = view.ByteLength();
  e->n = kRecordStart;
  size_t pos = 0;
  const size_t head_room = kHeadFixed + 4 * static_cast<size_t>(ps->max_headers) + kMargin;
  ps->base = data;
  while (pos < len && ps->live) {
    // At a message boundary (nothing of the next message parsed yet) the state can be restored.
    const bool boundary = !ps->in_message;
    if (boundary && (max_heads <= 0 || kRecordWords - e->n < head_room)) break;
    llhttp_t snap;
    size_t n0 = e->n;
    if (boundary) std::memcpy(&snap, &ps->p, sizeof snap);
    ps->head_start = pos;
    ps->last_end = pos;
    ps->completed = false;
    const llhttp_errno_t err = llhttp_execute(&ps->p, data + pos, len - pos);
    if (err == HPE_OK) {
      if (ps->in_head) {
        if (len - ps->head_start > ps->max_head_bytes) {
          e->n = n0;
          PushError(e, 431, HPE_USER);
          ps->live = false;
          pos = len;
          break;
        }
        // Incomplete head: forget it, and keep its bytes in the connection for the next call.
        // (A head always starts in a call that started at a boundary: each message pauses
        // the parser at its end.)
        std::memcpy(&ps->p, &snap, sizeof snap);
        e->n = n0;
        ps->in_head = false;
        ps->in_message = false;
        break;
      }
      pos = len;
      break;
    }
    if (err == HPE_PAUSED) {
      pos = llhttp_get_error_pos(&ps->p) - data;
      llhttp_resume(&ps->p);
      if (!ps->completed) break;  // paused between chunks to save record room
      if (boundary) max_heads--;
      // After an upgrade the bytes belong to the new protocol; after a message that ends the
      // connection nothing more is parsed.
      if (ps->upgrade || !ps->keep_alive) {
        ps->live = false;
        break;
      }
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE) {
      pos = llhttp_get_error_pos(&ps->p) - data;
      ps->live = false;
      break;
    }
    // A protocol error: the connection answers 400 (431 for our size limits) and closes.
    e->n = ps->in_head ? static_cast<size_t>(ps->head_rec) : e->n;
    PushError(e, ps->too_large ? 431 : 400, err);
    ps->live = false;
    pos = len;
    break;
  }
  e->rec[0] = static_cast<int32_t>(e->n);
  return Napi::Number::New(info.Env(), static_cast<double>(pos));
}

// The llhttp errno name of a kError record (for logs and tests).
Napi::Value ErrorName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), llhttp_errno_name(static_cast<llhttp_errno_t>(info[0].As<Napi::Number>().Int32Value())));
}

void Cleanup(void* arg) {
  HttpEnv* e = static_cast<HttpEnv*>(arg);
  for (Parser* ps : e->parsers) delete ps;
  delete[] e->rec;
  delete e;
}

}  // namespace

void InitHttp(Napi::Env env, Napi::Object exports) {
  auto* e = new HttpEnv();
  e->rec = new int32_t[kRecordWords]();
  llhttp_settings_init(&e->settings);
  e->settings.on_message_begin = OnMessageBegin;
  e->settings.on_url = OnUrl;
  e->settings.on_header_field = OnHeaderField;
  e->settings.on_header_value = OnHeaderValue;
  e->settings.on_headers_complete = OnHeadersComplete;
  e->settings.on_body = OnBody;
  e->settings.on_message_complete = OnMessageComplete;
  e->settings.on_chunk_complete = OnChunkComplete;
  napi_add_env_cleanup_hook(env, Cleanup, e);
  // The record array lives as long as the env; JS reads it after each httpParse call.
  auto buffer = Napi::ArrayBuffer::New(env, e->rec, kRecordWords * sizeof(int32_t));
  exports.Set("httpRecords", Napi::Int32Array::New(env, kRecordWords, buffer, 0));
  exports.Set("httpParserCreate", Napi::Function::New(env, Create, "httpParserCreate", e));
  exports.Set("httpParserFree", Napi::Function::New(env, Free, "httpParserFree", e));
  exports.Set("httpParse", Napi::Function::New(env, Parse, "httpParse", e));
  exports.Set("httpErrorName", Napi::Function::New(env, ErrorName, "httpErrorName", e));
  // Method names by llhttp code (llhttp_method_name aborts on codes it does not know).
  Napi::Array methods = Napi::Array::New(env);
#define RINGLINE_HTTP_METHOD(NUM, NAME, STRING) methods.Set(static_cast<uint32_t>(NUM), Napi::String::New(env, #STRING));
  HTTP_METHOD_MAP(RINGLINE_HTTP_METHOD)
#undef RINGLINE_HTTP_METHOD
  exports.Set("httpMethods", methods);
}

}  // namespace ringline
