// An exec-like event layout for the data plane benchmarks (bench_event_bus, bench_json_sink).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tracehost/plugin_api.h"

namespace tracehost::bench {

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

struct BenchSchema {
  BenchSchema() {
    auto add = [&](const char* name, th_field_type type, std::size_t off, std::size_t size) {
      th_field f{};
      f.struct_size = sizeof(f);
      f.name = name;
      f.type = type;
      f.offset = static_cast<std::uint32_t>(off);
      f.size = static_cast<std::uint32_t>(size);
      fields.push_back(f);
    };
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
    schema.struct_size = sizeof(schema);
    schema.topic = "bench.exec";
    schema.record_size = sizeof(BenchEvent);
    schema.fields = fields.data();
    schema.field_count = fields.size();
  }
  std::vector<th_field> fields;
  th_event_schema schema{};
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

}  // namespace tracehost::bench
