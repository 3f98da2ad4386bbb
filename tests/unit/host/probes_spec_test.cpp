// Unit tests of attach spec conversion and validation (no kernel involved).
#include <cstddef>
#include <cstring>

#include <gtest/gtest.h>

#include "host/probes.hpp"

namespace tracehost::host {
namespace {

th_attach_spec c_spec(int kind, const char* target) {
  th_attach_spec s{};
  s.struct_size = sizeof(s);
  s.kind = kind;
  s.target = target;
  s.pid = -1;
  return s;
}

TEST(AttachSpec, ConvertsEveryField) {
  th_attach_spec c = c_spec(TH_ATTACH_URETPROBE, "/usr/bin/bash");
  c.symbol = "readline";
  c.offset = 4;
  c.pid = 42;
  c.deferred = 1;
  auto spec = attach_spec_from_c(&c);
  ASSERT_TRUE(spec.ok()) << spec.error().describe();
  EXPECT_EQ(spec->kind, AttachKind::kUretprobe);
  EXPECT_EQ(spec->target, "/usr/bin/bash");
  EXPECT_EQ(spec->symbol, "readline");
  EXPECT_EQ(spec->offset, 4u);
  EXPECT_EQ(spec->pid, 42);
  EXPECT_TRUE(spec->deferred);
}

TEST(AttachSpec, OlderSmallerStructReadsMissingFieldsAsZero) {
  // a caller compiled when the struct ended after `pid`: frequency/period/deferred read as 0
  th_attach_spec c = c_spec(TH_ATTACH_RAW_TP, "sys_enter");
  c.deferred = 1;  // beyond the declared size: must be ignored
  c.struct_size = offsetof(th_attach_spec, frequency);
  auto spec = attach_spec_from_c(&c);
  ASSERT_TRUE(spec.ok()) << spec.error().describe();
  EXPECT_FALSE(spec->deferred);

  c.struct_size = 4;
  auto tiny = attach_spec_from_c(&c);
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.error().kind(), ErrorKind::kInvalidArgument);
}

TEST(AttachSpec, RejectsBadKindsAndNull) {
  EXPECT_FALSE(attach_spec_from_c(nullptr).ok());
  th_attach_spec c = c_spec(99, "x");
  auto bad = attach_spec_from_c(&c);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("99"), std::string::npos);
}

TEST(AttachSpec, ValidatesTargetsPerKind) {
  EXPECT_TRUE(validate_attach_spec(AttachSpec::tracepoint("sched:sched_switch")).ok());
  for (const char* bad : {"sched_switch", ":x", "x:", "a:b:c", "a/b:c"}) {
    auto st = validate_attach_spec(AttachSpec::tracepoint(bad));
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.error().message().find("category:name"), std::string::npos);
  }
  EXPECT_TRUE(validate_attach_spec(AttachSpec::raw_tp("sys_enter")).ok());
  EXPECT_FALSE(validate_attach_spec(AttachSpec::raw_tp("")).ok());
  EXPECT_FALSE(validate_attach_spec(AttachSpec::tp_btf("syscalls:sys_enter")).ok());
  EXPECT_TRUE(validate_attach_spec(AttachSpec::uprobe("/bin/sh", "main")).ok());
  EXPECT_FALSE(validate_attach_spec(AttachSpec::uprobe("", "main")).ok());
  EXPECT_FALSE(validate_attach_spec(AttachSpec::uprobe("/bin/sh", "main", -5)).ok());
  EXPECT_TRUE(validate_attach_spec(AttachSpec::perf_event_frequency(99)).ok());
  EXPECT_TRUE(validate_attach_spec(AttachSpec::perf_event_period(1000000)).ok());
  auto perf = validate_attach_spec(AttachSpec::perf_event_frequency(0));
  ASSERT_FALSE(perf.ok());
  EXPECT_NE(perf.error().message().find("frequency"), std::string::npos);
  EXPECT_TRUE(validate_attach_spec(AttachSpec::kprobe("do_sys_openat2")).ok());
  EXPECT_FALSE(validate_attach_spec(AttachSpec::kprobe("")).ok());
}

TEST(AttachSpec, NamesKindsAndStates) {
  EXPECT_EQ(to_string(AttachKind::kTpBtf), "tp_btf");
  EXPECT_EQ(to_string(AttachKind::kPerfEvent), "perf_event");
  EXPECT_EQ(to_string(ProbeState::kDeclared), "declared");
  EXPECT_EQ(static_cast<int>(ProbeState::kFailed), TH_PROBE_FAILED);
  EXPECT_EQ(to_string(ProbeState::kPaused), "paused");
  EXPECT_EQ(static_cast<int>(ProbeState::kPaused), TH_PROBE_PAUSED);
  EXPECT_EQ(static_cast<int>(AttachKind::kKretprobe), TH_ATTACH_KRETPROBE);
}

}  // namespace
}  // namespace tracehost::host
