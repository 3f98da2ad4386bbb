#include "host/config_util.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

namespace tracehost::host {

namespace {

std::string qualified(std::string_view table_name, std::string_view key) {
  if (table_name.empty()) return std::string(key);
  std::string out(table_name);
  out += '.';
  out += key;
  return out;
}

Error type_error(const toml::node& n, const std::filesystem::path& file,
                 std::string_view table_name, std::string_view key, std::string_view expected) {
  return config_error(
      n, file, qualified(table_name, key),
      "expected " + std::string(expected) + ", got " + std::string(type_name(n.type())));
}

}  // namespace

std::string where(const toml::source_region& src, const std::filesystem::path& file) {
  std::string out = file.string();
  if (src.begin.line != 0) {
    out += ':';
    out += std::to_string(src.begin.line);
    out += ':';
    out += std::to_string(src.begin.column);
  }
  return out;
}

std::string where(const toml::node& n, const std::filesystem::path& file) {
  return where(n.source(), file);
}

Error config_error(const toml::source_region& src, const std::filesystem::path& file,
                   std::string_view key, const std::string& msg) {
  std::string text = where(src, file);
  text += ": ";
  if (!key.empty()) {
    text += key;
    text += ": ";
  }
  text += msg;
  return Error(ErrorKind::kConfig, std::move(text));
}

Error config_error(const toml::node& n, const std::filesystem::path& file, std::string_view key,
                   const std::string& msg) {
  return config_error(n.source(), file, key, msg);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates) {
  std::optional<std::string> best;
  std::size_t best_dist = 0;
  for (auto c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (!best || d < best_dist) {
      best = std::string(c);
      best_dist = d;
    }
  }
  // A typo changes a few characters; beyond that a suggestion is noise.
  std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  if (best && best_dist <= limit) return best;
  return std::nullopt;
}

Status check_keys(const toml::table& tbl, const std::filesystem::path& file,
                  std::span<const std::string_view> allowed, std::string_view table_name) {
  for (const auto& [k, v] : tbl) {
    std::string_view key = k.str();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string msg = "unknown key '" + std::string(key) + "'";
    if (!table_name.empty()) msg += " in [" + std::string(table_name) + "]";
    if (auto s = closest_match(key, allowed)) {
      msg += "; did you mean '" + *s + "'?";
    } else if (!allowed.empty()) {
      msg += " (allowed: ";
      for (std::size_t i = 0; i < allowed.size(); ++i) {
        if (i != 0) msg += ", ";
        msg += allowed[i];
      }
      msg += ")";
    } else {
      msg += " (this table takes no keys)";
    }
    const toml::source_region& src = k.source().begin.line != 0 ? k.source() : v.source();
    return config_error(src, file, qualified(table_name, key), msg);
  }
  return ok();
}

std::string_view type_name(toml::node_type t) noexcept {
  switch (t) {
    case toml::node_type::none:
      return "nothing";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
  }
  return "a value";
}

Result<std::string> get_string(const toml::table& tbl, std::string_view key, std::string def,
                               const std::filesystem::path& file, std::string_view table_name) {
  const toml::node* n = tbl.get(key);
  if (n == nullptr) return def;
  if (auto v = n->value<std::string>(); v && n->is_string()) return *v;
  return type_error(*n, file, table_name, key, "a string");
}

Result<std::int64_t> get_int(const toml::table& tbl, std::string_view key, std::int64_t def,
                             const std::filesystem::path& file, std::string_view table_name) {
  const toml::node* n = tbl.get(key);
  if (n == nullptr) return def;
  if (n->is_integer()) return n->as_integer()->get();
  return type_error(*n, file, table_name, key, "an integer");
}

Result<bool> get_bool(const toml::table& tbl, std::string_view key, bool def,
                      const std::filesystem::path& file, std::string_view table_name) {
  const toml::node* n = tbl.get(key);
  if (n == nullptr) return def;
  if (n->is_boolean()) return n->as_boolean()->get();
  return type_error(*n, file, table_name, key, "a boolean (true or false)");
}

Result<double> get_double(const toml::table& tbl, std::string_view key, double def,
                          const std::filesystem::path& file, std::string_view table_name) {
  const toml::node* n = tbl.get(key);
  if (n == nullptr) return def;
  if (n->is_floating_point()) return n->as_floating_point()->get();
  if (n->is_integer()) return static_cast<double>(n->as_integer()->get());
  return type_error(*n, file, table_name, key, "a number");
}

Result<std::vector<std::string>> get_string_list(const toml::table& tbl, std::string_view key,
                                                 std::vector<std::string> def,
                                                 const std::filesystem::path& file,
                                                 std::string_view table_name) {
  const toml::node* n = tbl.get(key);
  if (n == nullptr) return def;
  const toml::array* arr = n->as_array();
  if (arr == nullptr) return type_error(*n, file, table_name, key, "an array of strings");
  std::vector<std::string> out;
  out.reserve(arr->size());
  for (const toml::node& e : *arr) {
    if (!e.is_string()) {
      return config_error(e, file, qualified(table_name, key),
                          "expected an array of strings, found an element that is " +
                              std::string(type_name(e.type())));
    }
    out.push_back(e.as_string()->get());
  }
  return out;
}

Result<std::int64_t> get_int_in_range(const toml::table& tbl, std::string_view key,
                                      std::int64_t def, std::int64_t min, std::int64_t max,
                                      const std::filesystem::path& file,
                                      std::string_view table_name) {
  TH_ASSIGN_OR_RETURN(std::int64_t v, get_int(tbl, key, def, file, table_name));
  if (v < min || v > max) {
    return config_error(*tbl.get(key), file, qualified(table_name, key),
                        "value " + std::to_string(v) + " is out of range [" + std::to_string(min) +
                            ", " + std::to_string(max) + "]");
  }
  return v;
}

Result<toml::table> parse_toml_string(std::string_view text, const std::filesystem::path& file) {
  try {
    return toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    return config_error(e.source(), file, {}, "TOML syntax error: " + std::string(e.description()));
  }
}

Result<toml::table> parse_toml_file(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    return Error(ErrorKind::kConfig, "config file " + file.string() + " does not exist");
  }
  if (std::filesystem::is_directory(file, ec)) {
    return Error(ErrorKind::kConfig,
                 "config file " + file.string() + " is a directory; pass the path of a .toml file");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return Error(ErrorKind::kConfig, "cannot read config file " + file.string(), errno);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_toml_string(ss.str(), file);
}

}  // namespace tracehost::host
