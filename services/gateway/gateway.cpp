#include "services/gateway/gateway.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "common/base/key.h"
#include "common/base/version.h"
#include "common/metrics/metrics.h"
#include "common/transport/buffer_pool.h"

namespace ddsplit::gateway {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kOctetStream = "application/octet-stream";
// A thread keeps its PUT buffer for the next request up to this size; larger values get a buffer
// of their own, freed after the request.
constexpr size_t kKeptBufferBytes = size_t{8} << 20;
// Keys per native MultiGet of a batchGet.
constexpr size_t kBatchChunk = 16;
// How far ingest reads ahead of the line it is parsing.
constexpr size_t kIngestChunk = size_t{256} << 10;
// Readiness: an answer this recent counts; a probe's result is reused this long.
constexpr auto kAnswerFreshness = std::chrono::seconds(2);
constexpr auto kProbeCacheTime = std::chrono::seconds(1);
constexpr auto kProbeTimeout = std::chrono::milliseconds(1000);
// The key readiness probes read (nobody writes it) and the invalid content type the splitter
// refuses before storing anything.
constexpr std::string_view kProbeKey =
    "\x7f"
    "ddsplit-gateway-readiness-probe";
constexpr std::string_view kProbeBadContentType = "\x01";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string NewRequestId() {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   std::hash<std::thread::id>{}(std::this_thread::get_id()));
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(rng()));
  return text;
}

std::span<const std::byte> BytesOf(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

bool IsTransportFailure(ErrorCode code) {
  return code == ErrorCode::kUnavailable || code == ErrorCode::kDeadlineExceeded;
}

}  // namespace

// Per HTTP thread: its client and a reusable body buffer.
struct Gateway::ThreadState {
  std::unique_ptr<client::Client> client;
  // The kept PUT buffer. Its thread holds the mutex while a request uses the buffer, so
  // ReleaseIdleMemory() (another thread) frees it only when unused; never contended otherwise.
  std::mutex buffer_mutex;
  std::unique_ptr<std::byte[]> buffer;
  size_t capacity = 0;
};

// One request being answered.
struct Gateway::Context {
  HttpExchange& ex;
  Target target;
  RouteLabel route = RouteLabel::kOther;
  std::string request_id;
  std::string_view traceparent;
  ServerTiming timing;
  uint64_t request_bytes = 0;
  int status = 0;

  explicit Context(HttpExchange& exchange) : ex(exchange) {}

  // Sends the answer with the headers every answer carries, and records it.
  void Send(GatewayProbe& probe, HttpResponseHead head,
            std::span<const std::span<const std::byte>> body) {
    // A HEAD answer announces what GET would send, and sends no body, errors included.
    if (ex.method() == "HEAD") head.omit_body = true;
    head.headers.emplace_back("X-Request-Id", request_id);
    if (!traceparent.empty()) head.headers.emplace_back("traceparent", std::string(traceparent));
    timing.gateway_ms = MsSince(ex.started());
    head.headers.emplace_back("Server-Timing", ServerTimingHeader(timing));
    status = head.status;
    Status sent = ex.Respond(head, body);
    if (!sent.ok()) {
      spdlog::debug("gateway: answer to {} not delivered: {}", request_id, sent.error().ToString());
    }
    uint64_t response_bytes = 0;
    if (!head.omit_body) {
      for (const auto& part : body) response_bytes += part.size();
    }
    probe.TimingObserved(timing);
    probe.RequestFinished(route, head.status, static_cast<uint64_t>(MsSince(ex.started()) * 1e6),
                          request_bytes, response_bytes);
    spdlog::debug("gateway: {} {} -> {} ({:.3f} ms) id={}{}{}", ex.method(), ex.target(),
                  head.status, timing.gateway_ms, request_id,
                  traceparent.empty() ? "" : " traceparent=", traceparent);
  }

  void SendText(GatewayProbe& probe, HttpResponseHead head, std::string_view content_type,
                std::string_view body) {
    head.headers.emplace_back("Content-Type", std::string(content_type));
    head.content_length = body.size();
    std::span<const std::byte> part = BytesOf(body);
    Send(probe, std::move(head), std::span(&part, 1));
  }

  void SendJson(GatewayProbe& probe, int status, const Json& doc,
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponseHead head;
    head.status = status;
    head.headers = std::move(headers);
    SendText(probe, std::move(head), kJson,
             doc.dump(-1, ' ', false, Json::error_handler_t::replace));
  }

  // An RFC 9457 problem answer.
  void SendProblem(GatewayProbe& probe, int status, std::string_view code, std::string_view detail,
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponseHead head;
    head.status = status;
    head.headers = std::move(headers);
    if (NeedsRetryAfter(status)) head.headers.emplace_back("Retry-After", "1");
    std::string path(ex.target().substr(0, ex.target().find('?')));
    SendText(probe, std::move(head), kProblemContentType,
             ProblemJson(status, code, detail, path, request_id));
  }

  void SendError(GatewayProbe& probe, const Error& error,
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
    SendProblem(probe, HttpStatusFor(error.code()), ErrorCodeName(error.code()), error.message(),
                std::move(headers));
  }
};

// ------------------------------------------------------------------------------ set-up

Gateway::Gateway(GatewayOptions options, GatewayProbe& probe, zmq::context_t& context)
    : options_(std::move(options)), probe_(probe), context_(context) {
  for (int i = 0; i < options_.http_threads; ++i)
    threads_.push_back(std::make_unique<ThreadState>());
}

Gateway::~Gateway() = default;

Result<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options, GatewayProbe& probe,
                                                 zmq::context_t& context) {
  if (options.splitters.empty())
    return Error(ErrorCode::kInvalidArgument, "no splitter endpoint given");
  if (options.assemblers.empty())
    return Error(ErrorCode::kInvalidArgument, "no assembler endpoint given");
  if (options.http_threads < 1)
    return Error(ErrorCode::kInvalidArgument, "need at least one HTTP thread");
  if (options.request_timeout.count() <= 0) {
    return Error(ErrorCode::kInvalidArgument, "request timeout must be positive");
  }
  if (options.max_record_bytes == 0)
    return Error(ErrorCode::kInvalidArgument, "max record bytes must be positive");
  if (options.ingest_concurrency < 1) options.ingest_concurrency = 1;
  std::unique_ptr<Gateway> gateway(new Gateway(std::move(options), probe, context));
  client::ClientOptions client_options;
  client_options.splitters = gateway->options_.splitters;
  client_options.assemblers = gateway->options_.assemblers;
  client_options.timeout = kProbeTimeout;
  client_options.max_in_flight = 4;
  auto connected = client::Client::Connect(std::move(client_options), &context);
  if (!connected.ok()) {
    return Error(ErrorCode::kInvalidArgument,
                 "bad backend endpoint: " + connected.error().message());
  }
  gateway->readiness_client_ = std::move(*connected);
  // One client per HTTP thread, connected now so that each has finished its handshakes with
  // every splitter and assembler before the first request (a client created later, while a
  // backend hangs, could never send to it). Each is handed to its thread when the threads start.
  for (auto& state : gateway->threads_) {
    client::ClientOptions per_thread;
    per_thread.splitters = gateway->options_.splitters;
    per_thread.assemblers = gateway->options_.assemblers;
    per_thread.timeout = gateway->options_.request_timeout;
    per_thread.max_record_bytes = gateway->options_.max_record_bytes;
    per_thread.max_in_flight = static_cast<size_t>(gateway->options_.ingest_concurrency) + 4;
    auto client = client::Client::Connect(std::move(per_thread), &context);
    if (!client.ok()) return Error(ErrorCode::kInvalidArgument, client.error().message());
    state->client = std::move(*client);
  }
  return gateway;
}

client::Client* Gateway::ClientFor(Context& ctx) {
  size_t index = ctx.ex.thread_index();
  if (index >= threads_.size()) return nullptr;
  return threads_[index]->client.get();
}

void Gateway::NoteAnswer(bool write, ErrorCode code) {
  if (IsTransportFailure(code)) return;
  (write ? splitter_answered_ns_ : assembler_answered_ns_)
      .store(NowNs(), std::memory_order_relaxed);
}

Status Gateway::CheckReady() {
  const int64_t now = NowNs();
  const int64_t fresh = std::chrono::nanoseconds(kAnswerFreshness).count();
  if (now - splitter_answered_ns_.load(std::memory_order_relaxed) < fresh &&
      now - assembler_answered_ns_.load(std::memory_order_relaxed) < fresh) {
    return OkStatus();
  }
  if (last_probe_ns_ != 0 &&
      now - last_probe_ns_ < std::chrono::nanoseconds(kProbeCacheTime).count()) {
    return last_probe_;
  }
  // Both probes in flight at once; each side answers or times out.
  std::optional<ErrorCode> splitter;
  std::optional<ErrorCode> assembler;
  static const std::byte kNothing[1] = {};
  client::PutArgs put;
  put.key = kProbeKey;
  put.value = std::span(kNothing, 0);
  put.content_type = kProbeBadContentType;
  readiness_client_->PutAsync(put, [&](Result<client::PutResult> result) {
    splitter = result.ok() ? ErrorCode::kOk : result.error().code();
  });
  client::GetOptions head;
  head.head_only = true;
  readiness_client_->GetAsync(kProbeKey, head, [&](Result<client::GetResult> result) {
    assembler = result.ok() ? ErrorCode::kOk : result.error().code();
  });
  while (!splitter || !assembler) readiness_client_->Poll(std::chrono::milliseconds(50));
  NoteAnswer(true, *splitter);
  NoteAnswer(false, *assembler);
  std::string missing;
  if (IsTransportFailure(*splitter)) missing = "no splitter answered";
  if (IsTransportFailure(*assembler)) {
    missing += missing.empty() ? "no assembler answered" : "; no assembler answered";
  }
  last_probe_ns_ = NowNs();
  last_probe_ = missing.empty() ? OkStatus() : Status(Error(ErrorCode::kUnavailable, missing));
  return last_probe_;
}

// ------------------------------------------------------------------------------ dispatch

void Gateway::ReleaseIdleMemory() {
  for (auto& state : threads_) {
    std::unique_lock lock(state->buffer_mutex, std::try_to_lock);
    if (!lock.owns_lock()) continue;  // in use: that thread is busy after all
    state->buffer.reset();
    state->capacity = 0;
  }
  transport::BufferPool::Global().Trim();
}

void Gateway::Handle(HttpExchange& ex) {
  requests_started_.fetch_add(1, std::memory_order_relaxed);
  requests_in_flight_.fetch_add(1, std::memory_order_relaxed);
  struct InFlight {
    std::atomic<int>& count;
    ~InFlight() { count.fetch_sub(1, std::memory_order_relaxed); }
  } in_flight{requests_in_flight_};
  Context ctx(ex);
  std::string_view given_id = ex.Header("X-Request-Id");
  ctx.request_id = IsAcceptableRequestId(given_id) ? std::string(given_id) : NewRequestId();
  std::string_view traceparent = ex.Header("traceparent");
  if (IsValidTraceparent(traceparent)) ctx.traceparent = traceparent;
  probe_.RequestStarted();

  auto target = ParseTarget(ex.target());
  if (!target.ok()) return ctx.SendError(probe_, target.error());
  ctx.target = std::move(*target);
  const std::string_view method = ex.method();
  auto not_allowed = [&](std::string_view allow) {
    ctx.SendProblem(probe_, 405, "method_not_allowed",
                    std::string(method) + " is not allowed here; allowed: " + std::string(allow),
                    {{"Allow", std::string(allow)}});
  };
  switch (ctx.target.route) {
    case Route::kRecord:
      return HandleRecord(ctx);
    case Route::kList:
      if (method != "GET") return not_allowed("GET");
      ctx.route = RouteLabel::kList;
      return ListRecords(ctx);
    case Route::kBatchGet:
      if (method != "POST") return not_allowed("POST");
      ctx.route = RouteLabel::kBatchGet;
      return BatchGet(ctx);
    case Route::kIngest:
      if (method != "POST") return not_allowed("POST");
      ctx.route = RouteLabel::kIngest;
      return Ingest(ctx);
    case Route::kNotFound:
      break;
  }
  ctx.SendProblem(probe_, 404, "no_such_route",
                  "no API at " + std::string(ex.target().substr(0, ex.target().find('?'))) +
                      "; see /v1/records");
}

void Gateway::HandleRecord(Context& ctx) {
  const std::string_view method = ctx.ex.method();
  if (method == "GET") {
    ctx.route = RouteLabel::kGetRecord;
  } else if (method == "HEAD") {
    ctx.route = RouteLabel::kHeadRecord;
  } else if (method == "PUT") {
    ctx.route = RouteLabel::kPutRecord;
  } else if (method == "DELETE") {
    ctx.route = RouteLabel::kDeleteRecord;
  } else {
    return ctx.SendProblem(probe_, 405, "method_not_allowed",
                           std::string(method) + " is not allowed on a record",
                           {{"Allow", "GET, HEAD, PUT, DELETE"}});
  }
  if (auto valid = ValidateKey(ctx.target.key); !valid.ok())
    return ctx.SendError(probe_, valid.error());
  switch (ctx.route) {
    case RouteLabel::kGetRecord:
      return GetRecord(ctx, false);
    case RouteLabel::kHeadRecord:
      return GetRecord(ctx, true);
    case RouteLabel::kPutRecord:
      return PutRecord(ctx);
    case RouteLabel::kDeleteRecord:
      return DeleteRecord(ctx);
    default:
      return;
  }
}

// ------------------------------------------------------------------------------ native calls

namespace {

// Runs one blocking native call, adding its wall time and stage timings to the request's
// Server-Timing and the outcome to the native RED metrics.
template <typename T, typename Call>
Result<T> Timed(GatewayProbe& probe, NativeOp op, ServerTiming& timing, Call call) {
  auto& metric = probe.native(op);
  metric.Started();
  const auto start = Clock::now();
  Result<T> result = call();
  const double ms = MsSince(start);
  timing.backend_ms += ms;
  metric.Finished(result.ok() ? ErrorCode::kOk : result.error().code(),
                  static_cast<uint64_t>(ms * 1e6));
  if constexpr (requires(T t) { t.timings; }) {
    if (result.ok()) AddStageTimes(result->timings, timing);
  }
  return result;
}

// The headers describing a record: Content-Type, ETag, Last-Modified, metadata.
void AddRecordHeaders(const client::RecordInfo& info,
                      std::vector<std::pair<std::string, std::string>>& headers) {
  headers.emplace_back("Content-Type",
                       info.content_type.empty() ? std::string(kOctetStream) : info.content_type);
  headers.emplace_back("ETag", ETagOf(info.version));
  headers.emplace_back("Accept-Ranges", "bytes");
  // The version's hybrid logical clock carries the write's wall-clock milliseconds.
  std::time_t seconds =
      static_cast<std::time_t>(HybridLogicalClock::ToMillis(info.version.hlc) / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  size_t n = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  headers.emplace_back("Last-Modified", std::string(text, n));
  for (const auto& [name, value] : info.metadata) {
    headers.emplace_back("X-DDSplit-Meta-" + name, value);
  }
}

}  // namespace

// ------------------------------------------------------------------------------ PUT

void Gateway::PutRecord(Context& ctx) {
  HttpExchange& ex = ctx.ex;
  if (ex.chunked() || !ex.content_length()) {
    return ctx.SendProblem(probe_, 411, "length_required",
                           "PUT needs a Content-Length (chunked uploads are not supported)");
  }
  const uint64_t size = *ex.content_length();
  if (size > options_.max_record_bytes) {
    return ctx.SendProblem(probe_, 413, "too_large",
                           "the value of " + std::to_string(size) + " bytes exceeds the limit of " +
                               std::to_string(options_.max_record_bytes) + " bytes");
  }
  std::string_view content_type = ex.Header("Content-Type");
  if (auto valid = ValidateContentType(content_type); !valid.ok()) {
    return ctx.SendError(probe_, valid.error());
  }
  std::vector<std::pair<std::string, std::string>> metadata;
  size_t metadata_bytes = 0;
  for (const HttpHeader& header : ex.headers()) {
    if (!StartsWithIgnoreCase(header.name, kMetaHeaderPrefix)) continue;
    std::string name = ToLowerAscii(header.name.substr(kMetaHeaderPrefix.size()));
    if (auto valid = ValidateMetadataEntry(name, header.value); !valid.ok()) {
      return ctx.SendProblem(probe_, 400, "invalid_argument",
                             "header " + std::string(header.name) + ": " + valid.error().message());
    }
    for (const auto& entry : metadata) {
      if (entry.first == name) {
        return ctx.SendProblem(probe_, 400, "invalid_argument",
                               "metadata " + name + " given twice");
      }
    }
    metadata_bytes += name.size() + header.value.size();
    metadata.emplace_back(std::move(name), std::string(header.value));
  }
  if (metadata.size() > kMaxMetadataEntries || metadata_bytes > kMaxMetadataBytes) {
    return ctx.SendProblem(probe_, 400, "invalid_argument",
                           "metadata is limited to " + std::to_string(kMaxMetadataEntries) +
                               " entries and " + std::to_string(kMaxMetadataBytes) + " bytes");
  }
  client::Client* client = ClientFor(ctx);
  if (client == nullptr) return ctx.SendProblem(probe_, 503, "unavailable", "no client available");

  // Preconditions, checked against the current version just before the write (not atomically
  // with it: a concurrent writer can come in between).
  std::string_view if_match = ex.Header("If-Match");
  std::string_view if_none_match = ex.Header("If-None-Match");
  if (!if_match.empty() || !if_none_match.empty()) {
    client::GetOptions head;
    head.head_only = true;
    auto current = Timed<client::GetResult>(probe_, NativeOp::kHead, ctx.timing,
                                            [&] { return client->Get(ctx.target.key, head); });
    NoteAnswer(false, current.ok() ? ErrorCode::kOk : current.error().code());
    const bool exists = current.ok();
    if (!exists && current.error().code() != ErrorCode::kNotFound) {
      return ctx.SendError(probe_, current.error());
    }
    Version version = exists ? current->info.version : Version{};
    if (!if_match.empty() && !ETagListMatches(if_match, version, exists, /*strong=*/true)) {
      return ctx.SendProblem(probe_, 412, "precondition_failed",
                             exists ? "If-Match does not match the current version"
                                    : "If-Match given but there is no such record");
    }
    if (!if_none_match.empty() && ETagListMatches(if_none_match, version, exists, false)) {
      return ctx.SendProblem(probe_, 412, "precondition_failed",
                             "If-None-Match matches the current version");
    }
  }

  // The body goes into one buffer, which the client sends without copying.
  ThreadState& state = *threads_[ex.thread_index()];
  std::unique_ptr<std::byte[]> own;
  std::byte* data = nullptr;
  std::unique_lock buffer_lock(state.buffer_mutex);
  if (size <= kKeptBufferBytes) {
    if (state.capacity < size || !state.buffer) {
      size_t capacity = std::max<size_t>(size, 64 * 1024);
      state.buffer = std::make_unique_for_overwrite<std::byte[]>(capacity);
      state.capacity = capacity;
    }
    data = state.buffer.get();
  } else {
    own = std::make_unique_for_overwrite<std::byte[]>(size);
    data = own.get();
  }
  const auto read_start = Clock::now();
  std::span<std::byte> body(data, static_cast<size_t>(size));
  if (auto read = ex.ReadBodyExactly(body); !read.ok()) {
    ex.CloseAfterResponse();
    int status = read.error().code() == ErrorCode::kDeadlineExceeded ? 408 : 400;
    return ctx.SendProblem(probe_, status, status == 408 ? "request_timeout" : "bad_request",
                           "reading the body failed: " + read.error().message());
  }
  probe_.StageObserved(Stage::kReceive, 0, static_cast<uint64_t>(MsSince(read_start) * 1e6));
  ctx.request_bytes = size;

  client::PutArgs args;
  args.key = ctx.target.key;
  args.value = body;
  args.content_type = content_type;
  args.metadata = std::move(metadata);
  auto put = Timed<client::PutResult>(probe_, NativeOp::kPut, ctx.timing,
                                      [&] { return client->Put(args); });
  NoteAnswer(true, put.ok() ? ErrorCode::kOk : put.error().code());
  if (!put.ok()) return ctx.SendError(probe_, put.error());
  const std::string etag = ETagOf(put->version);
  Json doc = {{"key", ctx.target.key},
              {"version", put->version.ToString()},
              {"size", put->size},
              {"etag", etag},
              {"created", put->created}};
  std::vector<std::pair<std::string, std::string>> headers{{"ETag", etag}};
  if (put->created)
    headers.emplace_back("Location", "/v1/records/" + PercentEncodePath(ctx.target.key));
  ctx.SendJson(probe_, put->created ? 201 : 200, doc, std::move(headers));
}

// ------------------------------------------------------------------------------ GET / HEAD

void Gateway::GetRecord(Context& ctx, bool head_only) {
  HttpExchange& ex = ctx.ex;
  client::Client* client = ClientFor(ctx);
  if (client == nullptr) return ctx.SendProblem(probe_, 503, "unavailable", "no client available");
  const std::string& key = ctx.target.key;
  auto fetch_head = [&] {
    client::GetOptions head;
    head.head_only = true;
    auto result = Timed<client::GetResult>(probe_, NativeOp::kHead, ctx.timing,
                                           [&] { return client->Get(key, head); });
    NoteAnswer(false, result.ok() ? ErrorCode::kOk : result.error().code());
    return result;
  };

  ByteRangeRequest range;
  if (!head_only) {
    auto parsed = ParseRange(ex.Header("Range"));
    if (!parsed.ok()) return ctx.SendError(probe_, parsed.error());
    range = *parsed;
  }
  std::string_view if_match = ex.Header("If-Match");
  std::string_view if_none_match = ex.Header("If-None-Match");
  const bool conditional = !if_match.empty() || !if_none_match.empty();

  // The precondition answers (412, 304) given the record's current state.
  auto precondition_answer = [&](const Result<client::GetResult>& current) -> bool {
    const bool exists = current.ok();
    Version version = exists ? current->info.version : Version{};
    if (!if_match.empty() && !ETagListMatches(if_match, version, exists, /*strong=*/true)) {
      ctx.SendProblem(probe_, 412, "precondition_failed",
                      exists ? "If-Match does not match the current version"
                             : "If-Match given but there is no such record");
      return true;
    }
    if (exists && !if_none_match.empty() && ETagListMatches(if_none_match, version, true, false)) {
      HttpResponseHead not_modified;
      not_modified.status = 304;
      not_modified.headers.emplace_back("ETag", ETagOf(version));
      ctx.Send(probe_, std::move(not_modified), {});
      return true;
    }
    return false;
  };

  std::optional<Result<client::GetResult>> head_result;
  if (head_only || conditional) {
    head_result.emplace(fetch_head());
    const auto& current = *head_result;
    if (!current.ok() && current.error().code() != ErrorCode::kNotFound) {
      return ctx.SendError(probe_, current.error());
    }
    if (precondition_answer(current)) return;
    if (!current.ok()) return ctx.SendError(probe_, current.error());
    if (head_only) {
      HttpResponseHead head;
      head.status = 200;
      AddRecordHeaders(current->info, head.headers);
      head.content_length = current->info.size;
      head.omit_body = true;
      return ctx.Send(probe_, std::move(head), {});
    }
  }

  auto unsatisfiable = [&](std::string_view detail) {
    auto current = fetch_head();
    if (!current.ok()) return ctx.SendError(probe_, current.error());
    ctx.SendProblem(probe_, 416, "range_not_satisfiable", detail,
                    {{"Content-Range", UnsatisfiedContentRange(current->info.size)}});
  };
  const bool ranged = range.kind != ByteRangeRequest::Kind::kNone &&
                      range.kind != ByteRangeRequest::Kind::kMultiple;
  if (range.kind == ByteRangeRequest::Kind::kSuffix && range.suffix == 0) {
    return unsatisfiable("a suffix range of 0 bytes selects nothing");
  }
  client::GetOptions options = GetOptionsFor(range);
  auto got = Timed<client::GetResult>(probe_, NativeOp::kGet, ctx.timing,
                                      [&] { return client->Get(key, options); });
  NoteAnswer(false, got.ok() ? ErrorCode::kOk : got.error().code());
  if (!got.ok()) {
    if (got.error().code() == ErrorCode::kRangeNotSatisfiable)
      return unsatisfiable(got.error().message());
    return ctx.SendError(probe_, got.error());
  }
  // The read may have found a newer version than the head did: check again.
  if (conditional && precondition_answer(got)) return;
  // If-Range: a range of another version than the client has would splice two versions.
  bool partial = ranged;
  std::string_view if_range = ex.Header("If-Range");
  if (ranged && !if_range.empty() && if_range != ETagOf(got->info.version)) {
    got = Timed<client::GetResult>(probe_, NativeOp::kGet, ctx.timing,
                                   [&] { return client->Get(key, client::GetOptions{}); });
    NoteAnswer(false, got.ok() ? ErrorCode::kOk : got.error().code());
    if (!got.ok()) return ctx.SendError(probe_, got.error());
    partial = false;
  }
  const uint64_t length = got->value.size();
  if (partial && length == 0) return unsatisfiable("the range selects no byte");
  HttpResponseHead head;
  head.status = partial ? 206 : 200;
  AddRecordHeaders(got->info, head.headers);
  if (partial)
    head.headers.emplace_back("Content-Range",
                              ContentRange(got->range_offset, length, got->info.size));
  head.content_length = length;
  // Stream the frames as they arrived: no copy.
  std::vector<std::span<const std::byte>> parts;
  parts.reserve(got->value.frames().size());
  for (const auto& frame : got->value.frames()) {
    parts.emplace_back(static_cast<const std::byte*>(frame.data()), frame.size());
  }
  const auto write_start = Clock::now();
  ctx.Send(probe_, std::move(head), parts);
  probe_.StageObserved(Stage::kReply, 0, static_cast<uint64_t>(MsSince(write_start) * 1e6));
}

// ------------------------------------------------------------------------------ DELETE

void Gateway::DeleteRecord(Context& ctx) {
  HttpExchange& ex = ctx.ex;
  client::Client* client = ClientFor(ctx);
  if (client == nullptr) return ctx.SendProblem(probe_, 503, "unavailable", "no client available");
  std::string_view if_match = ex.Header("If-Match");
  if (!if_match.empty()) {
    client::GetOptions head;
    head.head_only = true;
    auto current = Timed<client::GetResult>(probe_, NativeOp::kHead, ctx.timing,
                                            [&] { return client->Get(ctx.target.key, head); });
    NoteAnswer(false, current.ok() ? ErrorCode::kOk : current.error().code());
    if (!current.ok() && current.error().code() != ErrorCode::kNotFound) {
      return ctx.SendError(probe_, current.error());
    }
    const bool exists = current.ok();
    if (!ETagListMatches(if_match, exists ? current->info.version : Version{}, exists, true)) {
      return ctx.SendProblem(probe_, 412, "precondition_failed",
                             exists ? "If-Match does not match the current version"
                                    : "If-Match given but there is no such record");
    }
  }
  auto deleted = Timed<client::DeleteResult>(probe_, NativeOp::kDelete, ctx.timing,
                                             [&] { return client->Delete(ctx.target.key); });
  NoteAnswer(true, deleted.ok() ? ErrorCode::kOk : deleted.error().code());
  if (!deleted.ok()) return ctx.SendError(probe_, deleted.error());
  if (!deleted->existed) {
    return ctx.SendProblem(probe_, 404, "not_found", "no record with this key");
  }
  HttpResponseHead head;
  head.status = 204;
  ctx.Send(probe_, std::move(head), {});
}

// ------------------------------------------------------------------------------ list

void Gateway::ListRecords(Context& ctx) {
  auto query = ParseQuery(ctx.target.query);
  if (!query.ok()) return ctx.SendError(probe_, query.error());
  std::string prefix;
  std::string cursor;
  uint32_t limit = kDefaultListLimit;
  for (const auto& [name, value] : *query) {
    if (name == "prefix") {
      if (value.size() > kMaxKeyBytes || !IsValidUtf8(value) ||
          value.find('\0') != std::string::npos) {
        return ctx.SendProblem(probe_, 400, "invalid_argument",
                               "prefix must be valid UTF-8 without NUL, at most 1024 bytes");
      }
      prefix = value;
    } else if (name == "limit") {
      auto parsed = ParseUint(value);
      if (!parsed || *parsed < 1 || *parsed > kMaxListLimit) {
        return ctx.SendProblem(
            probe_, 400, "invalid_argument",
            "limit must be an integer from 1 to " + std::to_string(kMaxListLimit));
      }
      limit = static_cast<uint32_t>(*parsed);
    } else if (name == "cursor") {
      auto decoded = DecodeCursor(value);
      if (!decoded.ok()) return ctx.SendError(probe_, decoded.error());
      cursor = std::move(*decoded);
    }
  }
  client::Client* client = ClientFor(ctx);
  if (client == nullptr) return ctx.SendProblem(probe_, 503, "unavailable", "no client available");
  auto page = Timed<client::ListPage>(probe_, NativeOp::kList, ctx.timing,
                                      [&] { return client->List(prefix, cursor, limit); });
  NoteAnswer(false, page.ok() ? ErrorCode::kOk : page.error().code());
  if (!page.ok()) return ctx.SendError(probe_, page.error());
  Json records = Json::array();
  for (const auto& entry : page->entries) {
    records.push_back({{"key", entry.key},
                       {"size", entry.size},
                       {"version", entry.version.ToString()},
                       {"etag", ETagOf(entry.version)},
                       {"content_type", entry.content_type}});
  }
  Json doc = {{"records", std::move(records)},
              {"next_cursor",
               page->next_cursor.empty() ? Json(nullptr) : Json(EncodeCursor(page->next_cursor))}};
  ctx.SendJson(probe_, 200, doc);
}

// ------------------------------------------------------------------------------ batchGet

void Gateway::BatchGet(Context& ctx) {
  HttpExchange& ex = ctx.ex;
  if (ex.chunked() || !ex.content_length()) {
    return ctx.SendProblem(probe_, 411, "length_required", "batchGet needs a Content-Length");
  }
  if (*ex.content_length() > options_.max_json_body_bytes) {
    return ctx.SendProblem(
        probe_, 413, "too_large",
        "a batchGet body is limited to " + std::to_string(options_.max_json_body_bytes) + " bytes");
  }
  std::string text(static_cast<size_t>(*ex.content_length()), '\0');
  if (auto read = ex.ReadBodyExactly(std::as_writable_bytes(std::span(text.data(), text.size())));
      !read.ok()) {
    ex.CloseAfterResponse();
    return ctx.SendProblem(probe_, 400, "bad_request",
                           "reading the body failed: " + read.error().message());
  }
  ctx.request_bytes = text.size();
  Json request = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) {
    return ctx.SendProblem(probe_, 400, "invalid_argument", "the body is not a JSON object");
  }
  auto keys_it = request.find("keys");
  if (keys_it == request.end() || !keys_it->is_array() || keys_it->empty() ||
      keys_it->size() > kMaxMultiGetKeys) {
    return ctx.SendProblem(
        probe_, 400, "invalid_argument",
        "expected {\"keys\": [...]} with 1 to " + std::to_string(kMaxMultiGetKeys) + " keys");
  }
  std::vector<std::string> keys;
  std::vector<std::optional<Error>> key_errors;
  std::vector<std::string> valid_keys;
  for (const auto& item : *keys_it) {
    if (!item.is_string()) {
      return ctx.SendProblem(probe_, 400, "invalid_argument", "every key must be a JSON string");
    }
    keys.push_back(item.get<std::string>());
    Status valid = ValidateKey(keys.back());
    key_errors.push_back(valid.ok() ? std::nullopt : std::optional<Error>(valid.error()));
    if (valid.ok()) valid_keys.push_back(keys.back());
  }
  client::Client* client = nullptr;
  if (!valid_keys.empty()) {
    client = ClientFor(ctx);
    if (client == nullptr) {
      return ctx.SendProblem(probe_, 503, "unavailable", "no client available");
    }
  }
  auto error_json = [](const Error& error) {
    return Json{{"status", HttpStatusFor(error.code())},
                {"code", std::string(ErrorCodeName(error.code()))},
                {"detail", error.message()}};
  };
  const Error over_cap(ErrorCode::kTooLarge, "the answer would exceed " +
                                                 std::to_string(options_.max_batch_value_bytes) +
                                                 " value bytes; fetch this key alone");
  // Values are fetched kBatchChunk keys at a time, and not at all once the answer is full, so
  // the values held at once stay bounded whatever the batch asks for.
  std::vector<client::MultiGetItem> chunk;
  size_t chunk_next = 0;
  size_t next_valid = 0;
  bool full = false;
  Json records = Json::array();
  uint64_t value_bytes = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    Json entry = {{"key", keys[i]}};
    if (key_errors[i]) {
      entry["error"] = error_json(*key_errors[i]);
      records.push_back(std::move(entry));
      continue;
    }
    if (full) {
      entry["error"] = error_json(over_cap);
      records.push_back(std::move(entry));
      ++next_valid;
      continue;
    }
    if (chunk_next == chunk.size()) {
      const size_t n = std::min(kBatchChunk, valid_keys.size() - next_valid);
      std::span<const std::string> part(valid_keys.data() + next_valid, n);
      auto fetched = Timed<std::vector<client::MultiGetItem>>(
          probe_, NativeOp::kMultiGet, ctx.timing, [&] { return client->MultiGet(part); });
      NoteAnswer(false, fetched.ok() ? ErrorCode::kOk : fetched.error().code());
      if (!fetched.ok()) return ctx.SendError(probe_, fetched.error());
      chunk = std::move(*fetched);
      chunk_next = 0;
    }
    ++next_valid;
    const client::MultiGetItem& item = chunk.at(chunk_next++);
    if (!item.result.ok()) {
      entry["error"] = error_json(item.result.error());
    } else {
      const client::GetResult& result = *item.result;
      const uint64_t size = result.value.size();
      if (value_bytes + size > options_.max_batch_value_bytes) {
        entry["error"] = error_json(over_cap);
        full = true;
      } else {
        value_bytes += size;
        // Base64 needs contiguous input: one copy of the value, counted.
        std::vector<std::byte> bytes(static_cast<size_t>(size));
        result.value.CopyTo(bytes);
        entry["version"] = result.info.version.ToString();
        entry["etag"] = ETagOf(result.info.version);
        entry["size"] = size;
        entry["content_type"] = result.info.content_type;
        if (!result.info.metadata.empty()) {
          Json meta = Json::object();
          for (const auto& [name, value] : result.info.metadata) meta[name] = value;
          entry["metadata"] = std::move(meta);
        }
        entry["value_base64"] = Base64Encode(bytes);
      }
    }
    records.push_back(std::move(entry));
  }
  ctx.SendJson(probe_, 200, Json{{"records", std::move(records)}});
}

// ------------------------------------------------------------------------------ ingest

namespace {

// One NDJSON line turned into a put.
struct IngestLine {
  size_t line = 0;
  std::string key;
  std::vector<std::byte> value;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Parses one line; the error says what is wrong with it.
Result<IngestLine> ParseIngestLine(std::string_view text, size_t line_number) {
  Json line = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (line.is_discarded()) return Error(ErrorCode::kInvalidArgument, "not valid JSON");
  if (!line.is_object()) return Error(ErrorCode::kInvalidArgument, "not a JSON object");
  IngestLine out;
  out.line = line_number;
  auto key = line.find("key");
  if (key == line.end() || !key->is_string()) {
    return Error(ErrorCode::kInvalidArgument, "\"key\" must be a string");
  }
  out.key = key->get<std::string>();
  DDSPLIT_RETURN_IF_ERROR(ValidateKey(out.key));
  auto value = line.find("value");
  auto value_base64 = line.find("value_base64");
  if ((value == line.end()) == (value_base64 == line.end())) {
    return Error(ErrorCode::kInvalidArgument, "give exactly one of \"value\" and \"value_base64\"");
  }
  if (value != line.end()) {
    // Any JSON value, stored as its JSON text.
    std::string json_text = value->dump();
    out.value.resize(json_text.size());
    std::memcpy(out.value.data(), json_text.data(), json_text.size());
    metrics::CountPayloadCopy(json_text.size());
    out.content_type = "application/json";
  } else {
    if (!value_base64->is_string())
      return Error(ErrorCode::kInvalidArgument, "\"value_base64\" must be a string");
    auto decoded = Base64Decode(value_base64->get_ref<const std::string&>());
    if (!decoded.ok())
      return Error(ErrorCode::kInvalidArgument, "\"value_base64\": " + decoded.error().message());
    out.value = std::move(*decoded);
  }
  auto content_type = line.find("content_type");
  if (content_type != line.end()) {
    if (!content_type->is_string())
      return Error(ErrorCode::kInvalidArgument, "\"content_type\" must be a string");
    out.content_type = content_type->get<std::string>();
    DDSPLIT_RETURN_IF_ERROR(ValidateContentType(out.content_type));
  }
  auto metadata = line.find("metadata");
  if (metadata != line.end()) {
    if (!metadata->is_object())
      return Error(ErrorCode::kInvalidArgument, "\"metadata\" must be an object");
    size_t bytes = 0;
    for (auto it = metadata->begin(); it != metadata->end(); ++it) {
      if (!it.value().is_string())
        return Error(ErrorCode::kInvalidArgument, "metadata values must be strings");
      std::string name = it.key();
      std::string entry = it.value().get<std::string>();
      DDSPLIT_RETURN_IF_ERROR(ValidateMetadataEntry(name, entry));
      bytes += name.size() + entry.size();
      out.metadata.emplace_back(std::move(name), std::move(entry));
    }
    if (out.metadata.size() > kMaxMetadataEntries || bytes > kMaxMetadataBytes) {
      return Error(ErrorCode::kInvalidArgument, "too much metadata");
    }
  }
  return out;
}

}  // namespace

void Gateway::Ingest(Context& ctx) {
  HttpExchange& ex = ctx.ex;
  if (ex.chunked() || !ex.content_length()) {
    return ctx.SendProblem(probe_, 411, "length_required",
                           "ingest needs a Content-Length (chunked uploads are not supported)");
  }
  if (*ex.content_length() > options_.max_ingest_bytes) {
    return ctx.SendProblem(
        probe_, 413, "too_large",
        "an ingest body is limited to " + std::to_string(options_.max_ingest_bytes) + " bytes");
  }
  client::Client* client = ClientFor(ctx);
  if (client == nullptr) return ctx.SendProblem(probe_, 503, "unavailable", "no client available");
  // A line holds at most a base64 value of the record limit plus the rest of its fields.
  const size_t max_line = static_cast<size_t>(options_.max_record_bytes / 3 * 4 + 64 * 1024);
  const size_t concurrency = static_cast<size_t>(options_.ingest_concurrency);

  Json results = Json::array();
  size_t lines = 0;
  size_t stored = 0;
  size_t failed = 0;
  size_t skipped = 0;
  auto fail_line = [&](size_t line, const std::string* key, const Error& error) {
    Json entry = {
        {"line", line},
        {"status", HttpStatusFor(error.code())},
        {"error",
         {{"code", std::string(ErrorCodeName(error.code()))}, {"detail", error.message()}}}};
    if (key != nullptr) entry["key"] = *key;
    results.push_back(std::move(entry));
    ++failed;
    probe_.IngestLine(false);
  };

  // Puts in flight: each slot owns its value until the put's callback has run.
  std::vector<std::unique_ptr<IngestLine>> slots(concurrency);
  std::vector<std::optional<Json>> slot_results(concurrency);
  size_t in_flight = 0;
  const auto poll_start_total = Clock::now();
  auto wait_for_slot = [&](size_t want_free) {
    while (concurrency - in_flight < want_free) client->Poll(std::chrono::milliseconds(100));
  };
  auto submit = [&](std::unique_ptr<IngestLine> line) {
    wait_for_slot(1);
    size_t slot = 0;
    while (slots[slot]) ++slot;
    slots[slot] = std::move(line);
    IngestLine& owned = *slots[slot];
    ++in_flight;
    client::PutArgs args;
    args.key = owned.key;
    args.value = owned.value;
    args.content_type = owned.content_type;
    args.metadata = owned.metadata;
    probe_.native(NativeOp::kPut).Started();
    const auto started = Clock::now();
    client->PutAsync(args, [&, slot, started](Result<client::PutResult> put) {
      IngestLine& done = *slots[slot];
      probe_.native(NativeOp::kPut)
          .Finished(put.ok() ? ErrorCode::kOk : put.error().code(),
                    static_cast<uint64_t>(MsSince(started) * 1e6));
      NoteAnswer(true, put.ok() ? ErrorCode::kOk : put.error().code());
      if (put.ok()) {
        AddStageTimes(put->timings, ctx.timing);
        results.push_back({{"line", done.line},
                           {"key", done.key},
                           {"status", put->created ? 201 : 200},
                           {"version", put->version.ToString()},
                           {"etag", ETagOf(put->version)}});
        ++stored;
        probe_.IngestLine(true);
      } else {
        fail_line(done.line, &done.key, put.error());
      }
      slots[slot].reset();
      --in_flight;
    });
  };
  auto handle_line = [&](std::string_view text) {
    ++lines;
    while (!text.empty() && (text.back() == '\r' || text.back() == ' ' || text.back() == '\t'))
      text.remove_suffix(1);
    if (text.empty()) {
      --lines;  // blank lines are not records
      return;
    }
    if (lines > options_.max_ingest_lines) {
      ++skipped;
      return;
    }
    auto parsed = ParseIngestLine(text, lines);
    if (!parsed.ok()) {
      std::string key;
      // Name the key in the report when the line was JSON with a string key.
      Json probe_json = Json::parse(text, nullptr, false);
      if (!probe_json.is_discarded() && probe_json.is_object() && probe_json.contains("key") &&
          probe_json["key"].is_string()) {
        key = probe_json["key"].get<std::string>();
        return fail_line(lines, &key, parsed.error());
      }
      return fail_line(lines, nullptr, parsed.error());
    }
    submit(std::make_unique<IngestLine>(std::move(*parsed)));
  };

  // Stream the body: complete lines are parsed and submitted while the rest arrives.
  std::string pending;
  std::vector<std::byte> chunk(kIngestChunk);
  bool skipping_long_line = false;
  std::optional<Error> read_error;
  while (ex.body_remaining() > 0) {
    auto got = ex.ReadBody(chunk);
    if (!got.ok()) {
      read_error = got.error();
      break;
    }
    ctx.request_bytes += *got;
    std::string_view data(reinterpret_cast<const char*>(chunk.data()), *got);
    while (!data.empty()) {
      size_t newline = data.find('\n');
      std::string_view piece = data.substr(0, newline);
      if (skipping_long_line) {
        if (newline != std::string_view::npos) skipping_long_line = false;
      } else if (pending.size() + piece.size() > max_line) {
        ++lines;
        fail_line(
            lines, nullptr,
            Error(ErrorCode::kTooLarge, "line longer than " + std::to_string(max_line) + " bytes"));
        pending.clear();
        skipping_long_line = newline == std::string_view::npos;
      } else if (newline == std::string_view::npos) {
        pending.append(piece);
      } else if (pending.empty()) {
        handle_line(piece);
      } else {
        pending.append(piece);
        handle_line(pending);
        pending.clear();
      }
      if (newline == std::string_view::npos) break;
      data.remove_prefix(newline + 1);
    }
  }
  if (!read_error && !pending.empty() && !skipping_long_line) handle_line(pending);
  // Values must outlive their puts: wait for every one, also when the body failed.
  wait_for_slot(concurrency);
  ctx.timing.backend_ms += MsSince(poll_start_total);
  if (read_error) {
    ex.CloseAfterResponse();
    int status = read_error->code() == ErrorCode::kDeadlineExceeded ? 408 : 400;
    return ctx.SendProblem(probe_, status, status == 408 ? "request_timeout" : "bad_request",
                           "reading the body failed after " + std::to_string(lines) + " lines (" +
                               std::to_string(stored) + " stored): " + read_error->message());
  }
  std::sort(results.begin(), results.end(), [](const Json& a, const Json& b) {
    return a["line"].get<size_t>() < b["line"].get<size_t>();
  });
  Json doc = {
      {"lines", lines}, {"stored", stored}, {"failed", failed}, {"results", std::move(results)}};
  if (skipped > 0) {
    doc["skipped"] = skipped;
    doc["detail"] = "only the first " + std::to_string(options_.max_ingest_lines) +
                    " lines of a request are ingested";
  }
  ctx.SendJson(probe_, 200, doc);
}

}  // namespace ddsplit::gateway
