// The network plugin end to end on loopback: the real `tracehost run` binary with the plugin, a
// JSON lines sink writing to a file and a Prometheus endpoint, against forked client and server
// processes with known names that exchange a known number of bytes. Pids, names, addresses,
// ports and byte counts are exact; durations within tolerances.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
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
#include <nlohmann/json.hpp>

#include "common/bpf_guard.hpp"
#include "common/host_harness.hpp"

namespace tracehost::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr std::size_t kRequestBytes = 1000;  // client -> server
constexpr std::size_t kReplyBytes = 5000;    // server -> client
constexpr auto kHold = 300ms;                // the server keeps the connection open this long

// ---- sockets -----------------------------------------------------------------------------------

struct Endpoint {
  int family = AF_INET;
  int port = 0;
};

sockaddr_storage loopback(int family, int port, socklen_t* len) {
  sockaddr_storage ss{};
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons(static_cast<std::uint16_t>(port));
    *len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    a->sin6_port = htons(static_cast<std::uint16_t>(port));
    *len = sizeof(sockaddr_in6);
  }
  return ss;
}

// A TCP socket bound to a free loopback port but not listening yet: the server child calls
// listen() itself, so the plugin sees the child as the listener's owner.
int bound_socket(int family, int* port) {
  int fd = ::socket(family, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = 0;
  sockaddr_storage ss = loopback(family, 0, &len);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                            : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return fd;
}

bool read_exactly(int fd, std::size_t n) {
  char buf[4096];
  while (n > 0) {
    ssize_t r = ::recv(fd, buf, std::min(n, sizeof(buf)), 0);
    if (r <= 0) return false;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_all(int fd, std::size_t n, char c) {
  std::string data(n, c);
  std::size_t off = 0;
  while (off < n) {
    ssize_t w = ::send(fd, data.data() + off, n - off, MSG_NOSIGNAL);
    if (w <= 0) return false;
    off += static_cast<std::size_t>(w);
  }
  return true;
}

bool wait_byte(int fd) {
  char c = 0;
  return ::read(fd, &c, 1) == 1;
}

bool send_byte(int fd) {
  char c = 1;
  return ::write(fd, &c, 1) == 1;
}

// Server child: on the first byte from the test, listen() on each of `fds`, acknowledge, then per
// socket accept `conns` connections one after another: read kRequestBytes, reply kReplyBytes,
// hold the connection `hold`, close. Exit 0 when all went as planned.
std::unique_ptr<Child> spawn_server(const std::string& comm, std::vector<int> fds, int conns,
                                    std::chrono::milliseconds hold) {
  auto child = Child::spawn(comm, [fds, conns, hold](int in, int out) {
    if (!wait_byte(in)) ::_exit(10);
    for (int fd : fds) {
      if (::listen(fd, 16) != 0) ::_exit(11);
    }
    if (!send_byte(out)) ::_exit(12);
    for (int fd : fds) {
      for (int i = 0; i < conns; ++i) {
        int c = ::accept(fd, nullptr, nullptr);
        if (c < 0) ::_exit(13);
        if (!read_exactly(c, kRequestBytes)) ::_exit(14);
        if (!write_all(c, kReplyBytes, 'r')) ::_exit(15);
        std::this_thread::sleep_for(hold);
        ::close(c);
      }
    }
    ::_exit(0);
  });
  for (int fd : fds) ::close(fd);  // the child has its copies
  return child;
}

// Client child: on a byte from the test, connect to each endpoint in turn, send kRequestBytes,
// read until EOF (expecting kReplyBytes), close. With `expect_refused`, every connect must fail
// with ECONNREFUSED instead. Exit 0 when all went as planned.
std::unique_ptr<Child> spawn_client(const std::string& comm, std::vector<Endpoint> targets,
                                    bool expect_refused = false) {
  return Child::spawn(comm, [targets, expect_refused](int in, int) {
    if (!wait_byte(in)) ::_exit(20);
    for (const auto& t : targets) {
      int fd = ::socket(t.family, SOCK_STREAM, 0);
      if (fd < 0) ::_exit(21);
      socklen_t len = 0;
      sockaddr_storage ss = loopback(t.family, t.port, &len);
      int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
      if (expect_refused) {
        if (rc == 0 || errno != ECONNREFUSED) ::_exit(22);
        ::close(fd);
        continue;
      }
      if (rc != 0) ::_exit(23);
      if (!write_all(fd, kRequestBytes, 'q')) ::_exit(24);
      if (!read_exactly(fd, kReplyBytes)) ::_exit(25);
      char c = 0;
      if (::recv(fd, &c, 1, 0) != 0) ::_exit(26);  // EOF: the server closed
      ::close(fd);
    }
    ::_exit(0);
  });
}

// ---- fixture -----------------------------------------------------------------------------------

class NetworkPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TRACEHOST_REQUIRE_BPF_PRIVILEGES();
    dir_ = std::make_unique<TempDir>("tracehost-network");
    port_ = free_tcp_port();
    ASSERT_GT(port_, 0);
    events_path_ = dir_->path() / "events.jsonl";
  }

  fs::path write_config(const std::string& plugin_keys) {
    fs::path p = dir_->path() / "tracehost.toml";
    std::ofstream(p) << plugin_test_config("network", plugin_keys, events_path_, json_topics_,
                                           port_);
    return p;
  }

  // Starts the host and waits until the plugin runs and the endpoint serves its state: the
  // probes are attached by then (the plugin attaches them in start()).
  void start_host(const std::string& plugin_keys) {
    host_ = HostProcess::start(write_config(plugin_keys), dir_->path() / "host.log");
    ASSERT_NE(host_, nullptr);
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      ASSERT_TRUE(host_->running()) << "tracehost exited early:\n" << host_->log();
      auto v = metric(scrape(port_), "tracehost_plugin_state",
                      {{"plugin", "network"}, {"state", "running"}});
      if (v.has_value() && *v == 1) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "the network plugin never reported running; host log:\n" << host_->log();
  }

  // Lines of `topic` (and process `pid` unless 0), once at least `count` arrived or `timeout`
  // passed.
  std::vector<Json> events(const std::string& topic, pid_t pid, std::size_t count,
                           std::chrono::milliseconds timeout = 5s) {
    std::vector<Json> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      out.clear();
      std::istringstream in(read_file(events_path_));
      std::string line;
      while (std::getline(in, line)) {
        Json j = Json::parse(line, nullptr, false);
        if (j.is_discarded()) continue;
        if (j.value("topic", "") == topic && (pid == 0 || j.value("pid", -1) == pid)) {
          out.push_back(j);
        }
      }
      if (out.size() >= count) break;
      std::this_thread::sleep_for(50ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return out;
  }

  // Every event line of process `pid`, after the host flushed (stops the host).
  std::vector<Json> all_events_after_stop() {
    stop_host();
    std::vector<Json> out;
    std::istringstream in(read_file(events_path_));
    std::string line;
    while (std::getline(in, line)) {
      Json j = Json::parse(line, nullptr, false);
      if (!j.is_discarded()) out.push_back(j);
    }
    return out;
  }

  void stop_host() {
    if (host_ == nullptr) return;
    EXPECT_EQ(host_->stop(), 0) << host_->log();
    host_.reset();
  }

  // A config error: the run ends with exit code 2 and the log names `want` (each string).
  void expect_config_error(const std::string& plugin_keys, const std::vector<std::string>& want) {
    host_ = HostProcess::start(write_config(plugin_keys), dir_->path() / "host.log");
    ASSERT_NE(host_, nullptr);
    auto code = host_->wait(30s);
    ASSERT_TRUE(code.has_value()) << "tracehost kept running with: " << plugin_keys;
    EXPECT_EQ(*code, 2) << host_->log();
    const std::string log = host_->log();
    for (const auto& w : want) EXPECT_NE(log.find(w), std::string::npos) << w << " in:\n" << log;
    host_.reset();
  }

  void loopback_round_trip(int family);

  // the children's comms and the time their exchange took (hold_and_close)
  struct HeldExchange {
    std::string srv_comm;
    std::string cli_comm;
    double exchange_us = 0;
  };
  void hold_and_close(const std::string& keys, int conns, HeldExchange* out);

  std::unique_ptr<TempDir> dir_;
  int port_ = -1;
  fs::path events_path_;
  std::string json_topics_ = "tcp.*";  // what the JSON-lines sink subscribes to
  std::unique_ptr<HostProcess> host_;
};

// ---- lifecycle ---------------------------------------------------------------------------------

void NetworkPluginTest::loopback_round_trip(int family) {
  const std::string addr = family == AF_INET ? "127.0.0.1" : "::1";
  const std::string fam = family == AF_INET ? "ipv4" : "ipv6";
  const std::string srv_comm = unique_comm("thns");
  const std::string cli_comm = unique_comm("thnc");
  ASSERT_NO_FATAL_FAILURE(
      start_host("comms = " + toml_list({srv_comm, cli_comm}) + "\nrtt_sample_interval_ms = 0\n"));

  int port = 0;
  int fd = bound_socket(family, &port);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  auto server = spawn_server(srv_comm, {fd}, 1, kHold);
  ASSERT_NE(server, nullptr);
  auto client = spawn_client(cli_comm, {{family, port}});
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(server->send());
  ASSERT_TRUE(server->receive());  // listening
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(client->send());
  const pid_t srv_pid = server->pid();
  const pid_t cli_pid = client->pid();
  EXPECT_EQ(client->wait(), 0);
  EXPECT_EQ(server->wait(), 0);
  const double elapsed_ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();

  // ---- events ----
  auto connects = events("tcp.connect", cli_pid, 1);
  ASSERT_EQ(connects.size(), 1u) << read_file(events_path_) << host_->log();
  const Json& c = connects[0];
  EXPECT_EQ(c["comm"], cli_comm);
  EXPECT_EQ(c["tid"], cli_pid);
  EXPECT_EQ(c["uid"], ::getuid());
  EXPECT_EQ(c["family"], fam);
  EXPECT_EQ(c["saddr"], addr);
  EXPECT_EQ(c["daddr"], addr);
  EXPECT_EQ(c["dport"], port);
  EXPECT_EQ(c["direction"], "out");
  const int cli_port = c.value("sport", 0);
  EXPECT_GT(cli_port, 0);
  EXPECT_NE(cli_port, port);
  EXPECT_GT(c.value("latency_ns", 0.0), 0);
  EXPECT_LT(c.value("latency_ns", 0.0), elapsed_ns);

  auto accepts = events("tcp.accept", srv_pid, 1);
  ASSERT_EQ(accepts.size(), 1u) << read_file(events_path_);
  const Json& a = accepts[0];
  EXPECT_EQ(a["comm"], srv_comm);  // the process that called listen()
  EXPECT_EQ(a["family"], fam);
  EXPECT_EQ(a["saddr"], addr);
  EXPECT_EQ(a["daddr"], addr);
  EXPECT_EQ(a["sport"], port);
  EXPECT_EQ(a["dport"], cli_port);
  EXPECT_EQ(a["direction"], "in");
  EXPECT_GT(a.value("handshake_ns", 0.0), 0);
  EXPECT_LT(a.value("handshake_ns", 0.0), elapsed_ns);
  EXPECT_EQ(a["synack_retransmits"], 0);

  const double hold_ns = std::chrono::duration<double, std::nano>(kHold).count();
  auto cli_close = events("tcp.close", cli_pid, 1);
  ASSERT_EQ(cli_close.size(), 1u) << read_file(events_path_);
  const Json& cc = cli_close[0];
  EXPECT_EQ(cc["comm"], cli_comm);
  EXPECT_EQ(cc["sport"], cli_port);
  EXPECT_EQ(cc["dport"], port);
  EXPECT_EQ(cc["daddr"], addr);
  EXPECT_EQ(cc["direction"], "out");
  EXPECT_EQ(cc["bytes_sent"], kRequestBytes);
  EXPECT_EQ(cc["bytes_received"], kReplyBytes);
  EXPECT_EQ(cc["retransmits"], 0);
  EXPECT_GE(cc.value("duration_ns", 0.0), hold_ns);
  EXPECT_LE(cc.value("duration_ns", 0.0), elapsed_ns);
  EXPECT_GT(cc.value("srtt_us", 0), 0);

  auto srv_close = events("tcp.close", srv_pid, 1);
  ASSERT_EQ(srv_close.size(), 1u) << read_file(events_path_);
  const Json& sc = srv_close[0];
  EXPECT_EQ(sc["comm"], srv_comm);
  EXPECT_EQ(sc["sport"], port);
  EXPECT_EQ(sc["dport"], cli_port);
  EXPECT_EQ(sc["direction"], "in");
  EXPECT_EQ(sc["bytes_sent"], kReplyBytes);
  EXPECT_EQ(sc["bytes_received"], kRequestBytes);
  EXPECT_GE(sc.value("duration_ns", 0.0), hold_ns);
  EXPECT_LE(sc.value("duration_ns", 0.0), elapsed_ns);

  // ---- metrics ----
  auto m = scrape(port_);
  const Labels out{{"comm", cli_comm}, {"direction", "out"}};
  const Labels in{{"comm", srv_comm}, {"direction", "in"}};
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total", out), 1) << host_->log();
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total", in), 1);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_closed_total", out), 1);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_closed_total", in), 1);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_sent_total", out), kRequestBytes);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_received_total", out), kReplyBytes);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_sent_total", in), kReplyBytes);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_received_total", in), kRequestBytes);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connect_latency_seconds_count", out), 1);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_accept_handshake_seconds_count", in), 1);
  const auto latency_sum = metric(m, "tracehost_network_tcp_connect_latency_seconds_sum", out);
  ASSERT_TRUE(latency_sum.has_value());
  EXPECT_NEAR(*latency_sum * 1e9, c.value("latency_ns", 0.0), 1.0);
  // RTT sampled on every segment (interval 0): both ends received data
  const auto rtt = metric(m, "tracehost_network_tcp_rtt_seconds_count", {{"comm", cli_comm}});
  ASSERT_TRUE(rtt.has_value()) << host_->log();
  EXPECT_GE(*rtt, 1);
  const auto rtt_sum = metric(m, "tracehost_network_tcp_rtt_seconds_sum", {{"comm", cli_comm}});
  ASSERT_TRUE(rtt_sum.has_value());
  EXPECT_GT(*rtt_sum, 0);
  EXPECT_LT(*rtt_sum / *rtt, 0.1);  // loopback RTTs are microseconds
  // nothing else: only the two filtered processes are traced
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total", {{"comm", "[unknown]"}}),
            std::nullopt);
  stop_host();
}

TEST_F(NetworkPluginTest, LoopbackIpv4) { loopback_round_trip(AF_INET); }

TEST_F(NetworkPluginTest, LoopbackIpv6) { loopback_round_trip(AF_INET6); }

// A connect() to a closed port: tcp.connect_failed with the kernel's reason and the caller.
TEST_F(NetworkPluginTest, RefusedConnection) {
  const std::string cli_comm = unique_comm("thnr");
  ASSERT_NO_FATAL_FAILURE(start_host("comms = " + toml_list({cli_comm}) + "\n"));
  const int closed_port = free_tcp_port();
  ASSERT_GT(closed_port, 0);
  auto client = spawn_client(cli_comm, {{AF_INET, closed_port}}, /*expect_refused=*/true);
  ASSERT_NE(client, nullptr);
  const pid_t pid = client->pid();
  ASSERT_TRUE(client->send());
  ASSERT_EQ(client->wait(), 0) << "connect() was not refused";

  auto failed = events("tcp.connect_failed", pid, 1);
  ASSERT_EQ(failed.size(), 1u) << read_file(events_path_) << host_->log();
  const Json& f = failed[0];
  EXPECT_EQ(f["comm"], cli_comm);
  EXPECT_EQ(f["reason"], "ECONNREFUSED");
  EXPECT_EQ(f["family"], "ipv4");
  EXPECT_EQ(f["daddr"], "127.0.0.1");
  EXPECT_EQ(f["dport"], closed_port);
  EXPECT_EQ(f["direction"], "out");
  EXPECT_EQ(f["syn_retransmits"], 0);
  EXPECT_GT(f.value("latency_ns", 0.0), 0);
  EXPECT_LT(f.value("latency_ns", 0.0), 1e9);
  // the failure was published after any connect event of the same socket would have been
  EXPECT_TRUE(events("tcp.connect", pid, 1, 0ms).empty());

  auto m = scrape(port_);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_failed_total",
                   {{"comm", cli_comm}, {"reason", "ECONNREFUSED"}}),
            1)
      << host_->log();
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total", {{"comm", cli_comm}}),
            std::nullopt);
  stop_host();
}

// Demand: with the JSON sink subscribed to tcp.accept only, the other topics are muted in the
// kernel (nothing reaches the bus, Prometheus says so) while the metrics count every connection.
TEST_F(NetworkPluginTest, EventsNobodySubscribesToAreNotProduced) {
  const std::string srv_comm = unique_comm("thns");
  const std::string cli_comm = unique_comm("thnc");
  json_topics_ = "tcp.accept";
  ASSERT_NO_FATAL_FAILURE(start_host("comms = " + toml_list({srv_comm, cli_comm}) + "\n"));
  int port = 0;
  int fd = bound_socket(AF_INET, &port);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  auto server = spawn_server(srv_comm, {fd}, 1, 0ms);
  ASSERT_NE(server, nullptr);
  auto client = spawn_client(cli_comm, {{AF_INET, port}});
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(server->send());
  ASSERT_TRUE(server->receive());  // listening
  ASSERT_TRUE(client->send());
  const pid_t srv_pid = server->pid();
  EXPECT_EQ(client->wait(), 0);
  EXPECT_EQ(server->wait(), 0);

  ASSERT_EQ(events("tcp.accept", srv_pid, 1).size(), 1u) << read_file(events_path_) << host_->log();
  auto m = scrape(port_);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_closed_total", {{"comm", cli_comm}}), 1)
      << host_->log();
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_closed_total", {{"comm", srv_comm}}), 1);
  for (const char* off : {"tcp.connect", "tcp.close", "tcp.connect_failed"}) {
    EXPECT_EQ(metric(m, "tracehost_events_topic_muted", {{"topic", off}}), 1) << off;
    // published counts what the poller took from the ring, subscriber or not
    EXPECT_EQ(metric(m, "tracehost_events_published_total", {{"topic", off}}), 0) << off;
  }
  EXPECT_EQ(metric(m, "tracehost_events_topic_muted", {{"topic", "tcp.accept"}}), 0);
  EXPECT_GE(metric(m, "tracehost_events_published_total", {{"topic", "tcp.accept"}}), 1);
  EXPECT_NE(host_->log().find("not produced, as no sink or plugin subscribes to them: tcp.close, "
                              "tcp.connect, tcp.connect_failed"),
            std::string::npos)
      << host_->log();
  stop_host();
}

// A topic the plugin's keys turn off is declared off (API 1.5): its muted gauge is 1 whatever
// subscribes, and a sink that names it exactly is warned at start with the key; a glob is not.
TEST_F(NetworkPluginTest, TopicsTheConfigTurnsOffSaySo) {
  json_topics_ = R"(tcp.connect", "tcp.*)";  // topics = ["tcp.connect", "tcp.*"]
  ASSERT_NO_FATAL_FAILURE(start_host("connect = false\n"));
  const std::string warning =
      "sink json subscribes to tcp.connect, which plugin network does not produce in this run: "
      "connect = false";
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (host_->log().find(warning) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(host_->log().find(warning), std::string::npos) << host_->log();
  EXPECT_EQ(host_->log().find("subscribes to tcp.accept"), std::string::npos) << host_->log();
  auto m = scrape(port_);
  EXPECT_EQ(metric(m, "tracehost_events_topic_muted", {{"topic", "tcp.connect"}}), 1);
  for (const char* on : {"tcp.accept", "tcp.close", "tcp.connect_failed"}) {
    EXPECT_EQ(metric(m, "tracehost_events_topic_muted", {{"topic", on}}), 0) << on;
  }
  stop_host();
}

// ---- filters -----------------------------------------------------------------------------------

// comms + ports: of three servers (two ports of one process, one of another) and two clients,
// only the selected process names and the selected port are reported.
TEST_F(NetworkPluginTest, CommAndPortFilters) {
  const std::string srv_comm = unique_comm("thns");
  const std::string cli_comm = unique_comm("thnc");
  const std::string other_comm = unique_comm("thno");
  int port_a = 0;
  int port_b = 0;
  int port_c = 0;
  int fd_a = bound_socket(AF_INET, &port_a);
  int fd_b = bound_socket(AF_INET, &port_b);
  int fd_c = bound_socket(AF_INET, &port_c);
  ASSERT_GE(fd_a, 0);
  ASSERT_GE(fd_b, 0);
  ASSERT_GE(fd_c, 0);
  ASSERT_NO_FATAL_FAILURE(start_host("comms = " + toml_list({srv_comm, cli_comm}) + "\nports = [" +
                                     std::to_string(port_a) + "]\n"));

  // srv_comm serves a then b (one connection each); other_comm serves c twice
  auto server = spawn_server(srv_comm, {fd_a, fd_b}, 1, 0ms);
  auto other_server = spawn_server(other_comm, {fd_c}, 2, 0ms);
  ASSERT_NE(server, nullptr);
  ASSERT_NE(other_server, nullptr);
  ASSERT_TRUE(server->send());
  ASSERT_TRUE(server->receive());
  ASSERT_TRUE(other_server->send());
  ASSERT_TRUE(other_server->receive());
  // cli_comm: a (reported), b (port filtered), c (both ends' ports filtered);
  // other_comm: c (name filtered)
  auto client = spawn_client(cli_comm, {{AF_INET, port_a}, {AF_INET, port_b}, {AF_INET, port_c}});
  auto other_client = spawn_client(other_comm, {{AF_INET, port_c}});
  ASSERT_NE(client, nullptr);
  ASSERT_NE(other_client, nullptr);
  const pid_t cli_pid = client->pid();
  ASSERT_TRUE(client->send());
  EXPECT_EQ(client->wait(), 0);
  ASSERT_TRUE(other_client->send());
  EXPECT_EQ(other_client->wait(), 0);
  EXPECT_EQ(server->wait(), 0);
  EXPECT_EQ(other_server->wait(), 0);

  auto m = scrape(port_);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total",
                   {{"comm", cli_comm}, {"direction", "out"}}),
            1)
      << host_->log();
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total",
                   {{"comm", srv_comm}, {"direction", "in"}}),
            1);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total", {{"comm", other_comm}}),
            std::nullopt);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_sent_total",
                   {{"comm", cli_comm}, {"direction", "out"}}),
            kRequestBytes);

  auto all = all_events_after_stop();
  int connects = 0;
  for (const auto& e : all) {
    EXPECT_TRUE(e["comm"] == cli_comm || e["comm"] == srv_comm) << e.dump();
    EXPECT_TRUE(e["sport"] == port_a || e["dport"] == port_a) << e.dump();
    if (e["topic"] == "tcp.connect") {
      ++connects;
      EXPECT_EQ(e["pid"], cli_pid);
      EXPECT_EQ(e["dport"], port_a);
    }
  }
  EXPECT_EQ(connects, 1);
  // connect + accept + two closes of the one reported connection
  EXPECT_EQ(all.size(), 4u);
}

// family = "ipv6": an IPv4 connection of the same processes is not reported.
TEST_F(NetworkPluginTest, FamilyFilter) {
  const std::string srv_comm = unique_comm("thns");
  const std::string cli_comm = unique_comm("thnc");
  int port4 = 0;
  int port6 = 0;
  int fd4 = bound_socket(AF_INET, &port4);
  int fd6 = bound_socket(AF_INET6, &port6);
  ASSERT_GE(fd4, 0);
  ASSERT_GE(fd6, 0);
  ASSERT_NO_FATAL_FAILURE(
      start_host("comms = " + toml_list({srv_comm, cli_comm}) + "\nfamily = \"ipv6\"\n"));
  auto server = spawn_server(srv_comm, {fd4, fd6}, 1, 0ms);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->send());
  ASSERT_TRUE(server->receive());
  auto client = spawn_client(cli_comm, {{AF_INET, port4}, {AF_INET6, port6}});
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->send());
  EXPECT_EQ(client->wait(), 0);
  EXPECT_EQ(server->wait(), 0);

  auto m = scrape(port_);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total",
                   {{"comm", cli_comm}, {"direction", "out"}}),
            1)
      << host_->log();
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_closed_total",
                   {{"comm", srv_comm}, {"direction", "in"}}),
            1);
  auto all = all_events_after_stop();
  EXPECT_EQ(all.size(), 4u);
  for (const auto& e : all) EXPECT_EQ(e["family"], "ipv6") << e.dump();
}

// Config mistakes end the run with exit code 2 and a message naming the key and the fix.
TEST_F(NetworkPluginTest, ConfigErrors) {
  expect_config_error("labels = [\"comm\", \"pid\"]\n", {"plugins.network.labels", "pid"});
  expect_config_error("labels = [\"comm\", \"comm\"]\n",
                      {"[plugins.network] labels", "listed twice"});
  expect_config_error("family = \"ipv5\"\n", {"plugins.network.family", "ipv5", "ipv4"});
  expect_config_error("ports = [80, 70000]\n", {"plugins.network.ports", "70000"});
  expect_config_error("ringbuf_kb = 100\n", {"[plugins.network] ringbuf_kb", "use 128"});
}

// ---- metrics -----------------------------------------------------------------------------------

// With remote_port among the labels and max_series = 2, connections to four ports make four
// label sets: two are kept, the rest fold into "other" and are counted as folded.
TEST_F(NetworkPluginTest, CardinalityLimitFoldsIntoOther) {
  const std::string srv_comm = unique_comm("thns");
  const std::string cli_comm = unique_comm("thnc");
  std::vector<int> fds;
  std::vector<Endpoint> targets;
  for (int i = 0; i < 4; ++i) {
    int port = 0;
    int fd = bound_socket(AF_INET, &port);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    targets.push_back({AF_INET, port});
  }
  // the client's connections only: the server side would add its own label sets
  ASSERT_NO_FATAL_FAILURE(start_host("comms = " + toml_list({cli_comm}) +
                                     "\nlabels = [\"comm\", \"remote_port\"]\nmax_series = 2\n"));
  auto server = spawn_server(srv_comm, fds, 1, 0ms);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->send());
  ASSERT_TRUE(server->receive());
  auto client = spawn_client(cli_comm, targets);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->send());
  EXPECT_EQ(client->wait(), 0);
  EXPECT_EQ(server->wait(), 0);

  auto m = scrape(port_);
  double kept = 0;
  int kept_series = 0;
  std::optional<double> other;
  for (const auto& s : m) {
    if (s.name != "tracehost_network_tcp_connections_opened_total") continue;
    if (s.labels.at("comm") == "other") {
      EXPECT_EQ(s.labels.at("remote_port"), "other");
      other = s.value;
    } else {
      EXPECT_EQ(s.labels.at("comm"), cli_comm);
      kept += s.value;
      ++kept_series;
    }
  }
  EXPECT_EQ(kept_series, 2) << host_->log();
  EXPECT_EQ(kept, 2);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(*other, 2);
  double folded = 0;
  for (const auto& s : m) {
    if (s.name == "tracehost_metric_series_folded_total" && s.labels.count("family") != 0 &&
        s.labels.at("family").find("network_tcp_connections_opened") != std::string::npos) {
      folded += s.value;
    }
  }
  EXPECT_GE(folded, 2);
  stop_host();
}

// rtt_by = "remote": the RTT histogram is labelled with the peer's address (IPv4 shown as such,
// though the kernel map holds it IPv4-mapped in 16 bytes).
TEST_F(NetworkPluginTest, RttByRemoteAddress) {
  const std::string srv_comm = unique_comm("thns");
  const std::string cli_comm = unique_comm("thnc");
  int port = 0;
  int fd = bound_socket(AF_INET, &port);
  ASSERT_GE(fd, 0);
  ASSERT_NO_FATAL_FAILURE(start_host("comms = " + toml_list({srv_comm, cli_comm}) +
                                     "\nrtt_by = \"remote\"\nrtt_sample_interval_ms = 1\n"
                                     "labels = [\"comm\", \"remote_addr\", \"server_port\"]\n"));
  auto server = spawn_server(srv_comm, {fd}, 3, 0ms);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->send());
  ASSERT_TRUE(server->receive());
  auto client = spawn_client(cli_comm, {{AF_INET, port}, {AF_INET, port}, {AF_INET, port}});
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->send());
  EXPECT_EQ(client->wait(), 0);
  EXPECT_EQ(server->wait(), 0);

  auto m = scrape(port_);
  const auto rtt =
      metric(m, "tracehost_network_tcp_rtt_seconds_count", {{"remote_addr", "127.0.0.1"}});
  ASSERT_TRUE(rtt.has_value()) << host_->log();
  EXPECT_GE(*rtt, 3);  // at least one sample per connection
  // server_port is the listening port on both sides
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total",
                   {{"comm", cli_comm},
                    {"remote_addr", "127.0.0.1"},
                    {"server_port", std::to_string(port)}}),
            3);
  EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total",
                   {{"comm", srv_comm},
                    {"remote_addr", "127.0.0.1"},
                    {"server_port", std::to_string(port)}}),
            3);
  stop_host();
}

// ---- the socket table --------------------------------------------------------------------------

constexpr std::size_t kSmall = 100;  // bytes each way per connection of the tests below

// Server child: listen(), acknowledge, accept `conns` connections, read kSmall from and write
// kSmall to each, then hold them all open until the next byte from the test and close them.
std::unique_ptr<Child> spawn_holding_server(const std::string& comm, int fd, int conns) {
  auto child = Child::spawn(comm, [fd, conns](int in, int out) {
    if (!wait_byte(in)) ::_exit(30);
    if (::listen(fd, conns) != 0) ::_exit(31);
    if (!send_byte(out)) ::_exit(32);
    std::vector<int> open;
    for (int i = 0; i < conns; ++i) {
      int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) ::_exit(33);
      if (!read_exactly(c, kSmall) || !write_all(c, kSmall, 'r')) ::_exit(34);
      open.push_back(c);
    }
    if (!wait_byte(in)) ::_exit(35);
    for (int c : open) ::close(c);
    ::_exit(0);
  });
  ::close(fd);
  return child;
}

// Client child: open `conns` connections to `port` at once, exchange kSmall each way on each,
// tell the test they are all open, then read EOF on each and close it.
std::unique_ptr<Child> spawn_holding_client(const std::string& comm, int port, int conns) {
  return Child::spawn(comm, [port, conns](int in, int out) {
    if (!wait_byte(in)) ::_exit(40);
    std::vector<int> open;
    for (int i = 0; i < conns; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      socklen_t len = 0;
      sockaddr_storage ss = loopback(AF_INET, port, &len);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) ::_exit(41);
      if (!write_all(fd, kSmall, 'q')) ::_exit(42);
      open.push_back(fd);
    }
    for (int fd : open) {
      if (!read_exactly(fd, kSmall)) ::_exit(43);
    }
    if (!send_byte(out)) ::_exit(44);
    for (int fd : open) {
      char c = 0;
      if (::recv(fd, &c, 1, 0) != 0) ::_exit(45);
      ::close(fd);
    }
    ::_exit(0);
  });
}

// Starts the host for two fresh children (comms filter, plus `keys`), then runs the two children
// above through their whole exchange: `conns` connections opened at once from the client to the
// server's listener, kSmall bytes each way on each, all held open, then closed.
void NetworkPluginTest::hold_and_close(const std::string& keys, int conns, HeldExchange* out) {
  out->srv_comm = unique_comm("thns");
  out->cli_comm = unique_comm("thnc");
  int port = 0;
  int fd = bound_socket(AF_INET, &port);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_NO_FATAL_FAILURE(
      start_host("comms = " + toml_list({out->srv_comm, out->cli_comm}) + "\n" + keys));
  const auto t0 = std::chrono::steady_clock::now();
  auto server = spawn_holding_server(out->srv_comm, fd, conns);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->send());
  ASSERT_TRUE(server->receive());  // listening
  auto client = spawn_holding_client(out->cli_comm, port, conns);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->send());
  ASSERT_TRUE(client->receive());  // all open on both ends, data exchanged on each
  ASSERT_TRUE(server->send());     // close them
  EXPECT_EQ(client->wait(), 0);
  EXPECT_EQ(server->wait(), 0);
  out->exchange_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

// 100 connections open at once are 200 sockets. With max_connections = 128 the socket table has
// 128 slots, so at least 72 sockets live in its overflow hash: every connection is still counted
// open and closed with its exact bytes, and none is lost. With max_connections = 64 (64 slots +
// 64 in the overflow) some cannot be tracked, and say so in the untracked counter.
TEST_F(NetworkPluginTest, SocketTableOverflowAndLimit) {
  constexpr int kConns = 100;
  for (const int max_connections : {128, 64}) {
    SCOPED_TRACE("max_connections = " + std::to_string(max_connections));
    HeldExchange x;
    ASSERT_NO_FATAL_FAILURE(
        hold_and_close("max_connections = " + std::to_string(max_connections) + "\n", kConns, &x));
    const std::string& srv_comm = x.srv_comm;
    const std::string& cli_comm = x.cli_comm;

    const Labels out{{"comm", cli_comm}, {"direction", "out"}};
    const Labels in{{"comm", srv_comm}, {"direction", "in"}};
    auto closed = [&](const std::vector<Sample>& m) {
      return metric(m, "tracehost_network_tcp_connections_closed_total", out).value_or(0) +
             metric(m, "tracehost_network_tcp_connections_closed_total", in).value_or(0);
    };
    auto m = scrape(port_);
    const auto untracked = metric(m, "tracehost_network_tcp_untracked_sockets_total", {});
    ASSERT_TRUE(untracked.has_value()) << host_->log();
    if (max_connections == 128) {
      // the server's closes end in TIME_WAIT: wait for its last CLOSE to be counted
      for (int i = 0; i < 100 && closed(m) < 2 * kConns; ++i) {
        std::this_thread::sleep_for(50ms);
        m = scrape(port_);
      }
      EXPECT_EQ(*untracked, 0);
      EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total", out), kConns);
      EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total", in), kConns);
      EXPECT_EQ(closed(m), 2 * kConns);
      EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_sent_total", out), kConns * kSmall);
      EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_received_total", out), kConns * kSmall);
      EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_sent_total", in), kConns * kSmall);
      EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_received_total", in), kConns * kSmall);
      const auto closes = all_events_after_stop();
      int client_closes = 0;
      for (const auto& e : closes) {
        if (e.value("topic", "") == "tcp.close" && e.value("comm", "") == cli_comm) {
          ++client_closes;
          EXPECT_EQ(e["bytes_sent"], kSmall);
          EXPECT_EQ(e["bytes_received"], kSmall);
        }
      }
      EXPECT_EQ(client_closes, kConns);
    } else {
      EXPECT_GT(*untracked, 0) << host_->log();
      EXPECT_LT(metric(m, "tracehost_network_tcp_connections_opened_total", out).value_or(0) +
                    metric(m, "tracehost_network_tcp_connections_opened_total", in).value_or(0),
                2 * kConns);
      stop_host();
    }
  }
}

// ---- sockets open before the start -------------------------------------------------------------

// A listener and a connection on it, both opened before tracehost starts, under a task filter
// that selects their two processes: by name, then by a cgroup they sit one level below (the
// iterator reads the cgroup from the task, not from the current one). The connection is
// attributed to the processes holding its two ends (closed, bytes), without events (its start
// was not seen); a second connection the old listener accepts after the start is reported like
// any other, with the server as its owner.
TEST_F(NetworkPluginTest, SocketsOpenBeforeTheStartKeepTheirOwners) {
  for (const bool by_cgroup : {false, true}) {
    SCOPED_TRACE(by_cgroup ? "cgroup filter" : "comms filter");
    std::unique_ptr<TempCgroup> cgroup;  // outlives the children moved into it
    fs::remove(events_path_);            // the first round's events
    const std::string srv_comm = unique_comm("thns");
    const std::string cli_comm = unique_comm("thnc");
    int port = 0;
    int fd = bound_socket(AF_INET, &port);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    // server: listen; accept A and exchange kSmall each way; on the next byte close A, then
    // accept B and exchange the same, close B
    auto server = Child::spawn(srv_comm, [fd](int in, int out) {
      if (::listen(fd, 4) != 0 || !send_byte(out)) ::_exit(50);
      for (int round = 0; round < 2; ++round) {
        int c = ::accept(fd, nullptr, nullptr);
        if (c < 0 || !read_exactly(c, kSmall) || !write_all(c, kSmall, 'r')) ::_exit(51);
        if (round == 0 && (!send_byte(out) || !wait_byte(in))) ::_exit(52);
        ::close(c);
      }
      ::_exit(0);
    });
    ::close(fd);
    ASSERT_NE(server, nullptr);
    ASSERT_TRUE(server->receive());  // listening
    // client: connect A, exchange; wait for the server to close A, close it; on the next byte
    // connect B, exchange, wait for the close, close
    auto client = Child::spawn(cli_comm, [port](int in, int out) {
      for (int round = 0; round < 2; ++round) {
        if (round == 1 && !wait_byte(in)) ::_exit(60);
        int c = ::socket(AF_INET, SOCK_STREAM, 0);
        socklen_t len = 0;
        sockaddr_storage ss = loopback(AF_INET, port, &len);
        if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&ss), len) != 0) ::_exit(61);
        if (!write_all(c, kSmall, 'q') || !read_exactly(c, kSmall)) ::_exit(62);
        if (round == 0 && !send_byte(out)) ::_exit(63);
        char byte = 0;
        if (::recv(c, &byte, 1, 0) != 0) ::_exit(64);  // EOF: the server closed
        ::close(c);
      }
      ::_exit(0);
    });
    ASSERT_NE(client, nullptr);
    ASSERT_TRUE(client->receive());  // A open, data exchanged
    ASSERT_TRUE(server->receive());
    const pid_t srv_pid = server->pid();

    std::string filter = "comms = " + toml_list({srv_comm, cli_comm}) + "\n";
    if (by_cgroup) {
      std::string why;
      cgroup = TempCgroup::make(&why);
      ASSERT_NE(cgroup, nullptr) << why;
      for (pid_t pid : {server->pid(), client->pid()}) ASSERT_EQ(cgroup->move_inner(pid), "");
      filter = "cgroup = \"" + cgroup->name() + "\"\n";
    }
    ASSERT_NO_FATAL_FAILURE(start_host(filter));
    EXPECT_NE(host_->log().find("attributed 1 listener(s) and 2 connection(s)"), std::string::npos)
        << host_->log();
    ASSERT_TRUE(server->send());  // close A, accept B
    ASSERT_TRUE(client->send());  // connect B once A is closed
    EXPECT_EQ(client->wait(), 0);
    EXPECT_EQ(server->wait(), 0);

    const Labels out{{"comm", cli_comm}, {"direction", "out"}};
    const Labels in{{"comm", srv_comm}, {"direction", "in"}};
    auto closed = [&](const std::vector<Sample>& m, const Labels& l) {
      return metric(m, "tracehost_network_tcp_connections_closed_total", l).value_or(0);
    };
    auto m = scrape(port_);
    // the server closes first; its ends reach CLOSE with the client's last ACKs
    for (int i = 0; i < 100 && (closed(m, in) < 2 || closed(m, out) < 2); ++i) {
      std::this_thread::sleep_for(50ms);
      m = scrape(port_);
    }
    EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total", out), 1) << host_->log();
    EXPECT_EQ(metric(m, "tracehost_network_tcp_connections_opened_total", in), 1);
    EXPECT_EQ(closed(m, out), 2);
    EXPECT_EQ(closed(m, in), 2);
    EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_received_total", out), 2 * kSmall);
    EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_sent_total", in), 2 * kSmall);
    EXPECT_EQ(metric(m, "tracehost_network_tcp_bytes_received_total", in), 2 * kSmall);
    // A's own SYN is in its bytes_acked, not subtracted for a connection not seen opening
    const auto sent_out = metric(m, "tracehost_network_tcp_bytes_sent_total", out);
    ASSERT_TRUE(sent_out.has_value());
    EXPECT_GE(*sent_out, 2 * kSmall);
    EXPECT_LE(*sent_out, 2 * kSmall + 1);

    // events: B's only, the accept with the server as its owner
    auto all = all_events_after_stop();
    int accepts = 0;
    for (const auto& e : all) {
      EXPECT_TRUE(e["comm"] == cli_comm || e["comm"] == srv_comm) << e.dump();
      if (e["topic"] != "tcp.accept") continue;
      ++accepts;
      EXPECT_EQ(e["pid"], srv_pid);
      EXPECT_EQ(e["comm"], srv_comm);
      EXPECT_EQ(e["sport"], port);
      EXPECT_EQ(e["direction"], "in");
    }
    EXPECT_EQ(accepts, 1);
    EXPECT_EQ(all.size(), 4u);  // B's connect, accept and two closes
  }
}

// ---- the RTT sample budget ---------------------------------------------------------------------

// 100 connections at once are 200 sockets, each receiving data, so with one sample per socket per
// hour each is due exactly one RTT sample. Without a per-CPU limit all 200 are taken; with
// rtt_max_samples_per_s = 10 (2 per CPU per 131 ms window) most are skipped and counted as such,
// and taken + skipped is still 200.
TEST_F(NetworkPluginTest, RttSampleBudget) {
  constexpr int kConns = 100;
  const long cpus = ::sysconf(_SC_NPROCESSORS_CONF);
  for (const int per_s : {0, 10}) {
    SCOPED_TRACE("rtt_max_samples_per_s = " + std::to_string(per_s));
    HeldExchange x;
    ASSERT_NO_FATAL_FAILURE(
        hold_and_close("rtt_sample_interval_ms = 3600000\nrtt_window_ms = 0\n"
                       "rtt_max_samples_per_s = " +
                           std::to_string(per_s) + "\n",
                       kConns, &x));

    const auto m = scrape(port_);
    const double taken =
        metric(m, "tracehost_network_tcp_rtt_seconds_count", {{"comm", x.cli_comm}}).value_or(0) +
        metric(m, "tracehost_network_tcp_rtt_seconds_count", {{"comm", x.srv_comm}}).value_or(0);
    const auto skipped = metric(m, "tracehost_network_tcp_rtt_samples_skipped_total", {});
    ASSERT_TRUE(skipped.has_value()) << host_->log();
    EXPECT_EQ(taken + *skipped, 2 * kConns);
    if (per_s == 0) {
      EXPECT_EQ(*skipped, 0);
    } else {
      // at most 2 per CPU in each window the exchange touched
      const double windows = x.exchange_us / 131072.0 + 2;
      EXPECT_LE(taken, 2 * static_cast<double>(cpus) * windows);
      EXPECT_GT(*skipped, 0);
    }
    stop_host();
  }
}

// ---- RTT sampling windows ----------------------------------------------------------------------

// Times the kernel ran handle_tcp_probe (BPF statistics must be on).
std::uint64_t tcp_probe_runs() {
  std::uint64_t runs = 0;
  __u32 id = 0;
  while (bpf_prog_get_next_id(id, &id) == 0) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
        std::string_view(info.name) == "handle_tcp_prob") {  // names keep 15 characters
      runs += info.run_cnt;
    }
    ::close(fd);
  }
  return runs;
}

// rtt_window_ms: tcp_probe is attached only for the first 100 ms of every 400, so the kernel
// runs it for about a quarter of the segments a busy connection receives (its cost per segment
// is paid that share of the time), and each end gets one RTT sample per window: about five in
// two seconds, where an always attached probe would take one every 300 ms (seven).
TEST_F(NetworkPluginTest, RttWindowsBoundTcpProbe) {
  const int stats = bpf_enable_stats(BPF_STATS_RUN_TIME);
  ASSERT_GE(stats, 0) << std::strerror(errno);
  const std::string srv_comm = unique_comm("thns");
  const std::string cli_comm = unique_comm("thnc");
  ASSERT_NO_FATAL_FAILURE(start_host("comms = " + toml_list({srv_comm, cli_comm}) +
                                     "\nrtt_sample_interval_ms = 400\nrtt_window_ms = 100\n"));
  EXPECT_NE(host_->log().find("in windows of 100 ms"), std::string::npos) << host_->log();

  int port = 0;
  int fd = bound_socket(AF_INET, &port);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  // the server echoes every byte until the client closes
  auto server = Child::spawn(srv_comm, [fd](int, int out) {
    if (::listen(fd, 1) != 0 || !send_byte(out)) ::_exit(70);
    int c = ::accept(fd, nullptr, nullptr);
    char b = 0;
    while (c >= 0 && ::read(c, &b, 1) == 1) {
      if (::write(c, &b, 1) != 1) ::_exit(71);
    }
    ::_exit(0);
  });
  ::close(fd);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->receive());  // listening
  int count_pipe[2];
  ASSERT_EQ(::pipe(count_pipe), 0);
  const std::uint64_t runs_before = tcp_probe_runs();
  // the client: one-byte round trips for two seconds, then the count
  auto client = Child::spawn(cli_comm, [port, count_pipe](int, int) {
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = 0;
    sockaddr_storage ss = loopback(AF_INET, port, &len);
    const int one = 1;
    if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
      ::_exit(72);
    }
    std::uint64_t n = 0;
    const auto end = std::chrono::steady_clock::now() + 2s;
    char b = 'x';
    while (std::chrono::steady_clock::now() < end) {
      if (::write(c, &b, 1) != 1 || ::read(c, &b, 1) != 1) ::_exit(73);
      ++n;
    }
    ::close(c);
    if (::write(count_pipe[1], &n, sizeof(n)) != sizeof(n)) ::_exit(74);
    ::_exit(0);
  });
  ASSERT_NE(client, nullptr);
  ::close(count_pipe[1]);
  std::uint64_t round_trips = 0;
  const bool got = ::read(count_pipe[0], &round_trips, sizeof(round_trips)) == sizeof(round_trips);
  ::close(count_pipe[0]);
  EXPECT_EQ(client->wait(), 0);
  EXPECT_EQ(server->wait(), 0);
  const std::uint64_t runs = tcp_probe_runs() - runs_before;
  ::close(stats);
  ASSERT_TRUE(got);
  ASSERT_GT(round_trips, 1000u) << "too few round trips to judge";

  // each round trip is a segment received at each end
  const double share = static_cast<double>(runs) / (2.0 * static_cast<double>(round_trips));
  EXPECT_GT(share, 0.08) << runs << " runs for " << round_trips << " round trips";
  EXPECT_LT(share, 0.45) << runs << " runs for " << round_trips << " round trips";

  const auto m = scrape(port_);
  for (const auto& comm : {cli_comm, srv_comm}) {
    const auto samples = metric(m, "tracehost_network_tcp_rtt_seconds_count", {{"comm", comm}});
    ASSERT_TRUE(samples.has_value()) << comm << "\n" << host_->log();
    EXPECT_GE(*samples, 3) << comm;
    EXPECT_LE(*samples, 6) << comm;
  }
}

}  // namespace
}  // namespace tracehost::testing
