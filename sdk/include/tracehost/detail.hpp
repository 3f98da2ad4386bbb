// Internals of the SDK: calling the C host table, member-pointer paths, string building.
// Nothing here is part of the plugin-facing API; names may change between SDK versions.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost::detail {

// Calls a host service `fn(args..., &err)` and turns its th_status into a Status. The th_error
// lives on this frame: the host only writes it during the call.
template <typename Fn, typename... Args>
Status call(Fn fn, Args... args) {
  if (fn == nullptr) {
    return Error(ErrorKind::kAbi, "the host does not provide this service (older host API)");
  }
  th_error err{};
  err.struct_size = sizeof(th_error);
  th_status status = fn(args..., &err);
  if (status != TH_OK) return Error::from_c(status, err);
  return ok();
}

// A NUL-terminated copy of a string_view for the C API (keys and names are short).
inline std::string c_str(std::string_view s) { return std::string(s); }

// ---- string building without fmt/std::format --------------------------------------------------

template <typename T>
void append_one(std::string& out, const T& value) {
  using D = std::decay_t<T>;
  if constexpr (std::is_same_v<D, bool>) {
    out += value ? "true" : "false";
  } else if constexpr (std::is_same_v<D, char>) {
    out += value;
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    out += std::string_view(value);
  } else if constexpr (std::is_integral_v<D> && std::is_signed_v<D>) {
    // snprintf rather than std::to_chars: libstdc++'s to_chars tables are STB_GNU_UNIQUE
    // symbols, and one such symbol makes a plugin library impossible to unload.
    char buf[32];
    int n = std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(value));
    out.append(buf, static_cast<std::size_t>(n));
  } else if constexpr (std::is_integral_v<D>) {
    char buf[32];
    int n = std::snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(value));
    out.append(buf, static_cast<std::size_t>(n));
  } else if constexpr (std::is_enum_v<D>) {
    append_one(out, static_cast<std::underlying_type_t<D>>(value));
  } else if constexpr (std::is_floating_point_v<D>) {
    char buf[64];
    int n = std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(value));
    out.append(buf, static_cast<std::size_t>(n));
  } else if constexpr (std::is_same_v<D, Error>) {
    out += value.describe();
  } else if constexpr (std::is_pointer_v<D>) {
    std::ostringstream s;
    s << static_cast<const void*>(value);
    out += s.str();
  } else {
    std::ostringstream s;
    s << value;
    out += s.str();
  }
}

// Concatenates its arguments: strings as-is, numbers in decimal, Error via describe().
template <typename... Args>
std::string concat(const Args&... args) {
  std::string out;
  (append_one(out, args), ...);
  return out;
}

// ---- member-pointer paths ----------------------------------------------------------------------
// A path `&Outer::hdr, &Header::pid` names a (possibly nested) member of a standard-layout record.
// Its offset and size come from the compiler, so a schema cannot disagree with the struct.

template <typename P>
struct MemberPointer;
template <typename C, typename M>
struct MemberPointer<M C::*> {
  using Class = C;
  using Type = M;
};

template <auto... Ms>
struct MemberPath;

template <auto M>
struct MemberPath<M> {
  using Root = typename MemberPointer<decltype(M)>::Class;
  using Leaf = typename MemberPointer<decltype(M)>::Type;
  template <typename Obj>
  static auto& follow(Obj& obj) {
    return obj.*M;
  }
};

template <auto M, auto Next, auto... Rest>
struct MemberPath<M, Next, Rest...> {
  using Root = typename MemberPointer<decltype(M)>::Class;
  using Inner = MemberPath<Next, Rest...>;
  static_assert(std::is_same_v<typename MemberPointer<decltype(M)>::Type, typename Inner::Root>,
                "each member pointer of a path must belong to the type of the previous member");
  using Leaf = typename Inner::Leaf;
  template <typename Obj>
  static auto& follow(Obj& obj) {
    return Inner::follow(obj.*M);
  }
};

// Byte offset of the member named by Ms... inside Root. Computed on a value-initialised object:
// pointer arithmetic on a real object is well defined, unlike the offsetof-on-null trick.
template <typename Root, auto... Ms>
std::uint32_t member_offset() {
  static_assert(std::is_standard_layout_v<Root> && std::is_trivially_copyable_v<Root>,
                "records shared with BPF must be standard-layout and trivially copyable");
  static_assert(std::is_default_constructible_v<Root>);
  Root obj{};
  const auto* base = reinterpret_cast<const unsigned char*>(&obj);
  const auto* member = reinterpret_cast<const unsigned char*>(&MemberPath<Ms...>::follow(obj));
  return static_cast<std::uint32_t>(member - base);
}

// The same for a path that may be empty (the whole record).
template <typename Root, auto... Ms>
struct PathOf {
  using Leaf = typename MemberPath<Ms...>::Leaf;
  static_assert(std::is_same_v<typename MemberPath<Ms...>::Root, Root>,
                "the member pointer belongs to another struct than the one being described");
  static std::uint32_t offset() { return member_offset<Root, Ms...>(); }
};
template <typename Root>
struct PathOf<Root> {
  using Leaf = Root;
  static std::uint32_t offset() { return 0; }
};

// ---- type traits used by the compile-time schema checks ---------------------------------------

template <typename T>
inline constexpr bool is_char_array_v = false;
template <std::size_t N>
inline constexpr bool is_char_array_v<char[N]> = true;
template <std::size_t N>
inline constexpr bool is_char_array_v<signed char[N]> = true;
template <std::size_t N>
inline constexpr bool is_char_array_v<unsigned char[N]> = true;

template <std::size_t N>
inline constexpr bool is_char_array_v<std::array<char, N>> = true;

template <typename T>
inline constexpr bool is_scalar_int_v = (std::is_integral_v<T> ||
                                         std::is_enum_v<T>)&&(sizeof(T) == 1 || sizeof(T) == 2 ||
                                                              sizeof(T) == 4 || sizeof(T) == 8);

// ok() when the host's th_host_api reaches `end` (offsetof + sizeof of the member a call needs,
// added in plugin API 1.`minor`); else kAbi naming both versions. `what` names the call.
inline Status require_host_api(const th_host_api* api, std::size_t end, std::string_view what,
                               int minor) {
  if (api->struct_size >= end) return ok();
  return Error(ErrorKind::kAbi, concat(what, " needs plugin API 1.", minor, "; this host provides ",
                                       api->api_major, ".", api->api_minor, ": upgrade tracehost"));
}

}  // namespace tracehost::detail
