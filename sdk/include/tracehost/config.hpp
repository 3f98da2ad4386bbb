// A plugin's config keys (declared once, validated by the host before `create`, printed by
// `tracehost plugins describe`) and typed reads of the validated values.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "tracehost/detail.hpp"
#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost {

// A config error about key `key` of table [plugins.<plugin>]: "[plugins.<plugin>] <key>: <message>".
// The message says what is wrong and how to fix it.
inline Error plugin_config_error(std::string_view plugin, std::string_view key,
                                 std::string_view message) {
  return Error(ErrorKind::kConfig, detail::concat("[plugins.", plugin, "] ", key, ": ", message));
}

// One key of the plugin's [plugins.NAME] table.
//
//   ConfigKey::u64("slow_threshold_us", 0, "emit syscall.slow above this; 0 = off")
//       .range(0, 60'000'000)
//   ConfigKey::strings("comms", "only these process names").length(0, 16)
//   ConfigKey::str("mode", "count", "what to do").choices({"count", "trace"})
class ConfigKey {
 public:
  // An unsigned integer: the host refuses negative values.
  static ConfigKey u64(std::string_view name, std::uint64_t def, std::string_view doc) {
    ConfigKey k(name, TH_VALUE_INT, doc);
    k.default_int_ = static_cast<std::int64_t>(def);
    k.has_range_ = true;
    k.min_ = 0;
    k.max_ = static_cast<double>(std::numeric_limits<std::int64_t>::max());
    return k;
  }
  static ConfigKey i64(std::string_view name, std::int64_t def, std::string_view doc) {
    ConfigKey k(name, TH_VALUE_INT, doc);
    k.default_int_ = def;
    return k;
  }
  static ConfigKey boolean(std::string_view name, bool def, std::string_view doc) {
    ConfigKey k(name, TH_VALUE_BOOL, doc);
    k.default_bool_ = def;
    return k;
  }
  static ConfigKey number(std::string_view name, double def, std::string_view doc) {
    ConfigKey k(name, TH_VALUE_DOUBLE, doc);
    k.default_double_ = def;
    return k;
  }
  static ConfigKey str(std::string_view name, std::string_view def, std::string_view doc) {
    ConfigKey k(name, TH_VALUE_STRING, doc);
    k.default_string_ = std::string(def);
    return k;
  }
  // Lists default to empty.
  static ConfigKey strings(std::string_view name, std::string_view doc) {
    return ConfigKey(name, TH_VALUE_STRING_LIST, doc);
  }
  static ConfigKey ints(std::string_view name, std::string_view doc) {
    return ConfigKey(name, TH_VALUE_INT_LIST, doc);
  }

  // Allowed range of an integer/number, or of each element of an int list.
  ConfigKey& range(double min, double max) {
    has_range_ = true;
    min_ = min;
    max_ = max;
    return *this;
  }
  // Allowed number of elements of a string list.
  ConfigKey& length(std::size_t min, std::size_t max) {
    return range(static_cast<double>(min), static_cast<double>(max));
  }
  // Allowed values of a string or of each element of a string list.
  ConfigKey& choices(std::initializer_list<std::string_view> values) {
    choices_.clear();
    for (auto v : values) choices_.emplace_back(v);
    return *this;
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  // The C view; valid while this key is neither modified nor moved.
  [[nodiscard]] const th_config_key& c() {
    c_choices_.clear();
    for (const auto& v : choices_) c_choices_.push_back(v.c_str());
    c_ = th_config_key{};
    c_.struct_size = sizeof(th_config_key);
    c_.name = name_.c_str();
    c_.type = type_;
    c_.doc = doc_.c_str();
    c_.default_bool = default_bool_ ? 1 : 0;
    c_.default_int = default_int_;
    c_.default_double = default_double_;
    c_.default_string = default_string_.c_str();
    c_.has_range = has_range_ ? 1 : 0;
    c_.min = min_;
    c_.max = max_;
    c_.choices = c_choices_.empty() ? nullptr : c_choices_.data();
    c_.choice_count = c_choices_.size();
    return c_;
  }

 private:
  ConfigKey(std::string_view name, std::int32_t type, std::string_view doc)
      : name_(name), type_(type), doc_(doc) {}

  std::string name_;
  std::int32_t type_;
  std::string doc_;
  bool default_bool_ = false;
  std::int64_t default_int_ = 0;
  double default_double_ = 0;
  std::string default_string_;
  bool has_range_ = false;
  double min_ = 0;
  double max_ = 0;
  std::vector<std::string> choices_;
  std::vector<const char*> c_choices_;
  th_config_key c_{};
};

// Typed reads of the plugin's validated config (defaults applied). A key that is not in the
// plugin's schema is kNotFound, a read with the wrong type kConfig: both are plugin bugs.
class Config {
 public:
  explicit Config(const th_host_api* api) noexcept : api_(api) {}

  [[nodiscard]] Result<bool> boolean(std::string_view key) const {
    std::int32_t v = 0;
    TH_TRY(detail::call(api_->config_bool, api_->host, detail::c_str(key).c_str(), &v));
    return v != 0;
  }
  [[nodiscard]] Result<std::int64_t> i64(std::string_view key) const {
    std::int64_t v = 0;
    TH_TRY(detail::call(api_->config_int, api_->host, detail::c_str(key).c_str(), &v));
    return v;
  }
  [[nodiscard]] Result<std::uint64_t> u64(std::string_view key) const {
    TH_ASSIGN_OR_RETURN(std::int64_t v, i64(key));
    if (v < 0) {
      return Error(ErrorKind::kConfig,
                   detail::concat("config key '", key, "' is ", v, ", expected >= 0"));
    }
    return static_cast<std::uint64_t>(v);
  }
  [[nodiscard]] Result<double> number(std::string_view key) const {
    double v = 0;
    TH_TRY(detail::call(api_->config_double, api_->host, detail::c_str(key).c_str(), &v));
    return v;
  }
  [[nodiscard]] Result<std::string> str(std::string_view key) const {
    const char* v = nullptr;
    TH_TRY(detail::call(api_->config_string, api_->host, detail::c_str(key).c_str(), &v));
    return std::string(v != nullptr ? v : "");
  }
  [[nodiscard]] Result<std::vector<std::string>> strings(std::string_view key) const {
    std::string k(key);
    std::size_t n = 0;
    TH_TRY(detail::call(api_->config_list_size, api_->host, k.c_str(), &n));
    std::vector<std::string> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const char* v = nullptr;
      TH_TRY(detail::call(api_->config_list_string, api_->host, k.c_str(), i, &v));
      out.emplace_back(v != nullptr ? v : "");
    }
    return out;
  }
  [[nodiscard]] Result<std::vector<std::int64_t>> ints(std::string_view key) const {
    std::string k(key);
    std::size_t n = 0;
    TH_TRY(detail::call(api_->config_list_size, api_->host, k.c_str(), &n));
    std::vector<std::int64_t> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::int64_t v = 0;
      TH_TRY(detail::call(api_->config_list_int, api_->host, k.c_str(), i, &v));
      out.push_back(v);
    }
    return out;
  }

  // [host] exclude_self: whether in-kernel filters should skip the host's own process (whose
  // pid is getpid() in plugin code). A host-wide key every plugin may read; true when the host
  // does not provide it.
  [[nodiscard]] bool host_exclude_self() const {
    auto v = boolean("host.exclude_self");
    return !v.ok() || *v;
  }

 private:
  const th_host_api* api_;
};

}  // namespace tracehost
