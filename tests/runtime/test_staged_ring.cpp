// Staged rings (events.bpf.h's TH_STAGED_RINGBUF) through the host's poller onto the bus (root):
// events are committed eight to a ring record, split back into events in order, and the stages
// the BPF side has not filled are flushed by the poller on their CPUs, every round and at stop.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "host/event_bus.hpp"
#include "host/map_registry.hpp"
#include "host/ringbuf_poller.hpp"
#include "runtime/bpf_test_support.hpp"
#include "test_events.bpf.embed.h"

namespace tracehost::host {
namespace {

using namespace std::chrono_literals;
using testing::BpfTest;
using testing::open_object;

constexpr std::size_t kRecord = 56;  // struct tht_record

class StagedRing : public BpfTest {
 protected:
  void SetUp() override {
    BpfTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    obj_ = open_object("test_events", embedded::test_events_bpf());
    ASSERT_TRUE(obj_);
    TH_ASSERT_OK(obj_->load());
    TH_ASSERT_OK(maps_.register_object(*obj_));
    auto prog = obj_->program("tht_produce_staged");
    TH_ASSERT_OK(prog);
    produce_fd_ = bpf_program__fd(*prog);
    auto flush = obj_->program("staged_flush");
    TH_ASSERT_OK(flush);
    flush_fd_ = bpf_program__fd(*flush);

    field_.struct_size = sizeof(field_);
    field_.name = "seq";
    field_.type = TH_FIELD_UINT;
    field_.offset = 0;
    field_.size = 8;
    schema_ = {sizeof(th_event_schema), "test.staged", "sequence numbers", kRecord, &field_, 1};
    auto id = bus_.register_topic("test", schema_);
    TH_ASSERT_OK(id);
    topic_ = *id;
    auto sub = bus_.subscribe("test", "test.*", [this](std::span<const th_event> ev) {
      std::lock_guard lock(mu_);
      for (const auto& e : ev) {
        std::uint64_t seq = 0;
        std::memcpy(&seq, e.data, sizeof(seq));
        seqs_.push_back(seq);
      }
      count_ += ev.size();
    });
    TH_ASSERT_OK(sub);
    auto poller = RingbufPoller::make(bus_, {});
    TH_ASSERT_OK(poller);
    poller_ = std::move(*poller);
  }
  void TearDown() override {
    if (poller_) poller_->stop();
    poller_.reset();  // holds a copy of the flush program's fd
    bus_.stop();
    obj_.reset();
    BpfTest::TearDown();
  }

  Status bind() {
    TH_ASSIGN_OR_RETURN(MapRef ring, maps_.find("test/staged"));
    TH_ASSIGN_OR_RETURN(MapRef drops, maps_.find("test/staged_drops"));
    TH_ASSIGN_OR_RETURN(MapRef counts, maps_.find("test/staged_staged"));
    return poller_->add_staged("test", ring, topic_, drops, counts, flush_fd_);
  }
  // stages n events, one per run of the program, on the calling thread's CPU
  void produce(int n) { testing::run_program(produce_fd_, n); }
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (count_.load() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    return count_.load() >= n;
  }
  void expect_in_order(std::size_t n) {
    std::lock_guard lock(mu_);
    ASSERT_EQ(seqs_.size(), n);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(seqs_[i], i) << "at " << i;
  }

  std::unique_ptr<BpfObject> obj_;
  MapRegistry maps_;
  int produce_fd_ = -1;
  int flush_fd_ = -1;
  th_field field_{};
  th_event_schema schema_{};
  EventBus bus_;
  TopicId topic_ = 0;
  std::unique_ptr<RingbufPoller> poller_;
  std::mutex mu_;
  std::vector<std::uint64_t> seqs_;
  std::atomic<std::size_t> count_{0};
};

// the test thread stays on one CPU: its runs share one stage, so their order is the ring's
class PinnedCpu {
 public:
  PinnedCpu() {
    sched_getaffinity(0, sizeof(old_), &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    sched_setaffinity(0, sizeof(one), &one);
  }
  ~PinnedCpu() { sched_setaffinity(0, sizeof(old_), &old_); }
  PinnedCpu(const PinnedCpu&) = delete;
  PinnedCpu& operator=(const PinnedCpu&) = delete;

 private:
  cpu_set_t old_{};
};

TEST_F(StagedRing, RecordsOfEightAreSplitIntoEventsInOrder) {
  PinnedCpu pin;
  TH_ASSERT_OK(bind());
  TH_ASSERT_OK(poller_->start());
  // 1000 events of 56 bytes in records of eight: 57 KB, within the 64 KiB ring
  produce(1000);
  ASSERT_TRUE(wait_for(1000, 2000ms)) << count_.load();
  poller_->stop();
  ASSERT_TRUE(bus_.drain());
  expect_in_order(1000);
  auto stats = poller_->stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_TRUE(stats[0].staged);
  EXPECT_EQ(stats[0].events, 1000u);
  // eight events to a ring record: 125; a poll round's flush that lands between two runs of
  // the program (an IPI) commits one partial stage, and the next fills on from there
  EXPECT_GE(stats[0].records, 125u);
  EXPECT_LE(stats[0].records, 127u) << "eight events to a ring record";
}

TEST_F(StagedRing, AStageThatNeverFillsIsFlushedWithinAPollRound) {
  PinnedCpu pin;
  TH_ASSERT_OK(bind());
  TH_ASSERT_OK(poller_->start());
  std::this_thread::sleep_for(30ms);
  const auto t0 = std::chrono::steady_clock::now();
  produce(3);  // fewer than a stage holds: nothing reaches the ring without a flush
  ASSERT_TRUE(wait_for(3, 2000ms)) << "the poller did not flush the stage";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 200ms);
  produce(13);  // one full record (8) and 5 staged
  ASSERT_TRUE(wait_for(16, 2000ms)) << count_.load();
  poller_->stop();
  ASSERT_TRUE(bus_.drain());
  expect_in_order(16);
  auto stats = poller_->stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].events, 16u);
  EXPECT_GE(stats[0].flushes, 2u);
}

// A flush interrupts the stage's CPU, and the poller waits for it: a stage that fills on its own
// within half a poll interval is left alone. Five events a millisecond into stages of eight
// always leave some waiting, none for more than ~2 ms; with every round flushing whatever
// waits, 300 ms of this took ~30 flushes.
TEST_F(StagedRing, StagesThatFillOnTheirOwnAreNotFlushed) {
  PinnedCpu pin;
  TH_ASSERT_OK(bind());
  TH_ASSERT_OK(poller_->start());
  std::size_t produced = 0;
  const auto until = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < until) {
    produce(5);
    produced += 5;
    std::this_thread::sleep_for(1ms);
  }
  const auto flushes = poller_->stats()[0].flushes;
  poller_->stop();  // flushes what is left
  ASSERT_TRUE(bus_.drain());
  expect_in_order(produced);
  EXPECT_LE(flushes, 5u) << "stages a few milliseconds old were flushed";
}

TEST_F(StagedRing, StopFlushesWhatIsStaged) {
  PinnedCpu pin;
  TH_ASSERT_OK(bind());
  // not started: stop() still runs a last round; start and stop at once so the events are
  // staged when the last round comes
  TH_ASSERT_OK(poller_->start());
  produce(5);
  poller_->stop();
  ASSERT_TRUE(bus_.drain());
  expect_in_order(5);
}

TEST_F(StagedRing, RefusesAStageCounterOfTheWrongShape) {
  auto ring = maps_.find("test/staged");
  auto drops = maps_.find("test/staged_drops");
  TH_ASSERT_OK(ring);
  TH_ASSERT_OK(drops);
  auto st = poller_->add_staged("test", *ring, topic_, *drops, *ring, flush_fd_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("th_stage_state"), std::string::npos)
      << st.error().describe();
  st = poller_->add_staged("test", *ring, topic_, *drops, nullptr, flush_fd_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("TH_STAGED_RINGBUF"), std::string::npos)
      << st.error().describe();
}

// "<ring>_muted" (TH_RINGBUF), which the host sets while nobody subscribes to the ring's topic:
// TH_STAGED_OUTPUT and TH_RESERVE then produce nothing, and the stream resumes once it is cleared.
TEST_F(StagedRing, MutedRingsProduceNothing) {
  PinnedCpu pin;
  auto muted = maps_.find("test/staged_muted");
  TH_ASSERT_OK(muted);
  const std::uint32_t key = 0;
  TH_ASSERT_OK((*muted)->update_value(key, std::uint32_t{1}));
  TH_ASSERT_OK(bind());
  TH_ASSERT_OK(poller_->start());
  produce(20);                        // seq 0..19, never staged
  std::this_thread::sleep_for(50ms);  // a few poll rounds
  EXPECT_EQ(count_.load(), 0u) << "a muted staged ring produced events";
  TH_ASSERT_OK((*muted)->update_value(key, std::uint32_t{0}));
  produce(3);
  ASSERT_TRUE(wait_for(3, 2000ms)) << count_.load();
  poller_->stop();
  ASSERT_TRUE(bus_.drain());
  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(seqs_, (std::vector<std::uint64_t>{20, 21, 22}));
  }
  EXPECT_EQ(poller_->stats()[0].kernel_drops, 0u) << "muted events are not drops";

  // TH_RESERVE (the plain ring "events", read here directly)
  auto events = maps_.find("test/events");
  auto events_muted = maps_.find("test/events_muted");
  TH_ASSERT_OK(events);
  TH_ASSERT_OK(events_muted);
  auto plain = obj_->program("tht_produce");
  TH_ASSERT_OK(plain);
  auto run_plain = [&] { testing::run_program(bpf_program__fd(*plain), 5); };
  auto count_sample = [](void* ctx, void*, std::size_t) {
    ++*static_cast<int*>(ctx);
    return 0;
  };
  int records = 0;
  ::ring_buffer* rb = ring_buffer__new((*events)->fd(), count_sample, &records, nullptr);
  ASSERT_NE(rb, nullptr) << std::strerror(errno);
  TH_ASSERT_OK((*events_muted)->update_value(key, std::uint32_t{1}));
  run_plain();
  EXPECT_EQ(ring_buffer__consume(rb), 0);
  EXPECT_EQ(records, 0) << "TH_RESERVE on a muted ring gave a record";
  TH_ASSERT_OK((*events_muted)->update_value(key, std::uint32_t{0}));
  run_plain();
  EXPECT_EQ(ring_buffer__consume(rb), 5);
  EXPECT_EQ(records, 5);
  ring_buffer__free(rb);
}

// A stage is busy while a program copies an event in or flushes it. A program that interrupts
// that on the same CPU (a softirq's tracepoint during a process's) must neither wait nor touch
// the stage: its event goes into the ring directly, as a record of one, and the poller's flush
// of a busy stage leaves it for a later round. Here user space sets "busy", as if a program on
// this CPU had been interrupted mid-copy; the poller starts only after that, so no flush races
// with these writes (a flush of a busy stage writes nothing).
TEST_F(StagedRing, ABusyStageIsPassedByAndFlushedOnceFree) {
  struct StageState {  // struct th_stage_state (events.bpf.h)
    std::uint32_t count;
    std::uint32_t busy;
    std::uint64_t first_ns;
  };
  PinnedCpu pin;
  const auto cpu = static_cast<std::size_t>(sched_getcpu());
  auto state = maps_.find("test/staged_staged");
  TH_ASSERT_OK(state);
  // a per-CPU value is read and written for every possible CPU at once
  std::vector<StageState> per_cpu(static_cast<std::size_t>(libbpf_num_possible_cpus()));
  ASSERT_GT(per_cpu.size(), cpu);
  const std::uint32_t key = 0;
  auto read_state = [&] {
    EXPECT_EQ(bpf_map_lookup_elem((*state)->fd(), &key, per_cpu.data()), 0) << std::strerror(errno);
    return per_cpu[cpu];
  };
  auto set_busy = [&](std::uint32_t busy) {
    read_state();
    per_cpu[cpu].busy = busy;
    EXPECT_EQ(bpf_map_update_elem((*state)->fd(), &key, per_cpu.data(), BPF_EXIST), 0)
        << std::strerror(errno);
  };
  TH_ASSERT_OK(bind());
  produce(3);  // seq 0..2: staged, and no poller yet to flush them
  ASSERT_EQ(read_state().count, 3u);
  set_busy(1);
  produce(2);  // seq 3, 4: around the busy stage
  EXPECT_EQ(read_state().count, 3u) << "an event went into a busy stage";

  TH_ASSERT_OK(poller_->start());
  ASSERT_TRUE(wait_for(2, 2000ms)) << "events that found the stage busy did not reach the ring";
  std::this_thread::sleep_for(50ms);  // several poll rounds
  EXPECT_EQ(count_.load(), 2u) << "a busy stage was flushed";
  EXPECT_EQ(read_state().count, 3u);
  EXPECT_EQ(poller_->stats()[0].records, 2u) << "one ring record per event that passed";

  set_busy(0);
  ASSERT_TRUE(wait_for(5, 2000ms)) << "the stage was not flushed once free: " << count_.load();
  poller_->stop();
  ASSERT_TRUE(bus_.drain());
  EXPECT_EQ(poller_->stats()[0].kernel_drops, 0u);
  std::lock_guard lock(mu_);
  EXPECT_EQ(seqs_, (std::vector<std::uint64_t>{3, 4, 0, 1, 2}))
      << "what passed the stage first, then what it held, in its order";
}

}  // namespace
}  // namespace tracehost::host
