# Script mode: turns a binary file into a C++ translation unit exposing its bytes.
# -DINPUT=file -DOUTPUT_CPP=file.cpp -DOUTPUT_H=file.h -DIDENT=name
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# wrap lines so compilers and editors stay happy
string(REGEX REPLACE "((0x..,){24})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUTPUT_H} "// Generated from ${INPUT}; do not edit.
#pragma once
#include <cstddef>
#include <span>
namespace tracehost::embedded {
std::span<const std::byte> ${IDENT}_bpf();
}  // namespace tracehost::embedded
")
file(WRITE ${OUTPUT_CPP} "// Generated from ${INPUT}; do not edit.
#include \"${IDENT}.bpf.embed.h\"
namespace tracehost::embedded {
namespace {
alignas(8) const unsigned char k_bytes[${size}] = {
${bytes}
};
}  // namespace
std::span<const std::byte> ${IDENT}_bpf() {
  return {reinterpret_cast<const std::byte*>(k_bytes), sizeof(k_bytes)};
}
}  // namespace tracehost::embedded
")
