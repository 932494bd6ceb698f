#include "services/gateway/http_api.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

namespace ddsplit::gateway {
namespace {

constexpr std::string_view kRecordsPath = "/v1/records";
constexpr std::string_view kRecordPrefix = "/v1/records/";
constexpr std::string_view kBatchGetPath = "/v1/records:batchGet";
constexpr std::string_view kIngestPath = "/v1/records:ingest";

// A length that reaches past the end of any record (records are far below 2^62 bytes) without
// overflowing offset + length anywhere downstream.
constexpr uint64_t kToTheEnd = uint64_t{1} << 62;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64With(std::span<const std::byte> bytes, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = (std::to_integer<uint32_t>(bytes[i]) << 16) |
                 (std::to_integer<uint32_t>(bytes[i + 1]) << 8) |
                 std::to_integer<uint32_t>(bytes[i + 2]);
    out.push_back(alphabet[(n >> 18) & 63]);
    out.push_back(alphabet[(n >> 12) & 63]);
    out.push_back(alphabet[(n >> 6) & 63]);
    out.push_back(alphabet[n & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t n = std::to_integer<uint32_t>(bytes[i]) << 16;
    if (rest == 2) n |= std::to_integer<uint32_t>(bytes[i + 1]) << 8;
    out.push_back(alphabet[(n >> 18) & 63]);
    out.push_back(alphabet[(n >> 12) & 63]);
    if (rest == 2) out.push_back(alphabet[(n >> 6) & 63]);
    if (pad) out.append(rest == 1 ? "==" : "=");
  }
  return out;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

// One entity tag from an If-Match / If-None-Match list: whether it is weak, and its opaque text
// (between the quotes). nullopt when malformed.
struct EntityTag {
  bool weak = false;
  std::string_view opaque;
};
std::optional<EntityTag> ParseEntityTag(std::string_view text) {
  EntityTag tag;
  if (text.size() >= 2 && text[0] == 'W' && text[1] == '/') {
    tag.weak = true;
    text.remove_prefix(2);
  }
  if (text.size() < 2 || text.front() != '"' || text.back() != '"') return std::nullopt;
  tag.opaque = text.substr(1, text.size() - 2);
  return tag;
}

}  // namespace

// ------------------------------------------------------------------------------ routing

Result<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      int high = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
      int low = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
      if (high < 0 || low < 0) {
        return Error(ErrorCode::kInvalidArgument, "malformed percent escape in the request target");
      }
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PercentEncodePath(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<Target> ParseTarget(std::string_view target) {
  Target out;
  size_t question = target.find('?');
  std::string_view path = target.substr(0, question);
  if (question != std::string_view::npos) out.query = std::string(target.substr(question + 1));
  if (path == kRecordsPath) {
    out.route = Route::kList;
  } else if (path == kBatchGetPath) {
    out.route = Route::kBatchGet;
  } else if (path == kIngestPath) {
    out.route = Route::kIngest;
  } else if (path.size() >= kRecordPrefix.size() &&
             path.substr(0, kRecordPrefix.size()) == kRecordPrefix) {
    auto key = PercentDecode(path.substr(kRecordPrefix.size()), /*plus_is_space=*/false);
    if (!key.ok()) return std::move(key).error();
    out.route = Route::kRecord;
    out.key = std::move(*key);
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    auto name = PercentDecode(part.substr(0, eq), true);
    if (!name.ok()) return std::move(name).error();
    std::string value;
    if (eq != std::string_view::npos) {
      auto decoded = PercentDecode(part.substr(eq + 1), true);
      if (!decoded.ok()) return std::move(decoded).error();
      value = std::move(*decoded);
    }
    out.emplace_back(std::move(*name), std::move(value));
  }
  return out;
}

// ------------------------------------------------------------------------------ ranges

std::optional<uint64_t> ParseUint(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Result<ByteRangeRequest> ParseRange(std::string_view header) {
  ByteRangeRequest out;
  header = Trim(header);
  if (header.empty()) return out;
  auto bad = [&](std::string_view why) {
    return Error(ErrorCode::kInvalidArgument, "bad Range header (" + std::string(why) +
                                                  "): expected bytes=FIRST-LAST, "
                                                  "bytes=FIRST- or bytes=-SUFFIX");
  };
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() < kUnit.size() || !StartsWithIgnoreCase(header, kUnit)) {
    return bad("only the bytes unit is supported");
  }
  std::string_view set = header.substr(kUnit.size());
  int count = 0;
  while (true) {
    size_t comma = set.find(',');
    std::string_view spec = Trim(set.substr(0, comma));
    if (spec.empty()) return bad("empty range");
    size_t dash = spec.find('-');
    if (dash == std::string_view::npos) return bad("no '-'");
    std::string_view first_text = spec.substr(0, dash);
    std::string_view last_text = spec.substr(dash + 1);
    ByteRangeRequest one;
    if (first_text.empty()) {
      auto suffix = ParseUint(last_text);
      if (!suffix) return bad("bad suffix length");
      one.kind = ByteRangeRequest::Kind::kSuffix;
      one.suffix = *suffix;
    } else {
      auto first = ParseUint(first_text);
      if (!first) return bad("bad first byte");
      one.first = *first;
      if (last_text.empty()) {
        one.kind = ByteRangeRequest::Kind::kFrom;
      } else {
        auto last = ParseUint(last_text);
        if (!last) return bad("bad last byte");
        if (*last < *first) return bad("last byte before first byte");
        one.kind = ByteRangeRequest::Kind::kFromTo;
        one.last = *last;
      }
    }
    if (++count == 1) out = one;
    if (comma == std::string_view::npos) break;
    set = set.substr(comma + 1);
  }
  if (count > 1) {
    out = ByteRangeRequest{};
    out.kind = ByteRangeRequest::Kind::kMultiple;
  }
  return out;
}

client::GetOptions GetOptionsFor(const ByteRangeRequest& range) {
  client::GetOptions options;
  switch (range.kind) {
    case ByteRangeRequest::Kind::kFromTo:
      // last - first + 1 overflows for bytes=0-18446744073709551615: clamp before adding.
      options.range = {range.first, range.last - range.first >= kToTheEnd
                                        ? kToTheEnd
                                        : range.last - range.first + 1};
      break;
    case ByteRangeRequest::Kind::kFrom:
      options.range = {range.first, kToTheEnd};
      break;
    case ByteRangeRequest::Kind::kSuffix:
      options.suffix_length = range.suffix;
      break;
    case ByteRangeRequest::Kind::kNone:
    case ByteRangeRequest::Kind::kMultiple:
      break;
  }
  if (options.range && options.range->first >= kToTheEnd) options.range->first = kToTheEnd;
  return options;
}

std::string ContentRange(uint64_t offset, uint64_t length, uint64_t size) {
  // A 206 always carries at least one byte (an empty selection is a 416).
  return "bytes " + std::to_string(offset) + "-" + std::to_string(offset + length - 1) + "/" +
         std::to_string(size);
}

std::string UnsatisfiedContentRange(uint64_t size) { return "bytes */" + std::to_string(size); }

// ------------------------------------------------------------------------------ preconditions

std::string ETagOf(const Version& version) { return "\"" + version.ToString() + "\""; }

bool ETagListMatches(std::string_view header, const Version& current, bool exists, bool strong) {
  if (!exists) return false;
  const std::string text = current.ToString();
  while (true) {
    size_t comma = header.find(',');
    std::string_view item = Trim(header.substr(0, comma));
    if (item == "*") return true;
    if (auto tag = ParseEntityTag(item)) {
      // Our own tags are always strong; a weak tag from the client matches only weakly.
      if (!(strong && tag->weak) && tag->opaque == text) return true;
    }
    if (comma == std::string_view::npos) return false;
    header = header.substr(comma + 1);
  }
}

// ------------------------------------------------------------------------------ errors

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return 200;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kMalformed:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kRangeNotSatisfiable:
      return 416;
    case ErrorCode::kBusy:
    case ErrorCode::kUnavailable:
    case ErrorCode::kStale:
    case ErrorCode::kQuorumFailed:
      return 503;
    case ErrorCode::kDeadlineExceeded:
      return 504;
    case ErrorCode::kCorrupt:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

bool NeedsRetryAfter(int status) { return status == 503; }

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
  }
  return "Unknown";
}

std::string ProblemJson(int status, std::string_view code, std::string_view detail,
                        std::string_view instance, std::string_view request_id) {
  nlohmann::json doc = {
      {"type", "urn:ddsplit:problem:" + std::string(code)},
      {"title", std::string(ReasonPhrase(status))},
      {"status", status},
      {"detail", std::string(detail)},
      {"code", std::string(code)},
  };
  if (!instance.empty()) doc["instance"] = std::string(instance);
  if (!request_id.empty()) doc["request_id"] = std::string(request_id);
  // Details can echo client bytes (an invalid key): replace invalid UTF-8 instead of throwing.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ------------------------------------------------------------------------------ cursors

std::string EncodeCursor(std::string_view native) {
  return Base64With(std::as_bytes(std::span(native.data(), native.size())), kBase64Url, false);
}

Result<std::string> DecodeCursor(std::string_view token) {
  if (token.find_first_of("+/=") != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, "cursor is not a token this gateway issued");
  }
  auto bytes = Base64Decode(token);
  if (!bytes.ok())
    return Error(ErrorCode::kInvalidArgument, "cursor is not a token this gateway issued");
  return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

std::string Base64Encode(std::span<const std::byte> bytes) {
  return Base64With(bytes, kBase64, true);
}

Result<std::vector<std::byte>> Base64Decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return Error(ErrorCode::kInvalidArgument, "bad base64 length");
  std::vector<std::byte> out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t accumulator = 0;
  int bits = 0;
  for (char c : text) {
    int value = Base64Value(c);
    if (value < 0) return Error(ErrorCode::kInvalidArgument, "bad base64 character");
    accumulator = (accumulator << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::byte>((accumulator >> bits) & 0xFF));
    }
  }
  // Leftover bits must be zero padding of the last character.
  if (bits > 0 && (accumulator & ((1u << bits) - 1)) != 0) {
    return Error(ErrorCode::kInvalidArgument, "bad base64 padding bits");
  }
  return out;
}

// ------------------------------------------------------------------------------ timing

void AddStageTimes(std::span<const client::StageTime> stages, ServerTiming& timing) {
  double coordinator_ns = 0;
  double store_ns = 0;
  bool seen_receive = false;
  bool seen_verify = false;
  for (const auto& stage : stages) {
    double total = static_cast<double>(stage.queue_ns) + static_cast<double>(stage.work_ns);
    switch (stage.stage) {
      case Stage::kStoreCommit:
      case Stage::kStoreRead:
        store_ns = std::max(store_ns, total);
        break;
      case Stage::kReceive:
      case Stage::kVerify: {
        // The coordinator records its own receive and verify first; later ones are the stores'
        // hops it passed on (in parallel, inside its fetch or ack wait): not its time.
        bool& seen = stage.stage == Stage::kReceive ? seen_receive : seen_verify;
        if (!seen) coordinator_ns += total;
        seen = true;
        break;
      }
      default:
        coordinator_ns += total;
    }
  }
  if (stages.empty()) return;
  timing.has_stages = true;
  timing.coordinator_ms += coordinator_ns / 1e6;
  timing.store_ms += store_ns / 1e6;
}

std::string ServerTimingHeader(const ServerTiming& timing) {
  char text[200];
  int n = std::snprintf(text, sizeof text, "gateway;dur=%.3f, backend;dur=%.3f", timing.gateway_ms,
                        timing.backend_ms);
  std::string out(text, static_cast<size_t>(n));
  if (timing.has_stages) {
    n = std::snprintf(text, sizeof text, ", coordinator;dur=%.3f, store;dur=%.3f",
                      timing.coordinator_ms, timing.store_ms);
    out.append(text, static_cast<size_t>(n));
  }
  return out;
}

// ------------------------------------------------------------------------------ headers

bool IsAcceptableRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

bool IsValidTraceparent(std::string_view value) {
  // version "00": 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters.
  if (value.size() != 55 || value[2] != '-' || value[35] != '-' || value[52] != '-') return false;
  auto lower_hex = [](std::string_view part) {
    return std::all_of(part.begin(), part.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  };
  std::string_view version = value.substr(0, 2);
  std::string_view trace_id = value.substr(3, 32);
  std::string_view parent_id = value.substr(36, 16);
  std::string_view flags = value.substr(53, 2);
  if (version != "00" || !lower_hex(trace_id) || !lower_hex(parent_id) || !lower_hex(flags)) {
    return false;
  }
  return trace_id != std::string(32, '0') && parent_id != std::string(16, '0');
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

std::string ToLowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = LowerAscii(c);
  return out;
}

}  // namespace ddsplit::gateway
