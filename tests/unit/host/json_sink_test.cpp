#include "host/sinks/json_sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/event_bus.hpp"
#include "unit/host/data_plane_fixtures.hpp"

namespace tracehost::host {
namespace {

using tracehost::testing::bytes_of;
using tracehost::testing::sample_event;
using tracehost::testing::TestSchema;

std::filesystem::path temp_path(const char* stem) {
  return std::filesystem::temp_directory_path() /
         (std::string(stem) + "-" + std::to_string(::getpid()) + ".jsonl");
}

std::vector<std::string> read_lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

TEST(JsonSink, OneObjectPerLineWithTimeTopicAndFields) {
  auto path = temp_path("json-sink");
  std::filesystem::remove(path);
  EventBus bus;
  TestSchema s;
  TestSchema other("other.topic");
  auto id = bus.register_topic("p", s.s);
  auto oid = bus.register_topic("p", other.s);
  ASSERT_TRUE(id.ok() && oid.ok());
  JsonSinkOptions o;
  o.path = path.string();
  o.filter = EventFilter({"test.*"}, {{"comm", "nginx"}});
  auto sink = JsonSink::make("json", o, bus);
  ASSERT_TRUE(sink.ok()) << sink.error().describe();
  ASSERT_TRUE((*sink)->start().ok());
  for (std::uint64_t i = 0; i < 1000; ++i) {
    auto e = sample_event(i);
    if (i % 10 == 9) std::strcpy(e.comm, "curl");  // filtered out by `where`
    ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
    ASSERT_TRUE(bus.publish(*oid, bytes_of(e)).ok());  // filtered out by `topics`
  }
  ASSERT_TRUE(bus.drain());
  (*sink)->stop();
  auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 900u);
  std::uint64_t expect_seq = 0;
  for (const auto& l : lines) {
    ASSERT_EQ(l.rfind("{\"time\":\"", 0), 0u) << l;
    auto j = nlohmann::json::parse(l);
    EXPECT_EQ(j["topic"], "test.event");
    EXPECT_EQ(j["comm"], "nginx");
    EXPECT_EQ(j["nr"], "execve");
    if (expect_seq % 10 == 9) ++expect_seq;
    EXPECT_EQ(j["seq"], expect_seq++);
    const std::string t = j["time"];
    EXPECT_EQ(t.size(), 30u);
    EXPECT_EQ(t.back(), 'Z');
  }
  // appends, never truncates
  auto again = JsonSink::make("json", o, bus);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->start().ok());
  auto e = sample_event(5000);
  ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
  ASSERT_TRUE(bus.drain());
  (*again)->stop();
  EXPECT_EQ(read_lines(path).size(), 901u);
  std::filesystem::remove(path);
}

TEST(JsonSink, FlushesWithin200ms) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  EventBus bus;
  TestSchema s;
  auto id = bus.register_topic("p", s.s);
  ASSERT_TRUE(id.ok());
  auto sink = JsonSink::for_fd("json", fds[1], EventFilter(), bus);
  ASSERT_TRUE(sink->start().ok());
  auto e = sample_event(1);
  ASSERT_TRUE(bus.publish(*id, bytes_of(e)).ok());
  std::string got;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
  while (got.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_NE(got.find("\"seq\":1}"), std::string::npos) << got;
  sink->stop();
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(JsonSink, AClosedReaderIsAWriteErrorNotSigpipe) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ::close(fds[0]);  // like `tracehost run | head -1` after head exits
  EventBus bus;
  TestSchema s;
  auto sink = JsonSink::for_fd("json", fds[1], EventFilter(), bus);
  auto e = sample_event(1);
  th_event ev{sizeof(th_event), s.s.topic, &s.s, &e, sizeof(e), 1};
  sink->write_batch(std::span<const th_event>(&ev, 1));
  sink->flush();  // the default SIGPIPE disposition would kill the test binary here
  EXPECT_EQ(sink->write_errors(), 1u);
  ::close(fds[1]);
}

TEST(JsonSink, UnopenablePathNamesPathAndErrno) {
  EventBus bus;
  JsonSinkOptions o;
  o.path = "/nonexistent-dir-tracehost/x.jsonl";
  auto sink = JsonSink::make("json", o, bus);
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().sys_errno(), ENOENT);
  EXPECT_NE(sink.error().message().find("/nonexistent-dir-tracehost/x.jsonl"), std::string::npos);
  EXPECT_NE(sink.error().message().find("No such file or directory"), std::string::npos)
      << sink.error().message();
}

}  // namespace
}  // namespace tracehost::host
