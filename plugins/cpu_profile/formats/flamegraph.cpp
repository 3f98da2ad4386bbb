#include "formats/flamegraph.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>

namespace tracehost::cpu_profile {
namespace {

enum class NodeKind { kRoot, kProcess, kKernel, kUser, kUnknown };

struct Node {
  std::string name;
  NodeKind kind = NodeKind::kUnknown;
  std::uint64_t total = 0;
  // std::map keeps children ordered by name, as flamegraph.pl does (x order is alphabetical).
  std::map<std::pair<std::string, int>, std::unique_ptr<Node>> children;

  Node* child(const std::string& child_name, NodeKind child_kind) {
    auto& slot = children[{child_name, static_cast<int>(child_kind)}];
    if (!slot) {
      slot = std::make_unique<Node>();
      slot->name = child_name;
      slot->kind = child_kind;
    }
    return slot.get();
  }
};

NodeKind to_node_kind(FrameKind kind) {
  switch (kind) {
    case FrameKind::kKernel:
      return NodeKind::kKernel;
    case FrameKind::kUser:
      return NodeKind::kUser;
    case FrameKind::kUnknown:
      break;
  }
  return NodeKind::kUnknown;
}

std::size_t depth_of(const Node& n) {
  std::size_t d = 0;
  for (const auto& [key, c] : n.children) d = std::max(d, depth_of(*c) + 1);
  return d;
}

// Stable per-name colour variation (FNV-1a), so the same function has the same colour in every
// graph and neighbours are distinguishable.
double name_hash(std::string_view s) {
  std::uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return static_cast<double>(h % 1000) / 1000.0;
}

std::string color_for(const Node& n) {
  double v = name_hash(n.name);
  int r = 0;
  int g = 0;
  int b = 0;
  switch (n.kind) {
    case NodeKind::kRoot:
      r = 200;
      g = 200;
      b = 200;
      break;
    case NodeKind::kProcess:
      r = 80 + static_cast<int>(50 * v);
      g = 130 + static_cast<int>(50 * v);
      b = 230;
      break;
    case NodeKind::kKernel:
      r = 230;
      g = 130 + static_cast<int>(60 * v);
      b = 40;
      break;
    case NodeKind::kUser:
      r = 220 + static_cast<int>(35 * v);
      g = 60 + static_cast<int>(150 * v);
      b = 40;
      break;
    case NodeKind::kUnknown:
      r = g = b = 150 + static_cast<int>(50 * v);
      break;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "rgb(%d,%d,%d)", r, g, b);
  return buf;
}

struct Renderer {
  const FlameGraphOptions& opt;
  std::uint64_t grand_total;
  double x0;
  double px_per_sample;
  double bottom;  // y of the root's top edge
  std::string out;

  void emit(const Node& n, std::uint64_t offset, std::size_t depth) {
    double w = static_cast<double>(n.total) * px_per_sample;
    if (w < opt.min_width) return;
    double x = x0 + static_cast<double>(offset) * px_per_sample;
    double y = bottom - static_cast<double>(depth) * opt.frame_height;
    double pct = grand_total == 0
                     ? 0.0
                     : 100.0 * static_cast<double>(n.total) / static_cast<double>(grand_total);
    char buf[256];
    out += "<g><title>";
    out += xml_escape(n.name);
    std::snprintf(buf, sizeof buf, " (%" PRIu64 " samples, %.2f%%)", n.total, pct);
    out += buf;
    out += "</title>";
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" rx=\"2\" fill=\"", x,
                  y, w, opt.frame_height - 1.0);
    out += buf;
    out += color_for(n);
    out += "\"/>";
    // Fit the label: ~0.59 em per character for the default sans-serif/monospace fonts.
    auto max_chars = static_cast<std::size_t>((w - 6.0) / (opt.font_size * 0.59));
    if (max_chars >= 3) {
      std::string label = n.name;
      if (label.size() > max_chars) label = label.substr(0, max_chars - 2) + "..";
      std::snprintf(buf, sizeof buf, "<text x=\"%.2f\" y=\"%.2f\">", x + 3.0,
                    y + opt.frame_height - 4.5);
      out += buf;
      out += xml_escape(label);
      out += "</text>";
    }
    out += "</g>\n";
    std::uint64_t child_offset = offset;
    for (const auto& [key, c] : n.children) {
      emit(*c, child_offset, depth + 1);
      child_offset += c->total;
    }
  }
};

std::string format_wall(std::uint64_t ns) {
  if (ns == 0) return "?";
  auto secs = static_cast<std::time_t>(ns / 1000000000ULL);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 (except tab/newline/CR): drop them.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += '?';
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string render_flamegraph_svg(const Profile& profile, const FlameGraphOptions& opt) {
  Node root;
  root.name = "all";
  root.kind = NodeKind::kRoot;
  for (const auto& s : profile.samples) {
    if (s.count == 0) continue;
    root.total += s.count;
    Node* n = root.child(s.comm.empty() ? "[unknown]" : s.comm, NodeKind::kProcess);
    n->total += s.count;
    for (const auto& f : s.frames) {
      n = n->child(frame_display_name(f), to_node_kind(f.kind));
      n->total += s.count;
    }
  }

  const double header = 56.0;
  const double pad = 10.0;
  std::size_t levels = depth_of(root) + 1;
  double height = header + static_cast<double>(levels) * opt.frame_height + 2 * pad;
  double inner_width = opt.width - 2 * pad;

  std::string svg;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
                opt.width, height, opt.width, height);
  svg += buf;
  std::snprintf(buf, sizeof buf,
                "<style>text { font-family: Verdana, sans-serif; font-size: %.0fpx; fill: #000; "
                "pointer-events: none; } rect:hover { stroke: #000; stroke-width: 0.5; }"
                "</style>\n",
                opt.font_size);
  svg += buf;
  std::snprintf(buf, sizeof buf,
                "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#f8f8f0\"/>\n",
                opt.width, height);
  svg += buf;
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.2f\" y=\"24\" text-anchor=\"middle\" "
                "style=\"font-size:17px\">",
                opt.width / 2);
  svg += buf;
  svg += xml_escape(opt.title);
  svg += "</text>\n";

  const auto& w = profile.window;
  double duration_s =
      w.end_ns > w.start_ns ? static_cast<double>(w.end_ns - w.start_ns) / 1e9 : 0.0;
  std::snprintf(buf, sizeof buf, "%s .. %s (%.3f s), %u Hz, %" PRIu64 " samples",
                format_wall(w.start_ns).c_str(), format_wall(w.end_ns).c_str(), duration_s,
                w.frequency_hz, root.total);
  std::string window_text = buf;
  std::snprintf(buf, sizeof buf, "<text x=\"%.2f\" y=\"44\" text-anchor=\"middle\">",
                opt.width / 2);
  svg += buf;
  svg += xml_escape(window_text);
  svg += "</text>\n";

  if (root.total == 0) {
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">"
                  "no samples</text>\n",
                  opt.width / 2, header + pad + opt.frame_height);
    svg += buf;
  } else {
    Renderer r{opt,
               root.total,
               pad,
               inner_width / static_cast<double>(root.total),
               header + pad + static_cast<double>(levels - 1) * opt.frame_height,
               {}};
    r.emit(root, 0, 0);
    svg += r.out;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace tracehost::cpu_profile
