// The SDK on its own, against a fake services table: builders produce the C views the host
// reads, typed calls pass the right sizes, the subscription trampoline and the export wrappers
// keep exceptions on the plugin's side. Needs no privileges.
#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tracehost/sdk.hpp"

namespace th = tracehost;

namespace {

// ---- a fake host ------------------------------------------------------------------------------

struct FakeHost {
  th_host_api api{};
  std::vector<std::pair<int, std::string>> logs;
  std::map<std::string, std::int64_t> ints;
  std::map<std::string, std::vector<std::string>> lists;
  std::size_t last_key_size = 0;
  std::size_t last_value_size = 0;
  std::uint32_t last_flags = 0;
  th_event_batch_fn sub_fn = nullptr;
  void* sub_user = nullptr;
  std::vector<th_subscription_id> unsubscribed;
  th_subscription_id next_sub = 1;
  std::int32_t last_op = 0;
  double last_value = 0;
  std::vector<std::string> last_labels;

  static FakeHost& of(th_host* h) { return *reinterpret_cast<FakeHost*>(h); }

  static th_status fail(th_error* err, th_status st, const char* msg) {
    if (err != nullptr) {
      err->struct_size = sizeof(th_error);
      err->status = st;
      std::snprintf(err->message, sizeof(err->message), "%s", msg);
    }
    return st;
  }

  FakeHost() {
    api.struct_size = sizeof(th_host_api);
    api.api_major = TRACEHOST_PLUGIN_API_MAJOR;
    api.api_minor = TRACEHOST_PLUGIN_API_MINOR;
    api.host = reinterpret_cast<th_host*>(this);
    api.log = [](th_host* h, std::int32_t level, const char* msg) {
      of(h).logs.emplace_back(level, msg);
    };
    api.config_int = [](th_host* h, const char* key, std::int64_t* out, th_error* err) {
      auto& self = of(h);
      auto it = self.ints.find(key);
      if (it == self.ints.end()) return fail(err, TH_ERR_NOT_FOUND, "no such key");
      *out = it->second;
      return TH_OK;
    };
    api.config_list_size = [](th_host* h, const char* key, std::size_t* out, th_error* err) {
      auto& self = of(h);
      auto it = self.lists.find(key);
      if (it == self.lists.end()) return fail(err, TH_ERR_NOT_FOUND, "no such key");
      *out = it->second.size();
      return TH_OK;
    };
    api.config_list_string = [](th_host* h, const char* key, std::size_t i, const char** out,
                                th_error*) {
      *out = of(h).lists.at(key).at(i).c_str();
      return TH_OK;
    };
    api.bpf_open = [](th_host*, const char*, const void*, std::size_t, th_bpf_object**,
                      th_error* err) {
      return fail(err, TH_ERR_PERMISSION, "fake host: no BPF here");
    };
    api.map_lookup = [](th_host* h, th_map*, const void*, std::size_t key_size, void*,
                        std::size_t value_size, std::uint32_t flags, th_error* err) {
      auto& self = of(h);
      self.last_key_size = key_size;
      self.last_value_size = value_size;
      self.last_flags = flags;
      return fail(err, TH_ERR_NOT_FOUND, "no such key");
    };
    api.map_info = [](th_host*, th_map*, th_map_info* out, th_error*) {
      out->name = "fake/counts";
      out->key_size = 4;
      out->value_size = 8;
      out->per_cpu = 1;
      out->ncpus = 3;
      return TH_OK;
    };
    api.event_subscribe = [](th_host* h, const char*, th_event_batch_fn fn, void* user,
                             th_subscription_id* out, th_error*) {
      auto& self = of(h);
      self.sub_fn = fn;
      self.sub_user = user;
      *out = self.next_sub++;
      return TH_OK;
    };
    api.metric_update = [](th_host* h, th_metric*, const char* const* labels, std::size_t n,
                           std::int32_t op, double value, th_error*) {
      auto& self = of(h);
      self.last_op = op;
      self.last_value = value;
      self.last_labels.assign(labels, labels + n);
      return TH_OK;
    };
    api.event_unsubscribe = [](th_host* h, th_subscription_id id, th_error*) {
      of(h).unsubscribed.push_back(id);
      return TH_OK;
    };
  }
};

// ---- records shaped like the BPF side's ------------------------------------------------------

struct Header {
  std::uint64_t ts;
  std::uint32_t pid;
  std::uint32_t tid;
};
struct Record {
  Header hdr;
  std::int32_t ret;
  std::uint16_t port;
  std::uint16_t pad;
  char comm[16];
  std::uint8_t addr[16];
};
struct Key {
  std::uint32_t nr;
  std::int32_t err;
  char comm[16];
};
struct Value {
  std::uint64_t calls;
  std::uint64_t slots[27];
  std::uint64_t sum;
};

TEST(SdkSchema, OffsetsAndSizesComeFromTheStruct) {
  th::EventSchema s = th::schema<Record>(
      "test.record", "doc",
      {th::field<&Record::hdr, &Header::ts>("time", th::FieldType::kTimestampNs),
       th::field<&Record::hdr, &Header::pid>("pid", th::FieldType::kPid),
       th::field<&Record::ret>("ret", th::FieldType::kErrno),
       th::field<&Record::port>("port", th::FieldType::kPort), th::field<&Record::comm>("comm"),
       th::field<&Record::addr>("addr", th::FieldType::kIpv6)});
  EXPECT_TRUE(s.validate().ok());
  const th_event_schema& c = s.c();
  EXPECT_STREQ(c.topic, "test.record");
  EXPECT_EQ(c.record_size, sizeof(Record));
  ASSERT_EQ(c.field_count, 6u);
  EXPECT_EQ(c.fields[1].offset, offsetof(Record, hdr) + offsetof(Header, pid));
  EXPECT_EQ(c.fields[1].size, 4u);
  EXPECT_EQ(c.fields[1].type, TH_FIELD_PID);
  EXPECT_EQ(c.fields[2].offset, offsetof(Record, ret));
  EXPECT_EQ(c.fields[3].offset, offsetof(Record, port));
  EXPECT_EQ(c.fields[3].size, 2u);
  EXPECT_EQ(c.fields[4].type, TH_FIELD_STRING);  // inferred from char[16]
  EXPECT_EQ(c.fields[4].size, 16u);
  EXPECT_EQ(c.fields[5].offset, offsetof(Record, addr));
  for (std::size_t i = 0; i < c.field_count; ++i) {
    EXPECT_EQ(c.fields[i].struct_size, sizeof(th_field));
  }
}

TEST(SdkSchema, EnumNamesSurviveCopiesOfTheSchema) {
  th::EventSchema original = th::schema<Record>(
      "test.enum", "doc",
      {th::field<&Record::ret>("ret", th::FieldType::kEnum).enums({{0, "zero"}, {7, "seven"}})});
  th::EventSchema copy = original;  // the C view must point into the copy, not the original
  original = th::schema<Record>("other", "", {});
  const th_event_schema& c = copy.c();
  ASSERT_EQ(c.field_count, 1u);
  ASSERT_EQ(c.fields[0].enum_count, 2u);
  EXPECT_EQ(c.fields[0].enum_entries[1].value, 7);
  EXPECT_STREQ(c.fields[0].enum_entries[1].name, "seven");
}

TEST(SdkSchema, ValidateCatchesWhatMemberPointersCannot) {
  auto dup =
      th::schema<Record>("t", "", {th::field<&Record::ret>("x"), th::field<&Record::port>("x")});
  EXPECT_FALSE(dup.validate().ok());
  auto outside = th::schema<Record>(
      "t", "", {th::field_at<Record>("tail", th::FieldType::kUint, sizeof(Record) - 2, 4)});
  ASSERT_FALSE(outside.validate().ok());
  EXPECT_NE(outside.validate().error().message().find("outside"), std::string::npos);
}

TEST(SdkConfigKey, CView) {
  th::ConfigKey k = th::ConfigKey::u64("slow_threshold_us", 5, "doc").range(0, 60'000'000);
  const th_config_key& c = k.c();
  EXPECT_STREQ(c.name, "slow_threshold_us");
  EXPECT_EQ(c.type, TH_VALUE_INT);
  EXPECT_EQ(c.default_int, 5);
  EXPECT_EQ(c.has_range, 1);
  EXPECT_EQ(c.max, 60'000'000.0);

  th::ConfigKey u = th::ConfigKey::u64("n", 0, "unsigned by default");
  EXPECT_EQ(u.c().has_range, 1);
  EXPECT_EQ(u.c().min, 0.0);

  th::ConfigKey s = th::ConfigKey::str("mode", "count", "doc").choices({"count", "trace"});
  const th_config_key& cs = s.c();
  EXPECT_EQ(cs.type, TH_VALUE_STRING);
  EXPECT_STREQ(cs.default_string, "count");
  ASSERT_EQ(cs.choice_count, 2u);
  EXPECT_STREQ(cs.choices[1], "trace");
}

TEST(SdkMetrics, FamilyAndBindingCViews) {
  th::MetricFamily f =
      th::MetricFamily::counter("x_calls", "help", {"syscall", "errno"}).max_series(50);
  const th_metric_family& cf = f.c();
  EXPECT_EQ(cf.type, TH_METRIC_COUNTER);
  ASSERT_EQ(cf.label_count, 2u);
  EXPECT_STREQ(cf.label_names[1], "errno");
  EXPECT_EQ(cf.max_series, 50u);

  auto b = th::MapBinding<Key, Value>()
               .label<&Key::nr>("syscall", th::KeyKind::kEnum)
               .enums({{0, "read"}})
               .label<&Key::comm>("comm", th::KeyKind::kString)
               .value<&Value::calls>()
               .skip_zero();
  const th_map_binding& cb = b.c();
  ASSERT_EQ(cb.label_count, 2u);
  EXPECT_EQ(cb.labels[1].offset, offsetof(Key, comm));
  EXPECT_EQ(cb.labels[1].size, 16u);
  EXPECT_EQ(cb.labels[0].enum_count, 1u);
  EXPECT_EQ(cb.value_kind, TH_BIND_VALUE_U64);
  EXPECT_EQ(cb.value_offset, offsetof(Value, calls));
  EXPECT_EQ(cb.skip_zero, 1);

  auto h = th::MapBinding<std::uint32_t, Value>()
               .label("cpu", th::KeyKind::kUint)
               .log2_hist<&Value::slots, &Value::sum>()
               .scale(1e-9);
  const th_map_binding& ch = h.c();
  EXPECT_EQ(ch.labels[0].offset, 0u);
  EXPECT_EQ(ch.labels[0].size, 4u);
  EXPECT_EQ(ch.value_kind, TH_BIND_VALUE_LOG2_HIST);
  EXPECT_EQ(ch.slot_count, 27u);
  EXPECT_EQ(ch.sum_offset, offsetof(Value, sum));
  EXPECT_EQ(ch.scale, 1e-9);

  EXPECT_FALSE((th::MapBinding<Key, Value>().has_value()));  // a struct value must be named
  EXPECT_TRUE((th::MapBinding<Key, std::uint64_t>().has_value()));
}

TEST(SdkHost, LogConcatenatesWithoutFormatStrings) {
  FakeHost fake;
  th::Host host(&fake.api);
  host.log().warn("attached ", 3, " probes, ", -1, " failed, ratio ", 0.5, ' ', true);
  ASSERT_EQ(fake.logs.size(), 1u);
  EXPECT_EQ(fake.logs[0].first, TH_LOG_WARN);
  EXPECT_EQ(fake.logs[0].second, "attached 3 probes, -1 failed, ratio 0.5 true");
}

TEST(SdkHost, ConfigReadsAreTyped) {
  FakeHost fake;
  fake.ints["n"] = 42;
  fake.ints["neg"] = -1;
  fake.lists["comms"] = {"nginx", "redis"};
  th::Host host(&fake.api);
  auto n = host.config().u64("n");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 42u);
  auto neg = host.config().u64("neg");
  ASSERT_FALSE(neg.ok());
  EXPECT_EQ(neg.error().kind(), th::ErrorKind::kConfig);
  auto missing = host.config().i64("missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind(), th::ErrorKind::kNotFound);
  auto comms = host.config().strings("comms");
  ASSERT_TRUE(comms.ok());
  EXPECT_EQ(*comms, (std::vector<std::string>{"nginx", "redis"}));
}

TEST(SdkHost, MapCallsPassTheTypesSizes) {
  FakeHost fake;
  th::Host host(&fake.api);
  th::Map map(&fake.api, nullptr);
  auto absent = map.find<std::uint32_t, Value>(7u);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
  EXPECT_EQ(fake.last_key_size, 4u);
  EXPECT_EQ(fake.last_value_size, sizeof(Value));
  EXPECT_EQ(fake.last_flags, TH_MAP_PERCPU_SUM);

  auto per_cpu = map.lookup_per_cpu<std::uint32_t, std::uint32_t>(7u);
  ASSERT_FALSE(per_cpu.ok());
  EXPECT_EQ(fake.last_value_size, 3u * 8u);  // 3 CPUs, each value rounded up to 8 bytes
  EXPECT_EQ(fake.last_flags, TH_MAP_PERCPU_RAW);
}

TEST(SdkHost, MetricUpdatesPassLabelsInOrder) {
  FakeHost fake;
  th::Metric m(&fake.api, nullptr);
  ASSERT_TRUE(m.add(2, {"read", "EAGAIN"}).ok());
  EXPECT_EQ(fake.last_op, TH_METRIC_ADD);
  EXPECT_EQ(fake.last_value, 2.0);
  EXPECT_EQ(fake.last_labels, (std::vector<std::string>{"read", "EAGAIN"}));
  std::vector<std::string> runtime{"nginx"};
  ASSERT_TRUE(m.observe(0.25, runtime).ok());
  EXPECT_EQ(fake.last_op, TH_METRIC_OBSERVE);
  EXPECT_EQ(fake.last_labels, runtime);
  ASSERT_TRUE(m.set(7).ok());
  EXPECT_EQ(fake.last_op, TH_METRIC_SET);
  EXPECT_TRUE(fake.last_labels.empty());
}

// Ring buffer flags are API 1.1: passed through on a 1.1 host, a clear kAbi error on a 1.0 host
// (whose th_host_api ends before event_bind_ringbuf_flags).
TEST(SdkHost, RingbufFlagsNeedApi11) {
  FakeHost fake;
  static std::uint32_t seen_flags = 0;
  fake.api.event_bind_ringbuf_flags = [](th_host*, th_map*, const char*, std::uint32_t flags,
                                         th_error*) {
    seen_flags = flags;
    return TH_OK;
  };
  th::Host host(&fake.api);
  th::Map ring(&fake.api, nullptr);
  ASSERT_TRUE(host.events().bind(ring, "x.y", TH_RINGBUF_PRODUCER_WAKES).ok());
  EXPECT_EQ(seen_flags, std::uint32_t{TH_RINGBUF_PRODUCER_WAKES});

  fake.api.struct_size = offsetof(th_host_api, event_bind_ringbuf_flags);
  fake.api.api_minor = 0;
  auto old = host.events().bind(ring, "x.y", TH_RINGBUF_PRODUCER_WAKES);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().kind(), tracehost::ErrorKind::kAbi);
  EXPECT_NE(old.error().message().find("API 1.1"), std::string::npos) << old.error().message();
}

// Staged rings are API 1.4: the flag passes through on a 1.4 host; a 1.3 host, which would
// refuse the flag as unknown, gets a kAbi error that says what is needed instead.
TEST(SdkHost, StagedRingsNeedApi14) {
  FakeHost fake;
  static int calls = 0;
  static std::uint32_t seen_flags = 0;
  calls = 0;
  fake.api.event_bind_ringbuf_flags = [](th_host*, th_map*, const char*, std::uint32_t flags,
                                         th_error*) {
    ++calls;
    seen_flags = flags;
    return TH_OK;
  };
  th::Host host(&fake.api);
  th::Map ring(&fake.api, nullptr);
  ASSERT_TRUE(host.events().bind(ring, "x.y", TH_RINGBUF_STAGED).ok());
  EXPECT_EQ(seen_flags, std::uint32_t{TH_RINGBUF_STAGED});

  fake.api.api_minor = 3;
  auto old = host.events().bind(ring, "x.y", TH_RINGBUF_STAGED);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().kind(), tracehost::ErrorKind::kAbi);
  EXPECT_NE(old.error().message().find("API 1.4"), std::string::npos) << old.error().message();
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(host.events().bind(ring, "x.y", TH_RINGBUF_PRODUCER_WAKES).ok()) << "1.1 flag";
}

// Running an iterator is API 1.2: the output the host passes in chunks comes back whole on a 1.2
// host, and a 1.1 host (whose th_host_api ends before bpf_run_iter) gets a clear kAbi error.
TEST(SdkHost, RunIteratorNeedsApi12) {
  FakeHost fake;
  static std::string seen_program;
  fake.api.bpf_run_iter = [](th_host*, th_bpf_object*, const char* program, th_iter_output_fn fn,
                             void* user, th_error*) {
    seen_program = program;
    fn(user, "ab", 2);
    fn(user, "cde", 3);
    return TH_OK;
  };
  th::BpfObject obj(&fake.api, nullptr);
  auto out = obj.run_iterator("seed");
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_EQ(*out, "abcde");
  EXPECT_EQ(seen_program, "seed");

  fake.api.struct_size = offsetof(th_host_api, bpf_run_iter);
  fake.api.api_minor = 1;
  auto old = obj.run_iterator("seed");
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().kind(), tracehost::ErrorKind::kAbi);
  EXPECT_NE(old.error().message().find("API 1.2"), std::string::npos) << old.error().message();
}

TEST(SdkHost, PauseAndResumeNeedApi13) {
  FakeHost fake;
  static std::vector<std::pair<th_probe_id, std::int32_t>> calls;
  calls.clear();
  fake.api.bpf_probe_set_enabled = [](th_host*, th_probe_id probe, std::int32_t enabled,
                                      th_error*) {
    calls.emplace_back(probe, enabled);
    return TH_OK;
  };
  th::Probe probe(&fake.api, 42);
  EXPECT_TRUE(probe.pause().ok());
  EXPECT_TRUE(probe.resume().ok());
  EXPECT_EQ(calls, (std::vector<std::pair<th_probe_id, std::int32_t>>{{42, 0}, {42, 1}}));

  fake.api.struct_size = offsetof(th_host_api, bpf_probe_set_enabled);
  fake.api.api_minor = 2;
  auto old = probe.pause();
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().kind(), tracehost::ErrorKind::kAbi);
  EXPECT_NE(old.error().message().find("API 1.3"), std::string::npos) << old.error().message();
  EXPECT_EQ(calls.size(), 2u);
}

// Declaring a topic off is API 1.5: topic and reason pass through on a 1.5 host; a 1.4 host,
// whose th_host_api ends before event_set_off, gets a kAbi error naming the version.
TEST(SdkHost, TopicsOffNeedApi15) {
  FakeHost fake;
  static std::vector<std::pair<std::string, std::string>> calls;
  calls.clear();
  fake.api.event_set_off = [](th_host*, const char* topic, const char* reason, th_error*) {
    calls.emplace_back(topic, reason);
    return TH_OK;
  };
  th::Host host(&fake.api);
  ASSERT_TRUE(host.events().set_off("hello.exec", "exec = false").ok());
  EXPECT_EQ(calls,
            (std::vector<std::pair<std::string, std::string>>{{"hello.exec", "exec = false"}}));

  fake.api.struct_size = offsetof(th_host_api, event_set_off);
  fake.api.api_minor = 4;
  auto old = host.events().set_off("hello.exec", "exec = false");
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().kind(), tracehost::ErrorKind::kAbi);
  EXPECT_NE(old.error().message().find("API 1.5"), std::string::npos) << old.error().message();
  EXPECT_EQ(calls.size(), 1u);
}

TEST(SdkHost, MetricRemoveIsItsOwnOp) {
  FakeHost fake;
  th::Metric m(&fake.api, nullptr);
  ASSERT_TRUE(m.remove({"burn_hot", "app"}).ok());
  EXPECT_EQ(fake.last_op, TH_METRIC_REMOVE);
  EXPECT_EQ(fake.last_labels, (std::vector<std::string>{"burn_hot", "app"}));
}

TEST(SdkHost, SubscriptionTrampolineDeliversAndContainsExceptions) {
  FakeHost fake;
  std::vector<std::uint32_t> seen;
  {
    th::Host host(&fake.api);
    auto id = host.events().subscribe("test.*", [&](const th::Event& e) {
      auto v = e.as<std::uint32_t>();
      if (!v) return;
      if (*v == 13) throw std::runtime_error("unlucky record");
      seen.push_back(*v);
    });
    ASSERT_TRUE(id.ok());
    ASSERT_NE(fake.sub_fn, nullptr);

    std::uint32_t a = 1, b = 2, bad = 13;
    th_event events[2]{};
    events[0] = th_event{sizeof(th_event), "test.a", nullptr, &a, sizeof(a), 0};
    events[1] = th_event{sizeof(th_event), "test.a", nullptr, &b, sizeof(b), 0};
    fake.sub_fn(fake.sub_user, events, 2);
    EXPECT_EQ(seen, (std::vector<std::uint32_t>{1, 2}));

    th_event boom{sizeof(th_event), "test.a", nullptr, &bad, sizeof(bad), 0};
    fake.sub_fn(fake.sub_user, &boom, 1);  // must not throw through the C frame
    ASSERT_FALSE(fake.logs.empty());
    EXPECT_NE(fake.logs.back().second.find("unlucky record"), std::string::npos);
    EXPECT_TRUE(fake.unsubscribed.empty());
  }
  // the Host going away ends the subscription before its callable is freed
  EXPECT_EQ(fake.unsubscribed, (std::vector<th_subscription_id>{1}));
}

// ---- the export wrappers, through the real test libraries ------------------------------------

std::string case_library(const std::string& name) {
  return std::string(TRACEHOST_TEST_PLUGIN_CASES) + "/" + name + "/tracehost_" + name + ".so";
}

class Library {
 public:
  explicit Library(const std::string& path) : h_(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {}
  ~Library() {
    if (h_ != nullptr) dlclose(h_);
  }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  [[nodiscard]] void* handle() const { return h_; }
  [[nodiscard]] const th_plugin_descriptor* descriptor() const {
    auto* alias = static_cast<const void* const*>(dlsym(h_, TRACEHOST_PLUGIN_SYMBOL));
    if (alias == nullptr) return nullptr;
    auto fn = reinterpret_cast<th_plugin_entry_fn>(*alias);
    return fn();
  }

 private:
  void* h_;
};

TEST(SdkExport, MacroExportsTheDescriptorAlias) {
  Library lib(case_library("good"));
  ASSERT_NE(lib.handle(), nullptr) << dlerror();
  const th_plugin_descriptor* d = lib.descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->struct_size, sizeof(th_plugin_descriptor));
  EXPECT_EQ(d->api_major, TRACEHOST_PLUGIN_API_MAJOR);
  EXPECT_EQ(d->api_minor, TRACEHOST_PLUGIN_API_MINOR);
  EXPECT_STREQ(d->name, "good");
  EXPECT_STREQ(d->version, "1.0.0");
  ASSERT_EQ(d->config_key_count, 2u);
  EXPECT_STREQ(d->config_keys[0].name, "target_tgid");
  ASSERT_EQ(d->topic_count, 1u);
  EXPECT_STREQ(d->topics[0].topic, "good.sys_enter");
  EXPECT_EQ(d->topics[0].record_size, 40u);
  ASSERT_EQ(d->metric_count, 3u);
  EXPECT_NE(d->create, nullptr);
  EXPECT_NE(d->start, nullptr);
  EXPECT_NE(d->stop, nullptr);
  EXPECT_NE(d->destroy, nullptr);
  // the same descriptor on every call: its tables have static storage duration
  EXPECT_EQ(lib.descriptor(), d);
}

TEST(SdkExport, HiddenVisibilityWithoutTheMacroExportsNothing) {
  Library lib(case_library("missing_export"));
  ASSERT_NE(lib.handle(), nullptr) << dlerror();
  EXPECT_EQ(lib.descriptor(), nullptr);
}

TEST(SdkExport, ThrowingConstructorBecomesInternalError) {
  Library lib(case_library("create_throws"));
  ASSERT_NE(lib.handle(), nullptr) << dlerror();
  const th_plugin_descriptor* d = lib.descriptor();
  ASSERT_NE(d, nullptr);
  FakeHost fake;
  th_error err{};
  th_instance* inst = reinterpret_cast<th_instance*>(&fake);  // must be reset to NULL
  EXPECT_EQ(d->create(&fake.api, &inst, &err), TH_ERR_INTERNAL);
  EXPECT_EQ(inst, nullptr);
  EXPECT_EQ(err.status, TH_ERR_INTERNAL);
  EXPECT_NE(std::string(err.message).find("threw on purpose"), std::string::npos) << err.message;
}

// A message longer than th_error holds (a verifier log) keeps its first line, which says what
// failed, and its last lines, which say why.
TEST(SdkError, LongMessageKeepsItsHeadAndTail) {
  std::string msg = "the kernel verifier rejected program 'p'; log:\n";
  for (int i = 0; msg.size() < 3 * TH_ERROR_MESSAGE_MAX; ++i) {
    msg += "insn " + std::to_string(i) + ": " + std::string(200, 'r') + "\n";
  }
  msg += "R1 type=untrusted_ptr_ expected=sock_common\n-- END PROG LOAD LOG --";
  th_error c{};
  th::Error(th::ErrorKind::kLoadFailed, msg, 13, "plugin x").to_c(&c);
  const std::string out(c.message);
  EXPECT_LT(out.size(), std::size_t{TH_ERROR_MESSAGE_MAX});
  EXPECT_GT(out.size(), std::size_t{TH_ERROR_MESSAGE_MAX} - 300);
  EXPECT_EQ(out.rfind("plugin x: the kernel verifier rejected program 'p'; log:\n", 0), 0u);
  EXPECT_NE(out.find("(message shortened)"), std::string::npos);
  EXPECT_TRUE(
      out.ends_with("R1 type=untrusted_ptr_ expected=sock_common\n"
                    "-- END PROG LOAD LOG -- (Permission denied)"))
      << out.substr(out.size() - 200);
  // the tail starts at a line: no half instruction after the gap
  const std::size_t gap = out.find("shortened) ...\n");
  EXPECT_EQ(out.compare(gap + 15, 5, "insn "), 0) << out.substr(gap, 40);

  const std::string short_msg = "short";
  th::Error(th::ErrorKind::kLoadFailed, short_msg).to_c(&c);
  EXPECT_STREQ(c.message, "short");
}

TEST(SdkExport, MakeErrorKeepsItsKind) {
  Library lib(case_library("create_fails"));
  ASSERT_NE(lib.handle(), nullptr) << dlerror();
  const th_plugin_descriptor* d = lib.descriptor();
  ASSERT_NE(d, nullptr);
  FakeHost fake;
  th_error err{};
  th_instance* inst = nullptr;
  EXPECT_EQ(d->create(&fake.api, &inst, &err), TH_ERR_UNSUPPORTED_PLATFORM);
  EXPECT_EQ(inst, nullptr);
  EXPECT_NE(std::string(err.message).find("refuses to run on purpose"), std::string::npos);
}

TEST(SdkExport, StartErrorCrossesAsStatusAndInstanceIsDestroyable) {
  Library lib(case_library("good"));
  ASSERT_NE(lib.handle(), nullptr) << dlerror();
  const th_plugin_descriptor* d = lib.descriptor();
  ASSERT_NE(d, nullptr);
  FakeHost fake;
  fake.ints["target_tgid"] = 1;
  fake.ints["ring_bytes"] = 4096;
  th_error err{};
  th_instance* inst = nullptr;
  ASSERT_EQ(d->create(&fake.api, &inst, &err), TH_OK) << err.message;
  ASSERT_NE(inst, nullptr);
  // the fake host has no BPF: the plugin's first TH_TRY returns the host's error unchanged
  EXPECT_EQ(d->start(inst, &err), TH_ERR_PERMISSION);
  EXPECT_STREQ(err.message, "fake host: no BPF here");
  d->destroy(inst);
}

TEST(SdkExport, WrongHostMajorIsRefusedByCreate) {
  Library lib(case_library("good"));
  ASSERT_NE(lib.handle(), nullptr) << dlerror();
  const th_plugin_descriptor* d = lib.descriptor();
  ASSERT_NE(d, nullptr);
  FakeHost fake;
  fake.api.api_major = TRACEHOST_PLUGIN_API_MAJOR + 1;
  th_error err{};
  th_instance* inst = nullptr;
  EXPECT_EQ(d->create(&fake.api, &inst, &err), TH_ERR_ABI);
  EXPECT_NE(std::string(err.message).find("built for plugin API"), std::string::npos);
}

}  // namespace
