// Tests of the cpu_profile output formats: folded stacks, pprof protobuf and SVG flame graphs.
// The pprof bytes are checked with an independent protobuf reader (written here, sharing no code
// with the encoder), and with `go tool pprof` when Go is installed.

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <stdexcept>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "formats/flamegraph.hpp"
#include "formats/folded.hpp"
#include "formats/pprof.hpp"
#include "formats/profile.hpp"

namespace tracehost::cpu_profile {
namespace {

Frame user(std::string fn, std::uint64_t addr, std::string module = "/usr/bin/app") {
  Frame f;
  f.function = std::move(fn);
  f.module = std::move(module);
  f.address = addr;
  f.file_offset = addr - 0x400000;
  f.kind = FrameKind::kUser;
  return f;
}

Frame kernel(std::string fn, std::uint64_t addr) {
  Frame f;
  f.function = std::move(fn);
  f.module = "[kernel]";
  f.address = addr;
  f.kind = FrameKind::kKernel;
  return f;
}

Sample sample(std::vector<Frame> frames, std::uint64_t count, std::string comm = "app",
              std::uint32_t pid = 42) {
  Sample s;
  s.frames = std::move(frames);
  s.count = count;
  s.comm = std::move(comm);
  s.pid = pid;
  s.tid = pid + 1;
  return s;
}

// main → hot (90), main → warm (7), main → cold → kernel write (3): "hot" is the hottest.
Profile test_profile() {
  Profile p;
  p.window.start_ns = 1764084000000000000ULL;
  p.window.end_ns = p.window.start_ns + 10000000000ULL;
  p.window.frequency_hz = 99;
  p.window.period_ns = 1000000000ULL / 99;
  p.samples.push_back(sample({user("main", 0x401000), user("hot", 0x402000)}, 60));
  p.samples.push_back(sample({user("main", 0x401000), user("hot", 0x402010)}, 30));
  p.samples.push_back(sample({user("main", 0x401000), user("warm", 0x403000)}, 7));
  p.samples.push_back(sample(
      {user("main", 0x401000), user("cold", 0x404000), kernel("ksys_write", 0xffffffff81000000ULL)},
      3));
  return p;
}

// ---------------------------------------------------------------------------- folded

TEST(FoldedTest, RoundTripMergesAndEscapes) {
  Profile p = test_profile();
  p.samples.push_back(
      sample({user("ns::f<a;b>", 0x405000), user("line\nbreak\\x", 0x405100)}, 5, "we;ird"));
  std::string text = write_folded(p);
  // One line per unique stack: the two "hot" samples differ only in address → merged.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4) << text;
  EXPECT_NE(text.find("app;main;hot 90\n"), std::string::npos) << text;
  EXPECT_NE(text.find("app;main;cold;ksys_write_[k] 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("we\\;ird;ns::f<a\\;b>;line\\nbreak\\\\x 5\n"), std::string::npos) << text;

  auto parsed = parse_folded(text);
  ASSERT_TRUE(parsed.ok()) << parsed.error().describe();
  std::vector<FoldedStack> expected = {
      {{"app", "main", "cold", "ksys_write_[k]"}, 3},
      {{"app", "main", "hot"}, 90},
      {{"app", "main", "warm"}, 7},
      {{"we;ird", "ns::f<a;b>", "line\nbreak\\x"}, 5},
  };
  EXPECT_EQ(*parsed, expected);
  // Writing the parsed stacks again gives the same text (sorted, escaped the same way).
  std::string again;
  for (const auto& s : *parsed) {
    for (std::size_t i = 0; i < s.frames.size(); ++i) {
      if (i) again += ';';
      again += escape_folded_name(s.frames[i]);
    }
    again += ' ' + std::to_string(s.count) + '\n';
  }
  EXPECT_EQ(again, text);
}

TEST(FoldedTest, UnresolvedFramesShowModuleOffsetOrAddress) {
  Profile p;
  Frame a;
  a.module = "/lib/libc.so.6";
  a.address = 0x7f0000001234;
  a.file_offset = 0x1234;
  Frame b;
  b.address = 0xdead;
  p.samples.push_back(sample({a, b}, 2));
  EXPECT_EQ(write_folded(p), "app;/lib/libc.so.6+0x1234;0xdead 2\n");
}

TEST(FoldedTest, ParseErrorsNameTheLine) {
  auto r = parse_folded("a;b 1\na;b\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("line 2"), std::string::npos) << r.error().message();
  r = parse_folded("a;b 1x\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("bad sample count"), std::string::npos);
}

// ---------------------------------------------------------------------------- pprof

std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& in) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);  // gzip only: a zlib header would fail here
  std::vector<std::uint8_t> out;
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  std::uint8_t chunk[4096];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = chunk;
    zs.avail_out = sizeof chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.insert(out.end(), chunk, chunk + (sizeof chunk - zs.avail_out));
  }
  inflateEnd(&zs);
  EXPECT_EQ(rc, Z_STREAM_END);
  return out;
}

// Independent protobuf reader: a message as field number → list of (varint | bytes) values.
struct Field {
  std::uint64_t varint = 0;
  std::string bytes;
  int wire_type = 0;
};
using Message = std::multimap<std::uint32_t, Field>;

std::uint64_t read_varint(const std::string& b, std::size_t& pos) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= b.size()) throw std::runtime_error("truncated varint");
    auto byte = static_cast<std::uint8_t>(b[pos++]);
    v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return v;
  }
  throw std::runtime_error("varint too long");
}

Message parse(const std::string& b) {
  Message m;
  std::size_t pos = 0;
  while (pos < b.size()) {
    std::uint64_t key = read_varint(b, pos);
    Field f;
    f.wire_type = static_cast<int>(key & 7);
    auto field = static_cast<std::uint32_t>(key >> 3);
    if (f.wire_type == 0) {
      f.varint = read_varint(b, pos);
    } else if (f.wire_type == 2) {
      std::uint64_t len = read_varint(b, pos);
      if (pos + len > b.size()) throw std::runtime_error("truncated bytes");
      f.bytes = b.substr(pos, len);
      pos += len;
    } else {
      throw std::runtime_error("unexpected wire type " + std::to_string(f.wire_type));
    }
    m.emplace(field, std::move(f));
  }
  return m;
}

std::vector<const Field*> all(const Message& m, std::uint32_t field) {
  std::vector<const Field*> out;
  auto [b, e] = m.equal_range(field);
  for (auto it = b; it != e; ++it) out.push_back(&it->second);
  return out;
}
std::uint64_t get(const Message& m, std::uint32_t field) {
  auto it = m.find(field);
  return it == m.end() ? 0 : it->second.varint;
}
std::vector<std::uint64_t> packed(const Message& m, std::uint32_t field) {
  std::vector<std::uint64_t> out;
  for (const Field* f : all(m, field)) {
    if (f->wire_type == 0) {
      out.push_back(f->varint);
      continue;
    }
    std::size_t pos = 0;
    while (pos < f->bytes.size()) out.push_back(read_varint(f->bytes, pos));
  }
  return out;
}

TEST(PprofTest, DecodesWithIndependentReader) {
  Profile p = test_profile();
  auto gz = encode_pprof(p);
  ASSERT_TRUE(gz.ok()) << gz.error().describe();
  ASSERT_GE(gz->size(), 2u);
  EXPECT_EQ((*gz)[0], 0x1f);  // gzip magic
  EXPECT_EQ((*gz)[1], 0x8b);
  auto raw = gunzip(*gz);
  EXPECT_EQ(raw, encode_pprof_proto(p));
  Message prof = parse(std::string(raw.begin(), raw.end()));

  std::vector<std::string> strings;
  for (const Field* f : all(prof, 6)) strings.push_back(f->bytes);
  ASSERT_FALSE(strings.empty());
  EXPECT_EQ(strings[0], "");
  auto str = [&](std::uint64_t i) {
    EXPECT_LT(i, strings.size());
    return i < strings.size() ? strings[i] : std::string("<bad index>");
  };

  auto sample_types = all(prof, 1);
  ASSERT_EQ(sample_types.size(), 2u);
  Message st0 = parse(sample_types[0]->bytes);
  Message st1 = parse(sample_types[1]->bytes);
  EXPECT_EQ(str(get(st0, 1)), "samples");
  EXPECT_EQ(str(get(st0, 2)), "count");
  EXPECT_EQ(str(get(st1, 1)), "cpu");
  EXPECT_EQ(str(get(st1, 2)), "nanoseconds");
  Message period_type = parse(all(prof, 11).at(0)->bytes);
  EXPECT_EQ(str(get(period_type, 1)), "cpu");
  EXPECT_EQ(str(get(period_type, 2)), "nanoseconds");
  EXPECT_EQ(get(prof, 12), p.window.period_ns);
  EXPECT_EQ(get(prof, 9), p.window.start_ns);
  EXPECT_EQ(get(prof, 10), 10000000000ULL);

  std::map<std::uint64_t, std::string> function_names;
  for (const Field* f : all(prof, 5)) {
    Message fn = parse(f->bytes);
    function_names[get(fn, 1)] = str(get(fn, 2));
    EXPECT_EQ(str(get(fn, 3)), str(get(fn, 2)));
  }
  EXPECT_EQ(function_names.size(), 5u);  // main hot warm cold ksys_write
  std::map<std::uint64_t, std::string> mapping_files;
  for (const Field* f : all(prof, 3)) {
    Message mp = parse(f->bytes);
    mapping_files[get(mp, 1)] = str(get(mp, 5));
    EXPECT_LT(get(mp, 2), get(mp, 3));
  }
  EXPECT_EQ(mapping_files.size(), 2u);  // /usr/bin/app and [kernel]
  struct Loc {
    std::string function;
    std::string mapping;
    std::uint64_t address;
  };
  std::map<std::uint64_t, Loc> locations;
  for (const Field* f : all(prof, 4)) {
    Message loc = parse(f->bytes);
    auto lines = all(loc, 4);
    ASSERT_EQ(lines.size(), 1u);
    Message line = parse(lines[0]->bytes);
    locations[get(loc, 1)] = {function_names.at(get(line, 1)), mapping_files.at(get(loc, 2)),
                              get(loc, 3)};
  }
  EXPECT_EQ(locations.size(), 6u);  // main, hot x2 addresses, warm, cold, ksys_write

  // Samples: leaf first; values [count, count * period]; labels comm/pid/tid.
  std::map<std::string, std::uint64_t> by_stack;
  std::uint64_t total = 0;
  auto samples = all(prof, 2);
  ASSERT_EQ(samples.size(), 4u);
  for (const Field* f : samples) {
    Message s = parse(f->bytes);
    std::string stack;
    for (auto id : packed(s, 1)) stack += (stack.empty() ? "" : "<") + locations.at(id).function;
    auto values = packed(s, 2);
    ASSERT_EQ(values.size(), 2u);
    EXPECT_EQ(values[1], values[0] * p.window.period_ns);
    by_stack[stack] += values[0];
    total += values[0];
    std::map<std::string, std::string> labels;
    for (const Field* lf : all(s, 3)) {
      Message l = parse(lf->bytes);
      labels[str(get(l, 1))] = l.count(2) ? str(get(l, 2)) : std::to_string(get(l, 3));
    }
    EXPECT_EQ(labels["comm"], "app");
    EXPECT_EQ(labels["pid"], "42");
    EXPECT_EQ(labels["tid"], "43");
  }
  EXPECT_EQ(total, 100u);
  EXPECT_EQ(by_stack["hot<main"], 90u);
  EXPECT_EQ(by_stack["warm<main"], 7u);
  EXPECT_EQ(by_stack["ksys_write<cold<main"], 3u);
  bool saw_kernel = false;
  for (const auto& [id, loc] : locations) {
    if (loc.function == "ksys_write") {
      saw_kernel = true;
      EXPECT_EQ(loc.mapping, "[kernel]");
      EXPECT_EQ(loc.address, 0xffffffff81000000ULL);
    }
  }
  EXPECT_TRUE(saw_kernel);
}

TEST(PprofTest, GoToolPprofReadsTheFile) {
  if (std::system("command -v go >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "go is not on PATH: `go tool pprof` check skipped";
  }
  auto dir = std::filesystem::temp_directory_path() / ("th_pprof_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "cpu.pb.gz";
  auto st = write_pprof_file(test_profile(), file);
  ASSERT_TRUE(st.ok()) << st.error().describe();
  std::string cmd = "go tool pprof -top " + file.string() + " 2>&1";
  std::string output;
  if (FILE* pipe = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipe)) output += buf;
    EXPECT_EQ(::pclose(pipe), 0) << output;
  }
  EXPECT_NE(output.find("hot"), std::string::npos) << output;
  std::filesystem::remove_all(dir);
}

TEST(PprofTest, WriteFileFailureNamesThePath) {
  auto st = write_pprof_file(test_profile(), "/nonexistent-dir-th/cpu.pb.gz");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("/nonexistent-dir-th/"), std::string::npos);
}

// ---------------------------------------------------------------------------- flame graph

// Tiny XML checker: balanced tags, legal entity references, nothing after the root.
::testing::AssertionResult well_formed(const std::string& xml) {
  std::vector<std::string> stack;
  std::size_t pos = 0;
  bool root_closed = false;
  while (pos < xml.size()) {
    std::size_t lt = xml.find('<', pos);
    std::string text = xml.substr(pos, lt == std::string::npos ? std::string::npos : lt - pos);
    for (std::size_t a = text.find('&'); a != std::string::npos; a = text.find('&', a + 1)) {
      static const std::regex entity("^&(amp|lt|gt|quot|apos|#[0-9]+);");
      if (!std::regex_search(text.substr(a, 8), entity)) {
        return ::testing::AssertionFailure() << "bad entity near: " << text.substr(a, 20);
      }
    }
    if (text.find('>') != std::string::npos) {
      return ::testing::AssertionFailure() << "stray '>' in text: " << text;
    }
    if (lt == std::string::npos) break;
    std::size_t gt = xml.find('>', lt);
    if (gt == std::string::npos) return ::testing::AssertionFailure() << "unterminated tag";
    std::string tag = xml.substr(lt + 1, gt - lt - 1);
    pos = gt + 1;
    if (tag.starts_with("?") || tag.starts_with("!")) continue;
    if (root_closed) return ::testing::AssertionFailure() << "content after the root element";
    if (tag.find('<') != std::string::npos) {
      return ::testing::AssertionFailure() << "'<' inside tag: " << tag;
    }
    if (tag.starts_with("/")) {
      if (stack.empty() || stack.back() != tag.substr(1)) {
        return ::testing::AssertionFailure()
               << "closing </" << tag.substr(1) << "> does not match <"
               << (stack.empty() ? "" : stack.back()) << ">";
      }
      stack.pop_back();
      if (stack.empty()) root_closed = true;
    } else if (!tag.ends_with("/")) {
      stack.push_back(tag.substr(0, tag.find_first_of(" \t\n")));
    } else if (stack.empty()) {
      root_closed = true;
    }
  }
  if (!stack.empty()) return ::testing::AssertionFailure() << "unclosed <" << stack.back() << ">";
  if (!root_closed) return ::testing::AssertionFailure() << "no root element";
  return ::testing::AssertionSuccess();
}

TEST(FlameGraphTest, WellFormedAndWidestLeafIsHottest) {
  Profile p = test_profile();
  // Names that need escaping must not break the XML.
  p.samples.push_back(sample({user("operator<<(a&b, \"c\", 'd')", 0x406000)}, 1, "<sh>"));
  std::string svg = render_flamegraph_svg(p);
  EXPECT_TRUE(well_formed(svg));
  EXPECT_NE(svg.find("operator&lt;&lt;(a&amp;b, &quot;c&quot;, &apos;d&apos;)"), std::string::npos);

  if (std::system("command -v xmllint >/dev/null 2>&1") == 0) {
    auto file = std::filesystem::temp_directory_path() /
                ("th_flame_" + std::to_string(::getpid()) + ".svg");
    std::ofstream(file) << svg;
    EXPECT_EQ(std::system(("xmllint --noout " + file.string()).c_str()), 0);
    std::filesystem::remove(file);
  }

  // Each frame: <g><title>NAME (N samples, P%)</title><rect x=".." y=".." width="W" ...
  static const std::regex frame_re(
      "<g><title>([^<]*) \\(([0-9]+) samples, ([0-9.]+)%\\)</title><rect x=\"[0-9.]+\" "
      "y=\"[0-9.]+\" width=\"([0-9.]+)\"");
  std::map<std::string, double> width;
  std::map<std::string, std::string> title_counts;
  for (std::sregex_iterator it(svg.begin(), svg.end(), frame_re), end; it != end; ++it) {
    width[(*it)[1]] = std::stod((*it)[4]);
    title_counts[(*it)[1]] = std::string((*it)[2]) + "/" + std::string((*it)[3]);
  }
  ASSERT_TRUE(width.count("all")) << svg;
  EXPECT_EQ(title_counts["all"], "101/100.00");
  EXPECT_EQ(title_counts["hot"], "90/89.11");
  EXPECT_EQ(title_counts["ksys_write"], "3/2.97");
  std::string widest;
  for (const auto& name : {"hot", "warm", "cold", "ksys_write"}) {
    if (widest.empty() || width[name] > width[widest]) widest = name;
  }
  EXPECT_EQ(widest, "hot");
  EXPECT_NEAR(width["hot"] / width["all"], 90.0 / 101.0, 0.01);
  // Colours by kind: the kernel frame is drawn orange (r=230, b=40), user frames differ.
  EXPECT_NE(svg.find("ksys_write (3 samples"), std::string::npos);
  // The header shows the window.
  EXPECT_NE(svg.find("2025-11-25T"), std::string::npos);
  EXPECT_NE(svg.find("99 Hz"), std::string::npos);
}

TEST(FlameGraphTest, LabelsAreTruncatedToFit) {
  Profile p = test_profile();
  std::string long_name(300, 'x');
  p.samples.push_back(sample({user(long_name, 0x407000)}, 1));
  std::string svg = render_flamegraph_svg(p);
  EXPECT_TRUE(well_formed(svg));
  EXPECT_EQ(svg.find(">" + long_name + "</text>"), std::string::npos);  // never in full
  EXPECT_NE(svg.find("<title>" + long_name + " (1 samples"), std::string::npos);
}

TEST(FlameGraphTest, EmptyProfileStillRenders) {
  std::string svg = render_flamegraph_svg(Profile{});
  EXPECT_TRUE(well_formed(svg));
  EXPECT_NE(svg.find("no samples"), std::string::npos);
}

}  // namespace
}  // namespace tracehost::cpu_profile
