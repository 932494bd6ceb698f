// http_api: the pure parts of the gateway's HTTP API, version 1 — routing a request target,
// percent-decoding keys and query strings, Range / ETag / precondition parsing, the mapping of
// DDSplit error codes to HTTP statuses, RFC 9457 problem documents, opaque list cursors and the
// Server-Timing header. No sockets and no client calls: every function here is a pure function of
// its arguments, so the API's edge cases are unit-tested without a cluster.
//
// Thread-safety: free functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/client.h"
#include "common/base/result.h"
#include "common/base/version.h"

namespace ddsplit::gateway {

// ------------------------------------------------------------------------------ routing

// What a request target (path and query) addresses.
enum class Route : uint8_t {
  kRecord,    // /v1/records/{key}
  kList,      // /v1/records
  kBatchGet,  // /v1/records:batchGet
  kIngest,    // /v1/records:ingest
  kNotFound,  // anything else
};

struct Target {
  Route route = Route::kNotFound;
  std::string key;    // kRecord: the percent-decoded key (not yet validated)
  std::string query;  // the raw text after '?', without it
};

// Splits `target` ("/v1/records/a%20b?x=1") into its route, decoded key and raw query. Errors:
// kInvalidArgument when the key part has a malformed percent escape.
Result<Target> ParseTarget(std::string_view target);

// Decodes %XX escapes. With `plus_is_space` (query strings, HTML-form style) '+' becomes ' '.
// Errors: kInvalidArgument on '%' not followed by two hex digits.
Result<std::string> PercentDecode(std::string_view text, bool plus_is_space);

// Encodes everything outside RFC 3986 unreserved characters and '/' (for a Location header).
std::string PercentEncodePath(std::string_view text);

// The decoded name=value pairs of a query string, in order. Errors: bad percent escapes.
Result<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query);

// ------------------------------------------------------------------------------ ranges

// A parsed Range header (RFC 9110 section 14) in the "bytes" unit.
struct ByteRangeRequest {
  enum class Kind : uint8_t {
    kNone,      // no Range header: the whole record
    kFromTo,    // bytes=first-last (last inclusive)
    kFrom,      // bytes=first-
    kSuffix,    // bytes=-N
    kMultiple,  // more than one range: answered with the whole record (200), see README
  };
  Kind kind = Kind::kNone;
  uint64_t first = 0;
  uint64_t last = 0;    // kFromTo only
  uint64_t suffix = 0;  // kSuffix only
};

// Parses a Range header value; an empty value means no Range header. Errors: kInvalidArgument
// for anything that is not a well-formed bytes range set (another unit, last < first, garbage).
Result<ByteRangeRequest> ParseRange(std::string_view header);

// The client's GetOptions for a single range: kFromTo → {first, last - first + 1}, kFrom →
// {first, a length reaching past any record}, kSuffix → suffix_length. kNone / kMultiple → no
// range. A kSuffix of 0 cannot be satisfied; the caller answers 416 itself.
client::GetOptions GetOptionsFor(const ByteRangeRequest& range);

// "bytes FIRST-LAST/SIZE" for a 206 answer carrying `length` bytes from `offset`.
std::string ContentRange(uint64_t offset, uint64_t length, uint64_t size);
// "bytes */SIZE" for a 416 answer.
std::string UnsatisfiedContentRange(uint64_t size);

// ------------------------------------------------------------------------------ preconditions

// The ETag of a version: the quoted version text, "\"0000018f...0000002a\"".
std::string ETagOf(const Version& version);

// Whether an If-None-Match / If-Match header value (a comma-separated list of entity tags, or
// "*") matches `current`. `strong` (If-Match) requires strong tags; weak "W/" tags only match
// with weak comparison (If-None-Match). `exists` is false when there is no record: then nothing
// matches, "*" included.
bool ETagListMatches(std::string_view header, const Version& current, bool exists, bool strong);

// ------------------------------------------------------------------------------ errors

// The HTTP status for a DDSplit error code: kNotFound 404, kInvalidArgument/kMalformed 400,
// kTooLarge 413, kRangeNotSatisfiable 416, kBusy/kUnavailable/kStale/kQuorumFailed 503,
// kDeadlineExceeded 504, kCorrupt/kInternal 500.
int HttpStatusFor(ErrorCode code);
// Whether an answer with this status carries Retry-After (503).
bool NeedsRetryAfter(int status);
// The reason phrase of a status code ("Not Found"); "Unknown" for codes not used here.
std::string_view ReasonPhrase(int status);

// An RFC 9457 problem document (application/problem+json):
// {"type","title","status","detail","instance","request_id","code"}. `code` is the DDSplit error
// code name ("not_found") or an HTTP-level name ("method_not_allowed").
std::string ProblemJson(int status, std::string_view code, std::string_view detail,
                        std::string_view instance, std::string_view request_id);
inline constexpr std::string_view kProblemContentType = "application/problem+json";

// ------------------------------------------------------------------------------ list cursors

// Opaque continuation tokens: base64url (no padding) of the native cursor, so clients never
// depend on its format. Errors: kInvalidArgument for text that is not base64url.
std::string EncodeCursor(std::string_view native);
Result<std::string> DecodeCursor(std::string_view token);

// Standard base64 with padding (JSON batch answers and value_base64 in ingest lines).
std::string Base64Encode(std::span<const std::byte> bytes);
// Accepts standard base64 with or without padding, and the url-safe alphabet. Errors:
// kInvalidArgument on other characters or a bad length.
Result<std::vector<std::byte>> Base64Decode(std::string_view text);

// ------------------------------------------------------------------------------ timing

// The phases of a Server-Timing answer, in milliseconds.
struct ServerTiming {
  double gateway_ms = 0;  // wall time in the gateway, from request head to answer
  double backend_ms = 0;  // wall time of the native calls, as the gateway saw them
  // From the stage timings the coordinator (splitter or assembler) sent back: the longest single
  // store stage (kStoreCommit / kStoreRead; stores work in parallel), and the sum of the
  // coordinator's own stages (its first receive and verify, then encode, fan-out, ack, fetch,
  // decode, reply, list; the stores' own receive/verify hops it passes on are left out). The
  // phases overlap: a read's fetch contains its store reads.
  double coordinator_ms = 0;
  double store_ms = 0;
  bool has_stages = false;  // false when no native answer carried timings
};

// Adds one native answer's timings into `timing` (coordinator sums, store keeps the maximum).
void AddStageTimes(std::span<const client::StageTime> stages, ServerTiming& timing);

// "gateway;dur=1.234, backend;dur=0.9, coordinator;dur=0.4, store;dur=0.3" (the last two only
// when has_stages), durations in milliseconds with microsecond precision.
std::string ServerTimingHeader(const ServerTiming& timing);

// ------------------------------------------------------------------------------ headers

inline constexpr std::string_view kMetaHeaderPrefix = "x-ddsplit-meta-";

// True for a syntactically acceptable X-Request-Id from a client: 1..128 visible ASCII chars.
bool IsAcceptableRequestId(std::string_view id);
// True for a W3C traceparent value "00-<32 hex>-<16 hex>-<2 hex>" (version 00, non-zero ids).
bool IsValidTraceparent(std::string_view value);

// Case-insensitive ASCII comparison of header names.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix);
std::string ToLowerAscii(std::string_view text);

// Parses a non-negative decimal integer that fits in uint64_t (no sign, no spaces).
std::optional<uint64_t> ParseUint(std::string_view text);

}  // namespace ddsplit::gateway
