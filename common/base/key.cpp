#include "common/base/key.h"

#include <cstdint>

#include "common/base/limits.h"

namespace ddsplit {

bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    uint8_t c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    uint32_t code;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (code < kMinForLength[extra]) return false;              // overlong
    if (code > 0x10FFFF) return false;                          // beyond Unicode
    if (code >= 0xD800 && code <= 0xDFFF) return false;         // surrogate
    p += extra + 1;
  }
  return true;
}

Status ValidateKey(std::string_view key) {
  if (key.empty()) return Error(ErrorCode::kInvalidArgument, "key is empty");
  if (key.size() > kMaxKeyBytes) {
    return Error(ErrorCode::kInvalidArgument, "key is longer than 1024 bytes");
  }
  if (key.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, "key contains a NUL byte");
  }
  if (!IsValidUtf8(key)) return Error(ErrorCode::kInvalidArgument, "key is not valid UTF-8");
  return OkStatus();
}

Status ValidateContentType(std::string_view content_type) {
  if (content_type.size() > kMaxContentTypeBytes) {
    return Error(ErrorCode::kInvalidArgument, "content type is longer than 256 bytes");
  }
  for (char c : content_type) {
    if (c < 0x20 || c > 0x7E) {
      return Error(ErrorCode::kInvalidArgument, "content type has a non-printable character");
    }
  }
  return OkStatus();
}

Status ValidateMetadataEntry(std::string_view name, std::string_view value) {
  if (name.empty() || name.size() > 128) {
    return Error(ErrorCode::kInvalidArgument, "metadata name must be 1..128 bytes");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return Error(ErrorCode::kInvalidArgument, "metadata name has a character outside [A-Za-z0-9-_.]");
  }
  if (!IsValidUtf8(value)) return Error(ErrorCode::kInvalidArgument, "metadata value is not valid UTF-8");
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7F) {
      return Error(ErrorCode::kInvalidArgument, "metadata value has a control character");
    }
  }
  return OkStatus();
}

}  // namespace ddsplit
