// GatewayProbe: every metric the gateway exports, registered once; the names live in the .cpp.
//
// HTTP RED metrics per route and status class, requests in flight, request and response body
// bytes, the Server-Timing phases as histograms, the gateway's own stages (reading a request
// body, writing an answer) as stage histograms, the native operations it makes (RED per
// operation and outcome, via metrics::OperationMetrics), connections, and NDJSON ingest lines.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <array>
#include <cstdint>

#include "common/metrics/metrics.h"
#include "services/gateway/http_api.h"

namespace ddsplit::gateway {

// The label values of `route` in the HTTP metrics.
enum class RouteLabel : uint8_t {
  kPutRecord,
  kGetRecord,
  kHeadRecord,
  kDeleteRecord,
  kList,
  kBatchGet,
  kIngest,
  kOther,  // unknown paths, wrong methods, requests refused before routing
  kCount,
};

// The native operations the gateway makes, for ddsplit_gateway_requests_total{operation,...}.
enum class NativeOp : uint8_t { kPut, kGet, kHead, kDelete, kList, kMultiGet, kCount };

enum class ConnectionEnd : uint8_t {
  kClosed,       // by either side after the last answer, or idle past the keep-alive timeout
  kReadTimeout,  // the client stalled in the middle of a request
  kBadRequest,   // unparseable request head
  kRejected,     // over --max-connections
  kCount,
};

class GatewayProbe {
 public:
  explicit GatewayProbe(metrics::ProcessMetrics& process);

  void RequestStarted();
  // One finished HTTP answer: route, status, wall time and body sizes.
  void RequestFinished(RouteLabel route, int status, uint64_t duration_ns, uint64_t request_bytes,
                       uint64_t response_bytes);
  // The phases of one answer's Server-Timing header.
  void TimingObserved(const ServerTiming& timing);
  // The gateway's own stages: reading a request body (queue: waiting for the first body byte)
  // and writing an answer.
  void StageObserved(Stage stage, uint64_t queue_ns, uint64_t work_ns) {
    stages_.Observe(stage, queue_ns, work_ns);
  }
  metrics::OperationMetrics& native(NativeOp op) { return native_[static_cast<size_t>(op)]; }

  void ConnectionOpened();
  void ConnectionEnded(ConnectionEnd how);
  void IngestLine(bool stored);

 private:
  metrics::StageHistograms stages_;
  std::array<metrics::OperationMetrics, static_cast<size_t>(NativeOp::kCount)> native_;
  // [route][status class 1xx..5xx → 0..4]
  std::array<std::array<prometheus::Counter*, 5>, static_cast<size_t>(RouteLabel::kCount)>
      requests_{};
  std::array<prometheus::Histogram*, static_cast<size_t>(RouteLabel::kCount)> duration_{};
  std::array<prometheus::Counter*, static_cast<size_t>(RouteLabel::kCount)> request_bytes_{};
  std::array<prometheus::Counter*, static_cast<size_t>(RouteLabel::kCount)> response_bytes_{};
  prometheus::Gauge* in_flight_ = nullptr;
  std::array<prometheus::Histogram*, 4> timing_{};  // gateway, backend, coordinator, store
  prometheus::Gauge* connections_open_ = nullptr;
  prometheus::Counter* connections_opened_ = nullptr;
  std::array<prometheus::Counter*, static_cast<size_t>(ConnectionEnd::kCount)> connections_ended_{};
  std::array<prometheus::Counter*, 2> ingest_lines_{};  // failed, stored
};

}  // namespace ddsplit::gateway
