#include "host/sinks/prometheus_sink.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "host/config_util.hpp"
#include "host/event_bus.hpp"
#include "host/metrics.hpp"
#include "unit/host/data_plane_fixtures.hpp"

namespace tracehost::host {
namespace {

using tracehost::testing::bytes_of;
using tracehost::testing::sample_event;
using tracehost::testing::TestSchema;

th_metric_family family(const char* name, th_metric_type type, const char* const* labels,
                        std::size_t n) {
  th_metric_family f{};
  f.struct_size = sizeof(f);
  f.name = name;
  f.help = "the help";
  f.type = type;
  f.label_names = labels;
  f.label_count = n;
  return f;
}

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(PrometheusText, CountersGetTotalAndHistogramsBuckets) {
  MetricRegistry reg;
  const char* labels[] = {"syscall"};
  auto c = reg.register_family("syscall", family("syscall_calls", TH_METRIC_COUNTER, labels, 1));
  auto g = reg.register_family("syscall", family("queue_depth", TH_METRIC_GAUGE, nullptr, 0));
  auto hf = family("syscall_latency_seconds", TH_METRIC_HISTOGRAM, labels, 1);
  const double b[] = {0.001, 0.01};
  hf.buckets = b;
  hf.bucket_count = 2;
  auto h = reg.register_family("syscall", hf);
  ASSERT_TRUE(c.ok() && g.ok() && h.ok());
  std::vector<std::string_view> read = {"read"}, none;
  ASSERT_TRUE(reg.update(*c, read, MetricOp::kAdd, 42).ok());
  ASSERT_TRUE(reg.update(*g, none, MetricOp::kSet, 3).ok());
  ASSERT_TRUE(reg.update(*h, read, MetricOp::kObserve, 0.005).ok());
  std::string text = prometheus_text(reg.collect());
  EXPECT_TRUE(contains(text, "# HELP tracehost_syscall_calls_total the help\n")) << text;
  EXPECT_TRUE(contains(text, "# TYPE tracehost_syscall_calls_total counter\n")) << text;
  EXPECT_TRUE(contains(text, "tracehost_syscall_calls_total{syscall=\"read\"} 42\n")) << text;
  EXPECT_TRUE(contains(text, "# TYPE tracehost_queue_depth gauge\n")) << text;
  EXPECT_TRUE(contains(text, "tracehost_queue_depth 3\n")) << text;
  EXPECT_TRUE(contains(text, "# TYPE tracehost_syscall_latency_seconds histogram\n")) << text;
  EXPECT_TRUE(
      contains(text, "tracehost_syscall_latency_seconds_bucket{syscall=\"read\",le=\"0.001\"} 0\n"))
      << text;
  EXPECT_TRUE(
      contains(text, "tracehost_syscall_latency_seconds_bucket{syscall=\"read\",le=\"0.01\"} 1\n"))
      << text;
  EXPECT_TRUE(
      contains(text, "tracehost_syscall_latency_seconds_bucket{syscall=\"read\",le=\"+Inf\"} 1\n"))
      << text;
  EXPECT_TRUE(contains(text, "tracehost_syscall_latency_seconds_count{syscall=\"read\"} 1\n"))
      << text;
  EXPECT_TRUE(contains(text, "# TYPE tracehost_metric_series_folded_total counter\n")) << text;
}

TEST(PrometheusText, BusMetrics) {
  EventBus bus;
  TestSchema s("syscall.exec"), hidden("other.x");
  auto id = bus.register_topic("syscall", s.s);
  auto hid = bus.register_topic("other", hidden.s);
  ASSERT_TRUE(id.ok() && hid.ok());
  SubscribeOptions o;
  o.name = "json";
  ASSERT_TRUE(bus.subscribe(
                     "sink:json", "*", [](auto) {}, o)
                  .ok());
  auto e = sample_event();
  ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
  ASSERT_TRUE(bus.publish(*hid, bytes_of(e)).ok());
  bus.add_kernel_drops(*id, 3);
  ASSERT_TRUE(bus.drain());
  MetricsSnapshot snap;
  EventFilter only_syscall({"syscall.*"}, {});
  append_bus_metrics(bus.stats(), &only_syscall, snap);
  std::string text = prometheus_text(snap);
  EXPECT_TRUE(contains(text, "tracehost_events_published_total{topic=\"syscall.exec\"} 1\n"))
      << text;
  EXPECT_TRUE(contains(
      text, "tracehost_events_delivered_total{topic=\"syscall.exec\",subscriber=\"json\"} 1\n"))
      << text;
  EXPECT_TRUE(contains(text,
                       "tracehost_events_dropped_total{topic=\"syscall.exec\",subscriber=\"\","
                       "where=\"kernel\"} 3\n"))
      << text;
  EXPECT_TRUE(contains(text,
                       "tracehost_events_dropped_total{topic=\"syscall.exec\",subscriber=\"json\","
                       "where=\"bus\"} 0\n"))
      << text;
  EXPECT_FALSE(contains(text, "other.x")) << text;
}

TEST(PrometheusText, MutedTopics) {
  EventBus bus;
  TestSchema s("tcp.connect"), plain("tcp.other");
  auto id = bus.register_topic("network", s.s);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(bus.register_topic("network", plain.s).ok());
  ASSERT_TRUE(bus.add_demand_listener(*id, [](bool) {}).ok());
  auto muted_text = [&] {
    MetricsSnapshot snap;
    append_bus_metrics(bus.stats(), nullptr, snap);
    return prometheus_text(snap);
  };
  std::string text = muted_text();
  EXPECT_TRUE(contains(text, "# TYPE tracehost_events_topic_muted gauge\n")) << text;
  EXPECT_TRUE(contains(text, "tracehost_events_topic_muted{topic=\"tcp.connect\"} 1\n")) << text;
  // no listener: nothing is known to be muted
  EXPECT_TRUE(contains(text, "tracehost_events_topic_muted{topic=\"tcp.other\"} 0\n")) << text;
  ASSERT_TRUE(bus.subscribe("sink:json", "tcp.*", [](auto) {}).ok());
  text = muted_text();
  EXPECT_TRUE(contains(text, "tracehost_events_topic_muted{topic=\"tcp.connect\"} 0\n")) << text;
  // turned off by its plugin's config: not produced, subscribed or not
  auto other = bus.find_topic("tcp.other");
  ASSERT_TRUE(other.has_value());
  ASSERT_TRUE(bus.set_off(*other, "other = false").ok());
  text = muted_text();
  EXPECT_TRUE(contains(text, "tracehost_events_topic_muted{topic=\"tcp.other\"} 1\n")) << text;
}

// A port that is bound (and listening) by this test.
struct BusyPort {
  BusyPort() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd, 1), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~BusyPort() { ::close(fd); }
  int fd;
  int port;
};

std::string http_get(int port, const char* path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return {};
  }
  std::string req = std::string("GET ") + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

TEST(PrometheusSink, BusyPortIsAClearError) {
  BusyPort busy;
  EventBus bus;
  MetricRegistry reg;
  PrometheusSinkOptions o;
  o.listen = "127.0.0.1:" + std::to_string(busy.port);
  PrometheusSink sink("prometheus", o, bus, reg);
  auto st = sink.start();
  ASSERT_FALSE(st.ok());
  const std::string msg = st.error().describe();
  EXPECT_NE(msg.find(o.listen), std::string::npos) << msg;
  EXPECT_NE(msg.find("sinks.prometheus.listen"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Address already in use"), std::string::npos) << msg;
}

TEST(PrometheusSink, ServesMetricsOverHttp) {
  int port;
  {
    BusyPort probe;  // find a free port, then release it
    port = probe.port;
  }
  EventBus bus;
  MetricRegistry reg;
  TestSchema s;
  ASSERT_TRUE(bus.register_topic("p", s.s).ok());
  PrometheusSinkOptions o;
  o.listen = "127.0.0.1:" + std::to_string(port);
  PrometheusSink sink("prometheus", o, bus, reg);
  auto st = sink.start();
  ASSERT_TRUE(st.ok()) << st.error().describe();
  std::string body = http_get(port, "/metrics");
  EXPECT_NE(body.find("tracehost_events_published_total{topic=\"test.event\"} 0"),
            std::string::npos)
      << body;
  sink.stop();
  EXPECT_EQ(http_get(port, "/metrics"), "");
}

TEST(PrometheusSinkOptions, RefusesWhereAndBadListen) {
  auto t = parse_toml_string(
      "[sinks.prometheus]\nlisten = \"localhost\"\n[sinks.p2]\nwhere = { a = 1 }\n", "t.toml");
  ASSERT_TRUE(t.ok());
  auto bad = prometheus_sink_options(*(*t)["sinks"]["prometheus"].as_table(), "t.toml",
                                     "sinks.prometheus");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().describe().find("t.toml:2:"), std::string::npos) << bad.error().describe();
  auto where = prometheus_sink_options(*(*t)["sinks"]["p2"].as_table(), "t.toml", "sinks.p2");
  ASSERT_FALSE(where.ok());
  EXPECT_NE(where.error().describe().find("remove 'where'"), std::string::npos);
}

}  // namespace
}  // namespace tracehost::host

namespace tracehost::host {
namespace {

TEST(PrometheusSink, BusCountersReplaceACollectorsFamilyOfTheSameName) {
  EventBus bus;
  MetricRegistry reg;
  TestSchema s;
  ASSERT_TRUE(bus.register_topic("p", s.s).ok());
  reg.add_collector("host", [](MetricsSnapshot& out) {
    FamilySnapshot f;
    f.name = "tracehost_events_published";
    f.type = MetricType::kCounter;
    f.label_names = {"whatever"};
    f.series.push_back({{"x"}, 1, 0, 0, {}});
    out.families.push_back(f);
    out.families.push_back(f);  // and a plain duplicate: exported once
  });
  PrometheusSink sink("prometheus", PrometheusSinkOptions{}, bus, reg);
  auto families = sink.collect();
  int n = 0;
  for (const auto& f : families) {
    if (f.name != "tracehost_events_published_total") continue;
    ++n;
    ASSERT_EQ(f.metric.size(), 1u);
    EXPECT_EQ(f.metric[0].label[0].name, "topic");
  }
  EXPECT_EQ(n, 1);
  std::string text = prometheus_text(
      MetricsSnapshot{{FamilySnapshot{"tracehost_a", "h", MetricType::kGauge, "o", {}, {}},
                       FamilySnapshot{"tracehost_a", "h", MetricType::kGauge, "o", {}, {}}}});
  EXPECT_EQ(text.find("# TYPE tracehost_a gauge"), text.rfind("# TYPE tracehost_a gauge"));
}

}  // namespace
}  // namespace tracehost::host
