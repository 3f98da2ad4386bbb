// The wakeup policy of bpf/include/tracehost/events.bpf.h on a real ring (root): records are
// committed without a wakeup until the ring passes its fill threshold; then one wakeup is forced,
// and no other until the consumer has moved. A wakeup per record past the threshold cost each
// one an irq_work self-IPI while the consumer was already on its way.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/epoll.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "host/unique_fd.hpp"
#include "runtime/bpf_test_support.hpp"
#include "test_events.bpf.embed.h"

namespace tracehost::host {
namespace {

using testing::BpfTest;
using testing::open_object;

class EventsWakeup : public BpfTest {
 protected:
  void SetUp() override {
    BpfTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    obj_ = open_object("test_events", embedded::test_events_bpf());
    ASSERT_TRUE(obj_);
    TH_ASSERT_OK(obj_->load());
    auto prog = obj_->program("tht_produce");
    TH_ASSERT_OK(prog);
    prog_fd_ = bpf_program__fd(*prog);
    auto ring = obj_->map("events");
    TH_ASSERT_OK(ring);
    ring_fd_ = bpf_map__fd(*ring);
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    ASSERT_TRUE(epoll_);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;  // as the host's poller watches rings
    ASSERT_EQ(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, ring_fd_, &ev), 0);
    reader_ = ring_buffer__new(ring_fd_, &EventsWakeup::on_record, this, nullptr);
    ASSERT_NE(reader_, nullptr);
  }
  void TearDown() override {
    if (reader_ != nullptr) ring_buffer__free(reader_);
    epoll_.reset();
    obj_.reset();
    BpfTest::TearDown();
  }

  // commits n records, one per run of the program
  void produce(int n) { testing::run_program(prog_fd_, n); }
  // whether the ring woke its waiters since the last call (edge-triggered, as the host waits)
  bool woke() {
    epoll_event ev{};
    return ::epoll_wait(epoll_.get(), &ev, 1, 50) == 1;
  }
  // reads up to `limit` records (moves the consumer by that many); -1: all
  int consume(int limit) {
    limit_ = limit;
    taken_ = 0;
    (void)ring_buffer__consume(reader_);
    return taken_;
  }
  static int on_record(void* self, void* data, size_t size) {
    auto* t = static_cast<EventsWakeup*>(self);
    std::uint64_t seq = 0;
    if (size >= sizeof(seq)) std::memcpy(&seq, data, sizeof(seq));
    t->seqs_.push_back(seq);
    ++t->taken_;
    return t->limit_ >= 0 && t->taken_ >= t->limit_ ? -1 : 0;  // < 0 stops after this one
  }

  std::unique_ptr<BpfObject> obj_;
  int prog_fd_ = -1;
  int ring_fd_ = -1;
  UniqueFd epoll_;
  ring_buffer* reader_ = nullptr;
  int limit_ = -1;
  int taken_ = 0;
  std::vector<std::uint64_t> seqs_;
};

TEST_F(EventsWakeup, OneForcedWakeupPerConsumerPosition) {
  // 64-byte records in a 64 KiB ring: the threshold (1/4) is at 256
  produce(200);
  EXPECT_FALSE(woke()) << "below the threshold a commit wakes nobody";
  produce(100);
  EXPECT_TRUE(woke()) << "passing the threshold forces a wakeup";
  for (int i = 0; i < 3; ++i) {
    produce(50);
    EXPECT_FALSE(woke()) << "the consumer has not moved: it was woken already (round " << i << ")";
  }
  // the consumer takes a few and stops: still past the threshold, so the next commit wakes it
  // once more
  EXPECT_EQ(consume(10), 10);
  produce(1);
  EXPECT_TRUE(woke());
  produce(50);
  EXPECT_FALSE(woke());
  // drained: below the threshold again, until it passes it again
  EXPECT_EQ(consume(-1), 200 + 100 + 150 + 1 + 50 - 10);
  produce(250);
  EXPECT_FALSE(woke());
  produce(10);
  EXPECT_TRUE(woke());
  EXPECT_EQ(consume(-1), 260);
  // nothing lost or reordered
  ASSERT_EQ(seqs_.size(), 761u);
  for (std::size_t i = 0; i < seqs_.size(); ++i) ASSERT_EQ(seqs_[i], i);
}

}  // namespace
}  // namespace tracehost::host
