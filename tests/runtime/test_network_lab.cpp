// The network plugin against a two-namespace lab (tests/common/netns.hpp): retransmits caused by
// a random packet-drop rule, compared with the kernel's own RetransSegs counter of the client's
// namespace and attributed to the client process even though they happen in softirq context; a
// SYN retransmit; and the RTT histogram moving with an artificial delay. tracehost runs in the
// root namespace: tracepoints fire for every namespace.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
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

#include "common/bpf_guard.hpp"
#include "common/host_harness.hpp"
#include "common/netns.hpp"

namespace tracehost::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::size_t kBulkBytes = 3 * 1024 * 1024;
constexpr int kDropPercent = 7;
constexpr int kRoundTrips = 25;
constexpr unsigned kDelayMs = 40;

// ---- the processes in the lab ------------------------------------------------------------------

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_exactly(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// One accepted connection: "E" as the first byte makes it an echo connection (every byte comes
// back); anything else is a sink (read to EOF, then one byte back as the receipt).
void serve(int c) {
  char buf[65536];
  ssize_t n = ::recv(c, buf, sizeof(buf), 0);
  const bool echo = n > 0 && buf[0] == 'E';
  while (n > 0) {
    if (echo && !write_all(c, buf, static_cast<std::size_t>(n))) break;
    n = ::recv(c, buf, sizeof(buf), 0);
  }
  if (!echo && n == 0) write_all(c, "R", 1);
  ::close(c);
}

// The server, inside namespace B: listens on every address of the namespace at `port`, tells the
// test it listens (one byte), serves connections one after the other.
Child::Body server_body(int port) {
  return [port](int, int out) {
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(s, 64) != 0)
      ::_exit(1);
    if (::write(out, "L", 1) != 1) ::_exit(1);
    for (;;) {
      int c = ::accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) serve(c);
    }
  };
}

int connect_to(const char* ip, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, ip, &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `bytes` to ip:port, half-closes, waits for the server's receipt. True on success.
bool sink_transfer(const char* ip, int port, std::size_t bytes) {
  int fd = connect_to(ip, port);
  if (fd < 0) return false;
  std::vector<char> data(std::min<std::size_t>(bytes, 65536), 'x');
  bool ok = true;
  for (std::size_t left = bytes; ok && left > 0;) {
    const std::size_t n = std::min(left, data.size());
    ok = write_all(fd, data.data(), n);
    left -= n;
  }
  char r = 0;
  ok = ok && ::shutdown(fd, SHUT_WR) == 0 && read_exactly(fd, &r, 1) && r == 'R';
  ::close(fd);
  return ok;
}

// A child in the lab that runs `action` once per byte from the test and acknowledges each run
// with one byte; it exits when an action fails (the test then sees receive() fail).
std::unique_ptr<Child> spawn_worker(NetnsLab& lab, NetnsLab::Side side, const std::string& comm,
                                    std::function<bool()> action) {
  return lab.spawn(side, comm, [action = std::move(action)](int in, int out) {
    char c = 0;
    while (::read(in, &c, 1) == 1) {
      if (!action()) ::_exit(1);
      if (::write(out, &c, 1) != 1) break;
    }
  });
}

// Runs one action of `worker` and waits for it; false when the worker failed or died.
bool run_once(Child& worker) { return worker.send() && worker.receive(); }

// ---- metrics -----------------------------------------------------------------------------------

// The sum of every series of `name` whose labels include `want` (0 without any).
double sum_of(const std::vector<Sample>& samples, const std::string& name, const Labels& want) {
  double total = 0;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool match = std::all_of(want.begin(), want.end(), [&](const auto& kv) {
      auto it = s.labels.find(kv.first);
      return it != s.labels.end() && it->second == kv.second;
    });
    if (match) total += s.value;
  }
  return total;
}

struct HistogramView {
  double count = 0;
  double sum = 0;
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count), le ascending

  [[nodiscard]] double mean() const { return count > 0 ? sum / count : NAN; }
  // (lower, upper] bounds of the bucket holding the median sample
  [[nodiscard]] std::pair<double, double> median_bucket() const {
    double lower = 0;
    for (const auto& [le, cum] : buckets) {
      if (cum >= count / 2) return {lower, le};
      lower = le;
    }
    return {lower, INFINITY};
  }
};

// Histogram `name` (Prometheus _bucket/_sum/_count) summed over the series matching `want`.
HistogramView histogram_of(const std::vector<Sample>& samples, const std::string& name,
                           const Labels& want) {
  HistogramView h;
  h.count = sum_of(samples, name + "_count", want);
  h.sum = sum_of(samples, name + "_sum", want);
  std::map<double, double> by_le;
  for (const auto& s : samples) {
    if (s.name != name + "_bucket") continue;
    bool match = std::all_of(want.begin(), want.end(), [&](const auto& kv) {
      auto it = s.labels.find(kv.first);
      return it != s.labels.end() && it->second == kv.second;
    });
    auto le = s.labels.find("le");
    if (!match || le == s.labels.end()) continue;
    by_le[le->second == "+Inf" ? INFINITY : std::strtod(le->second.c_str(), nullptr)] += s.value;
  }
  h.buckets.assign(by_le.begin(), by_le.end());
  return h;
}

std::string series_dump(const std::vector<Sample>& samples, const std::string& prefix) {
  std::ostringstream out;
  for (const auto& s : samples) {
    if (s.name.rfind(prefix, 0) != 0) continue;
    out << s.name << "{";
    for (const auto& [k, v] : s.labels) out << k << "=\"" << v << "\",";
    out << "} " << s.value << "\n";
  }
  return out.str();
}

constexpr const char* kRetransmits = "tracehost_network_tcp_retransmits_total";
constexpr const char* kOpened = "tracehost_network_tcp_connections_opened_total";
constexpr const char* kRtt = "tracehost_network_tcp_rtt_seconds";

// ---- fixture -----------------------------------------------------------------------------------

class NetworkLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TRACEHOST_REQUIRE_BPF_PRIVILEGES();
    std::string why;
    lab_ = NetnsLab::make(&why);
    if (lab_ == nullptr) {
      if (bpf_required()) FAIL() << "cannot build the network namespace lab: " << why;
      GTEST_SKIP() << "cannot build the network namespace lab: " << why;
    }
    dir_ = std::make_unique<TempDir>("tracehost-netlab");
    prom_port_ = free_tcp_port();
    ASSERT_GT(prom_port_, 0);
    // a port of its own per test, so the plugin's port filter keeps out other tests' traffic,
    // including sockets of an earlier test of this process still resending a FIN into a deleted
    // namespace; below the ephemeral range, so no connection of the host picks it by chance
    static int tests_run = 0;
    lab_port_ = 20000 + static_cast<int>(::getpid() % 3000) * 4 + tests_run++ % 4;
    server_comm_ = unique_comm("thsrv");
    server_ = lab_->spawn(NetnsLab::kB, server_comm_, server_body(lab_port_));
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->receive()) << "the server in namespace B did not come up";
  }

  void TearDown() override {
    if (host_ != nullptr) host_.reset();
    server_.reset();
    lab_.reset();
  }

  void start_host(const std::string& plugin_keys) {
    std::ostringstream c;
    c << "[host]\nlog_level = \"info\"\npoll_interval_ms = 10\n\n"
      << "[plugins.network]\nenabled = true\nrequired = true\n"
      << "ports = [" << lab_port_ << "]\n"
      << plugin_keys << "\n\n"
      << "[sinks.console]\nenabled = false\n\n"
      << "[sinks.prometheus]\nenabled = true\nlisten = \"127.0.0.1:" << prom_port_ << "\"\n";
    const fs::path config = dir_->path() / "tracehost.toml";
    std::ofstream(config) << c.str();
    host_ = HostProcess::start(config, dir_->path() / "host.log");
    ASSERT_NE(host_, nullptr);
  }

  // Runs `pinger` (a short connection to the server per run) until the plugin counts one of its
  // connections: the probes are attached and the endpoint serves the plugin's metrics.
  void wait_until_tracing(Child& pinger, const std::string& comm) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      ASSERT_TRUE(host_->running()) << "tracehost exited early:\n" << host_->log();
      ASSERT_TRUE(run_once(pinger)) << "the pinger could not reach the server";
      if (sum_of(scrape(prom_port_), kOpened, {{"comm", comm}}) >= 1) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "the plugin never counted the pinger's connections (" << kOpened << "{comm=\"" << comm
           << "\"}); host log:\n"
           << host_->log();
  }

  // Scrapes until `done` holds for the samples or 3 s pass; the last scrape.
  std::vector<Sample> scrape_until(const std::function<bool(const std::vector<Sample>&)>& done) {
    auto deadline = std::chrono::steady_clock::now() + 3s;
    std::vector<Sample> m;
    do {
      m = scrape(prom_port_);
      if (done(m)) break;
      std::this_thread::sleep_for(100ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return m;
  }

  void stop_host() {
    ASSERT_NE(host_, nullptr);
    EXPECT_EQ(host_->stop(), 0) << host_->log();
  }

  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<TempDir> dir_;
  int prom_port_ = -1;
  int lab_port_ = -1;
  std::string server_comm_;
  std::unique_ptr<Child> server_;
  std::unique_ptr<HostProcess> host_;
};

// The lab on its own, without tracehost: the drop rule makes the kernel retransmit, and the
// delay line delays. If this fails, the plugin tests below cannot mean anything.
TEST_F(NetworkLabTest, LabDropsAndDelays) {
  const int port = lab_port_;
  auto client = spawn_worker(*lab_, NetnsLab::kA, unique_comm("thcli"),
                             [port] { return sink_transfer(NetnsLab::kV4[1], port, 1 << 20); });
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(lab_->drop_random(NetnsLab::kB, 10), "");
  const auto before = lab_->tcp_counter(NetnsLab::kA, "RetransSegs");
  ASSERT_TRUE(before.has_value()) << "cannot read /proc/net/snmp inside " << lab_->ns(NetnsLab::kA);
  ASSERT_TRUE(run_once(*client));
  const auto dropped = lab_->dropped(NetnsLab::kB);
  lab_->clear_drops(NetnsLab::kB);
  const auto after = lab_->tcp_counter(NetnsLab::kA, "RetransSegs");
  ASSERT_TRUE(dropped.has_value());
  EXPECT_GE(*dropped, 20u);  // ~750 segments of 1448 bytes, 10 % dropped
  EXPECT_GE(*after - *before, 20u) << "dropped " << *dropped;

  std::string why;
  auto line = DelayLine::make(*lab_, kDelayMs, &why);
  ASSERT_NE(line, nullptr) << why;
  int rtt_pipe[2];
  ASSERT_EQ(::pipe(rtt_pipe), 0);
  auto rtt_client = lab_->spawn(NetnsLab::kA, unique_comm("thrtt"), [port, rtt_pipe](int, int) {
    int fd = connect_to(DelayLine::kV4[1], port);
    if (fd < 0) ::_exit(1);
    char buf[64] = {'E'};
    for (int i = 0; i < 5; ++i) {
      if (!write_all(fd, buf, sizeof(buf)) || !read_exactly(fd, buf, sizeof(buf))) ::_exit(2);
    }
    tcp_info info{};
    socklen_t len = sizeof(info);
    ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len);
    if (::write(rtt_pipe[1], &info.tcpi_rtt, sizeof(info.tcpi_rtt)) != sizeof(info.tcpi_rtt))
      ::_exit(3);
    ::close(fd);
  });
  ASSERT_NE(rtt_client, nullptr);
  ::close(rtt_pipe[1]);
  std::uint32_t rtt_us = 0;
  const bool got = ::read(rtt_pipe[0], &rtt_us, sizeof(rtt_us)) == sizeof(rtt_us);
  ::close(rtt_pipe[0]);
  EXPECT_EQ(rtt_client->wait(), 0);
  ASSERT_TRUE(got);
  EXPECT_GE(rtt_us, kDelayMs * 1000 * 9 / 10);
  EXPECT_LT(rtt_us, kDelayMs * 1000 * 3);
}

// Data retransmits: a 3 MiB upload from namespace A to B with 7 % of the packets entering B
// dropped. The plugin's retransmit count for the client's comm matches the RetransSegs delta of
// namespace A (the client is the only sender there), and no other process gets any of them.
TEST_F(NetworkLabTest, RetransmitsMatchTheKernelCounterAndTheClient) {
  const std::string client_comm = unique_comm("thcli");
  const std::string ping_comm = unique_comm("thpng");
  const int port = lab_port_;
  auto pinger = spawn_worker(*lab_, NetnsLab::kA, ping_comm,
                             [port] { return sink_transfer(NetnsLab::kV4[1], port, 1); });
  auto client = spawn_worker(*lab_, NetnsLab::kA, client_comm,
                             [port] { return sink_transfer(NetnsLab::kV4[1], port, kBulkBytes); });
  ASSERT_TRUE(pinger && client);
  ASSERT_NO_FATAL_FAILURE(start_host(""));
  ASSERT_NO_FATAL_FAILURE(wait_until_tracing(*pinger, ping_comm));

  ASSERT_EQ(lab_->drop_random(NetnsLab::kB, kDropPercent), "");
  const auto before = lab_->tcp_counter(NetnsLab::kA, "RetransSegs");
  ASSERT_TRUE(before.has_value());
  ASSERT_TRUE(run_once(*client)) << "the upload failed";
  // the server's receipt came after the client's FIN: nothing of the client is left to resend
  lab_->clear_drops(NetnsLab::kB);
  const auto after = lab_->tcp_counter(NetnsLab::kA, "RetransSegs");
  ASSERT_TRUE(after.has_value());
  const double kernel = static_cast<double>(*after - *before);
  ASSERT_GE(kernel, 20) << "the drop rule should have caused dozens of retransmits";
  const double tolerance = std::max(3.0, 0.1 * kernel);

  auto m = scrape_until([&](const auto& s) {
    return std::abs(sum_of(s, kRetransmits, {{"comm", client_comm}}) - kernel) <= tolerance;
  });
  const double counted = sum_of(m, kRetransmits, {{"comm", client_comm}});
  std::fprintf(stderr, "retransmits of %s: kernel RetransSegs delta %.0f, plugin %.0f\n",
               client_comm.c_str(), kernel, counted);
  EXPECT_NEAR(counted, kernel, tolerance)
      << "kernel RetransSegs delta in " << lab_->ns(NetnsLab::kA) << ": " << kernel << "\n"
      << series_dump(m, "tracehost_network_tcp_retransmits");
  // retransmits fire in softirq context: none may land on whatever process ran at the time. The
  // server may have resent a FIN or its receipt (ACKs into B are dropped too, including the
  // pinger's last ones before the upload): those are the server's, inbound, although its
  // listener and maybe that connection opened before tracehost started. The pinger resends
  // nothing: its runs end with everything it sent acknowledged.
  for (const auto& s : m) {
    if (s.name != kRetransmits || s.value == 0) continue;
    const auto label = [&](const char* k) { return s.labels.count(k) ? s.labels.at(k) : ""; };
    const bool clients = label("comm") == client_comm && label("direction") == "out";
    const bool servers = label("comm") == server_comm_ && label("direction") == "in";
    EXPECT_TRUE(clients || servers)
        << "retransmits attributed to " << label("comm") << ", " << label("direction") << ":\n"
        << series_dump(m, "tracehost_network_tcp_retransmits");
  }
  stop_host();
}

// A SYN retransmit: the first SYN into B is dropped, the client's connect() succeeds a second
// later with the retransmitted one. One retransmit, the client's SYN; besides it only the
// server may resend a FIN (see the test above).
TEST_F(NetworkLabTest, SynRetransmitIsCountedForTheClient) {
  const std::string client_comm = unique_comm("thsyn");
  const std::string ping_comm = unique_comm("thpng");
  const int port = lab_port_;
  auto pinger = spawn_worker(*lab_, NetnsLab::kA, ping_comm,
                             [port] { return sink_transfer(NetnsLab::kV4[1], port, 1); });
  auto client = spawn_worker(*lab_, NetnsLab::kA, client_comm,
                             [port] { return sink_transfer(NetnsLab::kV4[1], port, 1); });
  ASSERT_TRUE(pinger && client);
  ASSERT_NO_FATAL_FAILURE(start_host(""));
  ASSERT_NO_FATAL_FAILURE(wait_until_tracing(*pinger, ping_comm));

  ASSERT_EQ(lab_->drop_first_syns(NetnsLab::kB, 1), "");
  const auto before = lab_->tcp_counter(NetnsLab::kA, "RetransSegs");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_once(*client));
  const auto took = std::chrono::steady_clock::now() - t0;
  const auto dropped = lab_->dropped(NetnsLab::kB);
  lab_->clear_drops(NetnsLab::kB);
  const auto after = lab_->tcp_counter(NetnsLab::kA, "RetransSegs");
  ASSERT_TRUE(before && after && dropped);
  ASSERT_EQ(*dropped, 1u);
  ASSERT_EQ(*after - *before, 1u) << "the kernel should have resent exactly the SYN";
  EXPECT_GE(took, 900ms) << "the initial SYN timeout is 1 s";

  auto m = scrape_until([&](const auto& s) {
    return sum_of(s, kRetransmits, {{"comm", client_comm}}) >= 1;
  });
  const std::string dump = series_dump(m, "tracehost_network_tcp_retransmits");
  EXPECT_EQ(sum_of(m, kRetransmits, {{"comm", client_comm}, {"kind", "syn"}}), 1)
      << dump << m.size() << " samples scraped; host log:\n"
      << host_->log();
  const double servers =
      sum_of(m, kRetransmits, {{"comm", server_comm_}, {"direction", "in"}, {"kind", "data"}});
  EXPECT_EQ(sum_of(m, kRetransmits, {}) - servers, 1) << dump;
  stop_host();
}

// RTT: the same request/response exchange over the delay line with no delay and with 40 ms on
// the A -> B direction. The plugin's RTT histogram for each client moves with the delay, and
// agrees with the RTT the kernel reports to the client itself (TCP_INFO).
TEST_F(NetworkLabTest, RttHistogramFollowsTheDelay) {
  std::string why;
  auto line = DelayLine::make(*lab_, 0, &why);
  ASSERT_NE(line, nullptr) << why;
  const std::string ping_comm = unique_comm("thpng");
  const int port = lab_port_;
  auto pinger = spawn_worker(*lab_, NetnsLab::kA, ping_comm,
                             [port] { return sink_transfer(NetnsLab::kV4[1], port, 1); });
  ASSERT_NE(pinger, nullptr);
  ASSERT_NO_FATAL_FAILURE(start_host("rtt_by = \"process\"\nrtt_sample_interval_ms = 1\n"));
  ASSERT_NO_FATAL_FAILURE(wait_until_tracing(*pinger, ping_comm));

  // kRoundTrips exchanges of 64 bytes over the delay line; the kernel's smoothed RTT in µs
  auto exchange = [&](const std::string& comm) -> std::optional<std::uint32_t> {
    int rtt_pipe[2];
    if (::pipe(rtt_pipe) != 0) return std::nullopt;
    auto client = lab_->spawn(NetnsLab::kA, comm, [port, rtt_pipe](int, int) {
      int fd = connect_to(DelayLine::kV4[1], port);
      if (fd < 0) ::_exit(1);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      char buf[64] = {'E'};
      for (int i = 0; i < kRoundTrips; ++i) {
        if (!write_all(fd, buf, sizeof(buf)) || !read_exactly(fd, buf, sizeof(buf))) ::_exit(2);
      }
      tcp_info info{};
      socklen_t len = sizeof(info);
      ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len);
      if (::write(rtt_pipe[1], &info.tcpi_rtt, sizeof(info.tcpi_rtt)) != sizeof(info.tcpi_rtt))
        ::_exit(3);
      ::close(fd);
    });
    ::close(rtt_pipe[1]);
    std::uint32_t rtt_us = 0;
    const bool got = client && ::read(rtt_pipe[0], &rtt_us, sizeof(rtt_us)) == sizeof(rtt_us);
    ::close(rtt_pipe[0]);
    if (!client || client->wait() != 0 || !got) return std::nullopt;
    return rtt_us;
  };

  const std::string fast_comm = unique_comm("thrt0");
  const auto fast_kernel = exchange(fast_comm);
  ASSERT_TRUE(fast_kernel.has_value());
  ASSERT_TRUE(line->set_delay(kDelayMs));
  const std::string slow_comm = unique_comm("thrt4");
  const auto slow_kernel = exchange(slow_comm);
  ASSERT_TRUE(slow_kernel.has_value());
  EXPECT_LT(*fast_kernel, 5000u);
  EXPECT_GE(*slow_kernel, kDelayMs * 1000 * 9 / 10);

  auto m = scrape_until([&](const auto& s) {
    return histogram_of(s, kRtt, {{"comm", fast_comm}}).count >= 1 &&
           histogram_of(s, kRtt, {{"comm", slow_comm}}).count >= 1;
  });
  const auto fast = histogram_of(m, kRtt, {{"comm", fast_comm}});
  const auto slow = histogram_of(m, kRtt, {{"comm", slow_comm}});
  const std::string dump = series_dump(m, kRtt);
  std::fprintf(stderr,
               "rtt: no delay: kernel srtt %u us, plugin mean %.0f us over %.0f samples; "
               "%u ms delay: kernel srtt %u us, plugin mean %.0f us over %.0f samples\n",
               *fast_kernel, fast.mean() * 1e6, fast.count, kDelayMs, *slow_kernel,
               slow.mean() * 1e6, slow.count);
  ASSERT_GE(fast.count, 1) << "no RTT samples for " << fast_comm << "\n" << dump;
  ASSERT_GE(slow.count, 1) << "no RTT samples for " << slow_comm << "\n" << dump;
  // never more samples than packets the client received (one response per round trip, the
  // SYN-ACK, the FIN): the rate limit holds
  EXPECT_LE(fast.count, kRoundTrips + 6) << dump;
  EXPECT_LE(slow.count, kRoundTrips + 6) << dump;
  EXPECT_LT(fast.mean(), 0.005) << "kernel srtt " << *fast_kernel << " us\n" << dump;
  EXPECT_GE(slow.mean(), 0.030) << "kernel srtt " << *slow_kernel << " us\n" << dump;
  EXPECT_LT(slow.mean(), 0.200) << dump;
  EXPECT_LT(fast.median_bucket().first, 0.005) << dump;
  EXPECT_GE(slow.median_bucket().second, 0.030) << dump;
  stop_host();
}

}  // namespace
}  // namespace tracehost::testing
