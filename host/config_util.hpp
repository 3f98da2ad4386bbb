// Helpers shared by every part of the host that reads TOML: source positions in errors, unknown
// key detection with suggestions, and typed getters with defaults. Every error they return is an
// ErrorKind::kConfig whose message starts with "file:line:col" and names the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "tracehost/result.hpp"

namespace tracehost::host {

// "file:line:col" of a node (or "file" when the node carries no position, e.g. built in code).
std::string where(const toml::node& n, const std::filesystem::path& file);
std::string where(const toml::source_region& src, const std::filesystem::path& file);

// A kConfig error "file:line:col: key: msg". `key` is the dotted path the user would search for
// ("host.poll_interval_ms"); empty leaves it out.
Error config_error(const toml::node& n, const std::filesystem::path& file, std::string_view key,
                   const std::string& msg);
Error config_error(const toml::source_region& src, const std::filesystem::path& file,
                   std::string_view key, const std::string& msg);

// Levenshtein distance, for did-you-mean suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The closest candidate within a distance that still looks like a typo, if any.
std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates);

// Every key of `tbl` must be in `allowed`; otherwise an error at the key's position
// "unknown key 'x' in [table_name]; did you mean 'y'?" (or the list of allowed keys).
Status check_keys(const toml::table& tbl, const std::filesystem::path& file,
                  std::span<const std::string_view> allowed, std::string_view table_name);

// Typed getters: a missing key yields `def`; a present key of the wrong type is an error naming
// the key, the expected and the actual type. `table_name` prefixes the key in messages
// ("host" → "host.log_level").
Result<std::string> get_string(const toml::table& tbl, std::string_view key, std::string def,
                               const std::filesystem::path& file, std::string_view table_name = {});
Result<std::int64_t> get_int(const toml::table& tbl, std::string_view key, std::int64_t def,
                             const std::filesystem::path& file, std::string_view table_name = {});
Result<bool> get_bool(const toml::table& tbl, std::string_view key, bool def,
                      const std::filesystem::path& file, std::string_view table_name = {});
// Integers are accepted where a float is expected ("interval_s = 2").
Result<double> get_double(const toml::table& tbl, std::string_view key, double def,
                          const std::filesystem::path& file, std::string_view table_name = {});
Result<std::vector<std::string>> get_string_list(const toml::table& tbl, std::string_view key,
                                                 std::vector<std::string> def,
                                                 const std::filesystem::path& file,
                                                 std::string_view table_name = {});

// Integer within [min, max], else an error naming the range.
Result<std::int64_t> get_int_in_range(const toml::table& tbl, std::string_view key,
                                      std::int64_t def, std::int64_t min, std::int64_t max,
                                      const std::filesystem::path& file,
                                      std::string_view table_name = {});

// "integer", "string", "array", … for type-mismatch messages.
std::string_view type_name(toml::node_type t) noexcept;

// Parses a file; a syntax error becomes a kConfig error at its position. A missing or unreadable
// file is a kConfig error naming the path.
Result<toml::table> parse_toml_file(const std::filesystem::path& file);
// Parses text as if it came from `file` (tests, stdin).
Result<toml::table> parse_toml_string(std::string_view text, const std::filesystem::path& file);

}  // namespace tracehost::host
