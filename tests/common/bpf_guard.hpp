// Guards for tests that need BPF privileges or a kernel feature.
//
// Without privileges a test skips loudly; with TRACEHOST_REQUIRE_BPF=1 in the environment (CI)
// the same condition is a failure, so runtime tests can never pass by skipping.
#pragma once

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace tracehost::testing {

inline bool bpf_required() {
  const char* v = std::getenv("TRACEHOST_REQUIRE_BPF");
  return v != nullptr && std::strcmp(v, "0") != 0 && v[0] != '\0';
}

// True when the process can load BPF and open perf events: CAP_SYS_ADMIN, or CAP_BPF + CAP_PERFMON.
inline bool have_bpf_privileges() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return geteuid() == 0;
  auto has = [&](int cap) { return (data[cap / 32].effective & (1u << (cap % 32))) != 0; };
  return has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON));
}

}  // namespace tracehost::testing

// Use at the top of a test body (or SetUp) that loads real BPF.
#define TRACEHOST_REQUIRE_BPF_PRIVILEGES()                                                       \
  do {                                                                                           \
    if (!::tracehost::testing::have_bpf_privileges()) {                                          \
      if (::tracehost::testing::bpf_required()) {                                                \
        FAIL() << "TRACEHOST_REQUIRE_BPF=1 but this process lacks CAP_BPF+CAP_PERFMON (or "     \
                  "CAP_SYS_ADMIN): run the tests as root";                                       \
      }                                                                                          \
      std::fprintf(stderr, "\n*** SKIPPED %s: no BPF privileges (run as root; CI sets "         \
                           "TRACEHOST_REQUIRE_BPF=1 to make this a failure) ***\n\n",           \
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());            \
      GTEST_SKIP() << "no BPF privileges";                                                       \
    }                                                                                            \
  } while (0)
