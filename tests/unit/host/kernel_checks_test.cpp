// Unit tests of the kernel checks that need no root: parsing and capability decisions.
#include "host/kernel_checks.hpp"

#include <linux/capability.h>

#include <gtest/gtest.h>

namespace tracehost::host {
namespace {

std::uint64_t caps(std::initializer_list<int> list) {
  std::uint64_t mask = 0;
  for (int c : list) mask |= std::uint64_t{1} << c;
  return mask;
}

TEST(KernelChecks, CapabilityDecision) {
  EXPECT_TRUE(check_bpf_capabilities(caps({CAP_SYS_ADMIN})).ok());
  EXPECT_TRUE(check_bpf_capabilities(caps({CAP_BPF, CAP_PERFMON})).ok());

  auto none = check_bpf_capabilities(0);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind(), ErrorKind::kPermission);
  EXPECT_NE(none.error().message().find("CAP_BPF and CAP_PERFMON"), std::string::npos);
  EXPECT_NE(none.error().message().find("run as root or grant CAP_BPF,CAP_PERFMON"),
            std::string::npos);

  auto only_bpf = check_bpf_capabilities(caps({CAP_BPF}));
  ASSERT_FALSE(only_bpf.ok());
  EXPECT_NE(only_bpf.error().message().find("lacks CAP_PERFMON"), std::string::npos)
      << only_bpf.error().message();

  auto only_perfmon = check_bpf_capabilities(caps({CAP_PERFMON, CAP_NET_ADMIN}));
  ASSERT_FALSE(only_perfmon.ok());
  EXPECT_NE(only_perfmon.error().message().find("lacks CAP_BPF:"), std::string::npos)
      << only_perfmon.error().message();
}

TEST(KernelChecks, ParsesKernelReleases) {
  auto v = parse_kernel_release("6.18.44-fc-v669");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->major, 6);
  EXPECT_EQ(v->minor, 18);
  EXPECT_EQ(v->patch, 44);
  EXPECT_EQ(v->release, "6.18.44-fc-v669");

  auto debian = parse_kernel_release("6.1.0-18-amd64");
  ASSERT_TRUE(debian);
  EXPECT_EQ(debian->minor, 1);
  EXPECT_EQ(debian->patch, 0);

  auto two = parse_kernel_release("5.8");
  ASSERT_TRUE(two);
  EXPECT_TRUE(two->at_least(5, 8));
  EXPECT_FALSE(two->at_least(5, 9));
  EXPECT_TRUE(two->at_least(4, 19));
  EXPECT_FALSE(parse_kernel_release("5.7.19")->at_least(5, 8));

  EXPECT_FALSE(parse_kernel_release(""));
  EXPECT_FALSE(parse_kernel_release("linux"));
  EXPECT_FALSE(parse_kernel_release("6"));
  EXPECT_FALSE(parse_kernel_release("6."));
}

TEST(KernelChecks, ParsesCpuLists) {
  EXPECT_EQ(*parse_cpu_list("0-3\n"), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(*parse_cpu_list("0,2-3,7"), (std::vector<int>{0, 2, 3, 7}));
  EXPECT_EQ(*parse_cpu_list("5"), (std::vector<int>{5}));
  EXPECT_TRUE(parse_cpu_list("")->empty());
  EXPECT_FALSE(parse_cpu_list("3-1"));
  EXPECT_FALSE(parse_cpu_list("a"));
  EXPECT_FALSE(parse_cpu_list("1,"));
  EXPECT_FALSE(parse_cpu_list("1-"));
}

TEST(KernelChecks, OnlineCpusOfThisMachine) {
  auto cpus = online_cpus();
  ASSERT_TRUE(cpus.ok()) << cpus.error().describe();
  EXPECT_FALSE(cpus->empty());
  EXPECT_EQ(cpus->front(), 0);
}

TEST(KernelChecks, RunningKernelVersionParses) {
  auto v = kernel_version();
  ASSERT_TRUE(v.ok()) << v.error().describe();
  EXPECT_GE(v->major, 3);
  EXPECT_FALSE(v->release.empty());
}

}  // namespace
}  // namespace tracehost::host
