#include "host/event_bus.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "unit/host/data_plane_fixtures.hpp"

namespace tracehost::host {
namespace {

using namespace std::chrono_literals;
using tracehost::testing::bytes_of;
using tracehost::testing::sample_event;
using tracehost::testing::TestEvent;
using tracehost::testing::TestSchema;

// A gate a callback can wait on, so tests control when a subscriber makes progress.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
};

std::uint64_t seq_of(const th_event& e) {
  TestEvent t;
  std::memcpy(&t, e.data, sizeof(t));
  return t.seq;
}

const SubscriberTopicStats* sub_topic(const BusStats& s, SubscriptionId id,
                                      std::string_view topic) {
  for (const auto& sub : s.subscriptions) {
    if (sub.id != id) continue;
    for (const auto& pt : sub.per_topic) {
      if (pt.topic == topic) return &pt;
    }
  }
  return nullptr;
}

const TopicStats* topic_stats(const BusStats& s, std::string_view topic) {
  for (const auto& t : s.topics) {
    if (t.topic == topic) return &t;
  }
  return nullptr;
}

TEST(GlobMatch, Patterns) {
  EXPECT_TRUE(glob_match("*", "syscall.exec"));
  EXPECT_TRUE(glob_match("syscall.*", "syscall.exec"));
  EXPECT_FALSE(glob_match("syscall.*", "network.tcp_close"));
  EXPECT_TRUE(glob_match("*.exec", "syscall.exec"));
  EXPECT_TRUE(glob_match("sys?all.e*c", "syscall.exec"));
  EXPECT_TRUE(glob_match("syscall.exec", "syscall.exec"));
  EXPECT_FALSE(glob_match("syscall.exe", "syscall.exec"));
  EXPECT_FALSE(glob_match("syscall.execx", "syscall.exec"));
  EXPECT_TRUE(glob_match("*a*b*c", "xaybzc"));
  EXPECT_FALSE(glob_match("*a*b*c", "xaybz"));
  EXPECT_TRUE(glob_match("**", ""));
  EXPECT_FALSE(glob_match("?", ""));
}

TEST(EventBus, RegisterDeepCopiesSchema) {
  EventBus bus;
  TopicId id;
  {
    // Names live in buffers that are overwritten after registration, like a plugin's data
    // after its library is unloaded.
    std::string topic = "copy.test";
    std::string fname = "seq";
    std::string ename = "read";
    th_enum_entry entries[] = {{0, ename.c_str()}};
    th_field f = tracehost::testing::field(fname.c_str(), TH_FIELD_ENUM, 0, 8);
    f.enum_entries = entries;
    f.enum_count = 1;
    th_event_schema s{sizeof(th_event_schema), topic.c_str(), "doc", 8, &f, 1};
    auto r = bus.register_topic("plugin_a", s);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    id = *r;
    topic.assign(topic.size(), 'X');
    fname.assign(fname.size(), 'Y');
    ename.assign(ename.size(), 'Z');
  }
  auto schema = bus.schema(id);
  ASSERT_NE(schema, nullptr);
  EXPECT_EQ(schema->topic(), "copy.test");
  ASSERT_EQ(schema->fields().size(), 1u);
  EXPECT_STREQ(schema->fields()[0].name, "seq");
  EXPECT_STREQ(schema->fields()[0].enum_entries[0].name, "read");
  EXPECT_EQ(bus.find_topic("copy.test"), id);
  EXPECT_EQ(bus.owner_of(id), "plugin_a");
}

TEST(EventBus, DuplicateTopicIsAnEventErrorNamingTheOwner) {
  EventBus bus;
  TestSchema s("dup.topic");
  ASSERT_TRUE(bus.register_topic("first", s.s).ok());
  auto r = bus.register_topic("second", s.s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), ErrorKind::kEvent);
  EXPECT_NE(r.error().message().find("first"), std::string::npos) << r.error().message();
}

TEST(EventBus, ValidateSchemaRejectsBadLayouts) {
  TestSchema s;
  s.fields[1].offset = sizeof(TestEvent);  // beyond the record
  auto st = validate_schema(s.s);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("'pid'"), std::string::npos) << st.error().message();

  TestSchema s2;
  s2.fields[4].aux_field = "nope";
  EXPECT_FALSE(validate_schema(s2.s).ok());

  TestSchema s3("bad topic*");
  EXPECT_FALSE(validate_schema(s3.s).ok());

  TestSchema s4;
  s4.fields[3].name = "time";  // reserved: sinks add it
  EXPECT_FALSE(validate_schema(s4.s).ok());

  TestSchema good;
  EXPECT_TRUE(validate_schema(good.s).ok());
}

TEST(EventBus, DeliversInOrderAcrossPublishAndBatches) {
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  std::vector<std::uint64_t> seen;
  std::mutex mu;
  auto sub = bus.subscribe("t", "test.*", [&](std::span<const th_event> ev) {
    std::lock_guard lock(mu);
    for (const auto& e : ev) {
      EXPECT_STREQ(e.topic, "test.event");
      EXPECT_EQ(e.size, sizeof(TestEvent));
      seen.push_back(seq_of(e));
    }
  });
  ASSERT_TRUE(sub.ok());
  std::uint64_t seq = 0;
  for (int i = 0; i < 100; ++i) {
    auto e = sample_event(seq++);
    ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
  }
  BatchBuilder b(*id);
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 500; ++i) {
      auto e = sample_event(seq++);
      b.append(&e, sizeof(e));
    }
    EXPECT_EQ(bus.publish_batch(b), 500u);
    EXPECT_TRUE(b.empty());
  }
  ASSERT_TRUE(bus.drain());
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), seq);
  for (std::uint64_t i = 0; i < seq; ++i) ASSERT_EQ(seen[i], i);
  auto st = bus.stats();
  EXPECT_EQ(topic_stats(st, "test.event")->published, seq);
  EXPECT_EQ(sub_topic(st, *sub, "test.event")->delivered, seq);
  EXPECT_EQ(sub_topic(st, *sub, "test.event")->dropped, 0u);
}

TEST(EventBus, OneBatchSharedBySubscribersAndSplitByMaxBatch) {
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  std::mutex mu;
  std::vector<std::size_t> sizes_a;
  std::vector<const void*> data_a, data_b;
  std::vector<std::uint64_t> times;
  SubscribeOptions small;
  small.max_batch = 100;
  ASSERT_TRUE(bus.subscribe(
                     "a", "*",
                     [&](std::span<const th_event> ev) {
                       std::lock_guard lock(mu);
                       sizes_a.push_back(ev.size());
                       for (const auto& e : ev) {
                         data_a.push_back(e.data);
                         times.push_back(e.time_ns);
                       }
                     },
                     small)
                  .ok());
  ASSERT_TRUE(bus.subscribe("b", "test.event",
                            [&](std::span<const th_event> ev) {
                              std::lock_guard lock(mu);
                              for (const auto& e : ev) data_b.push_back(e.data);
                            })
                  .ok());
  BatchBuilder b(*id);
  for (int i = 0; i < 1000; ++i) {
    auto e = sample_event(static_cast<std::uint64_t>(i));
    b.append(&e, sizeof(e));
  }
  bus.publish_batch(b);
  ASSERT_TRUE(bus.drain());
  std::lock_guard lock(mu);
  ASSERT_EQ(sizes_a.size(), 10u);
  for (auto n : sizes_a) EXPECT_EQ(n, 100u);
  // Both subscribers saw the very same bytes: one shared batch, no per-subscriber copy.
  ASSERT_EQ(data_a, data_b);
  // One time stamp per batch, CLOCK_REALTIME (after 2020).
  for (auto t : times) EXPECT_EQ(t, times.front());
  EXPECT_GT(times.front(), 1'577'836'800'000'000'000ull);
}

TEST(EventBus, GlobSubscriptionSeesTopicsRegisteredLater) {
  EventBus bus;
  std::atomic<int> net{0}, all{0};
  ASSERT_TRUE(
      bus.subscribe("t", "network.*", [&](auto ev) { net += static_cast<int>(ev.size()); }).ok());
  std::vector<std::string> globs = {"network.*", "syscall.exec"};
  ASSERT_TRUE(bus.subscribe("t", globs, [&](auto ev) { all += static_cast<int>(ev.size()); }).ok());
  TestSchema tcp("network.tcp"), exec("syscall.exec"), other("syscall.open");
  auto a = bus.register_topic("p", tcp.s);
  auto b = bus.register_topic("p", exec.s);
  auto c = bus.register_topic("p", other.s);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  auto e = sample_event();
  ASSERT_TRUE(bus.publish(*a, bytes_of(e)).ok());
  ASSERT_TRUE(bus.publish(*b, bytes_of(e)).ok());
  ASSERT_TRUE(bus.publish(*c, bytes_of(e)).ok());
  ASSERT_TRUE(bus.drain());
  EXPECT_EQ(net.load(), 1);
  EXPECT_EQ(all.load(), 2);  // a topic matching two globs is delivered once
}

TEST(EventBus, OverflowDropsNewestAndCountsThem) {
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  Gate gate;
  std::atomic<std::size_t> got{0};
  std::atomic<bool> entered{false};
  SubscribeOptions o;
  o.queue_capacity = 10;
  auto sub = bus.subscribe(
      "slow", "*",
      [&](std::span<const th_event> ev) {
        entered = true;
        gate.wait();
        got += ev.size();
      },
      o);
  ASSERT_TRUE(sub.ok());
  auto e = sample_event();
  // first event: taken by the dispatch thread, which then blocks in the callback
  ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
  while (!entered) std::this_thread::sleep_for(1ms);
  BatchBuilder b(*id);
  for (int i = 0; i < 100; ++i) b.append(&e, sizeof(e));
  bus.publish_batch(b);
  auto st = bus.stats();
  EXPECT_EQ(sub_topic(st, *sub, "test.event")->dropped, 90u);
  EXPECT_EQ(st.subscriptions.front().queued, 10u);
  gate.release();
  ASSERT_TRUE(bus.drain());
  EXPECT_EQ(got.load(), 11u);
  st = bus.stats();
  EXPECT_EQ(sub_topic(st, *sub, "test.event")->delivered, 11u);
  EXPECT_EQ(topic_stats(st, "test.event")->published, 101u);
}

TEST(EventBus, BlockPolicyLosesNothing) {
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  std::vector<std::uint64_t> seen;
  SubscribeOptions o;
  o.queue_capacity = 16;
  o.max_batch = 8;
  o.overflow = OverflowPolicy::kBlock;
  auto sub = bus.subscribe(
      "all", "*",
      [&](std::span<const th_event> ev) {
        std::this_thread::sleep_for(100us);
        for (const auto& e : ev) seen.push_back(seq_of(e));
      },
      o);
  ASSERT_TRUE(sub.ok());
  std::thread producer([&] {
    BatchBuilder b(*id);
    for (std::uint64_t i = 0; i < 2000; ++i) {
      auto e = sample_event(i);
      b.append(&e, sizeof(e));
      if (b.size() == 100) bus.publish_batch(b);
    }
  });
  producer.join();
  ASSERT_TRUE(bus.drain());
  ASSERT_EQ(seen.size(), 2000u);
  for (std::uint64_t i = 0; i < 2000; ++i) ASSERT_EQ(seen[i], i);
  EXPECT_EQ(sub_topic(bus.stats(), *sub, "test.event")->dropped, 0u);
}

TEST(EventBus, UnsubscribeWaitsForTheRunningCallback) {
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  std::atomic<bool> entered{false}, finished{false};
  auto sub = bus.subscribe("t", "*", [&](std::span<const th_event>) {
    entered = true;
    std::this_thread::sleep_for(100ms);
    finished = true;
  });
  ASSERT_TRUE(sub.ok());
  auto e = sample_event();
  ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
  while (!entered) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(bus.unsubscribe(*sub).ok());
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(bus.unsubscribe(*sub).error().kind(), ErrorKind::kNotFound);
  // publishing after unsubscribe reaches nobody and does not block
  ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
}

TEST(EventBus, UnsubscribeFromItsOwnCallbackDoesNotDeadlock) {
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  std::atomic<SubscriptionId> self{0};
  std::atomic<bool> done{false};
  auto sub = bus.subscribe("t", "*", [&](std::span<const th_event>) {
    while (self.load() == 0) std::this_thread::yield();
    EXPECT_TRUE(bus.unsubscribe(self.load()).ok());
    done = true;
  });
  ASSERT_TRUE(sub.ok());
  self = *sub;
  auto e = sample_event();
  ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
  for (int i = 0; i < 2000 && !done; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(done.load());
  EXPECT_TRUE(bus.stats().subscriptions.empty());
}

TEST(EventBus, ShortRecordsAreMalformedAndNotDelivered) {
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  std::atomic<int> got{0};
  ASSERT_TRUE(bus.subscribe("t", "*", [&](auto ev) { got += static_cast<int>(ev.size()); }).ok());
  auto e = sample_event();
  auto st = bus.publish(*id, bytes_of(e).first(8));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind(), ErrorKind::kEvent);
  BatchBuilder b(*id);
  b.append(&e, 4);
  b.append(&e, sizeof(e));
  // a longer record keeps its tail
  std::vector<std::byte> longer(sizeof(e) + 32);
  std::memcpy(longer.data(), &e, sizeof(e));
  b.append(longer.data(), longer.size());
  EXPECT_EQ(bus.publish_batch(b), 2u);
  ASSERT_TRUE(bus.drain());
  EXPECT_EQ(got.load(), 2);
  auto stats = bus.stats();
  EXPECT_EQ(topic_stats(stats, "test.event")->malformed, 2u);
  EXPECT_EQ(topic_stats(stats, "test.event")->published, 2u);
}

TEST(EventBus, RemoveOwnerDropsTopicsAndSubscriptions) {
  EventBus bus;
  TestSchema a("a.one"), b("b.one");
  ASSERT_TRUE(bus.register_topic("pa", a.s).ok());
  ASSERT_TRUE(bus.register_topic("pb", b.s).ok());
  ASSERT_TRUE(bus.subscribe("pa", "*", [](auto) {}).ok());
  ASSERT_TRUE(bus.subscribe("pb", "*", [](auto) {}).ok());
  bus.remove_owner("pa");
  EXPECT_FALSE(bus.find_topic("a.one").has_value());
  EXPECT_TRUE(bus.find_topic("b.one").has_value());
  auto st = bus.stats();
  ASSERT_EQ(st.subscriptions.size(), 1u);
  EXPECT_EQ(st.subscriptions[0].owner, "pb");
  // the name is free again
  EXPECT_TRUE(bus.register_topic("pc", a.s).ok());
}

TEST(EventBus, KernelDropsAccumulate) {
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  bus.add_kernel_drops(*id, 5);
  bus.add_kernel_drops(*id, 7);
  EXPECT_EQ(topic_stats(bus.stats(), "test.event")->kernel_drops, 12u);
}

// Demand: a listener hears whether a topic is wanted (a non-passive subscription matches it) at
// once and on every change, and passive subscriptions (the console's) never turn a topic on.
TEST(EventBus, DemandListenersHearWhenATopicIsWanted) {
  EventBus bus;
  TestSchema tcp("tcp.connect"), exec("syscall.exec");
  auto t = bus.register_topic("p", tcp.s);
  auto x = bus.register_topic("p", exec.s);
  ASSERT_TRUE(t.ok() && x.ok());
  std::vector<bool> heard;
  ASSERT_TRUE(bus.add_demand_listener(*t, [&](bool w) { heard.push_back(w); }).ok());
  EXPECT_EQ(heard, std::vector<bool>{false});  // at once: nobody subscribes yet
  EXPECT_FALSE(bus.wanted(*t));
  EXPECT_TRUE(topic_stats(bus.stats(), "tcp.connect")->follows_demand);
  EXPECT_FALSE(topic_stats(bus.stats(), "syscall.exec")->follows_demand);

  SubscribeOptions watch;
  watch.passive = true;
  auto console = bus.subscribe(
      "host", "*", [](auto) {}, watch);
  ASSERT_TRUE(console.ok());
  auto other = bus.subscribe("host", "syscall.*", [](auto) {});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(heard, std::vector<bool>{false}) << "passive or non-matching subscriptions";
  EXPECT_FALSE(topic_stats(bus.stats(), "tcp.connect")->wanted);
  EXPECT_TRUE(topic_stats(bus.stats(), "syscall.exec")->wanted);

  auto json = bus.subscribe("host", "tcp.*", [](auto) {});
  ASSERT_TRUE(json.ok());
  auto plugin = bus.subscribe("other", std::vector<std::string>{"tcp.connect"}, [](auto) {});
  ASSERT_TRUE(plugin.ok());
  EXPECT_EQ(heard, (std::vector<bool>{false, true})) << "told once, not per subscription";
  EXPECT_TRUE(bus.wanted(*t));
  ASSERT_TRUE(bus.unsubscribe(*json).ok());
  EXPECT_EQ(heard, (std::vector<bool>{false, true}));
  ASSERT_TRUE(bus.unsubscribe(*plugin).ok());
  EXPECT_EQ(heard, (std::vector<bool>{false, true, false}));

  // a listener added while the topic is wanted hears true; remove_owner of a subscriber too
  auto again = bus.subscribe("other", "tcp.connect", [](auto) {});
  ASSERT_TRUE(again.ok());
  std::vector<bool> second;
  ASSERT_TRUE(bus.add_demand_listener(*t, [&](bool w) { second.push_back(w); }).ok());
  EXPECT_EQ(second, std::vector<bool>{true});
  bus.unsubscribe_owner("other");
  EXPECT_EQ(heard, (std::vector<bool>{false, true, false, true, false}));
  EXPECT_EQ(second, (std::vector<bool>{true, false}));

  // errors: an unknown topic, no listener
  EXPECT_FALSE(bus.add_demand_listener(9999, [](bool) {}).ok());
  EXPECT_FALSE(bus.add_demand_listener(*t, nullptr).ok());
}

// A topic its owner does not produce in this run says why, until marked produced again; only
// what stats() reports changes (subscriptions and delivery are as for any topic).
TEST(EventBus, TopicsDeclaredOffSayWhy) {
  EventBus bus;
  TestSchema open("syscall.open"), exec("syscall.exec");
  auto o = bus.register_topic("syscall", open.s);
  ASSERT_TRUE(o.ok());
  ASSERT_TRUE(bus.register_topic("syscall", exec.s).ok());
  EXPECT_EQ(topic_stats(bus.stats(), "syscall.open")->off_reason, "");
  ASSERT_TRUE(bus.set_off(*o, "open = false").ok());
  EXPECT_EQ(topic_stats(bus.stats(), "syscall.open")->off_reason, "open = false");
  EXPECT_EQ(topic_stats(bus.stats(), "syscall.exec")->off_reason, "");
  ASSERT_TRUE(bus.set_off(*o, "").ok());
  EXPECT_EQ(topic_stats(bus.stats(), "syscall.open")->off_reason, "");
  auto unknown = bus.set_off(*o + 100, "x");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message().find("unknown topic"), std::string::npos);
}

TEST(EventBus, PassiveSubscriptionsReceiveWhatFlows) {
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  std::atomic<int> got{0};
  SubscribeOptions watch;
  watch.passive = true;
  ASSERT_TRUE(bus.subscribe(
                     "host", "*", [&](auto ev) { got += static_cast<int>(ev.size()); }, watch)
                  .ok());
  auto e = sample_event();
  ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
  ASSERT_TRUE(bus.drain());
  EXPECT_EQ(got.load(), 1);
  EXPECT_FALSE(bus.wanted(*id));
}

TEST(EventBus, StopUnsubscribesEverythingAndRefusesNewSubscriptions) {
  EventBus bus;
  ASSERT_TRUE(bus.subscribe("t", "*", [](auto) {}).ok());
  bus.stop();
  EXPECT_TRUE(bus.stats().subscriptions.empty());
  EXPECT_FALSE(bus.subscribe("t", "*", [](auto) {}).ok());
}

}  // namespace
}  // namespace tracehost::host
