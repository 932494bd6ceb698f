// Validation of record keys and user metadata, shared by every process that accepts them.
#pragma once

#include <string_view>

#include "common/base/result.h"

namespace ddsplit {

// A key is 1..kMaxKeyBytes bytes of well-formed UTF-8 (no overlong forms, no surrogates) with
// no NUL byte. Returns kInvalidArgument naming the problem otherwise.
Status ValidateKey(std::string_view key);

// True when `text` is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

// Content type: at most kMaxContentTypeBytes of printable ASCII.
Status ValidateContentType(std::string_view content_type);

// One metadata entry: the name is 1..128 bytes of [A-Za-z0-9-_.], the value printable UTF-8
// without control characters. The caller checks the totals (entries and bytes).
Status ValidateMetadataEntry(std::string_view name, std::string_view value);

}  // namespace ddsplit
