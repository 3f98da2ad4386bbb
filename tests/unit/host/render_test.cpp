#include "host/render.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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
  // event_ as the bus hands it to a sink
  th_event whole_event() const {
    th_event e{};
    e.struct_size = sizeof(e);
    e.topic = "test.event";
    e.schema = &schema_.s;
    e.data = &event_;
    e.size = sizeof(event_);
    e.time_ns = 1'795'612'522'123'456'789ull;
    return e;
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
  const th_event e = whole_event();
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

TEST_F(RenderTest, WholeEventLineIsByteExact) {
  const th_event e = whole_event();
  std::string line;
  append_event_json(line, e);
  // the line tracehost has always written for this record (the only varying part is the
  // monotonic → wall clock offset of the "ts" field)
  const std::string ts = format_rfc3339_ns(monotonic_to_realtime_ns(event_.ts));
  EXPECT_EQ(line,
            "{\"time\":\"2026-11-25T13:15:22.123456789Z\",\"topic\":\"test.event\",\"ts\":\"" + ts +
                "\",\"pid\":4242,\"ret\":\"ENOENT\",\"comm\":\"nginx\",\"addr\":\"10.1.2.3\","
                "\"family\":2,\"port\":443,\"nr\":\"execve\",\"dur\":1500,\"flags\":\"0x1f\","
                "\"stack\":-14,\"v4\":\"192.168.0.1\",\"v6\":\"2001:db8::1\",\"raw\":\"deadbeef\","
                "\"ok\":true,\"small\":-5,\"seq\":77}");
  // a second line is appended, not written over the first
  const std::string first = line;
  append_event_json(line, e);
  EXPECT_EQ(line, first + first);
}
// Field names, topics and strings that need escaping, names longer than one piece of the line
// writer, and lines longer than its buffer: the line is the concatenation of its parts.
TEST(EventJson, EscapedNamesAndLongLines) {
  struct Record {
    char text[40];
    std::uint8_t blob[700];  // 1400 hex digits: longer than any buffer of the renderer
    std::uint32_t n;
  } rec{};
  std::strcpy(rec.text, "tab\there \"quoted\" caf\xc3\xa9 bad\xff");
  for (std::size_t i = 0; i < sizeof(rec.blob); ++i) rec.blob[i] = static_cast<std::uint8_t>(i);
  rec.n = 7;
  const std::string long_name(150, 'k');
  std::vector<th_field> fields;
  auto add = [&](const char* name, th_field_type type, std::size_t offset, std::size_t size) {
    fields.push_back(tracehost::testing::field(name, type, offset, size));
  };
  add("a\"b\\c", TH_FIELD_STRING, offsetof(Record, text), sizeof(rec.text));
  add(long_name.c_str(), TH_FIELD_HEX, offsetof(Record, blob), sizeof(rec.blob));
  add("caf\xc3\xa9\x01\xff", TH_FIELD_UINT, offsetof(Record, n), sizeof(rec.n));
  add("n", TH_FIELD_UINT, offsetof(Record, n), sizeof(rec.n));
  th_event_schema schema{};
  schema.struct_size = sizeof(schema);
  schema.topic = "odd\"topic";
  schema.record_size = sizeof(rec);
  schema.fields = fields.data();
  schema.field_count = fields.size();
  th_event e{sizeof(th_event), schema.topic, &schema, &rec, sizeof(rec), 5'000'000'007};

  std::string expect = "{\"time\":\"" + format_rfc3339_ns(5'000'000'007) + "\",\"topic\":";
  append_json_string(expect, schema.topic);
  for (const th_field& f : fields) {
    expect += ',';
    append_json_string(expect, f.name);
    expect += ':';
    append_field_json(expect, schema, f, &rec, sizeof(rec));
  }
  expect += '}';
  std::string line = "kept|";
  append_event_json(line, e);
  EXPECT_EQ(line, "kept|" + expect);

  auto j = nlohmann::json::parse(line.substr(5));
  EXPECT_EQ(j["topic"], "odd\"topic");
  EXPECT_EQ(j["a\"b\\c"], "tab\there \"quoted\" caf\xc3\xa9 bad\xef\xbf\xbd");
  EXPECT_EQ(j[long_name].get<std::string>().size(), 2 * sizeof(rec.blob));
  EXPECT_EQ(j["caf\xc3\xa9\x01\xef\xbf\xbd"], 7);
  EXPECT_EQ(j["n"], 7);
}

// The date part of timestamps is cached per thread: threads rendering different seconds at the
// same time must not see each other's.
TEST(EventJson, TimesRenderedOnSeveralThreads) {
  auto reference = [](std::int64_t ns) {
    time_t sec = static_cast<time_t>(ns / 1'000'000'000);
    tm parts{};
    gmtime_r(&sec, &parts);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", parts.tm_year + 1900,
                  parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
                  static_cast<int>(ns % 1'000'000'000));
    return std::string(buf);
  };
  std::array<int, 2> wrong{};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (std::int64_t i = 0; i < 20'000; ++i) {
        // each thread alternates between its own two seconds
        const std::int64_t ns =
            1'700'000'000'000'000'000LL + (2 * t + i % 2) * 1'000'000'000LL + i * 7919;
        std::string s;
        append_rfc3339_ns(s, ns);
        if (s != reference(ns)) ++wrong[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong[0], 0);
  EXPECT_EQ(wrong[1], 0);
}

// ---- IP addresses: append_ip must write exactly what inet_ntop writes --------------------------

std::string ntop(int family, const void* addr) {
  char buf[INET6_ADDRSTRLEN];
  const char* text = inet_ntop(family, addr, buf, sizeof(buf));
  return text != nullptr ? text : "<inet_ntop failed>";
}

std::string ip_text(int family, const void* addr) {
  std::string out;
  append_ip(out, family, addr);
  return out;
}

std::array<std::uint8_t, 16> v6(const char* text) {
  std::array<std::uint8_t, 16> a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
  return a;
}

std::array<std::uint8_t, 16> v6_groups(const std::array<unsigned, 8>& groups) {
  std::array<std::uint8_t, 16> a{};
  for (std::size_t g = 0; g < 8; ++g) {
    a[2 * g] = static_cast<std::uint8_t>(groups[g] >> 8);
    a[2 * g + 1] = static_cast<std::uint8_t>(groups[g] & 0xff);
  }
  return a;
}

TEST(AppendIp, Ipv4EveryByteValueInEveryPosition) {
  for (int pos = 0; pos < 4; ++pos) {
    for (int v = 0; v < 256; ++v) {
      std::uint8_t a[4] = {1, 20, 255, 0};
      a[pos] = static_cast<std::uint8_t>(v);
      ASSERT_EQ(ip_text(AF_INET, a), ntop(AF_INET, a)) << pos << " " << v;
    }
  }
  const std::uint8_t zero[4] = {0, 0, 0, 0};
  const std::uint8_t ones[4] = {255, 255, 255, 255};
  EXPECT_EQ(ip_text(AF_INET, zero), "0.0.0.0");
  EXPECT_EQ(ip_text(AF_INET, ones), "255.255.255.255");
}

TEST(AppendIp, Ipv4Random) {
  std::mt19937 rng(42);
  for (int i = 0; i < 100'000; ++i) {
    const std::uint32_t v = rng();
    ASSERT_EQ(ip_text(AF_INET, &v), ntop(AF_INET, &v)) << v;
  }
}

TEST(AppendIp, Ipv6EdgeCases) {
  // the text glibc gives, spelled out: these are the cases RFC 5952 leaves to the implementation
  const std::pair<const char*, const char*> cases[] = {
      {"::", "::"},
      {"::1", "::1"},
      {"1::", "1::"},
      {"::ab", "::ab"},                  // groups 0-6 zero: not "::0.0.0.171"
      {"::1.2.3.4", "::1.2.3.4"},        // IPv4-compatible keeps the dotted quad
      {"::0.1.0.0", "::0.1.0.0"},        // ... group 6 non-zero, group 7 zero
      {"::ffff:0:0", "::ffff:0.0.0.0"},  // IPv4-mapped, even all zero
      {"::ffff:10.1.2.3", "::ffff:10.1.2.3"},
      {"::ffff:0.0.1.2", "::ffff:0.0.1.2"},
      {"::1:ffff:1.2.3.4", "::1:ffff:102:304"},  // not mapped: group 4 is not zero
      {"::ffff:0:1.2.3.4", "::ffff:0:102:304"},  // not mapped: SIIT (::ffff:0:0:0/96)
      {"64:ff9b::1.2.3.4", "64:ff9b::102:304"},  // NAT64: hex, unlike compatible/mapped
      {"1:0:0:2:0:0:3:4", "1::2:0:0:3:4"},       // tie: the first run
      {"1:0:0:2:0:0:0:3", "1:0:0:2::3"},         // the longest run
      {"1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"},    // one zero group stays "0"
      {"0:1:2:3:4:5:6:0", "0:1:2:3:4:5:6:0"},
      {"0:0:1:2:3:4:5:6", "::1:2:3:4:5:6"},
      {"1:2:3:4:5:6:0:0", "1:2:3:4:5:6::"},
      {"2001:DB8:0:0:8:800:200C:417A", "2001:db8::8:800:200c:417a"},  // lower case
      {"fe80::0ab:1", "fe80::ab:1"},                                  // no leading zeros
      {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
  };
  for (const auto& [in, expect] : cases) {
    const auto a = v6(in);
    EXPECT_EQ(ntop(AF_INET6, a.data()), expect) << "glibc changed its mind on " << in;
    EXPECT_EQ(ip_text(AF_INET6, a.data()), expect) << in;
  }
}

// Every pattern of zero / non-zero groups (so every run length, position and tie), with non-zero
// groups of each hex width and ffff in every place, which covers the mapped/compatible prefixes.
TEST(AppendIp, Ipv6EveryZeroGroupPattern) {
  const unsigned values[] = {0x1, 0xab, 0xabc, 0xffff, 0x1000, 0xf00};
  constexpr std::size_t kValues = std::size(values);
  for (unsigned mask = 0; mask < 256; ++mask) {
    for (std::size_t shift = 0; shift < kValues; ++shift) {
      std::array<unsigned, 8> groups{};
      for (std::size_t g = 0; g < 8; ++g) {
        if ((mask >> g) & 1) groups[g] = values[(shift + g) % kValues];
      }
      const auto a = v6_groups(groups);
      ASSERT_EQ(ip_text(AF_INET6, a.data()), ntop(AF_INET6, a.data())) << mask << " " << shift;
    }
  }
  // the IPv4 part of mapped and compatible addresses, with zeros where they end up
  for (const std::uint32_t v4 : {0x00000000u, 0x00000001u, 0x00000100u, 0x00010000u, 0x01000000u,
                                 0x0000ffffu, 0xffff0000u, 0xffffffffu, 0x0a010203u}) {
    for (const unsigned group5 : {0x0u, 0xffffu, 0xfffeu, 0x1u}) {
      const auto a = v6_groups({0, 0, 0, 0, 0, group5, v4 >> 16, v4 & 0xffff});
      ASSERT_EQ(ip_text(AF_INET6, a.data()), ntop(AF_INET6, a.data())) << v4 << " " << group5;
    }
  }
}

TEST(AppendIp, Ipv6Random) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200'000; ++i) {
    std::array<unsigned, 8> groups{};
    for (auto& g : groups) {
      // zero groups often, so that runs of every length come up
      const unsigned kind = rng() % 4;
      g = kind == 0 ? rng() % 0x10000 : kind == 1 ? rng() % 0x10 : 0;
    }
    if (i % 8 == 0) groups[5] = 0xffff;  // mapped-like prefixes
    const auto a = v6_groups(groups);
    ASSERT_EQ(ip_text(AF_INET6, a.data()), ntop(AF_INET6, a.data()));
  }
}

TEST(AppendIp, OtherFamiliesAppendNothing) {
  const auto a = v6("::1");
  std::string out = "x";
  append_ip(out, AF_UNIX, a.data());
  EXPECT_EQ(out, "x");
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
