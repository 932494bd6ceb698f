#include "tests/observability/prometheus_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace ddsplit::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Socket inodes the process holds open, from its /proc/PID/fd links ("socket:[INODE]").
std::set<std::string> SocketInodes(pid_t pid) {
  std::set<std::string> inodes;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code link_ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), link_ec).string();
    if (!link_ec && target.rfind("socket:[", 0) == 0) {
      inodes.insert(target.substr(8, target.size() - 9));
    }
  }
  return inodes;
}

// The port of a TCP socket in LISTEN state held by `pid` on IPv4 loopback, or 0.
int ListeningPort(pid_t pid) {
  const std::set<std::string> inodes = SocketInodes(pid);
  if (inodes.empty()) return 0;
  std::ifstream tcp("/proc/" + std::to_string(pid) + "/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
        timeout >> inode;
    if (state != "0A" || inodes.count(inode) == 0) continue;  // 0A: LISTEN
    const auto colon = local.find(':');
    if (colon == std::string::npos) continue;
    return static_cast<int>(std::stoul(local.substr(colon + 1), nullptr, 16));
  }
  return 0;
}

std::string ReadTail(const std::filesystem::path& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

Status WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Error(ErrorCode::kInternal, "cannot write " + path.string());
  return OkStatus();
}

}  // namespace

std::string UrlEncode(const std::string& text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<std::unique_ptr<PrometheusServer>> PrometheusServer::Start(
    const std::filesystem::path& dir, const std::string& config_yaml,
    const std::string& rules_yaml, std::chrono::milliseconds timeout) {
  if (std::system("command -v prometheus >/dev/null 2>&1") != 0) {
    return Error(ErrorCode::kUnavailable, "prometheus is not installed (apt-get install prometheus)");
  }
  std::filesystem::create_directories(dir / "data");
  DDSPLIT_RETURN_IF_ERROR(WriteFile(dir / "prometheus.yml", config_yaml));
  if (!rules_yaml.empty()) DDSPLIT_RETURN_IF_ERROR(WriteFile(dir / "rules.yml", rules_yaml));
  const std::string log_path = (dir / "prometheus.log").string();
  std::vector<std::string> args = {
      "prometheus",
      "--config.file=" + (dir / "prometheus.yml").string(),
      "--storage.tsdb.path=" + (dir / "data").string(),
      "--web.listen-address=127.0.0.1:0",
      "--log.level=warn",
      // A test's queries look at the last minute only: keep the default lookback.
      "--storage.tsdb.retention.time=1h",
  };
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return Error(ErrorCode::kInternal, "cannot open " + log_path);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return Error(ErrorCode::kInternal, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: die with the test's thread, log to the file, run prometheus from PATH.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::execvp("prometheus", argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  std::unique_ptr<PrometheusServer> server(new PrometheusServer(dir, pid));
  const auto deadline = Clock::now() + timeout;
  auto pause = std::chrono::milliseconds(10);
  while (true) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      server->pid_ = 0;  // already reaped
      return Error(ErrorCode::kUnavailable, "prometheus exited at start:\n" + server->LogTail());
    }
    if (server->port_ == 0) server->port_ = ListeningPort(pid);
    if (server->port_ != 0) {
      httplib::Client http("127.0.0.1", server->port_);
      http.set_connection_timeout(1);
      http.set_read_timeout(2);
      auto response = http.Get("/-/ready");
      if (response && response->status == 200) return server;
    }
    if (Clock::now() >= deadline) {
      return Error(ErrorCode::kDeadlineExceeded,
                   "prometheus did not become ready in time:\n" + server->LogTail());
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

PrometheusServer::~PrometheusServer() { Stop(); }

void PrometheusServer::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = 0;
}

Result<nlohmann::json> PrometheusServer::Api(const std::string& path_and_query) {
  httplib::Client http("127.0.0.1", port_);
  http.set_connection_timeout(5);
  http.set_read_timeout(30);
  auto response = http.Get("/api/v1/" + path_and_query);
  if (!response) return Error(ErrorCode::kUnavailable, "prometheus did not answer");
  nlohmann::json body = nlohmann::json::parse(response->body, nullptr, false);
  if (body.is_discarded()) {
    return Error(ErrorCode::kUnavailable, "prometheus answered " + std::to_string(response->status) +
                                              " without JSON: " + response->body.substr(0, 200));
  }
  return body;
}

Result<nlohmann::json> PrometheusServer::Query(const std::string& promql) {
  auto body = Api("query?query=" + UrlEncode(promql));
  if (!body.ok()) return body;
  if (body->value("status", "") != "success") {
    return Error(ErrorCode::kInvalidArgument,
                 body->value("errorType", "error") + ": " + body->value("error", body->dump()));
  }
  return (*body)["data"];
}

std::string PrometheusServer::LogTail() const { return ReadTail(dir_ / "prometheus.log", 3000); }

}  // namespace ddsplit::testing
