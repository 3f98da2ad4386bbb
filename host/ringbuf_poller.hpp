// RingbufPoller: one thread draining every bound BPF ring buffer onto the event bus.
//
// One libbpf `ring_buffer` holds every bound map. Each round is ring_buffer__poll(poll_interval)
// followed by ring_buffer__consume(), so records the BPF side submitted with BPF_RB_NO_WAKEUP
// (no epoll wakeup) still reach the bus within about one poll interval. The records of one round
// become one batch per topic (EventBus::publish_batch): no plugin code and no allocation per
// event.
//
// Rings bound with producer_wakes (TH_RINGBUF_PRODUCER_WAKES: the BPF side commits every record
// with a wakeup) need no polling: when every bound ring is such, a round sleeps until a record
// arrives, a request comes (add/remove/stop write an eventfd) or the next drops read is due, so an
// idle host with only rare-event rings wakes once per drops_interval instead of every poll
// interval.
//
// Staged rings (TH_RINGBUF_STAGED, events.bpf.h's TH_STAGED_RINGBUF): the BPF side gathers
// events in a per-CPU stage and commits them several to a record. Such a record is split into
// events of the topic's record_size (a size that is not a multiple of it is malformed). Before
// each round's consume the poller reads "<map>_staged" (per CPU: events waiting, and since when)
// and runs the object's "<map>_flush" program (BPF_PROG_TEST_RUN on that CPU: an interrupt
// there, which the call waits for) on each CPU whose stage has held events for half a poll
// interval or more, so staged events reach the bus within about 1.5 poll intervals. A stage
// that fills sooner on its own, and an idle CPU, are not disturbed. The last round at stop, and
// a removal, flush every stage that holds events. A stage state without the time (plugin API
// 1.4) is flushed whenever it holds events, as then.
//
// Demand: a ring bound with its "<map>_muted" map (TH_RINGBUF) follows its topic's demand
// (EventBus::add_demand_listener): while no non-passive subscription wants the topic the map
// holds 1, so the BPF side produces nothing, and the ring is not polled either, as if it were a
// producer_wakes ring (a stage or records left from before the mute still come out at the next
// drops read). The first subscription clears the map and wakes the poll thread.
//
// Kernel drops: a ring buffer may come with its "<map>_drops" map (per-CPU array, one u64 entry,
// incremented by the BPF side when bpf_ringbuf_reserve fails). It is read every drops_interval
// and the increase is reported with EventBus::add_kernel_drops; a final read happens at stop().
//
// Lifecycle: add() works before start() and while running (the poll thread applies it between
// rounds; add() waits for that, ≤ one poll interval). remove_owner() likewise; libbpf cannot
// remove a ring from a ring_buffer, so removal rebuilds it. The maps are held by MapRef, so
// their fds stay valid as long as a binding exists. The App stops the poller before stopping
// plugins; stop() publishes the last round and returns.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "host/event_bus.hpp"
#include "host/map_registry.hpp"
#include "host/unique_fd.hpp"
#include "tracehost/result.hpp"

struct ring_buffer;

namespace tracehost::host {

struct PollerOptions {
  std::chrono::milliseconds poll_interval{10};     // [host] poll_interval_ms
  std::chrono::milliseconds drops_interval{1000};  // how often "<map>_drops" is read
  // A topic's batch is published early when it reaches this many events within one round, which
  // bounds memory and latency when a ring buffer is very busy.
  std::size_t max_batch_events = 16384;
};

struct RingbufStats {
  std::string owner;
  std::string map;  // "plugin/map"
  std::string topic;
  std::uint64_t records = 0;       // taken from the ring buffer
  std::uint64_t kernel_drops = 0;  // last value read from "<map>_drops" (sum over CPUs)
  bool has_drops_map = false;
  bool staged = false;
  bool muted = false;         // follows demand and nobody wants its topic: produces nothing
  std::uint64_t events = 0;   // events published from those records (records > 1 when staged)
  std::uint64_t flushes = 0;  // "<map>_flush" runs (staged rings)
};

class RingbufPoller {
 public:
  static Result<std::unique_ptr<RingbufPoller>> make(EventBus& bus, PollerOptions options = {});
  ~RingbufPoller();  // stop()
  RingbufPoller(const RingbufPoller&) = delete;
  RingbufPoller& operator=(const RingbufPoller&) = delete;

  // Binds a BPF_MAP_TYPE_RINGBUF map to a registered topic. `drops` (may be null) is the
  // "<map>_drops" per-CPU array with one u64 entry; find it in the MapRegistry as
  // "<owner>/<map>_drops". Errors (kEvent/kMap) name the map and say what is wrong with it.
  // producer_wakes: the BPF side wakes the poller for every record (see above). `muted`: the
  // ring's "<map>_muted" (an array of one u32), or null for a ring that ignores demand.
  Status add(std::string_view owner, MapRef ringbuf, TopicId topic, MapRef drops = nullptr,
             bool producer_wakes = false, MapRef muted = nullptr);
  // Binds a staged ring (see above): `staged` is "<map>_staged" (per-CPU array, one
  // struct th_stage_state of 16 bytes, or 8 from API 1.4), `flush_prog` the fd of "<map>_flush"
  // (duplicated here).
  Status add_staged(std::string_view owner, MapRef ringbuf, TopicId topic, MapRef drops,
                    MapRef staged, int flush_prog, MapRef muted = nullptr);
  // Unbinds every ring buffer of `owner` (records still in them are consumed first).
  void remove_owner(std::string_view owner);

  Status start();
  // Runs a last poll round, a last drops read, publishes, and joins the thread. Idempotent.
  void stop();

  [[nodiscard]] bool running() const noexcept;
  [[nodiscard]] std::vector<RingbufStats> stats() const;
  [[nodiscard]] const PollerOptions& options() const noexcept { return options_; }

 private:
  struct Binding;
  struct Request;

  RingbufPoller(EventBus& bus, PollerOptions options);
  void run();
  // Poll-thread (or stopped-state) operations; ring_ and bindings_ belong to whoever runs them.
  Status add_binding(std::string_view owner, MapRef ringbuf, TopicId topic, MapRef drops,
                     bool producer_wakes, MapRef muted, const std::function<void(Binding&)>& extra);
  // Makes `binding` follow its topic's demand through its mute map (see above).
  Status follow_demand(const std::shared_ptr<Binding>& binding);
  Status apply_add(std::shared_ptr<Binding> binding);
  void apply_remove(const std::string& owner);
  Status rebuild_ring();
  // drain_stages: flush every stage holding events (the last round, a removal), not only those
  // older than half a poll interval.
  void round(int timeout_ms, bool drain_stages = false);
  // The sleep of the next round: the poll interval while any bound ring needs polling, else
  // until the next drops read.
  [[nodiscard]] int next_timeout_ms() const;
  void wake();  // interrupts the poll thread's sleep
  void publish_all();
  void assign_slots();
  void read_drops();
  void flush_stages(bool all);
  // Runs `fn` on the poll thread when running, else here; returns its status.
  Status submit(std::function<Status()> fn);
  static int on_sample(void* ctx, void* data, std::size_t size);

  EventBus& bus_;
  PollerOptions options_;
  ::ring_buffer* ring_ = nullptr;  // owned; freed with ring_buffer__free
  // Edge-triggered epoll over the ring fds, used to sleep between rounds. libbpf's own epoll is
  // level-triggered: while records flow it reports ready at once, so ring_buffer__poll() would
  // spin in rounds of a few records. Edge-triggered, a round ends in a sleep until the BPF side
  // forces a wakeup (ring past its fill threshold) or the poll interval passes.
  UniqueFd wait_epoll_;
  UniqueFd wake_fd_;  // eventfd in wait_epoll_: requests and stop() interrupt a long sleep
  // a duplicate of wake_fd_ for demand listeners, which the bus may call after we are gone
  std::shared_ptr<const UniqueFd> demand_wake_fd_;
  std::vector<std::shared_ptr<Binding>> bindings_;  // owned by the poll thread while running
  std::vector<BatchBuilder> builders_;              // one per bound topic slot
  std::chrono::steady_clock::time_point next_drops_read_{};
  bool poll_error_logged_ = false;

  // Serialises add/remove/start/stop: while stopped, add/remove run on the caller's thread under
  // it; running_flag_ only changes under it.
  std::mutex ops_mu_;
  bool running_flag_ = false;

  mutable std::mutex mu_;  // guards requests_, running_, stop_requested_, stats copies
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Request>> requests_;
  std::vector<std::shared_ptr<Binding>> visible_;  // copy of bindings_ for stats()
  bool running_ = false;
  bool stop_requested_ = false;
  std::thread thread_;
};

}  // namespace tracehost::host
