#include "host/sinks/console_sink.hpp"

#include <cstdio>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

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
  f.help = "h";
  f.type = type;
  f.label_names = labels;
  f.label_count = n;
  return f;
}

class ConsoleSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* labels[] = {"syscall"};
    calls_ =
        *reg_.register_family("syscall", family("syscall_calls", TH_METRIC_COUNTER, labels, 1));
    auto hf = family("syscall_latency_seconds", TH_METRIC_HISTOGRAM, labels, 1);
    const double b[] = {1e-6, 1e-3, 1};
    hf.buckets = b;
    hf.bucket_count = 3;
    lat_ = *reg_.register_family("syscall", hf);
    auto idle = *reg_.register_family("syscall", family("idle", TH_METRIC_GAUGE, labels, 1));
    std::vector<std::string_view> zero = {"none"};
    ASSERT_TRUE(reg_.update(idle, zero, MetricOp::kSet, 0).ok());
    const char* names[] = {"read", "write", "openat", "close", "mmap", "futex", "ioctl"};
    // counts 10, 20, …, 70: futex(60) and ioctl(70) lead; latency is led by read
    for (int i = 0; i < 7; ++i) {
      std::vector<std::string_view> l = {names[i]};
      ASSERT_TRUE(reg_.update(calls_, l, MetricOp::kAdd, 10.0 * (i + 1)).ok());
      ASSERT_TRUE(reg_.update(lat_, l, MetricOp::kObserve, i == 0 ? 0.5 : 1e-5).ok());
    }
  }
  EventBus bus_;
  MetricRegistry reg_;
  MetricId calls_ = 0, lat_ = 0;
};

TEST_F(ConsoleSinkTest, SummaryShowsTopicsAndTopSeries) {
  TestSchema s("syscall.exec");
  auto id = bus_.register_topic("syscall", s.s);
  ASSERT_TRUE(id.ok());
  ConsoleSinkOptions o;
  o.top = 3;
  o.filter = EventFilter({"syscall.*"}, {{"comm", "nginx"}});
  ConsoleSink sink("console", o, bus_, reg_, nullptr);
  ASSERT_TRUE(sink.start().ok());
  for (int i = 0; i < 5; ++i) {
    auto e = sample_event();
    if (i == 4) std::strcpy(e.comm, "curl");
    ASSERT_TRUE(bus_.publish(*id, bytes_of(e)).ok());
  }
  bus_.add_kernel_drops(*id, 2);
  ASSERT_TRUE(bus_.drain());
  std::string text = sink.render(false);
  std::istringstream lines(text);
  std::string line, events_row, calls_head;
  std::vector<std::string> rows;
  for (; std::getline(lines, line);) {
    EXPECT_LE(line.size(), 100u) << line;
    rows.push_back(line);
  }
  auto find = [&](const std::string& needle) -> int {
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].find(needle) != std::string::npos) return static_cast<int>(i);
    }
    return -1;
  };
  ASSERT_GE(find("EVENTS"), 0) << text;
  int exec = find("  syscall.exec");
  ASSERT_GE(exec, 0) << text;
  // total 4 (the curl event fails `where`), kernel drops 2, bus drops 0
  std::istringstream cols(rows[static_cast<std::size_t>(exec)]);
  std::string name, rate, total, kernel, busd;
  cols >> name >> rate >> total >> kernel >> busd;
  EXPECT_EQ(total, "4") << text;
  EXPECT_EQ(kernel, "2") << text;
  EXPECT_EQ(busd, "0") << text;

  int head = find("tracehost_syscall_calls - top 3 of 7 by count");
  ASSERT_GE(head, 0) << text;
  EXPECT_NE(rows[static_cast<std::size_t>(head) + 1].find("syscall=ioctl"), std::string::npos)
      << text;
  EXPECT_NE(rows[static_cast<std::size_t>(head) + 2].find("syscall=futex"), std::string::npos)
      << text;
  EXPECT_NE(rows[static_cast<std::size_t>(head) + 3].find("syscall=mmap"), std::string::npos)
      << text;
  EXPECT_EQ(find("syscall=read   "), find("syscall=read"));  // read only under latency
  EXPECT_EQ(find("tracehost_idle"), -1) << text;             // all-zero families are left out
  EXPECT_EQ(find("tracehost_events_"), -1) << text;          // the EVENTS table has those
  int lat = find("tracehost_syscall_latency_seconds - top 3 of 7 by total time");
  ASSERT_GE(lat, 0) << text;
  const std::string& first = rows[static_cast<std::size_t>(lat) + 1];
  EXPECT_NE(first.find("syscall=read"), std::string::npos) << text;
  EXPECT_NE(first.find("500.00ms"), std::string::npos) << text;  // total and mean of one 0.5s call
  sink.stop();
}

// Without `topics` the console only watches: a topic whose producer follows demand stays off and
// is listed as such; with `topics` the console asks for it like any sink.
TEST_F(ConsoleSinkTest, WatchesWithoutAskingUnlessGivenTopics) {
  TestSchema s("tcp.connect");
  auto id = bus_.register_topic("network", s.s);
  ASSERT_TRUE(id.ok());
  std::vector<bool> heard;
  ASSERT_TRUE(bus_.add_demand_listener(*id, [&](bool w) { heard.push_back(w); }).ok());
  {
    ConsoleSink watcher("console", ConsoleSinkOptions{}, bus_, reg_, nullptr);
    ASSERT_TRUE(watcher.start().ok());
    EXPECT_EQ(heard, std::vector<bool>{false});
    const std::string text = watcher.render(false);
    EXPECT_NE(text.find("tcp.connect"), std::string::npos) << text;
    EXPECT_NE(text.find("off: no sink or plugin subscribes"), std::string::npos) << text;
    watcher.stop();
  }
  toml::table t = toml::parse("topics = [\"tcp.*\"]");
  auto o = console_sink_options(t, "test.toml", "sinks.console");
  ASSERT_TRUE(o.ok()) << o.error().describe();
  EXPECT_TRUE(o->asks_for_topics);
  ConsoleSink asker("console", *o, bus_, reg_, nullptr);
  ASSERT_TRUE(asker.start().ok());
  EXPECT_EQ(heard, (std::vector<bool>{false, true}));
  const std::string text = asker.render(false);
  EXPECT_EQ(text.find("off: no sink"), std::string::npos) << text;
  asker.stop();
  EXPECT_EQ(heard, (std::vector<bool>{false, true, false}));
}

// A topic its plugin's config turned off shows the plugin's reason, not a row of zeros (nor the
// "nobody subscribes" of a muted topic, even with a demand listener and no subscriber).
TEST_F(ConsoleSinkTest, ShowsWhyATopicIsOff) {
  TestSchema open("syscall.open"), exec("syscall.exec");
  auto o = bus_.register_topic("syscall", open.s);
  auto x = bus_.register_topic("syscall", exec.s);
  ASSERT_TRUE(o.ok() && x.ok());
  ASSERT_TRUE(bus_.add_demand_listener(*o, [](bool) {}).ok());
  ASSERT_TRUE(bus_.set_off(*o, "open = false").ok());
  ConsoleSink sink("console", ConsoleSinkOptions{}, bus_, reg_, nullptr);
  ASSERT_TRUE(sink.start().ok());
  const std::string text = sink.render(false);
  sink.stop();
  const auto row = [&](std::string_view topic) {
    const auto at = text.find(std::string("  ") + std::string(topic));
    return at == std::string::npos ? std::string() : text.substr(at, text.find('\n', at) - at);
  };
  EXPECT_NE(row("syscall.open").find("off: open = false"), std::string::npos) << text;
  EXPECT_EQ(text.find("off: no sink"), std::string::npos) << text;
  EXPECT_EQ(row("syscall.exec").find("off:"), std::string::npos) << text;
}

// "_ratio" gauges (0..1 by Prometheus convention) read as percentages.
TEST_F(ConsoleSinkTest, RatioGaugesShowAsPercent) {
  const char* labels[] = {"function"};
  auto top = reg_.register_family("cpu_profile",
                                  family("function_self_ratio", TH_METRIC_GAUGE, labels, 1));
  ASSERT_TRUE(top.ok());
  std::vector<std::string_view> l = {"burn_hot"};
  ASSERT_TRUE(reg_.update(*top, l, MetricOp::kSet, 0.7512).ok());
  ConsoleSinkOptions o;
  o.metrics = {"function_self_ratio"};
  ConsoleSink sink("console", o, bus_, reg_, nullptr);
  std::string text = sink.render(false);
  EXPECT_NE(text.find("75.1%"), std::string::npos) << text;
}

TEST_F(ConsoleSinkTest, RatesFollowTheInterval) {
  ConsoleSinkOptions o;
  o.metrics = {"syscall_calls"};
  ConsoleSink sink("console", o, bus_, reg_, nullptr);
  (void)sink.render(false);
  std::vector<std::string_view> l = {"ioctl"};
  ASSERT_TRUE(reg_.update(calls_, l, MetricOp::kAdd, 1000).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string text = sink.render(false);
  EXPECT_EQ(text.find("latency"), std::string::npos) << text;  // metrics glob
  auto pos = text.find("syscall=ioctl");
  ASSERT_NE(pos, std::string::npos) << text;
  std::istringstream row(text.substr(pos, text.find('\n', pos) - pos));
  std::string label;
  double rate;
  std::string total;
  row >> label >> rate >> total;
  EXPECT_GT(rate, 1000.0);  // ~1000 per 0.1 s
  EXPECT_LT(rate, 20000.0);
  EXPECT_EQ(total, "1070");
}

TEST_F(ConsoleSinkTest, WritesPeriodicallyAndAFinalSummary) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  ConsoleSinkOptions o;
  o.interval_s = 0.1;
  ConsoleSink sink("console", o, bus_, reg_, f);
  ASSERT_TRUE(sink.start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  sink.stop();
  std::rewind(f);
  std::string all;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) all.append(buf, n);
  std::fclose(f);
  std::size_t periodic = 0;
  for (std::size_t p = 0; (p = all.find("== tracehost |", p)) != std::string::npos; ++p) ++periodic;
  EXPECT_GE(periodic, 2u) << all;
  EXPECT_NE(all.find("== tracehost final summary"), std::string::npos) << all;
  EXPECT_EQ(all.find('\x1b'), std::string::npos);  // not a TTY: no escape codes
}

}  // namespace
}  // namespace tracehost::host
