// Config file validation: [host], [plugins.NAME] (against a fake plugin key table), [sinks.NAME].
#include "host/config.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host/config_util.hpp"

namespace tracehost::host {
namespace {

namespace fs = std::filesystem;

Result<Config> parse(std::string_view text, SinkValidator v = nullptr) {
  return parse_config(text, "/etc/th/test.toml", v);
}

std::string error_of(const Result<Config>& r) {
  return r.ok() ? std::string("(no error)") : r.error().message();
}

TEST(Config, GoodConfig) {
  auto r = parse(R"(
[host]
plugin_dir = "/opt/th/plugins"
log_level = "debug"
poll_interval_ms = 25
exclude_self = false

[plugins.syscall]
enabled = true
required = true
comms = ["nginx"]

[plugins.network]

[sinks.console]
interval_s = 2
)");
  ASSERT_TRUE(r.ok()) << error_of(r);
  const Config& c = *r;
  EXPECT_EQ(c.host.plugin_dir, fs::path("/opt/th/plugins"));
  EXPECT_EQ(c.host.log_level, spdlog::level::debug);
  EXPECT_EQ(c.host.poll_interval_ms, 25);
  EXPECT_FALSE(c.host.exclude_self);
  ASSERT_EQ(c.plugins.size(), 2u);
  const PluginSection* sys = c.find_plugin("syscall");
  ASSERT_NE(sys, nullptr);
  EXPECT_TRUE(sys->enabled);
  EXPECT_TRUE(sys->required);
  ASSERT_NE(sys->table, nullptr);
  const PluginSection* net = c.find_plugin("network");
  ASSERT_NE(net, nullptr);
  EXPECT_FALSE(net->enabled);  // enabled defaults to false
  EXPECT_FALSE(net->required);
  ASSERT_EQ(c.enabled_plugins().size(), 1u);
  EXPECT_EQ(c.enabled_plugins()[0]->name, "syscall");
  ASSERT_EQ(c.sinks.size(), 1u);
  EXPECT_EQ(c.sinks[0].name, "console");
}

TEST(Config, Defaults) {
  auto r = parse("");
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->host.log_level, spdlog::level::info);
  EXPECT_EQ(r->host.poll_interval_ms, 10);
  EXPECT_TRUE(r->host.exclude_self);
  EXPECT_EQ(r->host.plugin_dir, default_plugin_dir());
  EXPECT_FALSE(r->host.plugin_dir_from_config);
}

TEST(Config, UnknownHostKeySuggests) {
  auto r = parse("[host]\npoll_intervl_ms = 5\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), ErrorKind::kConfig);
  EXPECT_EQ(error_of(r),
            "/etc/th/test.toml:2:1: host.poll_intervl_ms: unknown key 'poll_intervl_ms' in "
            "[host]; did you mean 'poll_interval_ms'?");
}

TEST(Config, UnknownTopLevelTableSuggests) {
  auto r = parse("[host]\n\n[sink.console]\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("/etc/th/test.toml:3:2"), std::string::npos) << error_of(r);
  EXPECT_NE(error_of(r).find("unknown table [sink]; did you mean [sinks]?"), std::string::npos)
      << error_of(r);
}

TEST(Config, UnknownTopLevelKey) {
  auto r = parse("verbose = true\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("/etc/th/test.toml:1:1: verbose: unknown top-level key 'verbose' "
                             "(allowed: [host], [plugins.NAME], [sinks.NAME])"),
            std::string::npos)
      << error_of(r);
}

TEST(Config, WrongTypeNamesFileLineColumnAndKey) {
  auto r = parse("[host]\nexclude_self = \"yes\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(error_of(r),
            "/etc/th/test.toml:2:16: host.exclude_self: expected a boolean (true or false), got "
            "a string");
}

TEST(Config, BadLogLevel) {
  auto r = parse("[host]\nlog_level = \"verbose\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("/etc/th/test.toml:2:13: host.log_level: unknown log level 'verbose'"),
            std::string::npos)
      << error_of(r);
}

TEST(Config, PollIntervalRange) {
  auto r = parse("[host]\npoll_interval_ms = 0\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("out of range [1, 1000]"), std::string::npos) << error_of(r);
}

TEST(Config, PluginTableMustBeTableAndNameValid) {
  auto r = parse("[plugins]\nsyscall = true\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("2:11: plugins.syscall: expected a table [plugins.syscall]"),
            std::string::npos)
      << error_of(r);

  auto bad = parse("[plugins.Sys-Call]\nenabled = true\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(error_of(bad).find("plugin names are lower-case letters"), std::string::npos);
}

TEST(Config, EnabledMustBeBool) {
  auto r = parse("[plugins.syscall]\nenabled = 1\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(error_of(r),
            "/etc/th/test.toml:2:11: plugins.syscall.enabled: expected a boolean (true or false), "
            "got an integer");
}

TEST(Config, RelativePluginDirResolvesAgainstConfigDir) {
  auto r =
      parse_config("[host]\nplugin_dir = \"../lib/plugins\"\n", "/etc/th/sub/test.toml", nullptr);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->host.plugin_dir, fs::path("/etc/th/lib/plugins"));
  EXPECT_TRUE(r->host.plugin_dir_from_config);
}

TEST(Config, RelativePluginDirFromRealFile) {
  char tmpl[] = "/tmp/th_cfg_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  fs::path dir = tmpl;
  fs::path file = dir / "tracehost.toml";
  std::ofstream(file) << "[host]\nplugin_dir = \"plugins\"\n";
  auto r = load_config(file, nullptr);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->host.plugin_dir, dir / "plugins");
  EXPECT_EQ(r->file, file);
  fs::remove_all(dir);
}

Status reject_json(std::string_view name, const toml::table& t, const fs::path& file) {
  if (name == "json") return config_error(t, file, "sinks.json", "rejected by the validator");
  return ok();
}

TEST(Config, SinksGoThroughValidator) {
  auto good = parse("[sinks.console]\n", reject_json);
  EXPECT_TRUE(good.ok()) << error_of(good);
  auto bad = parse("[sinks.console]\n[sinks.json]\npath = '-'\n", reject_json);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(error_of(bad).find("sinks.json: rejected by the validator"), std::string::npos);
  auto not_table = parse("[sinks]\nconsole = 1\n", reject_json);
  ASSERT_FALSE(not_table.ok());
  EXPECT_NE(error_of(not_table).find("expected a table [sinks.console]"), std::string::npos);
}

TEST(Config, OverridesPluginsAndDir) {
  auto r = parse("[plugins.a]\nenabled = true\n[plugins.b]\nenabled = false\nrequired = true\n");
  ASSERT_TRUE(r.ok()) << error_of(r);
  Config c = *r;
  Overrides o;
  o.plugins = std::vector<std::string>{"b", "c"};
  o.plugin_dir = "/x/y";
  ASSERT_TRUE(apply_overrides(c, o).ok());
  EXPECT_FALSE(c.find_plugin("a")->enabled);
  EXPECT_TRUE(c.find_plugin("b")->enabled);
  EXPECT_TRUE(c.find_plugin("b")->required);  // kept from the config
  ASSERT_NE(c.find_plugin("c"), nullptr);
  EXPECT_TRUE(c.find_plugin("c")->enabled);
  EXPECT_EQ(c.find_plugin("c")->table, nullptr);
  EXPECT_EQ(c.host.plugin_dir, fs::path("/x/y"));

  Overrides bad;
  bad.plugins = std::vector<std::string>{"Bad Name"};
  Status s = apply_overrides(c, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind(), ErrorKind::kConfig);
}

// ---- plugin keys against a fake descriptor key table -------------------------------------------

const char* const kModes[] = {"fast", "slow"};

th_config_key key(const char* name, th_value_type type) {
  th_config_key k{};
  k.struct_size = sizeof(k);
  k.name = name;
  k.type = type;
  k.doc = "doc";
  return k;
}

std::vector<th_config_key> fake_keys() {
  std::vector<th_config_key> keys;
  auto threshold = key("slow_threshold_us", TH_VALUE_INT);
  threshold.default_int = 100;
  threshold.has_range = 1;
  threshold.min = 0;
  threshold.max = 1000000;
  keys.push_back(threshold);
  auto mode = key("mode", TH_VALUE_STRING);
  mode.default_string = "fast";
  mode.choices = kModes;
  mode.choice_count = 2;
  keys.push_back(mode);
  auto comms = key("comms", TH_VALUE_STRING_LIST);
  comms.has_range = 1;
  comms.min = 0;
  comms.max = 2;
  keys.push_back(comms);
  auto ports = key("ports", TH_VALUE_INT_LIST);
  ports.has_range = 1;
  ports.min = 1;
  ports.max = 65535;
  keys.push_back(ports);
  auto ratio = key("ratio", TH_VALUE_DOUBLE);
  ratio.default_double = 0.5;
  ratio.has_range = 1;
  ratio.min = 0;
  ratio.max = 1;
  keys.push_back(ratio);
  auto verbose = key("verbose", TH_VALUE_BOOL);
  verbose.default_bool = 1;
  keys.push_back(verbose);
  return keys;
}

struct PluginCase {
  Config config;
  std::vector<ConfigKeySpec> specs;
};

PluginCase plugin_case(std::string_view body) {
  PluginCase pc;
  std::string text = "[plugins.fake]\nenabled = true\n" + std::string(body);
  auto r = parse(text);
  EXPECT_TRUE(r.ok()) << error_of(r);
  if (r.ok()) pc.config = *r;
  auto keys = fake_keys();
  auto specs = read_config_keys(keys.data(), keys.size(), "fake");
  EXPECT_TRUE(specs.ok()) << (specs.ok() ? "" : specs.error().describe());
  if (specs.ok()) pc.specs = *specs;
  return pc;
}

Result<PluginConfig> validate(const PluginCase& pc) {
  return validate_plugin_config(pc.specs, pc.config.find_plugin("fake")->table, pc.config.file,
                                "fake");
}

TEST(PluginConfig, DefaultsApplied) {
  auto pc = plugin_case("");
  auto r = validate(pc);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->find("slow_threshold_us")->i, 100);
  EXPECT_EQ(r->find("mode")->s, "fast");
  EXPECT_TRUE(r->find("comms")->strings.empty());
  EXPECT_DOUBLE_EQ(r->find("ratio")->d, 0.5);
  EXPECT_TRUE(r->find("verbose")->b);
  EXPECT_EQ(r->find("enabled"), nullptr);  // host keys are not the plugin's
}

TEST(PluginConfig, ValuesRead) {
  auto pc = plugin_case(
      "slow_threshold_us = 5\nmode = 'slow'\ncomms = ['a', 'b']\nports = [80, 443]\nratio = 1\n"
      "verbose = false\n");
  auto r = validate(pc);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->find("slow_threshold_us")->i, 5);
  EXPECT_EQ(r->find("mode")->s, "slow");
  EXPECT_EQ(r->find("comms")->strings, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->find("ports")->ints, (std::vector<std::int64_t>{80, 443}));
  EXPECT_DOUBLE_EQ(r->find("ratio")->d, 1.0);
  EXPECT_FALSE(r->find("verbose")->b);
}

TEST(PluginConfig, UnknownKeySuggests) {
  auto pc = plugin_case("slow_treshold_us = 5\n");
  auto r = validate(pc);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), ErrorKind::kConfig);
  EXPECT_EQ(r.error().message(),
            "/etc/th/test.toml:3:1: plugins.fake.slow_treshold_us: unknown key "
            "'slow_treshold_us' in [plugins.fake]; did you mean 'slow_threshold_us'?");
}

TEST(PluginConfig, OutOfRange) {
  auto pc = plugin_case("slow_threshold_us = -1\n");
  auto r = validate(pc);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "/etc/th/test.toml:3:21: plugins.fake.slow_threshold_us: value -1 is out of range "
            "[0, 1000000]");
}

TEST(PluginConfig, DoubleOutOfRange) {
  auto pc = plugin_case("ratio = 1.5\n");
  auto r = validate(pc);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("plugins.fake.ratio: value 1.5 is out of range [0, 1]"),
            std::string::npos)
      << r.error().message();
}

TEST(PluginConfig, ChoicesWithSuggestion) {
  auto pc = plugin_case("mode = 'fsat'\n");
  auto r = validate(pc);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "/etc/th/test.toml:3:8: plugins.fake.mode: 'fsat' is not one of: fast, slow; did you "
            "mean 'fast'?");
}

TEST(PluginConfig, WrongType) {
  auto pc = plugin_case("slow_threshold_us = '5'\n");
  auto r = validate(pc);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "/etc/th/test.toml:3:21: plugins.fake.slow_threshold_us: expected an integer, got a "
            "string");
}

TEST(PluginConfig, ListLengthAndElements) {
  auto too_long = validate(plugin_case("comms = ['a', 'b', 'c']\n"));
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message().find("list has 3 elements; allowed length is [0, 2]"),
            std::string::npos)
      << too_long.error().message();

  auto bad_port = validate(plugin_case("ports = [80, 70000]\n"));
  ASSERT_FALSE(bad_port.ok());
  EXPECT_NE(bad_port.error().message().find("3:14: plugins.fake.ports: element 70000 is out of "
                                            "range [1, 65535]"),
            std::string::npos)
      << bad_port.error().message();

  auto bad_elem = validate(plugin_case("comms = ['a', 2]\n"));
  ASSERT_FALSE(bad_elem.ok());
  EXPECT_NE(bad_elem.error().message().find("found an element that is an integer"),
            std::string::npos);
}

TEST(PluginConfig, NoTableMeansDefaults) {
  auto keys = fake_keys();
  auto specs = read_config_keys(keys.data(), keys.size(), "fake");
  ASSERT_TRUE(specs.ok());
  auto r = validate_plugin_config(*specs, nullptr, "", "fake");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->find("mode")->s, "fast");
}

TEST(PluginConfig, DescriptorKeyTableChecks) {
  auto reserved = key("enabled", TH_VALUE_BOOL);
  auto r1 = read_config_keys(&reserved, 1, "fake");
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.error().kind(), ErrorKind::kAbi);
  EXPECT_NE(r1.error().message().find("reserved for the host"), std::string::npos);

  th_config_key dup[2] = {key("a", TH_VALUE_INT), key("a", TH_VALUE_INT)};
  auto r2 = read_config_keys(dup, 2, "fake");
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message().find("declared twice"), std::string::npos);

  auto bad_default = key("n", TH_VALUE_INT);
  bad_default.has_range = 1;
  bad_default.min = 1;
  bad_default.max = 10;
  auto r3 = read_config_keys(&bad_default, 1, "fake");
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message().find("default 0 is outside its range [1, 10]"), std::string::npos)
      << r3.error().message();

  auto bad_type = key("t", TH_VALUE_INT);
  bad_type.type = 42;
  EXPECT_FALSE(read_config_keys(&bad_type, 1, "fake").ok());

  auto small = key("s", TH_VALUE_INT);
  small.struct_size = 8;
  EXPECT_FALSE(read_config_keys(&small, 1, "fake").ok());
}

// A plugin built against a later minor has larger th_config_key structs: the host walks the
// array with the plugin's stride and ignores the fields it does not know.
TEST(PluginConfig, NewerStructStride) {
  struct NewerKey {
    th_config_key base;
    std::uint64_t future_field;
  };
  NewerKey keys[2] = {};
  keys[0].base = key("first", TH_VALUE_INT);
  keys[0].base.default_int = 3;
  keys[0].base.struct_size = sizeof(NewerKey);
  keys[0].future_field = 0xdeadbeef;
  keys[1].base = key("second", TH_VALUE_STRING);
  keys[1].base.default_string = "x";
  keys[1].base.struct_size = sizeof(NewerKey);
  auto r = read_config_keys(&keys[0].base, 2, "fake");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].name, "first");
  EXPECT_EQ((*r)[0].default_int, 3);
  EXPECT_EQ((*r)[1].name, "second");
  EXPECT_EQ((*r)[1].default_string, "x");
}

}  // namespace
}  // namespace tracehost::host
