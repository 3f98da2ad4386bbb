// Event layouts for the data plane benchmarks (bench_event_bus, bench_json_sink): an exec-like one
// and a TCP-connection-like one (the network plugin's record: addresses, ports, enums).
#pragma once

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tracehost/plugin_api.h"

namespace tracehost::bench {

// A schema built field by field: the layouts below add their fields, then finish().
struct BenchSchemaBase {
  void add(const char* name, th_field_type type, std::size_t off, std::size_t size) {
    th_field f{};
    f.struct_size = sizeof(f);
    f.name = name;
    f.type = type;
    f.offset = static_cast<std::uint32_t>(off);
    f.size = static_cast<std::uint32_t>(size);
    fields.push_back(f);
  }
  void finish(const char* topic, std::size_t record_size) {
    schema.struct_size = sizeof(schema);
    schema.topic = topic;
    schema.record_size = static_cast<std::uint32_t>(record_size);
    schema.fields = fields.data();
    schema.field_count = fields.size();
  }
  std::vector<th_field> fields;
  th_event_schema schema{};
};

struct BenchEvent {
  std::uint64_t ts;
  std::uint32_t pid;
  std::uint32_t tid;
  std::uint32_t uid;
  std::int32_t ret;
  std::uint32_t nr;
  std::uint32_t pad;
  std::uint64_t dur;
  char comm[16];
  char filename[64];
};

inline const th_enum_entry kBenchSyscalls[] = {
    {0, "read"}, {1, "write"}, {2, "open"}, {3, "close"}, {59, "execve"}};

struct BenchSchema : BenchSchemaBase {
  BenchSchema() {
    add("ts", TH_FIELD_TIMESTAMP_NS, offsetof(BenchEvent, ts), 8);
    add("pid", TH_FIELD_PID, offsetof(BenchEvent, pid), 4);
    add("tid", TH_FIELD_TID, offsetof(BenchEvent, tid), 4);
    add("uid", TH_FIELD_UID, offsetof(BenchEvent, uid), 4);
    add("ret", TH_FIELD_ERRNO, offsetof(BenchEvent, ret), 4);
    add("syscall", TH_FIELD_ENUM, offsetof(BenchEvent, nr), 4);
    fields.back().enum_entries = kBenchSyscalls;
    fields.back().enum_count = std::size(kBenchSyscalls);
    add("duration_ns", TH_FIELD_DURATION_NS, offsetof(BenchEvent, dur), 8);
    add("comm", TH_FIELD_STRING, offsetof(BenchEvent, comm), 16);
    add("filename", TH_FIELD_STRING, offsetof(BenchEvent, filename), 64);
    finish("bench.exec", sizeof(BenchEvent));
  }
};

inline BenchEvent bench_event(std::uint64_t i) {
  BenchEvent e{};
  e.ts = 1'000'000'000ull + i * 1000;
  e.pid = 1000 + static_cast<std::uint32_t>(i % 64);
  e.tid = e.pid;
  e.uid = 1000;
  e.ret = (i % 7 == 0) ? -2 : 0;
  e.nr = 59;
  e.dur = 12345;
  std::strcpy(e.comm, "bash");
  std::strcpy(e.filename, "/usr/bin/some-program-name");
  return e;
}

// The layout of the network plugin's net_tcp_event (128 bytes): header, two addresses whose
// family is another field, ports, enums, durations and counters.
struct NetBenchEvent {
  std::uint64_t ts;
  std::uint64_t cgroup_id;
  std::uint32_t pid;
  std::uint32_t tid;
  std::uint32_t uid;
  std::uint32_t gid;
  char comm[16];
  std::uint8_t saddr[16];  // IPv4 in the first 4 bytes when family == AF_INET
  std::uint8_t daddr[16];
  std::uint16_t sport;
  std::uint16_t dport;
  std::uint16_t family;
  std::uint16_t direction;
  std::uint64_t duration_ns;
  std::uint64_t bytes_sent;
  std::uint64_t bytes_received;
  std::uint32_t retransmits;
  std::uint32_t srtt_us;
  std::int32_t reason;
  std::uint32_t pad;
};
static_assert(sizeof(NetBenchEvent) == 128);

inline const th_enum_entry kNetBenchFamilies[] = {{AF_INET, "ipv4"}, {AF_INET6, "ipv6"}};
inline const th_enum_entry kNetBenchDirections[] = {{1, "out"}, {2, "in"}};

// The fields of the network plugin's tcp.close topic, in its order.
struct NetBenchSchema : BenchSchemaBase {
  NetBenchSchema() {
    using E = NetBenchEvent;
    add("timestamp", TH_FIELD_TIMESTAMP_NS, offsetof(E, ts), 8);
    add("pid", TH_FIELD_PID, offsetof(E, pid), 4);
    add("tid", TH_FIELD_TID, offsetof(E, tid), 4);
    add("uid", TH_FIELD_UID, offsetof(E, uid), 4);
    add("comm", TH_FIELD_STRING, offsetof(E, comm), 16);
    add("cgroup_id", TH_FIELD_CGROUP_ID, offsetof(E, cgroup_id), 8);
    add("family", TH_FIELD_ENUM, offsetof(E, family), 2);
    fields.back().enum_entries = kNetBenchFamilies;
    fields.back().enum_count = std::size(kNetBenchFamilies);
    add("saddr", TH_FIELD_IP, offsetof(E, saddr), 16);
    fields.back().aux_field = "family";
    add("daddr", TH_FIELD_IP, offsetof(E, daddr), 16);
    fields.back().aux_field = "family";
    add("sport", TH_FIELD_PORT, offsetof(E, sport), 2);
    add("dport", TH_FIELD_PORT, offsetof(E, dport), 2);
    add("direction", TH_FIELD_ENUM, offsetof(E, direction), 2);
    fields.back().enum_entries = kNetBenchDirections;
    fields.back().enum_count = std::size(kNetBenchDirections);
    add("bytes_sent", TH_FIELD_UINT, offsetof(E, bytes_sent), 8);
    add("bytes_received", TH_FIELD_UINT, offsetof(E, bytes_received), 8);
    add("duration_ns", TH_FIELD_DURATION_NS, offsetof(E, duration_ns), 8);
    add("retransmits", TH_FIELD_UINT, offsetof(E, retransmits), 4);
    add("srtt_us", TH_FIELD_UINT, offsetof(E, srtt_us), 4);
    finish("bench.tcp.close", sizeof(NetBenchEvent));
  }
};

// Event i of a connection churn: IPv4 (10.x.y.z → 192.168.1.x) or IPv6 (a global address, a
// link-local one, loopback or IPv4-mapped, in turn), varying per event.
inline NetBenchEvent net_bench_event(std::uint64_t i, int family) {
  NetBenchEvent e{};
  e.ts = 1'000'000'000ull + i * 1000;
  e.cgroup_id = 4321;
  e.pid = 2000 + static_cast<std::uint32_t>(i % 64);
  e.tid = e.pid;
  e.uid = 1000;
  e.gid = 1000;
  std::strcpy(e.comm, "tcp_churn");
  const auto n = static_cast<std::uint8_t>(i);
  if (family == AF_INET) {
    const std::uint8_t s[4] = {10, static_cast<std::uint8_t>(i >> 8), n, 7};
    const std::uint8_t d[4] = {192, 168, 1, static_cast<std::uint8_t>(1 + i % 200)};
    std::memcpy(e.saddr, s, 4);
    std::memcpy(e.daddr, d, 4);
  } else {
    static const char* const kAddrs[] = {"2001:db8:85a3::8a2e:370:7334",
                                         "fe80::1c2d:3eff:fe4f:5a6b", "::1", "::ffff:10.20.30.40"};
    ::inet_pton(AF_INET6, kAddrs[i % 4], e.saddr);
    ::inet_pton(AF_INET6, kAddrs[(i + 1) % 4], e.daddr);
    e.saddr[15] = n;
    e.daddr[14] = n;
  }
  e.sport = static_cast<std::uint16_t>(32768 + i % 28000);
  e.dport = 8080;
  e.family = static_cast<std::uint16_t>(family);
  e.direction = (i % 2 == 0) ? 1 : 2;
  e.duration_ns = 1'234'567 + i * 17;
  e.bytes_sent = 4096 + i;
  e.bytes_received = 65536 + i * 3;
  e.retransmits = static_cast<std::uint32_t>(i % 3);
  e.srtt_us = 57 + static_cast<std::uint32_t>(i % 100);
  return e;
}

}  // namespace tracehost::bench
