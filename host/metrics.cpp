#include "host/metrics.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "host/logging.hpp"
#include "host/plugin_abi.hpp"
#include "host/render.hpp"

namespace tracehost::host {

namespace {

using LabelKey = std::vector<std::string>;

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || n.starts_with("__")) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string strip_total(std::string name) {
  constexpr std::string_view kTotal = "_total";
  if (name.size() > kTotal.size() && std::string_view(name).ends_with(kTotal)) {
    name.resize(name.size() - kTotal.size());
  }
  return name;
}

std::string full_name_of(std::string_view name) {
  if (name.starts_with(kMetricPrefix)) return std::string(name);
  return std::string(kMetricPrefix) + std::string(name);
}

const std::vector<double>& default_buckets() {
  static const std::vector<double> b = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return b;
}

bool is_int_size(std::uint32_t s) { return s == 1 || s == 2 || s == 4 || s == 8; }

// ---- fd-based map reader ------------------------------------------------------------------------

class FdMapReader final : public MapReader {
 public:
  FdMapReader(int fd, MapRef keep, std::string name, std::uint32_t key_size,
              std::uint32_t value_size, std::uint32_t max_entries, bool per_cpu,
              std::uint32_t ncpus)
      : fd_(fd),
        keep_(std::move(keep)),
        name_(std::move(name)),
        key_size_(key_size),
        value_size_(value_size),
        max_entries_(max_entries),
        per_cpu_(per_cpu),
        ncpus_(ncpus) {}

  std::uint32_t key_size() const override { return key_size_; }
  std::uint32_t value_size() const override { return value_size_; }
  std::string name() const override { return name_; }

  Status for_each(const EntryFn& fn) override {
    std::vector<std::byte> key(key_size_), next(key_size_);
    const std::size_t stride = (value_size_ + 7u) & ~std::size_t{7};
    std::vector<std::byte> raw(per_cpu_ ? stride * ncpus_ : value_size_);
    std::vector<std::byte> value(value_size_);
    bool first = true;
    // A hash map whose current key is deleted mid-walk restarts from its first key: bound the
    // walk so a churning map cannot keep us here.
    const std::uint64_t limit = 2ull * max_entries_ + 16;
    for (std::uint64_t n = 0; n < limit; ++n) {
      int rc = bpf_map_get_next_key(fd_, first ? nullptr : key.data(), next.data());
      if (rc != 0) {
        if (errno == ENOENT) return ok();
        return Error(ErrorKind::kMap, "iterating map '" + name_ + "' failed", errno);
      }
      first = false;
      std::swap(key, next);
      rc = bpf_map_lookup_elem(fd_, key.data(), raw.data());
      if (rc != 0) {
        if (errno == ENOENT) continue;  // deleted since get_next_key
        return Error(ErrorKind::kMap, "reading map '" + name_ + "' failed", errno);
      }
      if (per_cpu_) {
        std::fill(value.begin(), value.end(), std::byte{0});
        for (std::uint32_t cpu = 0; cpu < ncpus_; ++cpu) {
          for (std::size_t w = 0; w + 8 <= value_size_; w += 8) {
            std::uint64_t acc, add;
            std::memcpy(&acc, value.data() + w, 8);
            std::memcpy(&add, raw.data() + cpu * stride + w, 8);
            acc += add;
            std::memcpy(value.data() + w, &acc, 8);
          }
        }
        fn(key, value);
      } else {
        fn(key, raw);
      }
    }
    return ok();
  }

 private:
  int fd_;
  MapRef keep_;
  std::string name_;
  std::uint32_t key_size_;
  std::uint32_t value_size_;
  std::uint32_t max_entries_;
  bool per_cpu_;
  std::uint32_t ncpus_;
};

bool per_cpu_type(std::uint32_t t) {
  return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
         t == BPF_MAP_TYPE_LRU_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

Result<std::unique_ptr<MapReader>> make_reader(int fd, MapRef keep, std::string name) {
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
    return Error(ErrorKind::kMap, "cannot get info of map '" + name + "'", errno);
  }
  if (info.type == BPF_MAP_TYPE_RINGBUF || info.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY ||
      info.key_size == 0) {
    return Error(ErrorKind::kMap,
                 "map '" + name +
                     "' cannot be read as metric entries (it has no keys/values to "
                     "iterate); bind a hash or array map");
  }
  bool per_cpu = per_cpu_type(info.type);
  int ncpus = per_cpu ? libbpf_num_possible_cpus() : 1;
  if (ncpus <= 0) return Error(ErrorKind::kMap, "cannot count possible CPUs", -ncpus);
  if (per_cpu && info.value_size % 8 != 0) {
    return Error(ErrorKind::kMap, "per-CPU map '" + name + "' has value_size " +
                                      std::to_string(info.value_size) +
                                      ", not a multiple of 8: cannot sum u64 words across CPUs");
  }
  return std::unique_ptr<MapReader>(std::make_unique<FdMapReader>(
      fd, std::move(keep), std::move(name), info.key_size, info.value_size, info.max_entries,
      per_cpu, static_cast<std::uint32_t>(ncpus)));
}

}  // namespace

std::string_view to_string(MetricType type) noexcept {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

const FamilySnapshot* MetricsSnapshot::find(std::string_view full_name) const noexcept {
  for (const auto& f : families) {
    if (f.name == full_name) return &f;
  }
  return nullptr;
}

Result<std::unique_ptr<MapReader>> make_fd_map_reader(int map_fd, std::string name) {
  return make_reader(map_fd, nullptr, std::move(name));
}

Result<std::unique_ptr<MapReader>> make_map_reader(MapRef map) {
  if (!map) return Error(ErrorKind::kInvalidArgument, "make_map_reader: null map");
  int fd = map->fd();
  std::string name = map->name();
  return make_reader(fd, std::move(map), std::move(name));
}

std::vector<HistogramBucket> log2_slots_to_buckets(std::span<const std::uint64_t> slots,
                                                   double scale) {
  // Slot i counts [2^i, 2^(i+1)); the last slot also holds everything larger (BPF code clamps
  // to it), so its bound is +Inf.
  std::vector<HistogramBucket> out;
  out.reserve(slots.size() + 1);
  std::uint64_t cum = 0;
  for (std::size_t i = 0; i + 1 < slots.size(); ++i) {
    cum += slots[i];
    out.push_back({std::ldexp(1.0, static_cast<int>(i) + 1) * scale, cum});
  }
  if (!slots.empty()) cum += slots.back();
  out.push_back({std::numeric_limits<double>::infinity(), cum});
  return out;
}

// ---- registry internals
// ---------------------------------------------------------------------------

struct MetricRegistry::Binding {
  struct Label {
    std::size_t index;  // into the family's label names
    std::int32_t kind;
    std::uint32_t offset;
    std::uint32_t size;
    std::vector<std::pair<std::int64_t, std::string>> enums;
  };
  std::string owner;
  std::unique_ptr<MapReader> reader;
  std::vector<Label> labels;
  std::int32_t value_kind = TH_BIND_VALUE_U64;
  std::uint32_t value_offset = 0;
  std::uint32_t slot_count = 0;
  std::uint32_t sum_offset = 0;
  double scale = 1;
  bool skip_zero = false;
  std::mutex mu;  // the reader is not re-entrant; collect() may run on several threads
  bool error_logged = false;

  std::string label_value(const Label& l, const std::byte* key) const {
    const std::byte* p = key + l.offset;
    switch (l.kind) {
      case TH_KEY_UINT:
        return std::to_string(read_uint(p, l.size));
      case TH_KEY_INT:
        return std::to_string(read_int(p, l.size));
      case TH_KEY_STRING:
        return valid_utf8(fixed_string(p, l.size));
      case TH_KEY_ENUM: {
        std::int64_t v = read_int(p, l.size);
        std::int64_t u = static_cast<std::int64_t>(read_uint(p, l.size));
        for (const auto& [ev, name] : l.enums) {
          if (ev == v || ev == u) return name;
        }
        return std::to_string(l.size < 8 ? u : v);
      }
      case TH_KEY_ERRNO: {
        std::int64_t v = read_int(p, l.size);
        auto name = errno_name(static_cast<int>(v));
        return name.empty() ? std::to_string(v) : std::string(name);
      }
      case TH_KEY_IP: {
        // 16 bytes holding an IPv4-mapped address (::ffff:a.b.c.d) render as plain IPv4, so
        // a key can carry both families in one field
        static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        const bool mapped = l.size == 16 && std::memcmp(p, kMapped, sizeof(kMapped)) == 0;
        std::string out;
        th_field f{};
        f.type = l.size == 4 || mapped ? TH_FIELD_IPV4 : TH_FIELD_IPV6;
        f.size = mapped ? 4 : l.size;
        th_event_schema s{};
        append_field_text(out, s, f, mapped ? p + 12 : p, f.size);
        return out;
      }
      default:
        return "";
    }
  }
};

struct MetricRegistry::Family {
  MetricId id = 0;
  std::string owner;
  std::string full_name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<std::string> labels;
  std::vector<double> bounds;  // plugin-fed histograms
  std::uint32_t max_series = kDefaultMaxSeries;

  struct Fed {
    double value = 0;
    std::uint64_t count = 0;
    double sum = 0;
    std::vector<std::uint64_t> per_bucket;  // non-cumulative; bounds.size() + 1 (last: +Inf)
  };
  std::mutex mu;
  std::map<LabelKey, Fed> fed;
  std::vector<std::shared_ptr<Binding>> bindings;

  [[nodiscard]] LabelKey other_key() const { return LabelKey(labels.size(), "other"); }
};

MetricRegistry::MetricRegistry(std::uint32_t default_max_series)
    : default_max_series_(default_max_series == 0 ? kDefaultMaxSeries : default_max_series) {}

MetricRegistry::~MetricRegistry() = default;

Result<MetricId> MetricRegistry::register_family(std::string_view owner,
                                                 const th_metric_family& in) {
  TH_ASSIGN_OR_RETURN(th_metric_family f, abi_read<th_metric_family>(&in, "metric family"));
  if (f.name == nullptr || !valid_metric_name(f.name)) {
    return Error(ErrorKind::kInvalidArgument,
                 "metric family name '" + abi_string(f.name) +
                     "' is invalid: use [a-zA-Z_:][a-zA-Z0-9_:]*, without the tracehost_ prefix");
  }
  auto fam = std::make_shared<Family>();
  fam->owner = std::string(owner);
  fam->help = abi_string(f.help);
  switch (f.type) {
    case TH_METRIC_COUNTER:
      fam->type = MetricType::kCounter;
      break;
    case TH_METRIC_GAUGE:
      fam->type = MetricType::kGauge;
      break;
    case TH_METRIC_HISTOGRAM:
      fam->type = MetricType::kHistogram;
      break;
    default:
      return Error(ErrorKind::kInvalidArgument, "metric family '" + std::string(f.name) +
                                                    "' has unknown type " + std::to_string(f.type));
  }
  std::string name = full_name_of(f.name);
  if (fam->type == MetricType::kCounter) name = strip_total(std::move(name));
  fam->full_name = name;
  auto err = [&](std::string msg) {
    return Error(ErrorKind::kInvalidArgument, "metric family '" + name + "': " + std::move(msg));
  };
  if (f.label_count > 0 && f.label_names == nullptr) return err("label_count > 0 but no names");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < f.label_count; ++i) {
    std::string l = abi_string(f.label_names[i]);
    if (!valid_label_name(l)) {
      return err("label name '" + l + "' is invalid: use [a-zA-Z_][a-zA-Z0-9_]*, not __*");
    }
    if (fam->type == MetricType::kHistogram && l == "le") {
      return err("histograms cannot have a label 'le' (Prometheus uses it for buckets)");
    }
    if (!seen.insert(l).second) return err("duplicate label name '" + l + "'");
    fam->labels.push_back(std::move(l));
  }
  if (fam->type == MetricType::kHistogram) {
    if (f.bucket_count > 0 && f.buckets == nullptr) return err("bucket_count > 0 but no buckets");
    for (std::size_t i = 0; i < f.bucket_count; ++i) {
      double b = f.buckets[i];
      if (std::isnan(b)) return err("bucket bound is NaN");
      if (std::isinf(b) && b > 0) continue;  // +Inf is implicit
      if (!fam->bounds.empty() && b <= fam->bounds.back()) {
        return err("bucket bounds must be strictly ascending");
      }
      fam->bounds.push_back(b);
    }
    if (fam->bounds.empty()) fam->bounds = default_buckets();
  }
  fam->max_series = f.max_series != 0 ? f.max_series : default_max_series_;

  std::unique_lock lock(mu_);
  if (auto it = by_name_.find(name); it != by_name_.end()) {
    return Error(
        ErrorKind::kInvalidArgument,
        "metric family '" + name + "' is already registered by '" + it->second->owner + "'");
  }
  fam->id = next_id_++;
  by_name_.emplace(name, fam);
  by_id_.emplace(fam->id, fam);
  return fam->id;
}

std::optional<MetricId> MetricRegistry::find(std::string_view name) const {
  std::shared_lock lock(mu_);
  std::string full = full_name_of(name);
  auto it = by_name_.find(full);
  if (it == by_name_.end()) it = by_name_.find(strip_total(full));
  if (it == by_name_.end()) return std::nullopt;
  return it->second->id;
}

Status MetricRegistry::update(MetricId id, std::span<const std::string> label_values, MetricOp op,
                              double value) {
  std::vector<std::string_view> views(label_values.begin(), label_values.end());
  return update(id, views, op, value);
}

Status MetricRegistry::update(MetricId id, std::span<const std::string_view> label_values,
                              MetricOp op, double value) {
  std::shared_ptr<Family> fam;
  {
    std::shared_lock lock(mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) {
      return Error(ErrorKind::kNotFound, "metric " + std::to_string(id) + " is not registered");
    }
    fam = it->second;
  }
  auto err = [&](std::string msg) {
    return Error(ErrorKind::kInvalidArgument, "metric '" + fam->full_name + "': " + std::move(msg));
  };
  if (label_values.size() != fam->labels.size()) {
    return err("got " + std::to_string(label_values.size()) + " label values, the family has " +
               std::to_string(fam->labels.size()) + " labels");
  }
  if (std::isnan(value)) return err("value is NaN");
  switch (fam->type) {
    case MetricType::kCounter:
      if (op != MetricOp::kAdd) return err("counters only support ADD");
      if (value < 0) return err("counters cannot decrease (ADD of a negative value)");
      break;
    case MetricType::kGauge:
      if (op != MetricOp::kAdd && op != MetricOp::kSet && op != MetricOp::kRemove) {
        return err("gauges support ADD, SET and REMOVE");
      }
      break;
    case MetricType::kHistogram:
      if (op != MetricOp::kObserve) return err("histograms only support OBSERVE");
      break;
  }
  LabelKey key;
  key.reserve(label_values.size());
  for (auto v : label_values) key.push_back(valid_utf8(v));
  if (op == MetricOp::kRemove) {
    std::lock_guard lock(fam->mu);
    fam->fed.erase(key);
    return ok();
  }
  bool folded = false;
  {
    std::lock_guard lock(fam->mu);
    auto it = fam->fed.find(key);
    if (it == fam->fed.end()) {
      LabelKey other = fam->other_key();
      std::size_t live = fam->fed.size() - (fam->fed.count(other) != 0 ? 1 : 0);
      if (live >= fam->max_series && key != other) {
        key = std::move(other);
        folded = true;
      }
      it = fam->fed.try_emplace(std::move(key)).first;
      if (fam->type == MetricType::kHistogram) it->second.per_bucket.resize(fam->bounds.size() + 1);
    }
    auto& s = it->second;
    switch (op) {
      case MetricOp::kAdd:
        s.value += value;
        break;
      case MetricOp::kSet:
        s.value = value;
        break;
      case MetricOp::kRemove:  // handled above
        break;
      case MetricOp::kObserve: {
        auto pos = std::lower_bound(fam->bounds.begin(), fam->bounds.end(), value);
        s.per_bucket[static_cast<std::size_t>(pos - fam->bounds.begin())]++;
        s.count++;
        s.sum += value;
        break;
      }
    }
  }
  if (folded) {
    std::lock_guard lock(folded_mu_);
    folded_[fam->full_name]++;
  }
  return ok();
}

Status MetricRegistry::bind_map(MetricId id, std::string_view owner,
                                std::unique_ptr<MapReader> reader, const th_map_binding& in) {
  if (!reader) return Error(ErrorKind::kInvalidArgument, "bind_map: no map");
  std::shared_ptr<Family> fam;
  {
    std::shared_lock lock(mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) {
      return Error(ErrorKind::kNotFound, "metric " + std::to_string(id) + " is not registered");
    }
    fam = it->second;
  }
  const std::string map_name = reader->name();
  auto err = [&](std::string msg) {
    return Error(ErrorKind::kMap, "binding map '" + map_name + "' to metric '" + fam->full_name +
                                      "': " + std::move(msg));
  };
  TH_ASSIGN_OR_RETURN(th_map_binding b, abi_read<th_map_binding>(&in, "map binding"));
  TH_ASSIGN_OR_RETURN(std::vector<th_key_label> labels,
                      abi_read_array<th_key_label>(b.labels, b.label_count, "map binding labels"));
  auto bind = std::make_shared<Binding>();
  bind->owner = std::string(owner);
  const std::uint32_t ks = reader->key_size();
  const std::uint32_t vs = reader->value_size();
  std::vector<bool> covered(fam->labels.size(), false);
  for (const auto& l : labels) {
    std::string lname = abi_string(l.label);
    auto pos = std::find(fam->labels.begin(), fam->labels.end(), lname);
    if (pos == fam->labels.end()) return err("'" + lname + "' is not a label of the family");
    auto idx = static_cast<std::size_t>(pos - fam->labels.begin());
    if (covered[idx]) return err("label '" + lname + "' is bound twice");
    covered[idx] = true;
    if (static_cast<std::uint64_t>(l.offset) + l.size > ks || l.size == 0) {
      return err("label '" + lname + "' (offset " + std::to_string(l.offset) + ", size " +
                 std::to_string(l.size) + ") does not fit the " + std::to_string(ks) + "-byte key");
    }
    switch (l.kind) {
      case TH_KEY_UINT:
      case TH_KEY_INT:
      case TH_KEY_ENUM:
      case TH_KEY_ERRNO:
        if (!is_int_size(l.size)) return err("label '" + lname + "': integer size must be 1/2/4/8");
        break;
      case TH_KEY_STRING:
        break;
      case TH_KEY_IP:
        if (l.size != 4 && l.size != 16) return err("label '" + lname + "': IP size must be 4/16");
        break;
      default:
        return err("label '" + lname + "': unknown kind " + std::to_string(l.kind));
    }
    Binding::Label bl{idx, l.kind, l.offset, l.size, {}};
    if (l.kind == TH_KEY_ENUM && l.enum_entries != nullptr) {
      for (std::size_t e = 0; e < l.enum_count; ++e) {
        bl.enums.emplace_back(l.enum_entries[e].value, abi_string(l.enum_entries[e].name));
      }
    }
    bind->labels.push_back(std::move(bl));
  }
  for (std::size_t i = 0; i < covered.size(); ++i) {
    if (!covered[i]) return err("label '" + fam->labels[i] + "' is not given by the binding");
  }
  bind->value_kind = b.value_kind;
  bind->value_offset = b.value_offset;
  bind->slot_count = b.slot_count;
  bind->sum_offset = b.sum_offset;
  bind->scale = b.scale == 0 ? 1.0 : b.scale;
  bind->skip_zero = b.skip_zero != 0;
  if (!(bind->scale > 0) || std::isinf(bind->scale)) return err("scale must be positive");
  if (b.value_kind == TH_BIND_VALUE_U64) {
    if (fam->type == MetricType::kHistogram) {
      return err("a histogram needs value_kind LOG2_HIST, not U64");
    }
    if (static_cast<std::uint64_t>(b.value_offset) + 8 > vs) {
      return err("value_offset " + std::to_string(b.value_offset) + " + 8 exceeds the " +
                 std::to_string(vs) + "-byte value");
    }
  } else if (b.value_kind == TH_BIND_VALUE_LOG2_HIST) {
    if (fam->type != MetricType::kHistogram) {
      return err("LOG2_HIST values can only feed a histogram family");
    }
    if (b.slot_count == 0 || b.slot_count > 64) return err("slot_count must be 1..64");
    if (static_cast<std::uint64_t>(b.value_offset) + 8ull * b.slot_count > vs) {
      return err(std::to_string(b.slot_count) + " slots at offset " +
                 std::to_string(b.value_offset) + " exceed the " + std::to_string(vs) +
                 "-byte value");
    }
    if (static_cast<std::uint64_t>(b.sum_offset) + 8 > vs) {
      return err("sum_offset " + std::to_string(b.sum_offset) + " + 8 exceeds the " +
                 std::to_string(vs) + "-byte value");
    }
  } else {
    return err("unknown value_kind " + std::to_string(b.value_kind));
  }
  bind->reader = std::move(reader);
  std::shared_lock lock(mu_);  // excludes remove_owner while we attach
  std::lock_guard flock(fam->mu);
  fam->bindings.push_back(std::move(bind));
  return ok();
}

std::uint64_t MetricRegistry::add_collector(std::string_view owner, Collector collector) {
  std::unique_lock lock(mu_);
  std::uint64_t id = next_collector_++;
  collectors_.emplace_back(std::string(owner), std::make_pair(id, std::move(collector)));
  return id;
}

void MetricRegistry::remove_owner(std::string_view owner) {
  std::unique_lock lock(mu_);  // waits for a collect() in progress (it holds the lock shared)
  for (auto it = by_name_.begin(); it != by_name_.end();) {
    if (it->second->owner == owner) {
      by_id_.erase(it->second->id);
      it = by_name_.erase(it);
    } else {
      std::lock_guard flock(it->second->mu);
      auto& b = it->second->bindings;
      b.erase(std::remove_if(b.begin(), b.end(), [&](const auto& x) { return x->owner == owner; }),
              b.end());
      ++it;
    }
  }
  collectors_.erase(std::remove_if(collectors_.begin(), collectors_.end(),
                                   [&](const auto& c) { return c.first == owner; }),
                    collectors_.end());
}

MetricsSnapshot MetricRegistry::collect() {
  MetricsSnapshot out;
  // Shared for the whole collection: remove_owner() cannot close a map we are reading.
  std::shared_lock lock(mu_);
  for (const auto& [name, fam] : by_name_) {
    FamilySnapshot fs;
    fs.name = fam->full_name;
    fs.help = fam->help;
    fs.type = fam->type;
    fs.owner = fam->owner;
    fs.label_names = fam->labels;

    struct Acc {
      double value = 0;
      std::uint64_t count = 0;
      double sum = 0;
      std::vector<HistogramBucket> buckets;  // cumulative
    };
    std::map<LabelKey, Acc> merged;
    std::vector<std::shared_ptr<Binding>> bindings;
    {
      std::lock_guard flock(fam->mu);
      for (const auto& [key, s] : fam->fed) {
        Acc a;
        a.value = s.value;
        a.count = s.count;
        a.sum = s.sum;
        if (fam->type == MetricType::kHistogram) {
          std::uint64_t cum = 0;
          for (std::size_t i = 0; i < s.per_bucket.size(); ++i) {
            cum += s.per_bucket[i];
            double ub =
                i < fam->bounds.size() ? fam->bounds[i] : std::numeric_limits<double>::infinity();
            a.buckets.push_back({ub, cum});
          }
        }
        merged.emplace(key, std::move(a));
      }
      bindings = fam->bindings;
    }

    const LabelKey other = fam->other_key();
    std::uint64_t folds = 0;
    auto live = [&] { return merged.size() - (merged.count(other) != 0 ? 1 : 0); };
    for (const auto& b : bindings) {
      std::lock_guard block(b->mu);
      std::vector<std::uint64_t> slots(b->slot_count);
      Status st = b->reader->for_each(
          [&](std::span<const std::byte> key, std::span<const std::byte> value) {
            Acc a;
            if (b->value_kind == TH_BIND_VALUE_U64) {
              std::uint64_t v;
              std::memcpy(&v, value.data() + b->value_offset, 8);
              if (b->skip_zero && v == 0) return;
              a.value = static_cast<double>(v) * b->scale;
            } else {
              std::memcpy(slots.data(), value.data() + b->value_offset, 8 * slots.size());
              std::uint64_t sum;
              std::memcpy(&sum, value.data() + b->sum_offset, 8);
              std::uint64_t count = 0;
              for (auto s : slots) count += s;
              if (b->skip_zero && count == 0 && sum == 0) return;
              a.count = count;
              a.sum = static_cast<double>(sum) * b->scale;
              a.buckets = log2_slots_to_buckets(slots, b->scale);
            }
            LabelKey lk(fam->labels.size());
            for (const auto& l : b->labels) lk[l.index] = b->label_value(l, key.data());
            auto it = merged.find(lk);
            if (it == merged.end()) {
              if (live() >= fam->max_series && lk != other) {
                ++folds;
                it = merged.find(other);
                if (it == merged.end()) it = merged.emplace(other, Acc{}).first;
              } else {
                it = merged.emplace(std::move(lk), Acc{}).first;
              }
            }
            Acc& dst = it->second;
            dst.value += a.value;
            dst.count += a.count;
            dst.sum += a.sum;
            if (dst.buckets.empty()) {
              dst.buckets = std::move(a.buckets);
            } else if (dst.buckets.size() == a.buckets.size()) {
              for (std::size_t i = 0; i < dst.buckets.size(); ++i) {
                dst.buckets[i].cumulative_count += a.buckets[i].cumulative_count;
              }
            } else if (!a.buckets.empty()) {
              // Different layouts (a fed histogram and a log2 map under one label set): keep the
              // counts consistent in +Inf rather than inventing bucket boundaries.
              dst.buckets.back().cumulative_count += a.buckets.back().cumulative_count;
            }
          });
      if (!st.ok()) {
        if (!b->error_logged) {
          component_logger("metrics")->warn("metric '{}': {}", fam->full_name,
                                            st.error().describe());
          b->error_logged = true;
        }
      } else {
        b->error_logged = false;
      }
    }
    if (folds > 0) {
      std::lock_guard flock(folded_mu_);
      folded_[fam->full_name] += folds;
    }
    fs.series.reserve(merged.size());
    for (auto& [key, a] : merged) {
      SeriesSnapshot s;
      s.label_values = key;
      s.value = a.value;
      s.count = a.count;
      s.sum = a.sum;
      s.buckets = std::move(a.buckets);
      if (fs.type == MetricType::kHistogram && s.buckets.empty()) {
        s.buckets.push_back({std::numeric_limits<double>::infinity(), s.count});
      }
      fs.series.push_back(std::move(s));
    }
    out.families.push_back(std::move(fs));
  }

  {
    FamilySnapshot folded;
    folded.name = "tracehost_metric_series_folded";
    folded.help =
        "Label sets folded into the all-\"other\" series because a family reached max_series";
    folded.type = MetricType::kCounter;
    folded.owner = "host";
    folded.label_names = {"family"};
    std::lock_guard flock(folded_mu_);
    for (const auto& [fname, n] : folded_) {
      SeriesSnapshot s;
      s.label_values = {fname};
      s.value = static_cast<double>(n);
      folded.series.push_back(std::move(s));
    }
    out.families.push_back(std::move(folded));
  }

  for (const auto& [owner, c] : collectors_) {
    try {
      c.second(out);
    } catch (const std::exception& e) {
      component_logger("metrics")->warn("metric collector of '{}' failed: {}", owner, e.what());
    }
  }
  return out;
}

}  // namespace tracehost::host
