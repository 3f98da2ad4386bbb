// Syscall number <-> name tables for x86_64 and arm64, generated at build time from the kernel's
// uapi headers (gen_syscall_tables.cmake). The plugin uses the table of the arch it runs on;
// both are available so that tests and tools can check either on any build host.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tracehost/plugin_api.h"

namespace tracehost::syscall {

enum class Arch { kX86_64, kArm64 };

// Sorted by number. Empty when the build host had no header for that arch.
std::span<const th_enum_entry> table(Arch arch) noexcept;
// The header a table was generated from (for messages).
std::string_view table_source(Arch arch) noexcept;

// The arch this code was compiled for.
constexpr Arch native_arch() noexcept {
#if defined(__x86_64__)
  return Arch::kX86_64;
#elif defined(__aarch64__)
  return Arch::kArm64;
#else
#error "tracehost syscall plugin: unsupported architecture (x86_64 and arm64 are)"
#endif
}

inline std::span<const th_enum_entry> native_table() noexcept { return table(native_arch()); }

// Number of `name` in `entries`, if any.
std::optional<std::uint32_t> find_id(std::span<const th_enum_entry> entries,
                                     std::string_view name) noexcept;
// Name of `id` in `entries`, or empty.
std::string_view find_name(std::span<const th_enum_entry> entries, std::int64_t id) noexcept;
// The name closest to `name` by edit distance (for "did you mean"), or empty.
std::string_view closest_name(std::span<const th_enum_entry> entries, std::string_view name);

}  // namespace tracehost::syscall
