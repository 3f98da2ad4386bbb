// Time to symbolise one cpu_profile window of 10 000 samples (tracehost_cpu_profile_symbolizer),
// cold and warm.
//
// The window is built from real processes and real addresses: this benchmark forks children of
// itself (so they map the same dozen shared libraries: libc, libstdc++, libbpf, libelf, libz,
// libbenchmark, spdlog, fmt, ...) and spawns `sleep` (another executable on the same libc), and
// takes user frames from the executable mappings of their /proc/PID/maps; kernel frames are
// text symbols of /proc/kallsyms plus a small offset. Frames are drawn from a per-process pool
// of call sites with a skewed (Zipf-like) choice, and the 10 000 samples fall on (process, user
// stack, kernel stack) keys with a skewed choice too, so hot stacks repeat and share frames as
// in a real profile. What the plugin gets from the kernel is one count per key: the work is the
// distinct keys' frames, each distinct (pid, address) symbolised once per window, as the
// plugin's window code does.
//
//   Cold:  a fresh Symbolizer: reads /proc/kallsyms, every process's maps, parses every mapped
//          ELF file's symbol tables (files are in the page cache: not a cold disk), then looks up
//          every frame. `ColdKallsymsLoaded` is the same with the kernel table already loaded
//          (the plugin loads it once at start).
//   Warm:  a second window (other samples, the same processes) on a Symbolizer that has seen the
//          first: lookups only.
//
// Kernel frames need /proc/kallsyms addresses (root, or kptr_restrict = 0); without them the
// windows have user frames only and the benchmarks say so in their label.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "symbolizer/symbolizer.hpp"

#ifdef TRACEHOST_BENCH_HAVE_CPU_PROFILE_WINDOW
#include "window.hpp"
#endif

extern char** environ;

namespace {

namespace cp = tracehost::cpu_profile;

constexpr std::uint64_t kWindowSamples = 10000;
constexpr int kForkedChildren = 4;  // + this process + kSleepChildren
constexpr int kSleepChildren = 2;
constexpr int kCallSitesPerProcess = 600;
constexpr int kStacksPerProcess = 300;
constexpr int kKernelCallSites = 1500;
constexpr int kKernelStacks = 600;
constexpr int kKeys = 3000;

// One (process, user stack, kernel stack) count: what the kernel's count map holds.
struct Key {
  pid_t pid = 0;
  std::vector<std::uint64_t> user;    // leaf first
  std::vector<std::uint64_t> kernel;  // leaf first
  std::uint64_t count = 0;
};

struct Window {
  std::vector<Key> keys;  // count > 0 only
  std::size_t frames = 0;
  std::size_t addresses = 0;  // distinct (pid, user address) + distinct kernel addresses
};

// Index in [0, n) with P(i) ~ 1 / (i + 1)^s: a few hot entries, a long tail.
class Zipf {
 public:
  Zipf(std::size_t n, double s) {
    cdf_.reserve(n);
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
      cdf_.push_back(sum);
    }
    for (double& c : cdf_) c /= sum;
  }
  std::size_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
    return it == cdf_.end() ? cdf_.size() - 1 : static_cast<std::size_t>(it - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

std::vector<std::uint64_t> kernel_text_addresses() {
  std::ifstream in("/proc/kallsyms");
  std::vector<std::uint64_t> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string addr;
    std::string type;
    if (!(ls >> addr >> type) || type.size() != 1) continue;
    if (type[0] != 't' && type[0] != 'T') continue;
    const std::uint64_t a = std::strtoull(addr.c_str(), nullptr, 16);
    if (a != 0) out.push_back(a);
  }
  return out;
}

// The processes a window samples, alive for the whole benchmark run.
class Processes {
 public:
  Processes() {
    pids_.push_back(::getpid());
    for (int i = 0; i < kForkedChildren; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) ::pause();
      }
      if (pid > 0) {
        pids_.push_back(pid);
        children_.push_back(pid);
      }
    }
    for (int i = 0; i < kSleepChildren; ++i) {
      char arg0[] = "sleep";
      char arg1[] = "3600";
      char* argv[] = {arg0, arg1, nullptr};
      pid_t pid = 0;
      if (::posix_spawnp(&pid, "sleep", nullptr, nullptr, argv, environ) == 0) {
        pids_.push_back(pid);
        children_.push_back(pid);
      }
    }
    // the exec'd children must have replaced their image before their maps are read
    for (pid_t pid : children_) wait_for_exec_or_pause(pid);
  }
  ~Processes() {
    for (pid_t pid : children_) ::kill(pid, SIGKILL);
    for (pid_t pid : children_) ::waitpid(pid, nullptr, 0);
  }
  Processes(const Processes&) = delete;
  Processes& operator=(const Processes&) = delete;

  [[nodiscard]] const std::vector<pid_t>& pids() const { return pids_; }

 private:
  // until the child is asleep (paused, or sleep(1) in its nanosleep): its maps are final then
  static void wait_for_exec_or_pause(pid_t pid) {
    for (int i = 0; i < 500; ++i) {
      std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
      std::string s;
      std::getline(st, s);
      const auto paren = s.rfind(')');
      if (paren != std::string::npos && paren + 2 < s.size() && s[paren + 2] == 'S') return;
      ::usleep(2000);
    }
  }

  std::vector<pid_t> pids_;
  std::vector<pid_t> children_;
};

// Call sites of one process: addresses in its file-backed executable mappings, spread over
// the mappings in proportion to their size; the first two are in the executable and in libc
// (the roots of every stack: _start / __libc_start_main / main).
struct ProcessSites {
  pid_t pid = 0;
  std::vector<std::uint64_t> roots;
  std::vector<std::uint64_t> sites;
};

ProcessSites call_sites(pid_t pid, std::mt19937_64& rng) {
  ProcessSites out;
  out.pid = pid;
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::vector<cp::Mapping> text;
  std::uint64_t total = 0;
  for (auto& m : cp::parse_maps(in)) {
    if (!m.executable || m.path.empty() || m.path.front() != '/') continue;
    total += m.end - m.start;
    text.push_back(std::move(m));
  }
  if (text.empty()) return out;
  auto in_mapping = [&rng](const cp::Mapping& m) {
    return std::uniform_int_distribution<std::uint64_t>(m.start, m.end - 1)(rng);
  };
  out.roots.push_back(in_mapping(text.front()));  // the executable is mapped first
  for (const auto& m : text) {
    if (m.path.find("/libc.so") != std::string::npos) out.roots.push_back(in_mapping(m));
  }
  std::uniform_int_distribution<std::uint64_t> pick(0, total - 1);
  for (int i = 0; i < kCallSitesPerProcess; ++i) {
    std::uint64_t at = pick(rng);
    for (const auto& m : text) {
      if (at < m.end - m.start) {
        out.sites.push_back(m.start + at);
        break;
      }
      at -= m.end - m.start;
    }
  }
  return out;
}

struct Model {
  std::vector<ProcessSites> processes;
  std::vector<std::vector<std::uint64_t>> kernel_stacks;  // empty when kallsyms is hidden
  bool kernel = false;
};

Model make_model(const Processes& procs) {
  std::mt19937_64 rng(42);
  Model model;
  for (pid_t pid : procs.pids()) {
    auto sites = call_sites(pid, rng);
    if (!sites.sites.empty()) model.processes.push_back(std::move(sites));
  }
  const auto ktext = kernel_text_addresses();
  model.kernel = !ktext.empty();
  if (model.kernel) {
    std::vector<std::uint64_t> ksites;
    std::uniform_int_distribution<std::size_t> pick(0, ktext.size() - 1);
    std::uniform_int_distribution<std::uint64_t> offset(0, 0x1ff);
    for (int i = 0; i < kKernelCallSites; ++i) ksites.push_back(ktext[pick(rng)] + offset(rng));
    const Zipf site(ksites.size(), 0.9);
    std::uniform_int_distribution<int> depth(3, 20);
    for (int i = 0; i < kKernelStacks; ++i) {
      std::vector<std::uint64_t> s(static_cast<std::size_t>(depth(rng)));
      for (auto& a : s) a = ksites[site(rng)];
      model.kernel_stacks.push_back(std::move(s));
    }
  }
  return model;
}

// One window: kKeys candidate keys, then kWindowSamples samples spread over them.
Window make_window(const Model& model, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Key> candidates;
  std::uniform_int_distribution<int> depth(6, 40);
  std::uniform_int_distribution<int> percent(0, 99);
  for (int i = 0; i < kKeys; ++i) {
    const auto& p = model.processes[static_cast<std::size_t>(i) % model.processes.size()];
    const Zipf site(p.sites.size(), 0.8);
    Key k;
    k.pid = p.pid;
    // leaf first: random call sites, then the roots at the bottom
    const int d = depth(rng);
    for (int f = 0; f < d; ++f) k.user.push_back(p.sites[site(rng)]);
    for (auto r = p.roots.rbegin(); r != p.roots.rend(); ++r) k.user.push_back(*r);
    // four samples in ten were in the kernel (syscalls, page faults, interrupts)
    if (model.kernel && percent(rng) < 40) {
      k.kernel = model.kernel_stacks[rng() % model.kernel_stacks.size()];
    }
    candidates.push_back(std::move(k));
  }
  const Zipf which(candidates.size(), 1.0);
  for (std::uint64_t i = 0; i < kWindowSamples; ++i) candidates[which(rng)].count++;
  Window w;
  std::set<std::pair<pid_t, std::uint64_t>> user;
  std::set<std::uint64_t> kernel;
  for (auto& k : candidates) {
    if (k.count == 0) continue;
    w.frames += k.user.size() + k.kernel.size();
    for (std::uint64_t a : k.user) user.emplace(k.pid, a);
    kernel.insert(k.kernel.begin(), k.kernel.end());
    w.keys.push_back(std::move(k));
  }
  w.addresses = user.size() + kernel.size();
  return w;
}

struct Fixture {
  Processes processes;
  Model model;
  Window first;
  Window second;
  Fixture()
      : model(make_model(processes)), first(make_window(model, 1)), second(make_window(model, 2)) {}
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// Symbolises every frame of the window, each distinct (pid, address) once, as the plugin does;
// returns the number of frames that got a name. Return addresses (all but the leaf) are looked
// up at address - 1, like the plugin.
std::size_t symbolize_window(cp::Symbolizer& sym, const Window& w) {
  struct PidAddrHash {
    std::size_t operator()(const std::pair<pid_t, std::uint64_t>& p) const noexcept {
      return std::hash<std::uint64_t>{}(p.second * 31 + static_cast<std::uint64_t>(p.first));
    }
  };
  std::unordered_map<std::uint64_t, bool> kernel_seen;
  std::unordered_map<std::pair<pid_t, std::uint64_t>, bool, PidAddrHash> user_seen;
  std::size_t named = 0;
  for (const Key& k : w.keys) {
    for (std::size_t i = 0; i < k.user.size(); ++i) {
      auto [it, fresh] = user_seen.try_emplace({k.pid, k.user[i]}, false);
      if (fresh) it->second = sym.symbolize_user(k.pid, i == 0 ? k.user[i] : k.user[i] - 1).known;
      named += it->second ? 1 : 0;
    }
    for (std::size_t i = 0; i < k.kernel.size(); ++i) {
      auto [it, fresh] = kernel_seen.try_emplace(k.kernel[i], false);
      if (fresh) it->second = sym.symbolize_kernel(i == 0 ? k.kernel[i] : k.kernel[i] - 1).known;
      named += it->second ? 1 : 0;
    }
  }
  return named;
}

std::string detail_label() {
  const Fixture& f = fixture();
  return std::to_string(f.model.processes.size()) + " processes" +
         (f.model.kernel ? "" : "; no kernel frames (/proc/kallsyms hidden: run as root)");
}

// `named`: frames that got a name, or kNotCounted
constexpr std::size_t kNotCounted = SIZE_MAX;
void window_counters(benchmark::State& state, const Window& w, std::size_t named,
                     const cp::Symbolizer& sym) {
  std::uint64_t samples = 0;
  for (const Key& k : w.keys) samples += k.count;
  state.counters["samples"] = static_cast<double>(samples);
  state.counters["keys"] = static_cast<double>(w.keys.size());
  state.counters["frames"] = static_cast<double>(w.frames);
  state.counters["addresses"] = static_cast<double>(w.addresses);
  if (named != kNotCounted && w.frames != 0) {
    state.counters["named_pct"] =
        100.0 * static_cast<double>(named) / static_cast<double>(w.frames);
  }
  state.counters["elf_files"] = static_cast<double>(sym.cached_elf_files());
  state.SetLabel(detail_label());
}

void BM_SymbolizeWindowCold(benchmark::State& state) {
  const Fixture& f = fixture();
  std::size_t named = 0;
  std::unique_ptr<cp::Symbolizer> last;
  for (auto _ : state) {
    auto sym = std::make_unique<cp::Symbolizer>();
    sym->load_kernel_symbols();
    named = symbolize_window(*sym, f.first);
    benchmark::DoNotOptimize(named);
    state.PauseTiming();
    last = std::move(sym);  // destroying the caches is not part of symbolising
    state.ResumeTiming();
  }
  window_counters(state, f.first, named, *last);
}
BENCHMARK(BM_SymbolizeWindowCold)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SymbolizeWindowColdKallsymsLoaded(benchmark::State& state) {
  const Fixture& f = fixture();
  const cp::KernelSymbols kernel = cp::KernelSymbols::load();
  std::size_t named = 0;
  std::unique_ptr<cp::Symbolizer> last;
  for (auto _ : state) {
    state.PauseTiming();
    auto sym = std::make_unique<cp::Symbolizer>();
    sym->set_kernel_symbols(kernel);
    last.reset();
    state.ResumeTiming();
    named = symbolize_window(*sym, f.first);
    benchmark::DoNotOptimize(named);
    state.PauseTiming();
    last = std::move(sym);
    state.ResumeTiming();
  }
  window_counters(state, f.first, named, *last);
}
BENCHMARK(BM_SymbolizeWindowColdKallsymsLoaded)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SymbolizeWindowWarm(benchmark::State& state) {
  const Fixture& f = fixture();
  cp::Symbolizer sym;
  sym.load_kernel_symbols();
  (void)symbolize_window(sym, f.first);  // the previous window filled the caches
  std::size_t named = 0;
  for (auto _ : state) {
    named = symbolize_window(sym, f.second);
    benchmark::DoNotOptimize(named);
  }
  window_counters(state, f.second, named, sym);
}
BENCHMARK(BM_SymbolizeWindowWarm)->Unit(benchmark::kMillisecond)->UseRealTime();

// Reading and sorting /proc/kallsyms, which the cold case includes.
void BM_LoadKallsyms(benchmark::State& state) {
  std::size_t n = 0;
  for (auto _ : state) {
    n = cp::KernelSymbols::load().size();
    benchmark::DoNotOptimize(n);
  }
  state.counters["symbols"] = static_cast<double>(n);
}
BENCHMARK(BM_LoadKallsyms)->Unit(benchmark::kMillisecond)->UseRealTime();

#ifdef TRACEHOST_BENCH_HAVE_CPU_PROFILE_WINDOW
// The plugin's own window step (window.hpp build_profile): symbolisation plus building the
// Profile the writers take, on the same windows.
std::vector<cp::RawSample> raw_of(const Window& w) {
  std::vector<cp::RawSample> raw;
  for (const Key& k : w.keys) {
    cp::RawSample r;
    r.pid = static_cast<std::uint32_t>(k.pid);
    r.comm = "bench";
    r.user = k.user;
    r.kernel = k.kernel;
    r.count = k.count;
    raw.push_back(std::move(r));
  }
  return raw;
}

void BM_BuildProfileCold(benchmark::State& state) {
  const Fixture& f = fixture();
  const auto raw = raw_of(f.first);
  std::unique_ptr<cp::Symbolizer> last;
  for (auto _ : state) {
    auto sym = std::make_unique<cp::Symbolizer>();
    sym->load_kernel_symbols();
    auto profile = cp::build_profile(raw, *sym, cp::ProfileWindow{}, false);
    benchmark::DoNotOptimize(profile);
    state.PauseTiming();
    last = std::move(sym);
    { auto drop = std::move(profile); }
    state.ResumeTiming();
  }
  window_counters(state, f.first, kNotCounted, *last);
}
BENCHMARK(BM_BuildProfileCold)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_BuildProfileWarm(benchmark::State& state) {
  const Fixture& f = fixture();
  const auto first = raw_of(f.first);
  const auto second = raw_of(f.second);
  cp::Symbolizer sym;
  sym.load_kernel_symbols();
  (void)cp::build_profile(first, sym, cp::ProfileWindow{}, false);
  for (auto _ : state) {
    auto profile = cp::build_profile(second, sym, cp::ProfileWindow{}, false);
    benchmark::DoNotOptimize(profile);
  }
  window_counters(state, f.second, kNotCounted, sym);
}
BENCHMARK(BM_BuildProfileWarm)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

}  // namespace
