// Fuzz target: the gateway's pure HTTP API rules (services/gateway/http_api.h) on fuzzed text —
// request targets, percent escapes, query strings, Range headers, entity-tag lists, list
// cursors, base64, request ids, traceparent, numbers — and the documents it produces.
//
// Input: [selector] [text...]. Properties: no crash; PercentDecode(PercentEncodePath(x)) == x;
// DecodeCursor(EncodeCursor(x)) == x; Base64Decode(Base64Encode(x)) == x; a parsed range is
// consistent (first <= last) and GetOptionsFor never asks for a zero-length range; a problem
// document is valid JSON carrying the status and the detail text exactly, whatever the bytes.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "common/base/key.h"
#include "fuzz/fuzz_input.h"
#include "services/gateway/http_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddsplit;
  using namespace ddsplit::gateway;
  fuzz::FuzzInput in(data, size);
  uint8_t selector = in.Byte();
  std::string text(in.Rest());
  std::string_view view(text);
  switch (selector % 8) {
    case 0: {
      auto target = ParseTarget(view);
      if (target.ok() && target->route == Route::kRecord) {
        (void)ValidateKey(target->key);
        (void)ParseQuery(target->query);
      }
      break;
    }
    case 1: {
      auto decoded = PercentDecode(view, (selector & 8) != 0);
      auto encoded = PercentEncodePath(view);
      auto back = PercentDecode(encoded, false);
      DDSPLIT_FUZZ_ASSERT(back.ok() && *back == text);
      (void)decoded;
      break;
    }
    case 2: {
      auto range = ParseRange(view);
      if (!range.ok()) break;
      if (range->kind == ByteRangeRequest::Kind::kFromTo) DDSPLIT_FUZZ_ASSERT(range->first <= range->last);
      auto options = GetOptionsFor(*range);
      if (options.range) DDSPLIT_FUZZ_ASSERT(options.range->second > 0);
      (void)ContentRange(range->first, range->last - std::min(range->last, range->first), range->last);
      break;
    }
    case 3: {
      Version v{in.Integral<uint64_t>() | 1, 7};
      bool exists = (selector & 8) != 0;
      bool strong = (selector & 16) != 0;
      bool matches = ETagListMatches(view, v, exists, strong);
      if (!exists) DDSPLIT_FUZZ_ASSERT(!matches);
      DDSPLIT_FUZZ_ASSERT(ETagListMatches(ETagOf(v), v, true, true));
      break;
    }
    case 4: {
      DDSPLIT_FUZZ_ASSERT(DecodeCursor(EncodeCursor(view)).ok());
      DDSPLIT_FUZZ_ASSERT(*DecodeCursor(EncodeCursor(view)) == text);
      (void)DecodeCursor(view);
      break;
    }
    case 5: {
      auto bytes = std::as_bytes(std::span(text.data(), text.size()));
      auto round = Base64Decode(Base64Encode(bytes));
      DDSPLIT_FUZZ_ASSERT(round.ok());
      DDSPLIT_FUZZ_ASSERT(round->size() == bytes.size() && std::equal(round->begin(), round->end(), bytes.begin()));
      (void)Base64Decode(view);
      break;
    }
    case 6: {
      int status = 400 + selector % 200;
      std::string json = ProblemJson(status, "invalid_argument", view, "/v1/records/x", "req-1");
      auto parsed = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
      // Detail text that is not UTF-8 cannot be carried exactly; it must still be valid JSON.
      DDSPLIT_FUZZ_ASSERT(!parsed.is_discarded());
      DDSPLIT_FUZZ_ASSERT(parsed.is_object() && parsed["status"] == status);
      if (IsValidUtf8(view)) DDSPLIT_FUZZ_ASSERT(parsed["detail"] == text);
      break;
    }
    default: {
      (void)IsAcceptableRequestId(view);
      (void)IsValidTraceparent(view);
      auto number = ParseUint(view);
      if (number) DDSPLIT_FUZZ_ASSERT(!text.empty() && text.find_first_not_of("0123456789") == std::string::npos);
      (void)ToLowerAscii(view);
      (void)HttpStatusFor(static_cast<ErrorCode>(selector % 13));
      break;
    }
  }
  return 0;
}
