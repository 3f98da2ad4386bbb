#include "host/metrics.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tracehost::host {
namespace {

th_metric_family family(const char* name, th_metric_type type,
                        const std::vector<const char*>& labels, std::uint32_t max_series = 0) {
  // The family points at its label names: keep them alive for the whole test program.
  static std::deque<std::vector<const char*>> store;
  const auto& kept = store.emplace_back(labels);
  th_metric_family f{};
  f.struct_size = sizeof(f);
  f.name = name;
  f.help = "help text";
  f.type = type;
  f.label_names = kept.empty() ? nullptr : kept.data();
  f.label_count = labels.size();
  f.max_series = max_series;
  return f;
}

const SeriesSnapshot* series(const FamilySnapshot& f, const std::vector<std::string>& labels) {
  for (const auto& s : f.series) {
    if (s.label_values == labels) return &s;
  }
  return nullptr;
}

// A map reader over an in-memory table, standing in for a BPF map.
class FakeMap final : public MapReader {
 public:
  FakeMap(std::uint32_t ks, std::uint32_t vs) : ks_(ks), vs_(vs) {}
  std::uint32_t key_size() const override { return ks_; }
  std::uint32_t value_size() const override { return vs_; }
  std::string name() const override { return "fake/map"; }
  Status for_each(const EntryFn& fn) override {
    if (fail) return Error(ErrorKind::kMap, "boom");
    for (const auto& [k, v] : entries) fn(k, v);
    return ok();
  }
  template <typename K, typename V>
  void put(const K& k, const V& v) {
    std::vector<std::byte> kb(sizeof(K)), vb(sizeof(V));
    std::memcpy(kb.data(), &k, sizeof(K));
    std::memcpy(vb.data(), &v, sizeof(V));
    entries[kb] = vb;
  }
  std::map<std::vector<std::byte>, std::vector<std::byte>> entries;
  bool fail = false;

 private:
  std::uint32_t ks_, vs_;
};

struct SysKey {
  std::uint32_t nr;
  std::int32_t err;
};
struct LatValue {
  std::uint64_t slots[4];
  std::uint64_t sum;
};

const th_enum_entry kNames[] = {{0, "read"}, {1, "write"}};

th_key_label key_label(const char* label, th_key_field_kind kind, std::uint32_t off,
                       std::uint32_t size) {
  th_key_label l{};
  l.struct_size = sizeof(l);
  l.label = label;
  l.kind = kind;
  l.offset = off;
  l.size = size;
  if (kind == TH_KEY_ENUM) {
    l.enum_entries = kNames;
    l.enum_count = 2;
  }
  return l;
}

TEST(MetricRegistry, RegistersWithPrefixAndRefusesDuplicates) {
  MetricRegistry reg;
  auto calls = family("syscall_calls", TH_METRIC_COUNTER, {"syscall"});
  auto id = reg.register_family("syscall", calls);
  ASSERT_TRUE(id.ok()) << id.error().describe();
  EXPECT_EQ(reg.find("syscall_calls"), *id);
  EXPECT_EQ(reg.find("tracehost_syscall_calls"), *id);
  auto dup = reg.register_family("other", calls);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message().find("'syscall'"), std::string::npos) << dup.error().message();

  // a counter named with _total is stored without it (the exposition adds it once)
  auto t = family("bytes_total", TH_METRIC_COUNTER, {});
  ASSERT_TRUE(reg.register_family("x", t).ok());
  auto snap = reg.collect();
  EXPECT_NE(snap.find("tracehost_bytes"), nullptr);
  EXPECT_NE(snap.find("tracehost_syscall_calls"), nullptr);
}

TEST(MetricRegistry, RefusesBadNamesAndLabels) {
  MetricRegistry reg;
  EXPECT_FALSE(reg.register_family("x", family("bad-name", TH_METRIC_GAUGE, {})).ok());
  EXPECT_FALSE(reg.register_family("x", family("g", TH_METRIC_GAUGE, {"__x"})).ok());
  EXPECT_FALSE(reg.register_family("x", family("g", TH_METRIC_GAUGE, {"a", "a"})).ok());
  EXPECT_FALSE(reg.register_family("x", family("h", TH_METRIC_HISTOGRAM, {"le"})).ok());
  auto h = family("h2", TH_METRIC_HISTOGRAM, {});
  const double desc[] = {1, 0.5};
  h.buckets = desc;
  h.bucket_count = 2;
  EXPECT_FALSE(reg.register_family("x", h).ok());
  auto old = family("g", TH_METRIC_GAUGE, {});
  old.struct_size = 8;  // shorter than the v1.0 struct
  EXPECT_EQ(reg.register_family("x", old).error().kind(), ErrorKind::kAbi);
}

TEST(MetricRegistry, FedCounterGaugeHistogram) {
  MetricRegistry reg;
  auto c = reg.register_family("p", family("c", TH_METRIC_COUNTER, {"k"}));
  auto g = reg.register_family("p", family("g", TH_METRIC_GAUGE, {}));
  auto hf = family("h", TH_METRIC_HISTOGRAM, {"k"});
  const double bounds[] = {0.001, 0.01, 0.1};
  hf.buckets = bounds;
  hf.bucket_count = 3;
  auto h = reg.register_family("p", hf);
  ASSERT_TRUE(c.ok() && g.ok() && h.ok());
  std::vector<std::string_view> a = {"a"}, none;
  ASSERT_TRUE(reg.update(*c, a, MetricOp::kAdd, 2).ok());
  ASSERT_TRUE(reg.update(*c, a, MetricOp::kAdd, 3).ok());
  ASSERT_TRUE(reg.update(*g, none, MetricOp::kSet, 7).ok());
  ASSERT_TRUE(reg.update(*g, none, MetricOp::kAdd, -2).ok());
  for (double v : {0.0005, 0.005, 0.005, 0.05, 5.0}) {
    ASSERT_TRUE(reg.update(*h, a, MetricOp::kObserve, v).ok());
  }
  auto snap = reg.collect();
  EXPECT_EQ(series(*snap.find("tracehost_c"), {"a"})->value, 5);
  EXPECT_EQ(series(*snap.find("tracehost_g"), {})->value, 5);
  const auto* hs = series(*snap.find("tracehost_h"), {"a"});
  ASSERT_NE(hs, nullptr);
  EXPECT_EQ(hs->count, 5u);
  EXPECT_NEAR(hs->sum, 5.0605, 1e-12);
  ASSERT_EQ(hs->buckets.size(), 4u);
  EXPECT_EQ(hs->buckets[0].cumulative_count, 1u);
  EXPECT_EQ(hs->buckets[1].cumulative_count, 3u);
  EXPECT_EQ(hs->buckets[2].cumulative_count, 4u);
  EXPECT_TRUE(std::isinf(hs->buckets[3].upper_bound));
  EXPECT_EQ(hs->buckets[3].cumulative_count, 5u);
}

// A "top N" gauge whose members change: REMOVE drops a series (and frees its slot under
// max_series); removing a series that is not there is fine; counters refuse it.
TEST(MetricRegistry, RemoveDropsAGaugeSeries) {
  MetricRegistry reg;
  auto gf = family("top", TH_METRIC_GAUGE, {"function"});
  gf.max_series = 2;
  auto g = reg.register_family("p", gf);
  auto c = reg.register_family("p", family("c", TH_METRIC_COUNTER, {"k"}));
  ASSERT_TRUE(g.ok() && c.ok());
  std::vector<std::string_view> a = {"a"}, b = {"b"}, d = {"d"};
  ASSERT_TRUE(reg.update(*g, a, MetricOp::kSet, 1).ok());
  ASSERT_TRUE(reg.update(*g, b, MetricOp::kSet, 2).ok());
  ASSERT_TRUE(reg.update(*g, a, MetricOp::kRemove, 0).ok());
  ASSERT_TRUE(reg.update(*g, a, MetricOp::kRemove, 0).ok());  // already gone: no error
  ASSERT_TRUE(reg.update(*g, d, MetricOp::kSet, 3).ok());     // takes the freed slot, no fold
  auto snap = reg.collect();
  const auto* top = snap.find("tracehost_top");
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(series(*top, {"a"}), nullptr);
  ASSERT_NE(series(*top, {"b"}), nullptr);
  ASSERT_NE(series(*top, {"d"}), nullptr);
  EXPECT_EQ(series(*top, {"other"}), nullptr);
  EXPECT_FALSE(reg.update(*c, a, MetricOp::kRemove, 0).ok());
}

TEST(MetricRegistry, LabelValuesAreMadeValidUtf8) {
  MetricRegistry reg;
  auto c = reg.register_family("p", family("c", TH_METRIC_COUNTER, {"comm"}));
  ASSERT_TRUE(c.ok());
  std::vector<std::string_view> bad = {"x\xff"};
  ASSERT_TRUE(reg.update(*c, bad, MetricOp::kAdd, 1).ok());
  EXPECT_NE(series(*reg.collect().find("tracehost_c"), {"x\xef\xbf\xbd"}), nullptr);
}

TEST(MetricRegistry, UpdateErrors) {
  MetricRegistry reg;
  auto c = reg.register_family("p", family("c", TH_METRIC_COUNTER, {"k"}));
  auto h = reg.register_family("p", family("h", TH_METRIC_HISTOGRAM, {}));
  ASSERT_TRUE(c.ok() && h.ok());
  std::vector<std::string_view> one = {"x"}, two = {"x", "y"}, none;
  EXPECT_FALSE(reg.update(*c, one, MetricOp::kAdd, -1).ok());
  EXPECT_FALSE(reg.update(*c, one, MetricOp::kSet, 1).ok());
  EXPECT_FALSE(reg.update(*c, two, MetricOp::kAdd, 1).ok());
  EXPECT_FALSE(reg.update(*h, none, MetricOp::kAdd, 1).ok());
  EXPECT_EQ(reg.update(12345, none, MetricOp::kAdd, 1).error().kind(), ErrorKind::kNotFound);
}

TEST(MetricRegistry, CardinalityCapFoldsIntoOtherAndCounts) {
  MetricRegistry reg;
  auto c = reg.register_family("p", family("c", TH_METRIC_COUNTER, {"a", "b"}, 3));
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 5; ++i) {
    std::string v = std::to_string(i);
    std::vector<std::string_view> labels = {v, "x"};
    ASSERT_TRUE(reg.update(*c, labels, MetricOp::kAdd, 1).ok());
  }
  // an existing series keeps counting after the cap
  std::vector<std::string_view> first = {"0", "x"};
  ASSERT_TRUE(reg.update(*c, first, MetricOp::kAdd, 10).ok());
  auto snap = reg.collect();
  const auto& f = *snap.find("tracehost_c");
  ASSERT_EQ(f.series.size(), 4u);
  EXPECT_EQ(series(f, {"0", "x"})->value, 11);
  EXPECT_EQ(series(f, {"other", "other"})->value, 2);
  const auto* folded = snap.find("tracehost_metric_series_folded");
  ASSERT_NE(folded, nullptr);
  EXPECT_EQ(series(*folded, {"tracehost_c"})->value, 2);
}

TEST(MetricRegistry, DefaultCapIsTheRegistryDefault) {
  MetricRegistry reg(2);
  auto c = reg.register_family("p", family("c", TH_METRIC_COUNTER, {"a"}));
  ASSERT_TRUE(c.ok());
  for (const char* v : {"1", "2", "3"}) {
    std::vector<std::string_view> l = {v};
    ASSERT_TRUE(reg.update(*c, l, MetricOp::kAdd, 1).ok());
  }
  EXPECT_EQ(reg.collect().find("tracehost_c")->series.size(), 3u);  // 2 + other
}

TEST(Log2Buckets, SlotIUpperBoundIsTwoToTheIPlusOneTimesScaleAndLastSlotIsOpenEnded) {
  // BPF code clamps values past the last slot into it, so its bound is +Inf, not 2^n: a 10 s
  // syscall must not show up as le="16e-9".
  std::uint64_t slots[] = {1, 2, 0, 3};
  auto b = log2_slots_to_buckets(slots, 1e-9);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_DOUBLE_EQ(b[0].upper_bound, 2e-9);
  EXPECT_DOUBLE_EQ(b[1].upper_bound, 4e-9);
  EXPECT_DOUBLE_EQ(b[2].upper_bound, 8e-9);
  EXPECT_TRUE(std::isinf(b[3].upper_bound));
  std::vector<std::uint64_t> cum;
  for (const auto& x : b) cum.push_back(x.cumulative_count);
  EXPECT_EQ(cum, (std::vector<std::uint64_t>{1, 3, 3, 6}));
}

TEST(MetricRegistry, CounterBoundToMapWithEnumAndErrnoLabels) {
  MetricRegistry reg;
  auto id =
      reg.register_family("syscall", family("calls", TH_METRIC_COUNTER, {"syscall", "errno"}));
  ASSERT_TRUE(id.ok());
  auto map = std::make_unique<FakeMap>(sizeof(SysKey), 16);
  struct Val {
    std::uint64_t count;
    std::uint64_t other;
  };
  map->put(SysKey{0, -2}, Val{5, 0});
  map->put(SysKey{1, 0}, Val{7, 0});
  map->put(SysKey{99, 0}, Val{0, 0});  // skipped: zero
  th_key_label labels[] = {key_label("syscall", TH_KEY_ENUM, 0, 4),
                           key_label("errno", TH_KEY_ERRNO, 4, 4)};
  th_map_binding b{};
  b.struct_size = sizeof(b);
  b.labels = labels;
  b.label_count = 2;
  b.value_kind = TH_BIND_VALUE_U64;
  b.value_offset = 0;
  b.skip_zero = 1;
  auto* raw = map.get();
  ASSERT_TRUE(reg.bind_map(*id, "syscall", std::move(map), b).ok());
  auto snap = reg.collect();
  const auto& f = *snap.find("tracehost_calls");
  ASSERT_EQ(f.series.size(), 2u);
  EXPECT_EQ(series(f, {"read", "ENOENT"})->value, 5);
  EXPECT_EQ(series(f, {"write", "0"})->value, 7);
  // values are read at collect time
  raw->put(SysKey{0, -2}, Val{9, 0});
  EXPECT_EQ(series(*reg.collect().find("tracehost_calls"), {"read", "ENOENT"})->value, 9);
  // a failing read leaves the binding out of that snapshot, it does not fail collect()
  raw->fail = true;
  EXPECT_TRUE(reg.collect().find("tracehost_calls")->series.empty());
}

// IP labels: 4 bytes render as IPv4, 16 as IPv6, and 16 holding an IPv4-mapped address
// (::ffff:a.b.c.d, how the network plugin stores both families in one key) as plain IPv4.
TEST(MetricRegistry, IpLabelsRenderBothFamilies) {
  MetricRegistry reg;
  auto id = reg.register_family("network", family("conns", TH_METRIC_COUNTER, {"remote_addr"}));
  ASSERT_TRUE(id.ok());
  auto map = std::make_unique<FakeMap>(16, 8);
  using Addr = std::array<std::uint8_t, 16>;
  map->put(Addr{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 7}, std::uint64_t{3});
  map->put(Addr{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, std::uint64_t{4});
  map->put(Addr{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, std::uint64_t{5});
  th_key_label labels[] = {key_label("remote_addr", TH_KEY_IP, 0, 16)};
  th_map_binding b{};
  b.struct_size = sizeof(b);
  b.labels = labels;
  b.label_count = 1;
  b.value_kind = TH_BIND_VALUE_U64;
  ASSERT_TRUE(reg.bind_map(*id, "network", std::move(map), b).ok());
  auto snap = reg.collect();
  const auto& f = *snap.find("tracehost_conns");
  ASSERT_NE(series(f, {"10.0.0.7"}), nullptr);
  EXPECT_EQ(series(f, {"10.0.0.7"})->value, 3);
  ASSERT_NE(series(f, {"2001:db8::1"}), nullptr);
  ASSERT_NE(series(f, {"::1"}), nullptr);
}

TEST(MetricRegistry, Log2HistogramBinding) {
  MetricRegistry reg;
  auto id =
      reg.register_family("syscall", family("latency_seconds", TH_METRIC_HISTOGRAM, {"syscall"}));
  ASSERT_TRUE(id.ok());
  auto map = std::make_unique<FakeMap>(4, sizeof(LatValue));
  map->put(std::uint32_t{0}, LatValue{{1, 2, 0, 3}, 40});
  map->put(std::uint32_t{1}, LatValue{{0, 0, 0, 0}, 0});  // skip_zero
  th_key_label labels[] = {key_label("syscall", TH_KEY_ENUM, 0, 4)};
  th_map_binding b{};
  b.struct_size = sizeof(b);
  b.labels = labels;
  b.label_count = 1;
  b.value_kind = TH_BIND_VALUE_LOG2_HIST;
  b.value_offset = 0;
  b.slot_count = 4;
  b.sum_offset = offsetof(LatValue, sum);
  b.scale = 1e-9;
  b.skip_zero = 1;
  ASSERT_TRUE(reg.bind_map(*id, "syscall", std::move(map), b).ok());
  auto snap = reg.collect();
  const auto& f = *snap.find("tracehost_latency_seconds");
  ASSERT_EQ(f.series.size(), 1u);
  const auto& s = f.series[0];
  EXPECT_EQ(s.label_values, std::vector<std::string>{"read"});
  EXPECT_EQ(s.count, 6u);
  EXPECT_DOUBLE_EQ(s.sum, 40e-9);
  ASSERT_EQ(s.buckets.size(), 4u);  // 3 bounded slots + the open-ended last slot
  EXPECT_DOUBLE_EQ(s.buckets[2].upper_bound, 8e-9);
  EXPECT_EQ(s.buckets[2].cumulative_count, 3u);
  EXPECT_TRUE(std::isinf(s.buckets[3].upper_bound));
  EXPECT_EQ(s.buckets[3].cumulative_count, 6u);
}

TEST(MetricRegistry, MapBoundSeriesAreCappedToo) {
  MetricRegistry reg;
  auto id = reg.register_family("p", family("c", TH_METRIC_COUNTER, {"k"}, 2));
  ASSERT_TRUE(id.ok());
  auto map = std::make_unique<FakeMap>(4, 8);
  for (std::uint32_t k = 0; k < 5; ++k) map->put(k, std::uint64_t{k + 1});
  th_key_label labels[] = {key_label("k", TH_KEY_UINT, 0, 4)};
  th_map_binding b{};
  b.struct_size = sizeof(b);
  b.labels = labels;
  b.label_count = 1;
  b.value_kind = TH_BIND_VALUE_U64;
  ASSERT_TRUE(reg.bind_map(*id, "p", std::move(map), b).ok());
  auto snap = reg.collect();
  const auto& f = *snap.find("tracehost_c");
  ASSERT_EQ(f.series.size(), 3u);
  EXPECT_EQ(series(f, {"other"})->value, 3 + 4 + 5);
  EXPECT_EQ(series(*snap.find("tracehost_metric_series_folded"), {"tracehost_c"})->value, 3);
}

TEST(MetricRegistry, BindingIsCheckedAgainstFamilyAndMap) {
  MetricRegistry reg;
  auto c = reg.register_family("p", family("c", TH_METRIC_COUNTER, {"k", "j"}));
  auto h = reg.register_family("p", family("h", TH_METRIC_HISTOGRAM, {}));
  ASSERT_TRUE(c.ok() && h.ok());
  th_key_label k = key_label("k", TH_KEY_UINT, 0, 4);
  th_key_label j = key_label("j", TH_KEY_UINT, 4, 4);
  th_key_label nope = key_label("nope", TH_KEY_UINT, 0, 4);
  th_map_binding b{};
  b.struct_size = sizeof(b);
  b.value_kind = TH_BIND_VALUE_U64;
  auto bind = [&](MetricId id, std::vector<th_key_label> labels, std::uint32_t ks,
                  std::uint32_t vs) {
    b.labels = labels.data();
    b.label_count = labels.size();
    return reg.bind_map(id, "p", std::make_unique<FakeMap>(ks, vs), b);
  };
  EXPECT_TRUE(bind(*c, {k, j}, 8, 8).ok());
  auto missing = bind(*c, {k}, 8, 8);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("'j'"), std::string::npos);
  EXPECT_FALSE(bind(*c, {k, nope}, 8, 8).ok());
  EXPECT_FALSE(bind(*c, {k, j}, 6, 8).ok());  // j beyond the key
  EXPECT_FALSE(bind(*c, {k, j}, 8, 4).ok());  // u64 beyond the value
  EXPECT_FALSE(bind(*h, {}, 8, 8).ok());      // histogram needs LOG2_HIST
  b.value_kind = TH_BIND_VALUE_LOG2_HIST;
  b.slot_count = 4;
  b.sum_offset = 32;
  EXPECT_FALSE(bind(*h, {}, 4, 32).ok());  // sum beyond the value
  EXPECT_TRUE(bind(*h, {}, 4, 40).ok());
  EXPECT_FALSE(bind(*c, {k, j}, 8, 40).ok());  // LOG2_HIST into a counter
}

TEST(MetricRegistry, RemoveOwnerAndCollectors) {
  MetricRegistry reg;
  auto a = reg.register_family("pa", family("a", TH_METRIC_GAUGE, {}));
  auto b = reg.register_family("pb", family("b", TH_METRIC_COUNTER, {"k"}));
  ASSERT_TRUE(a.ok() && b.ok());
  // pa binds a map to pb's family: removing pa must remove that binding too
  auto map = std::make_unique<FakeMap>(4, 8);
  map->put(std::uint32_t{1}, std::uint64_t{3});
  th_key_label labels[] = {key_label("k", TH_KEY_UINT, 0, 4)};
  th_map_binding bind{};
  bind.struct_size = sizeof(bind);
  bind.labels = labels;
  bind.label_count = 1;
  bind.value_kind = TH_BIND_VALUE_U64;
  ASSERT_TRUE(reg.bind_map(*b, "pa", std::move(map), bind).ok());
  reg.add_collector("pa", [](MetricsSnapshot& out) {
    FamilySnapshot f;
    f.name = "tracehost_self_rss_bytes";
    f.type = MetricType::kGauge;
    f.series.push_back({{}, 1234, 0, 0, {}});
    out.families.push_back(std::move(f));
  });
  auto snap = reg.collect();
  EXPECT_NE(snap.find("tracehost_self_rss_bytes"), nullptr);
  EXPECT_EQ(snap.find("tracehost_b")->series.size(), 1u);
  reg.remove_owner("pa");
  snap = reg.collect();
  EXPECT_EQ(snap.find("tracehost_a"), nullptr);
  EXPECT_EQ(snap.find("tracehost_self_rss_bytes"), nullptr);
  ASSERT_NE(snap.find("tracehost_b"), nullptr);
  EXPECT_TRUE(snap.find("tracehost_b")->series.empty());
  EXPECT_FALSE(reg.find("a").has_value());
}

}  // namespace
}  // namespace tracehost::host
