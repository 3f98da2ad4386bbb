// Symbolizer tests: small ELF files are compiled at test time with the system compiler, their
// symbol values read with nm and their PT_LOAD layout with <elf.h>, independently of libelf, then
// placed at arbitrary load bases through synthetic /proc/PID/maps lines.
#include "symbolizer/symbolizer.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tracehost_test {
// Symbolised from the test process itself; noinline keeps a real body at a real address.
__attribute__((noinline)) int symbolizer_self_target(int x) {
  asm volatile("" ::: "memory");
  return x * 3 + 1;
}
}  // namespace tracehost_test

namespace {

using tracehost::cpu_profile::ElfSymbols;
using tracehost::cpu_profile::SymbolizedFrame;
using tracehost::cpu_profile::KernelSymbols;
using tracehost::cpu_profile::Mapping;
using tracehost::cpu_profile::PerfMap;
using tracehost::cpu_profile::Symbolizer;
namespace fs = std::filesystem;

// Pids above the kernel's pid_max (4194304) never exist, so nothing real is read for them.
constexpr pid_t kFakePid = 999'000'001;
constexpr pid_t kFakePid2 = 999'000'002;

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// nm: defined symbol name → value
std::map<std::string, std::uint64_t> nm_symbols(const fs::path& file) {
  std::map<std::string, std::uint64_t> syms;
  std::istringstream in(run("nm --defined-only " + file.string()));
  std::string value, type, name;
  while (in >> value >> type >> name) syms[name] = std::stoull(value, nullptr, 16);
  return syms;
}

struct Segment {
  std::uint64_t offset, vaddr, filesz, memsz;
  bool exec;
};

std::vector<Segment> load_segments(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<Segment> out;
  if (bytes.size() < sizeof(Elf64_Ehdr)) return out;
  Elf64_Ehdr eh;
  std::memcpy(&eh, bytes.data(), sizeof eh);
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, bytes.data() + eh.e_phoff + static_cast<std::size_t>(i) * eh.e_phentsize,
                sizeof ph);
    if (ph.p_type != PT_LOAD) continue;
    out.push_back({ph.p_offset, ph.p_vaddr, ph.p_filesz, ph.p_memsz, (ph.p_flags & PF_X) != 0});
  }
  return out;
}

// What the dynamic loader would put in /proc/PID/maps for `file` loaded at `base`.
std::vector<Mapping> synthetic_maps(const fs::path& file, std::uint64_t base) {
  struct stat st {};
  ::stat(file.c_str(), &st);
  std::vector<Mapping> maps;
  constexpr std::uint64_t kPage = 4096;
  for (const auto& s : load_segments(file)) {
    Mapping m;
    m.start = base + (s.vaddr & ~(kPage - 1));
    m.end = base + ((s.vaddr + s.memsz + kPage - 1) & ~(kPage - 1));
    m.offset = s.offset & ~(kPage - 1);
    m.dev_major = major(st.st_dev);
    m.dev_minor = minor(st.st_dev);
    m.inode = st.st_ino;
    m.executable = s.exec;
    m.path = file.string();
    maps.push_back(m);
  }
  return maps;
}

class SymbolizerElfTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("th_symbolizer_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    write(dir_ / "pie.c",
          "__attribute__((noinline)) int th_alpha(int x) { int y = x; for (int i = 0; i < 3; ++i) "
          "y += i; return y; }\n"
          "__attribute__((noinline)) int th_beta(int x) { return th_alpha(x) * 2 + 7; }\n"
          "int main(int argc, char** argv) { (void)argv; return th_beta(argc); }\n");
    write(dir_ / "lib.c",
          "__attribute__((noinline)) int th_lib_gamma(int x) { int y = x; for (int i = 0; i < 5; "
          "++i) y ^= i; return y; }\n"
          "int th_lib_delta(int x) { return th_lib_gamma(x) + 1; }\n");
    write(dir_ / "cxx.cpp",
          "namespace thns { __attribute__((noinline)) int compute(int x) { int y = x; for (int i = "
          "0; i < 4; ++i) y += i * x; return y; } }\n"
          "int th_cxx_entry(int x) { return thns::compute(x); }\n");
    const std::string d = dir_.string();
    compiled_ =
        std::system(
            ("cc -O0 -fPIE -pie -Wl,--build-id -o " + d + "/pie " + d + "/pie.c").c_str()) == 0 &&
        std::system(("cc -O0 -shared -fPIC -Wl,--build-id -o " + d + "/libth.so " + d + "/lib.c")
                        .c_str()) == 0 &&
        std::system(
            ("c++ -O0 -shared -fPIC -Wl,--build-id -o " + d + "/libthcxx.so " + d + "/cxx.cpp")
                .c_str()) == 0 &&
        // link-time addresses differ from file offsets: exercises offset → vaddr via PT_LOAD
        std::system(("cc -O0 -shared -fPIC -Wl,-Ttext-segment=0x400000 -o " + d +
                     "/libshifted.so " + d + "/lib.c")
                        .c_str()) == 0;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void SetUp() override { ASSERT_TRUE(compiled_) << "the system compiler (cc, c++) must work"; }

  static void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

  static inline fs::path dir_;
  static inline bool compiled_ = false;
};

TEST_F(SymbolizerElfTest, PieExecutableAtArbitraryBase) {
  const auto exe = dir_ / "pie";
  const auto syms = nm_symbols(exe);
  ASSERT_TRUE(syms.contains("th_alpha") && syms.contains("th_beta"));
  constexpr std::uint64_t kBase = 0x5555'1234'0000;
  Symbolizer s;
  s.remember(kFakePid, synthetic_maps(exe, kBase));

  SymbolizedFrame f = s.symbolize_user(kFakePid, kBase + syms.at("th_alpha") + 5);
  EXPECT_TRUE(f.known) << f.to_string();
  EXPECT_EQ(f.function, "th_alpha");
  EXPECT_EQ(f.offset, 5u);
  EXPECT_EQ(f.module, "pie");

  f = s.symbolize_user(kFakePid, kBase + syms.at("th_beta"));
  EXPECT_EQ(f.function, "th_beta");
  EXPECT_EQ(f.offset, 0u);
  EXPECT_EQ(f.to_string(), "th_beta");
}

TEST_F(SymbolizerElfTest, SharedLibraryAndDemangling) {
  const auto lib = dir_ / "libth.so";
  const auto cxx = dir_ / "libthcxx.so";
  const auto lib_syms = nm_symbols(lib);
  const auto cxx_syms = nm_symbols(cxx);
  ASSERT_TRUE(lib_syms.contains("th_lib_gamma"));
  ASSERT_TRUE(cxx_syms.contains("_ZN4thns7computeEi"));
  constexpr std::uint64_t kLibBase = 0x7f12'3400'0000;
  constexpr std::uint64_t kCxxBase = 0x7f55'0000'0000;
  auto maps = synthetic_maps(lib, kLibBase);
  auto more = synthetic_maps(cxx, kCxxBase);
  maps.insert(maps.end(), more.begin(), more.end());
  Symbolizer s;
  s.remember(kFakePid, maps);

  SymbolizedFrame f = s.symbolize_user(kFakePid, kLibBase + lib_syms.at("th_lib_gamma") + 9);
  EXPECT_EQ(f.function, "th_lib_gamma");
  EXPECT_EQ(f.offset, 9u);
  EXPECT_EQ(f.module, "libth.so");
  EXPECT_EQ(f.to_string(), "th_lib_gamma+0x9");

  f = s.symbolize_user(kFakePid, kCxxBase + cxx_syms.at("_ZN4thns7computeEi") + 2);
  EXPECT_EQ(f.function, "thns::compute(int)");
  EXPECT_EQ(f.offset, 2u);
  EXPECT_EQ(f.module, "libthcxx.so");
}

// A stripped library (only .dynsym, as distributions ship them) gets its local functions from a
// separate debug file found by build-id under the debug root, as Debian's -dbg packages lay out.
TEST_F(SymbolizerElfTest, StrippedLibraryUsesTheDebugFileOfItsBuildId) {
  const std::string d = dir_.string();
  write(dir_ / "hidden.c",
        "static __attribute__((noinline)) int th_hidden(int x) { int y = x; for (int i = 0; i < 7; "
        "++i) y += i * x; return y; }\n"
        "int th_exported(int x) { return th_hidden(x) + 1; }\n");
  ASSERT_EQ(std::system(("cc -O0 -g -shared -fPIC -Wl,--build-id -o " + d + "/libhidden.so " + d +
                         "/hidden.c")
                            .c_str()),
            0);
  const auto syms = nm_symbols(dir_ / "libhidden.so");
  ASSERT_TRUE(syms.contains("th_hidden"));
  const std::string id = ElfSymbols::read_build_id(dir_ / "libhidden.so");
  ASSERT_GT(id.size(), 2u);
  const fs::path root = dir_ / "debug";
  fs::create_directories(root / ".build-id" / id.substr(0, 2));
  const fs::path debug_file = root / ".build-id" / id.substr(0, 2) / (id.substr(2) + ".debug");
  ASSERT_EQ(std::system(("objcopy --only-keep-debug " + d + "/libhidden.so " + debug_file.string())
                            .c_str()),
            0);
  ASSERT_EQ(std::system(("strip --strip-all -o " + d + "/libhidden-stripped.so " + d +
                         "/libhidden.so")
                            .c_str()),
            0);

  // without the debug file the local function has no name
  auto bare = ElfSymbols::load(dir_ / "libhidden-stripped.so", "");
  ASSERT_NE(bare, nullptr);
  auto miss = bare->lookup(syms.at("th_hidden") + 4);
  EXPECT_TRUE(!miss.has_value() || miss->first != "th_hidden");
  EXPECT_TRUE(bare->debug_file().empty());

  auto with_debug = ElfSymbols::load(dir_ / "libhidden-stripped.so", root);
  ASSERT_NE(with_debug, nullptr);
  auto hit = with_debug->lookup(syms.at("th_hidden") + 4);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->first, "th_hidden");
  EXPECT_EQ(hit->second, 4u);
  EXPECT_EQ(with_debug->debug_file(), debug_file);
  // the exported function still resolves (from .dynsym)
  auto exported = with_debug->lookup(syms.at("th_exported"));
  ASSERT_TRUE(exported.has_value());
  EXPECT_EQ(exported->first, "th_exported");

  // a debug file with another build-id is not used
  ASSERT_EQ(std::system(("objcopy --only-keep-debug " + d + "/libth.so " + debug_file.string())
                            .c_str()),
            0);
  auto wrong = ElfSymbols::load(dir_ / "libhidden-stripped.so", root);
  ASSERT_NE(wrong, nullptr);
  EXPECT_TRUE(wrong->debug_file().empty());
}

TEST_F(SymbolizerElfTest, FileOffsetsDifferFromVirtualAddresses) {
  const auto lib = dir_ / "libshifted.so";
  const auto syms = nm_symbols(lib);
  ASSERT_GE(syms.at("th_lib_gamma"), 0x400000u);
  // bias = load address - link address, as the dynamic loader would choose it
  constexpr std::uint64_t kBias = 0x7f40'0000'0000;
  Symbolizer s;
  s.remember(kFakePid, synthetic_maps(lib, kBias));
  SymbolizedFrame f = s.symbolize_user(kFakePid, kBias + syms.at("th_lib_gamma") + 3);
  EXPECT_EQ(f.function, "th_lib_gamma") << f.to_string();
  EXPECT_EQ(f.offset, 3u);
  f = s.symbolize_user(kFakePid, kBias + syms.at("th_lib_delta"));
  EXPECT_EQ(f.function, "th_lib_delta") << f.to_string();
}

TEST_F(SymbolizerElfTest, CacheParsesEachFileOnceByInodeAndBuildId) {
  const auto lib = dir_ / "libth.so";
  const auto syms = nm_symbols(lib);
  Symbolizer s;
  s.remember(kFakePid, synthetic_maps(lib, 0x7f00'0000'0000));
  EXPECT_EQ(s.elf_parse_count(), 1u);
  // same file (same dev:inode) in another process at another base: no new parse
  s.remember(kFakePid2, synthetic_maps(lib, 0x7e00'0000'0000));
  EXPECT_EQ(s.elf_parse_count(), 1u);
  EXPECT_GE(s.elf_cache_hits(), 1u);
  EXPECT_EQ(s.symbolize_user(kFakePid2, 0x7e00'0000'0000 + syms.at("th_lib_gamma")).function,
            "th_lib_gamma");
  // a copy has a new inode but the same build-id: still no new parse
  const auto copy = dir_ / "libth-copy.so";
  fs::copy_file(lib, copy, fs::copy_options::overwrite_existing);
  s.remember(kFakePid2, synthetic_maps(copy, 0x7d00'0000'0000));
  EXPECT_EQ(s.elf_parse_count(), 1u);
  EXPECT_EQ(s.symbolize_user(kFakePid2, 0x7d00'0000'0000 + syms.at("th_lib_delta")).function,
            "th_lib_delta");
  // a different file is parsed
  s.remember(kFakePid2, synthetic_maps(dir_ / "pie", 0x5000'0000'0000));
  EXPECT_EQ(s.elf_parse_count(), 2u);
}

TEST_F(SymbolizerElfTest, RememberedProcessOutlivesItsFiles) {
  const auto src = dir_ / "libth.so";
  const auto gone = dir_ / "libth-gone.so";
  fs::copy_file(src, gone, fs::copy_options::overwrite_existing);
  const auto syms = nm_symbols(gone);
  Symbolizer s;
  s.remember(kFakePid, synthetic_maps(gone, 0x7f00'0000'0000));
  fs::remove(gone);  // the process exited and its files went away before the window drained
  EXPECT_EQ(s.symbolize_user(kFakePid, 0x7f00'0000'0000 + syms.at("th_lib_gamma") + 1).function,
            "th_lib_gamma");
}

TEST_F(SymbolizerElfTest, UnknownFramesKeepModuleAndOffset) {
  const auto blob = dir_ / "not-an-elf.bin";
  write(blob, std::string(8192, 'x'));
  Mapping m;
  m.start = 0x6000'0000'0000;
  m.end = m.start + 0x2000;
  m.offset = 0x1000;
  m.executable = true;
  m.path = blob.string();
  Symbolizer s;
  s.remember(kFakePid, {m});
  SymbolizedFrame f = s.symbolize_user(kFakePid, m.start + 0x10);
  EXPECT_FALSE(f.known);
  EXPECT_EQ(f.function, "[unknown]");
  EXPECT_EQ(f.module, "not-an-elf.bin");
  EXPECT_EQ(f.offset, 0x1010u);
  EXPECT_EQ(f.to_string(), "[unknown] (not-an-elf.bin+0x1010)");

  // outside every mapping, and a pid never seen that does not exist: still a frame
  f = s.symbolize_user(kFakePid, 0x10);
  EXPECT_EQ(f.function, "[unknown]");
  f = s.symbolize_user(kFakePid2, 0xdead);
  EXPECT_FALSE(f.known);
  EXPECT_EQ(f.offset, 0xdeadu);
}

TEST_F(SymbolizerElfTest, LiveProcessSnapshotRefreshesAfterDlopen) {
  Symbolizer s;
  ASSERT_TRUE(s.remember(::getpid()));
  void* handle = ::dlopen((dir_ / "libth.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << ::dlerror();
  void* sym = ::dlsym(handle, "th_lib_gamma");
  ASSERT_NE(sym, nullptr);
  const auto addr = reinterpret_cast<std::uintptr_t>(sym) + 2;
  // the snapshot predates dlopen; once it is older than the refresh interval a miss re-reads it
  std::this_thread::sleep_for(Symbolizer::kRefreshInterval + std::chrono::milliseconds(50));
  SymbolizedFrame f = s.symbolize_user(::getpid(), addr);
  EXPECT_EQ(f.function, "th_lib_gamma") << f.to_string();
  EXPECT_EQ(f.offset, 2u);
  EXPECT_EQ(f.module, "libth.so");
  ::dlclose(handle);
}

TEST(SymbolizerSelfTest, SymbolizesAFunctionOfThisProcess) {
  ASSERT_EQ(tracehost_test::symbolizer_self_target(2), 7);
  const auto addr = reinterpret_cast<std::uintptr_t>(&tracehost_test::symbolizer_self_target);
  Symbolizer s;
  ASSERT_TRUE(s.remember(::getpid()));
  SymbolizedFrame f = s.symbolize_user(::getpid(), addr + 1);
  EXPECT_TRUE(f.known) << f.to_string();
  EXPECT_EQ(f.function, "tracehost_test::symbolizer_self_target(int)");
  EXPECT_EQ(f.offset, 1u);
  EXPECT_EQ(f.module, fs::read_symlink("/proc/self/exe").filename().string());
  // refreshing the snapshot reuses every parsed file
  const auto parsed = s.elf_parse_count();
  ASSERT_TRUE(s.remember(::getpid()));
  EXPECT_EQ(s.elf_parse_count(), parsed);
  // libc's exported functions come from its .dynsym
  f = s.symbolize_user(::getpid(), reinterpret_cast<std::uintptr_t>(&::getpid));
  EXPECT_TRUE(f.known) << f.to_string();
  EXPECT_NE(f.function.find("getpid"), std::string::npos) << f.function;
}

TEST(SymbolizerMapsTest, ParsesProcMapsLines) {
  std::istringstream in(
      "55d0c0a00000-55d0c0a21000 r--p 00000000 fd:01 1311 /usr/bin/my app\n"
      "55d0c0a21000-55d0c0b00000 r-xp 00021000 fd:01 1311 /usr/bin/my app\n"
      "7ffd1c5f2000-7ffd1c5f4000 r-xp 00000000 00:00 0                          [vdso]\n"
      "7f0000000000-7f0000001000 rwxp 00000000 00:00 0\n"
      "garbage line\n");
  auto maps = tracehost::cpu_profile::parse_maps(in);
  ASSERT_EQ(maps.size(), 4u);
  EXPECT_EQ(maps[1].start, 0x55d0c0a21000u);
  EXPECT_EQ(maps[1].end, 0x55d0c0b00000u);
  EXPECT_EQ(maps[1].offset, 0x21000u);
  EXPECT_EQ(maps[1].dev_major, 0xfdu);
  EXPECT_EQ(maps[1].dev_minor, 1u);
  EXPECT_EQ(maps[1].inode, 1311u);
  EXPECT_TRUE(maps[1].executable);
  EXPECT_FALSE(maps[0].executable);
  EXPECT_EQ(maps[1].path, "/usr/bin/my app");
  EXPECT_EQ(maps[2].path, "[vdso]");
  EXPECT_EQ(maps[3].path, "");
}

TEST(KallsymsTest, ParsesAndLooksUp) {
  std::istringstream in(
      "0000000000000000 A fixed_percpu_data\n"
      "ffffffff81000000 T _stext\n"
      "ffffffff81001000 t do_one_initcall\n"
      "ffffffff81800000 D some_data\n"
      "ffffffffc0a00000 t ext4_file_read_iter\t[ext4]\n"
      "ffffffffc0a00100 T ext4_sync_fs\t[ext4]\n");
  auto table = KernelSymbols::parse(in);
  EXPECT_EQ(table.size(), 4u);  // text only
  SymbolizedFrame f = table.lookup(0xffffffff81001010);
  EXPECT_TRUE(f.known);
  EXPECT_EQ(f.function, "do_one_initcall");
  EXPECT_EQ(f.offset, 0x10u);
  EXPECT_EQ(f.module, "[kernel]");
  f = table.lookup(0xffffffffc0a00104);
  EXPECT_EQ(f.function, "ext4_sync_fs");
  EXPECT_EQ(f.module, "[ext4]");
  EXPECT_EQ(f.offset, 4u);
  f = table.lookup(0xffffffffc0a00000);
  EXPECT_EQ(f.function, "ext4_file_read_iter");
  f = table.lookup(0x1000);
  EXPECT_FALSE(f.known);
  EXPECT_EQ(f.function, "[unknown]");
}

TEST(KallsymsTest, HiddenAddressesGiveAnEmptyTable) {
  std::istringstream in(
      "0000000000000000 T _stext\n"
      "0000000000000000 t do_one_initcall\n");
  EXPECT_TRUE(KernelSymbols::parse(in).empty());
}

TEST(KallsymsTest, SymbolizerUsesKernelTable) {
  std::istringstream in("ffffffff81000000 T _stext\nffffffff81000200 T schedule\n");
  Symbolizer s;
  s.set_kernel_symbols(KernelSymbols::parse(in));
  EXPECT_EQ(s.symbolize_kernel(0xffffffff81000210).to_string(), "schedule+0x10");
}

TEST(KallsymsTest, RealKallsymsWhenReadable) {
  Symbolizer s;
  if (s.load_kernel_symbols() == 0) {
    GTEST_SKIP() << "/proc/kallsyms addresses are hidden (kptr_restrict, no CAP_SYSLOG)";
  }
  // find schedule's address the plain way and check the table names it
  std::ifstream in("/proc/kallsyms");
  std::string addr, type, name;
  std::uint64_t schedule = 0;
  while (in >> addr >> type >> name) {
    if (name == "schedule" && (type == "T" || type == "t"))
      schedule = std::stoull(addr, nullptr, 16);
    in.ignore(1 << 20, '\n');
  }
  ASSERT_NE(schedule, 0u);
  SymbolizedFrame f = s.symbolize_kernel(schedule + 1);
  EXPECT_EQ(f.function, "schedule");
  EXPECT_EQ(f.offset, 1u);
  EXPECT_EQ(f.module, "[kernel]");
}

TEST(PerfMapTest, ParsesAndLooksUp) {
  std::istringstream in(
      "7f0000001000 100 LazyCompile:~foo /app/x.js:1\n"
      "7f0000002000 20 bar\n"
      "not hex line\n");
  auto map = PerfMap::parse(in);
  EXPECT_EQ(map.size(), 2u);
  auto f = map.lookup(0x7f0000001010);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->function, "LazyCompile:~foo /app/x.js:1");
  EXPECT_EQ(f->offset, 0x10u);
  f = map.lookup(0x7f000000201f);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->function, "bar");
  EXPECT_FALSE(map.lookup(0x7f0000001100).has_value());
  EXPECT_FALSE(map.lookup(0x7f0000002020).has_value());
  EXPECT_FALSE(map.lookup(0x10).has_value());
}

TEST(PerfMapTest, SymbolizerReadsPerfMapFileForAnonymousCode) {
  const fs::path path = "/tmp/perf-" + std::to_string(kFakePid) + ".map";
  std::ofstream(path) << "7f0000001000 100 jitted_function\n";
  Mapping anon;
  anon.start = 0x7f0000000000;
  anon.end = 0x7f0000010000;
  anon.executable = true;
  Symbolizer s;
  s.remember(kFakePid, {anon});
  fs::remove(path);
  SymbolizedFrame f = s.symbolize_user(kFakePid, 0x7f0000001008);
  EXPECT_TRUE(f.known);
  EXPECT_EQ(f.function, "jitted_function");
  EXPECT_EQ(f.module, "[perf-map]");
  EXPECT_EQ(f.offset, 8u);
  // anonymous code the perf map does not name keeps its mapping and offset
  f = s.symbolize_user(kFakePid, 0x7f0000003004);
  EXPECT_FALSE(f.known);
  EXPECT_EQ(f.to_string(), "[unknown] ([anon]+0x3004)");
}

}  // namespace
