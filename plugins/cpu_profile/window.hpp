// One profile window on the host side, between the kernel maps and the files: the raw samples
// drained from the kernel become a symbolised Profile, its top functions are ranked, and the
// window is written in the configured formats with retention. No kernel access here, so it is
// unit-tested without root (tests/unit/plugins/cpu_profile/window_test.cpp).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/profile.hpp"
#include "symbolizer/symbolizer.hpp"
#include "tracehost/result.hpp"

namespace tracehost::cpu_profile {

// One (process, thread, user stack, kernel stack) count as the kernel recorded it.
struct RawSample {
  std::uint32_t pid = 0;  // tgid; 0 is the idle task
  std::uint32_t tid = 0;  // 0 unless per_thread
  std::string comm;
  std::vector<std::uint64_t> user;    // leaf first, as bpf_get_stackid stores it
  std::vector<std::uint64_t> kernel;  // leaf first
  std::uint64_t count = 0;
};

// Symbolises every frame (each distinct address once per window) and returns the profile,
// frames root first with kernel frames above user frames. Unresolved frames keep their module
// and offset (function empty); nothing is dropped.
Profile build_profile(std::span<const RawSample> raw, Symbolizer& symbolizer,
                      const ProfileWindow& window, bool per_thread);

struct FunctionShare {
  std::string function;     // frame_display_name()
  std::string module;       // may be empty
  std::uint64_t self = 0;   // samples with this function as the leaf
  std::uint64_t total = 0;  // samples with this function anywhere on the stack (once each)
};

struct TopFunctions {
  std::uint64_t samples = 0;
  std::vector<FunctionShare> by_self;   // at most n, most first (ties: by name)
  std::vector<FunctionShare> by_total;  // at most n
};

// Functions are told apart by (name, module); the process-name root is not a function.
TopFunctions top_functions(const Profile& profile, std::size_t n);

enum OutputFormat : unsigned {
  kFormatPprof = 1u << 0,   // <stem>.pb.gz
  kFormatFolded = 1u << 1,  // <stem>.folded
  kFormatSvg = 1u << 2,     // <stem>.svg
};

// "pprof" / "folded" / "svg" -> the bit; 0 for anything else.
unsigned parse_output_format(std::string_view name);

// Writes windows as <dir>/<prefix><UTC start>-<seq>.<ext> (one stem per window, one file per
// format; each file written to a temporary name and renamed, so readers never see half a file)
// and keeps the newest `keep_windows` stems (0 = all).
class WindowWriter {
 public:
  WindowWriter(std::filesystem::path dir, unsigned formats, std::uint64_t keep_windows,
               std::string prefix = "cpu_profile-");

  // The files written, in format order. On error, files of this window already written stay.
  Result<std::vector<std::filesystem::path>> write(const Profile& profile,
                                                   std::chrono::system_clock::time_point start);
  // Deletes the files of the oldest windows beyond keep_windows; returns how many files went.
  std::size_t rotate();

  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }

 private:
  std::filesystem::path dir_;
  unsigned formats_;
  std::uint64_t keep_windows_;
  std::string prefix_;
  std::uint64_t sequence_ = 0;
};

// "20261125T152300Z"
std::string utc_stamp(std::chrono::system_clock::time_point t);

}  // namespace tracehost::cpu_profile
