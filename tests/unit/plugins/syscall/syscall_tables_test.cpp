// The syscall name tables generated at build time from the uapi headers
// (plugins/syscall/gen_syscall_tables.cmake).
#include "syscall/syscall_tables.hpp"

#include <sys/syscall.h>

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace tracehost::syscall {
namespace {

void expect_sorted_and_unique(std::span<const th_enum_entry> t) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < t.size(); ++i) {
    ASSERT_NE(t[i].name, nullptr);
    EXPECT_FALSE(std::string(t[i].name).empty()) << "entry " << i;
    EXPECT_TRUE(names.insert(t[i].name).second) << "duplicate name " << t[i].name;
    if (i > 0) {
      EXPECT_LT(t[i - 1].value, t[i].value) << "at " << t[i].name;
    }
  }
}

TEST(SyscallTables, X86_64NumbersFromUnistd64) {
  auto t = table(Arch::kX86_64);
  if (t.empty()) GTEST_SKIP() << "built without an x86_64 header: " << table_source(Arch::kX86_64);
  EXPECT_EQ(find_name(t, 0), "read");
  EXPECT_EQ(find_name(t, 2), "open");
  EXPECT_EQ(find_name(t, 39), "getpid");
  EXPECT_EQ(find_name(t, 59), "execve");
  EXPECT_EQ(find_name(t, 110), "getppid");
  EXPECT_EQ(find_name(t, 257), "openat");
  EXPECT_EQ(find_name(t, 322), "execveat");
  EXPECT_EQ(find_id(t, "openat2"), 437u);
  EXPECT_EQ(find_id(t, "creat"), 85u);
  // 335..423 are unassigned on x86_64
  EXPECT_EQ(find_name(t, 400), "");
  EXPECT_GT(t.size(), 350u);
  expect_sorted_and_unique(t);
}

TEST(SyscallTables, Arm64NumbersFromAsmGenericUnistd) {
  auto t = table(Arch::kArm64);
  if (t.empty())
    GTEST_SKIP() << "built without asm-generic/unistd.h: " << table_source(Arch::kArm64);
  EXPECT_EQ(find_name(t, 172), "getpid");
  EXPECT_EQ(find_name(t, 173), "getppid");
  EXPECT_EQ(find_name(t, 56), "openat");
  EXPECT_EQ(find_name(t, 221), "execve");
  EXPECT_EQ(find_name(t, 281), "execveat");
  EXPECT_EQ(find_name(t, 437), "openat2");
  // 64-bit names of the __NR3264_* numbers
  EXPECT_EQ(find_name(t, 25), "fcntl");
  EXPECT_EQ(find_name(t, 62), "lseek");
  EXPECT_EQ(find_name(t, 79), "newfstatat");
  EXPECT_EQ(find_name(t, 222), "mmap");
  // blocks arm64 opts into with __ARCH_WANT_*
  EXPECT_EQ(find_name(t, 38), "renameat");
  EXPECT_EQ(find_name(t, 163), "getrlimit");
  EXPECT_EQ(find_name(t, 435), "clone3");
  // 32-bit-only and legacy syscalls are not in the 64-bit table
  EXPECT_FALSE(find_id(t, "open").has_value());
  EXPECT_FALSE(find_id(t, "creat").has_value());
  EXPECT_FALSE(find_id(t, "clock_gettime64").has_value());
  EXPECT_FALSE(find_id(t, "fcntl64").has_value());
  // markers, not syscalls
  EXPECT_FALSE(find_id(t, "syscalls").has_value());
  EXPECT_FALSE(find_id(t, "arch_specific_syscall").has_value());
  EXPECT_GT(t.size(), 290u);
  expect_sorted_and_unique(t);
}

// The table the plugin uses agrees with the C library's numbers on this machine.
TEST(SyscallTables, NativeTableMatchesLibc) {
  auto t = native_table();
  ASSERT_FALSE(t.empty()) << table_source(native_arch());
  EXPECT_EQ(t.data(), table(native_arch()).data());
  EXPECT_EQ(find_id(t, "getpid"), static_cast<std::uint32_t>(SYS_getpid));
  EXPECT_EQ(find_id(t, "getppid"), static_cast<std::uint32_t>(SYS_getppid));
  EXPECT_EQ(find_id(t, "openat"), static_cast<std::uint32_t>(SYS_openat));
  EXPECT_EQ(find_id(t, "execve"), static_cast<std::uint32_t>(SYS_execve));
  EXPECT_EQ(find_id(t, "nanosleep"), static_cast<std::uint32_t>(SYS_nanosleep));
  EXPECT_EQ(find_id(t, "exit_group"), static_cast<std::uint32_t>(SYS_exit_group));
}

TEST(SyscallTables, ClosestNameForSuggestions) {
  auto t = native_table();
  EXPECT_EQ(closest_name(t, "getppidd"), "getppid");
  EXPECT_EQ(closest_name(t, "opnat"), "openat");
  EXPECT_EQ(closest_name(t, "xyzzy_frobnicate"), "");
}

}  // namespace
}  // namespace tracehost::syscall
