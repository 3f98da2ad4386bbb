// The cpu_profile plugin end to end: the real `tracehost run` binary with only cpu_profile
// sampling at 99 Hz in 1 s windows while a child process burns CPU. The child must show up in the
// window files (folded stacks, raw addresses) and in the plugin's metrics.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/bpf_guard.hpp"
#include "common/host_harness.hpp"

namespace tracehost::testing {
namespace {

using namespace std::chrono_literals;

// A child named `comm` spinning on the CPU until killed.
class Burner {
 public:
  explicit Burner(const std::string& comm) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_NAME, comm.c_str(), 0, 0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      volatile std::uint64_t x = 0;
      for (;;) x = x * 6364136223846793005ULL + 1;
    }
  }
  ~Burner() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Burner(const Burner&) = delete;
  Burner& operator=(const Burner&) = delete;
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

struct Window {
  fs::path path;
  std::map<std::string, std::uint64_t> samples_by_comm;  // first frame -> samples
  std::size_t lines = 0;
  bool well_formed = true;
};

// Window files ("root;...;leaf count" lines) in `dir`, by name (= start time).
std::vector<Window> read_windows(const fs::path& dir) {
  std::vector<Window> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (!n.starts_with("cpu_profile-") || !n.ends_with(".folded")) continue;
    Window w;
    w.path = e.path();
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      ++w.lines;
      const auto space = line.rfind(' ');
      if (space == std::string::npos || space + 1 >= line.size()) {
        w.well_formed = false;
        continue;
      }
      const std::string stack = line.substr(0, space);
      const std::uint64_t count = std::strtoull(line.c_str() + space + 1, nullptr, 10);
      if (count == 0) w.well_formed = false;
      w.samples_by_comm[stack.substr(0, stack.find(';'))] += count;
    }
    out.push_back(std::move(w));
  }
  std::sort(out.begin(), out.end(),
            [](const Window& a, const Window& b) { return a.path < b.path; });
  return out;
}

TEST(CpuProfilePlugin, WritesWindowsWithTheBusyChild) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  TempDir dir("tracehost-cpu-profile");
  const fs::path out = dir.path() / "profiles";
  const int port = free_tcp_port();
  ASSERT_GT(port, 0);
  char comm[16];
  std::snprintf(comm, sizeof(comm), "thburn%d", static_cast<int>(::getpid() % 100000));

  std::ostringstream c;
  c << "[host]\nlog_level = \"debug\"\n\n"
    << "[plugins.cpu_profile]\nenabled = true\nrequired = true\nfrequency_hz = 99\n"
    << "window_s = 1\noutput_dir = \"" << out.string() << "\"\n\n"
    << "[sinks.console]\nenabled = false\n\n"
    << "[sinks.prometheus]\nenabled = true\nlisten = \"127.0.0.1:" << port << "\"\n";
  const fs::path config = dir.path() / "tracehost.toml";
  std::ofstream(config) << c.str();

  Burner burner(comm);
  ASSERT_GT(burner.pid(), 0);
  // 3 s of sampling, plus time to start
  auto host = HostProcess::start(config, dir.path() / "host.log", 4);
  ASSERT_NE(host, nullptr);

  // metrics while it runs: at least one window written, samples counted
  std::optional<double> windows, samples;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline && host->running()) {
    const auto m = scrape(port);
    windows = metric(m, "tracehost_cpu_profile_windows_written_total");
    samples = metric(m, "tracehost_cpu_profile_samples_total");
    if (windows.value_or(0) >= 1) break;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_GE(windows.value_or(0), 1) << host->log();
  EXPECT_GT(samples.value_or(0), 0) << host->log();

  ASSERT_EQ(host->wait(30s), std::optional<int>(0)) << host->log();
  ASSERT_TRUE(fs::is_directory(out)) << host->log();
  const auto files = read_windows(out);
  ASSERT_GE(files.size(), 1u) << host->log();

  std::uint64_t child_samples = 0;
  std::size_t windows_with_child = 0;
  for (const auto& w : files) {
    EXPECT_TRUE(w.well_formed) << w.path << ":\n" << read_file(w.path);
    EXPECT_GT(w.lines, 0u) << w.path;
    auto it = w.samples_by_comm.find(comm);
    if (it != w.samples_by_comm.end() && it->second > 0) {
      ++windows_with_child;
      child_samples += it->second;
    }
    // the host's own process is excluded by default, idle too
    EXPECT_EQ(w.samples_by_comm.count("tracehost"), 0u) << w.path;
    EXPECT_EQ(w.samples_by_comm.count("swapper/0"), 0u) << w.path;
  }
  EXPECT_GE(windows_with_child, 1u) << host->log();
  // a CPU-bound child over ~3 s at 99 Hz: ~300 samples on an idle CPU, well above 20 even when
  // other builds share the cores
  EXPECT_GE(child_samples, 20u) << host->log();

  // its user stack is in the folded lines: raw hex addresses below the comm
  bool has_user_frame = false;
  for (const auto& w : files) {
    std::istringstream in(read_file(w.path));
    std::string line;
    while (std::getline(in, line)) {
      if (line.starts_with(std::string(comm) + ";0x")) has_user_frame = true;
    }
  }
  EXPECT_TRUE(has_user_frame);
}

// comms filters in the kernel: only the named process appears.
TEST(CpuProfilePlugin, CommFilterKeepsOnlyThatProcess) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  TempDir dir("tracehost-cpu-profile");
  const fs::path out = dir.path() / "profiles";
  char comm[16];
  std::snprintf(comm, sizeof(comm), "thonly%d", static_cast<int>(::getpid() % 100000));
  char other[16];
  std::snprintf(other, sizeof(other), "thother%d", static_cast<int>(::getpid() % 100000));

  std::ostringstream c;
  c << "[host]\nlog_level = \"info\"\n\n"
    << "[plugins.cpu_profile]\nenabled = true\nrequired = true\nfrequency_hz = 99\n"
    << "window_s = 1\nmode = \"user\"\ncomms = [\"" << comm << "\"]\noutput_dir = \""
    << out.string() << "\"\n\n"
    << "[sinks.console]\nenabled = false\n";
  const fs::path config = dir.path() / "tracehost.toml";
  std::ofstream(config) << c.str();

  Burner wanted(comm);
  Burner unwanted(other);
  auto host = HostProcess::start(config, dir.path() / "host.log", 3);
  ASSERT_NE(host, nullptr);
  ASSERT_EQ(host->wait(30s), std::optional<int>(0)) << host->log();
  const auto files = read_windows(out);
  ASSERT_GE(files.size(), 1u) << host->log();
  std::uint64_t samples = 0;
  for (const auto& w : files) {
    for (const auto& [name, n] : w.samples_by_comm) {
      EXPECT_EQ(name, comm) << w.path;
      samples += n;
    }
    // user-only: no kernel frames
    EXPECT_EQ(read_file(w.path).find("_[k]"), std::string::npos) << w.path;
  }
  EXPECT_GT(samples, 0u);
}

}  // namespace
}  // namespace tracehost::testing
