#pragma once

// Writing an output file so that readers never see half of it: the bytes go to a hidden
// temporary file next to it (".<name>.tmp"), which is renamed over the target when complete.

#include <filesystem>
#include <string_view>

#include "tracehost/result.hpp"

namespace tracehost::cpu_profile {

// Errors name the path and the likely cause (missing, full or read-only directory).
Status write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace tracehost::cpu_profile
