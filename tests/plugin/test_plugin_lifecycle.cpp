// Plugins through the host's PluginManager: each purpose-built broken plugin is refused with its
// own reason while the well-behaved one, loaded next to it, keeps tracing. Real BPF on the
// running kernel (root).
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/bpf_guard.hpp"
#include "plugin_test_support.hpp"

namespace tracehost::plugin_test {
namespace {

constexpr int kCalls = 64;

// Makes `kCalls` getppid() syscalls and checks that the good plugin saw them on every path:
// ring buffer → bus (topic good.sys_enter), per-CPU map → bound counter, and its own
// subscription → plugin-fed counter.
void expect_good_plugin_traces(TestHost& host) {
  auto status = host.status("good");
  ASSERT_TRUE(status.has_value());
  ASSERT_EQ(status->state, host::PluginState::kRunning)
      << (status->error ? status->error->describe() : "");

  // the leak check below must be able to see a plugin's programs at all
  EXPECT_EQ(programs_held_by_this_process().count("good_sys_enter"), 1u);

  for (int i = 0; i < kCalls; ++i) ::syscall(SYS_getppid);

  EXPECT_TRUE(eventually([&] { return host.sys_enter_count(SYS_getppid) >= kCalls; }))
      << "ring buffer records of getppid seen: " << host.sys_enter_count(SYS_getppid);
  EXPECT_TRUE(eventually([&] {
    auto v = host.series_value("tracehost_good_syscalls", {std::to_string(SYS_getppid)});
    return v.has_value() && *v >= kCalls;
  })) << "the per-CPU map bound to tracehost_good_syscalls did not count the calls";
  EXPECT_TRUE(eventually([&] {
    auto v = host.series_value("tracehost_good_events_seen");
    return v.has_value() && *v >= kCalls;
  })) << "the plugin's own subscription did not receive its records";
  EXPECT_EQ(host.series_value("tracehost_good_started"), std::optional<double>(1.0));
  EXPECT_TRUE(eventually([&] { return host.hello_count() == 1; }))
      << "the record published from start() on a topic registered at run time";
}

TEST(PluginLifecycle, GoodPluginRunsAlone) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  TestHost host(true);
  ASSERT_TRUE(host.add_good().ok());
  Status started = host.start();
  ASSERT_TRUE(started.ok()) << started.error().describe();
  expect_good_plugin_traces(host);
}

struct BadCase {
  const char* label;
  const char* name;
  const char* toml;  // the plugin's config table body
  ErrorKind kind;
  const char* reason;   // a substring of the error the host records
  const char* program;  // the program's kernel name (15 chars) that must not stay loaded
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.label; }

class BadPluginNextToGood : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadPluginNextToGood, IsRefusedWithItsReasonAndGoodKeepsRunning) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  const BadCase& c = GetParam();
  TestHost host(true);
  ASSERT_TRUE(host.add_good().ok());
  Status added = host.add(case_library(c.name), c.name, c.toml);
  ASSERT_TRUE(added.ok()) << added.error().describe();

  Status started = host.start();
  ASSERT_TRUE(started.ok()) << "a plugin that is not required must not stop the others: "
                            << started.error().describe();

  auto bad = host.status(c.name);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->state, host::PluginState::kFailed);
  ASSERT_TRUE(bad->error.has_value());
  EXPECT_EQ(bad->error->kind(), c.kind) << bad->error->describe();
  EXPECT_NE(bad->error->describe().find(c.reason), std::string::npos) << bad->error->describe();
  EXPECT_NE(bad->error->describe().find(c.name), std::string::npos)
      << "the error must name the plugin: " << bad->error->describe();
  if (c.program != nullptr) {
    EXPECT_EQ(programs_held_by_this_process().count(c.program), 0u)
        << "program " << c.program << " of the failed plugin is still loaded";
  }

  expect_good_plugin_traces(host);
}

TEST_P(BadPluginNextToGood, IsFatalWhenRequired) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  const BadCase& c = GetParam();
  TestHost host(true);
  ASSERT_TRUE(host.add_good().ok());
  ASSERT_TRUE(host.add(case_library(c.name), c.name, c.toml, /*required=*/true).ok());
  Status started = host.start();
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().kind(), c.kind);
  EXPECT_NE(started.error().describe().find(c.reason), std::string::npos)
      << started.error().describe();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadPluginNextToGood,
    ::testing::Values(
        BadCase{"create_fails", "create_fails", "", ErrorKind::kUnsupportedPlatform,
                "refuses to run on purpose", nullptr},
        BadCase{"create_throws", "create_throws", "", ErrorKind::kInternal,
                "constructor threw on purpose", nullptr},
        BadCase{"uprobe_missing_symbol", "attach_fails", "mode = \"uprobe\"",
                ErrorKind::kAttachFailed, "tracehost_no_such_function", "attach_fails_up"},
        BadCase{"raw_tp_missing", "attach_fails", "mode = \"raw_tp\"",
                ErrorKind::kKernelIncompatible, "tracehost_no_such_tracepoint", "attach_fails_ra"},
        BadCase{"verifier_rejects", "verifier_rejects", "", ErrorKind::kLoadFailed,
                "invalid access to map value", "verifier_reject"},
        BadCase{"kprobe", "kprobe", "", ErrorKind::kKernelIncompatible, "CONFIG_KPROBES",
                "kprobe_only_pro"},
        BadCase{"staged_ring_without_flag", "bad_rings", "mode = \"staged_without_flag\"",
                ErrorKind::kEvent,
                "bad_rings/staged_events is staged (declared with "
                "TH_STAGED_RINGBUF): bind it with the flag TH_RINGBUF_STAGED",
                "staged_events_f"},
        BadCase{"staged_flag_without_stage", "bad_rings", "mode = \"flag_without_stage\"",
                ErrorKind::kEvent,
                "bad_rings/plain_events is bound with TH_RINGBUF_STAGED but has no "
                "'bad_rings/plain_events_staged' map",
                "staged_events_f"},
        BadCase{"mute_map_of_the_wrong_shape", "bad_rings", "mode = \"bad_mute_map\"",
                ErrorKind::kEvent, "bad_rings/odd_events_muted must be an array of one u32",
                "staged_events_f"},
        BadCase{"unknown_topic_declared_off", "bad_rings", "mode = \"off_unknown\"",
                ErrorKind::kNotFound, "cannot declare unknown topic 'bad_rings.nope' off", nullptr},
        BadCase{"other_plugins_topic_declared_off", "bad_rings", "mode = \"off_not_its_own\"",
                ErrorKind::kInvalidArgument,
                "topic 'good.sys_enter' belongs to good; plugins declare only their own topics "
                "off",
                nullptr},
        BadCase{"topic_declared_off_without_reason", "bad_rings", "mode = \"off_without_reason\"",
                ErrorKind::kInvalidArgument,
                "declaring topic 'bad_rings.record' off needs a reason", nullptr}),
    [](const ::testing::TestParamInfo<BadCase>& p) { return std::string(p.param.label); });

// Libraries the host must refuse before running any of their code, loaded through the config
// path (PluginManager::load) from one plugin directory holding the good plugin too.
struct AbiCase {
  const char* case_dir;
  const char* name;  // plugin name = file name tracehost_<name>.so
  std::string reason;
};

std::string api_text(unsigned major, unsigned minor) {
  return "built for plugin API " + std::to_string(major) + "." + std::to_string(minor) +
         ", host provides " + std::to_string(TRACEHOST_PLUGIN_API_MAJOR) + "." +
         std::to_string(TRACEHOST_PLUGIN_API_MINOR);
}

void PrintTo(const AbiCase& c, std::ostream* os) { *os << c.case_dir; }

class AbiPluginNextToGood : public ::testing::TestWithParam<AbiCase> {
 protected:
  // A plugin directory with copies of the good library and the broken one.
  void SetUp() override {
    const AbiCase& c = GetParam();
    // a fresh directory of our own (mode 0700): the host refuses group/world-writable ones
    std::string tmpl = (fs::temp_directory_path() / "tracehost-plugin-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    fs::copy_file(case_library("good"), dir_ / "tracehost_good.so");
    fs::copy_file(case_library(c.case_dir, c.name),
                  dir_ / ("tracehost_" + std::string(c.name) + ".so"));
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string config_text(bool required) const {
    const AbiCase& c = GetParam();
    return "[host]\nplugin_dir = \"" + dir_.string() + "\"\n" +
           "[plugins.good]\nenabled = true\ntarget_tgid = " + std::to_string(::getpid()) + "\n" +
           "[plugins." + c.name + "]\nenabled = true\nrequired = " + (required ? "true" : "false") +
           "\n";
  }

  fs::path dir_;
};

TEST_P(AbiPluginNextToGood, IsRefusedAtLoadAndGoodKeepsRunning) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  const AbiCase& c = GetParam();
  auto cfg = host::parse_config(config_text(false), dir_ / "tracehost.toml", nullptr);
  ASSERT_TRUE(cfg.ok()) << cfg.error().describe();
  TestHost host(true);
  Status loaded = host.manager().load(*cfg);
  ASSERT_TRUE(loaded.ok()) << loaded.error().describe();

  auto bad = host.status(c.name);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->state, host::PluginState::kFailed);
  ASSERT_TRUE(bad->error.has_value());
  EXPECT_EQ(bad->error->kind(), ErrorKind::kAbi) << bad->error->describe();
  EXPECT_NE(bad->error->describe().find(c.reason), std::string::npos) << bad->error->describe();

  Status started = host.start();
  ASSERT_TRUE(started.ok()) << started.error().describe();
  expect_good_plugin_traces(host);
}

TEST_P(AbiPluginNextToGood, IsFatalWhenRequired) {
  const AbiCase& c = GetParam();
  auto cfg = host::parse_config(config_text(true), dir_ / "tracehost.toml", nullptr);
  ASSERT_TRUE(cfg.ok()) << cfg.error().describe();
  TestHost host(false);
  Status loaded = host.manager().load(*cfg);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().kind(), ErrorKind::kAbi);
  EXPECT_NE(loaded.error().describe().find(c.reason), std::string::npos)
      << loaded.error().describe();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AbiPluginNextToGood,
    ::testing::Values(
        AbiCase{"wrong_major", "wrong_major", api_text(TRACEHOST_PLUGIN_API_MAJOR + 1, 0)},
        AbiCase{"newer_minor", "newer_minor",
                api_text(TRACEHOST_PLUGIN_API_MAJOR, TRACEHOST_PLUGIN_API_MINOR + 1)},
        AbiCase{"missing_export", "missing_export", "does not export 'tracehost_plugin'"},
        AbiCase{"not_elf", "bad", "is not an ELF file"}),
    [](const ::testing::TestParamInfo<AbiCase>& p) { return std::string(p.param.case_dir); });

}  // namespace
}  // namespace tracehost::plugin_test
