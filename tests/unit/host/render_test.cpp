#include "host/render.hpp"

#include <time.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "unit/host/data_plane_fixtures.hpp"

namespace tracehost::host {
namespace {

using tracehost::testing::sample_event;
using tracehost::testing::TestEvent;
using tracehost::testing::TestSchema;

class RenderTest : public ::testing::Test {
 protected:
  std::string text(const char* name) {
    return field_text(schema_.s, field(name), &event_, sizeof(event_));
  }
  nlohmann::json json(const char* name) {
    return field_json(schema_.s, field(name), &event_, sizeof(event_));
  }
  const th_field& field(const char* name) {
    for (const auto& f : schema_.fields) {
      if (std::strcmp(f.name, name) == 0) return f;
    }
    throw std::runtime_error(name);
  }
  TestSchema schema_;
  TestEvent event_ = sample_event(77);
};

TEST(ErrnoName, KnownUnknownAndSign) {
  EXPECT_EQ(errno_name(ENOENT), "ENOENT");
  EXPECT_EQ(errno_name(-ENOENT), "ENOENT");
  EXPECT_EQ(errno_name(EAGAIN), "EAGAIN");  // not its alias EWOULDBLOCK
  EXPECT_EQ(errno_name(EOPNOTSUPP), "EOPNOTSUPP");
  EXPECT_EQ(errno_name(-512), "ERESTARTSYS");  // kernel-internal, seen at syscall exit
  EXPECT_EQ(errno_name(0), "");
  EXPECT_EQ(errno_name(4000), "");
}

TEST(Rfc3339, FormatsNanosecondsInUtc) {
  EXPECT_EQ(format_rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(format_rfc3339_ns(1'795'612'522'123'456'789LL), "2026-11-25T13:15:22.123456789Z");
  EXPECT_EQ(format_rfc3339_ns(1'795'612'522'000'000'001LL), "2026-11-25T13:15:22.000000001Z");
  EXPECT_EQ(format_rfc3339_ns(-1), "1969-12-31T23:59:59.999999999Z");
}

TEST(MonotonicToWall, UsesOneOffset) {
  timespec mono{}, rt{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &rt);
  auto mono_ns = static_cast<std::uint64_t>(mono.tv_sec) * 1'000'000'000ull +
                 static_cast<std::uint64_t>(mono.tv_nsec);
  auto rt_ns = static_cast<std::int64_t>(rt.tv_sec) * 1'000'000'000LL + rt.tv_nsec;
  EXPECT_NEAR(static_cast<double>(monotonic_to_realtime_ns(mono_ns)), static_cast<double>(rt_ns),
              50e6);
  EXPECT_EQ(monotonic_to_realtime_ns(1000) - monotonic_to_realtime_ns(0), 1000);
}

TEST(JsonString, EscapesAndRepairsUtf8) {
  auto q = [](std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
  };
  EXPECT_EQ(q("plain"), "\"plain\"");
  EXPECT_EQ(q("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(q("l1\nl2\t\x01"), "\"l1\\nl2\\t\\u0001\"");
  EXPECT_EQ(q("h\xc3\xa9llo"), "\"h\xc3\xa9llo\"");  // valid UTF-8 kept
  EXPECT_EQ(q("bad\xff"), "\"bad\xef\xbf\xbd\"");    // invalid byte → U+FFFD
  EXPECT_EQ(q("cut\xe2\x82"), "\"cut\xef\xbf\xbd\xef\xbf\xbd\"");
  // whatever we write, a JSON parser accepts
  EXPECT_TRUE(nlohmann::json::accept(q("x\xc0\xaf\xed\xa0\x80y\x7f")));
}

TEST(ValidUtf8, ReplacesOnlyInvalidBytes) {
  EXPECT_EQ(valid_utf8("nginx"), "nginx");
  EXPECT_EQ(valid_utf8("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(valid_utf8("a\xff"
                       "b"),
            "a\xef\xbf\xbd"
            "b");
}

TEST_F(RenderTest, Integers) {
  EXPECT_EQ(text("pid"), "4242");
  EXPECT_EQ(json("pid"), 4242);
  EXPECT_EQ(text("small"), "-5");
  EXPECT_EQ(text("seq"), "77");
  EXPECT_EQ(text("port"), "443");
  EXPECT_EQ(json("dur"), 1500);
  EXPECT_EQ(json("stack"), -14);
  EXPECT_EQ(text("family"), "2");
}

TEST_F(RenderTest, BoolStringHexFlags) {
  EXPECT_EQ(text("ok"), "true");
  EXPECT_EQ(json("ok"), true);
  event_.ok = 0;
  EXPECT_EQ(json("ok"), false);
  EXPECT_EQ(text("comm"), "nginx");
  EXPECT_EQ(json("comm"), "nginx");
  std::memcpy(event_.comm, "0123456789abcdef", 16);  // full array, no NUL
  EXPECT_EQ(text("comm"), "0123456789abcdef");
  std::strcpy(event_.comm, "a\"b");
  EXPECT_EQ(json("comm"), "a\"b");
  EXPECT_EQ(json("raw"), "deadbeef");
  EXPECT_EQ(json("flags"), "0x1f");
}

TEST_F(RenderTest, Addresses) {
  EXPECT_EQ(text("v4"), "192.168.0.1");
  EXPECT_EQ(json("v6"), "2001:db8::1");
  EXPECT_EQ(text("addr"), "10.1.2.3");  // family field says AF_INET
  event_.family = AF_INET6;
  inet_pton(AF_INET6, "::1", event_.addr);
  EXPECT_EQ(text("addr"), "::1");
}

TEST_F(RenderTest, ErrnoEnumTimestamp) {
  EXPECT_EQ(text("ret"), "ENOENT");
  event_.ret = EACCES;
  EXPECT_EQ(json("ret"), "EACCES");
  event_.ret = 0;
  EXPECT_EQ(json("ret"), "0");
  event_.ret = -4000;
  EXPECT_EQ(json("ret"), "-4000");

  EXPECT_EQ(json("nr"), "execve");
  event_.nr = 1;
  EXPECT_EQ(text("nr"), "write");
  event_.nr = 1000;
  EXPECT_EQ(json("nr"), 1000);  // unknown → number

  event_.ts = 5'000'000'123;
  std::string expect = format_rfc3339_ns(monotonic_to_realtime_ns(5'000'000'123));
  EXPECT_EQ(json("ts"), expect);
  EXPECT_EQ(expect.size(), 30u);
}

TEST_F(RenderTest, WholeEventLine) {
  th_event e{};
  e.struct_size = sizeof(e);
  e.topic = "test.event";
  e.schema = &schema_.s;
  e.data = &event_;
  e.size = sizeof(event_);
  e.time_ns = 1'795'612'522'123'456'789ull;
  std::string line;
  append_event_json(line, e);
  EXPECT_EQ(line.rfind("{\"time\":\"2026-11-25T13:15:22.123456789Z\",\"topic\":\"test.event\",", 0),
            0u)
      << line;
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j.size(), 2 + schema_.fields.size());
  EXPECT_EQ(j["comm"], "nginx");
  EXPECT_EQ(j["ret"], "ENOENT");
  EXPECT_EQ(j["addr"], "10.1.2.3");
  EXPECT_EQ(j["seq"], 77);
}

TEST(Format, DurationsAndCounts) {
  EXPECT_EQ(format_duration_seconds(0), "0s");
  EXPECT_EQ(format_duration_seconds(12e-9), "12ns");
  EXPECT_EQ(format_duration_seconds(12.34e-6), "12.3us");
  EXPECT_EQ(format_duration_seconds(4.56e-3), "4.56ms");
  EXPECT_EQ(format_duration_seconds(1.2), "1.20s");
  EXPECT_EQ(format_count(1234), "1234");
  EXPECT_EQ(format_count(12345), "12.3k");
  EXPECT_EQ(format_count(4'560'000), "4.56M");
}

}  // namespace
}  // namespace tracehost::host
