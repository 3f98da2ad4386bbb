// Declarative descriptions a plugin hands to the host: event schemas, metric families and map
// bindings. Offsets and sizes are taken from the C structs by member pointer, and field types are
// checked against the member types at compile time, so a schema cannot drift from its struct.
//
// Every builder owns its strings. `c()` builds the C view (th_event_schema, …) inside the builder
// and returns a reference to it: the view stays valid while the builder is neither modified nor
// moved. The TRACEHOST_PLUGIN macro keeps the descriptor's builders in function-local statics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tracehost/detail.hpp"
#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost {

// How sinks read and render a field (mirrors th_field_type).
enum class FieldType : std::int32_t {
  kUint = TH_FIELD_UINT,
  kInt = TH_FIELD_INT,
  kBool = TH_FIELD_BOOL,
  kString = TH_FIELD_STRING,
  kIpv4 = TH_FIELD_IPV4,
  kIpv6 = TH_FIELD_IPV6,
  kIp = TH_FIELD_IP,
  kPort = TH_FIELD_PORT,
  kErrno = TH_FIELD_ERRNO,
  kDurationNs = TH_FIELD_DURATION_NS,
  kTimestampNs = TH_FIELD_TIMESTAMP_NS,
  kPid = TH_FIELD_PID,
  kTid = TH_FIELD_TID,
  kUid = TH_FIELD_UID,
  kCgroupId = TH_FIELD_CGROUP_ID,
  kEnum = TH_FIELD_ENUM,
  kStackId = TH_FIELD_STACK_ID,
  kHex = TH_FIELD_HEX,
  kFlags = TH_FIELD_FLAGS,
};

// How a map-key field becomes a label value (mirrors th_key_field_kind).
enum class KeyKind : std::int32_t {
  kUint = TH_KEY_UINT,
  kInt = TH_KEY_INT,
  kString = TH_KEY_STRING,
  kEnum = TH_KEY_ENUM,
  kErrno = TH_KEY_ERRNO,
  kIp = TH_KEY_IP,
};

// One value → name pair of an enum field or label (e.g. a syscall number and its name).
struct EnumEntry {
  std::int64_t value;
  std::string_view name;
};

namespace detail {

template <typename M>
constexpr bool field_type_fits(FieldType type) {
  constexpr std::size_t size = sizeof(M);
  switch (type) {
    case FieldType::kUint:
    case FieldType::kInt:
    case FieldType::kBool:
    case FieldType::kErrno:
    case FieldType::kDurationNs:
    case FieldType::kTimestampNs:
    case FieldType::kPid:
    case FieldType::kTid:
    case FieldType::kUid:
    case FieldType::kCgroupId:
    case FieldType::kEnum:
    case FieldType::kFlags:
      return is_scalar_int_v<M>;
    case FieldType::kString:
      return is_char_array_v<M>;
    case FieldType::kIpv4:
      return size == 4;
    case FieldType::kIpv6:
    case FieldType::kIp:
      return size == 16;
    case FieldType::kPort:
      return is_scalar_int_v<M> && size == 2;
    case FieldType::kStackId:
      return is_scalar_int_v<M> && size == 4;
    case FieldType::kHex:
      return true;
  }
  return false;
}

template <typename M>
constexpr bool key_kind_fits(KeyKind kind) {
  switch (kind) {
    case KeyKind::kUint:
    case KeyKind::kInt:
    case KeyKind::kEnum:
    case KeyKind::kErrno:
      return is_scalar_int_v<M>;
    case KeyKind::kString:
      return is_char_array_v<M>;
    case KeyKind::kIp:
      return sizeof(M) == 4 || sizeof(M) == 16;
  }
  return false;
}

// Deliberately not constexpr: reaching a call in a consteval constructor is a compile error
// whose text names the problem.
void field_type_does_not_fit_the_member_type();
void key_kind_does_not_fit_the_key_member_type();

// A FieldType checked at compile time against the member type M it describes.
template <typename M>
struct FieldTypeFor {
  FieldType value;
  consteval FieldTypeFor(FieldType t) : value(t) {  // NOLINT: implicit by design
    if (!field_type_fits<M>(t)) field_type_does_not_fit_the_member_type();
  }
};

template <typename M>
struct KeyKindFor {
  KeyKind value;
  consteval KeyKindFor(KeyKind k) : value(k) {  // NOLINT: implicit by design
    if (!key_kind_fits<M>(k)) key_kind_does_not_fit_the_key_member_type();
  }
};

// The type a member gets when the caller does not say: signed → kInt, unsigned → kUint,
// char arrays → kString, anything else → kHex.
template <typename M>
constexpr FieldType default_field_type() {
  if constexpr (is_char_array_v<M>) {
    return FieldType::kString;
  } else if constexpr (std::is_same_v<M, bool>) {
    return FieldType::kBool;
  } else if constexpr (is_scalar_int_v<M> && std::is_signed_v<M>) {
    return FieldType::kInt;
  } else if constexpr (is_scalar_int_v<M>) {
    return FieldType::kUint;
  } else {
    return FieldType::kHex;
  }
}

// Owned enum table → C entries (pointing into the owned names).
struct EnumTable {
  std::vector<std::int64_t> values;
  std::vector<std::string> names;
  std::vector<th_enum_entry> c_entries;

  void assign(std::span<const th_enum_entry> entries) {
    values.clear();
    names.clear();
    for (const auto& e : entries) {
      values.push_back(e.value);
      names.emplace_back(e.name != nullptr ? e.name : "");
    }
  }
  void assign(std::initializer_list<EnumEntry> entries) {
    values.clear();
    names.clear();
    for (const auto& e : entries) {
      values.push_back(e.value);
      names.emplace_back(e.name);
    }
  }
  const th_enum_entry* build() {
    c_entries.clear();
    for (std::size_t i = 0; i < values.size(); ++i) {
      c_entries.push_back(th_enum_entry{values[i], names[i].c_str()});
    }
    return c_entries.empty() ? nullptr : c_entries.data();
  }
};

}  // namespace detail

// ---- event schemas -----------------------------------------------------------------------------

// The type-erased description of one field; built with field<&T::member>(…).
struct FieldData {
  std::string name;
  FieldType type = FieldType::kHex;
  std::uint32_t offset = 0;
  std::uint32_t size = 0;
  std::string doc;
  detail::EnumTable enums;
  std::string aux_field;
};

// A field of record type R. Builder methods chain: field<&E::ret>("ret", FieldType::kErrno).doc(…).
template <typename R>
class FieldSpec {
 public:
  FieldSpec(std::string_view name, FieldType type, std::uint32_t offset, std::uint32_t size) {
    data_.name = std::string(name);
    data_.type = type;
    data_.offset = offset;
    data_.size = size;
  }

  FieldSpec& doc(std::string_view text) {
    data_.doc = std::string(text);
    return *this;
  }
  // Names for FieldType::kEnum values (copied).
  FieldSpec& enums(std::initializer_list<EnumEntry> entries) {
    data_.enums.assign(entries);
    return *this;
  }
  FieldSpec& enums(std::span<const th_enum_entry> entries) {
    data_.enums.assign(entries);
    return *this;
  }
  // FieldType::kIp: the field holding the address family (AF_INET / AF_INET6).
  FieldSpec& family_field(std::string_view name) {
    data_.aux_field = std::string(name);
    return *this;
  }

  [[nodiscard]] const FieldData& data() const& { return data_; }
  [[nodiscard]] FieldData&& data() && { return std::move(data_); }

 private:
  FieldData data_;
};

// A field of the record named by a member path: field<&Event::pid>("pid", FieldType::kPid), or
// field<&Event::hdr, &Header::pid>("pid", FieldType::kPid) for a nested struct. The type is
// checked against the member's C type at compile time (kString needs a char array, kPort a
// 2-byte integer, kIpv6 16 bytes, …).
template <auto M, auto... Ms>
FieldSpec<typename detail::MemberPath<M, Ms...>::Root> field(
    std::string_view name, detail::FieldTypeFor<typename detail::MemberPath<M, Ms...>::Leaf> type) {
  using Path = detail::MemberPath<M, Ms...>;
  using Root = typename Path::Root;
  return FieldSpec<Root>(name, type.value, detail::member_offset<Root, M, Ms...>(),
                         static_cast<std::uint32_t>(sizeof(typename Path::Leaf)));
}

// Same, with the type inferred from the member (signed → kInt, unsigned → kUint, char[] →
// kString, else kHex).
template <auto M, auto... Ms>
FieldSpec<typename detail::MemberPath<M, Ms...>::Root> field(std::string_view name) {
  using Path = detail::MemberPath<M, Ms...>;
  using Root = typename Path::Root;
  return FieldSpec<Root>(name, detail::default_field_type<typename Path::Leaf>(),
                         detail::member_offset<Root, M, Ms...>(),
                         static_cast<std::uint32_t>(sizeof(typename Path::Leaf)));
}

// Escape hatch for layouts member pointers cannot name (e.g. an element of an array member).
// Checked at run time by EventSchema::validate().
template <typename R>
FieldSpec<R> field_at(std::string_view name, FieldType type, std::uint32_t offset,
                      std::uint32_t size) {
  return FieldSpec<R>(name, type, offset, size);
}

// A topic and the layout of its records.
class EventSchema {
 public:
  EventSchema(std::string_view topic, std::string_view doc, std::uint32_t record_size,
              std::vector<FieldData> fields)
      : topic_(topic), doc_(doc), record_size_(record_size), fields_(std::move(fields)) {}

  [[nodiscard]] const std::string& topic() const noexcept { return topic_; }
  [[nodiscard]] std::uint32_t record_size() const noexcept { return record_size_; }
  [[nodiscard]] const std::vector<FieldData>& fields() const noexcept { return fields_; }

  // Field names unique, every field inside the record, sizes plausible for their types.
  [[nodiscard]] Status validate() const {
    if (topic_.empty()) return Error(ErrorKind::kEvent, "event schema without a topic name");
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      const FieldData& f = fields_[i];
      auto where = detail::concat("topic '", topic_, "' field '", f.name, "': ");
      if (f.name.empty()) return Error(ErrorKind::kEvent, where + "empty field name");
      if (f.size == 0 || f.offset + static_cast<std::uint64_t>(f.size) > record_size_) {
        return Error(ErrorKind::kEvent,
                     detail::concat(where, "bytes [", f.offset, ", ", f.offset + f.size,
                                    ") lie outside the ", record_size_, "-byte record"));
      }
      for (std::size_t j = 0; j < i; ++j) {
        if (fields_[j].name == f.name) return Error(ErrorKind::kEvent, where + "duplicate name");
      }
    }
    return ok();
  }

  // The C view; valid while this schema is neither modified nor moved.
  [[nodiscard]] const th_event_schema& c() {
    c_fields_.clear();
    for (FieldData& f : fields_) {
      th_field cf{};
      cf.struct_size = sizeof(th_field);
      cf.name = f.name.c_str();
      cf.type = static_cast<std::int32_t>(f.type);
      cf.offset = f.offset;
      cf.size = f.size;
      cf.doc = f.doc.c_str();
      cf.enum_entries = f.enums.build();
      cf.enum_count = f.enums.c_entries.size();
      cf.aux_field = f.aux_field.empty() ? nullptr : f.aux_field.c_str();
      c_fields_.push_back(cf);
    }
    c_ = th_event_schema{};
    c_.struct_size = sizeof(th_event_schema);
    c_.topic = topic_.c_str();
    c_.doc = doc_.c_str();
    c_.record_size = record_size_;
    c_.fields = c_fields_.empty() ? nullptr : c_fields_.data();
    c_.field_count = c_fields_.size();
    return c_;
  }

 private:
  std::string topic_;
  std::string doc_;
  std::uint32_t record_size_;
  std::vector<FieldData> fields_;
  std::vector<th_field> c_fields_;
  th_event_schema c_{};
};

// The schema of records of type R published on `topic`. Fields must describe R (a field of
// another struct does not compile); record_size is sizeof(R).
template <typename R>
EventSchema schema(std::string_view topic, std::string_view doc,
                   std::initializer_list<FieldSpec<R>> fields) {
  static_assert(std::is_trivially_copyable_v<R> && std::is_standard_layout_v<R>,
                "event records must be plain C structs shared with the BPF side");
  std::vector<FieldData> data;
  data.reserve(fields.size());
  for (const auto& f : fields) data.push_back(f.data());
  return EventSchema(topic, doc, static_cast<std::uint32_t>(sizeof(R)), std::move(data));
}

// ---- metric families ---------------------------------------------------------------------------

enum class MetricType : std::int32_t {
  kCounter = TH_METRIC_COUNTER,
  kGauge = TH_METRIC_GAUGE,
  kHistogram = TH_METRIC_HISTOGRAM,
};

// A metric family. Names are without the host prefix and, for counters, without "_total":
// "syscall_calls" is exported as "tracehost_syscall_calls_total". Values in base units.
class MetricFamily {
 public:
  static MetricFamily counter(std::string_view name, std::string_view help,
                              std::initializer_list<std::string_view> labels = {}) {
    return MetricFamily(name, help, MetricType::kCounter, labels);
  }
  static MetricFamily gauge(std::string_view name, std::string_view help,
                            std::initializer_list<std::string_view> labels = {}) {
    return MetricFamily(name, help, MetricType::kGauge, labels);
  }
  // `buckets`: upper bounds for values observed by plugin code; a family bound to a log2 slot
  // map gets its buckets from the slots instead.
  static MetricFamily histogram(std::string_view name, std::string_view help,
                                std::initializer_list<std::string_view> labels = {},
                                std::vector<double> buckets = {}) {
    MetricFamily f(name, help, MetricType::kHistogram, labels);
    f.buckets_ = std::move(buckets);
    return f;
  }

  // Appends a label name, for families whose labels are chosen at run time (e.g. by config).
  MetricFamily& add_label(std::string_view label) {
    labels_.emplace_back(label);
    return *this;
  }

  // Distinct label sets kept before the rest fold into "other" (0: host default).
  MetricFamily& max_series(std::uint32_t n) {
    max_series_ = n;
    return *this;
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] MetricType type() const noexcept { return type_; }
  [[nodiscard]] const std::vector<std::string>& labels() const noexcept { return labels_; }

  [[nodiscard]] const th_metric_family& c() {
    c_labels_.clear();
    for (const auto& l : labels_) c_labels_.push_back(l.c_str());
    c_ = th_metric_family{};
    c_.struct_size = sizeof(th_metric_family);
    c_.name = name_.c_str();
    c_.help = help_.c_str();
    c_.type = static_cast<std::int32_t>(type_);
    c_.label_names = c_labels_.empty() ? nullptr : c_labels_.data();
    c_.label_count = c_labels_.size();
    c_.buckets = buckets_.empty() ? nullptr : buckets_.data();
    c_.bucket_count = buckets_.size();
    c_.max_series = max_series_;
    return c_;
  }

 private:
  MetricFamily(std::string_view name, std::string_view help, MetricType type,
               std::initializer_list<std::string_view> labels)
      : name_(name), help_(help), type_(type) {
    for (auto l : labels) labels_.emplace_back(l);
  }

  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> labels_;
  std::vector<double> buckets_;
  std::uint32_t max_series_ = 0;
  std::vector<const char*> c_labels_;
  th_metric_family c_{};
};

// ---- map bindings ------------------------------------------------------------------------------

struct KeyLabelData {
  std::string label;
  KeyKind kind = KeyKind::kUint;
  std::uint32_t offset = 0;
  std::uint32_t size = 0;
  detail::EnumTable enums;
};

// How a BPF map with key type K and value type V feeds a metric family: key fields → labels,
// value → the series value. Read by the host at every scrape; no plugin code runs.
//
//   MapBinding<counts_key, counts_value>()
//       .label<&counts_key::nr>("syscall", KeyKind::kEnum).enums(syscall_names)
//       .value<&counts_value::calls>()
//
// K and V are the C structs of the map; Metrics::bind checks them against the map's sizes.
template <typename K, typename V>
class MapBinding {
 public:
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>);
  using Key = K;
  using Value = V;

  // A u64 value type is its own series value; a struct value must name one with value<…>() or
  // log2_hist<…>().
  MapBinding() {
    if constexpr (std::is_integral_v<V> && sizeof(V) == 8) value<>();
  }

  // A label from the key member named by Ms… (none: the whole key, e.g. a u32 key).
  template <auto... Ms>
  MapBinding& label(std::string_view label,
                    detail::KeyKindFor<typename detail::PathOf<K, Ms...>::Leaf> kind) {
    KeyLabelData l;
    l.label = std::string(label);
    l.kind = kind.value;
    l.offset = detail::PathOf<K, Ms...>::offset();
    l.size = static_cast<std::uint32_t>(sizeof(typename detail::PathOf<K, Ms...>::Leaf));
    labels_.push_back(std::move(l));
    return *this;
  }
  // Names for the values of the last label added (KeyKind::kEnum).
  MapBinding& enums(std::initializer_list<EnumEntry> entries) {
    if (!labels_.empty()) labels_.back().enums.assign(entries);
    return *this;
  }
  MapBinding& enums(std::span<const th_enum_entry> entries) {
    if (!labels_.empty()) labels_.back().enums.assign(entries);
    return *this;
  }

  // The series value is the u64 named by Ms… (none: the whole value is one u64).
  template <auto... Ms>
  MapBinding& value() {
    using Leaf = typename detail::PathOf<V, Ms...>::Leaf;
    static_assert(std::is_integral_v<Leaf> && sizeof(Leaf) == 8,
                  "a bound counter/gauge value must be a 64-bit integer");
    c_.value_kind = TH_BIND_VALUE_U64;
    c_.value_offset = detail::PathOf<V, Ms...>::offset();
    c_.slot_count = 0;
    c_.sum_offset = 0;
    return *this;
  }

  // A log2 histogram: `Slots` names a u64[N] array (slot i counts values in [2^i, 2^(i+1))),
  // `Sum` a u64 holding the sum of the observed values.
  template <auto Slots, auto Sum>
  MapBinding& log2_hist() {
    using SlotsT = typename detail::MemberPath<Slots>::Leaf;
    using SumT = typename detail::MemberPath<Sum>::Leaf;
    static_assert(std::is_same_v<typename detail::MemberPath<Slots>::Root, V> &&
                      std::is_same_v<typename detail::MemberPath<Sum>::Root, V>,
                  "histogram slots and sum must be members of the map's value type");
    static_assert(std::is_array_v<SlotsT> && std::rank_v<SlotsT> == 1 &&
                      std::is_integral_v<std::remove_extent_t<SlotsT>> &&
                      sizeof(std::remove_extent_t<SlotsT>) == 8,
                  "log2 histogram slots must be a u64 array");
    static_assert(std::is_integral_v<SumT> && sizeof(SumT) == 8, "the sum must be a u64");
    c_.value_kind = TH_BIND_VALUE_LOG2_HIST;
    c_.value_offset = detail::member_offset<V, Slots>();
    c_.slot_count = static_cast<std::uint32_t>(std::extent_v<SlotsT>);
    c_.sum_offset = detail::member_offset<V, Sum>();
    return *this;
  }

  // Multiplies values (and histogram bounds) by `factor`, e.g. 1e-9 for ns → seconds.
  MapBinding& scale(double factor) {
    c_.scale = factor;
    return *this;
  }
  // Skips keys whose value is all zero (unused slots of array maps).
  MapBinding& skip_zero(bool skip = true) {
    c_.skip_zero = skip ? 1 : 0;
    return *this;
  }

  [[nodiscard]] bool has_value() const noexcept { return c_.value_kind != 0; }

  [[nodiscard]] const th_map_binding& c() {
    c_labels_.clear();
    for (KeyLabelData& l : labels_) {
      th_key_label cl{};
      cl.struct_size = sizeof(th_key_label);
      cl.label = l.label.c_str();
      cl.kind = static_cast<std::int32_t>(l.kind);
      cl.offset = l.offset;
      cl.size = l.size;
      cl.enum_entries = l.enums.build();
      cl.enum_count = l.enums.c_entries.size();
      c_labels_.push_back(cl);
    }
    c_.struct_size = sizeof(th_map_binding);
    c_.labels = c_labels_.empty() ? nullptr : c_labels_.data();
    c_.label_count = c_labels_.size();
    return c_;
  }

 private:
  std::vector<KeyLabelData> labels_;
  std::vector<th_key_label> c_labels_;
  th_map_binding c_{};
};

}  // namespace tracehost
