#include "host/sinks/sink.hpp"

#include <deque>

#include <gtest/gtest.h>

#include "host/config_util.hpp"
#include "host/event_bus.hpp"
#include "host/metrics.hpp"
#include "host/sinks/console_sink.hpp"

namespace tracehost::host {
namespace {

// Parsed tables are kept for the program's life: copying a toml::table drops source positions,
// and the errors under test must carry them.
toml::table& parse(std::string_view text) {
  static std::deque<toml::table> kept;
  auto t = parse_toml_string(text, "cfg.toml");
  EXPECT_TRUE(t.ok()) << t.error().describe();
  return kept.emplace_back(t.ok() ? std::move(*t) : toml::table{});
}

Status validate(std::string_view text, std::string_view name) {
  auto& t = parse(text);
  return validate_sink(name, *t["sinks"][name].as_table(), "cfg.toml");
}

TEST(SinkFactory, TypeDefaultsToTheTableName) {
  EXPECT_TRUE(validate("[sinks.console]\ninterval_s = 1\n", "console").ok());
  EXPECT_TRUE(validate("[sinks.json]\npath = \"-\"\n", "json").ok());
  EXPECT_TRUE(validate("[sinks.prometheus]\n", "prometheus").ok());
  EXPECT_TRUE(validate("[sinks.audit]\ntype = \"json\"\npath = \"/tmp/x\"\n", "audit").ok());
  auto st = validate("[sinks.audit]\npath = \"/tmp/x\"\n", "audit");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().describe().find("type = "), std::string::npos) << st.error().describe();
}

TEST(SinkFactory, UnknownKeysAndTypesSuggestFixes) {
  auto st = validate("[sinks.console]\nintervl_s = 1\n", "console");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind(), ErrorKind::kConfig);
  EXPECT_NE(st.error().describe().find("cfg.toml:2:"), std::string::npos) << st.error().describe();
  EXPECT_NE(st.error().describe().find("interval_s"), std::string::npos) << st.error().describe();

  auto ty = validate("[sinks.out]\ntype = \"jsn\"\n", "out");
  ASSERT_FALSE(ty.ok());
  EXPECT_NE(ty.error().describe().find("did you mean \"json\""), std::string::npos)
      << ty.error().describe();

  // a json key on a console sink is unknown there
  EXPECT_FALSE(validate("[sinks.console]\npath = \"-\"\n", "console").ok());
  EXPECT_FALSE(validate("[sinks.console]\ninterval_s = 0\n", "console").ok());
  EXPECT_FALSE(validate("[sinks.console]\noutput = \"tty\"\n", "console").ok());
  EXPECT_FALSE(validate("[sinks.json]\nenabled = \"yes\"\n", "json").ok());
}

TEST(SinkFactory, ConsoleMovesToStderrWhenJsonTakesStdout) {
  EventBus bus;
  MetricRegistry reg;
  SinkContext ctx{bus, reg};
  auto& t =
      parse("[sinks.console]\n[sinks.json]\npath = \"-\"\n[sinks.prometheus]\nenabled = false\n");
  auto sinks = make_sinks(*t["sinks"].as_table(), "cfg.toml", ctx);
  ASSERT_TRUE(sinks.ok()) << sinks.error().describe();
  ASSERT_EQ(sinks->size(), 2u);               // prometheus disabled
  EXPECT_EQ((*sinks)[0]->name(), "console");  // file order
  EXPECT_EQ((*sinks)[1]->type(), "json");
  EXPECT_TRUE(ctx.stdout_taken);
  auto* console = dynamic_cast<ConsoleSink*>((*sinks)[0].get());
  ASSERT_NE(console, nullptr);
  EXPECT_EQ(console->output(), stderr);

  SinkContext alone{bus, reg};
  auto& t2 = parse("[sinks.console]\n");
  auto only = make_sinks(*t2["sinks"].as_table(), "cfg.toml", alone);
  ASSERT_TRUE(only.ok());
  EXPECT_EQ(dynamic_cast<ConsoleSink*>((*only)[0].get())->output(), stdout);
}

TEST(SinkFactory, TwoStdoutWritersAreRefused) {
  EventBus bus;
  MetricRegistry reg;
  SinkContext ctx{bus, reg};
  auto& t = parse("[sinks.json]\n[sinks.more]\ntype = \"json\"\n");
  auto sinks = make_sinks(*t["sinks"].as_table(), "cfg.toml", ctx);
  ASSERT_FALSE(sinks.ok());
  EXPECT_NE(sinks.error().describe().find("stdout"), std::string::npos);

  auto& t2 = parse("[sinks.json]\n[sinks.console]\noutput = \"stdout\"\n");
  auto mixed = make_sinks(*t2["sinks"].as_table(), "cfg.toml", ctx);
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.error().describe().find("cfg.toml:3:"), std::string::npos)
      << mixed.error().describe();
}

TEST(SinkFactory, BadJsonPathFailsAtMakeWithPosition) {
  EventBus bus;
  MetricRegistry reg;
  SinkContext ctx{bus, reg};
  auto& t = parse("[sinks.json]\npath = \"/nonexistent-tracehost-dir/out.jsonl\"\n");
  auto sink = make_sink("json", *t["sinks"]["json"].as_table(), "cfg.toml", ctx);
  ASSERT_FALSE(sink.ok());
  const std::string msg = sink.error().describe();
  EXPECT_NE(msg.find("cfg.toml:2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("/nonexistent-tracehost-dir/out.jsonl"), std::string::npos) << msg;
}

}  // namespace
}  // namespace tracehost::host
