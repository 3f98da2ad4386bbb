// The cpu_profile window library: raw kernel samples -> symbolised profile (frame order, kernel
// above user, unresolved frames kept), top functions, and the window writer's files and
// retention. No root: symbols come from tables the test installs.
#include "window.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/folded.hpp"

namespace tracehost::cpu_profile {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tracehost-window-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Kernel symbols for a symbolizer that knows no process (so user frames are unresolved).
KernelSymbols test_kernel_symbols() {
  std::istringstream kallsyms(
      "ffffffff81000000 T entry_SYSCALL_64\n"
      "ffffffff81000100 T do_syscall_64\n"
      "ffffffff81000200 T __x64_sys_getppid\n"
      "ffffffff81000300 T _end_of_text\n");
  return KernelSymbols::parse(kallsyms);
}

TEST(Window, BuildProfileOrdersRootFirstWithKernelOnTop) {
  Symbolizer sym("/nonexistent-proc");
  sym.set_kernel_symbols(test_kernel_symbols());
  RawSample r;
  r.pid = 4242;
  r.comm = "app";
  r.count = 3;
  r.user = {0x401010, 0x402020};  // leaf first
  r.kernel = {0xffffffff81000210, 0xffffffff81000110, 0xffffffff81000010};
  ProfileWindow w;
  w.frequency_hz = 99;
  const Profile p = build_profile(std::span<const RawSample>(&r, 1), sym, w, false);
  ASSERT_EQ(p.samples.size(), 1u);
  const Sample& s = p.samples[0];
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.comm, "app");
  EXPECT_FALSE(s.tid.has_value());
  ASSERT_EQ(s.frames.size(), 5u);
  // user root, user leaf, then kernel root .. kernel leaf
  EXPECT_EQ(s.frames[0].address, 0x402020u);
  EXPECT_EQ(s.frames[0].kind, FrameKind::kUser);
  EXPECT_EQ(s.frames[1].address, 0x401010u);
  EXPECT_EQ(s.frames[2].function, "entry_SYSCALL_64");
  EXPECT_EQ(s.frames[3].function, "do_syscall_64");
  EXPECT_EQ(s.frames[4].function, "__x64_sys_getppid");
  EXPECT_EQ(s.frames[4].kind, FrameKind::kKernel);
  // the process is unknown: its frames are kept, unnamed, with their address as the offset
  EXPECT_TRUE(s.frames[0].function.empty());
  EXPECT_EQ(write_folded(p),
            "app;[unknown]+0x402020;[unknown]+0x401010;entry_SYSCALL_64_[k];do_syscall_64_[k];"
            "__x64_sys_getppid_[k] 3\n");
}

// A return address just past a call that ends a function belongs to that function: every frame
// but the leaf is looked up at address - 1.
TEST(Window, ReturnAddressesAreLookedUpOneByteBack) {
  Symbolizer sym("/nonexistent-proc");
  sym.set_kernel_symbols(test_kernel_symbols());
  RawSample r;
  r.pid = 1;
  r.comm = "k";
  r.count = 1;
  // leaf exactly at __x64_sys_getppid's start; its caller's return address is at the start of
  // __x64_sys_getppid too, but it is a return address, so it belongs to do_syscall_64
  r.kernel = {0xffffffff81000200, 0xffffffff81000200};
  const Profile p = build_profile(std::span<const RawSample>(&r, 1), sym, {}, false);
  ASSERT_EQ(p.samples[0].frames.size(), 2u);
  EXPECT_EQ(p.samples[0].frames[0].function, "do_syscall_64");
  EXPECT_EQ(p.samples[0].frames[1].function, "__x64_sys_getppid");
}

TEST(Window, PerThreadKeepsTheThreadId) {
  Symbolizer sym("/nonexistent-proc");
  sym.set_kernel_symbols(test_kernel_symbols());
  RawSample r;
  r.pid = 10;
  r.tid = 11;
  r.comm = "t";
  r.count = 1;
  r.kernel = {0xffffffff81000210};
  auto p = build_profile(std::span<const RawSample>(&r, 1), sym, {}, true);
  ASSERT_TRUE(p.samples[0].tid.has_value());
  EXPECT_EQ(*p.samples[0].tid, 11u);
}

Frame named(const std::string& fn) {
  Frame f;
  f.function = fn;
  f.module = "app";
  f.kind = FrameKind::kUser;
  return f;
}

TEST(Window, TopFunctionsSelfAndTotal) {
  Profile p;
  auto add = [&](std::vector<std::string> names, std::uint64_t n) {
    Sample s;
    s.comm = "app";
    s.count = n;
    for (auto& name : names) s.frames.push_back(named(name));
    p.samples.push_back(std::move(s));
  };
  add({"main", "hot"}, 75);
  add({"main", "warm"}, 20);
  add({"main", "rec", "rec", "rec"}, 5);  // recursion counts once in total
  const TopFunctions top = top_functions(p, 3);
  EXPECT_EQ(top.samples, 100u);
  ASSERT_EQ(top.by_self.size(), 3u);
  EXPECT_EQ(top.by_self[0].function, "hot");
  EXPECT_EQ(top.by_self[0].self, 75u);
  EXPECT_EQ(top.by_self[1].function, "warm");
  EXPECT_EQ(top.by_self[2].function, "rec");
  EXPECT_EQ(top.by_self[2].self, 5u);
  ASSERT_EQ(top.by_total.size(), 3u);
  EXPECT_EQ(top.by_total[0].function, "main");
  EXPECT_EQ(top.by_total[0].total, 100u);
  EXPECT_EQ(top.by_total[1].function, "hot");
  const TopFunctions one = top_functions(p, 1);
  EXPECT_EQ(one.by_self.size(), 1u);
  // rec's total is 5, not 15
  const TopFunctions all = top_functions(p, 10);
  for (const auto& f : all.by_total) {
    if (f.function == "rec") {
      EXPECT_EQ(f.total, 5u);
    }
  }
}

Profile small_profile() {
  Profile p;
  p.window.start_ns = 1'700'000'000'000'000'000ULL;
  p.window.end_ns = p.window.start_ns + 10'000'000'000ULL;
  p.window.frequency_hz = 99;
  p.window.period_ns = 1'000'000'000ULL / 99;
  Sample s;
  s.comm = "app";
  s.pid = 7;
  s.count = 4;
  s.frames = {named("main"), named("hot")};
  p.samples.push_back(s);
  return p;
}

TEST(Window, WriterWritesEachFormatAndKeepsTheNewestWindows) {
  TempDir dir;
  WindowWriter writer(dir.path(), kFormatPprof | kFormatFolded | kFormatSvg, 2);
  const auto t0 = std::chrono::system_clock::from_time_t(1'790'000'000);
  std::vector<std::vector<fs::path>> windows;
  for (int i = 0; i < 3; ++i) {
    auto files = writer.write(small_profile(), t0 + std::chrono::seconds(10 * i));
    ASSERT_TRUE(files.ok()) << files.error().describe();
    ASSERT_EQ(files->size(), 3u);
    windows.push_back(*files);
    writer.rotate();
  }
  // names: prefix, UTC start, sequence, extension
  EXPECT_EQ(windows[0][0].filename().string().substr(0, 12), "cpu_profile-");
  EXPECT_TRUE(windows[0][0].string().ends_with("-000001.pb.gz")) << windows[0][0];
  EXPECT_TRUE(windows[0][1].string().ends_with("-000001.folded"));
  EXPECT_TRUE(windows[0][2].string().ends_with("-000001.svg"));
  // the first window is gone, the last two stay (all three formats each)
  for (const auto& p : windows[0]) EXPECT_FALSE(fs::exists(p)) << p;
  for (int i = 1; i < 3; ++i) {
    for (const auto& p : windows[static_cast<std::size_t>(i)]) EXPECT_TRUE(fs::exists(p)) << p;
  }
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".")) << "temporary file left behind";
    ++files;
  }
  EXPECT_EQ(files, 6u);
  std::ifstream folded(windows[2][1]);
  std::string line;
  std::getline(folded, line);
  EXPECT_EQ(line, "app;main;hot 4");
}

TEST(Window, WriterWithOneFormatAndUnlimitedRetention) {
  TempDir dir;
  WindowWriter writer(dir.path(), kFormatFolded, 0);
  for (int i = 0; i < 4; ++i) {
    auto files = writer.write(small_profile(), std::chrono::system_clock::now());
    ASSERT_TRUE(files.ok());
    ASSERT_EQ(files->size(), 1u);
  }
  EXPECT_EQ(writer.rotate(), 0u);
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++n;
  EXPECT_EQ(n, 4u);
}

TEST(Window, WriteErrorNamesThePath) {
  WindowWriter writer("/nonexistent-tracehost-dir", kFormatFolded, 0);
  auto files = writer.write(small_profile(), std::chrono::system_clock::now());
  ASSERT_FALSE(files.ok());
  EXPECT_NE(files.error().message().find("/nonexistent-tracehost-dir"), std::string::npos)
      << files.error().message();
}

TEST(Window, OutputFormatNames) {
  EXPECT_EQ(parse_output_format("pprof"), unsigned{kFormatPprof});
  EXPECT_EQ(parse_output_format("folded"), unsigned{kFormatFolded});
  EXPECT_EQ(parse_output_format("svg"), unsigned{kFormatSvg});
  EXPECT_EQ(parse_output_format("png"), 0u);
}

}  // namespace
}  // namespace tracehost::cpu_profile
