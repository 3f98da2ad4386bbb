// config_util: positions, suggestions, typed getters.
#include "host/config_util.hpp"

#include <array>
#include <string_view>

#include <gtest/gtest.h>

namespace tracehost::host {
namespace {

toml::table parse(std::string_view text) {
  auto r = parse_toml_string(text, "t.toml");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
  return r.ok() ? std::move(r).value() : toml::table{};
}

TEST(ConfigUtil, EditDistance) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("abc", "abc"), 0u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("log_levl", "log_level"), 1u);
}

TEST(ConfigUtil, ClosestMatchOnlyForTypos) {
  constexpr std::array<std::string_view, 3> keys = {"plugin_dir", "log_level", "exclude_self"};
  EXPECT_EQ(closest_match("log_levle", keys), "log_level");
  EXPECT_EQ(closest_match("plugindir", keys), "plugin_dir");
  EXPECT_FALSE(closest_match("completely_different", keys).has_value());
}

TEST(ConfigUtil, WhereGivesFileLineColumn) {
  auto t = parse("a = 1\n  b = 2\n");
  EXPECT_EQ(where(*t.get("a"), "t.toml"), "t.toml:1:5");
  EXPECT_EQ(where(*t.get("b"), "t.toml"), "t.toml:2:7");
}

TEST(ConfigUtil, CheckKeysSuggests) {
  auto t = parse("[host]\nlog_levl = 'info'\n");
  constexpr std::array<std::string_view, 2> allowed = {"log_level", "plugin_dir"};
  Status s = check_keys(*t["host"].as_table(), "t.toml", allowed, "host");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind(), ErrorKind::kConfig);
  EXPECT_EQ(s.error().message(),
            "t.toml:2:1: host.log_levl: unknown key 'log_levl' in [host]; did you mean "
            "'log_level'?");
}

TEST(ConfigUtil, CheckKeysListsAllowedWithoutCloseMatch) {
  auto t = parse("zzzzzzzz = 1\n");
  constexpr std::array<std::string_view, 2> allowed = {"alpha", "beta"};
  Status s = check_keys(t, "t.toml", allowed, "x");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("(allowed: alpha, beta)"), std::string::npos);
}

TEST(ConfigUtil, TypedGettersDefaultsAndTypeErrors) {
  auto t = parse("s = 'x'\ni = 7\nb = true\nd = 2\nl = ['a', 'b']\nbad = 'no'\nmixed = ['a', 1]\n");
  EXPECT_EQ(*get_string(t, "s", "def", "t.toml"), "x");
  EXPECT_EQ(*get_string(t, "missing", "def", "t.toml"), "def");
  EXPECT_EQ(*get_int(t, "i", 0, "t.toml"), 7);
  EXPECT_TRUE(*get_bool(t, "b", false, "t.toml"));
  EXPECT_DOUBLE_EQ(*get_double(t, "d", 0, "t.toml"), 2.0);  // integers accepted as floats
  EXPECT_EQ(*get_string_list(t, "l", {}, "t.toml"), (std::vector<std::string>{"a", "b"}));

  auto bad = get_int(t, "bad", 0, "t.toml", "tbl");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "t.toml:6:7: tbl.bad: expected an integer, got a string");

  auto mixed = get_string_list(t, "mixed", {}, "t.toml");
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.error().message().find("t.toml:7:15"), std::string::npos)
      << mixed.error().message();
}

TEST(ConfigUtil, IntRange) {
  auto t = parse("n = 5000\n");
  auto r = get_int_in_range(t, "n", 10, 1, 1000, "t.toml", "host");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "t.toml:1:5: host.n: value 5000 is out of range [1, 1000]");
}

TEST(ConfigUtil, SyntaxErrorHasPosition) {
  auto r = parse_toml_string("[host]\nlog_level = \n", "bad.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), ErrorKind::kConfig);
  EXPECT_EQ(r.error().message().rfind("bad.toml:2:", 0), 0u) << r.error().message();
  EXPECT_NE(r.error().message().find("TOML syntax error"), std::string::npos);
}

TEST(ConfigUtil, MissingFile) {
  auto r = parse_toml_file("/nonexistent/tracehost.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), ErrorKind::kConfig);
  EXPECT_NE(r.error().message().find("/nonexistent/tracehost.toml does not exist"),
            std::string::npos);
}

}  // namespace
}  // namespace tracehost::host
