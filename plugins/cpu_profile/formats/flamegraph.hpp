#pragma once

// Self-contained SVG flame graph (no JavaScript needed): root at the bottom, one rectangle per
// frame merged by its path from the root, width proportional to samples, hover text
// "name (N samples, P%)" in <title>, colours by frame kind (kernel orange, user red/yellow,
// unknown grey, process name blue). The first level above "all" is the process name (comm).

#include <cstdint>
#include <string>
#include <string_view>

#include "formats/profile.hpp"

namespace tracehost::cpu_profile {

struct FlameGraphOptions {
  std::string title = "CPU profile";
  double width = 1200.0;       // px
  double frame_height = 16.0;  // px
  double font_size = 12.0;     // px
  double min_width = 0.1;      // px: narrower frames are omitted (their samples stay in parents)
};

std::string xml_escape(std::string_view text);

std::string render_flamegraph_svg(const Profile& profile, const FlameGraphOptions& options = {});

}  // namespace tracehost::cpu_profile
