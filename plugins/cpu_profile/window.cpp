#include "window.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "formats/file.hpp"
#include "formats/flamegraph.hpp"
#include "formats/folded.hpp"
#include "formats/pprof.hpp"
#include "tracehost/detail.hpp"

namespace tracehost::cpu_profile {
namespace {

namespace fs = std::filesystem;

// (pid << 1 | leaf, address): a leaf and a return address at the same address are looked up
// differently (see build_profile), so they are cached apart
using FrameKey = std::pair<std::uint64_t, std::uint64_t>;
struct FrameKeyHash {
  std::size_t operator()(const FrameKey& k) const noexcept {
    return std::hash<std::uint64_t>{}(k.second * 0x9e3779b97f4a7c15ULL ^ k.first);
  }
};
FrameKey frame_key(std::uint32_t pid, bool leaf, std::uint64_t addr) {
  return {(std::uint64_t{pid} << 1) | (leaf ? 1u : 0u), addr};
}

// `looked_up` is the address given to the symbolizer (address - 1 for return addresses).
Frame to_frame(const SymbolizedFrame& s, std::uint64_t address, std::uint64_t looked_up,
               FrameKind kind) {
  Frame f;
  f.address = address;
  f.kind = kind;
  f.module = s.module;
  if (s.known) {
    f.function = s.function;
  } else {
    // writers show "module+0xoffset" ("[unknown]+0xaddr" when no mapping covered it)
    f.file_offset = s.offset + (address - looked_up);
  }
  return f;
}

constexpr std::string_view kExtensions[] = {".pb.gz", ".folded", ".svg"};

// "<prefix>...<ext>" -> the stem without the extension; empty when not a window file.
std::string window_stem(const std::string& name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return {};
  for (auto ext : kExtensions) {
    if (name.size() > ext.size() && name.ends_with(ext)) {
      return name.substr(0, name.size() - ext.size());
    }
  }
  return {};
}

}  // namespace

Profile build_profile(std::span<const RawSample> raw, Symbolizer& symbolizer,
                      const ProfileWindow& window, bool per_thread) {
  Profile profile;
  profile.window = window;
  profile.samples.reserve(raw.size());
  std::unordered_map<FrameKey, Frame, FrameKeyHash> user_frames;
  std::unordered_map<FrameKey, Frame, FrameKeyHash> kernel_frames;

  for (const RawSample& r : raw) {
    if (r.count == 0) continue;
    Sample s;
    s.comm = r.comm.empty() ? "[unknown]" : r.comm;
    s.pid = r.pid;
    if (per_thread) s.tid = r.tid;
    s.count = r.count;
    s.frames.reserve(r.user.size() + r.kernel.size());
    for (std::size_t i = r.user.size(); i-- > 0;) {
      const std::uint64_t addr = r.user[i];
      const FrameKey key = frame_key(r.pid, i == 0, addr);
      auto it = user_frames.find(key);
      if (it == user_frames.end()) {
        // return addresses point after the call: look up addr - 1 for every frame but the
        // leaf, so a call that ends a function is not blamed on the next one
        const std::uint64_t lookup = (i == 0 || addr == 0) ? addr : addr - 1;
        Frame f = to_frame(symbolizer.symbolize_user(static_cast<pid_t>(r.pid), lookup), addr,
                           lookup, FrameKind::kUser);
        it = user_frames.emplace(key, std::move(f)).first;
      }
      s.frames.push_back(it->second);
    }
    for (std::size_t i = r.kernel.size(); i-- > 0;) {
      const std::uint64_t addr = r.kernel[i];
      const FrameKey key = frame_key(0, i == 0, addr);
      auto it = kernel_frames.find(key);
      if (it == kernel_frames.end()) {
        const std::uint64_t lookup = (i == 0 || addr == 0) ? addr : addr - 1;
        Frame f = to_frame(symbolizer.symbolize_kernel(lookup), addr, lookup, FrameKind::kKernel);
        it = kernel_frames.emplace(key, std::move(f)).first;
      }
      s.frames.push_back(it->second);
    }
    profile.samples.push_back(std::move(s));
  }
  return profile;
}

TopFunctions top_functions(const Profile& profile, std::size_t n) {
  using Id = std::pair<std::string, std::string>;  // display name, module
  std::map<Id, FunctionShare> shares;
  TopFunctions top;
  std::set<Id> seen;
  for (const Sample& s : profile.samples) {
    top.samples += s.count;
    if (s.frames.empty()) continue;
    seen.clear();
    for (std::size_t i = 0; i < s.frames.size(); ++i) {
      const Frame& f = s.frames[i];
      Id id{frame_display_name(f), f.module};
      auto& share = shares[id];
      if (share.function.empty()) {
        share.function = id.first;
        share.module = id.second;
      }
      // recursion: a function counts once per sample in total
      if (seen.insert(id).second) share.total += s.count;
      if (i + 1 == s.frames.size()) share.self += s.count;
    }
  }
  std::vector<FunctionShare> all;
  all.reserve(shares.size());
  for (auto& [id, share] : shares) all.push_back(std::move(share));

  auto rank = [&](std::uint64_t FunctionShare::*by) {
    std::vector<FunctionShare> v;
    for (const auto& f : all) {
      if (f.*by > 0) v.push_back(f);
    }
    std::sort(v.begin(), v.end(), [by](const FunctionShare& a, const FunctionShare& b) {
      if (a.*by != b.*by) return a.*by > b.*by;
      return std::tie(a.function, a.module) < std::tie(b.function, b.module);
    });
    if (v.size() > n) v.resize(n);
    return v;
  };
  top.by_self = rank(&FunctionShare::self);
  top.by_total = rank(&FunctionShare::total);
  return top;
}

unsigned parse_output_format(std::string_view name) {
  if (name == "pprof") return kFormatPprof;
  if (name == "folded") return kFormatFolded;
  if (name == "svg") return kFormatSvg;
  return 0;
}

std::string utc_stamp(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

WindowWriter::WindowWriter(fs::path dir, unsigned formats, std::uint64_t keep_windows,
                           std::string prefix)
    : dir_(std::move(dir)),
      formats_(formats),
      keep_windows_(keep_windows),
      prefix_(std::move(prefix)) {}

Result<std::vector<fs::path>> WindowWriter::write(const Profile& profile,
                                                  std::chrono::system_clock::time_point start) {
  char seq[24];
  std::snprintf(seq, sizeof(seq), "%06llu", static_cast<unsigned long long>(++sequence_));
  const std::string stem = detail::concat(prefix_, utc_stamp(start), "-", seq);
  std::vector<fs::path> written;

  if ((formats_ & kFormatPprof) != 0) {
    fs::path p = dir_ / (stem + ".pb.gz");
    TH_TRY(write_pprof_file(profile, p));
    written.push_back(std::move(p));
  }
  if ((formats_ & kFormatFolded) != 0) {
    fs::path p = dir_ / (stem + ".folded");
    TH_TRY(write_file_atomically(p, write_folded(profile)));
    written.push_back(std::move(p));
  }
  if ((formats_ & kFormatSvg) != 0) {
    FlameGraphOptions options;
    const double seconds =
        static_cast<double>(profile.window.end_ns - profile.window.start_ns) / 1e9;
    char title[160];
    std::snprintf(title, sizeof(title), "CPU profile %s, %.0f s at %u Hz, %llu samples",
                  utc_stamp(start).c_str(), seconds, profile.window.frequency_hz,
                  static_cast<unsigned long long>(profile.total_samples()));
    options.title = title;
    fs::path p = dir_ / (stem + ".svg");
    TH_TRY(write_file_atomically(p, render_flamegraph_svg(profile, options)));
    written.push_back(std::move(p));
  }
  return written;
}

std::size_t WindowWriter::rotate() {
  if (keep_windows_ == 0) return 0;
  std::map<std::string, std::vector<fs::path>> by_stem;  // sorted: names start with the time
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    std::string stem = window_stem(e.path().filename().string(), prefix_);
    if (!stem.empty()) by_stem[stem].push_back(e.path());
  }
  std::size_t removed = 0;
  while (by_stem.size() > keep_windows_) {
    for (const auto& p : by_stem.begin()->second) {
      if (fs::remove(p, ec)) ++removed;
    }
    by_stem.erase(by_stem.begin());
  }
  return removed;
}

}  // namespace tracehost::cpu_profile
