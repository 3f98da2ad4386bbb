// The syscall plugin end to end: the real `tracehost run` binary with the plugin, a JSON lines
// sink writing to a file and a Prometheus endpoint, against child processes that make a known
// set of syscalls. Counts are exact: the plugin filters by process name (or pid, or cgroup) in the
// kernel, so only the children are traced.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/bpf_guard.hpp"
#include "common/host_harness.hpp"

namespace tracehost::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr int kGetppidCalls = 1000;
constexpr const char* kMissingPath = "/nonexistent-tracehost-test/missing-file";
constexpr const char* kMissingProgram = "/nonexistent-tracehost-test/no-such-program";

// Waits for a byte from the test before running; stops when the test went away.
bool wait_for_go(int in_fd) {
  char c = 0;
  return ::read(in_fd, &c, 1) == 1;
}

// A child that performs `action` once per byte received and acknowledges it: the test pings it
// until the action shows up in the metrics, which proves the probes are attached.
std::unique_ptr<Child> spawn_pinger(const std::string& comm, std::function<void()> action) {
  return Child::spawn(comm, [action](int in, int out) {
    char c = 0;
    while (::read(in, &c, 1) == 1) {
      action();
      if (::write(out, &c, 1) != 1) break;
    }
  });
}

void sleep_ns(long ns) {
  timespec ts{ns / 1000000000L, ns % 1000000000L};
  ::syscall(SYS_nanosleep, &ts, nullptr);
}

class SyscallPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TRACEHOST_REQUIRE_BPF_PRIVILEGES();
    dir_ = std::make_unique<TempDir>("tracehost-syscall");
    port_ = free_tcp_port();
    ASSERT_GT(port_, 0);
    events_path_ = dir_->path() / "events.jsonl";
  }

  // A config with the syscall plugin (its keys in `plugin_keys`), a JSON sink to events_path_
  // and a Prometheus endpoint on port_.
  fs::path write_config(const std::string& plugin_keys) {
    fs::path p = dir_->path() / "tracehost.toml";
    std::ofstream(p) << plugin_test_config("syscall", plugin_keys, events_path_, "syscall.*", port_);
    return p;
  }

  void start_host(const std::string& plugin_keys) {
    host_ = HostProcess::start(write_config(plugin_keys), dir_->path() / "host.log");
    ASSERT_NE(host_, nullptr);
  }

  std::vector<Sample> scrape() {
    auto body = http_get(port_, "/metrics");
    return body ? parse_prometheus(*body) : std::vector<Sample>{};
  }

  // Pings until `series` (a metric and labels the ping feeds) is non-zero: the probes are
  // attached and the endpoint serves the plugin's metrics.
  void wait_until_tracing(Child& pinger, const std::string& series, const Labels& labels) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      ASSERT_TRUE(host_->running()) << "tracehost exited early:\n" << host_->log();
      ASSERT_TRUE(pinger.send());
      ASSERT_TRUE(pinger.receive());
      auto v = metric(scrape(), series, labels);
      if (v.has_value() && *v >= 1) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "the plugin's metrics never showed the pings; host log:\n" << host_->log();
  }

  // JSON lines of `topic` for process `pid`, once at least `count` of them arrived (5 s).
  std::vector<Json> events(const std::string& topic, pid_t pid, std::size_t count) {
    std::vector<Json> out;
    auto deadline = std::chrono::steady_clock::now() + 5s;
    do {
      out.clear();
      std::istringstream in(read_file(events_path_));
      std::string line;
      while (std::getline(in, line)) {
        Json j = Json::parse(line, nullptr, false);
        if (j.is_discarded()) continue;
        if (j.value("topic", "") == topic && j.value("pid", -1) == pid) out.push_back(j);
      }
      if (out.size() >= count) break;
      std::this_thread::sleep_for(100ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return out;
  }

  void stop_host() {
    ASSERT_NE(host_, nullptr);
    EXPECT_EQ(host_->stop(), 0) << host_->log();
  }

  std::unique_ptr<TempDir> dir_;
  int port_ = -1;
  fs::path events_path_;
  std::unique_ptr<HostProcess> host_;
};


TEST_F(SyscallPluginTest, CountsAndEventsOfOneProcess) {
  const std::string work_comm = unique_comm("thw");
  const std::string ping_comm = unique_comm("thp");
  auto pinger = spawn_pinger(ping_comm, [] { ::syscall(SYS_getppid); });
  ASSERT_NE(pinger, nullptr);
  start_host("comms = " + toml_list({work_comm, ping_comm}) +
             "\nper_process = \"comm\"\nexec = true\nopen = true\nfailed = true\n"
             "slow_threshold_us = 50000\n");
  ASSERT_NO_FATAL_FAILURE(wait_until_tracing(*pinger, "tracehost_syscall_process_calls_total",
                                             {{"comm", ping_comm}, {"syscall", "getppid"}}));

  // exactly kGetppidCalls getppid, one failing openat, one slow nanosleep, one failing and one
  // successful execve; nothing else fails before the exec
  auto work = Child::spawn(work_comm, [](int in, int) {
    if (!wait_for_go(in)) return;
    for (int i = 0; i < kGetppidCalls; ++i) ::syscall(SYS_getppid);
    ::openat(AT_FDCWD, kMissingPath, O_RDONLY | O_CLOEXEC);
    sleep_ns(100'000'000);
    char* const missing_argv[] = {const_cast<char*>(kMissingProgram), nullptr};
    ::execv(kMissingProgram, missing_argv);
    char* const argv[] = {const_cast<char*>("/bin/true"), const_cast<char*>("tracehost-arg-1"),
                          const_cast<char*>("second arg"), nullptr};
    ::execv("/bin/true", argv);
    ::_exit(3);
  });
  ASSERT_NE(work, nullptr);
  const pid_t work_pid = work->pid();
  ASSERT_TRUE(work->send());
  ASSERT_EQ(work->wait(), 0) << "the workload's exec of /bin/true failed";

  // ---- metrics (read from the maps at scrape time) ----
  auto m = scrape();
  const auto work_getppid = metric(m, "tracehost_syscall_process_calls_total",
                                   {{"comm", work_comm}, {"syscall", "getppid"}});
  const auto ping_getppid = metric(m, "tracehost_syscall_process_calls_total",
                                   {{"comm", ping_comm}, {"syscall", "getppid"}});
  ASSERT_TRUE(work_getppid.has_value()) << host_->log();
  ASSERT_TRUE(ping_getppid.has_value());
  EXPECT_EQ(*work_getppid, kGetppidCalls);
  // only the two filtered processes are traced
  EXPECT_EQ(metric(m, "tracehost_syscall_calls_total", {{"syscall", "getppid"}}),
            kGetppidCalls + *ping_getppid);
  EXPECT_EQ(metric(m, "tracehost_syscall_latency_seconds_count", {{"syscall", "getppid"}}),
            kGetppidCalls + *ping_getppid);
  EXPECT_EQ(metric(m, "tracehost_syscall_latency_seconds_bucket",
                   {{"syscall", "getppid"}, {"le", "+Inf"}}),
            kGetppidCalls + *ping_getppid);
  EXPECT_EQ(metric(m, "tracehost_syscall_errors_total", {{"syscall", "openat"}}), 1);
  EXPECT_EQ(metric(m, "tracehost_syscall_errors_total", {{"syscall", "execve"}}), 1);
  EXPECT_EQ(metric(m, "tracehost_syscall_calls_total", {{"syscall", "execve"}}), 2);
  // a successful exec returns under the new program's name
  EXPECT_EQ(metric(m, "tracehost_syscall_process_calls_total",
                   {{"comm", work_comm}, {"syscall", "execve"}}),
            1);
  EXPECT_EQ(
      metric(m, "tracehost_syscall_process_calls_total", {{"comm", "true"}, {"syscall", "execve"}}),
      1);
  EXPECT_EQ(metric(m, "tracehost_syscall_process_errors_total",
                   {{"comm", work_comm}, {"syscall", "openat"}}),
            1);
  const auto sleep_seconds = metric(m, "tracehost_syscall_process_latency_seconds_total",
                                    {{"comm", work_comm}, {"syscall", "nanosleep"}});
  ASSERT_TRUE(sleep_seconds.has_value());
  EXPECT_GE(*sleep_seconds, 0.1);
  EXPECT_LT(*sleep_seconds, 5.0);

  // ---- events ----
  auto execs = events("syscall.exec", work_pid, 2);
  ASSERT_EQ(execs.size(), 2u) << read_file(events_path_);
  const Json& failed_exec = execs[0]["filename"] == kMissingProgram ? execs[0] : execs[1];
  const Json& exec = execs[0]["filename"] == kMissingProgram ? execs[1] : execs[0];
  EXPECT_EQ(failed_exec["filename"], kMissingProgram);
  EXPECT_EQ(failed_exec["ret"], -ENOENT);
  EXPECT_EQ(failed_exec["errno"], "ENOENT");
  EXPECT_EQ(failed_exec["comm"], work_comm);
  EXPECT_EQ(exec["filename"], "/bin/true");
  EXPECT_EQ(exec["syscall"], "execve");
  EXPECT_EQ(exec["argc"], 3);
  EXPECT_EQ(exec["arg0"], "/bin/true");
  EXPECT_EQ(exec["arg1"], "tracehost-arg-1");
  EXPECT_EQ(exec["arg2"], "second arg");
  EXPECT_EQ(exec["arg3"], "");
  EXPECT_EQ(exec["args_truncated"], false);
  EXPECT_EQ(exec["ret"], 0);
  EXPECT_EQ(exec["ppid"], ::getpid());
  EXPECT_EQ(exec["tid"], work_pid);
  EXPECT_EQ(exec["comm"], "true");
  EXPECT_EQ(exec["uid"], ::getuid());

  auto opens = events("syscall.open", work_pid, 1);
  ASSERT_EQ(opens.size(), 1u) << read_file(events_path_);
  EXPECT_EQ(opens[0]["path"], kMissingPath);
  EXPECT_EQ(opens[0]["syscall"], "openat");
  EXPECT_EQ(opens[0]["errno"], "ENOENT");
  EXPECT_EQ(opens[0]["ret"], -ENOENT);
  EXPECT_EQ(opens[0]["dirfd"], AT_FDCWD);
  EXPECT_EQ(opens[0]["comm"], work_comm);

  auto failures = events("syscall.failed", work_pid, 2);
  ASSERT_EQ(failures.size(), 2u) << read_file(events_path_);
  std::multiset<std::string> failed_calls;
  for (const auto& f : failures) {
    failed_calls.insert(f.value("syscall", "?") + ":" + f.value("errno", "?"));
    EXPECT_EQ(f["tid"], work_pid);
    EXPECT_EQ(f["comm"], work_comm);
    EXPECT_GT(f["latency_ns"].get<std::int64_t>(), 0);
  }
  EXPECT_EQ(failed_calls, (std::multiset<std::string>{"execve:ENOENT", "openat:ENOENT"}));

  auto slow = events("syscall.slow", work_pid, 1);
  ASSERT_EQ(slow.size(), 1u) << read_file(events_path_);
  EXPECT_EQ(slow[0]["syscall"], "nanosleep");
  EXPECT_GE(slow[0]["latency_ns"].get<std::int64_t>(), 100'000'000);
  EXPECT_EQ(slow[0]["ret"], 0);

  // the pinger made no failing or slow syscall and never opened or executed anything
  EXPECT_TRUE(events("syscall.failed", pinger->pid(), 0).empty());
  EXPECT_TRUE(events("syscall.exec", pinger->pid(), 0).empty());
  stop_host();
}

// pids filter and per_process = "pid": a process with the same name but another pid is not
// traced, and series carry the pid.

// exec arguments in pages the caller has never touched: bpf_probe_read_user cannot fault them in
// at syscall entry, so the plugin re-reads them from the new image after a successful exec.
TEST_F(SyscallPluginTest, ExecArgumentsFromPagesNotYetMapped) {
  const std::string work_comm = unique_comm("thx");
  const std::string ping_comm = unique_comm("thq");
  auto pinger = spawn_pinger(ping_comm, [] { ::syscall(SYS_getppid); });
  ASSERT_NE(pinger, nullptr);
  start_host("comms = " + toml_list({work_comm, ping_comm}) + "\nexec = true\n");
  ASSERT_NO_FATAL_FAILURE(wait_until_tracing(*pinger, "tracehost_syscall_process_calls_total",
                                             {{"comm", ping_comm}, {"syscall", "getppid"}}));

  // the argument strings live in a file mapped MAP_PRIVATE and never read by the child
  const fs::path strings = dir_->path() / "argv-strings";
  const std::string long_arg(300, 'L');  // longer than the 63 bytes kept per argument
  {
    std::ofstream f(strings, std::ios::binary);
    f << "/bin/true" << '\0' << "untouched-arg-1" << '\0' << long_arg << '\0' << "after-long"
      << '\0';
  }
  auto work = Child::spawn(work_comm, [&](int in, int) {
    if (!wait_for_go(in)) return;
    const int fd = ::open(strings.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) ::_exit(4);
    void* map = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) ::_exit(5);
    const char* base = static_cast<const char*>(map);
    // offsets known from the layout above; the child never dereferences them itself
    const std::size_t a1 = 10, a2 = a1 + 16, a3 = a2 + long_arg.size() + 1;
    char* const argv[] = {const_cast<char*>(base), const_cast<char*>(base + a1),
                          const_cast<char*>(base + a2), const_cast<char*>(base + a3), nullptr};
    ::execv("/bin/true", argv);
    ::_exit(3);
  });
  ASSERT_NE(work, nullptr);
  const pid_t work_pid = work->pid();
  ASSERT_TRUE(work->send());
  ASSERT_EQ(work->wait(), 0) << "the workload's exec of /bin/true failed";

  auto execs = events("syscall.exec", work_pid, 1);
  ASSERT_EQ(execs.size(), 1u) << read_file(events_path_);
  const Json& exec = execs[0];
  EXPECT_EQ(exec["ret"], 0);
  EXPECT_EQ(exec["argc"], 4);
  EXPECT_EQ(exec["arg0"], "/bin/true");
  EXPECT_EQ(exec["arg1"], "untouched-arg-1");
  EXPECT_EQ(exec["arg2"], long_arg.substr(0, 63));
  EXPECT_EQ(exec["arg3"], "after-long");
  EXPECT_EQ(exec["args_truncated"], false);
  stop_host();
}

TEST_F(SyscallPluginTest, PidFilterWithPerPidSeries) {
  const std::string comm = unique_comm("thd");
  auto body = [](int in, int) {
    if (!wait_for_go(in)) return;
    for (int i = 0; i < kGetppidCalls; ++i) ::syscall(SYS_getppid);
  };
  auto work = Child::spawn(comm, body);
  auto decoy = Child::spawn(comm, body);
  auto pinger = spawn_pinger(unique_comm("thp"), [] { ::syscall(SYS_getppid); });
  ASSERT_TRUE(work && decoy && pinger);
  // wait() forgets the pid: keep them
  const std::string work_pid = std::to_string(work->pid());
  const std::string decoy_pid = std::to_string(decoy->pid());
  start_host("pids = [" + work_pid + ", " + std::to_string(pinger->pid()) +
             "]\nper_process = \"pid\"\nexec = false\n");
  ASSERT_NO_FATAL_FAILURE(
      wait_until_tracing(*pinger, "tracehost_syscall_process_calls_total",
                         {{"pid", std::to_string(pinger->pid())}, {"syscall", "getppid"}}));

  ASSERT_TRUE(work->send());
  ASSERT_TRUE(decoy->send());
  EXPECT_EQ(work->wait(), 0);
  EXPECT_EQ(decoy->wait(), 0);

  auto m = scrape();
  EXPECT_EQ(metric(m, "tracehost_syscall_process_calls_total",
                   {{"pid", work_pid}, {"comm", comm}, {"syscall", "getppid"}}),
            kGetppidCalls);
  EXPECT_FALSE(
      metric(m, "tracehost_syscall_process_calls_total", {{"pid", decoy_pid}}).has_value());
  auto pings = metric(m, "tracehost_syscall_process_calls_total",
                      {{"pid", std::to_string(pinger->pid())}, {"syscall", "getppid"}});
  ASSERT_TRUE(pings.has_value());
  EXPECT_EQ(metric(m, "tracehost_syscall_calls_total", {{"syscall", "getppid"}}),
            kGetppidCalls + *pings);
  stop_host();
}

// syscalls + failed_only: only failing calls of the selected syscalls are recorded.
TEST_F(SyscallPluginTest, SyscallSelectionAndFailedOnly) {
  const std::string work_comm = unique_comm("thw");
  const std::string ping_comm = unique_comm("thp");
  auto pinger = spawn_pinger(ping_comm, [] { ::openat(AT_FDCWD, kMissingPath, O_RDONLY); });
  ASSERT_NE(pinger, nullptr);
  start_host("comms = " + toml_list({work_comm, ping_comm}) +
             "\nsyscalls = [\"getppid\", \"openat\"]\nfailed_only = true\nexec = false\n");
  ASSERT_NO_FATAL_FAILURE(wait_until_tracing(*pinger, "tracehost_syscall_process_calls_total",
                                             {{"comm", ping_comm}, {"syscall", "openat"}}));

  auto work = Child::spawn(work_comm, [](int in, int) {
    if (!wait_for_go(in)) return;
    for (int i = 0; i < kGetppidCalls; ++i) ::syscall(SYS_getppid);        // never fails
    int fd = ::openat(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // succeeds
    if (fd >= 0) ::close(fd);
    ::openat(AT_FDCWD, kMissingPath, O_RDONLY | O_CLOEXEC);  // fails
    ::openat(AT_FDCWD, kMissingPath, O_RDONLY | O_CLOEXEC);  // fails
    ::syscall(SYS_getpid);                                   // not selected
  });
  ASSERT_NE(work, nullptr);
  ASSERT_TRUE(work->send());
  ASSERT_EQ(work->wait(), 0);

  auto m = scrape();
  EXPECT_EQ(metric(m, "tracehost_syscall_process_calls_total",
                   {{"comm", work_comm}, {"syscall", "openat"}}),
            2);
  EXPECT_EQ(metric(m, "tracehost_syscall_process_errors_total",
                   {{"comm", work_comm}, {"syscall", "openat"}}),
            2);
  EXPECT_FALSE(metric(m, "tracehost_syscall_process_calls_total",
                      {{"comm", work_comm}, {"syscall", "getppid"}})
                   .has_value());
  EXPECT_FALSE(metric(m, "tracehost_syscall_process_calls_total",
                      {{"comm", work_comm}, {"syscall", "close"}})
                   .has_value());
  EXPECT_FALSE(metric(m, "tracehost_syscall_calls_total", {{"syscall", "getpid"}}).has_value());
  EXPECT_FALSE(metric(m, "tracehost_syscall_calls_total", {{"syscall", "read"}}).has_value());
  stop_host();
}

// min_latency_us: fast calls are not recorded, slow ones are.
TEST_F(SyscallPluginTest, MinLatency) {
  const std::string work_comm = unique_comm("thw");
  const std::string ping_comm = unique_comm("thp");
  auto pinger = spawn_pinger(ping_comm, [] { sleep_ns(30'000'000); });
  ASSERT_NE(pinger, nullptr);
  start_host("comms = " + toml_list({work_comm, ping_comm}) +
             "\nmin_latency_us = 20000\nexec = false\n");
  ASSERT_NO_FATAL_FAILURE(wait_until_tracing(*pinger, "tracehost_syscall_process_calls_total",
                                             {{"comm", ping_comm}, {"syscall", "nanosleep"}}));

  auto work = Child::spawn(work_comm, [](int in, int) {
    if (!wait_for_go(in)) return;
    for (int i = 0; i < kGetppidCalls; ++i) ::syscall(SYS_getppid);
    sleep_ns(1'000'000);   // 1 ms: below the threshold
    sleep_ns(40'000'000);  // 40 ms: recorded
  });
  ASSERT_NE(work, nullptr);
  ASSERT_TRUE(work->send());
  ASSERT_EQ(work->wait(), 0);

  auto m = scrape();
  EXPECT_EQ(metric(m, "tracehost_syscall_process_calls_total",
                   {{"comm", work_comm}, {"syscall", "nanosleep"}}),
            1);
  EXPECT_FALSE(metric(m, "tracehost_syscall_process_calls_total",
                      {{"comm", work_comm}, {"syscall", "getppid"}})
                   .has_value());
  stop_host();
}

// cgroup: a process in the configured cgroup is traced, one with the same name outside is not.
TEST_F(SyscallPluginTest, CgroupFilter) {
  std::string why;
  auto cg = TempCgroup::make(&why);
  if (cg == nullptr) GTEST_SKIP() << why;

  const std::string comm = unique_comm("thc");
  auto body = [](int in, int) {
    if (!wait_for_go(in)) return;
    for (int i = 0; i < kGetppidCalls; ++i) ::syscall(SYS_getppid);
  };
  auto inside = Child::spawn(comm, body);
  auto outside = Child::spawn(comm, body);
  const std::string ping_comm = unique_comm("thp");
  auto pinger = spawn_pinger(ping_comm, [] { ::syscall(SYS_getppid); });
  ASSERT_TRUE(inside && outside && pinger);
  for (pid_t pid : {inside->pid(), pinger->pid()}) ASSERT_EQ(cg->move(pid), "");
  // relative to the cgroup2 root, the way the README suggests writing it
  start_host("cgroup = \"" + cg->name() + "\"\nexec = false\n");
  ASSERT_NO_FATAL_FAILURE(wait_until_tracing(*pinger, "tracehost_syscall_process_calls_total",
                                             {{"comm", ping_comm}, {"syscall", "getppid"}}));

  ASSERT_TRUE(inside->send());
  ASSERT_TRUE(outside->send());
  EXPECT_EQ(inside->wait(), 0);
  EXPECT_EQ(outside->wait(), 0);
  auto m = scrape();
  EXPECT_EQ(
      metric(m, "tracehost_syscall_process_calls_total", {{"comm", comm}, {"syscall", "getppid"}}),
      kGetppidCalls);
  stop_host();
  pinger.reset();  // the cgroup can go once its processes have
}

// An unknown syscall name is a config error naming it, with a suggestion.
TEST_F(SyscallPluginTest, UnknownSyscallNameIsAConfigError) {
  start_host("syscalls = [\"getppidd\"]\n");
  auto code = host_->wait(30s);
  ASSERT_TRUE(code.has_value()) << "tracehost kept running with an invalid syscall name";
  EXPECT_EQ(*code, 2) << host_->log();
  const std::string log = host_->log();
  EXPECT_NE(log.find("getppidd"), std::string::npos) << log;
  EXPECT_NE(log.find("did you mean 'getppid'"), std::string::npos) << log;
}

}  // namespace
}  // namespace tracehost::testing
