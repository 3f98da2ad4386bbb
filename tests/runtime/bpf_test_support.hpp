// Shared by the host kernel-side runtime tests (test_bpf_*.cpp).
#pragma once

#include <bpf/bpf.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

#include "common/bpf_guard.hpp"
#include "host/bpf_object.hpp"

namespace tracehost::testing {

// Loaded programs in the kernel whose name starts with "tht_" (every test BPF program).
inline int count_test_programs() {
  int count = 0;
  __u32 id = 0;
  while (bpf_prog_get_next_id(id, &id) == 0) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;  // freed meanwhile
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
        std::string_view(info.name).substr(0, 4) == "tht_") {
      ++count;
    }
    ::close(fd);
  }
  return count;
}

// Programs are freed when their last reference (fd or link) goes; some link types drop theirs
// after an RCU grace period, so give the kernel a moment.
inline int wait_for_test_programs_gone() {
  int n = count_test_programs();
  for (int i = 0; i < 100 && n != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    n = count_test_programs();
  }
  return n;
}

// Every test loads its objects as locals: by TearDown they are destroyed, and no test program
// may remain in the kernel.
class BpfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TRACEHOST_REQUIRE_BPF_PRIVILEGES();
    ASSERT_EQ(wait_for_test_programs_gone(), 0) << "a previous test leaked programs";
  }
  void TearDown() override {
    if (IsSkipped()) return;
    EXPECT_EQ(wait_for_test_programs_gone(), 0) << "this test leaked BPF programs";
  }
};

// Runs the program `prog_fd` `repeat` times in the kernel (BPF_PROG_TEST_RUN on a zeroed 64-byte
// packet: socket-filter producers of test records).
inline void run_program(int prog_fd, int repeat) {
  std::array<std::uint8_t, 64> packet{};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet.data(), .data_size_in = packet.size(),
              .repeat = repeat);
  ASSERT_EQ(bpf_prog_test_run_opts(prog_fd, &opts), 0) << std::strerror(errno);
}

inline std::unique_ptr<host::BpfObject> open_object(std::string name,
                                                    std::span<const std::byte> elf) {
  auto obj = host::BpfObject::make("test", std::move(name), elf);
  if (!obj.ok()) {
    ADD_FAILURE() << obj.error().describe();
    return nullptr;
  }
  return std::move(obj).value();
}

}  // namespace tracehost::testing

// gtest assertion on a Status / Result: prints the error when it fails.
#define TH_ASSERT_OK(expr)                                                 \
  do {                                                                     \
    const auto& th_assert_res_ = (expr);                                   \
    ASSERT_TRUE(th_assert_res_.ok()) << th_assert_res_.error().describe(); \
  } while (0)
#define TH_EXPECT_OK(expr)                                                 \
  do {                                                                     \
    const auto& th_expect_res_ = (expr);                                   \
    EXPECT_TRUE(th_expect_res_.ok()) << th_expect_res_.error().describe(); \
  } while (0)
