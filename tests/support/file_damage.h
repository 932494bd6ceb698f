// Damage to files on disk, for tests that check corruption is detected and survived.
#pragma once

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>

#include "common/base/result.h"

namespace ddsplit::testing {

// Finds `needle` in the files under `dir` and flips one bit of the byte at `offset` within the
// first match. Returns the file changed; kNotFound if no file holds the needle.
inline Result<std::string> FlipByteWhere(const std::filesystem::path& dir, std::span<const std::byte> needle,
                                         size_t offset) {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto it = std::search(content.begin(), content.end(), reinterpret_cast<const char*>(needle.data()),
                          reinterpret_cast<const char*>(needle.data()) + needle.size());
    if (it == content.end()) continue;
    size_t position = static_cast<size_t>(it - content.begin()) + offset;
    if (position >= content.size()) continue;
    std::fstream out(entry.path(), std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(static_cast<std::streamoff>(position));
    char flipped = static_cast<char>(content[position] ^ 0x01);
    out.write(&flipped, 1);
    if (!out) return Error(ErrorCode::kInternal, "could not write " + entry.path().string());
    return entry.path().string();
  }
  return Error(ErrorCode::kNotFound, "no file under " + dir.string() + " holds the bytes");
}

}  // namespace ddsplit::testing
