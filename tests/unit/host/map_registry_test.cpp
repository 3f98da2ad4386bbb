// Unit tests of the registry's pure helpers (per-CPU layout and sums); kernel maps are covered
// by tests/runtime/test_bpf_maps.cpp.
#include "host/map_registry.hpp"

#include <linux/bpf.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "host/bpf_object.hpp"

namespace tracehost::host {
namespace {

TEST(MapRegistryUnit, PerCpuTypes) {
  EXPECT_TRUE(is_per_cpu_map_type(BPF_MAP_TYPE_PERCPU_ARRAY));
  EXPECT_TRUE(is_per_cpu_map_type(BPF_MAP_TYPE_PERCPU_HASH));
  EXPECT_TRUE(is_per_cpu_map_type(BPF_MAP_TYPE_LRU_PERCPU_HASH));
  EXPECT_FALSE(is_per_cpu_map_type(BPF_MAP_TYPE_HASH));
  EXPECT_FALSE(is_per_cpu_map_type(BPF_MAP_TYPE_RINGBUF));
}

TEST(MapRegistryUnit, RawValueSizeRoundsEachCpuTo8) {
  MapInfo info;
  info.value_size = 12;
  info.ncpus = 3;
  EXPECT_EQ(info.raw_value_size(), 48u);
  info.value_size = 16;
  EXPECT_EQ(info.raw_value_size(), 48u);
  info.value_size = 1;
  EXPECT_EQ(info.raw_value_size(), 24u);
}

TEST(MapRegistryUnit, SumsEachWordAcrossCpus) {
  // 3 CPUs × {a, b}
  std::vector<std::uint64_t> raw{1, 10, 2, 20, 3, 30};
  std::uint64_t out[2] = {99, 99};
  sum_per_cpu(std::as_bytes(std::span(raw)), 16, 3, std::as_writable_bytes(std::span(out)));
  EXPECT_EQ(out[0], 6u);
  EXPECT_EQ(out[1], 60u);
}

TEST(MapRegistryUnit, FindOnEmptyRegistryExplainsNaming) {
  MapRegistry registry;
  auto r = registry.find("counts");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(r.error().message().find("plugin/map"), std::string::npos) << r.error().message();
}

TEST(BpfObjectUnit, GarbageIsNotAnObject) {
  const std::byte junk[64] = {};
  auto obj = BpfObject::make("test", "junk", junk);
  ASSERT_FALSE(obj.ok());
  EXPECT_EQ(obj.error().kind(), ErrorKind::kLoadFailed);
  EXPECT_NE(obj.error().context().find("junk"), std::string::npos);
  auto empty = BpfObject::make("test", "empty", {});
  ASSERT_FALSE(empty.ok());
}

TEST(BpfObjectUnit, VerifierLogTailKeepsTheRejectedProgramsLog) {
  std::string captured = "libbpf: prog 'a': some warning\n";
  captured += "libbpf: prog 'b': -- BEGIN PROG LOAD LOG --\n";
  for (int i = 0; i < 100; ++i) captured += "insn " + std::to_string(i) + "\n";
  captured += "R0 invalid mem access 'map_value_or_null'\n";
  captured += "-- END PROG LOAD LOG --\n";
  captured += "libbpf: failed to load object 'x'\n";
  const std::string tail = verifier_log_tail(captured);
  EXPECT_EQ(tail.find("some warning"), std::string::npos);
  EXPECT_NE(tail.find("BEGIN PROG LOAD LOG"), std::string::npos);
  EXPECT_NE(tail.find("lines omitted"), std::string::npos);
  EXPECT_NE(tail.find("invalid mem access"), std::string::npos);
  EXPECT_NE(tail.find("failed to load object"), std::string::npos);
  EXPECT_EQ(tail.find("insn 0\n"), std::string::npos);
  EXPECT_NE(tail.find("insn 99\n"), std::string::npos);

  // lines with register states run to hundreds of bytes: the excerpt keeps to its byte budget
  // and still ends with the reason
  std::string wide = "libbpf: prog 'c': -- BEGIN PROG LOAD LOG --\n";
  for (int i = 0; i < 60; ++i) wide += "insn " + std::to_string(i) + std::string(250, ' ') + "\n";
  wide += "R1 type=untrusted_ptr_ expected=sock_common\n";
  const std::string wide_tail = verifier_log_tail(wide);
  EXPECT_LE(wide_tail.size(), 3000u);
  EXPECT_NE(wide_tail.find("BEGIN PROG LOAD LOG"), std::string::npos);
  EXPECT_NE(wide_tail.find("lines omitted"), std::string::npos);
  EXPECT_TRUE(wide_tail.ends_with("insn 59" + std::string(250, ' ') +
                                  "\nR1 type=untrusted_ptr_ expected=sock_common\n"));

  EXPECT_EQ(verifier_log_tail("libbpf: only a warning\n"), "libbpf: only a warning\n");
  // the host never touches RLIMIT_MEMLOCK: libbpf's hint about it is dropped
  EXPECT_EQ(verifier_log_tail("a\nlibbpf: permission error; try raising 'ulimit -l'?\nb\n"),
            "a\nb\n");
  EXPECT_EQ(verifier_log_tail(""), "");
}

}  // namespace
}  // namespace tracehost::host
