// Runtime tests of BpfObject (rodata, load errors) and ProbeSet (every attach kind) on the
// running kernel. Root; see tests/common/bpf_guard.hpp.
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "host/bpf_object.hpp"
#include "host/kernel_checks.hpp"
#include "host/map_registry.hpp"
#include "host/probes.hpp"
#include "runtime/bpf/test_probes.h"
#include "runtime/bpf_test_support.hpp"
#include "test_fentry.bpf.embed.h"
#include "test_probes.bpf.embed.h"
#include "test_reject.bpf.embed.h"

// The uprobe target: external linkage and noinline so it has a symbol and really is called.
extern "C" __attribute__((noinline, used)) int tracehost_test_uprobe_target(int x) {
  asm volatile("" ::: "memory");
  return x + 1;
}

namespace tracehost::host {
namespace {

using testing::BpfTest;
using testing::open_object;

// Opens test_probes with the rodata filter set to this process and getppid(2).
std::unique_ptr<BpfObject> open_probes() {
  auto obj = open_object("test_probes", embedded::test_probes_bpf());
  if (!obj) return nullptr;
  const auto tgid = static_cast<std::uint32_t>(::getpid());
  const std::int64_t nr = SYS_getppid;
  auto st = obj->set_rodata_value("target_tgid", tgid);
  if (st.ok()) st = obj->set_rodata_value("target_syscall", nr);
  if (!st.ok()) {
    ADD_FAILURE() << st.error().describe();
    return nullptr;
  }
  return obj;
}

std::uint64_t read_slot(MapRegistry& maps, std::uint32_t slot) {
  auto map = maps.find("test/counts");
  if (!map.ok()) {
    ADD_FAILURE() << map.error().describe();
    return UINT64_MAX;
  }
  std::uint64_t value = 0;
  auto st = (*map)->lookup_value(slot, value);
  if (!st.ok()) ADD_FAILURE() << st.error().describe();
  return value;
}

void call_getppid(int n) {
  for (int i = 0; i < n; ++i) (void)::syscall(SYS_getppid);
}

class BpfProbes : public BpfTest {};

TEST_F(BpfProbes, EnvironmentChecksPass) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  TH_EXPECT_OK(check_bpf_privileges());
  TH_EXPECT_OK(check_btf());
  TH_EXPECT_OK(check_bpf_environment());
  TH_EXPECT_OK(check_ringbuf_support());
  TH_EXPECT_OK(ensure_tracefs());
  EXPECT_EQ(::access("/sys/kernel/tracing/events", F_OK), 0);
  TH_EXPECT_OK(ensure_tracefs());  // idempotent
}

TEST_F(BpfProbes, RawTpCountsExactlyWithRodataFilter) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  EXPECT_GE(testing::count_test_programs(), 1) << "the leak check must see loaded programs";
  MapRegistry maps;
  TH_ASSERT_OK(maps.register_object(*obj));
  ProbeSet probes("test");
  auto id = probes.attach(*obj, "tht_raw_enter", AttachSpec::raw_tp("sys_enter"));
  TH_ASSERT_OK(id);
  EXPECT_NE(*id, 0u);
  call_getppid(7);
  (void)::getpid();  // other syscalls do not count
  EXPECT_EQ(read_slot(maps, THT_SLOT_RAW_TP), 7u);
  probes.detach_all();
  call_getppid(3);
  EXPECT_EQ(read_slot(maps, THT_SLOT_RAW_TP), 7u) << "a detached probe still counted";
  EXPECT_EQ(probes.link_count(), 0u);
}

TEST_F(BpfProbes, RodataDefaultsApplyWhenNotSet) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  // Without set_rodata the filter matches tgid 0 only: nothing of ours counts, proving the
  // counts in the other tests come from the values we set.
  auto obj = open_object("test_probes", embedded::test_probes_bpf());
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  MapRegistry maps;
  TH_ASSERT_OK(maps.register_object(*obj));
  ProbeSet probes("test");
  TH_ASSERT_OK(probes.attach(*obj, "tht_raw_enter", AttachSpec::raw_tp("sys_enter")));
  call_getppid(5);
  EXPECT_EQ(read_slot(maps, THT_SLOT_RAW_TP), 0u);
}

TEST_F(BpfProbes, TpBtfCountsExactly) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  MapRegistry maps;
  TH_ASSERT_OK(maps.register_object(*obj));
  ProbeSet probes("test");
  TH_ASSERT_OK(probes.attach(*obj, "tht_btf_enter", AttachSpec::tp_btf("sys_enter")));
  call_getppid(11);
  EXPECT_EQ(read_slot(maps, THT_SLOT_TP_BTF), 11u);
}

TEST_F(BpfProbes, TpBtfTargetMustMatchSection) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  ProbeSet probes("test");
  auto id = probes.attach(*obj, "tht_btf_enter", AttachSpec::tp_btf("sys_exit"));
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(id.error().message().find("tp_btf/sys_enter"), std::string::npos)
      << id.error().describe();
  EXPECT_EQ(probes.link_count(), 0u);
}

TEST_F(BpfProbes, WrongKindForProgramIsClear) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  ProbeSet probes("test");
  auto id = probes.attach(*obj, "tht_raw_enter", AttachSpec::tracepoint("raw_syscalls:sys_enter"));
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(id.error().message().find("raw_tp/sys_enter"), std::string::npos)
      << id.error().describe();
  auto missing = probes.attach(*obj, "no_such_prog", AttachSpec::raw_tp("sys_enter"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(missing.error().message().find("tht_raw_enter"), std::string::npos)
      << "the error should list the programs that exist: " << missing.error().describe();
}

TEST_F(BpfProbes, TracepointMountsTracefsAndCountsExactly) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  MapRegistry maps;
  TH_ASSERT_OK(maps.register_object(*obj));
  ProbeSet probes("test");
  auto id = probes.attach(*obj, "tht_tp_enter", AttachSpec::tracepoint("raw_syscalls:sys_enter"));
  TH_ASSERT_OK(id);
  EXPECT_EQ(::access("/sys/kernel/tracing/events/raw_syscalls/sys_enter/id", R_OK), 0)
      << "tracefs should be mounted now";
  call_getppid(5);
  EXPECT_EQ(read_slot(maps, THT_SLOT_TRACEPOINT), 5u);

  auto unknown = probes.attach(*obj, "tht_tp_enter", AttachSpec::tracepoint("nope:no_such_tp"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind(), ErrorKind::kKernelIncompatible);
  EXPECT_NE(unknown.error().message().find("nope:no_such_tp"), std::string::npos)
      << unknown.error().describe();
}

TEST_F(BpfProbes, UprobeAndUretprobeCountCallsExactly) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  MapRegistry maps;
  TH_ASSERT_OK(maps.register_object(*obj));
  ProbeSet probes("test");
  const std::string self = "/proc/self/exe";
  char path[PATH_MAX] = {};
  ASSERT_GT(::readlink(self.c_str(), path, sizeof(path) - 1), 0);
  TH_ASSERT_OK(probes.attach(*obj, "tht_uprobe",
                             AttachSpec::uprobe(path, "tracehost_test_uprobe_target", ::getpid())));
  TH_ASSERT_OK(probes.attach(
      *obj, "tht_uretprobe",
      AttachSpec::uprobe(path, "tracehost_test_uprobe_target", -1, /*retprobe=*/true)));
  int sum = 0;
  for (int i = 0; i < 13; ++i) sum += tracehost_test_uprobe_target(i);
  EXPECT_EQ(sum, 13 * 14 / 2);
  EXPECT_EQ(read_slot(maps, THT_SLOT_UPROBE), 13u);
  EXPECT_EQ(read_slot(maps, THT_SLOT_URETPROBE), 13u);

  auto bad =
      probes.attach(*obj, "tht_uprobe", AttachSpec::uprobe(path, "tracehost_no_such_function_xyz"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind(), ErrorKind::kAttachFailed);
  EXPECT_NE(bad.error().message().find("tracehost_no_such_function_xyz"), std::string::npos)
      << bad.error().describe();
}

TEST_F(BpfProbes, PerfEventSamplesOnEveryCpu) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  MapRegistry maps;
  TH_ASSERT_OK(maps.register_object(*obj));
  ProbeSet probes("test");
  auto id = probes.attach(*obj, "tht_perf", AttachSpec::perf_event_frequency(1000));
  TH_ASSERT_OK(id);
  auto cpus = online_cpus();
  TH_ASSERT_OK(cpus);
  auto listed = probes.list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].link_count, cpus->size()) << "one link per online CPU";
  EXPECT_EQ(listed[0].state, ProbeState::kAttached);

  // keep this CPU busy for 200 ms so cpu-clock ticks here whatever the others do
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  volatile std::uint64_t spin = 0;
  while (std::chrono::steady_clock::now() < until) spin = spin + 1;
  auto samples = maps.find("test/perf_samples");
  TH_ASSERT_OK(samples);
  std::uint64_t total = 0;
  TH_ASSERT_OK((*samples)->lookup_value(std::uint32_t{0}, total));
  EXPECT_GE(total, 1u);

  auto bad = probes.attach(*obj, "tht_perf", AttachSpec::perf_event_frequency(0));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind(), ErrorKind::kInvalidArgument);
  TH_EXPECT_OK(probes.detach(*id));
  EXPECT_EQ(probes.link_count(), 0u);
}

TEST_F(BpfProbes, KprobeIsRefusedWhenKernelHasNone) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  ProbeSet probes("test");
  auto id = probes.attach(*obj, "tht_kprobe", AttachSpec::kprobe("do_nanosleep"));
  if (kprobes_available()) {
    TH_EXPECT_OK(id);
    return;
  }
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().kind(), ErrorKind::kKernelIncompatible);
  EXPECT_NE(id.error().message().find("CONFIG_KPROBES"), std::string::npos)
      << id.error().describe();
  EXPECT_NE(id.error().message().find("tp_btf"), std::string::npos) << id.error().describe();
  auto ret = probes.attach(*obj, "tht_kprobe", AttachSpec::kprobe("do_nanosleep", true));
  ASSERT_FALSE(ret.ok());
  EXPECT_EQ(ret.error().kind(), ErrorKind::kKernelIncompatible);
  EXPECT_TRUE(probes.list().empty());
}

TEST_F(BpfProbes, DeferredProbesAttachLater) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  MapRegistry maps;
  TH_ASSERT_OK(maps.register_object(*obj));
  ProbeSet probes("test");
  AttachSpec raw = AttachSpec::raw_tp("sys_enter");
  raw.deferred = true;
  AttachSpec btf = AttachSpec::tp_btf("sys_enter");
  btf.deferred = true;
  auto raw_id = probes.attach(*obj, "tht_raw_enter", raw);
  auto btf_id = probes.attach(*obj, "tht_btf_enter", btf);
  TH_ASSERT_OK(raw_id);
  TH_ASSERT_OK(btf_id);
  auto listed = probes.list();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].state, ProbeState::kDeclared);
  EXPECT_EQ(listed[0].link_count, 0u);
  EXPECT_EQ(listed[1].program, "tht_btf_enter");

  call_getppid(4);
  EXPECT_EQ(read_slot(maps, THT_SLOT_RAW_TP), 0u) << "declared probes must not run";

  TH_ASSERT_OK(probes.attach_deferred());
  listed = probes.list();
  EXPECT_EQ(listed[0].state, ProbeState::kAttached);
  EXPECT_EQ(listed[1].state, ProbeState::kAttached);
  EXPECT_EQ(listed[0].link_count, 1u);
  call_getppid(6);
  EXPECT_EQ(read_slot(maps, THT_SLOT_RAW_TP), 6u);
  EXPECT_EQ(read_slot(maps, THT_SLOT_TP_BTF), 6u);

  TH_EXPECT_OK(probes.detach(*raw_id));
  EXPECT_EQ(probes.list()[0].state, ProbeState::kDetached);
  auto unknown = probes.detach(987654321);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind(), ErrorKind::kNotFound);
}

// A paused probe is not called at all (its links are gone) and keeps its id; resumed, it counts
// again from the same spec. Pausing or resuming twice is harmless; only attached and paused
// probes take either.
TEST_F(BpfProbes, PausedProbesDoNotRunAndResume) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  MapRegistry maps;
  TH_ASSERT_OK(maps.register_object(*obj));
  ProbeSet probes("test");
  auto id = probes.attach(*obj, "tht_btf_enter", AttachSpec::tp_btf("sys_enter"));
  TH_ASSERT_OK(id);
  call_getppid(3);
  EXPECT_EQ(read_slot(maps, THT_SLOT_TP_BTF), 3u);

  TH_ASSERT_OK(probes.set_enabled(*id, false));
  TH_EXPECT_OK(probes.set_enabled(*id, false));
  auto listed = probes.list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].state, ProbeState::kPaused);
  EXPECT_EQ(listed[0].link_count, 0u);
  EXPECT_GE(listed[0].prog_fd, 0) << "its run statistics stay readable";
  EXPECT_EQ(probes.link_count(), 0u);
  call_getppid(5);
  EXPECT_EQ(read_slot(maps, THT_SLOT_TP_BTF), 3u) << "a paused probe must not run";

  TH_ASSERT_OK(probes.set_enabled(*id, true));
  TH_EXPECT_OK(probes.set_enabled(*id, true));
  EXPECT_EQ(probes.list()[0].state, ProbeState::kAttached);
  EXPECT_EQ(probes.link_count(), 1u);
  call_getppid(4);
  EXPECT_EQ(read_slot(maps, THT_SLOT_TP_BTF), 7u);

  auto unknown = probes.set_enabled(987654321, false);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind(), ErrorKind::kNotFound);
  TH_ASSERT_OK(probes.detach(*id));
  auto detached = probes.set_enabled(*id, true);
  ASSERT_FALSE(detached.ok());
  EXPECT_EQ(detached.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(detached.error().message().find("detached"), std::string::npos)
      << detached.error().describe();

  // paused when everything is detached: released like any other
  auto again = probes.attach(*obj, "tht_btf_enter", AttachSpec::tp_btf("sys_enter"));
  TH_ASSERT_OK(again);
  TH_ASSERT_OK(probes.set_enabled(*again, false));
  probes.detach_all();
  EXPECT_EQ(probes.list()[1].state, ProbeState::kDetached);
  EXPECT_FALSE(probes.set_enabled(*again, true).ok());
}

TEST_F(BpfProbes, DeferredFailureIsRecorded) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  ProbeSet probes("test");
  AttachSpec bad = AttachSpec::tracepoint("nope:no_such_tp");
  bad.deferred = true;
  AttachSpec good = AttachSpec::raw_tp("sys_enter");
  good.deferred = true;
  TH_ASSERT_OK(probes.attach(*obj, "tht_tp_enter", bad));
  TH_ASSERT_OK(probes.attach(*obj, "tht_raw_enter", good));
  auto st = probes.attach_deferred();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("nope:no_such_tp"), std::string::npos)
      << st.error().describe();
  auto listed = probes.list();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].state, ProbeState::kFailed);
  EXPECT_FALSE(listed[0].error.empty());
  EXPECT_EQ(listed[1].state, ProbeState::kAttached) << "one failure must not stop the others";
}

TEST_F(BpfProbes, DetachAllLeavesNoLinks) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->load());
  ProbeSet probes("test");
  TH_ASSERT_OK(probes.attach(*obj, "tht_raw_enter", AttachSpec::raw_tp("sys_enter")));
  TH_ASSERT_OK(probes.attach(*obj, "tht_btf_enter", AttachSpec::tp_btf("sys_enter")));
  TH_ASSERT_OK(probes.attach(*obj, "tht_perf", AttachSpec::perf_event_period(10'000'000)));
  EXPECT_GE(probes.link_count(), 3u);
  // the object is closed first: its programs live on while links hold them
  probes.detach_object(*obj);
  EXPECT_EQ(probes.link_count(), 0u);
  obj.reset();
  for (const auto& p : probes.list()) EXPECT_EQ(p.state, ProbeState::kDetached) << p.program;
  probes.detach_all();
  EXPECT_EQ(testing::wait_for_test_programs_gone(), 0);
}

TEST_F(BpfProbes, VerifierRejectionCarriesTheLog) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_object("test_reject", embedded::test_reject_bpf());
  ASSERT_TRUE(obj);
  auto st = obj->load();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind(), ErrorKind::kLoadFailed);
  const std::string& msg = st.error().message();
  EXPECT_NE(msg.find("BEGIN PROG LOAD LOG"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid mem access"), std::string::npos) << msg;
  EXPECT_NE(st.error().context().find("test_reject"), std::string::npos);
  EXPECT_FALSE(obj->loaded());
}

TEST_F(BpfProbes, FentryIsRefusedClearly) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_object("test_fentry", embedded::test_fentry_bpf());
  ASSERT_TRUE(obj);
  auto st = obj->load();
  if (st.ok()) {
    // a kernel that loads fentry: attaching must then either work or fail clearly
    ProbeSet probes("test");
    auto id = probes.attach(*obj, "tht_fentry", AttachSpec::tp_btf("do_nanosleep"));
    ASSERT_FALSE(id.ok());
    EXPECT_NE(id.error().message().find("fentry"), std::string::npos) << id.error().describe();
    return;
  }
  EXPECT_EQ(st.error().kind(), ErrorKind::kKernelIncompatible) << st.error().describe();
  EXPECT_NE(st.error().message().find("fentry"), std::string::npos) << st.error().describe();
}

TEST_F(BpfProbes, RodataErrorsAreClear) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_object("test_probes", embedded::test_probes_bpf());
  ASSERT_TRUE(obj);
  auto unknown = obj->set_rodata_value("no_such_var", std::uint32_t{1});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(unknown.error().message().find("target_tgid"), std::string::npos)
      << "should list the known variables: " << unknown.error().describe();
  auto size = obj->set_rodata_value("target_tgid", std::uint64_t{1});
  ASSERT_FALSE(size.ok());
  EXPECT_NE(size.error().message().find("4 bytes"), std::string::npos) << size.error().describe();
  EXPECT_NE(size.error().message().find("8 bytes"), std::string::npos) << size.error().describe();
  TH_ASSERT_OK(obj->load());
  auto late = obj->set_rodata_value("target_tgid", std::uint32_t{1});
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.error().message().find("after load"), std::string::npos);
}

TEST_F(BpfProbes, AutoloadOffSkipsProgram) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  TH_ASSERT_OK(obj->set_autoload("tht_kprobe", false));
  TH_ASSERT_OK(obj->set_map_max_entries("counts", 16));
  TH_ASSERT_OK(obj->load());
  for (const auto& p : obj->programs()) {
    if (p.name == "tht_kprobe") {
      EXPECT_LT(p.fd, 0);
    } else {
      EXPECT_GE(p.fd, 0) << p.name;
    }
  }
  MapRegistry maps;
  TH_ASSERT_OK(maps.register_object(*obj));
  auto counts = maps.find("test/counts");
  TH_ASSERT_OK(counts);
  EXPECT_EQ((*counts)->info().max_entries, 16u);
  ProbeSet probes("test");
  auto id = probes.attach(*obj, "tht_kprobe", AttachSpec::kprobe("do_nanosleep"));
  EXPECT_FALSE(id.ok());
}

// An iterator runs once, start to end, and its output arrives whole: here every thread of this
// process (two extra threads parked on a future), compared with /proc/self/task.
TEST_F(BpfProbes, IteratorRunsOnceAndReturnsItsOutput) {
  TRACEHOST_REQUIRE_BPF_PRIVILEGES();
  auto obj = open_probes();
  ASSERT_TRUE(obj);
  auto early = obj->run_iterator("tht_iter_threads", {});
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.error().message().find("before load"), std::string::npos)
      << early.error().describe();
  TH_ASSERT_OK(obj->load());

  std::promise<void> release;
  std::shared_future<void> parked = release.get_future().share();
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([parked] { parked.wait(); });
  std::set<std::uint32_t> want;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    want.insert(static_cast<std::uint32_t>(std::stoul(e.path().filename().string())));
  }
  std::string out;
  auto st = obj->run_iterator("tht_iter_threads", [&](std::span<const std::byte> chunk) {
    out.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
  });
  release.set_value();
  for (auto& t : threads) t.join();
  TH_ASSERT_OK(st);
  ASSERT_EQ(out.size() % sizeof(std::uint32_t), 0u);
  std::set<std::uint32_t> got;
  for (std::size_t i = 0; i < out.size(); i += sizeof(std::uint32_t)) {
    std::uint32_t tid = 0;
    std::memcpy(&tid, out.data() + i, sizeof(tid));
    EXPECT_TRUE(got.insert(tid).second) << "thread " << tid << " written twice";
  }
  EXPECT_EQ(got, want);
  EXPECT_GE(got.size(), 3u);

  auto not_iter = obj->run_iterator("tht_raw_enter", {});
  ASSERT_FALSE(not_iter.ok());
  EXPECT_EQ(not_iter.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(not_iter.error().message().find("not an iterator"), std::string::npos)
      << not_iter.error().describe();
}

}  // namespace
}  // namespace tracehost::host
