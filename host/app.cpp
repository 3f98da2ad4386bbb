#include "host/app.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "host/bpf_object.hpp"
#include "host/bpf_stats.hpp"
#include "host/event_bus.hpp"
#include "host/host_services.hpp"
#include "host/kernel_checks.hpp"
#include "host/logging.hpp"
#include "host/map_registry.hpp"
#include "host/metrics.hpp"
#include "host/plugin_manager.hpp"
#include "host/ringbuf_poller.hpp"
#include "host/self_metrics.hpp"
#include "host/sinks/sink.hpp"
#include "host/unique_fd.hpp"

namespace tracehost::host {

namespace {

// Blocks SIGINT/SIGTERM for the calling thread and every thread started afterwards, and reads
// them through a signalfd: no work happens in a signal handler. Restores the old mask on
// destruction after consuming the pending ones, which would otherwise kill the process the
// moment they are unblocked.
class SignalWatch {
 public:
  static Result<std::unique_ptr<SignalWatch>> make() {
    auto w = std::unique_ptr<SignalWatch>(new SignalWatch());
    sigemptyset(&w->set_);
    sigaddset(&w->set_, SIGINT);
    sigaddset(&w->set_, SIGTERM);
    if (int e = pthread_sigmask(SIG_BLOCK, &w->set_, &w->old_); e != 0) {
      return Error(ErrorKind::kInternal, "pthread_sigmask failed", e);
    }
    w->restore_ = true;
    int fd = ::signalfd(-1, &w->set_, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) return Error(ErrorKind::kInternal, "signalfd failed", errno);
    w->fd_.reset(fd);
    return w;
  }

  ~SignalWatch() {
    if (!restore_) return;
    timespec zero{};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;
  SignalWatch(SignalWatch&&) = delete;
  SignalWatch& operator=(SignalWatch&&) = delete;

  // Waits up to `timeout_ms` (-1: forever). Returns the signal number, or 0 on timeout.
  int wait(int timeout_ms) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    int r = ::poll(&pfd, 1, timeout_ms);
    if (r <= 0) return 0;
    signalfd_siginfo info{};
    if (::read(fd_.get(), &info, sizeof(info)) != static_cast<ssize_t>(sizeof(info))) return 0;
    return static_cast<int>(info.ssi_signo);
  }

 private:
  SignalWatch() = default;
  sigset_t set_{};
  sigset_t old_{};
  bool restore_ = false;
  UniqueFd fd_;
};

// Owns the running host and knows how far startup got, so one shutdown() serves every exit.
class App {
 public:
  explicit App(const Config& config) : config_(config), stats_(config.host.bpf_stats) {}
  ~App() { shutdown(); }
  App(const App&) = delete;
  App& operator=(const App&) = delete;
  App(App&&) = delete;
  App& operator=(App&&) = delete;

  Status start() {
    TH_ASSIGN_OR_RETURN(poller_, RingbufPoller::make(bus_, PollerOptions{std::chrono::milliseconds(
                                                               config_.host.poll_interval_ms)}));
    if (!stats_.available()) {
      spdlog::info("BPF run statistics off ({}): per-program run counts stay 0",
                   stats_.unavailable_reason());
    }
    core_ = std::make_unique<HostCore>(
        HostCore{bus_, metrics_, maps_, poller_.get(), config_.host.exclude_self});
    plugins_ = std::make_unique<PluginManager>(*core_);
    TH_TRY(plugins_->load(config_));

    SinkContext sink_ctx{bus_, metrics_};
    const toml::table* sinks_table =
        config_.document ? config_.document->get_as<toml::table>("sinks") : nullptr;
    if (sinks_table != nullptr) {
      TH_ASSIGN_OR_RETURN(sinks_, make_sinks(*sinks_table, config_.file, sink_ctx));
    } else {
      spdlog::info("no [sinks] in the config: using the console sink");
      toml::table empty;
      TH_ASSIGN_OR_RETURN(auto console, make_sink("console", empty, config_.file, sink_ctx));
      if (console) sinks_.push_back(std::move(console));
    }
    if (sinks_.empty()) {
      spdlog::warn("no sink is enabled: events are counted but go nowhere");
    }
    self_metrics_ = std::make_unique<SelfMetrics>(metrics_, *plugins_);

    TH_TRY(plugins_->start_all());
    for (auto& s : sinks_) {
      Status st = s->start();
      if (!st.ok()) return st.error().with_context("sink " + std::string(s->name()));
      started_sinks_.push_back(s.get());
    }
    TH_TRY(poller_->start());

    std::string names, sink_names;
    for (const auto& p : plugins_->statuses()) {
      if (p.state != PluginState::kRunning) continue;
      names += names.empty() ? p.name : ", " + p.name;
    }
    for (auto* s : started_sinks_) {
      sink_names += sink_names.empty() ? std::string(s->name()) : ", " + std::string(s->name());
    }
    spdlog::info("tracehost {} running: plugins [{}], sinks [{}]", TRACEHOST_VERSION, names,
                 sink_names.empty() ? "none" : sink_names);
    report_topics_not_produced();
    return ok();
  }

  // The shutdown order of DESIGN.md. Idempotent.
  void shutdown() {
    if (done_) return;
    done_ = true;
    if (poller_) poller_->stop();  // last round of records reaches the bus
    if (plugins_) plugins_->stop_all();
    if (!bus_.drain()) spdlog::warn("event bus did not drain within 10 s; some events were lost");
    for (auto& s : sinks_) s->stop();  // flushes what they received
    if (plugins_) {
      plugins_->close_kernel_objects();
      plugins_->destroy_all();
    }
    self_metrics_.reset();
    sinks_.clear();
    if (plugins_) plugins_->unload_all();
    bus_.stop();
  }

  [[nodiscard]] const PluginManager* plugins() const { return plugins_.get(); }

 private:
  // What the start-up log says of topics nothing will be produced on: those nobody subscribes
  // to (muted), and those their plugin turned off, which a sink naming one exactly should hear.
  void report_topics_not_produced() const {
    const BusStats bus = bus_.stats();
    std::string muted;
    std::map<std::string_view, const TopicStats*> off;  // by name
    for (const auto& t : bus.topics) {
      if (!t.off_reason.empty()) {
        off.emplace(t.topic, &t);
      } else if (t.follows_demand && !t.wanted) {
        muted += (muted.empty() ? "" : ", ") + t.topic;
      }
    }
    for (const auto& s : bus.subscriptions) {
      for (const auto& glob : s.globs) {  // a glob without wildcards is a topic's exact name
        auto it = off.find(glob);
        if (it == off.end()) continue;
        const std::string who =
            s.owner.starts_with("sink:") ? "sink " + s.owner.substr(5) : "plugin " + s.owner;
        spdlog::warn("{} subscribes to {}, which plugin {} does not produce in this run: {}", who,
                     glob, it->second->owner, it->second->off_reason);
      }
    }
    if (!muted.empty()) {
      spdlog::info(
          "not produced, as no sink or plugin subscribes to them: {} (add them to a sink's "
          "'topics' to have them)",
          muted);
    }
  }

  const Config& config_;
  // Declaration order = reverse destruction order: the data plane outlives the plugins.
  EventBus bus_;
  MetricRegistry metrics_;
  MapRegistry maps_;
  BpfStatsGuard stats_;
  std::unique_ptr<RingbufPoller> poller_;
  std::unique_ptr<HostCore> core_;
  std::unique_ptr<PluginManager> plugins_;
  std::vector<std::unique_ptr<Sink>> sinks_;
  std::vector<Sink*> started_sinks_;
  std::unique_ptr<SelfMetrics> self_metrics_;
  bool done_ = false;
};

}  // namespace

Status run_app(const Config& config, const RunOptions& options) {
  init_logging(config.host.log_level);
  install_libbpf_logging();
  if (config.enabled_plugins().empty()) {
    return Error(ErrorKind::kConfig,
                 "no plugin is enabled; set `enabled = true` in a [plugins.NAME] table of " +
                     (config.file.empty() ? std::string("the config") : config.file.string()) +
                     " or pass --plugins NAME (see `tracehost plugins list`)");
  }
  // Fail early, before any library is opened, with the capability that is missing.
  TH_TRY(check_bpf_environment());

  // Before any thread exists: they all inherit the blocked mask.
  TH_ASSIGN_OR_RETURN(std::unique_ptr<SignalWatch> signals, SignalWatch::make());

  App app(config);
  if (Status s = app.start(); !s.ok()) {
    app.shutdown();
    return s;
  }

  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> deadline;
  if (options.duration) {
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(*options.duration);
  }
  for (;;) {
    int timeout_ms = -1;
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0) {
        spdlog::info("duration elapsed, shutting down");
        break;
      }
      timeout_ms = static_cast<int>(std::min<long long>(left, 1000));
    }
    if (int sig = signals->wait(timeout_ms); sig != 0) {
      spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      break;
    }
  }
  app.shutdown();
  spdlog::info("tracehost stopped");
  return ok();
}

}  // namespace tracehost::host
