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

// Lines are built on the stack and handed to the destination string in large pieces: one
// std::string append per token (a comma, a quote, a number) costs more than formatting it.
class LineWriter {
 public:
  static constexpr std::size_t kCapacity = 512;

  // buf_ is left uninitialised: bytes are written before they are read, and zeroing it would
  // cost more than some lines take to render.
  explicit LineWriter(std::string& out) noexcept  // NOLINT(cppcoreguidelines-pro-type-member-init)
      : out_(out) {}
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;
  LineWriter(LineWriter&&) = delete;
  LineWriter& operator=(LineWriter&&) = delete;
  ~LineWriter() = default;

  // n (at most kCapacity) writable bytes at the returned pointer; commit() keeps those written.
  char* room(std::size_t n) {
    if (static_cast<std::size_t>(buf_ + kCapacity - pos_) < n) flush();
    return pos_;
  }
  void commit(char* end) noexcept { pos_ = end; }

  void put(char c) {
    char* p = room(1);
    *p = c;
    pos_ = p + 1;
  }
  void put(std::string_view s) {
    if (s.size() > kCapacity) {
      flush();
      out_.append(s);
      return;
    }
    char* p = room(s.size());
    std::memcpy(p, s.data(), s.size());
    pos_ = p + s.size();
  }

  // Appends what is buffered to the destination: due before the destination is used.
  void flush() {
    out_.append(buf_, static_cast<std::size_t>(pos_ - buf_));
    pos_ = buf_;
  }

 private:
  std::string& out_;
  char buf_[kCapacity];
  char* pos_ = buf_;
};

constexpr char kHexDigits[] = "0123456789abcdef";

template <typename T>
void put_number(LineWriter& w, T v) {
  constexpr std::size_t kMax = 24;  // "-9223372036854775808"
  char* p = w.room(kMax);
  w.commit(std::to_chars(p, p + kMax, v).ptr);
}

void put_hex_u64(LineWriter& w, std::uint64_t v) {
  constexpr std::size_t kMax = 18;  // "0x" + 16 digits
  char* p = w.room(kMax);
  p[0] = '0';
  p[1] = 'x';
  w.commit(std::to_chars(p + 2, p + kMax, v, 16).ptr);
}

void put_hex_bytes(LineWriter& w, const unsigned char* p, std::size_t n) {
  constexpr std::size_t kChunk = LineWriter::kCapacity / 2;
  while (n > 0) {
    const std::size_t chunk = n < kChunk ? n : kChunk;
    char* out = w.room(2 * chunk);
    for (std::size_t i = 0; i < chunk; ++i) {
      *out++ = kHexDigits[p[i] >> 4];
      *out++ = kHexDigits[p[i] & 0xf];
    }
    w.commit(out);
    p += chunk;
    n -= chunk;
  }
}

// "a.b.c.d" as inet_ntop prints it (decimal, no leading zeros); writes at most 15 bytes.
char* format_ipv4(char* out, const unsigned char* a) noexcept {
  for (int i = 0; i < 4; ++i) {
    if (i > 0) *out++ = '.';
    const unsigned v = a[i];
    if (v >= 100) *out++ = static_cast<char>('0' + v / 100);
    if (v >= 10) *out++ = static_cast<char>('0' + v / 10 % 10);
    *out++ = static_cast<char>('0' + v % 10);
  }
  return out;
}

// RFC 5952 text exactly as glibc's inet_ntop prints it; writes at most 45 bytes. The longest run
// of two or more zero groups (the first of equally long ones) becomes "::"; groups are lower-case
// hex without leading zeros. Like glibc, the last 32 bits are a dotted quad in IPv4-mapped
// addresses (groups 0-4 zero, group 5 ffff: "::ffff:0.0.0.0" too) and IPv4-compatible ones
// (groups 0-5 zero, group 6 not: "::1.2.0.0"; "::1" and "::ab" stay hex).
char* format_ipv6(char* out, const unsigned char* a) noexcept {
  constexpr int kGroups = 8;
  unsigned group[kGroups];
  for (std::size_t i = 0; i < kGroups; ++i) group[i] = (unsigned{a[2 * i]} << 8) | a[2 * i + 1];

  int run_start = 0;
  int run_len = 0;
  for (int i = 0; i < kGroups;) {
    int end = i;
    while (end < kGroups && group[end] == 0) ++end;
    if (end - i > run_len) {
      run_start = i;
      run_len = end - i;
    }
    i = end == i ? i + 1 : end;
  }
  if (run_len < 2) run_len = 0;  // a single zero group is written as "0"

  for (int i = 0; i < kGroups; ++i) {
    if (run_len > 0 && i == run_start) {
      // "::" stands for the run: one ':' here, the other from the group after it, or at the end
      *out++ = ':';
      i += run_len - 1;
      if (i == kGroups - 1) *out++ = ':';
      continue;
    }
    if (i > 0) *out++ = ':';
    if (i == 6 && run_start == 0 && (run_len == 6 || (run_len == 5 && group[5] == 0xffff))) {
      return format_ipv4(out, a + 12);
    }
    const unsigned v = group[i];
    if (v >= 0x1000) *out++ = kHexDigits[v >> 12];
    if (v >= 0x100) *out++ = kHexDigits[(v >> 8) & 0xf];
    if (v >= 0x10) *out++ = kHexDigits[(v >> 4) & 0xf];
    *out++ = kHexDigits[v & 0xf];
  }
  return out;
}

void put_ip(LineWriter& w, int family, const unsigned char* addr) {
  char* p = w.room(INET6_ADDRSTRLEN);
  w.commit(family == AF_INET ? format_ipv4(p, addr) : format_ipv6(p, addr));
}

const th_field* find_field(const th_event_schema& schema, const char* name) noexcept {
  if (name == nullptr) return nullptr;
  for (std::size_t i = 0; i < schema.field_count; ++i) {
    const th_field& f = schema.fields[i];
    // the first byte rules out most fields without a call
    if (f.name != nullptr && f.name[0] == name[0] && std::strcmp(f.name, name) == 0) return &f;
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

// Bytes a JSON string literal holds as they are: printable ASCII except '"' and '\'.
constexpr std::array<bool, 256> kPlainJson = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

bool plain_json(char c) noexcept { return kPlainJson[static_cast<unsigned char>(c)]; }

void put_json_escape(LineWriter& w, unsigned char c) {
  switch (c) {
    case '"':
      w.put("\\\"");
      break;
    case '\\':
      w.put("\\\\");
      break;
    case '\n':
      w.put("\\n");
      break;
    case '\r':
      w.put("\\r");
      break;
    case '\t':
      w.put("\\t");
      break;
    case '\b':
      w.put("\\b");
      break;
    case '\f':
      w.put("\\f");
      break;
    default: {
      const char esc[6] = {'\\', 'u', '0', '0', kHexDigits[c >> 4], kHexDigits[c & 0xf]};
      w.put(std::string_view(esc, sizeof(esc)));
    }
  }
}

// The inside of a JSON string literal: escapes ", \ and control characters, keeps valid UTF-8,
// writes U+FFFD for each byte that is not part of it.
void put_json_body(LineWriter& w, std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t run = 0;  // start of the pending run of bytes copied verbatim
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (kPlainJson[c]) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (std::size_t len = utf8_sequence_length(p + i, n - i); len > 0) {
        i += len;
        continue;
      }
      w.put(s.substr(run, i - run));
      w.put("\xef\xbf\xbd");
    } else {
      w.put(s.substr(run, i - run));
      put_json_escape(w, c);
    }
    run = ++i;
  }
  w.put(s.substr(run));
}

// Same for a NUL-terminated string. Field, topic and enum names are short identifiers: they are
// copied in one pass, without strlen, until a byte needs escaping or the piece gets long.
void put_json_body(LineWriter& w, const char* s) {
  constexpr std::size_t kPiece = 64;
  char* out = w.room(kPiece);
  char* const end = out + kPiece;
  while (out < end && plain_json(*s)) *out++ = *s++;  // stops at the NUL too
  w.commit(out);
  if (*s != '\0') put_json_body(w, std::string_view(s));
}

template <typename S>
void put_json_string(LineWriter& w, S s) {
  w.put('"');
  put_json_body(w, s);
  w.put('"');
}

struct SecondCache {
  std::int64_t sec = INT64_MIN;
  char prefix[20]{};  // "YYYY-MM-DDTHH:MM:SS"
};

void put_rfc3339_ns(LineWriter& w, std::int64_t realtime_ns) {
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
  constexpr std::size_t kLength = 30;  // prefix, '.', 9 digits, 'Z'
  char* out = w.room(kLength);
  std::memcpy(out, cache.prefix, 19);
  out[19] = '.';
  auto v = static_cast<std::uint32_t>(ns);
  for (int i = 28; i >= 20; --i) {
    out[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out[29] = 'Z';
  w.commit(out + kLength);
}

// The body of append_field_json / append_field_text: `json` decides whether strings are JSON
// literals or raw text.
void put_field(LineWriter& w, const th_event_schema& schema, const th_field& f, const void* record,
               std::size_t size, bool json) {
  if (static_cast<std::size_t>(f.offset) + f.size > size) {
    if (json) w.put("null");
    return;
  }
  const auto* base = static_cast<const unsigned char*>(record);
  const unsigned char* p = base + f.offset;
  auto str = [&](auto s) {
    if (json) {
      put_json_string(w, s);
    } else {
      w.put(std::string_view(s));
    }
  };
  auto quoted = [&](auto&& fn) {
    if (json) w.put('"');
    fn();
    if (json) w.put('"');
  };
  switch (f.type) {
    case TH_FIELD_UINT:
    case TH_FIELD_PID:
    case TH_FIELD_TID:
    case TH_FIELD_UID:
    case TH_FIELD_CGROUP_ID:
    case TH_FIELD_PORT:
    case TH_FIELD_DURATION_NS:
      put_number(w, read_uint(p, f.size));
      return;
    case TH_FIELD_INT:
    case TH_FIELD_STACK_ID:
      put_number(w, read_int(p, f.size));
      return;
    case TH_FIELD_BOOL:
      w.put(read_uint(p, f.size) != 0 ? "true" : "false");
      return;
    case TH_FIELD_STRING:
      str(fixed_string(p, f.size));
      return;
    case TH_FIELD_IPV4:
      quoted([&] { put_ip(w, AF_INET, p); });
      return;
    case TH_FIELD_IPV6:
      quoted([&] { put_ip(w, AF_INET6, p); });
      return;
    case TH_FIELD_IP: {
      const th_field* fam = find_field(schema, f.aux_field);
      int family = AF_INET6;
      if (fam != nullptr && static_cast<std::size_t>(fam->offset) + fam->size <= size &&
          read_uint(base + fam->offset, fam->size) == AF_INET) {
        family = AF_INET;
      }
      quoted([&] { put_ip(w, family, p); });
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
          put_number(w, v);
        } else {
          w.put(name);
        }
      });
      return;
    }
    case TH_FIELD_TIMESTAMP_NS:
      quoted([&] { put_rfc3339_ns(w, monotonic_to_realtime_ns(read_uint(p, f.size))); });
      return;
    case TH_FIELD_ENUM: {
      std::int64_t v = read_int(p, f.size);
      const char* name = enum_name(f, v);
      if (name == nullptr && f.size < 8) {
        // enums are usually unsigned in C: don't show 0xffffffff as -1 unless an entry says so
        const auto u = static_cast<std::int64_t>(read_uint(p, f.size));
        if (u != v) name = enum_name(f, u);
      }
      if (name != nullptr) {
        str(name);
      } else {
        put_number(w, v);
      }
      return;
    }
    case TH_FIELD_HEX:
      quoted([&] { put_hex_bytes(w, p, f.size); });
      return;
    case TH_FIELD_FLAGS:
      quoted([&] { put_hex_u64(w, read_uint(p, f.size)); });
      return;
    default:
      if (json) w.put("null");
      return;
  }
}

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
  // modulo 2^64, as two's complement addition would: a garbage timestamp is no overflow
  return static_cast<std::int64_t>(monotonic_ns +
                                   static_cast<std::uint64_t>(monotonic_to_realtime_offset_ns()));
}

void append_rfc3339_ns(std::string& out, std::int64_t realtime_ns) {
  LineWriter w(out);
  put_rfc3339_ns(w, realtime_ns);
  w.flush();
}

std::string format_rfc3339_ns(std::int64_t realtime_ns) {
  std::string out;
  append_rfc3339_ns(out, realtime_ns);
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  LineWriter w(out);
  put_json_string(w, s);
  w.flush();
}

void append_ip(std::string& out, int family, const void* addr) {
  if (family != AF_INET && family != AF_INET6) return;
  LineWriter w(out);
  put_ip(w, family, static_cast<const unsigned char*>(addr));
  w.flush();
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
  LineWriter w(out);
  put_field(w, schema, field, record, size, true);
  w.flush();
}

void append_field_text(std::string& out, const th_event_schema& schema, const th_field& field,
                       const void* record, std::size_t size) {
  LineWriter w(out);
  put_field(w, schema, field, record, size, false);
  w.flush();
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
  LineWriter w(out);
  w.put("{\"time\":\"");
  put_rfc3339_ns(w, static_cast<std::int64_t>(event.time_ns));
  w.put("\",\"topic\":");
  put_json_string(w, event.topic != nullptr ? event.topic : "");
  if (const th_event_schema* schema = event.schema; schema != nullptr) {
    for (std::size_t i = 0; i < schema->field_count; ++i) {
      const th_field& f = schema->fields[i];
      w.put(",\"");
      put_json_body(w, f.name != nullptr ? f.name : "");
      w.put("\":");
      put_field(w, *schema, f, event.data, event.size, true);
    }
  }
  w.put('}');
  w.flush();
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
