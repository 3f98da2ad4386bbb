// Helpers shared by plugins that emit events: the schema fields of the common event header
// (bpf/include/tracehost/event_header.h, filled by th_fill_header() in events.bpf.h), the ring
// buffer size key, and sizing and binding the rings of topics that config turns on or off.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tracehost/config.hpp"
#include "tracehost/detail.hpp"
#include "tracehost/event_header.h"
#include "tracehost/host.hpp"
#include "tracehost/result.hpp"
#include "tracehost/schema.hpp"

namespace tracehost {

// The th_event_header fields of record type R, whose header member is `hdr`: timestamp, pid,
// tid, uid, comm, cgroup_id. `timestamp_doc` says what the time is (e.g. "when the syscall
// returned"); `comm_doc` what the name is.
template <typename R>
std::vector<FieldData> event_header_fields(std::string_view timestamp_doc,
                                           std::string_view comm_doc = "thread name") {
  using H = th_event_header;
  std::vector<FieldData> f;
  f.push_back(field<&R::hdr, &H::timestamp_ns>("timestamp", FieldType::kTimestampNs)
                  .doc(timestamp_doc)
                  .data());
  f.push_back(field<&R::hdr, &H::pid>("pid", FieldType::kPid).doc("process id").data());
  f.push_back(field<&R::hdr, &H::tid>("tid", FieldType::kTid).doc("thread id").data());
  f.push_back(field<&R::hdr, &H::uid>("uid", FieldType::kUid).doc("user id").data());
  f.push_back(field<&R::hdr, &H::comm>("comm", FieldType::kString).doc(comm_doc).data());
  f.push_back(
      field<&R::hdr, &H::cgroup_id>("cgroup_id", FieldType::kCgroupId).doc("cgroup v2 id").data());
  return f;
}

// The usual key for the size of a plugin's event ring buffers, in KiB.
inline ConfigKey ringbuf_kb_key(std::uint64_t default_kb = 256) {
  return ConfigKey::u64("ringbuf_kb", default_kb,
                        "size of each enabled topic's ring buffer in KiB (a power of two)")
      .range(4, 1024 * 1024);
}

// Reads `key` (KiB) and returns bytes: a power of two (the kernel requires it for ring buffers;
// the error suggests the next one up) and at least one page.
inline Result<std::uint32_t> read_ringbuf_bytes(const Config& cfg, std::string_view plugin,
                                                std::string_view key = "ringbuf_kb") {
  TH_ASSIGN_OR_RETURN(std::uint64_t kb, cfg.u64(key));
  constexpr std::uint64_t kMaxKb = 1024 * 1024;
  if (kb == 0 || (kb & (kb - 1)) != 0 || kb > kMaxKb) {
    std::uint64_t up = 1;
    while (up < kb && up < kMaxKb) up <<= 1;
    return plugin_config_error(plugin, key,
                               detail::concat(kb, " is not a power of two between 1 and ", kMaxKb,
                                              " (ring buffers are); use ", up));
  }
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  return static_cast<std::uint32_t>(std::max(kb * 1024, page));
}

// One event topic fed by a ring buffer of the plugin's BPF object, switched on or off by config.
struct TopicRing {
  bool on = false;
  std::string_view map;         // the BPF_MAP_TYPE_RINGBUF map
  std::string_view topic;       // the topic it feeds
  std::uint32_t flags = 0;      // th_ringbuf_flags, e.g. TH_RINGBUF_STAGED for a TH_STAGED_RINGBUF
  std::string_view off_reason;  // what turned it off, for people: the key, e.g. "open = false"
};

// Before load: the rings of enabled topics get `bytes` (read_ringbuf_bytes), the others shrink
// to one page, the smallest ring the kernel allows.
[[nodiscard]] inline Status size_topic_rings(const BpfObject& obj, std::span<const TopicRing> rings,
                                             std::uint32_t bytes) {
  const auto page = static_cast<std::uint32_t>(::sysconf(_SC_PAGESIZE));
  for (const auto& r : rings) TH_TRY(obj.set_max_entries(r.map, r.on ? bytes : page));
  return ok();
}

// After load: binds the rings of enabled topics to their topics, and declares the others off
// with their off_reason (Events::set_off), so the console says why they stay empty.
[[nodiscard]] inline Status bind_topic_rings(Host& host, const BpfObject& obj,
                                             std::span<const TopicRing> rings) {
  for (const auto& r : rings) {
    if (!r.on) {
      if (!r.off_reason.empty()) TH_TRY(host.events().set_off(r.topic, r.off_reason));
      continue;
    }
    TH_ASSIGN_OR_RETURN(Map ring, obj.map(r.map));
    TH_TRY(host.events().bind(ring, r.topic, r.flags));
  }
  return ok();
}

}  // namespace tracehost
