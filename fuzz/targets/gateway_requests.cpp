// Fuzz target: the gateway's request handling (Gateway::Handle) — routing, headers (Range,
// If-Match / If-None-Match / If-Range, X-Request-Id, traceparent, metadata headers, Content-Type,
// Content-Length), record PUT/GET/HEAD/DELETE, listing, the JSON batchGet body and the NDJSON
// ingest body — with fuzzed requests on a fake HttpExchange, and the native backend played by an
// in-process splitter and assembler stand-in that answers every request at once with a plausible
// reply (or an error, as the input says).
//
// Input: [method] [target kind] [target text] [header count] ([name] [value])... [declared
// length mode] [body...]. Properties: no crash, no exception; every request is answered exactly
// once with a status in 100..599; header names and values carry no CR, LF or NUL; the body sent
// matches the announced Content-Length; problem documents are JSON objects carrying the status.
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/metrics.h"
#include "common/wire/envelope.h"
#include "fuzz/server_fixture.h"
#include "services/gateway/gateway.h"
#include "services/gateway/gateway_probe.h"

namespace ddsplit::fuzz {
namespace {

// Answers every request on the splitter and assembler endpoints with a canned reply; a request
// whose key starts with "err" gets an error, "busy" gets BUSY.
class Backend {
 public:
  explicit Backend(zmq::context_t& context)
      : splitter_(MakePeerSocket(context, zmq::socket_type::router)),
        assembler_(MakePeerSocket(context, zmq::socket_type::router)) {
    splitter_.bind("inproc://fuzz-gateway-splitter");
    assembler_.bind("inproc://fuzz-gateway-assembler");
    thread_.Start([this](int stop_fd) { Run(stop_fd); });
  }
  ~Backend() {
    thread_.Stop();
    splitter_.close();
    assembler_.close();
  }

 private:
  void Run(int stop_fd) {
    std::vector<zmq::message_t> frames;
    zmq::pollitem_t items[] = {{splitter_.handle(), 0, ZMQ_POLLIN, 0},
                               {assembler_.handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, stop_fd, ZMQ_POLLIN, 0}};
    while (true) {
      try {
        zmq::poll(items, 3, std::chrono::milliseconds(100));
      } catch (const zmq::error_t&) {
        continue;
      }
      if (items[2].revents & ZMQ_POLLIN) return;
      for (zmq::socket_t* socket : {&splitter_, &assembler_}) {
        while (true) {
          bool overflow = false;
          auto got = transport::ReceiveMultipart(*socket, frames, 64, overflow);
          if (!got.ok() || !*got) break;
          if (frames.size() >= 2) Answer(*socket, frames);
        }
      }
    }
  }

  void Answer(zmq::socket_t& socket, std::vector<zmq::message_t>& frames) {
    wire::AlignedFrame aligned;
    auto envelope = wire::ParseEnvelope(aligned.Of(frames[1]));
    DDSPLIT_FUZZ_ASSERT(envelope.ok());  // the client library sends only well-formed messages
    const wire::Envelope& env = **envelope;
    uint64_t id = env.request_id();
    std::vector<zmq::message_t> reply;
    reply.push_back(std::move(frames[0]));
    auto& fbb = writer_.fbb();
    writer_.Reset();
    wire::Version version((uint64_t{1} << 40) | 7, 3);
    auto key_of = [](const flatbuffers::String* key) { return std::string(wire::View(key)); };
    auto error_for = [&](const std::string& key) -> std::optional<Error> {
      if (key.rfind("err", 0) == 0) return Error(ErrorCode::kUnavailable, "only 3 stores answered");
      if (key.rfind("busy", 0) == 0) return Error(ErrorCode::kBusy, "too many requests");
      if (key.rfind("missing", 0) == 0) return Error(ErrorCode::kNotFound, "no such key");
      return std::nullopt;
    };
    auto info = [&](const std::string& key) {
      auto key_offset = fbb.CreateString(key);
      auto content_type = fbb.CreateString("text/plain");
      std::vector<flatbuffers::Offset<wire::MetaEntry>> entries{
          wire::CreateMetaEntry(fbb, fbb.CreateString("owner"), fbb.CreateString("ann"))};
      auto metadata = fbb.CreateVector(entries);
      auto placement = fbb.CreateVector(std::vector<uint32_t>{0, 1, 2, 3, 4, 5});
      return wire::CreateRecordInfo(fbb, key_offset, &version, 11, 42, content_type, metadata, 4, 2, placement);
    };
    switch (env.body_type()) {
      case wire::Body::PutRequest:
      case wire::Body::DeleteRequest: {
        bool put = env.body_type() == wire::Body::PutRequest;
        std::string key = put ? key_of(env.body_as_PutRequest()->key()) : key_of(env.body_as_DeleteRequest()->key());
        if (auto error = error_for(key)) {
          reply.push_back(writer_.FinishError(id, *error));
        } else if (put) {
          uint64_t size = 0;
          for (size_t i = 2; i < frames.size(); ++i) size += frames[i].size();
          reply.push_back(writer_.Finish(id, wire::CreatePutReply(fbb, &version, size, key.size() % 2 == 0)));
        } else {
          reply.push_back(writer_.Finish(id, wire::CreateDeleteReply(fbb, &version, key.size() % 2 == 0)));
        }
        break;
      }
      case wire::Body::GetRequest: {
        const auto* get = env.body_as_GetRequest();
        std::string key = key_of(get->key());
        if (auto error = error_for(key)) {
          reply.push_back(writer_.FinishError(id, *error));
          break;
        }
        // The record is "hello world" (11 bytes); ranges are honoured as the assembler does.
        static const std::string kValue = "hello world";
        uint64_t offset = 0, length = kValue.size();
        if (get->range() != nullptr) {
          if (get->range()->offset() >= kValue.size()) {
            reply.push_back(writer_.FinishError(id, Error(ErrorCode::kRangeNotSatisfiable, "past the end")));
            break;
          }
          offset = get->range()->offset();
          length = std::min<uint64_t>(get->range()->length(), kValue.size() - offset);
        } else if (get->suffix_length() > 0) {
          length = std::min<uint64_t>(get->suffix_length(), kValue.size());
          offset = kValue.size() - length;
        }
        auto info_offset = info(key);
        wire::ByteRange range(offset, length);
        bool head = get->head_only();
        reply.push_back(writer_.Finish(id, wire::CreateGetReply(fbb, info_offset, head ? nullptr : &range,
                                                                head ? 0 : 1, false)));
        if (!head) reply.push_back(Frame(std::string_view(kValue).substr(offset, length)));
        break;
      }
      case wire::Body::MultiGetRequest: {
        std::vector<flatbuffers::Offset<wire::MultiGetItem>> items;
        std::vector<zmq::message_t> values;
        for (const auto* key : *env.body_as_MultiGetRequest()->keys()) {
          if (auto error = error_for(key_of(key))) {
            auto error_offset = wire::ToWire(fbb, *error);
            items.push_back(wire::CreateMultiGetItem(fbb, 0, error_offset, 0));
          } else {
            auto info_offset = info(key_of(key));
            items.push_back(wire::CreateMultiGetItem(fbb, info_offset, 0, 1));
            values.push_back(Frame("hello world"));
          }
        }
        reply.push_back(writer_.Finish(id, wire::CreateMultiGetReply(fbb, fbb.CreateVector(items))));
        for (auto& value : values) reply.push_back(std::move(value));
        break;
      }
      case wire::Body::ListRequest: {
        const auto* list = env.body_as_ListRequest();
        std::string prefix = key_of(list->prefix());
        std::vector<flatbuffers::Offset<wire::ListEntry>> entries;
        for (const char* suffix : {"a", "b\xc3\xa9", "c d"}) {
          auto key = fbb.CreateString(prefix + suffix);
          entries.push_back(wire::CreateListEntry(fbb, key, &version, 11, fbb.CreateString("text/plain")));
        }
        auto cursor = fbb.CreateString(prefix.size() % 2 == 0 ? prefix + "c d" : "");
        reply.push_back(writer_.Finish(id, wire::CreateListReply(fbb, fbb.CreateVector(entries), cursor)));
        break;
      }
      default:
        reply.push_back(writer_.FinishError(id, Error(ErrorCode::kInvalidArgument, "not served here")));
    }
    (void)transport::SendMultipart(socket, reply);
  }

  zmq::socket_t splitter_, assembler_;
  wire::MessageWriter writer_;
  ServiceThread thread_;
};

struct Fixture {
  zmq::context_t context{1};
  metrics::ProcessMetrics metrics{"gateway"};
  gateway::GatewayProbe probe{metrics};
  std::unique_ptr<Backend> backend;
  std::unique_ptr<gateway::Gateway> gateway;

  Fixture() {
    backend = std::make_unique<Backend>(context);
    gateway::GatewayOptions options;
    options.splitters = {"inproc://fuzz-gateway-splitter"};
    options.assemblers = {"inproc://fuzz-gateway-assembler"};
    options.request_timeout = std::chrono::milliseconds(2000);
    options.max_record_bytes = 1 << 20;
    options.max_json_body_bytes = 64 << 10;
    options.max_ingest_bytes = 1 << 20;
    options.max_ingest_lines = 64;
    options.ingest_concurrency = 4;
    options.http_threads = 1;
    auto created = gateway::Gateway::Create(options, probe, context);
    DDSPLIT_FUZZ_ASSERT(created.ok());
    gateway = std::move(*created);
  }
  ~Fixture() {
    gateway.reset();
    backend.reset();
  }
};

Fixture& Get() { return FixtureOnce<Fixture>(); }

bool CleanHeaderText(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

class FakeExchange final : public gateway::HttpExchange {
 public:
  FakeExchange(std::string method, std::string target, std::vector<std::pair<std::string, std::string>> headers,
               std::optional<uint64_t> declared, std::string body)
      : method_(std::move(method)), target_(std::move(target)), header_storage_(std::move(headers)),
        declared_(declared), body_(std::move(body)) {
    for (const auto& [name, value] : header_storage_) headers_.push_back({name, value});
  }
  std::string_view method() const override { return method_; }
  std::string_view target() const override { return target_; }
  std::span<const gateway::HttpHeader> headers() const override { return headers_; }
  std::optional<uint64_t> content_length() const override { return declared_; }
  bool chunked() const override { return false; }
  size_t thread_index() const override { return 0; }
  std::chrono::steady_clock::time_point started() const override { return started_; }
  Result<size_t> ReadBody(std::span<std::byte> out) override {
    if (!declared_ || read_ >= *declared_) return size_t{0};
    if (read_ >= body_.size()) return Error(ErrorCode::kUnavailable, "the client closed the connection");
    size_t n = std::min<size_t>({out.size(), body_.size() - read_, static_cast<size_t>(*declared_ - read_)});
    std::memcpy(out.data(), body_.data() + read_, n);
    read_ += n;
    return n;
  }
  uint64_t body_remaining() const override { return declared_ ? *declared_ - std::min<uint64_t>(read_, *declared_) : 0; }
  Status Respond(const gateway::HttpResponseHead& head, std::span<const std::span<const std::byte>> body) override {
    DDSPLIT_FUZZ_ASSERT(!responded_);  // once only
    responded_ = true;
    status_ = head.status;
    DDSPLIT_FUZZ_ASSERT(head.status >= 100 && head.status <= 599);
    for (const auto& [name, value] : head.headers) {
      DDSPLIT_FUZZ_ASSERT(!name.empty() && CleanHeaderText(name));
      DDSPLIT_FUZZ_ASSERT(CleanHeaderText(value));  // no response splitting
      if (name == "Content-Type") content_type_ = value;
    }
    uint64_t total = 0;
    for (const auto& span : body) {
      total += span.size();
      body_sent_.append(reinterpret_cast<const char*>(span.data()), span.size());
    }
    if (!head.omit_body) DDSPLIT_FUZZ_ASSERT(total == head.content_length);
    return OkStatus();
  }
  bool responded() const override { return responded_; }
  void CloseAfterResponse() override {}

  int status() const { return status_; }
  const std::string& content_type() const { return content_type_; }
  const std::string& body_sent() const { return body_sent_; }

 private:
  std::string method_, target_;
  std::vector<std::pair<std::string, std::string>> header_storage_;
  std::vector<gateway::HttpHeader> headers_;
  std::optional<uint64_t> declared_;
  std::string body_;
  size_t read_ = 0;
  bool responded_ = false;
  int status_ = 0;
  std::string content_type_, body_sent_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace
}  // namespace ddsplit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddsplit;
  using namespace ddsplit::fuzz;
  Fixture& f = Get();
  FuzzInput in(data, size);
  static const char* kMethods[] = {"GET", "PUT", "HEAD", "DELETE", "POST", "PATCH", "OPTIONS", "get"};
  std::string method = in.Byte() == 0xFF ? std::string(in.Bytes(8)) : in.Pick(kMethods);
  static const char* kPrefixes[] = {"/v1/records/", "/v1/records", "/v1/records:batchGet", "/v1/records:ingest",
                                    "/v1/records/err", "/v1/records/missing", "/v1/records/busy", "/v2/x", ""};
  std::string target = std::string(in.Pick(kPrefixes)) + std::string(in.Bytes(60));
  static const char* kHeaders[] = {"Range", "If-Match", "If-None-Match", "If-Range", "Content-Type", "X-Request-Id",
                                   "traceparent", "X-DDSplit-Meta-owner", "x-ddsplit-meta-", "Expect", "Accept"};
  std::vector<std::pair<std::string, std::string>> headers;
  int count = static_cast<int>(in.Range(0, 6));
  for (int i = 0; i < count; ++i) {
    std::string name = in.Byte() == 0xFE ? std::string(in.Bytes(20)) : in.Pick(kHeaders);
    headers.emplace_back(std::move(name), std::string(in.Bytes(70)));
  }
  uint8_t length_mode = in.Byte() % 4;
  std::string body(in.Rest());
  std::optional<uint64_t> declared;
  if (length_mode == 1) declared = body.size();
  if (length_mode == 2) declared = body.size() + 100;  // the client stops early
  if (length_mode == 3) declared = body.size() / 2;    // more bytes than declared
  if (length_mode == 0 && !body.empty() && body[0] == '{') declared = body.size();
  FakeExchange exchange(method, target, headers, declared, body);
  f.gateway->Handle(exchange);
  DDSPLIT_FUZZ_ASSERT(exchange.responded());
  if (exchange.content_type() == "application/problem+json" && !exchange.body_sent().empty()) {
    auto doc = nlohmann::json::parse(exchange.body_sent(), nullptr, /*allow_exceptions=*/false);
    DDSPLIT_FUZZ_ASSERT(!doc.is_discarded() && doc.is_object());
    DDSPLIT_FUZZ_ASSERT(doc["status"] == exchange.status());
  }
  return 0;
}
