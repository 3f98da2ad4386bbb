// MapRegistry / BpfMap costs on real kernel maps: what a metric scrape or a plugin's map access
// pays per key. Loads benches/bpf/bench_maps.bpf.c (never attached), so it needs BPF privileges;
// without them every benchmark here reports an error saying so and the others still run.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_maps.bpf.embed.h"
#include "host/bpf_object.hpp"
#include "host/kernel_checks.hpp"
#include "host/map_registry.hpp"

namespace {

namespace th = tracehost::host;

// Layouts of bench_maps.bpf.c.
struct BenchKey {
  std::uint32_t pid;
  std::uint32_t nr;
};
struct BenchHist {
  std::uint64_t slots[32];
  std::uint64_t sum;
};
static_assert(sizeof(BenchKey) == 8);
static_assert(sizeof(BenchHist) == 33 * 8);

constexpr std::uint32_t kHashEntries = 16384;
constexpr std::uint32_t kArrayEntries = 512;

// One loaded object and registry for the whole process (loading per benchmark would dominate).
struct Maps {
  std::unique_ptr<th::BpfObject> object;
  th::MapRegistry registry;
  th::MapRef counts;
  th::MapRef latency;
  std::string error;  // non-empty: why the benchmarks cannot run
};

Maps& maps() {
  static Maps* m = [] {
    auto* out = new Maps();
    if (auto st = th::check_bpf_privileges(); !st) {
      out->error = "needs BPF privileges (run as root): " + st.error().message();
      std::fprintf(stderr, "bench_map_registry: skipping: %s\n", out->error.c_str());
      return out;
    }
    auto obj = th::BpfObject::make("bench", "bench_maps", tracehost::embedded::bench_maps_bpf());
    if (!obj) {
      out->error = obj.error().message();
      return out;
    }
    out->object = std::move(*obj);
    if (auto st = out->object->load(); !st) {
      out->error = st.error().message();
      return out;
    }
    if (auto st = out->registry.register_object(*out->object); !st) {
      out->error = st.error().message();
      return out;
    }
    auto counts = out->registry.find("bench/counts");
    auto latency = out->registry.find("bench/latency");
    if (!counts || !latency) {
      out->error = "bench maps not registered";
      return out;
    }
    out->counts = *counts;
    out->latency = *latency;
    return out;
  }();
  return *m;
}

// Fills `counts` with n keys (and empties it first).
bool fill_counts(benchmark::State& state, std::uint32_t n) {
  Maps& m = maps();
  std::vector<BenchKey> keys;
  std::vector<std::byte> key(sizeof(BenchKey));
  std::vector<std::byte> next(sizeof(BenchKey));
  // delete everything: restart from the first key each time, since deleting breaks iteration
  while (m.counts->next_key({}, next)) {
    if (!m.counts->remove(next)) break;
  }
  for (std::uint32_t i = 0; i < n; ++i) {
    const BenchKey k{1000 + i / 64, i % 64};
    const std::uint64_t v = i;
    if (auto st = m.counts->update_value(k, v); !st) {
      state.SkipWithError(st.error().message().c_str());
      return false;
    }
  }
  return true;
}

#define SKIP_WITHOUT_MAPS(state)                   \
  do {                                             \
    if (!maps().error.empty()) {                   \
      (state).SkipWithError(maps().error.c_str()); \
      return;                                      \
    }                                              \
  } while (0)

void BM_RegistryFind(benchmark::State& state) {
  SKIP_WITHOUT_MAPS(state);
  for (auto _ : state) {
    auto ref = maps().registry.find("bench/latency");
    benchmark::DoNotOptimize(ref);
  }
}
BENCHMARK(BM_RegistryFind);

void BM_HashLookup(benchmark::State& state) {
  SKIP_WITHOUT_MAPS(state);
  const auto n = static_cast<std::uint32_t>(state.range(0));
  if (!fill_counts(state, n)) return;
  std::uint32_t i = 0;
  std::uint64_t v = 0;
  for (auto _ : state) {
    const BenchKey k{1000 + (i % n) / 64, (i % n) % 64};
    auto st = maps().counts->lookup_value(k, v);
    benchmark::DoNotOptimize(st);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HashLookup)->Arg(1024)->Arg(kHashEntries);

void BM_HashUpdate(benchmark::State& state) {
  SKIP_WITHOUT_MAPS(state);
  if (!fill_counts(state, 1024)) return;
  std::uint32_t i = 0;
  for (auto _ : state) {
    const BenchKey k{1000 + (i % 1024) / 64, (i % 1024) % 64};
    const std::uint64_t v = i;
    auto st = maps().counts->update_value(k, v);
    benchmark::DoNotOptimize(st);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HashUpdate);

// A full walk as a metric collection does it: next_key + lookup per entry.
void BM_HashIterate(benchmark::State& state) {
  SKIP_WITHOUT_MAPS(state);
  const auto n = static_cast<std::uint32_t>(state.range(0));
  if (!fill_counts(state, n)) return;
  std::uint64_t seen = 0;
  for (auto _ : state) {
    auto st = maps().counts->for_each([&](auto, auto value) {
      seen += value.size();
      return true;
    });
    benchmark::DoNotOptimize(st);
  }
  benchmark::DoNotOptimize(seen);
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_HashIterate)->Arg(1024)->Arg(kHashEntries)->Unit(benchmark::kMicrosecond);

void BM_PerCpuLookupSum(benchmark::State& state) {
  SKIP_WITHOUT_MAPS(state);
  BenchHist hist{};
  std::uint32_t i = 0;
  for (auto _ : state) {
    const std::uint32_t key = i++ % kArrayEntries;
    auto st = maps().latency->lookup_value(key, hist, th::PerCpu::kSum);
    benchmark::DoNotOptimize(st);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PerCpuLookupSum);

void BM_PerCpuLookupRaw(benchmark::State& state) {
  SKIP_WITHOUT_MAPS(state);
  std::vector<std::byte> raw(maps().latency->info().raw_value_size());
  std::uint32_t i = 0;
  for (auto _ : state) {
    const std::uint32_t key = i++ % kArrayEntries;
    auto st = maps().latency->lookup(std::as_bytes(std::span<const std::uint32_t, 1>(&key, 1)), raw,
                                     th::PerCpu::kRaw);
    benchmark::DoNotOptimize(st);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PerCpuLookupRaw);

// Every slot of a per-CPU histogram array, summed: one map-bound histogram family's scrape.
void BM_PerCpuIterate(benchmark::State& state) {
  SKIP_WITHOUT_MAPS(state);
  for (auto _ : state) {
    std::uint64_t total = 0;
    auto st = maps().latency->for_each(
        [&](auto, auto value) {
          total += value.size();
          return true;
        },
        th::PerCpu::kSum);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(total);
  }
  state.SetItemsProcessed(state.iterations() * kArrayEntries);
}
BENCHMARK(BM_PerCpuIterate)->Unit(benchmark::kMicrosecond);

}  // namespace
