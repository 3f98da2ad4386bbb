// Runtime tests of MapRegistry and BpfStatsGuard on real kernel maps. Root.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host/bpf_object.hpp"
#include "host/bpf_stats.hpp"
#include "host/map_registry.hpp"
#include "host/probes.hpp"
#include "runtime/bpf_test_support.hpp"
#include "test_maps.bpf.embed.h"
#include "test_probes.bpf.embed.h"

namespace tracehost::host {
namespace {

using testing::BpfTest;
using testing::open_object;

struct Pair {
  std::uint64_t a;
  std::uint64_t b;
};

template <typename T>
std::span<const std::byte> bytes(const T& v) {
  return std::as_bytes(std::span<const T, 1>(&v, 1));
}
template <typename T>
std::span<std::byte> wbytes(T& v) {
  return std::as_writable_bytes(std::span<T, 1>(&v, 1));
}

class BpfMaps : public BpfTest {
 protected:
  void SetUp() override {
    BpfTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    obj_ = open_object("test_maps", embedded::test_maps_bpf());
    ASSERT_TRUE(obj_);
    TH_ASSERT_OK(obj_->load());
    TH_ASSERT_OK(registry_.register_object(*obj_));
  }
  void TearDown() override {
    registry_.remove_owner("test");
    obj_.reset();
    BpfTest::TearDown();
  }
  MapRef map(std::string_view name) {
    auto m = registry_.find(name);
    if (!m.ok()) {
      ADD_FAILURE() << m.error().describe();
      return nullptr;
    }
    return *m;
  }

  std::unique_ptr<BpfObject> obj_;
  MapRegistry registry_;
};

TEST_F(BpfMaps, RegistersEveryNamedMapWithInfo) {
  std::vector<std::string> names;
  for (const auto& m : registry_.list()) names.push_back(m->name());
  EXPECT_EQ(names, (std::vector<std::string>{"test/array_map", "test/events", "test/hash_map",
                                             "test/pcpu_array", "test/pcpu_hash", "test/pcpu_odd"}))
      << "internal .rodata/.bss maps are not registered";
  auto pcpu = map("test/pcpu_array");
  ASSERT_TRUE(pcpu);
  const MapInfo& info = pcpu->info();
  EXPECT_EQ(info.type, BPF_MAP_TYPE_PERCPU_ARRAY);
  EXPECT_EQ(info.key_size, 4u);
  EXPECT_EQ(info.value_size, 16u);
  EXPECT_EQ(info.max_entries, 2u);
  EXPECT_TRUE(info.per_cpu);
  EXPECT_EQ(info.ncpus, static_cast<std::uint32_t>(libbpf_num_possible_cpus()));
  EXPECT_GE(pcpu->fd(), 0);
  auto hash = map("test/hash_map");
  ASSERT_TRUE(hash);
  EXPECT_FALSE(hash->info().per_cpu);

  auto dup = registry_.register_object(*obj_);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message().find("already registered"), std::string::npos);

  auto missing = registry_.find("test/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(missing.error().message().find("test/hash_map"), std::string::npos)
      << missing.error().describe();
}

TEST_F(BpfMaps, HashLookupUpdateDeleteIterate) {
  auto hash = map("test/hash_map");
  ASSERT_TRUE(hash);
  std::map<std::uint32_t, std::uint64_t> want{{1, 10}, {2, 20}, {7, 70}};
  for (auto [k, v] : want) TH_ASSERT_OK(hash->update_value(k, v));
  std::uint64_t got = 0;
  TH_ASSERT_OK(hash->lookup_value(std::uint32_t{2}, got));
  EXPECT_EQ(got, 20u);

  auto absent = hash->lookup_value(std::uint32_t{3}, got);
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.error().kind(), ErrorKind::kNotFound);

  std::map<std::uint32_t, std::uint64_t> seen;
  TH_ASSERT_OK(hash->for_each([&](auto key, auto value) {
    std::uint32_t k = 0;
    std::uint64_t v = 0;
    std::memcpy(&k, key.data(), sizeof(k));
    std::memcpy(&v, value.data(), sizeof(v));
    seen[k] = v;
    return true;
  }));
  EXPECT_EQ(seen, want);

  // next_key walks the same keys; kNotFound at the end
  std::uint32_t key = 0;
  std::size_t n = 0;
  TH_ASSERT_OK(hash->next_key({}, wbytes(key)));
  for (++n;; ++n) {
    std::uint32_t next = 0;
    auto st = hash->next_key(bytes(key), wbytes(next));
    if (!st.ok()) {
      EXPECT_EQ(st.error().kind(), ErrorKind::kNotFound);
      break;
    }
    key = next;
  }
  EXPECT_EQ(n, want.size());

  TH_ASSERT_OK(hash->remove(bytes(std::uint32_t{1})));
  auto again = hash->remove(bytes(std::uint32_t{1}));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind(), ErrorKind::kNotFound);

  // BPF_NOEXIST on an existing key
  auto exists = hash->update_value(std::uint32_t{2}, std::uint64_t{1}, BPF_NOEXIST);
  ASSERT_FALSE(exists.ok());
  EXPECT_EQ(exists.error().kind(), ErrorKind::kMap);
}

TEST_F(BpfMaps, SizeMismatchesNameMapAndSizes) {
  auto hash = map("test/hash_map");
  ASSERT_TRUE(hash);
  std::uint64_t value = 0;
  auto bad_key = hash->lookup_value(std::uint64_t{1}, value);
  ASSERT_FALSE(bad_key.ok());
  EXPECT_EQ(bad_key.error().kind(), ErrorKind::kMap);
  EXPECT_NE(bad_key.error().message().find("test/hash_map"), std::string::npos);
  EXPECT_NE(bad_key.error().message().find("4 bytes expected, 8 given"), std::string::npos)
      << bad_key.error().describe();

  std::uint32_t small = 0;
  auto bad_value = hash->lookup_value(std::uint32_t{1}, small);
  ASSERT_FALSE(bad_value.ok());
  EXPECT_NE(bad_value.error().message().find("8 bytes expected, 4 given"), std::string::npos)
      << bad_value.error().describe();

  auto bad_update = hash->update_value(std::uint32_t{1}, small);
  ASSERT_FALSE(bad_update.ok());
  EXPECT_EQ(bad_update.error().kind(), ErrorKind::kMap);

  auto pcpu = map("test/pcpu_array");
  ASSERT_TRUE(pcpu);
  std::uint64_t one = 0;
  auto bad_pcpu = pcpu->update_value(std::uint32_t{0}, one);
  ASSERT_FALSE(bad_pcpu.ok());
  EXPECT_NE(bad_pcpu.error().message().find("16 bytes"), std::string::npos)
      << bad_pcpu.error().describe();
}

TEST_F(BpfMaps, ArrayMapUpdateAndDeleteRefused) {
  auto array = map("test/array_map");
  ASSERT_TRUE(array);
  TH_ASSERT_OK(array->update_value(std::uint32_t{3}, std::uint64_t{33}));
  std::uint64_t v = 0;
  TH_ASSERT_OK(array->lookup_value(std::uint32_t{3}, v));
  EXPECT_EQ(v, 33u);
  TH_ASSERT_OK(array->lookup_value(std::uint32_t{0}, v));
  EXPECT_EQ(v, 0u);
  auto del = array->remove(bytes(std::uint32_t{3}));
  ASSERT_FALSE(del.ok());
  EXPECT_NE(del.error().message().find("array"), std::string::npos) << del.error().describe();
  std::size_t entries = 0;
  TH_ASSERT_OK(array->for_each([&](auto, auto) {
    ++entries;
    return true;
  }));
  EXPECT_EQ(entries, 4u);
}

TEST_F(BpfMaps, PerCpuSumRawAndReplicatedUpdate) {
  auto pcpu = map("test/pcpu_array");
  ASSERT_TRUE(pcpu);
  const std::uint32_t ncpus = pcpu->info().ncpus;
  ASSERT_GE(ncpus, 1u);

  // one value goes to every CPU: the sum is ncpus times it
  TH_ASSERT_OK(pcpu->update_value(std::uint32_t{0}, Pair{3, 5}));
  Pair sum{};
  TH_ASSERT_OK(pcpu->lookup_value(std::uint32_t{0}, sum));
  EXPECT_EQ(sum.a, 3u * ncpus);
  EXPECT_EQ(sum.b, 5u * ncpus);

  // distinct values per CPU, written and read raw
  std::vector<Pair> raw(ncpus);
  for (std::uint32_t c = 0; c < ncpus; ++c) raw[c] = {c + 1u, 100u * (c + 1u)};
  const std::uint32_t key = 1;
  TH_ASSERT_OK(pcpu->update(bytes(key), std::as_bytes(std::span(raw))));
  std::vector<Pair> back(ncpus);
  TH_ASSERT_OK(pcpu->lookup(bytes(key), std::as_writable_bytes(std::span(back)), PerCpu::kRaw));
  for (std::uint32_t c = 0; c < ncpus; ++c) {
    EXPECT_EQ(back[c].a, c + 1u);
    EXPECT_EQ(back[c].b, 100u * (c + 1u));
  }
  TH_ASSERT_OK(pcpu->lookup_value(key, sum));
  EXPECT_EQ(sum.a, std::uint64_t{ncpus} * (ncpus + 1) / 2);
  EXPECT_EQ(sum.b, 100u * std::uint64_t{ncpus} * (ncpus + 1) / 2);

  // raw with the wrong size is refused
  std::vector<Pair> short_raw(ncpus + 1);
  auto bad = pcpu->lookup(bytes(key), std::as_writable_bytes(std::span(short_raw)), PerCpu::kRaw);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind(), ErrorKind::kMap);

  // per-CPU hash: iterate with sums
  auto phash = map("test/pcpu_hash");
  ASSERT_TRUE(phash);
  TH_ASSERT_OK(phash->update_value(std::uint32_t{9}, std::uint64_t{2}));
  std::uint64_t total = 0;
  TH_ASSERT_OK(phash->for_each([&](auto, auto value) {
    std::uint64_t v = 0;
    std::memcpy(&v, value.data(), sizeof(v));
    total += v;
    return true;
  }));
  EXPECT_EQ(total, 2u * ncpus);
}

TEST_F(BpfMaps, OddPerCpuValueCannotBeSummed) {
  auto odd = map("test/pcpu_odd");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->info().value_size, 12u);
  std::array<std::byte, 12> value{};
  auto sum = odd->lookup(bytes(std::uint32_t{0}), value);
  ASSERT_FALSE(sum.ok());
  EXPECT_NE(sum.error().message().find("multiple of 8"), std::string::npos)
      << sum.error().describe();
  std::vector<std::byte> raw(odd->info().raw_value_size());
  EXPECT_EQ(raw.size(), 16u * odd->info().ncpus);
  TH_EXPECT_OK(odd->lookup(bytes(std::uint32_t{0}), raw, PerCpu::kRaw));
  // a single 12-byte value is replicated (padded to 16 per CPU)
  std::array<std::uint32_t, 3> one{1, 2, 3};
  TH_ASSERT_OK(odd->update(bytes(std::uint32_t{0}), std::as_bytes(std::span(one))));
  TH_ASSERT_OK(odd->lookup(bytes(std::uint32_t{0}), raw, PerCpu::kRaw));
  for (std::uint32_t c = 0; c < odd->info().ncpus; ++c) {
    std::uint32_t third = 0;
    std::memcpy(&third, raw.data() + c * 16 + 8, sizeof(third));
    EXPECT_EQ(third, 3u);
  }
}

TEST_F(BpfMaps, RemoveOwnerKeepsOutstandingRefsUsable) {
  auto hash = map("test/hash_map");
  ASSERT_TRUE(hash);
  TH_ASSERT_OK(hash->update_value(std::uint32_t{5}, std::uint64_t{55}));
  registry_.remove_owner("test");
  EXPECT_TRUE(registry_.list().empty());
  EXPECT_FALSE(registry_.find("test/hash_map").ok());
  obj_.reset();  // the object and its fds are gone; the ref holds its own fd
  std::uint64_t v = 0;
  TH_ASSERT_OK(hash->lookup_value(std::uint32_t{5}, v));
  EXPECT_EQ(v, 55u);
}

TEST_F(BpfMaps, RodataValuesReachTheProgram) {
  auto obj = open_object("test_maps2", embedded::test_maps_bpf());
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->set_rodata_value("knob_u32", std::uint32_t{2}));
  TH_ASSERT_OK(obj->set_rodata_value("knob_u64", std::uint64_t{1234}));
  TH_ASSERT_OK(obj->load());
  MapRegistry registry;
  TH_ASSERT_OK(registry.register_object(*obj));
  ProbeSet probes("test");
  // tht_maps_touch adds knob_u64 to array_map[knob_u32] on every syscall of any process
  TH_ASSERT_OK(probes.attach(*obj, "tht_maps_touch", AttachSpec::raw_tp("sys_enter")));
  for (int i = 0; i < 5; ++i) (void)::syscall(SYS_getppid);
  probes.detach_all();
  auto array = registry.find("test/array_map");
  TH_ASSERT_OK(array);
  std::uint64_t slot2 = 0;
  std::uint64_t slot0 = 0;
  TH_ASSERT_OK((*array)->lookup_value(std::uint32_t{2}, slot2));
  TH_ASSERT_OK((*array)->lookup_value(std::uint32_t{0}, slot0));
  EXPECT_GE(slot2, 5u * 1234u);
  EXPECT_EQ(slot2 % 1234u, 0u);
  EXPECT_EQ(slot0, 0u) << "the default knob_u32 (0) must not be in effect";
}

TEST_F(BpfMaps, RingbufResizeIsCheckedBeforeLoad) {
  auto obj = open_object("test_maps3", embedded::test_maps_bpf());
  ASSERT_TRUE(obj);
  auto bad = obj->set_map_max_entries("events", 1000);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("power of two"), std::string::npos);
  auto unknown = obj->set_map_max_entries("nope", 8);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind(), ErrorKind::kNotFound);
  TH_ASSERT_OK(obj->set_map_max_entries("events", 64 * 1024));
  TH_ASSERT_OK(obj->load());
  MapRegistry registry;
  TH_ASSERT_OK(registry.register_object(*obj));
  auto events = registry.find("test/events");
  TH_ASSERT_OK(events);
  EXPECT_EQ((*events)->info().type, BPF_MAP_TYPE_RINGBUF);
  EXPECT_EQ((*events)->info().max_entries, 64u * 1024u);
  auto late = obj->set_map_max_entries("events", 128 * 1024);
  EXPECT_FALSE(late.ok());
}

TEST_F(BpfMaps, StatsCountProgramRuns) {
  BpfStatsGuard guard;
  ASSERT_TRUE(guard.available()) << guard.unavailable_reason();
  auto obj = open_object("test_probes", embedded::test_probes_bpf());
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  ProbeSet probes("test");
  TH_ASSERT_OK(probes.attach(*obj, "tht_raw_enter", AttachSpec::raw_tp("sys_enter")));
  for (int i = 0; i < 20; ++i) (void)::syscall(SYS_getppid);
  auto stats = read_object_stats(*obj);
  TH_ASSERT_OK(stats);
  bool found = false;
  for (const auto& s : *stats) {
    if (s.name != "tht_raw_enter") continue;
    found = true;
    EXPECT_GE(s.run_cnt, 20u);
    EXPECT_GT(s.run_time_ns, 0u);
    EXPECT_GT(s.id, 0u);
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace tracehost::host
