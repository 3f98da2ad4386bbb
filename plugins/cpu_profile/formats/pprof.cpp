#include "formats/pprof.hpp"

#include "formats/file.hpp"

#include <zlib.h>

#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>

namespace tracehost::cpu_profile {
namespace {

// Minimal protobuf wire-format writer: varint (wire type 0) and length-delimited (wire type 2).
class ProtoWriter {
 public:
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    buf_.push_back(static_cast<std::uint8_t>(v));
  }
  void tag(std::uint32_t field, std::uint32_t wire_type) { varint((field << 3) | wire_type); }
  // proto3 scalars: zero is the default and is omitted.
  void uint_field(std::uint32_t field, std::uint64_t v) {
    if (v == 0) return;
    tag(field, 0);
    varint(v);
  }
  void int_field(std::uint32_t field, std::int64_t v) {
    uint_field(field, static_cast<std::uint64_t>(v));
  }
  void bytes_field(std::uint32_t field, std::span<const std::uint8_t> bytes) {
    tag(field, 2);
    varint(bytes.size());
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  }
  void string_field(std::uint32_t field, std::string_view s) {
    bytes_field(field, {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
  }
  void message_field(std::uint32_t field, const ProtoWriter& msg) { bytes_field(field, msg.buf_); }
  // packed repeated varints (proto3 default for repeated scalars)
  void packed_field(std::uint32_t field, std::span<const std::uint64_t> values) {
    if (values.empty()) return;
    ProtoWriter inner;
    for (auto v : values) inner.varint(v);
    bytes_field(field, inner.buf_);
  }
  std::vector<std::uint8_t>& bytes() { return buf_; }

 private:
  std::vector<std::uint8_t> buf_;
};

class StringTable {
 public:
  StringTable() { intern(""); }  // string_table[0] must be ""
  std::int64_t intern(std::string_view s) {
    auto it = index_.find(std::string(s));
    if (it != index_.end()) return it->second;
    auto id = static_cast<std::int64_t>(strings_.size());
    strings_.emplace_back(s);
    index_.emplace(strings_.back(), id);
    return id;
  }
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  std::vector<std::string> strings_;
  std::unordered_map<std::string, std::int64_t> index_;
};

struct MappingInfo {
  std::uint64_t id = 0;
  std::uint64_t start = UINT64_MAX;
  std::uint64_t limit = 0;
  std::uint64_t file_offset = 0;  // file offset of `start`
  std::string filename;
};

}  // namespace

std::vector<std::uint8_t> encode_pprof_proto(const Profile& profile) {
  StringTable strings;
  ProtoWriter out;

  // Profile.sample_type = 1 (ValueType{type = 1, unit = 2})
  auto value_type = [&](std::uint32_t field, std::string_view type, std::string_view unit) {
    ProtoWriter vt;
    vt.int_field(1, strings.intern(type));
    vt.int_field(2, strings.intern(unit));
    out.message_field(field, vt);
  };
  value_type(1, "samples", "count");
  value_type(1, "cpu", "nanoseconds");

  // Mappings: one per module, spanning the addresses seen in it.
  std::map<std::string, MappingInfo> mappings;
  for (const auto& s : profile.samples) {
    for (const auto& f : s.frames) {
      if (f.module.empty()) continue;
      auto& m = mappings[f.module];
      if (f.address < m.start) {
        m.start = f.address;
        m.file_offset =
            f.file_offset.has_value() && *f.file_offset <= f.address ? *f.file_offset : 0;
      }
      if (f.address + 1 > m.limit) m.limit = f.address + 1;
    }
  }
  std::uint64_t next_mapping = 1;
  for (auto& [name, m] : mappings) {
    m.id = next_mapping++;
    m.filename = name;
  }

  // Functions keyed by (name, module); locations by (mapping, address, function).
  std::map<std::pair<std::string, std::string>, std::uint64_t> functions;
  std::map<std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>, std::uint64_t> locations;
  std::vector<ProtoWriter> function_msgs;
  std::vector<ProtoWriter> location_msgs;

  auto function_id = [&](const Frame& f) -> std::uint64_t {
    std::string name = frame_display_name(f);
    if (f.kind == FrameKind::kKernel && f.function.empty()) name = "[kernel] " + name;
    auto [it, inserted] = functions.try_emplace({name, f.module}, functions.size() + 1);
    if (inserted) {
      ProtoWriter fn;
      fn.uint_field(1, it->second);               // id
      fn.int_field(2, strings.intern(name));      // name
      fn.int_field(3, strings.intern(name));      // system_name
      fn.int_field(4, strings.intern(f.module));  // filename
      function_msgs.push_back(std::move(fn));
    }
    return it->second;
  };
  auto location_id = [&](const Frame& f) -> std::uint64_t {
    std::uint64_t mapping_id = f.module.empty() ? 0 : mappings[f.module].id;
    std::uint64_t fn = function_id(f);
    auto [it, inserted] = locations.try_emplace({mapping_id, f.address, fn}, locations.size() + 1);
    if (inserted) {
      ProtoWriter loc;
      loc.uint_field(1, it->second);  // id
      loc.uint_field(2, mapping_id);  // mapping_id
      loc.uint_field(3, f.address);   // address
      ProtoWriter line;
      line.uint_field(1, fn);  // Line.function_id
      loc.message_field(4, line);
      location_msgs.push_back(std::move(loc));
    }
    return it->second;
  };

  // Profile.sample = 2
  const std::uint64_t period = profile.window.period_ns;
  for (const auto& s : profile.samples) {
    if (s.count == 0) continue;
    std::vector<std::uint64_t> ids;
    ids.reserve(s.frames.size());
    for (auto it = s.frames.rbegin(); it != s.frames.rend(); ++it) ids.push_back(location_id(*it));
    std::uint64_t values[2] = {s.count, s.count * period};
    ProtoWriter sample;
    sample.packed_field(1, ids);
    sample.packed_field(2, values);
    auto label = [&](std::string_view key, const std::string* str, std::int64_t num) {
      ProtoWriter l;
      l.int_field(1, strings.intern(key));
      if (str != nullptr) {
        l.int_field(2, strings.intern(*str));
      } else {
        l.int_field(3, num);
      }
      sample.message_field(3, l);
    };
    label("comm", &s.comm, 0);
    label("pid", nullptr, s.pid);
    if (s.tid) label("tid", nullptr, *s.tid);
    out.message_field(2, sample);
  }

  // Profile.mapping = 3
  for (const auto& [name, m] : mappings) {
    ProtoWriter mp;
    mp.uint_field(1, m.id);
    mp.uint_field(2, m.start);
    mp.uint_field(3, m.limit);
    mp.uint_field(4, m.file_offset);
    mp.int_field(5, strings.intern(m.filename));
    mp.uint_field(7, 1);  // has_functions: symbolised already, pprof must not re-symbolise
    out.message_field(3, mp);
  }
  for (const auto& loc : location_msgs) out.message_field(4, loc);  // Profile.location = 4
  for (const auto& fn : function_msgs) out.message_field(5, fn);    // Profile.function = 5

  // Intern everything used below before the string table is written.
  std::int64_t cpu = strings.intern("cpu");
  std::int64_t ns = strings.intern("nanoseconds");
  for (const auto& str : strings.strings()) out.string_field(6, str);    // string_table = 6
  out.int_field(9, static_cast<std::int64_t>(profile.window.start_ns));  // time_nanos
  if (profile.window.end_ns > profile.window.start_ns) {
    out.int_field(10, static_cast<std::int64_t>(profile.window.end_ns - profile.window.start_ns));
  }
  ProtoWriter period_type;  // period_type = 11
  period_type.int_field(1, cpu);
  period_type.int_field(2, ns);
  out.message_field(11, period_type);
  out.int_field(12, static_cast<std::int64_t>(period));  // period = 12
  return std::move(out.bytes());
}

Result<std::vector<std::uint8_t>> gzip_compress(std::span<const std::uint8_t> data) {
  z_stream zs{};
  // windowBits 15 + 16: zlib writes a gzip header and trailer instead of a zlib one.
  int rc = deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) {
    return Error(ErrorKind::kInternal, "zlib deflateInit2 failed: code " + std::to_string(rc));
  }
  std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64);
  zs.next_in = const_cast<Bytef*>(data.data());  // zlib's API is not const-correct
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  rc = deflate(&zs, Z_FINISH);
  std::size_t produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    return Error(ErrorKind::kInternal, "zlib deflate failed: code " + std::to_string(rc));
  }
  out.resize(produced);
  return out;
}

Result<std::vector<std::uint8_t>> encode_pprof(const Profile& profile) {
  auto raw = encode_pprof_proto(profile);
  return gzip_compress(raw);
}

Status write_pprof_file(const Profile& profile, const std::filesystem::path& path) {
  TH_ASSIGN_OR_RETURN(auto bytes, encode_pprof(profile));
  return write_file_atomically(
      path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace tracehost::cpu_profile
