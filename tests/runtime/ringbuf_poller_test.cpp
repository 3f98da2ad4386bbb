// RingbufPoller against real BPF ring buffers (root).
//
// The producer is a tiny socket-filter program assembled here and run with BPF_PROG_TEST_RUN
// (repeat = N runs it N times in the kernel): each run writes its bpf_ktime_get_ns() into the
// ring with BPF_RB_NO_WAKEUP, or counts a drop in a per-CPU "<ring>_drops" array when the ring
// is full, exactly as bpf/include/tracehost/events.bpf.h does. No ELF or tracefs needed.
#include "host/ringbuf_poller.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/bpf_guard.hpp"
#include "host/event_bus.hpp"
#include "host/map_registry.hpp"
#include "host/unique_fd.hpp"

namespace tracehost::host {
namespace {

using namespace std::chrono_literals;

bpf_insn insn(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off,
              std::int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// ringbuf_output(ktime) with `flags`; on failure ++drops[0] (per CPU).
std::vector<bpf_insn> producer(int ring_fd, int drops_fd, std::int32_t flags) {
  constexpr std::uint8_t r0 = 0, r1 = 1, r2 = 2, r3 = 3, r4 = 4, r10 = 10;
  return {
      insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ktime_get_ns),
      insn(BPF_STX | BPF_DW | BPF_MEM, r10, r0, -8, 0),
      insn(BPF_LD | BPF_DW | BPF_IMM, r1, BPF_PSEUDO_MAP_FD, 0, ring_fd),
      insn(0, 0, 0, 0, 0),
      insn(BPF_ALU64 | BPF_MOV | BPF_X, r2, r10, 0, 0),
      insn(BPF_ALU64 | BPF_ADD | BPF_K, r2, 0, 0, -8),
      insn(BPF_ALU64 | BPF_MOV | BPF_K, r3, 0, 0, 8),
      insn(BPF_ALU64 | BPF_MOV | BPF_K, r4, 0, 0, flags),
      insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_output),
      insn(BPF_JMP | BPF_JEQ | BPF_K, r0, 0, 10, 0),  // ok → out
      insn(BPF_ST | BPF_W | BPF_MEM, r10, 0, -16, 0),
      insn(BPF_LD | BPF_DW | BPF_IMM, r1, BPF_PSEUDO_MAP_FD, 0, drops_fd),
      insn(0, 0, 0, 0, 0),
      insn(BPF_ALU64 | BPF_MOV | BPF_X, r2, r10, 0, 0),
      insn(BPF_ALU64 | BPF_ADD | BPF_K, r2, 0, 0, -16),
      insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
      insn(BPF_JMP | BPF_JEQ | BPF_K, r0, 0, 3, 0),  // no slot → out
      insn(BPF_LDX | BPF_DW | BPF_MEM, r1, r0, 0, 0),
      insn(BPF_ALU64 | BPF_ADD | BPF_K, r1, 0, 0, 1),
      insn(BPF_STX | BPF_DW | BPF_MEM, r0, r1, 0, 0),
      insn(BPF_ALU64 | BPF_MOV | BPF_K, r0, 0, 0, 0),  // out:
      insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
  };
}

struct Ring {
  MapRef ring;
  MapRef drops;
  UniqueFd prog;
};

MapRef make_map(const char* name, bpf_map_type type, std::uint32_t key, std::uint32_t value,
                std::uint32_t entries) {
  int fd = bpf_map_create(type, name, key, value, entries, nullptr);
  EXPECT_GE(fd, 0) << name << ": " << std::strerror(errno);
  MapInfo info;
  info.name = std::string("test/") + name;
  info.owner = "test";
  info.map_name = name;
  info.type = type;
  info.key_size = key;
  info.value_size = value;
  info.max_entries = entries;
  info.per_cpu = type == BPF_MAP_TYPE_PERCPU_ARRAY;
  info.ncpus = info.per_cpu ? static_cast<std::uint32_t>(libbpf_num_possible_cpus()) : 1;
  return std::make_shared<BpfMap>(info, UniqueFd(fd));
}

Ring make_ring(const char* name, std::uint32_t bytes, std::int32_t flags = BPF_RB_NO_WAKEUP) {
  Ring r;
  r.ring = make_map(name, BPF_MAP_TYPE_RINGBUF, 0, 0, bytes);
  r.drops = make_map((std::string(name) + "_drops").c_str(), BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1);
  auto insns = producer(r.ring->fd(), r.drops->fd(), flags);
  char log[8192] = {};
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_level = 1, .log_size = sizeof(log), .log_buf = log);
  int fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "th_poller_test", "GPL", insns.data(),
                         insns.size(), &opts);
  EXPECT_GE(fd, 0) << "producer rejected: " << std::strerror(errno) << "\n" << log;
  r.prog.reset(fd);
  return r;
}

// Runs the producer `n` times in the kernel.
void produce(const Ring& r, std::uint32_t n) {
  unsigned char pkt[64] = {};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof(pkt),
              .repeat = static_cast<int>(n));
  ASSERT_EQ(bpf_prog_test_run_opts(r.prog.get(), &opts), 0) << std::strerror(errno);
}

th_field ts_field() {
  th_field f{};
  f.struct_size = sizeof(f);
  f.name = "ts";
  f.type = TH_FIELD_TIMESTAMP_NS;
  f.offset = 0;
  f.size = 8;
  return f;
}

struct Collector {
  std::mutex mu;
  std::vector<std::uint64_t> values;
  std::vector<std::size_t> batch_sizes;
  std::atomic<std::size_t> count{0};
  void operator()(std::span<const th_event> ev) {
    std::lock_guard lock(mu);
    batch_sizes.push_back(ev.size());
    for (const auto& e : ev) {
      std::uint64_t v;
      std::memcpy(&v, e.data, 8);
      values.push_back(v);
    }
    count += ev.size();
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (count.load() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    return count.load() >= n;
  }
};

class RingbufPollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TRACEHOST_REQUIRE_BPF_PRIVILEGES();
    field_ = ts_field();
    schema_ = {sizeof(th_event_schema), "test.ring", "ktime of each run", 8, &field_, 1};
    auto id = bus_.register_topic("test", schema_);
    ASSERT_TRUE(id.ok()) << id.error().describe();
    topic_ = *id;
    auto sub = bus_.subscribe("test", "test.*", [this](auto ev) { (*collector_)(ev); });
    ASSERT_TRUE(sub.ok());
  }
  // The collector outlives the bus: the bus joins its dispatch threads when destroyed.
  std::unique_ptr<Collector> collector_ = std::make_unique<Collector>();
  th_field field_{};
  th_event_schema schema_{};
  EventBus bus_;
  TopicId topic_ = 0;
};

TEST_F(RingbufPollerTest, NoWakeupRecordsArriveWithinAFewPollIntervals) {
  auto ring = make_ring("th_rb_a", 1 << 20);
  auto poller = RingbufPoller::make(bus_, {});
  ASSERT_TRUE(poller.ok());
  ASSERT_TRUE((*poller)->add("test", ring.ring, topic_, ring.drops).ok());
  ASSERT_TRUE((*poller)->start().ok());
  std::this_thread::sleep_for(30ms);  // the poller is idle in epoll now
  const auto t0 = std::chrono::steady_clock::now();
  produce(ring, 1000);
  ASSERT_TRUE(collector_->wait_for(1000, 2000ms)) << collector_->count.load();
  const auto latency = std::chrono::steady_clock::now() - t0;
  // BPF_RB_NO_WAKEUP raises no epoll event: only the poll timeout + consume gets them out.
  EXPECT_LT(latency, 50ms);
  (*poller)->stop();
  ASSERT_TRUE(bus_.drain());
  std::lock_guard lock(collector_->mu);
  ASSERT_EQ(collector_->values.size(), 1000u);
  for (std::size_t i = 1; i < collector_->values.size(); ++i) {
    ASSERT_LE(collector_->values[i - 1], collector_->values[i]) << "out of order at " << i;
  }
  // one poll round → one batch: far fewer callbacks than events
  EXPECT_LE(collector_->batch_sizes.size(), 20u);
  auto stats = (*poller)->stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].records, 1000u);
  EXPECT_EQ(stats[0].map, "test/th_rb_a");
}

// Rings bound with producer_wakes are not polled: their records arrive on the producer's wakeup,
// a record committed without one waits (here until stop()), and the long sleep is still cut
// short by add() and stop().
TEST_F(RingbufPollerTest, ProducerWakesRingsAreNotPolled) {
  auto woken = make_ring("th_rb_wakes", 1 << 16, BPF_RB_FORCE_WAKEUP);
  auto silent = make_ring("th_rb_silent", 1 << 16, BPF_RB_NO_WAKEUP);
  PollerOptions options;
  options.drops_interval = 5000ms;  // the only timed wakeup left
  auto poller = RingbufPoller::make(bus_, options);
  ASSERT_TRUE(poller.ok());
  ASSERT_TRUE((*poller)->add("test", woken.ring, topic_, woken.drops, true).ok());
  ASSERT_TRUE((*poller)->start().ok());
  std::this_thread::sleep_for(30ms);
  auto t0 = std::chrono::steady_clock::now();
  produce(woken, 10);
  ASSERT_TRUE(collector_->wait_for(10, 2000ms)) << collector_->count.load();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 50ms);

  // add() while the poller sleeps: the eventfd wakes it to apply the request
  t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE((*poller)->add("test", silent.ring, topic_, silent.drops, true).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  produce(silent, 5);  // no wakeup, and nobody polls
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(bus_.drain());
  EXPECT_EQ(collector_->count.load(), 10u);

  t0 = std::chrono::steady_clock::now();
  (*poller)->stop();  // the last round takes them
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  ASSERT_TRUE(bus_.drain());
  EXPECT_EQ(collector_->count.load(), 15u);
}

// A ring bound with its mute map follows its topic's demand: while only a passive subscription
// matches, the map holds 1 and the ring is not polled (this producer ignores the map, so its
// records show whether anybody polls); the first real subscription clears the map and polling
// resumes at once; the last one leaving sets it again.
TEST_F(RingbufPollerTest, MutedRingsAreNotPolledUntilWanted) {
  th_field field = ts_field();
  th_event_schema schema{sizeof(th_event_schema), "quiet.ring", "ktime", 8, &field, 1};
  auto topic = bus_.register_topic("test", schema);
  ASSERT_TRUE(topic.ok()) << topic.error().describe();
  // shared with the callbacks, which may outlive this scope if an assertion returns early
  auto watched = std::make_shared<Collector>();
  auto wanted = std::make_shared<Collector>();
  SubscribeOptions passive;
  passive.passive = true;
  auto watch = bus_.subscribe(
      "test", "quiet.*", [watched](auto ev) { (*watched)(ev); }, passive);
  ASSERT_TRUE(watch.ok());

  auto ring = make_ring("th_rb_muted", 1 << 16);
  MapRef muted = make_map("th_rb_muted_muted", BPF_MAP_TYPE_ARRAY, 4, 4, 1);
  auto mute_value = [&] {
    std::uint32_t key = 0, value = 42;
    EXPECT_TRUE(muted->lookup_value(key, value).ok());
    return value;
  };
  PollerOptions options;
  options.drops_interval = 5000ms;  // the only timed wakeup of a ring that is not polled
  auto poller = RingbufPoller::make(bus_, options);
  ASSERT_TRUE(poller.ok());
  ASSERT_TRUE((*poller)->add("test", ring.ring, *topic, ring.drops, false, muted).ok());
  EXPECT_EQ(mute_value(), 1u) << "nobody but a passive watcher: muted";
  ASSERT_TRUE((*poller)->start().ok());
  std::this_thread::sleep_for(30ms);
  EXPECT_TRUE((*poller)->stats()[0].muted);
  produce(ring, 5);
  std::this_thread::sleep_for(300ms);  // thirty poll intervals
  ASSERT_TRUE(bus_.drain());
  EXPECT_EQ(watched->count.load(), 0u) << "a muted ring was polled";

  auto sub = bus_.subscribe("test", "quiet.ring", [wanted](auto ev) { (*wanted)(ev); });
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(mute_value(), 0u);
  // the subscription woke the poller: the waiting records come out within a poll round or two
  ASSERT_TRUE(wanted->wait_for(5, 200ms)) << wanted->count.load();
  const auto t0 = std::chrono::steady_clock::now();
  produce(ring, 3);
  ASSERT_TRUE(wanted->wait_for(8, 2000ms)) << wanted->count.load();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms) << "not polled after the unmute";
  EXPECT_FALSE((*poller)->stats()[0].muted);

  ASSERT_TRUE(bus_.unsubscribe(*sub).ok());
  EXPECT_EQ(mute_value(), 1u);
  (*poller)->stop();
  ASSERT_TRUE(bus_.unsubscribe(*watch).ok());

  // a mute map of the wrong shape is refused before anything is bound
  auto other = make_ring("th_rb_badmute", 1 << 16);
  MapRef hash = make_map("th_rb_badmute_muted", BPF_MAP_TYPE_HASH, 4, 4, 1);
  auto refused = (*poller)->add("test", other.ring, *topic, other.drops, false, hash);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("test/th_rb_badmute_muted must be an array of one u32"),
            std::string::npos)
      << refused.error().describe();
  EXPECT_EQ((*poller)->stats().size(), 1u);
}

TEST_F(RingbufPollerTest, KernelDropsAreReportedToTheBus) {
  // 4 KiB ring: 16-byte records (8 header + 8) → at most 256 fit before the poller runs.
  auto ring = make_ring("th_rb_small", 4096);
  produce(ring, 1000);
  auto poller = RingbufPoller::make(bus_, {});
  ASSERT_TRUE(poller.ok());
  ASSERT_TRUE((*poller)->add("test", ring.ring, topic_, ring.drops).ok());
  ASSERT_TRUE((*poller)->start().ok());
  (*poller)->stop();  // stop() takes a last round and a last drops read
  ASSERT_TRUE(bus_.drain());
  const std::size_t got = collector_->count.load();
  EXPECT_GT(got, 0u);
  EXPECT_LE(got, 256u);
  auto st = bus_.stats();
  ASSERT_EQ(st.topics.size(), 1u);
  EXPECT_EQ(st.topics[0].published, got);
  EXPECT_EQ(st.topics[0].kernel_drops, 1000u - got);
  EXPECT_EQ((*poller)->stats()[0].kernel_drops, 1000u - got);
}

TEST_F(RingbufPollerTest, AddAndRemoveWhileRunning) {
  auto a = make_ring("th_rb_run_a", 1 << 16);
  auto b = make_ring("th_rb_run_b", 1 << 16, 0);  // with wakeups
  auto poller = RingbufPoller::make(bus_, {});
  ASSERT_TRUE(poller.ok());
  ASSERT_TRUE((*poller)->start().ok());  // nothing bound yet
  ASSERT_TRUE((*poller)->add("pa", a.ring, topic_, a.drops).ok());
  ASSERT_TRUE((*poller)->add("pb", b.ring, topic_, b.drops).ok());
  auto dup = (*poller)->add("pb", b.ring, topic_, nullptr);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message().find("already bound"), std::string::npos);
  produce(a, 100);
  produce(b, 100);
  ASSERT_TRUE(collector_->wait_for(200, 2000ms)) << collector_->count.load();
  (*poller)->remove_owner("pa");
  EXPECT_EQ((*poller)->stats().size(), 1u);
  produce(a, 50);  // no longer read
  produce(b, 50);
  ASSERT_TRUE(collector_->wait_for(250, 2000ms)) << collector_->count.load();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(collector_->count.load(), 250u);
  (*poller)->stop();
}

TEST_F(RingbufPollerTest, RefusesMapsThatAreNotRingBuffers) {
  auto poller = RingbufPoller::make(bus_, {});
  ASSERT_TRUE(poller.ok());
  auto array = make_map("th_not_a_ring", BPF_MAP_TYPE_ARRAY, 4, 8, 1);
  auto st = (*poller)->add("test", array, topic_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("BPF_MAP_TYPE_RINGBUF"), std::string::npos);
  auto ring = make_ring("th_rb_c", 4096);
  auto bad_drops = (*poller)->add("test", ring.ring, topic_, array);  // ARRAY but value 8, key 4…
  EXPECT_TRUE(bad_drops.ok());  // a plain array of one u64 is accepted too
  auto wrong = make_map("th_wrong_drops", BPF_MAP_TYPE_HASH, 8, 8, 4);
  auto ring2 = make_ring("th_rb_d", 4096);
  EXPECT_FALSE((*poller)->add("test", ring2.ring, topic_, wrong).ok());
  EXPECT_FALSE(RingbufPoller::make(bus_, {std::chrono::milliseconds(0)}).ok());
}

}  // namespace
}  // namespace tracehost::host
