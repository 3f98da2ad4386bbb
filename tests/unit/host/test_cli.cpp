// The CLI in-process: exit codes (0 ok, 2 usage/config, 3 environment, 1 other) and the one-line
// "tracehost: error: ..." messages.
#include "host/cli.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tracehost::host {
namespace {

namespace fs = std::filesystem;

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

CliResult cli(std::initializer_list<std::string> args) {
  std::vector<std::string> storage{"tracehost"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& a : storage) argv.push_back(a.c_str());
  std::ostringstream out, err;
  int code = run_cli(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/th_cli_XXXXXX";  // mkdtemp: mode 0700, owned by us
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  [[nodiscard]] const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& text, mode_t mode = 0644) {
    fs::path p = path_ / name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }

 private:
  fs::path path_;
};

TEST(Cli, ExitCodeMapping) {
  EXPECT_EQ(exit_code_for(ErrorKind::kConfig), 2);
  EXPECT_EQ(exit_code_for(ErrorKind::kPermission), 3);
  EXPECT_EQ(exit_code_for(ErrorKind::kKernelIncompatible), 3);
  EXPECT_EQ(exit_code_for(ErrorKind::kUnsupportedPlatform), 3);
  EXPECT_EQ(exit_code_for(ErrorKind::kLoadFailed), 1);
  EXPECT_EQ(exit_code_for(ErrorKind::kAbi), 1);
  EXPECT_EQ(exit_code_for(ErrorKind::kInternal), 1);
}

TEST(Cli, Version) {
  auto r = cli({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("tracehost " TRACEHOST_VERSION), std::string::npos) << r.out;
}

TEST(Cli, HelpEverywhere) {
  for (auto args : {std::vector<std::string>{"--help"},
                    {"run", "--help"},
                    {"check-config", "--help"},
                    {"plugins", "--help"},
                    {"plugins", "list", "--help"},
                    {"plugins", "describe", "--help"}}) {
    std::vector<const char*> argv{"tracehost"};
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out, err;
    EXPECT_EQ(run_cli(static_cast<int>(argv.size()), argv.data(), out, err), 0) << args[0];
    EXPECT_NE(out.str().find("--help"), std::string::npos) << out.str();
  }
}

TEST(Cli, UsageErrorsExit2) {
  auto none = cli({});
  EXPECT_EQ(none.code, 2);
  EXPECT_EQ(none.err.rfind("tracehost: error: ", 0), 0u) << none.err;

  auto unknown = cli({"frobnicate"});
  EXPECT_EQ(unknown.code, 2);

  auto bad_opt = cli({"run", "--no-such-option"});
  EXPECT_EQ(bad_opt.code, 2);
  EXPECT_NE(bad_opt.err.find("tracehost: hint:"), std::string::npos);

  auto neg = cli({"run", "--duration", "-1"});
  EXPECT_EQ(neg.code, 2);

  auto missing = cli({"check-config"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("--config"), std::string::npos) << missing.err;
}

TEST(Cli, RunWithoutConfigIsAClearError) {
  if (fs::exists(kDefaultConfigPath)) GTEST_SKIP() << kDefaultConfigPath << " exists here";
  auto r = cli({"run", "--duration", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("pass --config FILE"), std::string::npos) << r.err;
}

TEST(Cli, RunWithBadConfigNamesPosition) {
  TempDir d;
  auto cfg = d.write("t.toml", "[host]\nlog_level = 3\n");
  auto r = cli({"run", "--config", cfg.string(), "--duration", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "tracehost: error: " + cfg.string() +
                       ":2:13: host.log_level: expected a string, got an integer\n");
}

TEST(Cli, RunWithNoPluginEnabled) {
  TempDir d;
  auto cfg = d.write("t.toml", "[plugins.syscall]\nenabled = false\n");
  auto r = cli({"run", "--config", cfg.string(), "--duration", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no plugin is enabled"), std::string::npos) << r.err;
}

TEST(Cli, CheckConfigOk) {
  TempDir d;
  fs::create_directory(d.path() / "plugins");
  auto cfg = d.write("t.toml", "[host]\nplugin_dir = \"plugins\"\n");
  auto r = cli({"check-config", "--config", cfg.string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("config OK"), std::string::npos);
}

TEST(Cli, CheckConfigUnknownKeySuggests) {
  TempDir d;
  auto cfg = d.write("t.toml", "[host]\nlog_levl = 'info'\n");
  auto r = cli({"check-config", "--config", cfg.string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(":2:1: host.log_levl: unknown key 'log_levl' in [host]; did you mean "
                       "'log_level'?"),
            std::string::npos)
      << r.err;
}

TEST(Cli, CheckConfigMissingPluginFile) {
  TempDir d;
  fs::create_directory(d.path() / "plugins");
  auto cfg =
      d.write("t.toml", "[host]\nplugin_dir = \"plugins\"\n[plugins.nope]\nenabled = true\n");
  auto r = cli({"check-config", "--config", cfg.string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("plugin 'nope' is enabled but"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("t.toml:3:1"), std::string::npos) << r.err;
}

// Disabled plugins are never dlopen'd: a file that would fail every check passes check-config
// as long as its plugin is disabled, and fails as soon as it is enabled.
TEST(Cli, CheckConfigOpensOnlyEnabledPlugins) {
  TempDir d;
  fs::create_directory(d.path() / "plugins");
  d.write("plugins/tracehost_junk.so", "this is not an ELF file");
  auto off = d.write("off.toml", "[host]\nplugin_dir = \"plugins\"\n[plugins.junk]\n");
  auto r = cli({"check-config", "--config", off.string()});
  EXPECT_EQ(r.code, 0) << r.err;

  auto on =
      d.write("on.toml", "[host]\nplugin_dir = \"plugins\"\n[plugins.junk]\nenabled = true\n");
  auto r2 = cli({"check-config", "--config", on.string()});
  EXPECT_EQ(r2.code, 1);
  EXPECT_NE(r2.err.find("is not an ELF file"), std::string::npos) << r2.err;
}

TEST(Cli, CheckConfigRefusesWritablePlugin) {
  TempDir d;
  fs::create_directory(d.path() / "plugins");
  auto so = d.write("plugins/tracehost_open.so", "whatever", 0666);
  auto cfg =
      d.write("t.toml", "[host]\nplugin_dir = \"plugins\"\n[plugins.open]\nenabled = true\n");
  auto r = cli({"check-config", "--config", cfg.string()});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("group/world-writable (mode 0666)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("chmod go-w " + so.string()), std::string::npos) << r.err;
}

TEST(Cli, PluginsListShowsWhyFilesAreRefused) {
  TempDir d;
  d.write("tracehost_junk.so", "garbage");
  d.write("tracehost_open.so", "garbage", 0666);
  d.write("libother.so", "garbage");
  auto r = cli({"plugins", "list", "--plugin-dir", d.path().string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("tracehost_junk.so"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not an ELF file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chmod go-w"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("libother.so"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ignored"), std::string::npos) << r.out;
}

TEST(Cli, PluginsListMissingDir) {
  auto r = cli({"plugins", "list", "--plugin-dir", "/nonexistent/plugins"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent/plugins does not exist"), std::string::npos) << r.err;
}

TEST(Cli, PluginsDescribeUnknown) {
  TempDir d;
  auto r = cli({"plugins", "describe", "nope", "--plugin-dir", d.path().string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no plugin 'nope'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tracehost: hint:"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tracehost::host
