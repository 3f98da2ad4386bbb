// Rendering of event fields (and a few shared formats) for sinks: JSON values and plain text.
//
// The JSON sink's hot path uses the append_* functions, which write into a caller-owned string
// without allocating per field; field_json() (nlohmann) is for everything that is not hot.
//
// Representation (JSON / text):
//   UINT INT PID TID UID CGROUP_ID PORT DURATION_NS STACK_ID → number
//   BOOL → true/false          STRING → string (stops at NUL)       HEX → "0a1b…"
//   IPV4 / IPV6 / IP → "10.0.0.1" / "::1"                           FLAGS → "0x1f"
//   ERRNO → "ENOENT" (sign ignored; 0 → "0"; unknown → its decimal number as a string)
//   TIMESTAMP_NS (CLOCK_MONOTONIC) → "2026-11-25T13:15:22.123456789Z"
//   ENUM → the entry's name, or the number when no entry matches
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tracehost/plugin_api.h"

namespace tracehost::host {

// "ENOENT" for 2 or -2; empty when unknown (0 included).
std::string_view errno_name(int err) noexcept;

// Reads an integer field of `size` bytes (host byte order) at `data`; sizes other than 1, 2, 4, 8
// read the first min(size, 8) bytes (bool fields may have odd sizes).
std::uint64_t read_uint(const void* data, std::uint32_t size) noexcept;
std::int64_t read_int(const void* data, std::uint32_t size) noexcept;

// CLOCK_REALTIME - CLOCK_MONOTONIC, measured once on first use (a later clock step is ignored,
// which keeps timestamps of one run consistent with each other).
std::int64_t monotonic_to_realtime_offset_ns() noexcept;
std::int64_t monotonic_to_realtime_ns(std::uint64_t monotonic_ns) noexcept;

// RFC 3339 UTC with nanoseconds: "2026-11-25T13:15:22.123456789Z".
void append_rfc3339_ns(std::string& out, std::int64_t realtime_ns);
std::string format_rfc3339_ns(std::int64_t realtime_ns);

// JSON string literal with quotes; escapes ", \ and control characters, keeps UTF-8 as is and
// replaces invalid UTF-8 bytes with U+FFFD (kernel strings are arbitrary bytes).
void append_json_string(std::string& out, std::string_view s);

// The address at `addr` (AF_INET: 4 bytes, AF_INET6: 16 bytes) exactly as inet_ntop(3) writes it
// ("10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1"), without its sprintf; other families append
// nothing.
void append_ip(std::string& out, int family, const void* addr);

// `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD (label values must be
// UTF-8 for Prometheus).
std::string valid_utf8(std::string_view s);

// Text of a fixed char array: up to the first NUL.
std::string_view fixed_string(const void* data, std::size_t size) noexcept;

// A field of `record` (size bytes, at least schema.record_size). The schema is needed for IP
// fields (their family lives in aux_field).
void append_field_json(std::string& out, const th_event_schema& schema, const th_field& field,
                       const void* record, std::size_t size);
void append_field_text(std::string& out, const th_event_schema& schema, const th_field& field,
                       const void* record, std::size_t size);
std::string field_text(const th_event_schema& schema, const th_field& field, const void* record,
                       std::size_t size);
nlohmann::json field_json(const th_event_schema& schema, const th_field& field, const void* record,
                          std::size_t size);

// One JSON line without the trailing newline: {"time":…,"topic":…,<field>:<value>,…}
void append_event_json(std::string& out, const th_event& event);

// Small helpers shared by the console sink and the Prometheus text.
std::string format_duration_seconds(double seconds);  // "12.3us", "4.56ms", "1.20s"
std::string format_count(double value);               // "1234", "12.3k", "4.56M"

}  // namespace tracehost::host
