// The event bus: topics with host-owned copies of their schemas, and per-subscriber bounded
// queues drained by one dispatch thread per subscriber.
//
// The fast path (ring buffer poller → bus → sinks) runs no plugin code and allocates nothing
// per event: the poller copies the records of one poll round into a BatchBuilder (one contiguous
// arena per topic), publish_batch() turns it into one immutable, reference-counted Batch, and
// every matching subscriber's queue receives a {batch, range} entry pointing at it.
//
// Threads: every public member is thread-safe. Callbacks run on the subscription's own dispatch
// thread, never on the publisher's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost::host {

using TopicId = std::uint32_t;         // 0 is never a valid id
using SubscriptionId = std::uint64_t;  // same space as th_subscription_id; 0 is never valid

// A topic's schema, deep-copied: every string, field and enum table is owned here, so a plugin's
// static data may go away (library unloaded) while batches referring to the topic still live.
class OwnedSchema {
 public:
  explicit OwnedSchema(const th_event_schema& schema);
  OwnedSchema(const OwnedSchema&) = delete;
  OwnedSchema& operator=(const OwnedSchema&) = delete;

  [[nodiscard]] const th_event_schema& c() const noexcept { return schema_; }
  [[nodiscard]] std::string_view topic() const noexcept { return topic_; }
  [[nodiscard]] std::span<const th_field> fields() const noexcept { return fields_; }
  // nullptr when absent
  [[nodiscard]] const th_field* field(std::string_view name) const noexcept;

 private:
  std::string topic_;
  std::string doc_;
  std::deque<std::string> strings_;  // deque: stable addresses for the c_str() in fields_
  std::vector<std::vector<th_enum_entry>> enums_;
  std::vector<th_field> fields_;
  th_event_schema schema_{};
};

// Checks a schema a plugin hands in: topic name, record size, field types/offsets/sizes inside
// record_size, enum tables, aux fields. kEvent errors name the topic and the field.
Status validate_schema(const th_event_schema& schema);

// Records of one poll round (or one publish) for one topic, immutable once published.
// Events point into `arena`; `events[i].data` stays valid while the batch lives.
struct Batch {
  std::shared_ptr<const OwnedSchema> schema;
  TopicId topic = 0;
  std::unique_ptr<std::byte[]> arena;
  std::vector<th_event> events;
};

// Accumulates records for one topic without per-event allocation (the arena grows
// geometrically and is reused by reset()). Not thread-safe: one builder per producer thread.
class BatchBuilder {
 public:
  BatchBuilder() = default;
  explicit BatchBuilder(TopicId topic) : topic_(topic) {}

  void set_topic(TopicId topic) noexcept { topic_ = topic; }
  [[nodiscard]] TopicId topic() const noexcept { return topic_; }
  // Copies the record. Records are 8-byte aligned inside the arena.
  void append(const void* data, std::size_t size);
  [[nodiscard]] std::size_t size() const noexcept { return offsets_.size(); }
  [[nodiscard]] bool empty() const noexcept { return offsets_.empty(); }
  [[nodiscard]] std::size_t bytes() const noexcept { return used_; }
  void clear() noexcept;

 private:
  friend class EventBus;
  struct Span {
    std::uint32_t offset;
    std::uint32_t size;
  };
  TopicId topic_ = 0;
  std::unique_ptr<std::byte[]> arena_;  // uninitialised storage: no zeroing per batch
  std::size_t capacity_ = 0;
  std::size_t used_ = 0;
  std::size_t hint_ = 0;  // size of the last published arena: the next one starts that big
  std::vector<Span> offsets_;
};

enum class OverflowPolicy {
  kDropNewest,  // a full queue refuses new events and counts them as dropped (default)
  kBlock,       // the publisher waits for room (only for subscribers that must see everything)
};

struct SubscribeOptions {
  std::string name;                    // label in stats/metrics, e.g. "json" or "plugin:foo"
  std::size_t queue_capacity = 65536;  // events queued before overflow applies
  std::size_t max_batch = 4096;        // most events handed to one callback call
  OverflowPolicy overflow = OverflowPolicy::kDropNewest;
  // A passive subscription receives what flows but does not ask for it: a topic whose producer
  // follows demand (add_demand_listener) stays off while only passive subscriptions match it.
  // The console sink counts events this way.
  bool passive = false;
};

// Told whether a topic is wanted: true while at least one non-passive subscription matches it.
// Called under the bus lock: it must be quick and must not call back into the bus.
using DemandListener = std::function<void(bool wanted)>;

// Called on the subscription's dispatch thread with >= 1 events of ONE topic. The span and the
// data it points to are valid only during the call.
using BatchCallback = std::function<void(std::span<const th_event> events)>;

struct TopicStats {
  TopicId id = 0;
  std::string topic;
  std::string owner;
  std::uint64_t published = 0;     // accepted onto the bus
  std::uint64_t kernel_drops = 0;  // reported by the poller from "<map>_drops"
  std::uint64_t malformed = 0;     // shorter than record_size: refused
  bool follows_demand = false;     // its producer is off while nobody wants it (a listener)
  bool wanted = false;             // a non-passive subscription matches it
  std::string off_reason;          // not empty: its owner does not produce it (set_off)
};

struct SubscriberTopicStats {
  std::string topic;
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;  // queue full (drop_newest) or subscription closed
};

struct SubscriptionStats {
  SubscriptionId id = 0;
  std::string owner;
  std::string name;
  std::vector<std::string> globs;
  std::size_t queued = 0;  // events waiting now
  std::vector<SubscriberTopicStats> per_topic;
};

struct BusStats {
  std::vector<TopicStats> topics;                // by topic name
  std::vector<SubscriptionStats> subscriptions;  // by id
};

// "*" matches any run of characters (including '.'), "?" one character; everything else is
// literal. "syscall.*" matches "syscall.exec"; "*" matches everything.
bool glob_match(std::string_view glob, std::string_view text) noexcept;

class EventBus {
 public:
  EventBus();
  ~EventBus();  // stop()
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // Registers a topic owned by `owner` (a plugin name, or "host"). The schema is validated and
  // deep-copied. A duplicate topic name is a kEvent error naming the current owner.
  Result<TopicId> register_topic(std::string_view owner, const th_event_schema& schema);
  [[nodiscard]] std::optional<TopicId> find_topic(std::string_view topic) const;
  // nullptr for an unknown id. The pointer stays valid while the returned shared_ptr lives.
  [[nodiscard]] std::shared_ptr<const OwnedSchema> schema(TopicId topic) const;
  [[nodiscard]] std::string owner_of(TopicId topic) const;
  [[nodiscard]] std::vector<std::string> topics() const;

  // Publishes one record from user space (copied). kEvent error on unknown topic or a record
  // shorter than record_size (also counted as malformed).
  Status publish(TopicId topic, std::span<const std::byte> record);
  Status publish(std::string_view topic, std::span<const std::byte> record);

  // The poller's fast path: hands the builder's records to every matching subscriber as one
  // shared batch and leaves the builder empty (its arena is given away; the next append
  // allocates a fresh one). Short records are counted as malformed and skipped. Time stamps
  // every event with CLOCK_REALTIME now. Returns the number of events accepted.
  std::size_t publish_batch(BatchBuilder& builder);

  // Kernel-side drops for a topic (the poller reports deltas of "<map>_drops").
  void add_kernel_drops(TopicId topic, std::uint64_t delta);

  // Demand: `listener` is called at once with whether the topic is wanted, and again whenever
  // that changes (subscribe, unsubscribe), until the topic is removed. The ring buffer binding
  // uses it to mute a BPF producer nobody listens to ("<map>_muted", events.bpf.h).
  Status add_demand_listener(TopicId topic, DemandListener listener);
  [[nodiscard]] bool wanted(TopicId topic) const;

  // Marks a topic as not produced in this run, for `reason` (its owner's config turned it off,
  // say); an empty reason marks it produced again. Only what stats() reports changes.
  Status set_off(TopicId topic, std::string reason);

  // Subscribes `callback` to every topic matching `glob`, including topics registered later.
  // The dispatch thread starts immediately.
  Result<SubscriptionId> subscribe(std::string_view owner, std::string_view glob,
                                   BatchCallback callback, SubscribeOptions options = {});
  // Same with several globs: a topic matching any of them is delivered once.
  Result<SubscriptionId> subscribe(std::string_view owner, std::span<const std::string> globs,
                                   BatchCallback callback, SubscribeOptions options = {});
  // Stops delivery, discards queued events (counted as dropped) and waits until the callback is
  // no longer running. Called from the subscription's own callback it cannot wait: it then
  // returns at once and the thread exits after the callback returns.
  Status unsubscribe(SubscriptionId id);
  // Unsubscribes every subscription of `owner`, then removes every topic it registered.
  // Batches already queued for other subscribers keep their (owned) schema alive.
  void remove_owner(std::string_view owner);
  void unsubscribe_owner(std::string_view owner);

  // Waits until every queue is empty and no callback is running (events published meanwhile
  // are waited for too). Returns false on timeout.
  bool drain(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  // Unsubscribes everything (after a drain if you want queued events delivered). Idempotent.
  void stop();

  [[nodiscard]] BusStats stats() const;

 private:
  struct Topic;
  struct Subscriber;
  using SubscriberList = std::vector<std::shared_ptr<Subscriber>>;

  void dispatch_loop(const std::shared_ptr<Subscriber>& sub);
  void close_subscriber(const std::shared_ptr<Subscriber>& sub);
  void rebuild_topic_subscribers_locked(Topic& topic);
  // Recomputes topic.wanted from its subscribers and tells the listeners when it changed.
  static void update_demand_locked(Topic& topic);

  mutable std::shared_mutex mu_;
  std::unordered_map<TopicId, std::shared_ptr<Topic>> topics_;
  std::unordered_map<std::string, TopicId> topic_by_name_;
  std::unordered_map<SubscriptionId, std::shared_ptr<Subscriber>> subscribers_;
  TopicId next_topic_ = 1;
  SubscriptionId next_subscription_ = 1;
  bool stopped_ = false;
};

}  // namespace tracehost::host
