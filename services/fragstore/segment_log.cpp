#include "services/fragstore/segment_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <optional>

namespace ddsplit::fragstore {
namespace {

constexpr std::string_view kSuffix = ".seg";
constexpr size_t kIdDigits = 16;

Error SystemError(std::string_view what, const std::string& path) {
  return Error(ErrorCode::kInternal, std::string(what) + " " + path + ": " + std::strerror(errno));
}

std::string SegmentName(uint64_t id) {
  char name[kIdDigits + 1];
  std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(id));
  return std::string(name) + std::string(kSuffix);
}

// The id of a file named like a segment, else nullopt.
std::optional<uint64_t> SegmentId(const std::string& name) {
  if (name.size() != kIdDigits + kSuffix.size() || !name.ends_with(kSuffix)) return std::nullopt;
  uint64_t id = 0;
  for (size_t i = 0; i < kIdDigits; ++i) {
    const char c = name[i];
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    id = id << 4 | static_cast<uint64_t>(digit);
  }
  return id;
}

}  // namespace

struct SegmentLog::Segment {
  uint64_t id = 0;
  std::string path;
  int fd = -1;
  bool closed = false;                 // no more appends (commit thread)
  std::atomic<uint64_t> size{0};       // bytes written
  std::atomic<uint64_t> live{0};       // bytes referenced
  ~Segment() {
    if (fd >= 0) ::close(fd);
  }
};

SegmentLog::SegmentLog(std::string dir, uint64_t segment_bytes, bool durable)
    : dir_(std::move(dir)), segment_bytes_(segment_bytes), durable_(durable) {}

SegmentLog::~SegmentLog() = default;

Result<std::unique_ptr<SegmentLog>> SegmentLog::Open(std::string dir, uint64_t segment_bytes,
                                                     bool durable) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(ErrorCode::kUnavailable, "cannot create " + dir + ": " + ec.message());
  std::unique_ptr<SegmentLog> log(new SegmentLog(dir, segment_bytes, durable));
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    auto id = SegmentId(entry.path().filename().string());
    if (!id) continue;
    auto segment = std::make_shared<Segment>();
    segment->id = *id;
    segment->path = entry.path().string();
    segment->closed = true;
    segment->fd = ::open(segment->path.c_str(), O_RDONLY | O_CLOEXEC);
    if (segment->fd < 0) return SystemError("cannot open", segment->path);
    struct stat st {};
    if (::fstat(segment->fd, &st) != 0) return SystemError("cannot stat", segment->path);
    segment->size = static_cast<uint64_t>(st.st_size);
    log->segments_.emplace(*id, std::move(segment));
  }
  if (ec) return Error(ErrorCode::kUnavailable, "cannot list " + dir + ": " + ec.message());
  if (!log->segments_.empty()) log->next_id_ = log->segments_.rbegin()->first + 1;
  return log;
}

Status SegmentLog::StartSegment() {
  const uint64_t id = next_id_++;
  auto segment = std::make_shared<Segment>();
  segment->id = id;
  segment->path = dir_ + "/" + SegmentName(id);
  segment->fd = ::open(segment->path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (segment->fd < 0) return SystemError("cannot create", segment->path);
  // The new file's name must survive a crash like the bytes written to it.
  int dir_fd = -1;
  if (durable_) dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
  if (active_) {
    active_->closed = true;
    const uint64_t closed_id = active_->id;
    active_.reset();
    DropIfDead(closed_id);
  }
  active_ = segment;
  std::lock_guard lock(mutex_);
  segments_.emplace(id, std::move(segment));
  return OkStatus();
}

Status SegmentLog::Append(std::span<const std::span<const std::byte>> payloads,
                          std::span<SegmentRef> refs) {
  if (payloads.empty()) return OkStatus();
  if (!active_ || active_->size.load() >= segment_bytes_) DDSPLIT_RETURN_IF_ERROR(StartSegment());
  const uint64_t start = active_->size.load();
  uint64_t total = 0;
  auto& iov = iov_;
  iov.clear();
  for (size_t i = 0; i < payloads.size(); ++i) {
    refs[i] = {active_->id, start + total, payloads[i].size()};
    total += payloads[i].size();
    if (!payloads[i].empty()) {
      iov.push_back({const_cast<std::byte*>(payloads[i].data()), payloads[i].size()});
    }
  }
  // Whatever happens, later appends go after this batch's space.
  active_->size = start + total;
  if (durable_ && (unsynced_.empty() || unsynced_.back() != active_)) unsynced_.push_back(active_);
  size_t next = 0;
  uint64_t position = start;
  while (next < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - next, IOV_MAX));
    ssize_t written = ::pwritev(active_->fd, iov.data() + next, count, static_cast<off_t>(position));
    if (written < 0) {
      if (errno == EINTR) continue;
      return SystemError("cannot write", active_->path);
    }
    position += static_cast<uint64_t>(written);
    // Step over what was written; a partial write resumes inside an iovec.
    auto left = static_cast<size_t>(written);
    while (next < iov.size() && left >= iov[next].iov_len) left -= iov[next++].iov_len;
    if (left > 0) {
      iov[next].iov_base = static_cast<std::byte*>(iov[next].iov_base) + left;
      iov[next].iov_len -= left;
    }
  }
  return OkStatus();
}

Status SegmentLog::Sync() {
  for (const auto& segment : unsynced_) {
    if (::fdatasync(segment->fd) != 0) return SystemError("cannot sync", segment->path);
  }
  unsynced_.clear();
  return OkStatus();
}

std::shared_ptr<SegmentLog::Segment> SegmentLog::Find(uint64_t id) const {
  std::lock_guard lock(mutex_);
  auto found = segments_.find(id);
  return found == segments_.end() ? nullptr : found->second;
}

Status SegmentLog::Read(const SegmentRef& ref, std::span<std::byte> out) const {
  auto segment = Find(ref.segment);
  if (!segment) return Error(ErrorCode::kNotFound, "fragment dropped");
  size_t done = 0;
  while (done < ref.length) {
    ssize_t got = ::pread(segment->fd, out.data() + done, ref.length - done,
                          static_cast<off_t>(ref.offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return Error(ErrorCode::kCorrupt, "cannot read segment " + segment->path + ": " +
                                            std::strerror(errno));
    }
    if (got == 0) {
      return Error(ErrorCode::kCorrupt, "segment " + segment->path + " ends before the fragment (" +
                                            std::to_string(ref.offset + ref.length) + " bytes needed)");
    }
    done += static_cast<size_t>(got);
  }
  return OkStatus();
}

void SegmentLog::AddLive(const SegmentRef& ref) {
  next_id_ = std::max(next_id_, ref.segment + 1);
  if (auto segment = Find(ref.segment)) segment->live += ref.length;
}

void SegmentLog::RemoveLive(const SegmentRef& ref) {
  auto segment = Find(ref.segment);
  if (!segment) return;
  segment->live -= std::min(segment->live.load(), ref.length);
  DropIfDead(ref.segment);
}

void SegmentLog::DropIfDead(uint64_t id) {
  std::shared_ptr<Segment> dropped;
  {
    std::lock_guard lock(mutex_);
    auto found = segments_.find(id);
    if (found == segments_.end() || !found->second->closed || found->second->live.load() > 0) return;
    dropped = std::move(found->second);
    segments_.erase(found);
  }
  // Reads in flight keep their descriptor, and with it the file's bytes, until they are done.
  if (::unlink(dropped->path.c_str()) != 0) {
    spdlog::warn("cannot delete {}: {}", dropped->path, std::strerror(errno));
  }
}

void SegmentLog::DropUnreferenced() {
  std::vector<uint64_t> ids;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, segment] : segments_) {
      if (segment->closed && segment->live.load() == 0) ids.push_back(id);
    }
  }
  for (uint64_t id : ids) DropIfDead(id);
  if (!ids.empty()) spdlog::info("{}: dropped {} segments nothing refers to", dir_, ids.size());
}

void SegmentLog::KeepAll() {
  std::lock_guard lock(mutex_);
  for (const auto& [id, segment] : segments_) {
    if (segment->closed) segment->live = segment->size.load();
  }
}

std::vector<uint64_t> SegmentLog::SparseSegments(double max_live_fraction) const {
  std::vector<std::pair<double, uint64_t>> sparse;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, segment] : segments_) {
      const uint64_t size = segment->size.load();
      if (!segment->closed || size == 0) continue;
      const double fraction = static_cast<double>(segment->live.load()) / static_cast<double>(size);
      if (fraction < max_live_fraction) sparse.emplace_back(fraction, id);
    }
  }
  std::sort(sparse.begin(), sparse.end());
  std::vector<uint64_t> ids;
  for (const auto& entry : sparse) ids.push_back(entry.second);
  return ids;
}

SegmentStats SegmentLog::Stats() const {
  SegmentStats stats;
  std::lock_guard lock(mutex_);
  for (const auto& [id, segment] : segments_) {
    ++stats.segments;
    stats.file_bytes += segment->size.load();
    stats.live_bytes += segment->live.load();
  }
  return stats;
}

}  // namespace ddsplit::fragstore
