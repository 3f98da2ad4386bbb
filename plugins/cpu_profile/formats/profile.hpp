#pragma once

// In-memory model of one CPU profile window, independent of the kernel side: the plugin fills it
// from sampled stacks after symbolisation, and the writers (folded, pprof, flame graph) read it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tracehost::cpu_profile {

enum class FrameKind : std::uint8_t { kUnknown = 0, kKernel = 1, kUser = 2 };

struct Frame {
  std::string function;       // symbol name; empty when unresolved (writers then show the address)
  std::string module;         // binary path, "[kernel]" or a kernel module name; may be empty
  std::uint64_t address = 0;  // instruction address (virtual, in the sampled task)
  std::optional<std::uint64_t> file_offset;  // address as an offset in `module`, when known
  FrameKind kind = FrameKind::kUnknown;
};

struct Sample {
  // ORDER: frames[0] is the ROOT (outermost caller, e.g. _start or the syscall entry) and
  // frames.back() is the LEAF (where the CPU was). Kernel frames of a user task come after
  // its user frames (the kernel runs "on top of" the user stack).
  std::vector<Frame> frames;
  std::uint64_t count = 1;  // how many samples had exactly this stack and labels
  std::string comm;         // task command name
  std::uint32_t pid = 0;    // tgid
  std::optional<std::uint32_t> tid;
};

struct ProfileWindow {
  std::uint64_t start_ns = 0;   // wall clock (CLOCK_REALTIME) ns since the Unix epoch
  std::uint64_t end_ns = 0;     // wall clock, exclusive
  std::uint64_t period_ns = 0;  // CPU time one sample stands for (1e9 / frequency_hz)
  std::uint32_t frequency_hz = 0;
};

struct Profile {
  ProfileWindow window;
  std::vector<Sample> samples;

  [[nodiscard]] std::uint64_t total_samples() const noexcept {
    std::uint64_t n = 0;
    for (const auto& s : samples) n += s.count;
    return n;
  }
};

// The name writers display for a frame: the function, else "module+0xoffset", else "0xaddr".
std::string frame_display_name(const Frame& frame);

}  // namespace tracehost::cpu_profile
