#include "formats/file.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "tracehost/detail.hpp"

namespace tracehost::cpu_profile {

Status write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  const auto tmp = path.parent_path() / detail::concat(".", path.filename().string(), ".tmp");
  std::error_code ec;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) {
      const int err = errno;
      std::filesystem::remove(tmp, ec);
      return Error(ErrorKind::kInternal,
                   detail::concat("cannot write '", tmp.string(), "': ", std::strerror(err),
                                  " (does the directory exist, is it full or read-only?)"));
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return Error(ErrorKind::kInternal, detail::concat("cannot rename '", tmp.string(), "' to '",
                                                      path.string(), "': ", ec.message()));
  }
  return ok();
}

}  // namespace tracehost::cpu_profile
