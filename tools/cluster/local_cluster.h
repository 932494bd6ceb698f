// LocalCluster: a real DDSplit cluster of separate processes on 127.0.0.1 — fragment stores,
// splitters, assemblers and an HTTP gateway run from their binaries — for `ddsplit cluster up`,
// the system tests and the fault-injection harness.
//
// Start() launches every store, waits for each to announce its bound endpoints, then launches
// the splitters and assemblers with the full store list, waits for them, then the gateway (if
// options.gateway) with their endpoints, and writes DIR/cluster.json (the file clients read,
// replaced atomically). Every endpoint and admin port
// is chosen by the kernel (port 0); a restarted process binds again exactly what it announced
// the first time, so peers and cluster.json never need to change.
//
// Files under DIR:
//   cluster.json        k, m, write_quorum (effective), splitters, assemblers, gateway (an
//                       object with url, port, admin_port, admin_url, pid, name, log; absent
//                       without a gateway), stores, log_dir
//   logs/<name>.log     stdout and stderr of process <name> ("store-3", "splitter-0"), appended
//                       to across restarts, each launch preceded by a "=== launch" line
//   store-<i>/          the RocksDB directory of store i (kept across restarts and runs)
//
// Process lifetime: children are killed (SIGKILL) by the kernel if the thread that started them
// exits, so a crashed launcher leaves no orphans. Call Start() and Restart() from a thread that
// outlives the cluster (normally the main thread). Children get their own process group (a
// terminal's Ctrl-C reaches only the launcher, which then stops them in order), an empty signal
// mask, default signal dispositions, stdin from /dev/null, and the launcher's environment minus
// every DDSPLIT_* variable (all configuration is passed as flags).
//
// Thread-safety: not thread-safe; use one LocalCluster from one thread. The owner must not reap
// the children itself (no waitpid(-1), no SIGCHLD set to SIG_IGN); use ReapExited() to learn of
// unexpected exits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

namespace ddsplit::cluster {

// The kinds of process in a local cluster, in start order. The gateway starts after the
// splitters and assemblers, with their endpoints as --splitter/--assembler.
enum class Role { kStore, kSplitter, kAssembler, kGateway };

// "store", "splitter", "assembler", "gateway".
std::string_view RoleName(Role role);

// One process of the cluster: a role and its index within the role, 0-based.
struct ProcessId {
  Role role = Role::kStore;
  int index = 0;
  // "store-3", "splitter-0": the process's name in logs and file names.
  std::string ToString() const;
  friend bool operator==(const ProcessId&, const ProcessId&) = default;
};

struct ClusterOptions {
  // Root directory for data, logs and cluster.json; created if missing. Relative paths are
  // made absolute at Start().
  std::filesystem::path dir;
  int stores = 6;
  int k = 4;
  int m = 2;
  int write_quorum = 0;         // 0: the services' default, k + 1 capped at k + m
  std::string sync = "always";  // the stores' WAL sync per group commit: "always" or "none"
  // Where ddsplit-fragstore, -splitter, -assembler and -gateway live. Empty: the directory
  // named by $DDSPLIT_BIN_DIR if set, else the directory of the running executable.
  std::filesystem::path bin_dir;
  int splitters = 1;
  int assemblers = 1;
  // One ddsplit-gateway (HTTP on 127.0.0.1, kernel-chosen port) in front of every splitter and
  // assembler. Needs at least one of each.
  bool gateway = true;
  // Appended to each such process's command line. Must not repeat a flag the launcher sets
  // (ids, binds, admin port, --k/--m/--write-quorum, --store, --sync, --announce-fd,
  // --log-level): the services reject a repeated flag.
  std::vector<std::string> extra_store_args, extra_splitter_args, extra_assembler_args,
      extra_gateway_args;
  // Deadline for Start() as a whole, and for each Restart().
  std::chrono::milliseconds start_timeout{30000};
  // Grace period for each group (splitters and assemblers, then stores) in StopAll() and the
  // destructor, before the leftovers are killed.
  std::chrono::milliseconds stop_timeout{10000};
  std::string log_level = "info";  // passed to every process: trace|debug|info|warn|error
};

// What a process announced, plus where the launcher keeps its files. Fields not used by a role
// are empty (or -1/0).
struct ProcessInfo {
  ProcessId id;
  std::string name;                // id.ToString()
  pid_t pid = 0;                   // the current launch, or the last one if not running
  int admin_port = 0;              // GET /healthz, /readyz, /metrics
  std::string admin_url;           // "http://127.0.0.1:PORT"
  std::filesystem::path log_path;  // DIR/logs/<name>.log
  std::string last_exit;           // how the last launch ended ("exit status 0", "signal 9"),
                                   // empty if it has not ended
  // Stores only.
  int store_id = -1;               // equals id.index
  std::string ingest_endpoint;     // PULL for fragments, "tcp://127.0.0.1:PORT"
  std::string read_endpoint;       // ROUTER for reads
  std::filesystem::path data_dir;  // DIR/store-<i>
  // Splitters and assemblers only.
  std::string endpoint;  // client ROUTER, "tcp://127.0.0.1:PORT"
  // Splitters only.
  std::string ack_endpoint;  // PULL for store acknowledgements
  // The gateway only.
  std::string url;  // "http://127.0.0.1:PORT"
  int port = 0;     // its HTTP port
};

// A child that ended without the launcher asking it to.
struct ExitedProcess {
  ProcessId id;
  pid_t pid = 0;
  std::string status;  // as ProcessInfo::last_exit
};

// The directory of the running executable (from /proc/self/exe). Errors: kInternal.
Result<std::filesystem::path> ExecutableDir();

class LocalCluster {
 public:
  // Validates `options`, starts the whole cluster and writes cluster.json; returns once every
  // process has announced, or when options.start_timeout has passed. Errors:
  //   kInvalidArgument  bad shape (need k >= 1, m >= 0, k + m <= 32, k + m <= stores,
  //                     k <= quorum <= k + m), bad sync, negative counts, missing binary
  //   kUnavailable      a process exited before announcing; the message names it and ends
  //                     with the last lines of its log
  //   kDeadlineExceeded a process did not announce in time (message as above)
  //   kInternal         a system call failed (fork, pipe, writing cluster.json, ...), or a
  //                     process announced something unreadable
  // On error every process already started is stopped and reaped.
  static Result<std::unique_ptr<LocalCluster>> Start(ClusterOptions options);

  // StopAll(), ignoring its result; every child is reaped when the destructor returns.
  ~LocalCluster();
  // A moved-from cluster owns no processes and may only be destroyed or assigned to. Assigning
  // to a cluster first stops the processes it owns.
  LocalCluster(LocalCluster&& other) noexcept;
  LocalCluster& operator=(LocalCluster&& other) noexcept;
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Every Status method below taking (role, index) fails with kInvalidArgument if there is no such
  // process, and with kUnavailable if the operation needs a running process and it is not.

  // SIGKILL, then reaps it. Also succeeds on a process that has exited but was not yet reaped.
  Status Kill(Role role, int index);
  // SIGSTOP; returns once the kernel reports the process stopped (it can neither catch nor
  // ignore the signal). kInvalidArgument if already stopped; kUnavailable if it exited instead.
  Status Stop(Role role, int index);
  // SIGCONT to a process stopped by Stop(). kInvalidArgument if it is not stopped.
  Status Continue(Role role, int index);
  // SIGTERM (and SIGCONT if stopped), then waits up to `grace` for the process to exit. The
  // process is not running when this returns. Errors: kDeadlineExceeded if it had to be killed,
  // kInternal if it exited with a non-zero status or a signal.
  Status Terminate(Role role, int index,
                   std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Launches a process that is not running again, with the endpoints, admin port and data
  // directory it announced at Start(), waits for its announcement (options.start_timeout),
  // updates its pid and rewrites cluster.json. kInvalidArgument if it is running. A restart
  // fails (kUnavailable, with the log tail) if another socket has taken one of its ports.
  Status Restart(Role role, int index);
  // Whether the process is alive (reaps it first if it has exited). A stopped process runs.
  bool Running(Role role, int index);
  // Reaps, without blocking, every child that has exited since the last call or operation, and
  // returns them. For a SIGCHLD handler loop in the owner.
  std::vector<ExitedProcess> ReapExited();

  // SIGTERM to the gateway, waits up to options.stop_timeout, then the same for every splitter
  // and assembler, then for the stores; what is left is killed. All children are reaped when
  // this returns; processes may be restarted afterwards. Errors (after all that):
  // kDeadlineExceeded if any needed SIGKILL, kInternal if any exited with a non-zero status; the
  // message names them.
  Status StopAll();

  // Number of processes of `role`.
  int Count(Role role) const;
  // Info of one process; `index` must be in [0, Count(role)).
  const ProcessInfo& Info(Role role, int index) const;

  const ClusterOptions& options() const;  // with dir and bin_dir made absolute
  int write_quorum() const;               // effective: k + 1 capped at k + m when 0
  const std::filesystem::path& dir() const;
  std::filesystem::path cluster_json() const;  // DIR/cluster.json
  std::filesystem::path log_dir() const;       // DIR/logs

 private:
  struct State;
  explicit LocalCluster(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace ddsplit::cluster
