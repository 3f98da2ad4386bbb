#include "host/sinks/filter.hpp"

#include <gtest/gtest.h>

#include "host/config_util.hpp"
#include "unit/host/data_plane_fixtures.hpp"

namespace tracehost::host {
namespace {

using tracehost::testing::sample_event;
using tracehost::testing::TestEvent;
using tracehost::testing::TestSchema;

Result<EventFilter> parse(std::string_view text) {
  auto t = parse_toml_string(text, "test.toml");
  if (!t.ok()) return std::move(t).error();
  return EventFilter::from_table(*t->get("sinks")->as_table()->get("s")->as_table(), "test.toml",
                                 "sinks.s");
}

th_event event_of(const TestSchema& s, const TestEvent& e) {
  th_event ev{};
  ev.struct_size = sizeof(ev);
  ev.topic = s.s.topic;
  ev.schema = &s.s;
  ev.data = &e;
  ev.size = sizeof(e);
  return ev;
}

TEST(EventFilter, DefaultsToEverything) {
  auto f = parse("[sinks.s]\n");
  ASSERT_TRUE(f.ok()) << f.error().describe();
  EXPECT_TRUE(f->topic_matches("anything.at_all"));
  EXPECT_FALSE(f->has_where());
}

TEST(EventFilter, TopicGlobs) {
  auto f = parse("[sinks.s]\ntopics = [\"syscall.*\", \"network.tcp_close\"]\n");
  ASSERT_TRUE(f.ok()) << f.error().describe();
  EXPECT_TRUE(f->topic_matches("syscall.exec"));
  EXPECT_TRUE(f->topic_matches("network.tcp_close"));
  EXPECT_FALSE(f->topic_matches("network.tcp_open"));
}

TEST(EventFilter, WhereComparesRenderedText) {
  auto f = parse("[sinks.s]\nwhere = { comm = \"nginx\", port = 443, ret = \"ENOENT\" }\n");
  ASSERT_TRUE(f.ok()) << f.error().describe();
  TestSchema s;
  auto e = sample_event();
  EXPECT_TRUE(f->matches(event_of(s, e)));
  e.port = 80;
  EXPECT_FALSE(f->matches(event_of(s, e)));
  e = sample_event();
  std::strcpy(e.comm, "curl");
  EXPECT_FALSE(f->matches(event_of(s, e)));
}

TEST(EventFilter, WhereOnAMissingFieldDoesNotMatch) {
  auto f = parse("[sinks.s]\nwhere = { no_such_field = \"x\" }\n");
  ASSERT_TRUE(f.ok());
  TestSchema s;
  auto e = sample_event();
  EXPECT_FALSE(f->matches(event_of(s, e)));
}

TEST(EventFilter, ErrorsNamePositionAndKey) {
  auto bad_where = parse("[sinks.s]\nwhere = \"comm=nginx\"\n");
  ASSERT_FALSE(bad_where.ok());
  EXPECT_EQ(bad_where.error().kind(), ErrorKind::kConfig);
  EXPECT_NE(bad_where.error().describe().find("test.toml:2:"), std::string::npos)
      << bad_where.error().describe();
  EXPECT_NE(bad_where.error().describe().find("sinks.s.where"), std::string::npos);

  auto bad_value = parse("[sinks.s]\nwhere = { comm = [1] }\n");
  ASSERT_FALSE(bad_value.ok());
  EXPECT_NE(bad_value.error().describe().find("sinks.s.where.comm"), std::string::npos)
      << bad_value.error().describe();

  auto empty = parse("[sinks.s]\ntopics = []\n");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().describe().find("enabled = false"), std::string::npos);

  auto not_strings = parse("[sinks.s]\ntopics = [1]\n");
  EXPECT_FALSE(not_strings.ok());
}

}  // namespace
}  // namespace tracehost::host
