// Result<T>: an expected-like value-or-error, and the typed Error it carries.
// Shared by the SDK (plugin side) and the host; header-only, no dependencies beyond the C API.
#pragma once

#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "tracehost/plugin_api.h"

namespace tracehost {

// The kinds mirror th_status: what the user will have to act on.
enum class ErrorKind : int {
  kUnsupportedPlatform = TH_ERR_UNSUPPORTED_PLATFORM,
  kPermission = TH_ERR_PERMISSION,
  kKernelIncompatible = TH_ERR_KERNEL_INCOMPATIBLE,
  kLoadFailed = TH_ERR_LOAD_FAILED,
  kAttachFailed = TH_ERR_ATTACH_FAILED,
  kMap = TH_ERR_MAP,
  kEvent = TH_ERR_EVENT,
  kConfig = TH_ERR_CONFIG,
  kAbi = TH_ERR_ABI,
  kInvalidArgument = TH_ERR_INVALID_ARGUMENT,
  kNotFound = TH_ERR_NOT_FOUND,
  kInternal = TH_ERR_INTERNAL,
};

constexpr std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kUnsupportedPlatform: return "unsupported platform";
    case ErrorKind::kPermission: return "insufficient permissions";
    case ErrorKind::kKernelIncompatible: return "incompatible kernel";
    case ErrorKind::kLoadFailed: return "load failed";
    case ErrorKind::kAttachFailed: return "attach failed";
    case ErrorKind::kMap: return "map operation failed";
    case ErrorKind::kEvent: return "event processing failed";
    case ErrorKind::kConfig: return "config error";
    case ErrorKind::kAbi: return "plugin ABI mismatch";
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kNotFound: return "not found";
    case ErrorKind::kInternal: return "internal error";
  }
  return "error";
}

class Error {
 public:
  Error(ErrorKind kind, std::string message, int sys_errno = 0, std::string context = {})
      : kind_(kind), message_(std::move(message)), errno_(sys_errno), context_(std::move(context)) {}

  [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  [[nodiscard]] int sys_errno() const noexcept { return errno_; }
  [[nodiscard]] const std::string& context() const noexcept { return context_; }

  // Prepends where it happened: "plugin syscall: " + message.
  [[nodiscard]] Error with_context(std::string_view where) const {
    Error e = *this;
    e.context_ = context_.empty() ? std::string(where) : std::string(where) + ": " + context_;
    return e;
  }

  // "context: message (errno text)"
  [[nodiscard]] std::string describe() const {
    std::string out;
    if (!context_.empty()) out += context_ + ": ";
    out += message_;
    if (errno_ != 0 && message_.find(std::strerror(errno_)) == std::string::npos) {
      out += " (";
      out += std::strerror(errno_);
      out += ")";
    }
    return out;
  }

  // Fills a caller-owned C error. A message too long for it loses its middle, not its end: the
  // first line says what failed, the last ones (of a verifier log, say) why.
  void to_c(th_error* out) const noexcept {
    if (out == nullptr) return;
    out->struct_size = sizeof(th_error);
    out->status = static_cast<int32_t>(kind_);
    out->sys_errno = errno_;
    const std::string text = describe();
    constexpr std::size_t kRoom = TH_ERROR_MESSAGE_MAX - 1;
    if (text.size() <= kRoom) {
      std::memcpy(out->message, text.data(), text.size());
      out->message[text.size()] = '\0';
      return;
    }
    // head: up to the first line break within a quarter of the room; tail: from a line start
    constexpr std::string_view kGap = "\n... (message shortened) ...\n";
    std::size_t head = text.rfind('\n', kRoom / 4);
    if (head == std::string::npos || head == 0) head = kRoom / 4;
    std::size_t tail_from = text.size() - (kRoom - head - kGap.size());
    if (std::size_t nl = text.find('\n', tail_from);
        nl != std::string::npos && nl + 1 < text.size() && nl - tail_from < kRoom / 8) {
      tail_from = nl + 1;
    }
    char* p = out->message;
    p = static_cast<char*>(std::memcpy(p, text.data(), head)) + head;
    p = static_cast<char*>(std::memcpy(p, kGap.data(), kGap.size())) + kGap.size();
    const std::size_t tail = text.size() - tail_from;
    std::memcpy(p, text.data() + tail_from, tail);
    p[tail] = '\0';
  }

  static Error from_c(th_status status, const th_error& err) {
    auto kind = status == TH_OK ? ErrorKind::kInternal : static_cast<ErrorKind>(status);
    std::string msg(err.message, ::strnlen(err.message, TH_ERROR_MESSAGE_MAX));
    if (msg.empty()) msg = std::string(to_string(kind));
    return Error(kind, std::move(msg), err.sys_errno);
  }

 private:
  ErrorKind kind_;
  std::string message_;
  int errno_;
  std::string context_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  [[nodiscard]] const Error& error() const& { return std::get<1>(v_); }
  [[nodiscard]] Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  [[nodiscard]] bool ok() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] const Error& error() const& { return *error_; }
  [[nodiscard]] Error&& error() && { return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Status ok() { return {}; }

}  // namespace tracehost

// Propagates an error from an expression yielding Result<T> or Status.
#define TH_TRY(expr)                                     \
  do {                                                   \
    auto th_try_result_ = (expr);                        \
    if (!th_try_result_.ok()) return std::move(th_try_result_).error(); \
  } while (0)

#define TH_CONCAT_INNER_(a, b) a##b
#define TH_CONCAT_(a, b) TH_CONCAT_INNER_(a, b)
// Declares `decl` from the value of a Result<T>, or returns its error.
#define TH_ASSIGN_OR_RETURN(decl, expr)                                   \
  auto TH_CONCAT_(th_res_, __LINE__) = (expr);                            \
  if (!TH_CONCAT_(th_res_, __LINE__).ok())                                \
    return std::move(TH_CONCAT_(th_res_, __LINE__)).error();              \
  decl = std::move(TH_CONCAT_(th_res_, __LINE__)).value()
