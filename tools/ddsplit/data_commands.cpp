#include "tools/ddsplit/data_commands.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>

#include "client/client.h"
#include "tools/ddsplit/heal_command.h"

namespace ddsplit::cli {
namespace {

struct CommonOptions {
  std::string cluster_file;
  bool json = false;
  int64_t timeout_ms = 10000;
};

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "ddsplit: %s\n", message.c_str());
  std::exit(1);
}

std::unique_ptr<client::Client> ConnectOrExit(const CommonOptions& common) {
  std::string path = common.cluster_file;
  if (path.empty()) {
    const char* env = std::getenv("DDSPLIT_CLUSTER");
    if (env == nullptr || *env == '\0') Fail("no cluster: pass --cluster FILE or set DDSPLIT_CLUSTER");
    path = env;
  }
  auto options = client::OptionsFromClusterFile(path);
  if (!options.ok()) Fail(options.error().ToString());
  options->timeout = std::chrono::milliseconds(common.timeout_ms);
  auto connected = client::Client::Connect(std::move(*options));
  if (!connected.ok()) Fail(connected.error().ToString());
  return std::move(*connected);
}

template <typename T>
T ValueOrExit(Result<T> result) {
  if (!result.ok()) Fail(result.error().ToString());
  return std::move(result).value();
}

std::string ReadInput(const std::string& source) {
  if (source.empty() || source == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(source, std::ios::binary);
  if (!in) Fail("cannot read " + source);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteValue(const client::Value& value, const std::string& target) {
  FILE* out = stdout;
  if (!target.empty() && target != "-") {
    out = std::fopen(target.c_str(), "wb");
    if (out == nullptr) Fail("cannot write " + target);
  }
  for (const auto& frame : value.frames()) {
    if (std::fwrite(frame.data(), 1, frame.size(), out) != frame.size()) Fail("write failed");
  }
  if (out != stdout) {
    if (std::fclose(out) != 0) Fail("cannot write " + target);
  } else {
    std::fflush(stdout);
  }
}

nlohmann::json InfoJson(const client::RecordInfo& info) {
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [name, value] : info.metadata) metadata[name] = value;
  return {{"key", info.key},         {"version", info.version.ToString()},
          {"size", info.size},       {"content_type", info.content_type},
          {"metadata", metadata},    {"k", info.k},
          {"m", info.m},             {"placement", info.placement}};
}

// Where a read's time went, one row per stage as the services reported it. Rows of a store's
// reply (its receive, verify and store_* stages, in that order) are labelled "store N" (N counts
// the replies); every other row is the coordinator's (`coordinator`, e.g. "assembler"). Store
// rows happen inside the coordinator's fetch stage; the total adds the coordinator's rows only.
// Queue: time waiting (in transit, in ZeroMQ's queues, behind other messages, for a batch);
// work: time being worked on. Transit times compare the sender's and receiver's clocks.
void PrintTimings(const std::vector<client::StageTime>& timings, const char* coordinator) {
  auto store_stage = [](Stage s) { return s == Stage::kStoreRead || s == Stage::kStoreCommit; };
  // A receive or verify row directly before a store_* row belongs to that store's reply.
  std::vector<bool> at_store(timings.size(), false);
  for (size_t i = timings.size(); i-- > 0;) {
    if (store_stage(timings[i].stage)) {
      at_store[i] = true;
    } else if ((timings[i].stage == Stage::kReceive || timings[i].stage == Stage::kVerify) &&
               i + 1 < timings.size() && at_store[i + 1] && timings[i + 1].stage != Stage::kReceive) {
      at_store[i] = true;
    }
  }
  std::fprintf(stderr, "%-10s %-14s %12s %12s\n", "where", "stage", "queue_us", "work_us");
  double queue_us = 0;
  double work_us = 0;
  int store_reply = 0;
  for (size_t i = 0; i < timings.size(); ++i) {
    const auto& t = timings[i];
    std::string where = coordinator;
    if (at_store[i]) {
      if (i == 0 || !at_store[i - 1] || t.stage == Stage::kReceive) ++store_reply;
      where = "store " + std::to_string(store_reply);
    } else {
      queue_us += t.queue_ns / 1000.0;
      work_us += t.work_ns / 1000.0;
    }
    std::fprintf(stderr, "%-10s %-14s %12.1f %12.1f\n", where.c_str(),
                 std::string(StageName(t.stage)).c_str(), t.queue_ns / 1000.0, t.work_ns / 1000.0);
  }
  std::fprintf(stderr, "%-10s %-14s %12.1f %12.1f   (%.1f us in the %s, store rows excluded)\n",
               coordinator, "total", queue_us, work_us, queue_us + work_us, coordinator);
}

// "START-END" (inclusive, like HTTP), "START-" or "-SUFFIX".
client::GetOptions ParseRange(const std::string& text) {
  client::GetOptions options;
  auto dash = text.find('-');
  if (dash == std::string::npos) Fail("--range must look like START-END, START- or -SUFFIX");
  try {
    if (dash == 0) {
      options.suffix_length = std::stoull(text.substr(1));
      if (options.suffix_length == 0) Fail("a suffix range must be at least one byte");
      return options;
    }
    uint64_t start = std::stoull(text.substr(0, dash));
    uint64_t length = UINT64_MAX - start;
    if (dash + 1 < text.size()) {
      uint64_t end = std::stoull(text.substr(dash + 1));
      if (end < start) Fail("range end is before its start");
      length = end - start + 1;
    }
    options.range = std::make_pair(start, length);
  } catch (const std::exception&) {
    Fail("--range must look like START-END, START- or -SUFFIX");
  }
  return options;
}

}  // namespace

void AddDataCommands(CLI::App& app) {
  auto common = std::make_shared<CommonOptions>();
  app.add_option("--cluster", common->cluster_file, "cluster.json of the cluster to use (or DDSPLIT_CLUSTER)");
  app.add_flag("--json", common->json, "Print results as JSON");
  app.add_option("--timeout-ms", common->timeout_ms, "Per-request timeout")->capture_default_str();

  {
    auto* put = app.add_subcommand("put", "Store a record from a file or standard input");
    auto key = std::make_shared<std::string>();
    auto source = std::make_shared<std::string>();
    auto content_type = std::make_shared<std::string>("application/octet-stream");
    auto meta = std::make_shared<std::vector<std::string>>();
    put->add_option("KEY", *key, "Record key")->required();
    put->add_option("FILE", *source, "File to read, or - for standard input (default)");
    put->add_option("--content-type", *content_type, "Content type stored with the record")->capture_default_str();
    put->add_option("--meta", *meta, "User metadata NAME=VALUE (repeatable)");
    put->callback([=] {
      client::PutArgs args;
      args.key = *key;
      args.content_type = *content_type;
      for (const auto& entry : *meta) {
        auto eq = entry.find('=');
        if (eq == std::string::npos) Fail("--meta takes NAME=VALUE");
        args.metadata.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
      }
      std::string value = ReadInput(*source);
      args.value = std::as_bytes(std::span(value.data(), value.size()));
      auto c = ConnectOrExit(*common);
      auto result = ValueOrExit(c->Put(args));
      if (common->json) {
        std::printf("%s\n", nlohmann::json({{"key", *key}, {"version", result.version.ToString()},
                                            {"size", result.size}, {"created", result.created}})
                                .dump()
                                .c_str());
      } else {
        std::printf("%s %s %llu bytes, version %s\n", result.created ? "created" : "replaced",
                    key->c_str(), static_cast<unsigned long long>(result.size),
                    result.version.ToString().c_str());
      }
    });
  }
  {
    auto* get = app.add_subcommand("get", "Fetch a record into a file or standard output");
    auto key = std::make_shared<std::string>();
    auto target = std::make_shared<std::string>();
    auto range = std::make_shared<std::string>();
    auto timing = std::make_shared<bool>(false);
    get->add_option("KEY", *key, "Record key")->required();
    get->add_option("FILE", *target, "File to write, or - for standard output (default)");
    get->add_option("--range", *range, "Bytes START-END (inclusive), START- or -SUFFIX");
    get->add_flag("--timing", *timing, "Print where the time went, per stage, to standard error");
    get->callback([=] {
      client::GetOptions options = range->empty() ? client::GetOptions{} : ParseRange(*range);
      auto c = ConnectOrExit(*common);
      auto result = ValueOrExit(c->Get(*key, options));
      WriteValue(result.value, *target);
      if (*timing) {
        PrintTimings(result.timings, "assembler");
        if (result.degraded) std::fprintf(stderr, "(degraded read: rebuilt from parity)\n");
      }
    });
  }
  {
    auto* head = app.add_subcommand("head", "Show a record's metadata without its value");
    auto key = std::make_shared<std::string>();
    head->add_option("KEY", *key, "Record key")->required();
    head->callback([=] {
      auto c = ConnectOrExit(*common);
      client::GetOptions options;
      options.head_only = true;
      auto result = ValueOrExit(c->Get(*key, options));
      auto json = InfoJson(result.info);
      if (common->json) {
        std::printf("%s\n", json.dump().c_str());
      } else {
        std::printf("%s", json.dump(2).c_str());
        std::printf("\n");
      }
    });
  }
  {
    auto* ls = app.add_subcommand("ls", "List records by key prefix");
    auto prefix = std::make_shared<std::string>();
    auto limit = std::make_shared<uint32_t>(0);
    ls->add_option("PREFIX", *prefix, "Key prefix (default: every key)");
    ls->add_option("--limit", *limit, "Stop after this many records (default: all)");
    ls->callback([=] {
      auto c = ConnectOrExit(*common);
      std::string cursor;
      uint64_t printed = 0;
      do {
        uint32_t page_limit = 1000;
        if (*limit > 0) page_limit = static_cast<uint32_t>(std::min<uint64_t>(1000, *limit - printed));
        auto page = ValueOrExit(c->List(*prefix, cursor, page_limit));
        for (const auto& entry : page.entries) {
          if (common->json) {
            std::printf("%s\n", nlohmann::json({{"key", entry.key}, {"size", entry.size},
                                                {"version", entry.version.ToString()},
                                                {"content_type", entry.content_type}})
                                    .dump()
                                    .c_str());
          } else {
            std::printf("%12llu  %s  %s\n", static_cast<unsigned long long>(entry.size),
                        entry.version.ToString().c_str(), entry.key.c_str());
          }
          ++printed;
        }
        cursor = page.next_cursor;
      } while (!cursor.empty() && (*limit == 0 || printed < *limit));
    });
  }
  {
    auto* rm = app.add_subcommand("rm", "Delete a record");
    auto key = std::make_shared<std::string>();
    rm->add_option("KEY", *key, "Record key")->required();
    rm->callback([=] {
      auto c = ConnectOrExit(*common);
      auto result = ValueOrExit(c->Delete(*key));
      if (!result.existed) Fail("not_found: no such key");
      if (!common->json) std::printf("deleted %s\n", key->c_str());
    });
  }
  {
    auto* stat = app.add_subcommand("stat", "Show a record's placement and the health of each fragment");
    auto key = std::make_shared<std::string>();
    stat->add_option("KEY", *key, "Record key")->required();
    stat->callback([=] {
      auto c = ConnectOrExit(*common);
      auto result = ValueOrExit(c->Stat(*key));
      if (common->json) {
        auto json = InfoJson(result.info);
        json["fragments"] = nlohmann::json::array();
        for (const auto& f : result.fragments) {
          json["fragments"].push_back({{"store", f.store_id},
                                       {"fragment", f.fragment_index},
                                       {"state", client::FragmentStateName(f.state)},
                                       {"newest", f.newest.ToString()}});
        }
        std::printf("%s\n", json.dump().c_str());
        return;
      }
      std::printf("key %s  version %s  size %llu  k=%d m=%d\n", result.info.key.c_str(),
                  result.info.version.ToString().c_str(),
                  static_cast<unsigned long long>(result.info.size), result.info.k, result.info.m);
      std::printf("%-8s %-6s %-12s %s\n", "fragment", "store", "state", "newest version");
      for (const auto& f : result.fragments) {
        std::printf("%-8d %-6u %-12s %s\n", f.fragment_index, f.store_id,
                    std::string(client::FragmentStateName(f.state)).c_str(),
                    f.newest.IsZero() ? "-" : f.newest.ToString().c_str());
      }
    });
  }
  AddHealCommand(app, [common] { return ConnectOrExit(*common); }, &common->json);
}

}  // namespace ddsplit::cli
