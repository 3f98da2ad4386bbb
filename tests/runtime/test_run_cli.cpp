// `tracehost run` end to end, as a separate process: the syscall plugin loads, its programs show
// up in `bpftool prog show` while it runs, the process exits 0 at --duration (or on SIGTERM), and
// afterwards none of the programs it loaded is left in the kernel.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/bpf_guard.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;

const std::string kBin = std::string(TRACEHOST_TEST_BIN_DIR) + "/tracehost";
const std::string kPluginDir = TRACEHOST_TEST_PLUGIN_DIR;

// id → name of every BPF program, from bpftool (an observer independent of the host's libbpf).
std::map<std::uint64_t, std::string> bpftool_programs() {
  std::map<std::uint64_t, std::string> out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen("bpftool prog show -j 2>/dev/null", "r"),
                                          ::pclose);
  if (!p) return out;
  std::string text;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p.get())) > 0) text.append(buf, n);
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) {
    ADD_FAILURE() << "bpftool prog show -j gave no JSON array: " << text.substr(0, 200);
    return out;
  }
  for (const auto& prog : j) {
    out[prog.value("id", std::uint64_t{0})] = prog.value("name", std::string());
  }
  return out;
}

// Programs in `now` that are not in `before`.
std::map<std::uint64_t, std::string> new_programs(
    const std::map<std::uint64_t, std::string>& before,
    const std::map<std::uint64_t, std::string>& now) {
  std::map<std::uint64_t, std::string> out;
  for (const auto& [id, name] : now) {
    if (before.count(id) == 0) out[id] = name;
  }
  return out;
}

bool still_loaded(const std::map<std::uint64_t, std::string>& progs) {
  auto now = bpftool_programs();
  for (const auto& [id, name] : progs) {
    auto it = now.find(id);
    if (it != now.end() && it->second == name) return true;
  }
  return false;
}

// Programs are freed after their last reference; some link types drop theirs after an RCU grace
// period, so allow a moment.
bool wait_gone(const std::map<std::uint64_t, std::string>& progs) {
  for (int i = 0; i < 200; ++i) {
    if (!still_loaded(progs)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/th_run_XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = tmpl;
    ::chmod(path_.c_str(), 0755);  // readable by the unprivileged run below
  }
  ~TempDir() { fs::remove_all(path_); }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct Child {
  pid_t pid = -1;
  fs::path out;
  fs::path err;
};

// ignore_sigint: start the child with SIGINT ignored, as a non-interactive shell does for a
// background job (`tracehost run &` in a script).
Child spawn(const std::vector<std::string>& args, const fs::path& dir, bool ignore_sigint = false) {
  Child c;
  c.out = dir / "stdout.txt";
  c.err = dir / "stderr.txt";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, c.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, c.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // posix_spawn keeps ignored dispositions: ignore SIGINT here around the spawn only
  struct sigaction ign {}, old {};
  ign.sa_handler = SIG_IGN;
  if (ignore_sigint) ::sigaction(SIGINT, &ign, &old);
  if (posix_spawn(&c.pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) c.pid = -1;
  if (ignore_sigint) ::sigaction(SIGINT, &old, nullptr);
  posix_spawn_file_actions_destroy(&fa);
  return c;
}

// Exit code, or 128 + signal, or -1 on timeout (the child is then killed).
int wait_exit(pid_t pid, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path write_config(const fs::path& dir) {
  fs::path cfg = dir / "tracehost.toml";
  std::ofstream(cfg) << "[host]\n"
                     << "plugin_dir = \"" << kPluginDir << "\"\n"
                     << "log_level = \"info\"\n"
                     << "[plugins.syscall]\nenabled = true\nrequired = true\n"
                     << "[sinks.json]\npath = \"" << (dir / "events.jsonl").string() << "\"\n";
  return cfg;
}

// Waits until the child has loaded programs (names from the syscall plugin's handlers).
std::map<std::uint64_t, std::string> wait_for_programs(
    const std::map<std::uint64_t, std::string>& before) {
  for (int i = 0; i < 150; ++i) {
    auto added = new_programs(before, bpftool_programs());
    for (const auto& [id, name] : added) {
      if (name.rfind("handle_sys_", 0) == 0) return added;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {};
}

TEST(RunCli, DurationExitsZeroAndLeavesNoPrograms) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  ASSERT_TRUE(fs::exists(kPluginDir + "/tracehost_syscall.so"));
  TempDir dir;
  fs::path cfg = write_config(dir.path());
  auto before = bpftool_programs();

  Child c = spawn({kBin, "run", "--config", cfg.string(), "--duration", "2"}, dir.path());
  ASSERT_GT(c.pid, 0);
  auto loaded = wait_for_programs(before);
  // Something to observe: this process's syscalls go through the plugin while it runs.
  for (int i = 0; i < 100; ++i) ::getppid();
  int code = wait_exit(c.pid, std::chrono::seconds(30));
  std::string err = slurp(c.err);
  EXPECT_EQ(code, 0) << err;
  ASSERT_FALSE(loaded.empty()) << "the syscall plugin's programs never showed up in bpftool\n"
                               << err;
  EXPECT_TRUE(wait_gone(loaded)) << "programs still loaded after tracehost exited";
  EXPECT_NE(err.find("duration elapsed"), std::string::npos) << err;
  EXPECT_EQ(err.find(" error ["), std::string::npos) << err;
}

TEST(RunCli, SigtermShutsDownCleanly) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  TempDir dir;
  fs::path cfg = write_config(dir.path());
  auto before = bpftool_programs();

  Child c = spawn({kBin, "run", "--config", cfg.string()}, dir.path());
  ASSERT_GT(c.pid, 0);
  auto loaded = wait_for_programs(before);
  ASSERT_FALSE(loaded.empty()) << slurp(c.err);
  // Programs show up at load, before attach: wait for the host to say it is running.
  for (int i = 0; i < 500 && slurp(c.err).find(" running: ") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // An exec while it runs: the json sink must have it on disk after shutdown (nothing lost).
  ASSERT_EQ(std::system("/bin/true"), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(c.pid, SIGTERM);
  int code = wait_exit(c.pid, std::chrono::seconds(30));
  std::string err = slurp(c.err);
  EXPECT_EQ(code, 0) << err;
  EXPECT_NE(err.find("received SIGTERM"), std::string::npos) << err;
  EXPECT_TRUE(wait_gone(loaded)) << "programs still loaded after SIGTERM";
  std::string events = slurp(dir.path() / "events.jsonl");
  EXPECT_NE(events.find("syscall.exec"), std::string::npos) << events.substr(0, 500);
}

// A host started with SIGINT ignored (a background job of a script) still stops on SIGINT: the
// kernel discards an ignored signal unless it is blocked, and the host blocks SIGINT/SIGTERM and
// reads them from a signalfd. Guards against handling them with sigaction instead.
TEST(RunCli, SigintStopsAHostStartedWithSigintIgnored) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  TempDir dir;
  fs::path cfg = write_config(dir.path());
  auto before = bpftool_programs();

  Child c = spawn({kBin, "run", "--config", cfg.string()}, dir.path(), /*ignore_sigint=*/true);
  ASSERT_GT(c.pid, 0);
  auto loaded = wait_for_programs(before);
  ASSERT_FALSE(loaded.empty()) << slurp(c.err);
  for (int i = 0; i < 500 && slurp(c.err).find(" running: ") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(c.pid, SIGINT);
  int code = wait_exit(c.pid, std::chrono::seconds(15));
  std::string err = slurp(c.err);
  EXPECT_EQ(code, 0) << err;
  EXPECT_NE(err.find("received SIGINT"), std::string::npos) << err;
  EXPECT_TRUE(wait_gone(loaded)) << "programs still loaded after SIGINT";
}

// Without BPF privileges `run` is an environment error (exit 3) naming what is missing.
TEST(RunCli, UnprivilegedExitsThree) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();  // we need root to drop to nobody
  if (!fs::exists("/usr/bin/setpriv")) GTEST_SKIP() << "setpriv not installed";
  TempDir dir;
  fs::path cfg = write_config(dir.path());
  ::chmod(cfg.c_str(), 0644);
  Child c = spawn({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                   "--inh-caps=-all", kBin, "run", "--config", cfg.string(), "--duration", "1"},
                  dir.path());
  ASSERT_GT(c.pid, 0);
  int code = wait_exit(c.pid, std::chrono::seconds(30));
  std::string err = slurp(c.err);
  EXPECT_EQ(code, 3) << err;
  EXPECT_EQ(err.rfind("tracehost: error: ", 0), 0u) << err;
  EXPECT_NE(err.find("CAP_BPF"), std::string::npos) << err;
}

}  // namespace
