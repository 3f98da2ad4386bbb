// The network plugin: TCP connect / accept / close / failed-connect events, connection, byte and
// retransmit counters, connect-latency, accept-handshake and RTT histograms, per process, from
// tp_btf tracepoints (inet_sock_set_state, tcp_retransmit_skb, tcp_retransmit_synack, tcp_probe).
//
// Everything per event happens in the kernel: metrics are map bindings read by the host at scrape
// time, events are ring buffers bound to topics. This file turns the config into rodata and
// filter maps, and declares schemas, families and bindings.

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tracehost/event_fields.hpp"
#include "tracehost/sdk.hpp"
#include "tracehost/task_filter.hpp"

#include "network.bpf.embed.h"
#include "network.h"

namespace tracehost::network {
namespace {

// ---- layout shared with network.bpf.c: what the schemas and bindings below rely on ------------

static_assert(sizeof(th_event_header) == 48);
static_assert(sizeof(net_sock_state) == 80);
static_assert(sizeof(net_sock_slot) == 96);
static_assert(sizeof(net_walked_sock) == 96);

// slots of the direct-mapped socket table: 8192 x 96 bytes = 768 KiB
constexpr std::uint32_t kMaxSlots = 8192;
static_assert(sizeof(net_key) == 48);
static_assert(offsetof(net_key, raddr) == 16);
static_assert(offsetof(net_key, rport) == 32);
static_assert(offsetof(net_key, port) == 34);
static_assert(offsetof(net_key, direction) == 36);
static_assert(offsetof(net_key, extra) == 40);
static_assert(sizeof(net_owner) == 40);
static_assert(sizeof(net_listen_key) == 16);
static_assert(sizeof(net_listener) == 56);
static_assert(sizeof(net_conn_stats) == 32 + 2 * sizeof(net_hist));
static_assert(sizeof(net_hist) == 8 * (TH_NET_SLOTS + 1));
static_assert(sizeof(net_rtt_budget) == 24);
static_assert(sizeof(net_tcp_event) == 128);
static_assert(offsetof(net_tcp_event, saddr) == 48);
static_assert(offsetof(net_tcp_event, daddr) == 64);
static_assert(offsetof(net_tcp_event, sport) == 80);
static_assert(offsetof(net_tcp_event, family) == 84);
static_assert(offsetof(net_tcp_event, duration_ns) == 88);
static_assert(offsetof(net_tcp_event, retransmits) == 112);
static_assert(offsetof(net_tcp_event, reason) == 120);

constexpr std::string_view kPlugin = "network";
constexpr std::string_view kTopicConnect = "tcp.connect";
constexpr std::string_view kTopicAccept = "tcp.accept";
constexpr std::string_view kTopicClose = "tcp.close";
constexpr std::string_view kTopicFailed = "tcp.connect_failed";

// label selection bits, as network.bpf.c reads them (rodata labels / rtt_labels)
constexpr std::uint32_t kLabelComm = 1;
constexpr std::uint32_t kLabelRemoteAddr = 2;
constexpr std::uint32_t kLabelRemotePort = 4;
constexpr std::uint32_t kLabelServerPort = 8;
constexpr std::uint32_t kLabelDirection = 16;

struct LabelName {
  std::string_view name;
  std::uint32_t bit;
};
// the order labels appear in on every family, whatever order the config lists them in
constexpr std::array<LabelName, 5> kLabels{{{"comm", kLabelComm},
                                            {"remote_addr", kLabelRemoteAddr},
                                            {"remote_port", kLabelRemotePort},
                                            {"server_port", kLabelServerPort},
                                            {"direction", kLabelDirection}}};

Error config_error(std::string_view key, std::string message) {
  return plugin_config_error("network", key, message);
}

// ---- settings: the validated config, in the units BPF wants ----------------------------------

struct Settings {
  TaskFilter tasks;
  std::vector<std::uint16_t> ports;
  std::uint32_t family = TH_NET_FAMILY_ALL;
  std::uint32_t labels = kLabelComm | kLabelDirection;
  std::uint32_t rtt_labels = kLabelComm;
  bool rtt = true;
  std::uint64_t rtt_interval_us = 1'000'000;
  std::uint64_t rtt_window_us = 100'000;  // 0: tcp_probe always attached
  std::uint64_t rtt_max_per_s = 1000;     // per CPU; 0 = no limit

  // tcp_probe attached only in windows: a window must fit twice in the interval so that a
  // socket gets at most one sample in each (see rtt_rodata_interval_us)
  [[nodiscard]] bool rtt_windowed() const {
    return rtt && rtt_window_us != 0 && rtt_interval_us >= 2 * rtt_window_us;
  }
  // What BPF compares with the time since a socket's last sample: in windowed mode interval -
  // window, which lets every window take one sample of a socket seen in the one before (it may
  // have been late in it) and no window take two (window <= interval - window).
  [[nodiscard]] std::uint64_t rtt_rodata_interval_us() const {
    return rtt_windowed() ? rtt_interval_us - rtt_window_us : rtt_interval_us;
  }
  bool connect = true;
  bool accept = true;
  bool close = true;
  bool failed = true;
  std::uint32_t ringbuf_bytes = 0;
  std::uint32_t max_series = 0;
  std::uint32_t map_entries = 0;
  std::uint32_t max_connections = 0;
};

Result<Settings> read_settings(const Host& host) {
  const Config cfg = host.config();
  Settings s;

  TH_ASSIGN_OR_RETURN(
      s.tasks, read_task_filter(cfg, kPlugin,
                                kFilterPids | kFilterComms | kFilterCgroup | kFilterExcludeSelf));

  TH_ASSIGN_OR_RETURN(std::vector<std::int64_t> ports, cfg.ints("ports"));
  std::set<std::int64_t> seen_ports;
  for (std::int64_t p : ports) {
    if (p < 1 || p > 65535) {
      return config_error("ports", detail::concat(p, " is not a TCP port; use 1 to 65535"));
    }
    if (seen_ports.insert(p).second) s.ports.push_back(static_cast<std::uint16_t>(p));
  }
  if (s.ports.size() > TH_NET_MAX_PORTS) {
    return config_error("ports", detail::concat(s.ports.size(), " ports given, at most ",
                                                TH_NET_MAX_PORTS, " are supported"));
  }

  TH_ASSIGN_OR_RETURN(std::string family, cfg.str("family"));
  if (family == "all") {
    s.family = TH_NET_FAMILY_ALL;
  } else if (family == "ipv4") {
    s.family = TH_NET_FAMILY_IPV4;
  } else if (family == "ipv6") {
    s.family = TH_NET_FAMILY_IPV6;
  } else {
    return config_error("family", detail::concat("'", family, "' is not one of all, ipv4, ipv6"));
  }

  TH_ASSIGN_OR_RETURN(std::vector<std::string> labels, cfg.strings("labels"));
  if (!labels.empty()) {
    s.labels = 0;
    for (const auto& l : labels) {
      auto it = std::find_if(kLabels.begin(), kLabels.end(),
                             [&](const LabelName& n) { return n.name == l; });
      if (it == kLabels.end()) {
        return config_error("labels", detail::concat("unknown label '", l,
                                                     "'; use comm, remote_addr, remote_port, "
                                                     "server_port, direction"));
      }
      if ((s.labels & it->bit) != 0) {
        return config_error("labels", detail::concat("'", l, "' is listed twice; list it once"));
      }
      s.labels |= it->bit;
    }
  }

  TH_ASSIGN_OR_RETURN(std::string rtt_by, cfg.str("rtt_by"));
  if (rtt_by == "process") {
    s.rtt_labels = kLabelComm;
  } else if (rtt_by == "remote") {
    s.rtt_labels = kLabelRemoteAddr;
  } else {
    return config_error("rtt_by", detail::concat("'", rtt_by, "' is not one of process, remote"));
  }
  TH_ASSIGN_OR_RETURN(s.rtt, cfg.boolean("rtt"));
  TH_ASSIGN_OR_RETURN(std::uint64_t rtt_ms, cfg.u64("rtt_sample_interval_ms"));
  s.rtt_interval_us = rtt_ms * 1'000;
  TH_ASSIGN_OR_RETURN(std::uint64_t window_ms, cfg.u64("rtt_window_ms"));
  s.rtt_window_us = window_ms * 1'000;
  TH_ASSIGN_OR_RETURN(s.rtt_max_per_s, cfg.u64("rtt_max_samples_per_s"));

  TH_ASSIGN_OR_RETURN(s.connect, cfg.boolean("connect"));
  TH_ASSIGN_OR_RETURN(s.accept, cfg.boolean("accept"));
  TH_ASSIGN_OR_RETURN(s.close, cfg.boolean("close"));
  TH_ASSIGN_OR_RETURN(s.failed, cfg.boolean("connect_failed"));

  TH_ASSIGN_OR_RETURN(s.ringbuf_bytes, read_ringbuf_bytes(cfg, kPlugin));

  TH_ASSIGN_OR_RETURN(std::uint64_t max_series, cfg.u64("max_series"));
  s.max_series = static_cast<std::uint32_t>(max_series);
  TH_ASSIGN_OR_RETURN(std::uint64_t entries, cfg.u64("metric_map_entries"));
  s.map_entries = static_cast<std::uint32_t>(entries);
  TH_ASSIGN_OR_RETURN(std::uint64_t conns, cfg.u64("max_connections"));
  s.max_connections = static_cast<std::uint32_t>(conns);
  return s;
}

// ---- schemas -----------------------------------------------------------------------------------

using E = net_tcp_event;

// Fields every topic has: the owner (the process that called connect() for outbound
// connections, listen() for inbound ones), the endpoints.
std::vector<FieldData> common_fields() {
  auto f = event_header_fields<E>("when the socket changed state",
                                  "owner's thread name at connect() (out) / listen() (in)");
  f.push_back(field<&E::family>("family", FieldType::kEnum)
                  .enums({{TH_NET_AF_INET, "ipv4"}, {TH_NET_AF_INET6, "ipv6"}})
                  .doc("ipv4 or ipv6 (an AF_INET6 socket talking to an IPv4-mapped address is "
                       "ipv6)")
                  .data());
  f.push_back(
      field<&E::saddr>("saddr", FieldType::kIp).family_field("family").doc("local address").data());
  f.push_back(field<&E::daddr>("daddr", FieldType::kIp)
                  .family_field("family")
                  .doc("remote address")
                  .data());
  f.push_back(field<&E::sport>("sport", FieldType::kPort).doc("local port").data());
  f.push_back(field<&E::dport>("dport", FieldType::kPort).doc("remote port").data());
  f.push_back(field<&E::direction>("direction", FieldType::kEnum)
                  .enums({{TH_NET_DIR_OUT, "out"}, {TH_NET_DIR_IN, "in"}})
                  .doc("out: this host connected; in: accepted by a local listener")
                  .data());
  return f;
}

EventSchema connect_schema() {
  auto f = common_fields();
  f.push_back(field<&E::duration_ns>("latency_ns", FieldType::kDurationNs)
                  .doc("connect latency: connect() (CLOSE -> SYN_SENT) to ESTABLISHED")
                  .data());
  return EventSchema(kTopicConnect, "an outbound TCP connection was established", sizeof(E),
                     std::move(f));
}

EventSchema accept_schema() {
  auto f = common_fields();
  f.push_back(field<&E::duration_ns>("handshake_ns", FieldType::kDurationNs)
                  .doc("SYN-ACK sent -> final ACK received (the kernel's first RTT sample of "
                       "the child socket); 0 when the kernel took none (SYN-ACK retransmitted)")
                  .data());
  f.push_back(field<&E::retransmits>("synack_retransmits", FieldType::kUint)
                  .doc("SYN-ACKs retransmitted before the handshake completed")
                  .data());
  return EventSchema(kTopicAccept, "an inbound TCP connection was established", sizeof(E),
                     std::move(f));
}

EventSchema close_schema() {
  auto f = common_fields();
  f.push_back(field<&E::bytes_sent>("bytes_sent", FieldType::kUint)
                  .doc("bytes sent and acknowledged by the peer (tcp_sock.bytes_acked)")
                  .data());
  f.push_back(field<&E::bytes_received>("bytes_received", FieldType::kUint)
                  .doc("bytes received in order (tcp_sock.bytes_received)")
                  .data());
  f.push_back(field<&E::duration_ns>("duration_ns", FieldType::kDurationNs)
                  .doc("ESTABLISHED -> CLOSE")
                  .data());
  f.push_back(field<&E::retransmits>("retransmits", FieldType::kUint)
                  .doc("segments retransmitted over the connection's life (tcp_sock.total_retrans)")
                  .data());
  f.push_back(field<&E::srtt_us>("srtt_us", FieldType::kUint)
                  .doc("smoothed RTT at close, microseconds")
                  .data());
  return EventSchema(kTopicClose, "an established TCP connection closed", sizeof(E), std::move(f));
}

EventSchema failed_schema() {
  auto f = common_fields();
  f.push_back(field<&E::reason>("reason", FieldType::kErrno)
                  .doc("the socket's error: ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ...; 0 when "
                       "the application closed it before the handshake completed")
                  .data());
  f.push_back(field<&E::duration_ns>("latency_ns", FieldType::kDurationNs)
                  .doc("connect() to the failure")
                  .data());
  f.push_back(field<&E::retransmits>("syn_retransmits", FieldType::kUint)
                  .doc("SYNs retransmitted before the failure")
                  .data());
  return EventSchema(kTopicFailed, "an outbound TCP connection never reached ESTABLISHED",
                     sizeof(E), std::move(f));
}

// ---- metric families and bindings --------------------------------------------------------------

// A family with the selected labels (canonical order) plus `extra` (reason, kind).
MetricFamily family(MetricType type, std::string_view name, std::string_view help,
                    std::uint32_t labels, std::string_view extra, std::uint32_t max_series) {
  MetricFamily f = type == MetricType::kHistogram ? MetricFamily::histogram(name, help)
                                                  : MetricFamily::counter(name, help);
  for (const auto& l : kLabels) {
    if ((labels & l.bit) != 0) f.add_label(l.name);
  }
  if (!extra.empty()) f.add_label(extra);
  f.max_series(max_series);
  return f;
}

template <typename V>
MapBinding<net_key, V> key_binding(std::uint32_t labels) {
  MapBinding<net_key, V> b;
  if ((labels & kLabelComm) != 0) b.template label<&net_key::comm>("comm", KeyKind::kString);
  if ((labels & kLabelRemoteAddr) != 0) {
    b.template label<&net_key::raddr>("remote_addr", KeyKind::kIp);
  }
  if ((labels & kLabelRemotePort) != 0) {
    b.template label<&net_key::rport>("remote_port", KeyKind::kUint);
  }
  if ((labels & kLabelServerPort) != 0) {
    b.template label<&net_key::port>("server_port", KeyKind::kUint);
  }
  if ((labels & kLabelDirection) != 0) {
    b.template label<&net_key::direction>("direction", KeyKind::kEnum)
        .enums({{TH_NET_DIR_OUT, "out"}, {TH_NET_DIR_IN, "in"}});
  }
  return b;
}

}  // namespace

class NetworkPlugin final : public Plugin {
 public:
  static std::vector<ConfigKey> config_keys() {
    std::vector<ConfigKey> k;
    add_task_filter_keys(k, kFilterPids | kFilterComms | kFilterCgroup);
    k.push_back(ConfigKey::ints("ports",
                                "only connections whose local or remote port is in this list "
                                "(filtered in the kernel); empty = all")
                    .range(1, 65535));
    k.push_back(ConfigKey::str("family", "all", "address family: all, ipv4 or ipv6")
                    .choices({"all", "ipv4", "ipv6"}));
    add_task_filter_keys(k, kFilterExcludeSelf);
    k.push_back(ConfigKey::strings("labels",
                                   "metric labels, from comm, remote_addr, remote_port, "
                                   "server_port, direction; empty = [\"comm\", \"direction\"]")
                    .choices({"comm", "remote_addr", "remote_port", "server_port", "direction"}));
    k.push_back(ConfigKey::u64("max_series", 1000,
                               "label sets kept per metric before the rest fold into \"other\"")
                    .range(1, 1000000));
    k.push_back(ConfigKey::u64("metric_map_entries", 4096,
                               "label sets kept in each kernel metric map; least recently "
                               "used ones are evicted")
                    .range(16, 1 << 20));
    k.push_back(ConfigKey::u64("max_connections", 65536,
                               "sockets tracked at once (connecting, established, closing): at "
                               "least this many, in an 8192-slot table plus an overflow hash "
                               "of this size; new ones beyond are counted in "
                               "tracehost_network_tcp_untracked_sockets_total")
                    .range(64, 1 << 22));
    k.push_back(ConfigKey::boolean("rtt", true,
                                   "sample the smoothed RTT from tcp_probe (runs for every "
                                   "received segment)"));
    k.push_back(ConfigKey::u64("rtt_sample_interval_ms", 1000,
                               "at most one RTT sample per socket per interval; 0 = every "
                               "received segment")
                    .range(0, 3600000));
    k.push_back(ConfigKey::u64("rtt_window_ms", 100,
                               "tcp_probe is attached only for this long at the start of each "
                               "rtt_sample_interval_ms, so its per-segment cost is paid that "
                               "share of the time; 0, or an interval shorter than twice this: "
                               "always attached")
                    .range(0, 1800000));
    k.push_back(ConfigKey::u64("rtt_max_samples_per_s", 1000,
                               "at most this many RTT samples per CPU per second (the rest are "
                               "counted in tracehost_network_tcp_rtt_samples_skipped_total); "
                               "0 = no limit")
                    .range(0, 100000000));
    k.push_back(ConfigKey::str("rtt_by", "process",
                               "RTT histogram per process (label comm) or per remote address "
                               "(label remote_addr)")
                    .choices({"process", "remote"}));
    k.push_back(ConfigKey::boolean("connect", true, "emit tcp.connect events (while subscribed)"));
    k.push_back(ConfigKey::boolean("accept", true, "emit tcp.accept events (while subscribed)"));
    k.push_back(ConfigKey::boolean("close", true, "emit tcp.close events (while subscribed)"));
    k.push_back(ConfigKey::boolean("connect_failed", true,
                                   "emit tcp.connect_failed events (while subscribed)"));
    k.push_back(ringbuf_kb_key());
    return k;
  }

  static std::vector<EventSchema> topics() {
    std::vector<EventSchema> t;
    t.push_back(connect_schema());
    t.push_back(accept_schema());
    t.push_back(close_schema());
    t.push_back(failed_schema());
    return t;
  }

  Status start(Host& host) override {
    TH_ASSIGN_OR_RETURN(Settings s, read_settings(host));

    // The start-up walk is the one part that needs iterator programs, whose pointer rules
    // kernels keep tightening (6.18.44 refused the cookie helper on an iterator's socket, which
    // took the whole plugin down). A kernel that refuses them still gets everything else.
    bool walk = true;
    Result<BpfObject> loaded = open_and_load(host, s, /*walk=*/true);
    if (!loaded && loaded.error().kind() == ErrorKind::kLoadFailed) {
      const Error refused = loaded.error();
      loaded = open_and_load(host, s, /*walk=*/false);
      if (!loaded) return refused;  // not the walk's doing: its error says what is
      walk = false;
      host.log().warn(
          "this kernel refuses the start-up walk's programs (seed_listeners, seed_sockets), so "
          "sockets that were open before the start are adopted as described in the plugin's "
          "README instead of given the processes holding them; everything else runs. The "
          "kernel's reason (run with log_level = \"debug\" for the whole verifier log): ",
          verifier_reason(refused.message()));
    }
    if (!loaded) return loaded.error();
    BpfObject obj = std::move(loaded).value();
    TH_TRY(fill_task_filter(obj, s.tasks));
    if (!s.ports.empty()) {
      TH_ASSIGN_OR_RETURN(Map ports, obj.map("port_filter"));
      const std::uint8_t one = 1;
      for (std::uint16_t p : s.ports) TH_TRY(ports.update(p, one));
    }
    TH_TRY(bind_topic_rings(host, obj, topic_rings(s)));
    TH_TRY(bind_metrics(host, obj, s));
    // the state machine first: retransmits and RTT samples of sockets it has not seen yet are
    // attributed to "[unknown]" anyway
    TH_TRY(obj.attach("handle_set_state", tp_btf("inet_sock_set_state")));
    TH_TRY(obj.attach("handle_retransmit", tp_btf("tcp_retransmit_skb")));
    TH_TRY(obj.attach("handle_retransmit_synack", tp_btf("tcp_retransmit_synack")));
    std::optional<Probe> tcp_probe;
    if (s.rtt) {
      TH_ASSIGN_OR_RETURN(tcp_probe, obj.attach("handle_tcp_probe", tp_btf("tcp_probe")));
    }
    // then the sockets that were open before: listeners first, so that the connections they
    // accepted are known as inbound
    if (walk) {
      TH_ASSIGN_OR_RETURN(std::string listeners, obj.run_iterator("seed_listeners"));
      TH_ASSIGN_OR_RETURN(std::string sockets, obj.run_iterator("seed_sockets"));
      host.log().info("attributed ", listeners.size(), " listener(s) and ", sockets.size(),
                      " connection(s) that were open before the start to their processes");
    }

    std::string labels;
    for (const auto& l : kLabels) {
      if ((s.labels & l.bit) != 0) labels += (labels.empty() ? "" : ",") + std::string(l.name);
    }
    host.log().info("tracing TCP (",
                    s.family == TH_NET_FAMILY_ALL    ? "ipv4+ipv6"
                    : s.family == TH_NET_FAMILY_IPV4 ? "ipv4"
                                                     : "ipv6",
                    "); labels: ", labels.empty() ? "none" : labels,
                    "; events:", s.connect ? " connect" : "", s.accept ? " accept" : "",
                    s.close ? " close" : "", s.failed ? " connect_failed" : "",
                    (!s.connect && !s.accept && !s.close && !s.failed) ? " none" : "",
                    s.rtt ? "; rtt sampled every " : "; rtt off",
                    s.rtt ? std::to_string(s.rtt_interval_us / 1'000) + " ms per socket" : "",
                    s.rtt_windowed() ? " in windows of " + std::to_string(s.rtt_window_us / 1'000) +
                                           " ms (tcp_probe attached only then)"
                    : s.rtt ? " (tcp_probe always attached)"
                            : "",
                    !s.rtt ? ""
                    : s.rtt_max_per_s == 0
                        ? ", no per-CPU limit"
                        : ", at most " + std::to_string(s.rtt_max_per_s) + " a second per CPU",
                    s.ports.empty() ? "" : "; ports filtered",
                    s.tasks.self_tgid != 0 ? "; excluding the host's own pid" : "");
    // last: a failure above must not leave a thread pausing probes the host is taking down
    if (tcp_probe && s.rtt_windowed()) start_rtt_windows(host, *tcp_probe, s);
    return ok();
  }

  ~NetworkPlugin() override { stop(); }

  void stop() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (windows_.joinable()) windows_.join();
  }

 private:
  // Runs tcp_probe in windows: attached (as it is now) for rtt_window_us, then paused until the
  // next interval starts. A pause or resume the host refuses ends the windows, with the reason
  // logged: tcp_probe then stays as that left it (attached, or failed and off).
  void start_rtt_windows(Host& host, Probe probe, const Settings& s) {
    // pause/resume need plugin API 1.3, which every host that loads this plugin has: a host
    // refuses a plugin built for a newer minor than its own
    stopping_ = false;
    const auto window = std::chrono::microseconds(s.rtt_window_us);
    const auto interval = std::chrono::microseconds(s.rtt_interval_us);
    windows_ = std::thread([this, &host, probe, window, interval] {
      auto start = std::chrono::steady_clock::now();
      std::unique_lock lock(mu_);
      for (;;) {
        if (cv_.wait_until(lock, start + window, [this] { return stopping_; })) return;
        if (auto st = probe.pause(); !st.ok()) {
          host.log().warn("RTT sampling windows stopped, tcp_probe stays attached: ",
                          st.error().describe());
          return;
        }
        start += interval;
        // a late wakeup (a stalled host) skips windows rather than running them back to back
        if (const auto now = std::chrono::steady_clock::now(); now > start) {
          start += interval * ((now - start) / interval + 1);
        }
        if (cv_.wait_until(lock, start, [this] { return stopping_; })) return;
        if (auto st = probe.resume(); !st.ok()) {
          host.log().error("RTT sampling stopped: tcp_probe could not be attached again: ",
                           st.error().describe());
          return;
        }
      }
    });
  }

  // The plugin's object opened, configured and loaded; walk = false leaves the start-up walk's
  // iterators out.
  static Result<BpfObject> open_and_load(Host& host, const Settings& s, bool walk) {
    TH_ASSIGN_OR_RETURN(BpfObject obj, host.bpf().open("network", embedded::network_bpf()));
    TH_TRY(configure(obj, s));
    TH_TRY(obj.set_autoload("seed_listeners", walk));
    TH_TRY(obj.set_autoload("seed_sockets", walk));
    TH_TRY(obj.load());
    return obj;
  }

  // A verifier log's reason: its last line before the statistics it ends with ("processed N
  // insns", "verification time", "stack depth"); else the message's last line.
  static std::string_view verifier_reason(std::string_view text) {
    if (const auto end = text.rfind("-- END PROG LOAD LOG --"); end != std::string_view::npos) {
      text = text.substr(0, end);
    }
    while (!text.empty()) {
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
      const auto nl = text.rfind('\n');
      const std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
      if (!line.starts_with("processed ") && !line.starts_with("verification time") &&
          !line.starts_with("stack depth")) {
        return line;
      }
      text = nl == std::string_view::npos ? std::string_view{} : text.substr(0, nl);
    }
    return text;
  }

  static Status configure(const BpfObject& obj, const Settings& s) {
    auto u32 = [](bool b) { return static_cast<std::uint32_t>(b ? 1 : 0); };
    TH_TRY(configure_task_filter(obj, s.tasks));

    TH_TRY(obj.set_rodata("family_filter", s.family));
    TH_TRY(obj.set_rodata("use_ports", u32(!s.ports.empty())));
    TH_TRY(obj.set_rodata("task_filtered", u32(!s.tasks.selects_all())));
    TH_TRY(obj.set_rodata("labels", s.labels));
    TH_TRY(obj.set_rodata("rtt_labels", s.rtt_labels));
    TH_TRY(obj.set_rodata("rtt_interval_us", s.rtt_rodata_interval_us()));
    TH_TRY(obj.set_rodata("rtt_window_budget", rtt_window_budget(s.rtt_max_per_s)));
    TH_TRY(obj.set_rodata("emit_connect", u32(s.connect)));
    TH_TRY(obj.set_rodata("emit_accept", u32(s.accept)));
    TH_TRY(obj.set_rodata("emit_close", u32(s.close)));
    TH_TRY(obj.set_rodata("emit_failed", u32(s.failed)));
    TH_TRY(obj.set_autoload("handle_tcp_probe", s.rtt));

    // a disabled topic's ring shrinks to one page
    TH_TRY(size_topic_rings(obj, topic_rings(s), s.ringbuf_bytes));
    TH_TRY(obj.set_max_entries(
        "port_filter", static_cast<std::uint32_t>(std::max<std::size_t>(s.ports.size(), 1))));
    // the socket table: a power of two of slots, at most kMaxSlots so it stays in a core's
    // cache; sockets whose slot another holds go to the overflow hash, which alone can hold
    // max_connections
    const std::uint32_t slots = std::min(std::bit_ceil(s.max_connections), kMaxSlots);
    TH_TRY(obj.set_max_entries("sock_slots", slots));
    TH_TRY(obj.set_rodata("slot_mask", slots - 1));
    TH_TRY(obj.set_max_entries("sock_state", s.max_connections));
    TH_TRY(obj.set_max_entries("sock_walked", s.max_connections));
    TH_TRY(obj.set_max_entries("listeners", std::max<std::uint32_t>(s.max_connections / 16, 64)));
    for (std::string_view map : {"conn_stats", "fail_stats", "retrans_stats"}) {
      TH_TRY(obj.set_max_entries(map, s.map_entries));
    }
    TH_TRY(obj.set_max_entries("rtt_hist", s.rtt ? s.map_entries : 1u));
    return ok();
  }

  // samples per CPU per budget window (2^TH_NET_RTT_WINDOW_SHIFT us), rounded up; 0 = no limit
  static std::uint64_t rtt_window_budget(std::uint64_t per_s) {
    constexpr std::uint64_t kWindowUs = std::uint64_t{1} << TH_NET_RTT_WINDOW_SHIFT;
    return (per_s * kWindowUs + 999'999) / 1'000'000;
  }

  static std::array<TopicRing, 4> topic_rings(const Settings& s) {
    // the frequent three are staged (network.bpf.c); a failure is reported at once
    return {{{s.connect, "connect_events", kTopicConnect, TH_RINGBUF_STAGED, "connect = false"},
             {s.accept, "accept_events", kTopicAccept, TH_RINGBUF_STAGED, "accept = false"},
             {s.close, "close_events", kTopicClose, TH_RINGBUF_STAGED, "close = false"},
             {s.failed, "failed_events", kTopicFailed, 0, "connect_failed = false"}}};
  }

  // A counter without labels over the one-entry map `map` (its per-CPU copies summed).
  template <typename V>
  static Status unlabelled_counter(Host& host, const BpfObject& obj, std::string_view map,
                                   std::string_view name, std::string_view help,
                                   MapBinding<std::uint32_t, V> binding) {
    const Metrics metrics = host.metrics();
    TH_ASSIGN_OR_RETURN(Map m, obj.map(map));
    TH_ASSIGN_OR_RETURN(Metric counter, metrics.register_family(MetricFamily::counter(name, help)));
    return metrics.bind(counter, m, binding);
  }

  static Status bind_metrics(Host& host, const BpfObject& obj, const Settings& s) {
    const Metrics metrics = host.metrics();
    auto reg = [&](MetricType type, std::string_view name, std::string_view help,
                   std::uint32_t labels, std::string_view extra = {}) {
      return metrics.register_family(family(type, name, help, labels, extra, s.max_series));
    };
    const auto counter = MetricType::kCounter;
    const auto histogram = MetricType::kHistogram;

    TH_ASSIGN_OR_RETURN(Map conns, obj.map("conn_stats"));
    TH_ASSIGN_OR_RETURN(Metric opened, reg(counter, "network_tcp_connections_opened",
                                           "TCP connections established", s.labels));
    TH_TRY(metrics.bind(opened, conns,
                        key_binding<net_conn_stats>(s.labels).value<&net_conn_stats::opened>()));
    TH_ASSIGN_OR_RETURN(Metric closed, reg(counter, "network_tcp_connections_closed",
                                           "established TCP connections closed", s.labels));
    TH_TRY(metrics.bind(closed, conns,
                        key_binding<net_conn_stats>(s.labels).value<&net_conn_stats::closed>()));
    TH_ASSIGN_OR_RETURN(Metric sent, reg(counter, "network_tcp_bytes_sent",
                                         "bytes sent and acknowledged, counted when a connection "
                                         "closes",
                                         s.labels));
    TH_TRY(metrics.bind(
        sent, conns, key_binding<net_conn_stats>(s.labels).value<&net_conn_stats::bytes_sent>()));
    TH_ASSIGN_OR_RETURN(Metric received,
                        reg(counter, "network_tcp_bytes_received",
                            "bytes received, counted when a connection closes", s.labels));
    TH_TRY(metrics.bind(
        received, conns,
        key_binding<net_conn_stats>(s.labels).value<&net_conn_stats::bytes_received>()));

    TH_ASSIGN_OR_RETURN(Map fails, obj.map("fail_stats"));
    TH_ASSIGN_OR_RETURN(
        Metric failed,
        reg(counter, "network_tcp_connections_failed",
            "outbound TCP connections that never reached ESTABLISHED", s.labels, "reason"));
    TH_TRY(metrics.bind(
        failed, fails,
        key_binding<std::uint64_t>(s.labels).label<&net_key::extra>("reason", KeyKind::kErrno)));

    TH_ASSIGN_OR_RETURN(Map retrans, obj.map("retrans_stats"));
    TH_ASSIGN_OR_RETURN(
        Metric retransmits,
        reg(counter, "network_tcp_retransmits",
            "TCP segments retransmitted (kind: data, syn, synack)", s.labels, "kind"));
    TH_TRY(metrics.bind(retransmits, retrans,
                        key_binding<std::uint64_t>(s.labels)
                            .label<&net_key::extra>("kind", KeyKind::kEnum)
                            .enums({{TH_NET_RETRANS_DATA, "data"},
                                    {TH_NET_RETRANS_SYN, "syn"},
                                    {TH_NET_RETRANS_SYNACK, "synack"}})));

    // the handshake histograms live in conn_stats next to the counters (one map update per
    // state change); a label set with no observation yet has an all-zero histogram: skipped
    TH_ASSIGN_OR_RETURN(Metric connect_latency,
                        reg(histogram, "network_tcp_connect_latency_seconds",
                            "connect() to ESTABLISHED (log2 buckets)", s.labels));
    TH_TRY(
        metrics.bind(connect_latency, conns,
                     key_binding<net_conn_stats>(s.labels)
                         .log2_hist<&net_conn_stats::connect_slots, &net_conn_stats::connect_sum>()
                         .scale(1e-9)
                         .skip_zero()));
    TH_ASSIGN_OR_RETURN(
        Metric handshake,
        reg(histogram, "network_tcp_accept_handshake_seconds",
            "inbound handshake: SYN-ACK sent to final ACK received (log2 buckets)", s.labels));
    TH_TRY(metrics.bind(handshake, conns,
                        key_binding<net_conn_stats>(s.labels)
                            .log2_hist<&net_conn_stats::accept_slots, &net_conn_stats::accept_sum>()
                            .scale(1e-9)
                            .skip_zero()));
    if (s.rtt) {
      TH_ASSIGN_OR_RETURN(Map rtt_map, obj.map("rtt_hist"));
      TH_ASSIGN_OR_RETURN(Metric rtt, reg(histogram, "network_tcp_rtt_seconds",
                                          "smoothed RTT, sampled per socket at most every "
                                          "rtt_sample_interval_ms (log2 buckets)",
                                          s.rtt_labels));
      TH_TRY(metrics.bind(rtt, rtt_map,
                          key_binding<net_hist>(s.rtt_labels)
                              .log2_hist<&net_hist::slots, &net_hist::sum_ns>()
                              .scale(1e-9)));
      TH_TRY(unlabelled_counter(
          host, obj, "rtt_budget", "network_tcp_rtt_samples_skipped",
          "RTT samples due but not taken because a CPU had taken "
          "rtt_max_samples_per_s already",
          MapBinding<std::uint32_t, net_rtt_budget>().value<&net_rtt_budget::skipped>()));
    }

    return unlabelled_counter(host, obj, "untracked", "network_tcp_untracked_sockets",
                              "sockets not tracked because max_connections sockets (or "
                              "listeners) were tracked already; raise max_connections",
                              MapBinding<std::uint32_t, std::uint64_t>());
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // under mu_
  std::thread windows_;    // RTT sampling windows (start_rtt_windows)
};

}  // namespace tracehost::network

TRACEHOST_PLUGIN(tracehost::network::NetworkPlugin, "network", "1.0.0",
                 "TCP connections per process: connect/accept/close/failed events, bytes, "
                 "retransmits, connect latency, handshake and RTT histograms (tp_btf)");
