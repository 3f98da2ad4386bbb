// The cpu_profile plugin end to end: the real `tracehost run` binary with only cpu_profile
// sampling at 99 Hz while tests/runtime/targets/profile_target.c runs with known CPU shares.
// The window files must name its functions with the right shares (PIE executable and shared
// library), show kernel frames for a syscall loop, keep the frames of a process that exited
// before its window ended, and be readable: folded lines parse, `go tool pprof` reads the pprof,
// xmllint accepts the SVG.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
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

const std::string kTarget = std::string(TRACEHOST_TEST_BIN_DIR) + "/th_profile_target";

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

// th_profile_target MODE COMM SECONDS as a child process.
class Target {
 public:
  Target(const std::string& mode, const std::string& comm, double seconds) {
    const std::string secs = std::to_string(seconds);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      ::execl(kTarget.c_str(), kTarget.c_str(), mode.c_str(), comm.c_str(), secs.c_str(),
              static_cast<char*>(nullptr));
      std::perror(kTarget.c_str());
      ::_exit(127);
    }
  }
  ~Target() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;

  // Exit status once it ended.
  int wait() {
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

// One line of a folded file: frames (comm first, root to leaf) and its count.
struct Stack {
  std::vector<std::string> frames;
  std::uint64_t count = 0;
};

struct Windows {
  std::vector<fs::path> folded, pprof, svg;
  std::vector<Stack> stacks;  // every line of every folded file
  std::vector<std::string> malformed;

  // Samples of `comm`, and those with a frame for which `pred` holds.
  template <typename Pred>
  std::uint64_t samples(const std::string& comm, Pred pred) const {
    std::uint64_t n = 0;
    for (const auto& s : stacks) {
      if (s.frames.empty() || s.frames[0] != comm) continue;
      if (std::any_of(s.frames.begin() + 1, s.frames.end(), pred)) n += s.count;
    }
    return n;
  }
  [[nodiscard]] std::uint64_t samples(const std::string& comm) const {
    std::uint64_t n = 0;
    for (const auto& s : stacks) {
      if (!s.frames.empty() && s.frames[0] == comm) n += s.count;
    }
    return n;
  }
  [[nodiscard]] std::uint64_t with_function(const std::string& comm, const std::string& fn) const {
    return samples(comm, [&](const std::string& f) { return f == fn; });
  }
  [[nodiscard]] std::set<std::string> comms() const {
    std::set<std::string> out;
    for (const auto& s : stacks) out.insert(s.frames.empty() ? "" : s.frames[0]);
    return out;
  }
};

// Splits "a;b\;c;d 12" into frames and count, undoing the writer's escapes. False when the line
// is not "frames count" with a positive count.
bool parse_folded_line(const std::string& line, Stack& out) {
  const auto space = line.rfind(' ');
  if (space == std::string::npos || space == 0 || space + 1 >= line.size()) return false;
  for (std::size_t i = space + 1; i < line.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) return false;
  }
  out.count = std::strtoull(line.c_str() + space + 1, nullptr, 10);
  out.frames.clear();
  std::string cur;
  for (std::size_t i = 0; i < space; ++i) {
    const char c = line[i];
    if (c == '\\' && i + 1 < space) {
      const char n = line[++i];
      cur += n == 'n' ? '\n' : n == 'r' ? '\r' : n;
    } else if (c == ';') {
      out.frames.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.frames.push_back(std::move(cur));
  return out.count > 0;
}

Windows read_windows(const fs::path& dir) {
  Windows w;
  if (!fs::is_directory(dir)) return w;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (!n.starts_with("cpu_profile-")) continue;
    if (n.ends_with(".pb.gz")) w.pprof.push_back(e.path());
    if (n.ends_with(".svg")) w.svg.push_back(e.path());
    if (!n.ends_with(".folded")) continue;
    w.folded.push_back(e.path());
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      Stack s;
      if (parse_folded_line(line, s)) {
        w.stacks.push_back(std::move(s));
      } else {
        w.malformed.push_back(n + ": " + line);
      }
    }
  }
  for (auto* v : {&w.folded, &w.pprof, &w.svg}) std::sort(v->begin(), v->end());
  return w;
}

// Output of a shell command and its exit status.
std::pair<int, std::string> run_command(const std::string& cmd) {
  std::string out;
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool have_command(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

class CpuProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TRACEHOST_REQUIRE_BPF_PRIVILEGES();
    ASSERT_TRUE(fs::exists(kTarget)) << kTarget << " is not built";
    dir_ = std::make_unique<TempDir>("tracehost-cpu-profile");
    out_ = dir_->path() / "profiles";
    port_ = free_tcp_port();
    ASSERT_GT(port_, 0);
  }

  // Starts `tracehost run` for `duration_s` with cpu_profile (99 Hz, `plugin_keys` added) and a
  // Prometheus endpoint, and returns once the plugin's metrics are served, i.e. it samples.
  void start_host(const std::string& plugin_keys, int duration_s) {
    std::ostringstream c;
    c << "[host]\nlog_level = \"debug\"\n\n"
      << "[plugins.cpu_profile]\nenabled = true\nrequired = true\nfrequency_hz = 99\n"
      << "output_dir = \"" << out_.string() << "\"\n"
      << plugin_keys << "\n\n"
      << "[sinks.console]\nenabled = false\n\n"
      << "[sinks.prometheus]\nenabled = true\nlisten = \"127.0.0.1:" << port_ << "\"\n";
    const fs::path config = dir_->path() / "tracehost.toml";
    std::ofstream(config) << c.str();
    host_ = HostProcess::start(config, dir_->path() / "host.log", duration_s);
    ASSERT_NE(host_, nullptr);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      ASSERT_TRUE(host_->running()) << "tracehost exited early:\n" << host_->log();
      if (metric(scrape(port_), "tracehost_cpu_profile_samples_total").has_value()) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "the cpu_profile metrics never appeared; host log:\n" << host_->log();
  }

  // Waits for the --duration to end (the plugin writes the window in progress on the way out).
  void wait_host() {
    ASSERT_NE(host_, nullptr);
    EXPECT_EQ(host_->wait(30s), std::optional<int>(0)) << host_->log();
  }

  std::string log() const { return host_ ? host_->log() : std::string(); }

  // The shares of two hot functions of `comm`: th_<where>_hot_three 75 %, th_<where>_hot_one 25 %
  // of the process's samples, within 10 points.
  void expect_shares(const Windows& w, const std::string& comm, const std::string& where) {
    const std::uint64_t total = w.samples(comm);
    // ~3 s of one busy CPU at 99 Hz: ~300 samples on an idle machine; 60 is enough for +-10
    // points and still reached when other jobs share the two cores
    ASSERT_GE(total, 60u) << log();
    const double three =
        static_cast<double>(w.with_function(comm, "th_" + where + "_hot_three")) / total;
    const double one =
        static_cast<double>(w.with_function(comm, "th_" + where + "_hot_one")) / total;
    EXPECT_NEAR(three, 0.75, 0.10) << total << " samples";
    EXPECT_NEAR(one, 0.25, 0.10) << total << " samples";
  }

  std::unique_ptr<TempDir> dir_;
  fs::path out_;
  int port_ = -1;
  std::unique_ptr<HostProcess> host_;
};

// Functions of a PIE executable, with their shares; every format readable; the metrics.
TEST_F(CpuProfileTest, HotFunctionsOfAPieExecutable) {
  const std::string comm = unique_comm("thexe");
  ASSERT_NO_FATAL_FAILURE(start_host("window_s = 2\ncomms = [\"" + comm + "\"]", 6));
  Target target("exe", comm, 3.0);
  ASSERT_EQ(target.wait(), 0);

  // while the host still runs: the last window's top functions as gauges
  std::optional<double> total_ratio, windows;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline && host_->running()) {
    const auto m = scrape(port_);
    windows = metric(m, "tracehost_cpu_profile_windows_written_total");
    total_ratio =
        metric(m, "tracehost_cpu_profile_function_total_ratio", {{"function", "th_exe_hot_three"}});
    if (windows.value_or(0) >= 1 && total_ratio.has_value()) break;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_GE(windows.value_or(0), 1) << log();
  ASSERT_TRUE(total_ratio.has_value()) << log();
  // a 2 s window can start or end mid-run, but each round is 3:1 all the same
  EXPECT_NEAR(*total_ratio, 0.75, 0.10);

  ASSERT_NO_FATAL_FAILURE(wait_host());
  const Windows w = read_windows(out_);
  EXPECT_TRUE(w.malformed.empty()) << w.malformed.front();
  ASSERT_FALSE(w.folded.empty()) << log();
  EXPECT_EQ(w.folded.size(), w.pprof.size());
  EXPECT_EQ(w.folded.size(), w.svg.size());
  EXPECT_EQ(w.comms(), std::set<std::string>{comm});
  expect_shares(w, comm, "exe");
  // the stack above them: main in the executable
  EXPECT_GT(w.with_function(comm, "main"), w.samples(comm) / 2);

  // pprof: `go tool pprof` reads every window and names the functions
  if (have_command("go")) {
    for (const auto& p : w.pprof) {
      auto [rc, out] = run_command("go tool pprof -top -symbolize=none " + p.string());
      EXPECT_EQ(rc, 0) << out;
      if (w.with_function(comm, "th_exe_hot_three") > 0) {
        EXPECT_NE(out.find("th_exe_hot_three"), std::string::npos) << p << ":\n" << out;
      }
    }
  } else {
    ADD_FAILURE() << "`go` is not installed (Debian package golang-go; scripts/deps.sh installs "
                     "it): the pprof files were not checked with go tool pprof";
  }
  // SVG: well-formed XML naming the function, with hover titles
  ASSERT_TRUE(have_command("xmllint")) << "xmllint missing (Debian package libxml2-utils)";
  for (const auto& p : w.svg) {
    auto [rc, out] = run_command("xmllint --noout " + p.string());
    EXPECT_EQ(rc, 0) << p << ": " << out;
  }
  const std::string svg = read_file(w.svg.front());
  EXPECT_NE(svg.find("<title>"), std::string::npos);
}

// The same split between two functions of a shared library.
TEST_F(CpuProfileTest, HotFunctionsOfASharedLibrary) {
  const std::string comm = unique_comm("thlib");
  ASSERT_NO_FATAL_FAILURE(
      start_host("window_s = 2\nmode = \"user\"\ncomms = [\"" + comm + "\"]", 5));
  Target target("lib", comm, 3.0);
  ASSERT_EQ(target.wait(), 0);
  ASSERT_NO_FATAL_FAILURE(wait_host());
  const Windows w = read_windows(out_);
  EXPECT_TRUE(w.malformed.empty()) << w.malformed.front();
  expect_shares(w, comm, "lib");
  // user mode: no kernel frames
  for (const auto& s : w.stacks) {
    for (const auto& f : s.frames) EXPECT_FALSE(f.ends_with("_[k]")) << f;
  }
}

// A syscall loop spends its time in the kernel: kernel frames, named from /proc/kallsyms.
TEST_F(CpuProfileTest, KernelFramesOfASyscallLoop) {
  const std::string comm = unique_comm("thsys");
  ASSERT_NO_FATAL_FAILURE(start_host("window_s = 2\ncomms = [\"" + comm + "\"]", 5));
  Target target("syscall", comm, 3.0);
  ASSERT_EQ(target.wait(), 0);
  ASSERT_NO_FATAL_FAILURE(wait_host());
  const Windows w = read_windows(out_);
  const std::uint64_t total = w.samples(comm);
  ASSERT_GE(total, 60u) << log();
  const std::uint64_t kernel =
      w.samples(comm, [](const std::string& f) { return f.ends_with("_[k]"); });
  // getppid() is almost all entry/exit code: most samples land in the kernel
  EXPECT_GE(static_cast<double>(kernel) / total, 0.3) << kernel << " of " << total;
  // named, not addresses: the syscall entry path is there
  const std::uint64_t entry = w.samples(comm, [](const std::string& f) {
    std::string lower = f;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return f.ends_with("_[k]") && lower.find("syscall") != std::string::npos;
  });
  EXPECT_GE(entry, kernel / 2) << kernel << " kernel samples, " << entry
                               << " through a *syscall* function";
}

// A process that exits in the middle of a window still gets its frames: the plugin snapshots its
// memory map when the kernel announces its first sample, not when the window is drained.
TEST_F(CpuProfileTest, FramesOfAProcessThatExitedBeforeTheWindowEnded) {
  const std::string comm = unique_comm("thgone");
  ASSERT_NO_FATAL_FAILURE(start_host("window_s = 5\ncomms = [\"" + comm + "\"]", 5));
  Target target("exe", comm, 1.5);
  ASSERT_EQ(target.wait(), 0);  // gone well before the window is drained
  ASSERT_NO_FATAL_FAILURE(wait_host());
  const Windows w = read_windows(out_);
  const std::uint64_t total = w.samples(comm);
  ASSERT_GE(total, 30u) << log();
  const std::uint64_t named =
      w.with_function(comm, "th_exe_hot_three") + w.with_function(comm, "th_exe_hot_one");
  EXPECT_GE(static_cast<double>(named) / total, 0.8) << named << " of " << total;
}

// comms filters in the kernel: only the named process appears.
TEST_F(CpuProfileTest, CommFilterKeepsOnlyThatProcess) {
  const std::string comm = unique_comm("thonly");
  const std::string other = unique_comm("thother");
  Burner wanted(comm);
  Burner unwanted(other);
  ASSERT_NO_FATAL_FAILURE(
      start_host("window_s = 1\nformats = [\"folded\"]\ncomms = [\"" + comm + "\"]", 3));
  ASSERT_NO_FATAL_FAILURE(wait_host());
  const Windows w = read_windows(out_);
  EXPECT_TRUE(w.pprof.empty());  // formats = ["folded"]
  EXPECT_TRUE(w.svg.empty());
  EXPECT_EQ(w.comms(), std::set<std::string>{comm});
  EXPECT_GT(w.samples(comm), 0u);
}

// Without filters: everything but the host itself and the idle task. The host's pid is checked
// through the cpu_profile.process events (other tracehost processes may run on the machine).
TEST_F(CpuProfileTest, ExcludesTheHostAndIdleByDefault) {
  const std::string comm = unique_comm("thany");
  Burner burner(comm);
  const fs::path events = dir_->path() / "events.jsonl";
  ASSERT_NO_FATAL_FAILURE(
      start_host("window_s = 1\nformats = [\"folded\"]\n\n"
                 "[sinks.json]\nenabled = true\npath = \"" +
                     events.string() + "\"\ntopics = [\"cpu_profile.*\"]",
                 3));
  const pid_t host_pid = host_->pid();
  ASSERT_NO_FATAL_FAILURE(wait_host());
  const Windows w = read_windows(out_);
  EXPECT_GT(w.samples(comm), 0u) << log();
  for (const auto& c : w.comms()) EXPECT_FALSE(c.starts_with("swapper/")) << c;

  // every sampled process is announced once per window: the burner is, the host never
  std::size_t burner_seen = 0;
  std::istringstream in(read_file(events));
  std::string line;
  const std::string host_field = "\"pid\":" + std::to_string(host_pid) + ",";
  const std::string burner_field = "\"pid\":" + std::to_string(burner.pid()) + ",";
  while (std::getline(in, line)) {
    EXPECT_EQ(line.find(host_field), std::string::npos) << line;
    if (line.find(burner_field) != std::string::npos) ++burner_seen;
  }
  EXPECT_GE(burner_seen, 1u) << read_file(events);
}

}  // namespace
}  // namespace tracehost::testing
