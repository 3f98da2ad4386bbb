// Event bus throughput: records appended to a BatchBuilder (as the ring buffer poller does),
// published, and delivered to subscriber callbacks on their dispatch threads.
//
// Arg = records per published batch (one poll round's worth for a topic). The block overflow
// policy makes the publisher wait for the subscriber, so items/s is the end-to-end rate with no
// drops; `drops` reports any.
#include <atomic>
#include <cstdint>

#include <benchmark/benchmark.h>

#include "bench_data_plane_common.hpp"
#include "host/event_bus.hpp"

namespace {

using tracehost::bench::bench_event;
using tracehost::bench::BenchEvent;
using tracehost::bench::BenchSchema;
using tracehost::host::BatchBuilder;
using tracehost::host::EventBus;
using tracehost::host::OverflowPolicy;
using tracehost::host::SubscribeOptions;

void run(benchmark::State& state, int subscribers, OverflowPolicy policy) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  EventBus bus;
  BenchSchema schema;
  auto topic = bus.register_topic("bench", schema.schema);
  if (!topic.ok()) {
    state.SkipWithError(topic.error().describe().c_str());
    return;
  }
  std::atomic<std::uint64_t> received{0};
  SubscribeOptions o;
  o.overflow = policy;
  for (int i = 0; i < subscribers; ++i) {
    o.name = "s" + std::to_string(i);
    auto sub = bus.subscribe(
        "bench", "bench.*",
        [&](std::span<const th_event> ev) {
          std::uint64_t sum = 0;
          for (const auto& e : ev) sum += e.size;  // touch every event
          benchmark::DoNotOptimize(sum);
          received.fetch_add(ev.size(), std::memory_order_relaxed);
        },
        o);
    if (!sub.ok()) {
      state.SkipWithError(sub.error().describe().c_str());
      return;
    }
  }
  BatchBuilder builder(*topic);
  const BenchEvent e = bench_event(1);
  for (auto _ : state) {
    for (std::size_t i = 0; i < batch; ++i) builder.append(&e, sizeof(e));
    bus.publish_batch(builder);
  }
  bus.drain();
  std::uint64_t dropped = 0;
  for (const auto& s : bus.stats().subscriptions) {
    for (const auto& pt : s.per_topic) dropped += pt.dropped;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
  state.counters["delivered"] = static_cast<double>(received.load());
  state.counters["drops"] = static_cast<double>(dropped);
}

void BM_BusPublishToOneSubscriber(benchmark::State& state) {
  run(state, 1, OverflowPolicy::kBlock);
}
BENCHMARK(BM_BusPublishToOneSubscriber)->Arg(1)->Arg(16)->Arg(256)->Arg(4096)->UseRealTime();

void BM_BusPublishToThreeSubscribers(benchmark::State& state) {
  run(state, 3, OverflowPolicy::kBlock);
}
BENCHMARK(BM_BusPublishToThreeSubscribers)->Arg(16)->Arg(256)->Arg(4096)->UseRealTime();

// drop_newest (the default): the publisher never waits; what the subscriber cannot take is
// counted. Measures the publisher side alone.
void BM_BusPublishDropNewest(benchmark::State& state) {
  run(state, 1, OverflowPolicy::kDropNewest);
}
BENCHMARK(BM_BusPublishDropNewest)->Arg(256)->Arg(4096)->UseRealTime();

void BM_BatchBuilderAppend(benchmark::State& state) {
  BatchBuilder builder(1);
  const BenchEvent e = bench_event(1);
  for (auto _ : state) {
    builder.append(&e, sizeof(e));
    if (builder.size() == 4096) builder.clear();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_BatchBuilderAppend);

}  // namespace
