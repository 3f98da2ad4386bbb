// Reading structs that cross the plugin boundary. Every ABI struct starts with `struct_size` and
// only grows at the end, so the host copies min(struct_size, sizeof(T)) bytes into a zeroed T:
// fields a plugin built against an older minor does not know read as zero, fields a newer plugin
// added are ignored. Arrays of such structs are walked with the plugin's stride (the first
// element's struct_size), not the host's sizeof.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost::host {

// Larger than any plausible future version of an ABI struct: a struct_size beyond it is garbage.
inline constexpr std::uint32_t kMaxAbiStructSize = 64 * 1024;

// The v1.0 sizes. A struct shorter than its v1.0 size is refused (every v1.0 field is required
// reading); later minors only append.
template <typename T>
inline constexpr std::uint32_t kAbiV10Size = static_cast<std::uint32_t>(sizeof(T));

template <typename T>
Result<T> abi_read(const void* p, const char* what) {
  if (p == nullptr) return Error(ErrorKind::kAbi, std::string(what) + " is NULL");
  std::uint32_t size = 0;
  std::memcpy(&size, p, sizeof(size));
  if (size < kAbiV10Size<T> || size > kMaxAbiStructSize) {
    return Error(ErrorKind::kAbi, std::string(what) + " has struct_size " + std::to_string(size) +
                                      ", expected at least " + std::to_string(kAbiV10Size<T>));
  }
  T out{};
  std::memcpy(&out, p, size < sizeof(T) ? size : sizeof(T));
  out.struct_size = static_cast<std::uint32_t>(sizeof(T));
  return out;
}

// Reads `count` elements laid out with the plugin's stride.
template <typename T>
Result<std::vector<T>> abi_read_array(const T* first, std::size_t count, const char* what) {
  std::vector<T> out;
  if (count == 0) return out;
  if (first == nullptr) {
    return Error(ErrorKind::kAbi, std::string(what) + ": " + std::to_string(count) +
                                      " entries declared but the array is NULL");
  }
  std::uint32_t stride = 0;
  std::memcpy(&stride, first, sizeof(stride));
  const auto* base = reinterpret_cast<const unsigned char*>(first);
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const unsigned char* p = base + i * stride;
    std::uint32_t size = 0;
    std::memcpy(&size, p, sizeof(size));
    if (size != stride) {
      return Error(ErrorKind::kAbi, std::string(what) + "[" + std::to_string(i) +
                                        "] has struct_size " + std::to_string(size) +
                                        ", the array's first element has " +
                                        std::to_string(stride));
    }
    auto r = abi_read<T>(p, what);
    if (!r.ok()) return std::move(r).error();
    out.push_back(*r);
  }
  return out;
}

inline std::string abi_string(const char* s) {
  return s == nullptr ? std::string() : std::string(s);
}

}  // namespace tracehost::host
