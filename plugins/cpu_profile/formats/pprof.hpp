#pragma once

// pprof output: the profile encoded as the public profile.proto
// (github.com/google/pprof/blob/main/proto/profile.proto), gzip-compressed as `go tool pprof`
// and Pyroscope/Parca expect. The protobuf encoder is hand-written (no libprotobuf dependency).
//
// sample_type = [samples/count, cpu/nanoseconds]; period_type = cpu/nanoseconds; each sample has
// labels comm (string), pid (number) and tid (number, when known). Location ids of a sample are
// leaf first, as profile.proto requires.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "formats/profile.hpp"
#include "tracehost/result.hpp"

namespace tracehost::cpu_profile {

// Uncompressed protobuf bytes of the Profile message.
std::vector<std::uint8_t> encode_pprof_proto(const Profile& profile);

// gzip (RFC 1952) of `data` via zlib (deflateInit2 with windowBits 15+16).
Result<std::vector<std::uint8_t>> gzip_compress(std::span<const std::uint8_t> data);

// encode_pprof_proto + gzip_compress: the bytes of a .pb.gz file.
Result<std::vector<std::uint8_t>> encode_pprof(const Profile& profile);

// Writes encode_pprof(profile) to `path` (via a temporary file renamed into place).
Status write_pprof_file(const Profile& profile, const std::filesystem::path& path);

}  // namespace tracehost::cpu_profile
