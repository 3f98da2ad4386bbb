// What end-to-end runtime tests share: a temporary directory, the real `tracehost run` binary as a
// child process, a Prometheus scrape and parser, and forked child processes with a ping pipe.
// Header-only; each test file includes it inside its own translation unit.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tracehost/cgroup.hpp"

namespace tracehost::testing {

namespace fs = std::filesystem;
using Labels = std::map<std::string, std::string>;

// A fresh directory under /tmp (mode 0755, so unprivileged children can read it), removed with
// everything in it when this object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "tracehost-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    const char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    path_ = p;
    ::chmod(path_.c_str(), 0755);
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

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A cgroup v2 directory directly below the root with one directory "inner" in it, for task
// filter tests; both are removed when this is destroyed, by when the processes moved into them
// must have exited.
class TempCgroup {
 public:
  // nullptr with the reason in *why when there is no cgroup2 hierarchy or it cannot be written
  static std::unique_ptr<TempCgroup> make(std::string* why) {
    auto mount = cgroup2_mount("test");
    if (!mount.ok()) {
      *why = mount.error().message();
      return nullptr;
    }
    static int counter = 0;
    const std::string name =
        "tracehost-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    std::unique_ptr<TempCgroup> cg(new TempCgroup(*mount / name, name));
    std::error_code ec;
    if (!fs::create_directory(cg->path_, ec) || !fs::create_directory(cg->path_ / "inner", ec)) {
      *why = "cannot create " + (cg->path_ / "inner").string() + ": " + ec.message();
      return nullptr;
    }
    return cg;
  }
  ~TempCgroup() {
    ::rmdir((path_ / "inner").c_str());
    ::rmdir(path_.c_str());
  }
  TempCgroup(const TempCgroup&) = delete;
  TempCgroup& operator=(const TempCgroup&) = delete;

  // the directory's name, which is its path relative to the cgroup2 root
  [[nodiscard]] const std::string& name() const { return name_; }
  // Moves `pid` into this cgroup or into "inner": "" on success, else why not.
  [[nodiscard]] std::string move(pid_t pid) const { return move_to(path_, pid); }
  [[nodiscard]] std::string move_inner(pid_t pid) const { return move_to(path_ / "inner", pid); }

 private:
  TempCgroup(fs::path path, std::string name) : path_(std::move(path)), name_(std::move(name)) {}
  static std::string move_to(const fs::path& dir, pid_t pid) {
    std::ofstream procs(dir / "cgroup.procs");
    procs << pid << std::flush;
    return procs.good() ? "" : "cannot move " + std::to_string(pid) + " into " + dir.string();
  }

  fs::path path_;
  std::string name_;
};

// A process name of at most 15 characters, unique per test process and call.
inline std::string unique_comm(const char* prefix) {
  static int counter = 0;
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%s%d%d", prefix, static_cast<int>(::getpid() % 100000),
                counter++);
  return buf;
}

// ["a", "b"] as a TOML array of strings.
inline std::string toml_list(const std::vector<std::string>& items) {
  std::string s = "[";
  for (const auto& i : items) s += (s.size() > 1 ? ", \"" : "\"") + i + "\"";
  return s + "]";
}

// The config plugin tests run with: `plugin` enabled and required with `plugin_keys`, a 10 ms
// poll interval, the console off, events of `topics` (a glob) as JSON lines to `events`, and
// Prometheus on 127.0.0.1:`port`.
inline std::string plugin_test_config(std::string_view plugin, const std::string& plugin_keys,
                                      const fs::path& events, std::string_view topics, int port) {
  std::ostringstream c;
  c << "[host]\nlog_level = \"info\"\npoll_interval_ms = 10\n\n"
    << "[plugins." << plugin << "]\nenabled = true\nrequired = true\n"
    << plugin_keys << "\n\n"
    << "[sinks.console]\nenabled = false\n\n"
    << "[sinks.json]\nenabled = true\npath = \"" << events.string() << "\"\ntopics = [\"" << topics
    << "\"]\n\n"
    << "[sinks.prometheus]\nenabled = true\nlisten = \"127.0.0.1:" << port << "\"\n";
  return c.str();
}

// A TCP port on 127.0.0.1 that was free a moment ago.
inline int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
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

// GET http://127.0.0.1:port/path over HTTP/1.0; the body on status 200.
inline std::optional<std::string> http_get(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
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
  const auto body = resp.find("\r\n\r\n");
  const auto status_line = resp.substr(0, resp.find("\r\n"));
  if (body == std::string::npos || status_line.find(" 200") == std::string::npos) {
    return std::nullopt;
  }
  return resp.substr(body + 4);
}

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

// The Prometheus text exposition format, as far as these tests need it.
inline std::vector<Sample> parse_prometheus(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') s.name += line[i++];
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::string key;
        while (i < line.size() && line[i] != '=') key += line[i++];
        i += 2;  // ="
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
          ++i;
        }
        ++i;  // closing quote
        if (i < line.size() && line[i] == ',') ++i;
        s.labels[key] = value;
      }
      ++i;  // }
    }
    s.value = std::strtod(line.c_str() + i, nullptr);
    out.push_back(std::move(s));
  }
  return out;
}

// The value of the one sample of `name` whose labels include `want`; nullopt when there is none.
inline std::optional<double> metric(const std::vector<Sample>& samples, const std::string& name,
                                    const Labels& want = {}) {
  std::optional<double> found;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : want) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    EXPECT_FALSE(found.has_value()) << "more than one series of " << name << " matches";
    found = s.value;
  }
  return found;
}

// The samples served at http://127.0.0.1:port/metrics; empty when the scrape failed.
inline std::vector<Sample> scrape(int port) {
  auto body = http_get(port, "/metrics");
  return body ? parse_prometheus(*body) : std::vector<Sample>{};
}

// A forked child process named `comm` running `body(in_fd, out_fd)`: in_fd reads bytes the test
// sends with send(), out_fd writes bytes the test reads with receive(). The child is killed if
// still running when this object goes.
class Child {
 public:
  using Body = std::function<void(int in_fd, int out_fd)>;

  static std::unique_ptr<Child> spawn(const std::string& comm, Body body) {
    int to_child[2];
    int from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0) return nullptr;
    if (::pipe2(from_child, O_CLOEXEC) != 0) {
      ::close(to_child[0]);
      ::close(to_child[1]);
      return nullptr;
    }
    pid_t pid = ::fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      ::prctl(PR_SET_NAME, comm.c_str(), 0, 0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      body(to_child[0], from_child[1]);
      ::_exit(0);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    return std::unique_ptr<Child>(new Child(pid, to_child[1], from_child[0]));
  }

  ~Child() {
    close_pipes();
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // -1 once wait() reaped it
  [[nodiscard]] pid_t pid() const { return pid_; }
  bool send() {
    char c = 1;
    return ::write(to_, &c, 1) == 1;
  }
  bool receive() {
    char c = 0;
    return ::read(from_, &c, 1) == 1;
  }
  // Exit status (or 128 + signal).
  int wait() {
    close_pipes();
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  Child(pid_t pid, int to, int from) : pid_(pid), to_(to), from_(from) {}
  void close_pipes() {
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
    to_ = from_ = -1;
  }

  pid_t pid_;
  int to_;
  int from_;
};

// `tracehost run --config <config>` (the build's binary and plugin directory) as a child
// process, stdout and stderr in a log file. --duration bounds a run whose test crashed before
// stopping it.
class HostProcess {
 public:
  static std::unique_ptr<HostProcess> start(const fs::path& config, const fs::path& log,
                                            int duration_s = 120) {
    const std::string bin = std::string(TRACEHOST_TEST_BIN_DIR) + "/tracehost";
    const std::string duration = std::to_string(duration_s);
    pid_t pid = ::fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
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
    return std::unique_ptr<HostProcess>(new HostProcess(pid, log));
  }

  ~HostProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  HostProcess(const HostProcess&) = delete;
  HostProcess& operator=(const HostProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }

  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }

  // Exit code once it ended on its own within `timeout`, else nullopt (still running).
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return exit_code_;
  }

  // SIGINT (a clean shutdown), then its exit code; SIGKILL and -1 after `grace`.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(15)) {
    if (running()) ::kill(pid_, SIGINT);
    if (auto code = wait(grace)) return *code;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return -1;
  }

  [[nodiscard]] std::string log() const { return read_file(log_); }

 private:
  HostProcess(pid_t pid, fs::path log) : pid_(pid), log_(std::move(log)) {}

  pid_t pid_;
  fs::path log_;
  int exit_code_ = -1;
};

}  // namespace tracehost::testing
