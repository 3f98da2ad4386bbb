#include "host/render.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <time.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace tracehost::host {

namespace {

// clang-format off
// Every errno constant of <errno.h> on Linux, without the aliases (EWOULDBLOCK = EAGAIN,
// EDEADLOCK = EDEADLK, ENOTSUP = EOPNOTSUPP), which would only shadow the canonical name.
#define TH_ERRNO_LIST(X)                                                                         \
  X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(ENXIO) X(E2BIG) X(ENOEXEC) X(EBADF) X(ECHILD)    \
  X(EAGAIN) X(ENOMEM) X(EACCES) X(EFAULT) X(ENOTBLK) X(EBUSY) X(EEXIST) X(EXDEV) X(ENODEV)       \
  X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE) X(EMFILE) X(ENOTTY) X(ETXTBSY) X(EFBIG) X(ENOSPC)     \
  X(ESPIPE) X(EROFS) X(EMLINK) X(EPIPE) X(EDOM) X(ERANGE) X(EDEADLK) X(ENAMETOOLONG) X(ENOLCK)   \
  X(ENOSYS) X(ENOTEMPTY) X(ELOOP) X(ENOMSG) X(EIDRM) X(ECHRNG) X(EL2NSYNC) X(EL3HLT) X(EL3RST)   \
  X(ELNRNG) X(EUNATCH) X(ENOCSI) X(EL2HLT) X(EBADE) X(EBADR) X(EXFULL) X(ENOANO) X(EBADRQC)      \
  X(EBADSLT) X(EBFONT) X(ENOSTR) X(ENODATA) X(ETIME) X(ENOSR) X(ENONET) X(ENOPKG) X(EREMOTE)     \
  X(ENOLINK) X(EADV) X(ESRMNT) X(ECOMM) X(EPROTO) X(EMULTIHOP) X(EDOTDOT) X(EBADMSG)             \
  X(EOVERFLOW) X(ENOTUNIQ) X(EBADFD) X(EREMCHG) X(ELIBACC) X(ELIBBAD) X(ELIBSCN) X(ELIBMAX)      \
  X(ELIBEXEC) X(EILSEQ) X(ERESTART) X(ESTRPIPE) X(EUSERS) X(ENOTSOCK) X(EDESTADDRREQ)           \
  X(EMSGSIZE) X(EPROTOTYPE) X(ENOPROTOOPT) X(EPROTONOSUPPORT) X(ESOCKTNOSUPPORT) X(EOPNOTSUPP)   \
  X(EPFNOSUPPORT) X(EAFNOSUPPORT) X(EADDRINUSE) X(EADDRNOTAVAIL) X(ENETDOWN) X(ENETUNREACH)      \
  X(ENETRESET) X(ECONNABORTED) X(ECONNRESET) X(ENOBUFS) X(EISCONN) X(ENOTCONN) X(ESHUTDOWN)      \
  X(ETOOMANYREFS) X(ETIMEDOUT) X(ECONNREFUSED) X(EHOSTDOWN) X(EHOSTUNREACH) X(EALREADY)          \
  X(EINPROGRESS) X(ESTALE) X(EUCLEAN) X(ENOTNAM) X(ENAVAIL) X(EISNAM) X(EREMOTEIO) X(EDQUOT)     \
  X(ENOMEDIUM) X(EMEDIUMTYPE) X(ECANCELED) X(ENOKEY) X(EKEYEXPIRED) X(EKEYREVOKED)              \
  X(EKEYREJECTED) X(EOWNERDEAD) X(ENOTRECOVERABLE) X(ERFKILL) X(EHWPOISON)

// Kernel-internal codes (include/linux/errno.h) that user space never sees but a tracepoint at
// syscall exit does, e.g. an interrupted read returning -ERESTARTSYS. Not in <errno.h>.
#define TH_KERNEL_ERRNO_LIST(X)                                                                  \
  X(ERESTARTSYS, 512) X(ERESTARTNOINTR, 513) X(ERESTARTNOHAND, 514) X(ENOIOCTLCMD, 515)          \
  X(ERESTART_RESTARTBLOCK, 516) X(EPROBE_DEFER, 517) X(EOPENSTALE, 518) X(ENOPARAM, 519)         \
  X(EBADHANDLE, 521) X(ENOTSYNC, 522) X(EBADCOOKIE, 523) X(ENOTSUPP, 524) X(ETOOSMALL, 525)      \
  X(ESERVERFAULT, 526) X(EBADTYPE, 527) X(EJUKEBOX, 528) X(EIOCBQUEUED, 529)                     \
  X(ERECALLCONFLICT, 530)

// clang-format on

constexpr std::size_t kErrnoTableSize = 531;

const std::array<std::string_view, kErrnoTableSize>& errno_table() {
  static const auto table = [] {
    std::array<std::string_view, kErrnoTableSize> t{};
#define TH_ERRNO_ENTRY(name) \
  if (name > 0 && static_cast<std::size_t>(name) < t.size() && t[name].empty()) t[name] = #name;
    TH_ERRNO_LIST(TH_ERRNO_ENTRY)
#undef TH_ERRNO_ENTRY
#define TH_KERNEL_ERRNO_ENTRY(name, value) t[value] = #name;
    TH_KERNEL_ERRNO_LIST(TH_KERNEL_ERRNO_ENTRY)
#undef TH_KERNEL_ERRNO_ENTRY
    return t;
  }();
  return table;
}

template <typename T>
void append_number(std::string& out, T v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, end);
}

void append_hex_u64(std::string& out, std::uint64_t v) {
  char buf[20];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, 16);
  out += "0x";
  out.append(buf, end);
}

void append_hex_bytes(std::string& out, const unsigned char* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 0xf];
  }
}

void append_ip(std::string& out, int family, const unsigned char* p) {
  char buf[INET6_ADDRSTRLEN];
  if (::inet_ntop(family, p, buf, sizeof(buf)) != nullptr) out += buf;
}

const th_field* find_field(const th_event_schema& schema, const char* name) noexcept {
  if (name == nullptr) return nullptr;
  for (std::size_t i = 0; i < schema.field_count; ++i) {
    const th_field& f = schema.fields[i];
    if (f.name != nullptr && std::strcmp(f.name, name) == 0) return &f;
  }
  return nullptr;
}

const char* enum_name(const th_field& field, std::int64_t v) noexcept {
  const th_enum_entry* e = field.enum_entries;
  const std::size_t n = field.enum_count;
  if (e == nullptr || n == 0) return nullptr;
  // Dense tables (syscall numbers) are indexed directly; others are short.
  if (v >= 0 && static_cast<std::uint64_t>(v) < n && e[v].value == v) return e[v].name;
  for (std::size_t i = 0; i < n; ++i) {
    if (e[i].value == v) return e[i].name;
  }
  return nullptr;
}

// The body of append_field_json / append_field_text: `quote` decides whether strings are JSON
// literals or raw text.
void append_field(std::string& out, const th_event_schema& schema, const th_field& f,
                  const void* record, std::size_t size, bool json) {
  if (static_cast<std::size_t>(f.offset) + f.size > size) {
    out += json ? "null" : "";
    return;
  }
  const auto* base = static_cast<const unsigned char*>(record);
  const unsigned char* p = base + f.offset;
  auto str = [&](std::string_view s) {
    if (json) {
      append_json_string(out, s);
    } else {
      out += s;
    }
  };
  auto quoted = [&](auto&& fn) {
    if (json) out += '"';
    fn();
    if (json) out += '"';
  };
  switch (f.type) {
    case TH_FIELD_UINT:
    case TH_FIELD_PID:
    case TH_FIELD_TID:
    case TH_FIELD_UID:
    case TH_FIELD_CGROUP_ID:
    case TH_FIELD_PORT:
    case TH_FIELD_DURATION_NS:
      append_number(out, read_uint(p, f.size));
      return;
    case TH_FIELD_INT:
    case TH_FIELD_STACK_ID:
      append_number(out, read_int(p, f.size));
      return;
    case TH_FIELD_BOOL:
      out += read_uint(p, f.size) != 0 ? "true" : "false";
      return;
    case TH_FIELD_STRING:
      str(fixed_string(p, f.size));
      return;
    case TH_FIELD_IPV4:
      quoted([&] { append_ip(out, AF_INET, p); });
      return;
    case TH_FIELD_IPV6:
      quoted([&] { append_ip(out, AF_INET6, p); });
      return;
    case TH_FIELD_IP: {
      const th_field* fam = find_field(schema, f.aux_field);
      int family = AF_INET6;
      if (fam != nullptr && static_cast<std::size_t>(fam->offset) + fam->size <= size &&
          read_uint(base + fam->offset, fam->size) == AF_INET) {
        family = AF_INET;
      }
      quoted([&] { append_ip(out, family, p); });
      return;
    }
    case TH_FIELD_ERRNO: {
      std::int64_t v = read_int(p, f.size);
      std::uint64_t mag =
          v < 0 ? static_cast<std::uint64_t>(-(v + 1)) + 1 : static_cast<std::uint64_t>(v);
      std::string_view name =
          mag < kErrnoTableSize ? errno_name(static_cast<int>(mag)) : std::string_view{};
      quoted([&] {
        if (name.empty()) {
          append_number(out, v);
        } else {
          out += name;
        }
      });
      return;
    }
    case TH_FIELD_TIMESTAMP_NS:
      quoted([&] { append_rfc3339_ns(out, monotonic_to_realtime_ns(read_uint(p, f.size))); });
      return;
    case TH_FIELD_ENUM: {
      std::int64_t v = read_int(p, f.size);
      if (f.size < 8) {
        // enums are usually unsigned in C: don't show 0xffffffff as -1 unless an entry says so
        std::uint64_t u = read_uint(p, f.size);
        if (enum_name(f, v) == nullptr && enum_name(f, static_cast<std::int64_t>(u)) != nullptr) {
          v = static_cast<std::int64_t>(u);
        }
      }
      if (const char* name = enum_name(f, v)) {
        str(name);
      } else {
        append_number(out, v);
      }
      return;
    }
    case TH_FIELD_HEX:
      quoted([&] { append_hex_bytes(out, p, f.size); });
      return;
    case TH_FIELD_FLAGS:
      quoted([&] { append_hex_u64(out, read_uint(p, f.size)); });
      return;
    default:
      out += json ? "null" : "";
      return;
  }
}

// Length of the valid UTF-8 sequence starting at p (no overlongs, no surrogates, <= U+10FFFF),
// or 0 when the bytes there are not one.
std::size_t utf8_sequence_length(const unsigned char* p, std::size_t left) noexcept {
  const unsigned char c = p[0];
  std::size_t len = 0;
  if (c < 0x80) {
    return 1;
  } else if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
  }
  if (len == 0 || len > left) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((p[k] & 0xc0) != 0x80) return 0;
  }
  if (len == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))) return 0;
  if (len == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))) return 0;
  return len;
}

struct SecondCache {
  std::int64_t sec = INT64_MIN;
  char prefix[20];  // "YYYY-MM-DDTHH:MM:SS"
};

}  // namespace

std::uint64_t read_uint(const void* data, std::uint32_t size) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  switch (size) {
    case 1:
      return p[0];
    case 2: {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 4: {
      std::uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case 8: {
      std::uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
    default: {
      // bool fields may have odd sizes: only "non-zero" matters
      std::uint64_t v = 0;
      std::memcpy(&v, p, size < 8 ? size : 8);
      return v;
    }
  }
}

std::int64_t read_int(const void* data, std::uint32_t size) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  switch (size) {
    case 1:
      return static_cast<std::int8_t>(p[0]);
    case 2: {
      std::int16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 4: {
      std::int32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    default: {
      std::int64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
}

std::string_view errno_name(int err) noexcept {
  if (err < 0) err = -err;
  if (err <= 0 || static_cast<std::size_t>(err) >= kErrnoTableSize) return {};
  return errno_table()[static_cast<std::size_t>(err)];
}

std::int64_t monotonic_to_realtime_offset_ns() noexcept {
  static const std::int64_t offset = [] {
    timespec rt{}, mono{};
    ::clock_gettime(CLOCK_REALTIME, &rt);
    ::clock_gettime(CLOCK_MONOTONIC, &mono);
    return (static_cast<std::int64_t>(rt.tv_sec) - mono.tv_sec) * 1'000'000'000LL +
           (static_cast<std::int64_t>(rt.tv_nsec) - mono.tv_nsec);
  }();
  return offset;
}

std::int64_t monotonic_to_realtime_ns(std::uint64_t monotonic_ns) noexcept {
  return static_cast<std::int64_t>(monotonic_ns) + monotonic_to_realtime_offset_ns();
}

void append_rfc3339_ns(std::string& out, std::int64_t realtime_ns) {
  std::int64_t sec = realtime_ns / 1'000'000'000LL;
  std::int64_t ns = realtime_ns % 1'000'000'000LL;
  if (ns < 0) {
    ns += 1'000'000'000LL;
    --sec;
  }
  // Events of a batch share their second: format the date part once per second per thread.
  thread_local SecondCache cache;
  if (cache.sec != sec) {
    time_t t = static_cast<time_t>(sec);
    tm parts{};
    ::gmtime_r(&t, &parts);
    auto put = [&](int pos, int width, int value) {
      for (int i = width - 1; i >= 0; --i) {
        cache.prefix[pos + i] = static_cast<char>('0' + value % 10);
        value /= 10;
      }
    };
    int year = parts.tm_year + 1900;
    put(0, 4, year < 0 ? 0 : year % 10000);
    cache.prefix[4] = '-';
    put(5, 2, parts.tm_mon + 1);
    cache.prefix[7] = '-';
    put(8, 2, parts.tm_mday);
    cache.prefix[10] = 'T';
    put(11, 2, parts.tm_hour);
    cache.prefix[13] = ':';
    put(14, 2, parts.tm_min);
    cache.prefix[16] = ':';
    put(17, 2, parts.tm_sec);
    cache.sec = sec;
  }
  char frac[11];
  frac[0] = '.';
  auto v = static_cast<std::uint32_t>(ns);
  for (int i = 9; i >= 1; --i) {
    frac[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  frac[10] = 'Z';
  out.append(cache.prefix, 19);
  out.append(frac, 11);
}

std::string format_rfc3339_ns(std::int64_t realtime_ns) {
  std::string out;
  append_rfc3339_ns(out, realtime_ns);
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t run = 0;  // start of the pending run of bytes copied verbatim
  std::size_t i = 0;
  auto flush = [&](std::size_t upto) {
    if (upto > run) out.append(s.data() + run, upto - run);
  };
  while (i < n) {
    unsigned char c = p[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (std::size_t len = utf8_sequence_length(p + i, n - i); len > 0) {
        i += len;
        continue;
      }
      flush(i);
      out += "\xef\xbf\xbd";
      run = ++i;
      continue;
    }
    flush(i);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default: {
        char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out.append(esc, 6);
      }
    }
    run = ++i;
  }
  flush(n);
  out += '"';
}

std::string valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t i = 0;
  while (i < s.size() && p[i] < 0x80) ++i;
  if (i == s.size()) return std::string(s);  // ASCII: the common case
  std::string out(s.substr(0, i));
  while (i < s.size()) {
    if (std::size_t len = utf8_sequence_length(p + i, s.size() - i); len > 0) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

std::string_view fixed_string(const void* data, std::size_t size) noexcept {
  const auto* p = static_cast<const char*>(data);
  const void* nul = std::memchr(p, '\0', size);
  return {p, nul != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nul) - p) : size};
}

void append_field_json(std::string& out, const th_event_schema& schema, const th_field& field,
                       const void* record, std::size_t size) {
  append_field(out, schema, field, record, size, true);
}

void append_field_text(std::string& out, const th_event_schema& schema, const th_field& field,
                       const void* record, std::size_t size) {
  append_field(out, schema, field, record, size, false);
}

std::string field_text(const th_event_schema& schema, const th_field& field, const void* record,
                       std::size_t size) {
  std::string out;
  append_field_text(out, schema, field, record, size);
  return out;
}

nlohmann::json field_json(const th_event_schema& schema, const th_field& field, const void* record,
                          std::size_t size) {
  std::string text;
  append_field_json(text, schema, field, record, size);
  // Parsing our own output keeps one source of truth for the representation.
  return nlohmann::json::parse(text);
}

void append_event_json(std::string& out, const th_event& event) {
  out += "{\"time\":\"";
  append_rfc3339_ns(out, static_cast<std::int64_t>(event.time_ns));
  out += "\",\"topic\":";
  append_json_string(out, event.topic != nullptr ? event.topic : "");
  const th_event_schema* schema = event.schema;
  if (schema != nullptr) {
    for (std::size_t i = 0; i < schema->field_count; ++i) {
      const th_field& f = schema->fields[i];
      out += ',';
      append_json_string(out, f.name);
      out += ':';
      append_field(out, *schema, f, event.data, event.size, true);
    }
  }
  out += '}';
}

std::string format_duration_seconds(double seconds) {
  char buf[32];
  double a = std::fabs(seconds);
  if (a == 0) {
    return "0s";
  } else if (a < 1e-6) {
    std::snprintf(buf, sizeof(buf), "%.0fns", seconds * 1e9);
  } else if (a < 1e-3) {
    std::snprintf(buf, sizeof(buf), "%.1fus", seconds * 1e6);
  } else if (a < 1) {
    std::snprintf(buf, sizeof(buf), "%.2fms", seconds * 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2fs", seconds);
  }
  return buf;
}

std::string format_count(double value) {
  char buf[32];
  double a = std::fabs(value);
  if (a < 10000) {
    if (value == std::floor(value)) {
      std::snprintf(buf, sizeof(buf), "%.0f", value);
    } else {
      std::snprintf(buf, sizeof(buf), "%.1f", value);
    }
  } else if (a < 1e6) {
    std::snprintf(buf, sizeof(buf), "%.1fk", value / 1e3);
  } else if (a < 1e9) {
    std::snprintf(buf, sizeof(buf), "%.2fM", value / 1e6);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2fG", value / 1e9);
  }
  return buf;
}

}  // namespace tracehost::host
