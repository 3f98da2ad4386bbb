// JSON lines rendering: the json sink must keep up with >= 1 M events/s to /dev/null.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_data_plane_common.hpp"
#include "host/event_bus.hpp"
#include "host/render.hpp"
#include "host/sinks/json_sink.hpp"

namespace {

using tracehost::bench::bench_event;
using tracehost::bench::BenchEvent;
using tracehost::bench::BenchSchema;
using tracehost::bench::net_bench_event;
using tracehost::bench::NetBenchEvent;
using tracehost::bench::NetBenchSchema;

th_event event_of(const th_event_schema& schema, const void* record, std::size_t size,
                  std::uint64_t time_ns) {
  th_event e{};
  e.struct_size = sizeof(e);
  e.topic = schema.topic;
  e.schema = &schema;
  e.data = record;
  e.size = size;
  e.time_ns = time_ns;
  return e;
}

std::vector<th_event> make_events(const BenchSchema& schema, std::vector<BenchEvent>& storage) {
  std::vector<th_event> events;
  for (std::size_t i = 0; i < storage.size(); ++i) {
    storage[i] = bench_event(i);
    events.push_back(
        event_of(schema.schema, &storage[i], sizeof(BenchEvent), 1'795'612'522'123'456'789ull));
  }
  return events;
}

// Renders events[0..1023] in turn, one per iteration.
void render_events(benchmark::State& state, const std::vector<th_event>& events) {
  std::string out;
  out.reserve(1 << 20);
  std::size_t i = 0;
  for (auto _ : state) {
    out.clear();
    tracehost::host::append_event_json(out, events[i++ & 1023]);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["bytes_per_event"] = static_cast<double>(out.size());
}

void BM_RenderEventJson(benchmark::State& state) {
  BenchSchema schema;
  std::vector<BenchEvent> storage(1024);
  render_events(state, make_events(schema, storage));
}
BENCHMARK(BM_RenderEventJson);

// A network plugin-like record (tcp.close): two TH_FIELD_IP addresses with a family
// field, ports, enums, counters. Arg = address family (AF_INET, AF_INET6), or 0 for a mix of
// three IPv4 connections to one IPv6 one.
void BM_RenderNetEventJson(benchmark::State& state) {
  NetBenchSchema schema;
  std::vector<NetBenchEvent> storage(1024);
  std::vector<th_event> events;
  for (std::size_t i = 0; i < storage.size(); ++i) {
    int family = static_cast<int>(state.range(0));
    if (family == 0) family = i % 4 == 3 ? AF_INET6 : AF_INET;
    storage[i] = net_bench_event(i, family);
    // taken by the host 30 us after the kernel stamped it, as in a live run
    events.push_back(event_of(schema.schema, &storage[i], sizeof(NetBenchEvent),
                              static_cast<std::uint64_t>(tracehost::host::monotonic_to_realtime_ns(
                                                             storage[i].ts) +
                                                         30'000)));
  }
  render_events(state, events);
}
BENCHMARK(BM_RenderNetEventJson)->Arg(AF_INET)->Arg(AF_INET6)->Arg(0);

// The sink's callback path: filter, render, buffer, write(2) to /dev/null.
void BM_JsonSinkToDevNull(benchmark::State& state) {
  BenchSchema schema;
  std::vector<BenchEvent> storage(4096);
  auto events = make_events(schema, storage);
  int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  tracehost::host::EventBus bus;
  auto sink = tracehost::host::JsonSink::for_fd("bench", fd, tracehost::host::EventFilter(), bus);
  for (auto _ : state) sink->write_batch(events);
  sink->flush();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * events.size()));
  ::close(fd);
}
BENCHMARK(BM_JsonSinkToDevNull)->UseRealTime();

}  // namespace
