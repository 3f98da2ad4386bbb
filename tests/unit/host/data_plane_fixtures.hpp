// A test event layout covering every field type, shared by the data plane's unit tests.
#pragma once

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "tracehost/plugin_api.h"

namespace tracehost::testing {

struct TestEvent {
  std::uint64_t ts;       // TIMESTAMP_NS
  std::uint32_t pid;      // PID
  std::int32_t ret;       // ERRNO
  char comm[16];          // STRING
  std::uint8_t addr[16];  // IP (family in `family`)
  std::uint16_t family;   // UINT
  std::uint16_t port;     // PORT
  std::uint32_t nr;       // ENUM
  std::uint64_t dur;      // DURATION_NS
  std::uint32_t flags;    // FLAGS
  std::int32_t stack;     // STACK_ID
  std::uint8_t v4[4];     // IPV4
  std::uint8_t v6[16];    // IPV6
  std::uint8_t raw[4];    // HEX
  std::uint8_t ok;        // BOOL
  std::int8_t small;      // INT
  std::uint64_t seq;      // UINT
};

inline const th_enum_entry kSyscallNames[] = {
    {0, "read"}, {1, "write"}, {2, "open"}, {59, "execve"}};

inline th_field field(const char* name, th_field_type type, std::size_t offset, std::size_t size) {
  th_field f{};
  f.struct_size = sizeof(th_field);
  f.name = name;
  f.type = type;
  f.offset = static_cast<std::uint32_t>(offset);
  f.size = static_cast<std::uint32_t>(size);
  return f;
}

#define TH_TEST_FIELD(name, type) \
  field(#name, type, offsetof(TestEvent, name), sizeof(TestEvent::name))

inline std::vector<th_field> test_fields() {
  std::vector<th_field> f = {
      TH_TEST_FIELD(ts, TH_FIELD_TIMESTAMP_NS), TH_TEST_FIELD(pid, TH_FIELD_PID),
      TH_TEST_FIELD(ret, TH_FIELD_ERRNO),       TH_TEST_FIELD(comm, TH_FIELD_STRING),
      TH_TEST_FIELD(addr, TH_FIELD_IP),         TH_TEST_FIELD(family, TH_FIELD_UINT),
      TH_TEST_FIELD(port, TH_FIELD_PORT),       TH_TEST_FIELD(nr, TH_FIELD_ENUM),
      TH_TEST_FIELD(dur, TH_FIELD_DURATION_NS), TH_TEST_FIELD(flags, TH_FIELD_FLAGS),
      TH_TEST_FIELD(stack, TH_FIELD_STACK_ID),  TH_TEST_FIELD(v4, TH_FIELD_IPV4),
      TH_TEST_FIELD(v6, TH_FIELD_IPV6),         TH_TEST_FIELD(raw, TH_FIELD_HEX),
      TH_TEST_FIELD(ok, TH_FIELD_BOOL),         TH_TEST_FIELD(small, TH_FIELD_INT),
      TH_TEST_FIELD(seq, TH_FIELD_UINT),
  };
  f[4].aux_field = "family";
  f[7].enum_entries = kSyscallNames;
  f[7].enum_count = std::size(kSyscallNames);
  return f;
}
#undef TH_TEST_FIELD

// Owns the fields; schema() points into them.
struct TestSchema {
  explicit TestSchema(const char* topic = "test.event") : fields(test_fields()) {
    s.struct_size = sizeof(th_event_schema);
    s.topic = topic;
    s.doc = "a test event";
    s.record_size = sizeof(TestEvent);
    s.fields = fields.data();
    s.field_count = fields.size();
  }
  std::vector<th_field> fields;
  th_event_schema s{};
};

inline TestEvent sample_event(std::uint64_t seq = 1) {
  TestEvent e{};
  e.ts = 1'000'000'000;
  e.pid = 4242;
  e.ret = -2;
  std::strcpy(e.comm, "nginx");
  e.family = AF_INET;
  inet_pton(AF_INET, "10.1.2.3", e.addr);
  e.port = 443;
  e.nr = 59;
  e.dur = 1500;
  e.flags = 0x1f;
  e.stack = -14;
  inet_pton(AF_INET, "192.168.0.1", e.v4);
  inet_pton(AF_INET6, "2001:db8::1", e.v6);
  e.raw[0] = 0xde;
  e.raw[1] = 0xad;
  e.raw[2] = 0xbe;
  e.raw[3] = 0xef;
  e.ok = 1;
  e.small = -5;
  e.seq = seq;
  return e;
}

template <typename T>
std::span<const std::byte> bytes_of(const T& v) {
  return std::as_bytes(std::span<const T, 1>(&v, 1));
}

}  // namespace tracehost::testing
