#pragma once

// Folded stacks (Brendan Gregg's flamegraph.pl / speedscope / inferno input):
//   comm;root_frame;...;leaf_frame count
// one line per unique stack (counts summed), sorted, root first. Kernel frames carry the
// conventional "_[k]" suffix so flamegraph.pl colours them. Inside names '\\', ';', '\n' and '\r'
// are escaped as "\\\\", "\\;", "\\n" and "\\r" so every line stays parseable.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "formats/profile.hpp"
#include "tracehost/result.hpp"

namespace tracehost::cpu_profile {

struct FoldedStack {
  std::vector<std::string> frames;  // unescaped; frames[0] is the comm, then root → leaf
  std::uint64_t count = 0;
  bool operator==(const FoldedStack&) const = default;
};

std::string escape_folded_name(std::string_view name);

// The profile as folded text (empty string for an empty profile).
std::string write_folded(const Profile& profile);

// Parses folded text (as written above, or plain unescaped folded text). Errors name the line.
Result<std::vector<FoldedStack>> parse_folded(std::string_view text);

}  // namespace tracehost::cpu_profile
