// A small network lab for runtime tests: two network namespaces joined by a veth pair, a way to
// run code inside either of them, a random packet-drop rule, an artificial one-way delay, and the
// kernel's TCP counters of each namespace. Root only. Header-only, like host_harness.hpp.
//
//   auto lab = NetnsLab::make(&why);              // nullptr + reason when netns/veth don't work
//   auto server = lab->spawn(NetnsLab::kB, "srv", body);   // forked child inside namespace B
//   lab->drop_random(NetnsLab::kB, 5);            // 5 % of TCP packets entering B are dropped
//   auto delay = DelayLine::make(*lab, 40, &why); // A -> B over a TUN pair, +40 ms each packet
//   lab->tcp_counter(NetnsLab::kA, "RetransSegs");
//
// Choices, and why (this kernel has neither netem nor sch_fq, and no act_bpf):
// - Drops: nftables `numgen random mod 100 < P drop` in an inet table of the namespace. One `nft`
//   command, no BPF object to build and load, and the rule counts what it dropped. (A tc clsact
//   BPF filter returning TC_ACT_SHOT would work too, but needs a BPF object and its loader in the
//   test for no gain.)
// - Delay: a user-space delay line. A TUN device in each namespace (point-to-point, 10.201.1.1 in
//   A <-> 10.201.1.2 in B) and a forked forwarder that reads each packet from one TUN device and
//   writes it to the other once it is `delay_ms` old. That is what `netem delay` does: every
//   packet of the A -> B direction waits the same time, so the RTT a socket sees is the delay
//   plus well under a millisecond. Shaping (tbf/htb) with a bulk flow building a standing queue
//   would delay packets too, but by an amount that depends on the rate, the buffer and what else
//   runs on the machine.
// - TSO/GSO off on the veth (gso_max_segs 1): every skb is one segment, so the kernel's
//   RetransSegs (which counts segments) and a count of tcp_retransmit_skb events (which counts
//   skbs) measure the same thing.
//
// Names carry the test process's pid ("thlab<pid>x<n>a"); NetnsLab::make() first removes
// namespaces of earlier runs whose process is gone, so a crashed run leaves nothing behind for
// long. The lab never switches the test process's own namespace: code runs inside a namespace in
// a forked child (setns there), and commands get `ip -n` or a setns before exec.
#pragma once

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/host_harness.hpp"

namespace tracehost::testing {

struct CommandResult {
  int code = -1;    // exit status, 128 + signal, or -1 when it could not run
  std::string out;  // stdout and stderr together
};

// Runs argv[0] (looked up in PATH) with `input` on stdin, inside network namespace `netns` when
// it is not empty (setns in the child before exec).
inline CommandResult run_command(const std::vector<std::string>& argv,
                                 const std::string& input = {}, const std::string& netns = {}) {
  CommandResult r;
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return r;
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return r;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(out_pipe[1], 2);
    if (!netns.empty()) {
      const std::string path = "/var/run/netns/" + netns;
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
        std::fprintf(stderr, "setns %s: %s\n", path.c_str(), std::strerror(errno));
        ::_exit(126);
      }
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (pid < 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    return r;
  }
  // inputs here are a few hundred bytes: they fit the pipe, no need to interleave with reading
  if (!input.empty()) {
    [[maybe_unused]] auto n = ::write(in_pipe[1], input.data(), input.size());
  }
  ::close(in_pipe[1]);
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(out_pipe[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Enters network namespace `name` (a file under /var/run/netns); only ever called in a forked
// child, so the test process keeps its own namespace.
inline bool enter_netns(const std::string& name) {
  const std::string path = "/var/run/netns/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::setns(fd, CLONE_NEWNET) == 0;
  ::close(fd);
  return ok;
}

class NetnsLab {
 public:
  enum Side { kA = 0, kB = 1 };
  static constexpr const char* kPrefix = "thlab";
  // veth addresses; the same in every lab, since each lab has namespaces of its own
  static constexpr std::array<const char*, 2> kV4 = {"10.201.0.1", "10.201.0.2"};
  static constexpr std::array<const char*, 2> kV6 = {"fd00:201::1", "fd00:201::2"};
  static constexpr const char* kVeth = "thveth";  // the name of the veth end in both namespaces

  // The lab, or nullptr with the reason in *why (no root, no netns support, no `ip` command...).
  static std::unique_ptr<NetnsLab> make(std::string* why) {
    remove_stale();
    static int counter = 0;
    const std::string base =
        std::string(kPrefix) + std::to_string(::getpid()) + "x" + std::to_string(counter++);
    std::unique_ptr<NetnsLab> lab(new NetnsLab({base + "a", base + "b"}));
    auto step = [&](const std::vector<std::string>& argv) {
      auto r = run_command(argv);
      if (r.code != 0 && why != nullptr) {
        std::string cmd;
        for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
        *why = "`" + cmd + "` failed (" + std::to_string(r.code) + "): " + r.out;
      }
      return r.code == 0;
    };
    const auto& a = lab->ns_[kA];
    const auto& b = lab->ns_[kB];
    bool ok = step({"ip", "netns", "add", a}) && step({"ip", "netns", "add", b}) &&
              // created straight inside the namespaces, so the name never appears in the root one
              step({"ip", "link", "add", kVeth, "netns", a, "gso_max_segs", "1", "type", "veth",
                    "peer", "name", kVeth, "netns", b, "gso_max_segs", "1"});
    for (int s = kA; ok && s <= kB; ++s) {
      const auto& ns = lab->ns_[s];
      ok = step({"ip", "-n", ns, "link", "set", "lo", "up"}) &&
           step({"ip", "-n", ns, "addr", "add", std::string(kV4[s]) + "/24", "dev", kVeth}) &&
           step({"ip", "-n", ns, "addr", "add", std::string(kV6[s]) + "/64", "dev", kVeth,
                 "nodad"}) &&
           step({"ip", "-n", ns, "link", "set", kVeth, "up"});
    }
    if (!ok) return nullptr;  // the destructor removes what was created
    return lab;
  }

  ~NetnsLab() {
    for (const auto& ns : ns_) run_command({"ip", "netns", "del", ns});
  }
  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;

  [[nodiscard]] const std::string& ns(Side s) const { return ns_[s]; }

  // A forked child named `comm` running body(in, out) inside namespace `s` (see Child).
  std::unique_ptr<Child> spawn(Side s, const std::string& comm, Child::Body body) {
    const std::string name = ns_[s];
    return Child::spawn(comm, [name, body = std::move(body)](int in, int out) {
      if (!enter_netns(name)) {
        std::fprintf(stderr, "setns %s: %s\n", name.c_str(), std::strerror(errno));
        ::_exit(125);
      }
      body(in, out);
    });
  }

  // Runs a command inside namespace `s`.
  CommandResult exec(Side s, const std::vector<std::string>& argv, const std::string& input = {}) {
    return run_command(argv, input, ns_[s]);
  }

  // Drops `percent` % of the TCP packets entering namespace `s` (nftables numgen random), in
  // place of any drop rule set before. Empty string on success, else nft's complaint.
  std::string drop_random(Side s, int percent) {
    return set_rule(
        s, "meta l4proto tcp numgen random mod 100 < " + std::to_string(percent) + " counter drop");
  }

  // Drops the first `count` SYNs (without ACK) entering namespace `s`, lets the rest through:
  // a client in the other namespace retransmits its SYN `count` times (1 s, 3 s, ... later).
  std::string drop_first_syns(Side s, int count) {
    return set_rule(s, "tcp flags & (syn | ack) == syn numgen inc mod 1000000000 < " +
                           std::to_string(count) + " counter drop");
  }

  // Removes the drop rule of namespace `s`.
  void clear_drops(Side s) { exec(s, {"nft", "delete", "table", "inet", kPrefix}); }

  // Packets the drop rule of namespace `s` dropped so far; nullopt without a rule.
  std::optional<std::uint64_t> dropped(Side s) {
    auto r = exec(s, {"nft", "list", "table", "inet", kPrefix});
    auto at = r.out.find("counter packets ");
    if (r.code != 0 || at == std::string::npos) return std::nullopt;
    return std::strtoull(r.out.c_str() + at + 16, nullptr, 10);
  }

  // The "Tcp:" counters of namespace `s` (/proc/net/snmp read from a process inside it), e.g.
  // "RetransSegs", "ActiveOpens", "OutSegs"; empty when it could not be read.
  std::map<std::string, std::uint64_t> tcp_counters(Side s) {
    auto r = exec(s, {"cat", "/proc/net/snmp"});
    std::map<std::string, std::uint64_t> out;
    if (r.code != 0) return out;
    std::istringstream in(r.out);
    std::string names;
    std::string values;
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("Tcp: ", 0) != 0) continue;
      if (names.empty()) {
        names = line;
      } else {
        values = line;
        break;
      }
    }
    std::istringstream n(names);
    std::istringstream v(values);
    std::string key;
    std::string value;
    n >> key;
    v >> value;  // the "Tcp:" column
    while (n >> key && v >> value) out[key] = std::strtoull(value.c_str(), nullptr, 10);
    return out;
  }

  std::optional<std::uint64_t> tcp_counter(Side s, const std::string& name) {
    auto c = tcp_counters(s);
    auto it = c.find(name);
    if (it == c.end()) return std::nullopt;
    return it->second;
  }

  // Deletes namespaces named by an earlier lab whose process no longer runs.
  static void remove_stale() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/var/run/netns", ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(kPrefix, 0) != 0) continue;
      const long pid = std::strtol(name.c_str() + std::strlen(kPrefix), nullptr, 10);
      if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)) continue;
      run_command({"ip", "netns", "del", name});
    }
  }

 private:
  explicit NetnsLab(std::array<std::string, 2> ns) : ns_(std::move(ns)) {}

  std::string set_rule(Side s, const std::string& rule) {
    clear_drops(s);
    const std::string ruleset = std::string("table inet ") + kPrefix +
                                " {\n chain input {\n  type filter hook input priority 0; "
                                "policy accept;\n  " +
                                rule + "\n }\n}\n";
    auto r = exec(s, {"nft", "-f", "-"}, ruleset);
    return r.code == 0 ? std::string() : "nft -f - failed: " + r.out + "\nruleset:\n" + ruleset;
  }

  std::array<std::string, 2> ns_;
};

// A second path between the lab's namespaces through a user-space delay line: TUN device
// "thtun" in A (10.201.1.1, peer 10.201.1.2) and in B (10.201.1.2, peer 10.201.1.1), and a
// forked forwarder process that copies packets between them, holding each packet of the A -> B
// direction for the current delay (B -> A is forwarded at once). The TUN devices vanish with the
// forwarder.
class DelayLine {
 public:
  static constexpr std::array<const char*, 2> kV4 = {"10.201.1.1", "10.201.1.2"};
  static constexpr const char* kTun = "thtun";
  static constexpr const char* kComm = "thlab-delay";

  static std::unique_ptr<DelayLine> make(NetnsLab& lab, unsigned delay_ms, std::string* why) {
    int ctl[2];
    int ready[2];
    if (::pipe2(ctl, O_CLOEXEC) != 0) return nullptr;
    if (::pipe2(ready, O_CLOEXEC) != 0) {
      ::close(ctl[0]);
      ::close(ctl[1]);
      return nullptr;
    }
    const std::array<std::string, 2> ns = {lab.ns(NetnsLab::kA), lab.ns(NetnsLab::kB)};
    pid_t pid = ::fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      ::close(ctl[1]);
      ::close(ready[0]);
      ::prctl(PR_SET_NAME, kComm, 0, 0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      std::array<int, 2> tun{-1, -1};
      for (int s = 0; s < 2; ++s) {
        // the device is created in the namespace the opener is in
        if (!enter_netns(ns[s]) || (tun[s] = open_tun()) < 0) {
          const std::string err = "TUN device in " + ns[s] + ": " + std::strerror(errno);
          [[maybe_unused]] auto n = ::write(ready[1], err.data(), err.size());
          ::_exit(1);
        }
      }
      [[maybe_unused]] auto n = ::write(ready[1], "", 1);
      ::close(ready[1]);
      forward(tun, ctl[0], delay_ms);
      ::_exit(0);
    }
    ::close(ctl[0]);
    ::close(ready[1]);
    std::unique_ptr<DelayLine> line(new DelayLine(pid, ctl[1]));
    char buf[512];
    ssize_t n = ::read(ready[0], buf, sizeof(buf));
    ::close(ready[0]);
    if (n != 1) {
      if (why != nullptr)
        *why = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "forwarder died";
      return nullptr;
    }
    for (int s = 0; s < 2; ++s) {
      auto r = lab.exec(
          static_cast<NetnsLab::Side>(s),
          {"ip", "addr", "add", kV4[s], "peer", std::string(kV4[1 - s]) + "/32", "dev", kTun});
      if (r.code == 0)
        r = lab.exec(static_cast<NetnsLab::Side>(s), {"ip", "link", "set", kTun, "up"});
      if (r.code != 0) {
        if (why != nullptr) *why = "configuring " + std::string(kTun) + ": " + r.out;
        return nullptr;
      }
    }
    return line;
  }

  ~DelayLine() {
    ::close(ctl_);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  DelayLine(const DelayLine&) = delete;
  DelayLine& operator=(const DelayLine&) = delete;

  // Packets read after this call wait `delay_ms` (A -> B).
  bool set_delay(unsigned delay_ms) {
    return ::write(ctl_, &delay_ms, sizeof(delay_ms)) == sizeof(delay_ms);
  }

 private:
  DelayLine(pid_t pid, int ctl) : pid_(pid), ctl_(ctl) {}

  static int open_tun() {
    int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::strncpy(ifr.ifr_name, kTun, IFNAMSIZ - 1);
    if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  static std::uint64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
           static_cast<std::uint64_t>(ts.tv_nsec);
  }

  // The forwarder's loop: packets of each direction queue in arrival order with the time they
  // are due; poll sleeps until the next one is due or a packet / a new delay arrives.
  [[noreturn]] static void forward(std::array<int, 2> tun, int ctl, unsigned delay_ms) {
    struct Packet {
      std::uint64_t due_ns;
      std::vector<char> bytes;
    };
    constexpr std::size_t kMaxQueued = 20000;  // a bound, not a shaper: beyond it packets drop
    std::array<std::deque<Packet>, 2> queue;   // [0]: read from A, goes to B; [1]: B -> A
    std::array<char, 65536> buf{};
    for (;;) {
      const std::uint64_t now = now_ns();
      for (int d = 0; d < 2; ++d) {
        while (!queue[d].empty() && queue[d].front().due_ns <= now) {
          auto& p = queue[d].front();
          // a full TUN queue drops, as a full device queue would
          [[maybe_unused]] auto n = ::write(tun[1 - d], p.bytes.data(), p.bytes.size());
          queue[d].pop_front();
        }
      }
      int timeout_ms = -1;
      for (const auto& q : queue) {
        if (q.empty()) continue;
        const auto wait_ns = q.front().due_ns > now ? q.front().due_ns - now : 0;
        const int ms = static_cast<int>((wait_ns + 999'999) / 1'000'000);
        timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
      }
      pollfd fds[3] = {{tun[0], POLLIN, 0}, {tun[1], POLLIN, 0}, {ctl, POLLIN, 0}};
      if (::poll(fds, 3, timeout_ms) < 0 && errno != EINTR) ::_exit(2);
      if (fds[2].revents != 0) {
        unsigned v = 0;
        if (::read(ctl, &v, sizeof(v)) != sizeof(v)) ::_exit(0);  // the test went away
        delay_ms = v;
      }
      for (int d = 0; d < 2; ++d) {
        if ((fds[d].revents & POLLIN) == 0) continue;
        for (;;) {
          ssize_t n = ::read(tun[d], buf.data(), buf.size());
          if (n <= 0) break;
          const std::uint64_t hold = d == 0 ? std::uint64_t{delay_ms} * 1'000'000ULL : 0;
          if (queue[d].size() < kMaxQueued) {
            queue[d].push_back({now_ns() + hold, std::vector<char>(buf.data(), buf.data() + n)});
          }
        }
      }
    }
  }

  pid_t pid_;
  int ctl_;
};

}  // namespace tracehost::testing
