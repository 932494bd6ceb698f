#include "tools/cluster/local_cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

extern char** environ;

namespace ddsplit::cluster {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kLoopback = "127.0.0.1";
constexpr const char* kAnyPort = "tcp://127.0.0.1:0";
// The descriptor each child announces on: the one after stdin, stdout and stderr.
constexpr int kAnnounceFd = 3;
// An announcement is one short JSON line; anything longer is a broken child.
constexpr size_t kMaxAnnouncementBytes = size_t{64} * 1024;
constexpr size_t kLogTailBytes = size_t{16} * 1024;
constexpr size_t kLogTailLines = 20;
// Without pidfds (kernels before 5.3) exits are noticed by re-checking this often.
constexpr int kNoPidfdRecheckMs = 10;

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Error SystemError(const std::string& what) {
  int saved = errno;
  return Error(ErrorCode::kInternal,
               what + ": " + std::error_code(saved, std::generic_category()).message());
}

// Milliseconds left until `deadline`, rounded up, as poll() takes them; 0 once it has passed.
int RemainingMs(Clock::time_point deadline) {
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

std::string DescribeSignal(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  std::string text = "signal " + std::to_string(signal);
  if (abbrev != nullptr) text += std::string(" (SIG") + abbrev + ")";
  return text;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return DescribeSignal(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

int PidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

Status WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return SystemError("write");
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return OkStatus();
}

std::string Timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &local);
  return text;
}

// One child process and what the launcher knows about it.
struct Process {
  ProcessInfo info;
  bool running = false;
  bool stopped = false;    // by Stop(), until Continue()
  bool announced = false;  // once true, the endpoints and admin port are fixed
  bool exited_cleanly = false;
  UniqueFd pidfd;        // while running, if the kernel has pidfds
  off_t log_offset = 0;  // where the current launch's output starts in its log
};

void MarkExited(Process& process, int wait_status) {
  process.running = false;
  process.stopped = false;
  process.pidfd.Reset();
  process.info.last_exit = DescribeWaitStatus(wait_status);
  process.exited_cleanly = WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

// Someone else reaped our child (the owner broke the contract); all we know is that it is gone.
void MarkLost(Process& process) {
  process.running = false;
  process.stopped = false;
  process.pidfd.Reset();
  process.info.last_exit = "reaped elsewhere";
  process.exited_cleanly = false;
}

// Reaps `process` if it has exited, without blocking. Returns whether it did.
bool TryReap(Process& process) {
  if (!process.running) return false;
  int status = 0;
  pid_t reaped;
  do {
    reaped = waitpid(process.info.pid, &status, WNOHANG);
  } while (reaped < 0 && errno == EINTR);
  if (reaped == process.info.pid) {
    MarkExited(process, status);
    return true;
  }
  if (reaped < 0 && errno == ECHILD) {
    MarkLost(process);
    return true;
  }
  return false;
}

// Waits for a process that has been sent SIGKILL (or has exited) and reaps it. SIGKILL cannot be
// caught, so this returns as soon as the kernel has torn the process down.
void ReapAfterKill(Process& process) {
  int status = 0;
  pid_t reaped;
  do {
    reaped = waitpid(process.info.pid, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  if (reaped == process.info.pid) {
    MarkExited(process, status);
  } else {
    MarkLost(process);
  }
}

void KillAndReap(Process& process) {
  if (!process.running) return;
  kill(process.info.pid, SIGKILL);
  ReapAfterKill(process);
}

// Waits until every process in `processes` has exited (and reaps them) or `deadline` passes.
void WaitForExits(const std::vector<Process*>& processes, Clock::time_point deadline) {
  for (;;) {
    std::vector<pollfd> fds;
    bool without_pidfd = false;
    for (Process* process : processes) {
      if (!process->running || TryReap(*process)) continue;
      if (process->pidfd.valid()) {
        fds.push_back({process->pidfd.get(), POLLIN, 0});
      } else {
        without_pidfd = true;
      }
    }
    if (fds.empty() && !without_pidfd) return;
    int timeout = RemainingMs(deadline);
    if (timeout == 0) return;
    if (without_pidfd) timeout = std::min(timeout, kNoPidfdRecheckMs);
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      // poll on pidfds cannot fail for a reason that would go away; fall back to re-checking.
      timeout = std::min(RemainingMs(deadline), kNoPidfdRecheckMs);
      poll(nullptr, 0, timeout);
    }
  }
}

// The last lines the current launch of `process` wrote to its log, for error messages.
std::string LogTail(const Process& process) {
  const std::string path = process.info.log_path.string();
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || fstat(fd.get(), &st) != 0) return "; cannot read its log " + path;
  off_t start = std::max<off_t>(process.log_offset, st.st_size - static_cast<off_t>(kLogTailBytes));
  if (start >= st.st_size) return "; its log " + path + " is empty";
  std::string text(static_cast<size_t>(st.st_size - start), '\0');
  ssize_t n = pread(fd.get(), text.data(), text.size(), start);
  if (n < 0) return "; cannot read its log " + path;
  text.resize(static_cast<size_t>(n));
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::vector<std::string_view> lines;
  size_t end = text.size();
  while (lines.size() < kLogTailLines) {
    size_t newline = text.rfind('\n', end == 0 ? 0 : end - 1);
    size_t begin = newline == std::string::npos ? 0 : newline + 1;
    lines.emplace_back(text.data() + begin, end - begin);
    if (newline == std::string::npos) break;
    end = newline;
  }
  std::string out = "; last lines of " + path + ":";
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    out += "\n  ";
    out += *it;
  }
  return out;
}

struct Launched {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd announce;  // read end of the announcement pipe
  off_t log_offset = 0;
};

// Writes "exec of <binary> failed: errno N" to stderr using only async-signal-safe calls.
void ReportExecFailure(const char* binary, int error) {
  char digits[16];
  int length = 0;
  unsigned value = static_cast<unsigned>(error);
  do {
    digits[length++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && length < static_cast<int>(sizeof digits));
  char reversed[16];
  for (int i = 0; i < length; ++i) reversed[i] = digits[length - 1 - i];
  static constexpr char kPrefix[] = "ddsplit-cluster: exec of ";
  static constexpr char kMiddle[] = " failed: errno ";
  (void)!write(STDERR_FILENO, kPrefix, sizeof kPrefix - 1);
  (void)!write(STDERR_FILENO, binary, std::strlen(binary));
  (void)!write(STDERR_FILENO, kMiddle, sizeof kMiddle - 1);
  (void)!write(STDERR_FILENO, reversed, static_cast<size_t>(length));
  (void)!write(STDERR_FILENO, "\n", 1);
}

// Runs in the forked child: only async-signal-safe calls from here to execve.
[[noreturn]] void ExecChild(const char* binary, char* const* argv, char* const* envp, int log_fd,
                            int null_fd, int announce_fd, pid_t parent, const sigset_t* empty_set) {
  // Own process group: a terminal's Ctrl-C goes to the launcher, which stops children in order.
  setpgid(0, 0);
  // Dispositions first, mask second: a signal the launcher blocks (sigwait) must not stay
  // blocked in the service, and none may reach a handler of the launcher's.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; ++signal) {
    if (signal != SIGKILL && signal != SIGSTOP) sigaction(signal, &default_action, nullptr);
  }
  pthread_sigmask(SIG_SETMASK, empty_set, nullptr);
  // Die with the launcher; if it is already gone, the death signal was missed: exit now.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(126);
  if (getppid() != parent) _exit(126);
  // Move the sources above the targets first so no dup2 below overwrites one of them.
  int log_high = fcntl(log_fd, F_DUPFD_CLOEXEC, 10);
  int null_high = fcntl(null_fd, F_DUPFD_CLOEXEC, 10);
  int announce_high = fcntl(announce_fd, F_DUPFD_CLOEXEC, 10);
  if (log_high < 0 || null_high < 0 || announce_high < 0) _exit(126);
  // dup2 clears close-on-exec on the targets, so exactly 0..3 survive execve.
  if (dup2(null_high, STDIN_FILENO) < 0 || dup2(log_high, STDOUT_FILENO) < 0 ||
      dup2(log_high, STDERR_FILENO) < 0 || dup2(announce_high, kAnnounceFd) < 0) {
    _exit(126);
  }
#ifdef SYS_close_range
  // Also drop descriptors the embedding program opened without O_CLOEXEC.
  syscall(SYS_close_range, static_cast<unsigned>(kAnnounceFd + 1), ~0U, 0U);
#endif
  execve(binary, argv, envp);
  ReportExecFailure(binary, errno);
  _exit(127);
}

// Starts `binary` with `args`, its output appended to `log_path` and its announcement pipe on
// fd 3.
Result<Launched> Launch(const std::filesystem::path& binary, const std::vector<std::string>& args,
                        const std::filesystem::path& log_path) {
  // Everything the child touches is prepared before fork.
  std::string binary_text = binary.string();
  std::vector<std::string> arg_storage;
  arg_storage.reserve(args.size() + 1);
  arg_storage.push_back(binary_text);
  arg_storage.insert(arg_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  argv.reserve(arg_storage.size() + 1);
  for (std::string& arg : arg_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, "DDSPLIT_", 8) != 0) envp.push_back(*entry);
  }
  envp.push_back(nullptr);
  sigset_t empty_set;
  sigemptyset(&empty_set);

  UniqueFd log(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log.valid()) return SystemError("cannot open " + log_path.string());
  std::string header = "=== launch " + Timestamp() + ":";
  for (const std::string& arg : arg_storage) header += " " + arg;
  header += "\n";
  DDSPLIT_RETURN_IF_ERROR(WriteAll(log.get(), header));
  off_t log_offset = lseek(log.get(), 0, SEEK_END);
  if (log_offset < 0) return SystemError("lseek " + log_path.string());
  UniqueFd dev_null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null.valid()) return SystemError("cannot open /dev/null");
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return SystemError("pipe2");
  UniqueFd announce_read(pipe_fds[0]);
  UniqueFd announce_write(pipe_fds[1]);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return SystemError("fork");
  if (pid == 0) {
    ExecChild(binary_text.c_str(), argv.data(), envp.data(), log.get(), dev_null.get(),
              announce_write.get(), parent, &empty_set);
  }
  // Only the child may hold the write end, so the read end sees EOF when the child exits.
  announce_write.Reset();
  Launched launched;
  launched.pid = pid;
  launched.pidfd = UniqueFd(PidfdOpen(pid));  // -1 on old kernels: exits are then re-checked
  launched.announce = std::move(announce_read);
  launched.log_offset = log_offset;
  return launched;
}

std::string StoreSpec(const ProcessInfo& store) {
  return std::to_string(store.store_id) + "=" + store.ingest_endpoint + "," + store.read_endpoint;
}

// What differs by role lives in BinaryName, ApplyAnnouncement, State::Of, State::ArgsFor and
// State::WriteClusterJson. Adding a role means a case in each switch (-Wswitch lists them), a
// count in ClusterOptions and a step in Start(). The gateway is launched after the splitters and
// assemblers with their endpoints as --splitter/--assembler, and terminated first in StopAll.
const char* BinaryName(Role role) {
  switch (role) {
    case Role::kStore:
      return "ddsplit-fragstore";
    case Role::kSplitter:
      return "ddsplit-splitter";
    case Role::kAssembler:
      return "ddsplit-assembler";
    case Role::kGateway:
      return "ddsplit-gateway";
  }
  return "";
}

constexpr Role kRoles[] = {Role::kStore, Role::kSplitter, Role::kAssembler, Role::kGateway};

Result<std::string> StringField(const nlohmann::json& json, const char* field) {
  auto it = json.find(field);
  if (it == json.end() || !it->is_string() || it->get<std::string>().empty()) {
    return Error(ErrorCode::kInternal, std::string("announcement without \"") + field + "\"");
  }
  return it->get<std::string>();
}

Result<int64_t> IntField(const nlohmann::json& json, const char* field) {
  auto it = json.find(field);
  if (it == json.end() || !it->is_number_integer()) {
    return Error(ErrorCode::kInternal, std::string("announcement without \"") + field + "\"");
  }
  return it->get<int64_t>();
}

// Fills `process` from its announcement line. A process announcing for the second time (a
// restart) must announce exactly what it announced the first time.
Status ApplyAnnouncement(Process& process, std::string_view line) {
  nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return Error(ErrorCode::kInternal, "announcement is not a JSON object: " + std::string(line));
  }
  ProcessInfo announced = process.info;
  auto admin_port = IntField(json, "admin_port");
  if (!admin_port.ok()) return std::move(admin_port).error();
  if (*admin_port <= 0 || *admin_port > 65535) {
    return Error(ErrorCode::kInternal, "announced admin port out of range");
  }
  announced.admin_port = static_cast<int>(*admin_port);
  switch (process.info.id.role) {
    case Role::kStore: {
      auto ingest = StringField(json, "ingest");
      if (!ingest.ok()) return std::move(ingest).error();
      auto read = StringField(json, "read");
      if (!read.ok()) return std::move(read).error();
      auto store_id = IntField(json, "store_id");
      if (!store_id.ok()) return std::move(store_id).error();
      if (*store_id != process.info.store_id) {
        return Error(ErrorCode::kInternal, "announced store id " + std::to_string(*store_id));
      }
      announced.ingest_endpoint = std::move(*ingest);
      announced.read_endpoint = std::move(*read);
      break;
    }
    case Role::kSplitter: {
      auto endpoint = StringField(json, "endpoint");
      if (!endpoint.ok()) return std::move(endpoint).error();
      auto ack = StringField(json, "ack_endpoint");
      if (!ack.ok()) return std::move(ack).error();
      announced.endpoint = std::move(*endpoint);
      announced.ack_endpoint = std::move(*ack);
      break;
    }
    case Role::kAssembler: {
      auto endpoint = StringField(json, "endpoint");
      if (!endpoint.ok()) return std::move(endpoint).error();
      announced.endpoint = std::move(*endpoint);
      break;
    }
    case Role::kGateway: {
      auto url = StringField(json, "url");
      if (!url.ok()) return std::move(url).error();
      auto port = IntField(json, "port");
      if (!port.ok()) return std::move(port).error();
      if (*port <= 0 || *port > 65535) {
        return Error(ErrorCode::kInternal, "announced HTTP port out of range");
      }
      announced.url = std::move(*url);
      announced.port = static_cast<int>(*port);
      break;
    }
  }
  if (process.announced) {
    const ProcessInfo& before = process.info;
    if (announced.admin_port != before.admin_port ||
        announced.ingest_endpoint != before.ingest_endpoint ||
        announced.read_endpoint != before.read_endpoint || announced.endpoint != before.endpoint ||
        announced.ack_endpoint != before.ack_endpoint || announced.port != before.port) {
      return Error(ErrorCode::kInternal, "restarted with other endpoints: " + std::string(line));
    }
  }
  announced.admin_url =
      std::string("http://") + kLoopback + ":" + std::to_string(announced.admin_port);
  process.info = std::move(announced);
  process.announced = true;
  return OkStatus();
}

struct PendingAnnouncement {
  Process* process = nullptr;
  UniqueFd pipe;
  std::string buffer;
};

}  // namespace

// The cluster's processes and every operation on them; LocalCluster forwards here.
struct LocalCluster::State {
  ClusterOptions options;
  int write_quorum = 0;
  std::vector<Process> stores;
  std::vector<Process> splitters;
  std::vector<Process> assemblers;
  std::vector<Process> gateways;

  std::vector<Process>& Of(Role role) {
    switch (role) {
      case Role::kStore:
        return stores;
      case Role::kSplitter:
        return splitters;
      case Role::kAssembler:
        return assemblers;
      case Role::kGateway:
        return gateways;
    }
    return stores;
  }
  const std::vector<Process>& Of(Role role) const { return const_cast<State*>(this)->Of(role); }

  Result<Process*> Find(Role role, int index) {
    auto& processes = Of(role);
    if (index < 0 || index >= static_cast<int>(processes.size())) {
      return Error(ErrorCode::kInvalidArgument, "no process " + ProcessId{role, index}.ToString());
    }
    return &processes[static_cast<size_t>(index)];
  }

  static Error NotRunning(const Process& process) {
    std::string message = process.info.name + " is not running";
    if (!process.info.last_exit.empty()) message += " (last exit: " + process.info.last_exit + ")";
    return Error(ErrorCode::kUnavailable, message);
  }

  static bool IsRunning(Process& process) { return process.running && !TryReap(process); }

  // The command line of `process`: ports 0 on the first launch, the announced ones after.
  std::vector<std::string> ArgsFor(const Process& process) const {
    const ProcessInfo& info = process.info;
    const bool fixed = process.announced;
    std::vector<std::string> args;
    auto add = [&args](std::string flag, std::string value) {
      args.push_back(std::move(flag));
      args.push_back(std::move(value));
    };
    auto add_shape_and_stores = [&] {
      add("--k", std::to_string(options.k));
      add("--m", std::to_string(options.m));
      add("--write-quorum", std::to_string(options.write_quorum));
      for (const Process& store : stores) add("--store", StoreSpec(store.info));
    };
    const std::vector<std::string>* extra = nullptr;
    switch (info.id.role) {
      case Role::kStore:
        add("--store-id", std::to_string(info.store_id));
        add("--data-dir", info.data_dir.string());
        add("--ingest-bind", fixed ? info.ingest_endpoint : kAnyPort);
        add("--read-bind", fixed ? info.read_endpoint : kAnyPort);
        add("--sync", options.sync);
        extra = &options.extra_store_args;
        break;
      case Role::kSplitter:
        add("--client-bind", fixed ? info.endpoint : kAnyPort);
        add("--ack-bind", fixed ? info.ack_endpoint : kAnyPort);
        add_shape_and_stores();
        extra = &options.extra_splitter_args;
        break;
      case Role::kAssembler:
        add("--client-bind", fixed ? info.endpoint : kAnyPort);
        add_shape_and_stores();
        extra = &options.extra_assembler_args;
        break;
      case Role::kGateway:
        add("--host", kLoopback);
        add("--port", fixed ? std::to_string(info.port) : "0");
        for (const Process& splitter : splitters) add("--splitter", splitter.info.endpoint);
        for (const Process& assembler : assemblers) add("--assembler", assembler.info.endpoint);
        extra = &options.extra_gateway_args;
        break;
    }
    add("--admin-host", kLoopback);
    add("--admin-port", fixed ? std::to_string(info.admin_port) : "0");
    add("--announce-fd", std::to_string(kAnnounceFd));
    add("--log-level", options.log_level);
    args.insert(args.end(), extra->begin(), extra->end());
    return args;
  }

  // Launches every process in `processes` (none may be running) and waits until each has
  // announced, one exits, or `deadline` passes. Processes that did not announce are left
  // running; the caller decides their fate.
  Status LaunchAndAwait(const std::vector<Process*>& processes, Clock::time_point deadline) {
    std::vector<PendingAnnouncement> pending;
    for (Process* process : processes) {
      assert(!process->running);
      auto launched = Launch(options.bin_dir / BinaryName(process->info.id.role), ArgsFor(*process),
                             process->info.log_path);
      if (!launched.ok()) return std::move(launched).error();
      process->info.pid = launched->pid;
      process->info.last_exit.clear();
      process->running = true;
      process->stopped = false;
      process->exited_cleanly = false;
      process->pidfd = std::move(launched->pidfd);
      process->log_offset = launched->log_offset;
      pending.push_back({process, std::move(launched->announce), {}});
    }
    return AwaitAnnouncements(pending, deadline);
  }

  Status AwaitAnnouncements(std::vector<PendingAnnouncement>& pending, Clock::time_point deadline) {
    for (;;) {
      std::vector<pollfd> fds;
      std::vector<PendingAnnouncement*> owners;
      for (PendingAnnouncement& entry : pending) {
        if (!entry.pipe.valid()) continue;
        fds.push_back({entry.pipe.get(), POLLIN, 0});
        owners.push_back(&entry);
      }
      if (fds.empty()) return OkStatus();
      int timeout = RemainingMs(deadline);
      int ready = timeout == 0 ? 0 : poll(fds.data(), fds.size(), timeout);
      if (ready < 0) {
        if (errno == EINTR) continue;
        return SystemError("poll");
      }
      if (ready == 0) {
        const Process& late = *owners.front()->process;
        return Error(ErrorCode::kDeadlineExceeded,
                     late.info.name + " (pid " + std::to_string(late.info.pid) +
                         ") did not announce within " +
                         std::to_string(options.start_timeout.count()) + " ms" + LogTail(late));
      }
      for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        DDSPLIT_RETURN_IF_ERROR(ReadAnnouncement(*owners[i], deadline));
      }
    }
  }

  Status ReadAnnouncement(PendingAnnouncement& entry, Clock::time_point deadline) {
    Process& process = *entry.process;
    char chunk[4096];
    ssize_t n = read(entry.pipe.get(), chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) return OkStatus();
      return SystemError("reading the announcement of " + process.info.name);
    }
    if (n > 0) {
      entry.buffer.append(chunk, static_cast<size_t>(n));
      size_t newline = entry.buffer.find('\n');
      if (newline == std::string::npos) {
        if (entry.buffer.size() <= kMaxAnnouncementBytes) return OkStatus();
        return Error(ErrorCode::kInternal, process.info.name + " announced more than " +
                                               std::to_string(kMaxAnnouncementBytes) +
                                               " bytes without a newline");
      }
      entry.pipe.Reset();
      Status applied =
          ApplyAnnouncement(process, std::string_view(entry.buffer).substr(0, newline));
      if (!applied.ok()) {
        return Error(applied.error().code(), process.info.name + ": " + applied.error().message());
      }
      return OkStatus();
    }
    // End of file without a line: the child has exited, or closed fd 3 and is about to.
    entry.pipe.Reset();
    WaitForExits({&process}, deadline);
    if (process.running) {
      KillAndReap(process);
      return Error(ErrorCode::kUnavailable, process.info.name +
                                                " closed its announcement pipe without announcing" +
                                                LogTail(process));
    }
    return Error(ErrorCode::kUnavailable,
                 process.info.name + " (pid " + std::to_string(process.info.pid) + ") ended with " +
                     process.info.last_exit + " before announcing" + LogTail(process));
  }

  // SIGTERM (and SIGCONT) to every running process of `processes`, waits until `deadline`,
  // kills what is left. Reports who needed SIGKILL and who exited uncleanly.
  static Status TerminateGroup(const std::vector<Process*>& processes, Clock::time_point deadline) {
    std::vector<Process*> live;
    for (Process* process : processes) {
      if (!IsRunning(*process)) continue;
      kill(process->info.pid, SIGTERM);
      // A stopped process keeps SIGTERM pending until it runs again.
      if (process->stopped) kill(process->info.pid, SIGCONT);
      process->stopped = false;
      live.push_back(process);
    }
    WaitForExits(live, deadline);
    std::string killed;
    std::string unclean;
    for (Process* process : live) {
      if (process->running) {
        KillAndReap(*process);
        killed += (killed.empty() ? "" : ", ") + process->info.name;
      } else if (!process->exited_cleanly) {
        unclean += (unclean.empty() ? "" : ", ") + process->info.name + " (" +
                   process->info.last_exit + ")";
      }
    }
    if (!killed.empty()) {
      std::string message = "killed after the grace period: " + killed;
      if (!unclean.empty()) message += "; exited uncleanly: " + unclean;
      return Error(ErrorCode::kDeadlineExceeded, message);
    }
    if (!unclean.empty()) return Error(ErrorCode::kInternal, "exited uncleanly: " + unclean);
    return OkStatus();
  }

  std::vector<Process*> Pointers(std::initializer_list<Role> roles) {
    std::vector<Process*> out;
    for (Role role : roles) {
      for (Process& process : Of(role)) out.push_back(&process);
    }
    return out;
  }

  // Both errors in one: kDeadlineExceeded if either needed SIGKILL, else kInternal.
  static Status Combine(Status first, Status second) {
    if (first.ok()) return second;
    if (second.ok()) return first;
    ErrorCode code = first.error().code() == ErrorCode::kDeadlineExceeded ||
                             second.error().code() == ErrorCode::kDeadlineExceeded
                         ? ErrorCode::kDeadlineExceeded
                         : ErrorCode::kInternal;
    return Error(code, first.error().message() + "; " + second.error().message());
  }

  Status StopAll() {
    // The gateway first: it drains its HTTP requests while the services behind it still answer.
    Status gateway =
        TerminateGroup(Pointers({Role::kGateway}), Clock::now() + options.stop_timeout);
    Status front = TerminateGroup(Pointers({Role::kSplitter, Role::kAssembler}),
                                  Clock::now() + options.stop_timeout);
    Status back = TerminateGroup(Pointers({Role::kStore}), Clock::now() + options.stop_timeout);
    return Combine(Combine(std::move(gateway), std::move(front)), std::move(back));
  }

  Status WriteClusterJson() const {
    auto common = [](const ProcessInfo& info) {
      return nlohmann::json{{"name", info.name},
                            {"admin_port", info.admin_port},
                            {"admin_url", info.admin_url},
                            {"pid", info.pid},
                            {"log", info.log_path.string()}};
    };
    nlohmann::json doc;
    doc["k"] = options.k;
    doc["m"] = options.m;
    doc["write_quorum"] = write_quorum;
    doc["splitters"] = nlohmann::json::array();
    for (const Process& process : splitters) {
      nlohmann::json entry = common(process.info);
      entry["endpoint"] = process.info.endpoint;
      entry["ack_endpoint"] = process.info.ack_endpoint;
      doc["splitters"].push_back(std::move(entry));
    }
    doc["assemblers"] = nlohmann::json::array();
    for (const Process& process : assemblers) {
      nlohmann::json entry = common(process.info);
      entry["endpoint"] = process.info.endpoint;
      doc["assemblers"].push_back(std::move(entry));
    }
    if (!gateways.empty()) {
      const ProcessInfo& info = gateways.front().info;
      nlohmann::json entry = common(info);
      entry["url"] = info.url;
      entry["port"] = info.port;
      doc["gateway"] = std::move(entry);
    }
    doc["stores"] = nlohmann::json::array();
    for (const Process& process : stores) {
      nlohmann::json entry = common(process.info);
      entry["id"] = process.info.store_id;
      entry["ingest"] = process.info.ingest_endpoint;
      entry["read"] = process.info.read_endpoint;
      entry["data_dir"] = process.info.data_dir.string();
      doc["stores"].push_back(std::move(entry));
    }
    doc["log_dir"] = (options.dir / "logs").string();

    const std::filesystem::path final_path = options.dir / "cluster.json";
    const std::filesystem::path temp_path = options.dir / "cluster.json.tmp";
    {
      UniqueFd fd(open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!fd.valid()) return SystemError("cannot create " + temp_path.string());
      DDSPLIT_RETURN_IF_ERROR(WriteAll(fd.get(), doc.dump(2) + "\n"));
      if (fsync(fd.get()) != 0) return SystemError("fsync " + temp_path.string());
    }
    if (std::rename(temp_path.c_str(), final_path.c_str()) != 0) {
      return SystemError("rename to " + final_path.string());
    }
    return OkStatus();
  }
};

namespace {

Status ValidateOptions(ClusterOptions& options) {
  auto invalid = [](const std::string& message) {
    return Error(ErrorCode::kInvalidArgument, message);
  };
  if (options.dir.empty()) return invalid("the cluster needs a directory");
  if (options.stores < 1) return invalid("need at least one store");
  if (options.splitters < 0 || options.assemblers < 0) {
    return invalid("splitter and assembler counts cannot be negative");
  }
  if (options.gateway && (options.splitters == 0 || options.assemblers == 0)) {
    return invalid("a gateway needs at least one splitter and one assembler");
  }
  if (options.k < 1 || options.m < 0 || options.k + options.m > 32) {
    return invalid("need k >= 1, m >= 0 and k + m <= 32");
  }
  if (options.k + options.m > options.stores) {
    return invalid(std::to_string(options.stores) + " stores cannot hold k + m = " +
                   std::to_string(options.k + options.m) + " fragments");
  }
  if (options.write_quorum != 0 &&
      (options.write_quorum < options.k || options.write_quorum > options.k + options.m)) {
    return invalid("write quorum must be 0 (k + 1) or between k and k + m");
  }
  if (options.sync != "always" && options.sync != "none") {
    return invalid("sync must be 'always' or 'none', not '" + options.sync + "'");
  }
  if (options.log_level.empty()) return invalid("empty log level");
  if (options.start_timeout <= std::chrono::milliseconds::zero() ||
      options.stop_timeout < std::chrono::milliseconds::zero()) {
    return invalid("start timeout must be positive and stop timeout not negative");
  }
  std::error_code ec;
  if (options.bin_dir.empty()) {
    const char* from_env = std::getenv("DDSPLIT_BIN_DIR");
    if (from_env != nullptr && *from_env != '\0') {
      options.bin_dir = from_env;
    } else {
      auto exe_dir = ExecutableDir();
      if (!exe_dir.ok()) return std::move(exe_dir).error();
      options.bin_dir = std::move(*exe_dir);
    }
  }
  options.bin_dir = std::filesystem::absolute(options.bin_dir, ec);
  if (ec) return invalid("bad bin dir: " + ec.message());
  for (Role role : kRoles) {
    if (role == Role::kSplitter && options.splitters == 0) continue;
    if (role == Role::kAssembler && options.assemblers == 0) continue;
    if (role == Role::kGateway && !options.gateway) continue;
    std::filesystem::path binary = options.bin_dir / BinaryName(role);
    if (access(binary.c_str(), X_OK) != 0) {
      return invalid("no executable " + binary.string() + " (set --bin-dir / bin_dir)");
    }
  }
  options.dir = std::filesystem::absolute(options.dir, ec);
  if (ec) return invalid("bad cluster dir: " + ec.message());
  return OkStatus();
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kStore:
      return "store";
    case Role::kSplitter:
      return "splitter";
    case Role::kAssembler:
      return "assembler";
    case Role::kGateway:
      return "gateway";
  }
  return "unknown";
}

std::string ProcessId::ToString() const {
  return std::string(RoleName(role)) + "-" + std::to_string(index);
}

Result<std::filesystem::path> ExecutableDir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return Error(ErrorCode::kInternal, "cannot read /proc/self/exe: " + ec.message());
  return exe.parent_path();
}

Result<std::unique_ptr<LocalCluster>> LocalCluster::Start(ClusterOptions options) {
  DDSPLIT_RETURN_IF_ERROR(ValidateOptions(options));
  const auto deadline = Clock::now() + options.start_timeout;
  std::error_code ec;
  std::filesystem::create_directories(options.dir / "logs", ec);
  if (ec) {
    return Error(ErrorCode::kInternal,
                 "cannot create " + (options.dir / "logs").string() + ": " + ec.message());
  }

  auto state = std::make_unique<State>();
  state->options = std::move(options);
  const ClusterOptions& opts = state->options;
  state->write_quorum =
      opts.write_quorum > 0 ? opts.write_quorum : std::min(opts.k + 1, opts.k + opts.m);
  auto add = [&state](Role role, int count) {
    auto& processes = state->Of(role);
    for (int i = 0; i < count; ++i) {
      Process process;
      process.info.id = ProcessId{role, i};
      process.info.name = process.info.id.ToString();
      process.info.log_path = state->options.dir / "logs" / (process.info.name + ".log");
      if (role == Role::kStore) {
        process.info.store_id = i;
        process.info.data_dir = state->options.dir / process.info.name;
      }
      processes.push_back(std::move(process));
    }
  };
  add(Role::kStore, opts.stores);
  add(Role::kSplitter, opts.splitters);
  add(Role::kAssembler, opts.assemblers);
  add(Role::kGateway, opts.gateway ? 1 : 0);

  // From here on the cluster owns the children: an early return stops and reaps them.
  std::unique_ptr<LocalCluster> cluster(new LocalCluster(std::move(state)));
  State& s = *cluster->state_;
  DDSPLIT_RETURN_IF_ERROR(s.LaunchAndAwait(s.Pointers({Role::kStore}), deadline));
  DDSPLIT_RETURN_IF_ERROR(
      s.LaunchAndAwait(s.Pointers({Role::kSplitter, Role::kAssembler}), deadline));
  DDSPLIT_RETURN_IF_ERROR(s.LaunchAndAwait(s.Pointers({Role::kGateway}), deadline));
  DDSPLIT_RETURN_IF_ERROR(s.WriteClusterJson());
  return cluster;
}

LocalCluster::LocalCluster(std::unique_ptr<State> state) : state_(std::move(state)) {}

LocalCluster::~LocalCluster() {
  if (state_) (void)state_->StopAll();
}

LocalCluster::LocalCluster(LocalCluster&& other) noexcept = default;

LocalCluster& LocalCluster::operator=(LocalCluster&& other) noexcept {
  if (this != &other) {
    if (state_) (void)state_->StopAll();
    state_ = std::move(other.state_);
  }
  return *this;
}

Status LocalCluster::Kill(Role role, int index) {
  auto found = state_->Find(role, index);
  if (!found.ok()) return std::move(found).error();
  Process& process = **found;
  if (!process.running) return State::NotRunning(process);
  KillAndReap(process);
  return OkStatus();
}

Status LocalCluster::Stop(Role role, int index) {
  auto found = state_->Find(role, index);
  if (!found.ok()) return std::move(found).error();
  Process& process = **found;
  if (!State::IsRunning(process)) return State::NotRunning(process);
  if (process.stopped)
    return Error(ErrorCode::kInvalidArgument, process.info.name + " is already stopped");
  if (kill(process.info.pid, SIGSTOP) != 0) return SystemError("kill SIGSTOP " + process.info.name);
  // SIGSTOP can be neither caught nor ignored, so the stop (or an exit) is reported promptly.
  siginfo_t info{};
  int waited;
  do {
    info = siginfo_t{};
    waited = waitid(P_PID, static_cast<id_t>(process.info.pid), &info, WSTOPPED | WEXITED);
  } while (waited < 0 && errno == EINTR);
  if (waited < 0) return SystemError("waitid " + process.info.name);
  if (info.si_code == CLD_STOPPED) {
    process.stopped = true;
    return OkStatus();
  }
  // It exited instead, and waitid has reaped it.
  int status =
      info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : W_EXITCODE(0, info.si_status);
  MarkExited(process, status);
  return Error(ErrorCode::kUnavailable, process.info.name + " ended with " +
                                            process.info.last_exit + " instead of stopping");
}

Status LocalCluster::Continue(Role role, int index) {
  auto found = state_->Find(role, index);
  if (!found.ok()) return std::move(found).error();
  Process& process = **found;
  if (!State::IsRunning(process)) return State::NotRunning(process);
  if (!process.stopped)
    return Error(ErrorCode::kInvalidArgument, process.info.name + " is not stopped");
  if (kill(process.info.pid, SIGCONT) != 0) return SystemError("kill SIGCONT " + process.info.name);
  process.stopped = false;
  return OkStatus();
}

Status LocalCluster::Terminate(Role role, int index, std::chrono::milliseconds grace) {
  auto found = state_->Find(role, index);
  if (!found.ok()) return std::move(found).error();
  Process& process = **found;
  if (!State::IsRunning(process)) return State::NotRunning(process);
  return State::TerminateGroup({&process}, Clock::now() + grace);
}

Status LocalCluster::Restart(Role role, int index) {
  auto found = state_->Find(role, index);
  if (!found.ok()) return std::move(found).error();
  Process& process = **found;
  if (State::IsRunning(process)) {
    return Error(ErrorCode::kInvalidArgument,
                 process.info.name + " is running; Kill or Terminate it before Restart");
  }
  Status launched =
      state_->LaunchAndAwait({&process}, Clock::now() + state_->options.start_timeout);
  if (!launched.ok()) {
    KillAndReap(process);  // a launch that did not announce is not a running member
    return launched;
  }
  return state_->WriteClusterJson();
}

bool LocalCluster::Running(Role role, int index) {
  auto found = state_->Find(role, index);
  return found.ok() && State::IsRunning(**found);
}

std::vector<ExitedProcess> LocalCluster::ReapExited() {
  std::vector<ExitedProcess> exited;
  for (Role role : kRoles) {
    for (Process& process : state_->Of(role)) {
      if (TryReap(process)) {
        exited.push_back({process.info.id, process.info.pid, process.info.last_exit});
      }
    }
  }
  return exited;
}

Status LocalCluster::StopAll() { return state_->StopAll(); }

int LocalCluster::Count(Role role) const { return static_cast<int>(state_->Of(role).size()); }

const ProcessInfo& LocalCluster::Info(Role role, int index) const {
  const auto& processes = state_->Of(role);
  assert(index >= 0 && index < static_cast<int>(processes.size()));
  return processes[static_cast<size_t>(index)].info;
}

const ClusterOptions& LocalCluster::options() const { return state_->options; }

int LocalCluster::write_quorum() const { return state_->write_quorum; }

const std::filesystem::path& LocalCluster::dir() const { return state_->options.dir; }

std::filesystem::path LocalCluster::cluster_json() const {
  return state_->options.dir / "cluster.json";
}

std::filesystem::path LocalCluster::log_dir() const { return state_->options.dir / "logs"; }

}  // namespace ddsplit::cluster
