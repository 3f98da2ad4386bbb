#include "host/ringbuf_poller.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <future>
#include <unordered_map>
#include <utility>

#include "host/logging.hpp"

namespace tracehost::host {

struct RingbufPoller::Binding {
  RingbufPoller* self = nullptr;
  bool polled = true;  // false: the producer wakes us for every record
  std::string owner;
  MapRef ring;
  MapRef drops;
  TopicId topic = 0;
  std::string topic_name;
  std::size_t slot = 0;  // index of the topic's builder in builders_
  std::atomic<std::uint64_t> records{0};
  std::atomic<std::uint64_t> events{0};
  std::atomic<std::uint64_t> kernel_drops{0};
  // staged rings
  MapRef staged;
  UniqueFd flush_prog;
  std::size_t record_size = 0;  // the topic's; 0: one event per record
  std::vector<std::byte> staged_raw;
  std::atomic<std::uint64_t> flushes{0};
  bool flush_error_logged = false;
  // demand (follow_demand): set while no subscription wants the topic
  MapRef muted;
  std::atomic<bool> idle{false};
};

namespace {
// events.bpf.h's struct th_stage_state; before plugin API 1.5 it ended after `busy`
struct StageState {
  std::uint32_t count;
  std::uint32_t busy;
  std::uint64_t first_ns;  // CLOCK_MONOTONIC (bpf_ktime_get_ns) of the first waiting event
};
constexpr std::size_t kStageStateV14 = offsetof(StageState, first_ns);

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}
}  // namespace

struct RingbufPoller::Request {
  std::function<Status()> fn;
  std::promise<Status> done;
};

Result<std::unique_ptr<RingbufPoller>> RingbufPoller::make(EventBus& bus, PollerOptions options) {
  if (options.poll_interval < std::chrono::milliseconds(1) ||
      options.poll_interval > std::chrono::milliseconds(1000)) {
    return Error(ErrorKind::kConfig,
                 "poll interval must be 1..1000 ms (host.poll_interval_ms), got " +
                     std::to_string(options.poll_interval.count()));
  }
  if (options.drops_interval < std::chrono::milliseconds(1)) {
    options.drops_interval = std::chrono::milliseconds(1000);
  }
  if (options.max_batch_events == 0) options.max_batch_events = PollerOptions{}.max_batch_events;
  auto poller = std::unique_ptr<RingbufPoller>(new RingbufPoller(bus, options));
  poller->wait_epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!poller->wait_epoll_) {
    return Error(ErrorKind::kInternal, "cannot create the ring buffer poller's epoll fd", errno);
  }
  poller->wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = poller->wake_fd_.get();
  if (!poller->wake_fd_ ||
      ::epoll_ctl(poller->wait_epoll_.get(), EPOLL_CTL_ADD, poller->wake_fd_.get(), &ev) != 0) {
    return Error(ErrorKind::kInternal, "cannot create the ring buffer poller's wakeup eventfd",
                 errno);
  }
  auto dup = std::make_shared<UniqueFd>(::fcntl(poller->wake_fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!*dup) {
    return Error(ErrorKind::kInternal, "cannot duplicate the ring buffer poller's eventfd", errno);
  }
  poller->demand_wake_fd_ = std::move(dup);
  return poller;
}

RingbufPoller::RingbufPoller(EventBus& bus, PollerOptions options) : bus_(bus), options_(options) {}

RingbufPoller::~RingbufPoller() {
  stop();
  if (ring_ != nullptr) ring_buffer__free(ring_);
}

bool RingbufPoller::running() const noexcept {
  std::lock_guard lock(mu_);
  return running_;
}

Status RingbufPoller::submit(std::function<Status()> fn) {
  std::unique_lock ops(ops_mu_);
  if (!running_flag_) return fn();  // stopped: we own ring_ and bindings_ under ops_mu_
  auto req = std::make_shared<Request>();
  req->fn = std::move(fn);
  auto fut = req->done.get_future();
  {
    std::lock_guard lock(mu_);
    requests_.push_back(req);
  }
  cv_.notify_all();
  wake();
  ops.unlock();
  return fut.get();
}

void RingbufPoller::wake() {
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

Status RingbufPoller::add_staged(std::string_view owner, MapRef ringbuf, TopicId topic,
                                 MapRef drops, MapRef staged, int flush_prog, MapRef muted) {
  if (!ringbuf) return Error(ErrorKind::kInvalidArgument, "bind ring buffer: no map");
  if (!staged) {
    return Error(ErrorKind::kEvent, "staged ring buffer '" + ringbuf->name() +
                                        "' has no '_staged' map (declare it with "
                                        "TH_STAGED_RINGBUF, bpf/include/tracehost/events.bpf.h)");
  }
  const auto& st = staged->info();
  if (st.type != BPF_MAP_TYPE_PERCPU_ARRAY || st.key_size != 4 ||
      (st.value_size != sizeof(StageState) && st.value_size != kStageStateV14)) {
    return Error(ErrorKind::kMap, "stage counter map '" + st.name +
                                      "' must be a per-CPU array with a u32 key and a "
                                      "struct th_stage_state value (TH_STAGED_RINGBUF)");
  }
  auto schema = bus_.schema(topic);
  if (!schema) {
    return Error(ErrorKind::kEvent, "bind ring buffer '" + ringbuf->name() + "': topic id " +
                                        std::to_string(topic) + " is not registered");
  }
  UniqueFd prog(::fcntl(flush_prog, F_DUPFD_CLOEXEC, 0));
  if (!prog) {
    return Error(ErrorKind::kEvent,
                 "staged ring buffer '" + ringbuf->name() + "': no usable flush program", errno);
  }
  return add_binding(owner, std::move(ringbuf), topic, std::move(drops), false, std::move(muted),
                     [&](Binding& b) {
                       b.staged = std::move(staged);
                       b.flush_prog = std::move(prog);
                       b.record_size = schema->c().record_size;
                       b.staged_raw.resize(b.staged->info().raw_value_size());
                     });
}

Status RingbufPoller::add(std::string_view owner, MapRef ringbuf, TopicId topic, MapRef drops,
                          bool producer_wakes, MapRef muted) {
  return add_binding(owner, std::move(ringbuf), topic, std::move(drops), producer_wakes,
                     std::move(muted), {});
}

Status RingbufPoller::add_binding(std::string_view owner, MapRef ringbuf, TopicId topic,
                                  MapRef drops, bool producer_wakes, MapRef muted,
                                  const std::function<void(Binding&)>& extra) {
  if (!ringbuf) return Error(ErrorKind::kInvalidArgument, "bind ring buffer: no map");
  const auto& info = ringbuf->info();
  if (info.type != BPF_MAP_TYPE_RINGBUF) {
    return Error(ErrorKind::kEvent,
                 "map '" + info.name + "' is not a BPF_MAP_TYPE_RINGBUF map (type " +
                     std::to_string(info.type) + "); only ring buffers can be bound to a topic");
  }
  auto schema = bus_.schema(topic);
  if (!schema) {
    return Error(ErrorKind::kEvent, "bind ring buffer '" + info.name + "': topic id " +
                                        std::to_string(topic) + " is not registered");
  }
  if (drops) {
    const auto& d = drops->info();
    if ((d.type != BPF_MAP_TYPE_PERCPU_ARRAY && d.type != BPF_MAP_TYPE_ARRAY) || d.key_size != 4 ||
        d.value_size != 8) {
      return Error(ErrorKind::kMap, "drop counter map '" + d.name +
                                        "' must be a per-CPU array with a u32 key and one u64 "
                                        "value (see bpf/include/tracehost/events.bpf.h)");
    }
  }
  auto b = std::make_shared<Binding>();
  b->self = this;
  b->owner = std::string(owner);
  b->ring = std::move(ringbuf);
  b->drops = std::move(drops);
  b->topic = topic;
  b->topic_name = std::string(schema->topic());
  b->polled = !producer_wakes;
  if (muted) {
    const auto& m = muted->info();
    if (m.type != BPF_MAP_TYPE_ARRAY || m.key_size != 4 || m.value_size != 4 || m.max_entries < 1) {
      return Error(ErrorKind::kEvent,
                   m.name +
                       " must be an array of one u32 (the host mutes the ring through it; "
                       "TH_RINGBUF in events.bpf.h defines it): found type " +
                       std::to_string(m.type) + ", key " + std::to_string(m.key_size) +
                       " bytes, value " + std::to_string(m.value_size) + " bytes, " +
                       std::to_string(m.max_entries) + " entries");
    }
    b->muted = std::move(muted);
  }
  if (extra) extra(*b);
  TH_TRY(submit([this, b]() mutable { return apply_add(b); }));
  return b->muted ? follow_demand(b) : ok();
}

Status RingbufPoller::follow_demand(const std::shared_ptr<Binding>& binding) {
  // The bus may outlive the binding and us: a weak reference to the binding (once it is unbound
  // the listener does nothing) and a duplicate of the eventfd (still open if we are gone while
  // it runs).
  std::weak_ptr<Binding> weak = binding;
  return bus_.add_demand_listener(binding->topic, [weak, wake = demand_wake_fd_](bool wanted) {
    auto b = weak.lock();
    if (!b) return;
    const std::uint32_t key = 0;
    const std::uint32_t value = wanted ? 0 : 1;
    if (Status st = b->muted->update_value(key, value); !st.ok()) {
      // the ring keeps its last state: producing for nobody, or silent for a subscriber
      component_logger("poller")->warn("cannot {} {}: {}", wanted ? "unmute" : "mute",
                                       b->muted->name(), st.error().message());
    }
    b->idle.store(!wanted, std::memory_order_relaxed);
    if (wanted) {
      const std::uint64_t one = 1;  // poll again from now on, not at the next drops read
      (void)!::write(wake->get(), &one, sizeof(one));
    }
  });
}

void RingbufPoller::remove_owner(std::string_view owner) {
  std::string o(owner);
  (void)submit([this, o] {
    apply_remove(o);
    return ok();
  });
}

Status RingbufPoller::apply_add(std::shared_ptr<Binding> binding) {
  for (const auto& b : bindings_) {
    if (b->ring->name() == binding->ring->name()) {
      return Error(ErrorKind::kEvent, "ring buffer '" + binding->ring->name() +
                                          "' is already bound to topic '" + b->topic_name + "'");
    }
  }
  const int fd = binding->ring->fd();
  if (ring_ == nullptr) {
    ring_ = ring_buffer__new(fd, &RingbufPoller::on_sample, binding.get(), nullptr);
    if (ring_ == nullptr) {
      return Error(ErrorKind::kEvent,
                   "cannot set up polling of ring buffer '" + binding->ring->name() + "'", errno);
    }
  } else if (int rc = ring_buffer__add(ring_, fd, &RingbufPoller::on_sample, binding.get());
             rc != 0) {
    return Error(ErrorKind::kEvent,
                 "cannot add ring buffer '" + binding->ring->name() + "' to the poller", -rc);
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.fd = fd;
  // EEXIST: re-added after a rebuild (apply_remove keeps the other owners' rings registered)
  if (::epoll_ctl(wait_epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST) {
    return Error(ErrorKind::kEvent,
                 "cannot watch ring buffer '" + binding->ring->name() + "' for wakeups", errno);
  }
  bindings_.push_back(std::move(binding));
  assign_slots();
  return ok();
}

void RingbufPoller::assign_slots() {
  // One builder per topic, so two ring buffers feeding one topic still make one batch a round.
  std::unordered_map<TopicId, std::size_t> slot_of;
  std::vector<BatchBuilder> fresh;
  for (auto& b : bindings_) {
    auto [it, inserted] = slot_of.try_emplace(b->topic, fresh.size());
    if (inserted) fresh.emplace_back(b->topic);
    b->slot = it->second;
  }
  // Builders hold no records between rounds (publish_all ran), so replacing them loses nothing.
  builders_ = std::move(fresh);
  std::lock_guard lock(mu_);
  visible_ = bindings_;
}

void RingbufPoller::apply_remove(const std::string& owner) {
  if (std::none_of(bindings_.begin(), bindings_.end(),
                   [&](const auto& b) { return b->owner == owner; })) {
    return;
  }
  // Take what is still in the rings, then rebuild without the owner's maps: libbpf has no
  // ring_buffer__remove.
  round(0, /*drain_stages=*/true);
  read_drops();
  for (const auto& b : bindings_) {
    if (b->owner == owner) ::epoll_ctl(wait_epoll_.get(), EPOLL_CTL_DEL, b->ring->fd(), nullptr);
  }
  bindings_.erase(std::remove_if(bindings_.begin(), bindings_.end(),
                                 [&](const auto& b) { return b->owner == owner; }),
                  bindings_.end());
  if (ring_ != nullptr) {
    ring_buffer__free(ring_);
    ring_ = nullptr;
  }
  std::vector<std::shared_ptr<Binding>> keep = std::move(bindings_);
  bindings_.clear();
  for (auto& b : keep) {
    if (auto st = apply_add(b); !st.ok()) {
      component_logger("poller")->error("re-adding ring buffer '{}' after unbinding '{}': {}",
                                        b->ring->name(), owner, st.error().describe());
    }
  }
  assign_slots();
}

int RingbufPoller::on_sample(void* ctx, void* data, std::size_t size) {
  auto* b = static_cast<Binding*>(ctx);
  RingbufPoller* self = b->self;
  BatchBuilder& builder = self->builders_[b->slot];
  b->records.fetch_add(1, std::memory_order_relaxed);
  std::size_t n = 1;
  if (b->record_size != 0 && size > b->record_size) {
    // a staged record: events of record_size back to back; a remainder is malformed (the bus
    // counts a short record as such)
    n = size / b->record_size;
    const auto* p = static_cast<const std::byte*>(data);
    for (std::size_t i = 0; i < n; ++i) builder.append(p + i * b->record_size, b->record_size);
    if (std::size_t rest = size % b->record_size; rest != 0) {
      builder.append(p + n * b->record_size, rest);
      ++n;
    }
  } else {
    builder.append(data, size);
  }
  b->events.fetch_add(n, std::memory_order_relaxed);
  if (builder.size() >= self->options_.max_batch_events) self->bus_.publish_batch(builder);
  return 0;
}

void RingbufPoller::flush_stages(bool all) {
  // A stage younger than this fills on its own often enough: flushing it would only interrupt
  // its CPU (and wait for it) to save a fraction of a poll interval.
  const auto min_age = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.poll_interval).count() / 2);
  const std::uint64_t now = monotonic_ns();
  for (const auto& b : bindings_) {
    if (!b->staged) continue;
    const std::uint32_t zero = 0;
    if (!b->staged->lookup(std::as_bytes(std::span(&zero, 1)), b->staged_raw, PerCpu::kRaw).ok()) {
      continue;
    }
    const std::uint32_t ncpus = b->staged->info().ncpus;
    const std::size_t stride = b->staged_raw.size() / ncpus;  // values are 8-byte aligned
    const bool dated = b->staged->info().value_size >= sizeof(StageState);
    for (std::uint32_t cpu = 0; cpu < ncpus; ++cpu) {
      StageState st{};
      std::memcpy(&st, b->staged_raw.data() + cpu * stride,
                  dated ? sizeof(StageState) : kStageStateV14);
      if (st.count == 0) continue;
      if (!all && dated && now - st.first_ns < min_age) continue;
      LIBBPF_OPTS(bpf_test_run_opts, opts, .flags = BPF_F_TEST_RUN_ON_CPU, .cpu = cpu);
      if (int rc = bpf_prog_test_run_opts(b->flush_prog.get(), &opts); rc != 0) {
        if (!b->flush_error_logged) {
          component_logger("poller")->error(
              "flushing the stage of ring buffer '{}' on CPU {} failed: {}; its staged events "
              "arrive only when a stage fills",
              b->ring->name(), cpu, std::strerror(-rc));
          b->flush_error_logged = true;
        }
        continue;
      }
      b->flushes.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void RingbufPoller::publish_all() {
  for (auto& builder : builders_) {
    if (!builder.empty()) bus_.publish_batch(builder);
  }
}

void RingbufPoller::round(int timeout_ms, bool drain_stages) {
  if (ring_ == nullptr) return;
  int rc = 0;
  if (timeout_ms > 0) {
    // Sleep until a forced wakeup or the poll interval: records submitted with
    // BPF_RB_NO_WAKEUP raise no event, the consume below takes them either way.
    epoll_event events[8];
    const int n = ::epoll_wait(wait_epoll_.get(), events, 8, timeout_ms);
    if (n < 0 && errno != EINTR) rc = -errno;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == wake_fd_.get()) {
        std::uint64_t count = 0;
        (void)!::read(wake_fd_.get(), &count, sizeof(count));
      }
    }
  }
  if (rc == 0) {
    flush_stages(drain_stages);
    rc = ring_buffer__consume(ring_);
  }
  if (rc < 0 && rc != -EINTR && !poll_error_logged_) {
    component_logger("poller")->error("polling ring buffers failed: {}", std::strerror(-rc));
    poll_error_logged_ = true;
  }
  publish_all();
}

void RingbufPoller::read_drops() {
  for (const auto& b : bindings_) {
    if (!b->drops) continue;
    std::uint32_t key = 0;
    std::uint64_t total = 0;
    if (!b->drops->lookup_value(key, total).ok()) continue;
    std::uint64_t last = b->kernel_drops.exchange(total, std::memory_order_relaxed);
    // A counter that went backwards was recreated: count its whole value.
    bus_.add_kernel_drops(b->topic, total >= last ? total - last : total);
  }
}

Status RingbufPoller::start() {
  std::lock_guard ops(ops_mu_);
  if (running_flag_) return ok();
  {
    std::lock_guard lock(mu_);
    stop_requested_ = false;
    running_ = true;
  }
  running_flag_ = true;
  next_drops_read_ = std::chrono::steady_clock::now() + options_.drops_interval;
  thread_ = std::thread([this] { run(); });
  return ok();
}

int RingbufPoller::next_timeout_ms() const {
  const bool any_polled = std::any_of(bindings_.begin(), bindings_.end(), [](const auto& b) {
    return b->polled && !b->idle.load(std::memory_order_relaxed);
  });
  if (any_polled) return static_cast<int>(options_.poll_interval.count());
  const auto until_drops = std::chrono::duration_cast<std::chrono::milliseconds>(
      next_drops_read_ - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<std::int64_t>(1, until_drops.count()));
}

void RingbufPoller::run() {
  auto serve_requests = [this] {
    std::vector<std::shared_ptr<Request>> reqs;
    {
      std::lock_guard lock(mu_);
      reqs.swap(requests_);
    }
    for (auto& r : reqs) {
      try {
        r->done.set_value(r->fn());
      } catch (const std::exception& e) {
        r->done.set_value(Error(ErrorKind::kInternal, e.what()));
      }
    }
  };
  for (;;) {
    serve_requests();
    {
      std::unique_lock lock(mu_);
      if (stop_requested_) break;
      if (ring_ == nullptr) {
        // Nothing bound: sleep until a request (a ring being added) or stop. No timeout: a
        // host whose plugins bind no ring (every event stream off) must not wake up on a
        // timer, which costs the traced workload on a 2-vCPU VM (docs/performance.md §5).
        cv_.wait(lock, [this] { return stop_requested_ || !requests_.empty(); });
        continue;
      }
    }
    round(next_timeout_ms());
    if (std::chrono::steady_clock::now() >= next_drops_read_) {
      read_drops();
      next_drops_read_ = std::chrono::steady_clock::now() + options_.drops_interval;
    }
  }
  // Last round: whatever the BPF side submitted before the App stopped us.
  round(0, /*drain_stages=*/true);
  read_drops();
  serve_requests();
}

void RingbufPoller::stop() {
  std::lock_guard ops(ops_mu_);
  if (!running_flag_) return;
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
  }
  cv_.notify_all();
  wake();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(mu_);
    running_ = false;
  }
  running_flag_ = false;
}

std::vector<RingbufStats> RingbufPoller::stats() const {
  std::vector<std::shared_ptr<Binding>> bs;
  {
    std::lock_guard lock(mu_);
    bs = visible_;
  }
  std::vector<RingbufStats> out;
  out.reserve(bs.size());
  for (const auto& b : bs) {
    RingbufStats s;
    s.owner = b->owner;
    s.map = b->ring->name();
    s.topic = b->topic_name;
    s.records = b->records.load(std::memory_order_relaxed);
    s.kernel_drops = b->kernel_drops.load(std::memory_order_relaxed);
    s.has_drops_map = b->drops != nullptr;
    s.staged = b->staged != nullptr;
    s.muted = b->idle.load(std::memory_order_relaxed);
    s.events = b->events.load(std::memory_order_relaxed);
    s.flushes = b->flushes.load(std::memory_order_relaxed);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace tracehost::host
