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

namespace tracehost::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tracehost-cpu-profile-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (p == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// GET http://127.0.0.1:port/metrics; the body on status 200.
std::optional<std::string> scrape(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string resp;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto end = resp.find("\r\n\r\n");
  const auto status_end = resp.find("\r\n");
  if (end == std::string::npos || resp.substr(0, status_end).find(" 200") == std::string::npos) {
    return std::nullopt;
  }
  return resp.substr(end + 4);
}

// The value of the unlabelled sample `series` in a scrape.
std::optional<double> metric(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, series.size() + 1, series + " ") == 0) {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return std::nullopt;
}

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

// `tracehost run --duration N` as a child process, output in a log file.
class HostProcess {
 public:
  HostProcess(const fs::path& config, const fs::path& log, int duration_s) : log_(log) {
    const std::string bin = std::string(TRACEHOST_TEST_BIN_DIR) + "/tracehost";
    const std::string duration = std::to_string(duration_s);
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execl(bin.c_str(), bin.c_str(), "run", "--config", config.c_str(), "--plugin-dir",
              TRACEHOST_TEST_PLUGIN_DIR, "--duration", duration.c_str(),
              static_cast<char*>(nullptr));
      std::fprintf(stderr, "exec %s: %s\n", bin.c_str(), std::strerror(errno));
      ::_exit(127);
    }
  }
  ~HostProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  HostProcess(const HostProcess&) = delete;
  HostProcess& operator=(const HostProcess&) = delete;

  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  // Exit code once it ended within `timeout`; -1 (after SIGKILL) otherwise.
  int wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(20ms);
    }
    return exit_code_;
  }
  [[nodiscard]] std::string log() const { return read_file(log_); }

 private:
  pid_t pid_ = -1;
  fs::path log_;
  int exit_code_ = -1;
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
  TempDir dir;
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
  HostProcess host(config, dir.path() / "host.log", 4);

  // metrics while it runs: at least one window written, samples counted
  std::optional<double> windows, samples;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline && host.running()) {
    if (auto body = scrape(port)) {
      windows = metric(*body, "tracehost_cpu_profile_windows_written_total");
      samples = metric(*body, "tracehost_cpu_profile_samples_total");
      if (windows.value_or(0) >= 1) break;
    }
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_GE(windows.value_or(0), 1) << host.log();
  EXPECT_GT(samples.value_or(0), 0) << host.log();

  ASSERT_EQ(host.wait(30s), 0) << host.log();
  ASSERT_TRUE(fs::is_directory(out)) << host.log();
  const auto files = read_windows(out);
  ASSERT_GE(files.size(), 1u) << host.log();

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
  EXPECT_GE(windows_with_child, 1u) << host.log();
  // a CPU-bound child over ~3 s at 99 Hz: ~300 samples on an idle CPU, well above 20 even when
  // other builds share the cores
  EXPECT_GE(child_samples, 20u) << host.log();

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
  TempDir dir;
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
  HostProcess host(config, dir.path() / "host.log", 3);
  ASSERT_EQ(host.wait(30s), 0) << host.log();
  const auto files = read_windows(out);
  ASSERT_GE(files.size(), 1u) << host.log();
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
