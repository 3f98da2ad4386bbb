#include "formats/folded.hpp"

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <map>

namespace tracehost::cpu_profile {

std::string frame_display_name(const Frame& frame) {
  if (!frame.function.empty()) return frame.function;
  char buf[32];
  if (!frame.module.empty()) {
    std::uint64_t off = frame.file_offset.value_or(frame.address);
    std::snprintf(buf, sizeof buf, "+0x%" PRIx64, off);
    return frame.module + buf;
  }
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, frame.address);
  return buf;
}

std::string escape_folded_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case ';':
        out += "\\;";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string write_folded(const Profile& profile) {
  // std::map: deterministic (sorted) output, and merges equal stacks.
  std::map<std::string, std::uint64_t> stacks;
  for (const auto& sample : profile.samples) {
    std::string key = escape_folded_name(sample.comm.empty() ? "[unknown]" : sample.comm);
    for (const auto& frame : sample.frames) {
      key += ';';
      key += escape_folded_name(frame_display_name(frame));
      if (frame.kind == FrameKind::kKernel) key += "_[k]";
    }
    stacks[key] += sample.count;
  }
  std::string out;
  for (const auto& [key, count] : stacks) {
    if (count == 0) continue;
    out += key;
    out += ' ';
    out += std::to_string(count);
    out += '\n';
  }
  return out;
}

Result<std::vector<FoldedStack>> parse_folded(std::string_view text) {
  std::vector<FoldedStack> result;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    std::size_t sp = line.rfind(' ');
    if (sp == std::string_view::npos || sp + 1 == line.size()) {
      return Error(ErrorKind::kInvalidArgument,
                   "folded line " + std::to_string(line_no) +
                       ": missing the sample count after the last space");
    }
    FoldedStack stack;
    std::string_view count_text = line.substr(sp + 1);
    auto [ptr, ec] =
        std::from_chars(count_text.data(), count_text.data() + count_text.size(), stack.count);
    if (ec != std::errc{} || ptr != count_text.data() + count_text.size()) {
      return Error(ErrorKind::kInvalidArgument, "folded line " + std::to_string(line_no) +
                                                    ": bad sample count '" +
                                                    std::string(count_text) + "'");
    }
    std::string current;
    std::string_view names = line.substr(0, sp);
    for (std::size_t i = 0; i < names.size(); ++i) {
      char c = names[i];
      if (c == '\\' && i + 1 < names.size()) {
        char n = names[++i];
        current += n == 'n' ? '\n' : n == 'r' ? '\r' : n;
      } else if (c == ';') {
        stack.frames.push_back(std::move(current));
        current.clear();
      } else {
        current += c;
      }
    }
    stack.frames.push_back(std::move(current));
    result.push_back(std::move(stack));
  }
  return result;
}

}  // namespace tracehost::cpu_profile
