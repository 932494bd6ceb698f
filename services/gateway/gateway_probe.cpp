#include "services/gateway/gateway_probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

namespace ddsplit::gateway {
namespace {

constexpr const char* kRouteNames[] = {"put_record", "get_record", "head_record", "delete_record",
                                       "list",       "batch_get",  "ingest",      "other"};
static_assert(std::size(kRouteNames) == static_cast<size_t>(RouteLabel::kCount));
constexpr const char* kStatusClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
constexpr const char* kConnectionEnds[] = {"closed", "read_timeout", "bad_request", "rejected"};
static_assert(std::size(kConnectionEnds) == static_cast<size_t>(ConnectionEnd::kCount));

double Seconds(uint64_t ns) { return static_cast<double>(ns) / 1e9; }

}  // namespace

GatewayProbe::GatewayProbe(metrics::ProcessMetrics& process)
    : stages_(process.registry(), "gateway"),
      native_{metrics::OperationMetrics(process.registry(), "gateway", "put"),
              metrics::OperationMetrics(process.registry(), "gateway", "get"),
              metrics::OperationMetrics(process.registry(), "gateway", "head"),
              metrics::OperationMetrics(process.registry(), "gateway", "delete"),
              metrics::OperationMetrics(process.registry(), "gateway", "list"),
              metrics::OperationMetrics(process.registry(), "gateway", "multi_get")} {
  auto& registry = process.registry();
  auto& requests = prometheus::BuildCounter()
                       .Name("ddsplit_gateway_http_requests_total")
                       .Help("HTTP answers sent, by route and status class")
                       .Register(registry);
  auto& duration = prometheus::BuildHistogram()
                       .Name("ddsplit_gateway_http_request_duration_seconds")
                       .Help("Time from a request's head to its complete answer, by route")
                       .Register(registry);
  auto& request_bytes = prometheus::BuildCounter()
                            .Name("ddsplit_gateway_http_request_body_bytes_total")
                            .Help("Request body bytes read, by route")
                            .Register(registry);
  auto& response_bytes = prometheus::BuildCounter()
                             .Name("ddsplit_gateway_http_response_body_bytes_total")
                             .Help("Answer body bytes sent, by route")
                             .Register(registry);
  for (size_t r = 0; r < requests_.size(); ++r) {
    for (size_t c = 0; c < 5; ++c) {
      requests_[r][c] =
          &requests.Add({{"route", kRouteNames[r]}, {"status_class", kStatusClasses[c]}});
    }
    duration_[r] = &duration.Add({{"route", kRouteNames[r]}}, metrics::LatencyBuckets());
    request_bytes_[r] = &request_bytes.Add({{"route", kRouteNames[r]}});
    response_bytes_[r] = &response_bytes.Add({{"route", kRouteNames[r]}});
  }
  in_flight_ = &metrics::AddGauge(registry, "ddsplit_gateway_http_requests_in_flight",
                                  "HTTP requests being answered");
  auto& timing = prometheus::BuildHistogram()
                     .Name("ddsplit_gateway_server_timing_seconds")
                     .Help(
                         "The Server-Timing phases of each answer: gateway (wall time in the "
                         "gateway), backend (native calls), coordinator and store (from the "
                         "stage timings the splitter or assembler returned)")
                     .Register(registry);
  const char* phases[] = {"gateway", "backend", "coordinator", "store"};
  for (size_t i = 0; i < timing_.size(); ++i) {
    timing_[i] = &timing.Add({{"phase", phases[i]}}, metrics::LatencyBuckets());
  }
  connections_open_ = &metrics::AddGauge(registry, "ddsplit_gateway_http_connections_open",
                                         "HTTP connections open");
  connections_opened_ = &metrics::AddCounter(registry, "ddsplit_gateway_http_connections_total",
                                             "HTTP connections accepted");
  auto& ended = prometheus::BuildCounter()
                    .Name("ddsplit_gateway_http_connections_ended_total")
                    .Help("HTTP connections closed, by how they ended")
                    .Register(registry);
  for (size_t i = 0; i < connections_ended_.size(); ++i) {
    connections_ended_[i] = &ended.Add({{"reason", kConnectionEnds[i]}});
  }
  auto& lines = prometheus::BuildCounter()
                    .Name("ddsplit_gateway_ingest_lines_total")
                    .Help("NDJSON ingest lines handled, by outcome")
                    .Register(registry);
  ingest_lines_[0] = &lines.Add({{"outcome", "failed"}});
  ingest_lines_[1] = &lines.Add({{"outcome", "stored"}});
}

void GatewayProbe::RequestStarted() { in_flight_->Increment(); }

void GatewayProbe::RequestFinished(RouteLabel route, int status, uint64_t duration_ns,
                                   uint64_t request_bytes, uint64_t response_bytes) {
  in_flight_->Decrement();
  const auto r = static_cast<size_t>(route);
  int status_class = status / 100 - 1;
  if (status_class < 0 || status_class > 4) status_class = 4;
  requests_[r][static_cast<size_t>(status_class)]->Increment();
  duration_[r]->Observe(Seconds(duration_ns));
  if (request_bytes > 0) request_bytes_[r]->Increment(static_cast<double>(request_bytes));
  if (response_bytes > 0) response_bytes_[r]->Increment(static_cast<double>(response_bytes));
}

void GatewayProbe::TimingObserved(const ServerTiming& timing) {
  timing_[0]->Observe(timing.gateway_ms / 1e3);
  timing_[1]->Observe(timing.backend_ms / 1e3);
  if (timing.has_stages) {
    timing_[2]->Observe(timing.coordinator_ms / 1e3);
    timing_[3]->Observe(timing.store_ms / 1e3);
  }
}

void GatewayProbe::ConnectionOpened() {
  connections_open_->Increment();
  connections_opened_->Increment();
}

void GatewayProbe::ConnectionEnded(ConnectionEnd how) {
  if (how != ConnectionEnd::kRejected) connections_open_->Decrement();
  connections_ended_[static_cast<size_t>(how)]->Increment();
}

void GatewayProbe::IngestLine(bool stored) { ingest_lines_[stored ? 1 : 0]->Increment(); }

}  // namespace ddsplit::gateway
