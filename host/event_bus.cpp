#include "host/event_bus.hpp"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <set>
#include <utility>

#include "host/logging.hpp"

namespace tracehost::host {

namespace {

// Reads a C struct that starts with struct_size, as the other party compiled it: fields past its
// struct_size read as zero, fields we don't know are ignored.
template <typename T>
T read_prefix(const void* p) {
  T out{};
  std::uint32_t declared = 0;
  std::memcpy(&declared, p, sizeof(declared));
  std::size_t n = declared == 0 || declared > sizeof(T) ? sizeof(T) : declared;
  std::memcpy(&out, p, n);
  return out;
}

// Arrays of structs are laid out with the plugin's sizeof, which is the first element's
// struct_size (0: assume ours).
template <typename T>
std::size_t stride_of(const T* first) {
  std::uint32_t declared = 0;
  std::memcpy(&declared, first, sizeof(declared));
  return declared == 0 ? sizeof(T) : declared;
}

std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

bool valid_topic_name(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

bool is_int_size(std::uint32_t s) { return s == 1 || s == 2 || s == 4 || s == 8; }

Error schema_error(std::string_view topic, std::string msg) {
  return Error(ErrorKind::kEvent, "event schema '" + std::string(topic) + "': " + std::move(msg));
}

}  // namespace

// ---- OwnedSchema -------------------------------------------------------------------------------

OwnedSchema::OwnedSchema(const th_event_schema& in) {
  th_event_schema s = read_prefix<th_event_schema>(&in);
  topic_ = s.topic != nullptr ? s.topic : "";
  doc_ = s.doc != nullptr ? s.doc : "";
  auto keep = [this](const char* str) -> const char* {
    if (str == nullptr) return nullptr;
    return strings_.emplace_back(str).c_str();
  };
  if (s.fields != nullptr && s.field_count > 0) {
    const std::size_t stride = stride_of(s.fields);
    const auto* base = reinterpret_cast<const unsigned char*>(s.fields);
    fields_.reserve(s.field_count);
    enums_.reserve(s.field_count);
    for (std::size_t i = 0; i < s.field_count; ++i) {
      th_field f = read_prefix<th_field>(base + i * stride);
      f.struct_size = sizeof(th_field);
      f.name = keep(f.name);
      f.doc = keep(f.doc);
      f.aux_field = keep(f.aux_field);
      auto& table = enums_.emplace_back();
      if (f.enum_entries != nullptr) {
        table.reserve(f.enum_count);
        for (std::size_t e = 0; e < f.enum_count; ++e) {
          table.push_back({f.enum_entries[e].value, keep(f.enum_entries[e].name)});
        }
      }
      // Sorted by value: dense tables (syscall numbers) can then be indexed directly.
      std::stable_sort(
          table.begin(), table.end(),
          [](const th_enum_entry& a, const th_enum_entry& b) { return a.value < b.value; });
      f.enum_entries = table.empty() ? nullptr : table.data();
      f.enum_count = table.size();
      fields_.push_back(f);
    }
  }
  schema_.struct_size = sizeof(th_event_schema);
  schema_.topic = topic_.c_str();
  schema_.doc = doc_.c_str();
  schema_.record_size = s.record_size;
  schema_.fields = fields_.empty() ? nullptr : fields_.data();
  schema_.field_count = fields_.size();
}

const th_field* OwnedSchema::field(std::string_view name) const noexcept {
  for (const auto& f : fields_) {
    if (f.name != nullptr && name == f.name) return &f;
  }
  return nullptr;
}

Status validate_schema(const th_event_schema& in) {
  if (in.struct_size == 0) {
    return Error(ErrorKind::kEvent, "event schema: struct_size is 0 (set it to sizeof)");
  }
  th_event_schema raw = read_prefix<th_event_schema>(&in);
  if (raw.topic == nullptr) return Error(ErrorKind::kEvent, "event schema without a topic name");
  std::string_view topic = raw.topic;
  if (!valid_topic_name(topic)) {
    return schema_error(topic, "topic names use letters, digits, '_', '.', '-' (≤ 128 chars)");
  }
  if (raw.record_size == 0) return schema_error(topic, "record_size is 0");
  if (raw.field_count > 0 && raw.fields == nullptr) {
    return schema_error(topic, "field_count > 0 but fields is NULL");
  }
  OwnedSchema s(in);
  std::set<std::string_view> names;
  for (const auto& f : s.fields()) {
    if (f.name == nullptr || *f.name == '\0') return schema_error(topic, "a field has no name");
    std::string_view name = f.name;
    auto ferr = [&](std::string msg) {
      return schema_error(topic, "field '" + std::string(name) + "': " + std::move(msg));
    };
    if (!names.insert(name).second) return ferr("duplicate field name");
    if (name == "time" || name == "topic") {
      return ferr("'time' and 'topic' are reserved (sinks add them to every event)");
    }
    if (static_cast<std::uint64_t>(f.offset) + f.size > raw.record_size) {
      return ferr("offset " + std::to_string(f.offset) + " + size " + std::to_string(f.size) +
                  " lies beyond record_size " + std::to_string(raw.record_size));
    }
    if (f.size == 0) return ferr("size is 0");
    switch (f.type) {
      case TH_FIELD_UINT:
      case TH_FIELD_INT:
      case TH_FIELD_ERRNO:
      case TH_FIELD_PID:
      case TH_FIELD_TID:
      case TH_FIELD_UID:
      case TH_FIELD_CGROUP_ID:
      case TH_FIELD_FLAGS:
      case TH_FIELD_DURATION_NS:
      case TH_FIELD_TIMESTAMP_NS:
      case TH_FIELD_STACK_ID:
        if (!is_int_size(f.size)) return ferr("integer fields have size 1, 2, 4 or 8");
        break;
      case TH_FIELD_ENUM:
        if (!is_int_size(f.size)) return ferr("enum fields have size 1, 2, 4 or 8");
        break;
      case TH_FIELD_BOOL:
        if (f.size > 8) return ferr("bool fields have size 1..8");
        break;
      case TH_FIELD_STRING:
      case TH_FIELD_HEX:
        break;
      case TH_FIELD_IPV4:
        if (f.size != 4) return ferr("IPv4 fields have size 4");
        break;
      case TH_FIELD_IPV6:
        if (f.size != 16) return ferr("IPv6 fields have size 16");
        break;
      case TH_FIELD_IP: {
        if (f.size != 16) return ferr("IP fields have size 16");
        if (f.aux_field == nullptr) return ferr("IP fields need aux_field (the family field)");
        const th_field* aux = s.field(f.aux_field);
        if (aux == nullptr) {
          return ferr("aux_field '" + std::string(f.aux_field) + "' is not a field");
        }
        if (!is_int_size(aux->size)) {
          return ferr("aux_field '" + std::string(f.aux_field) + "' must be an integer");
        }
        break;
      }
      case TH_FIELD_PORT:
        if (f.size != 2) return ferr("port fields have size 2");
        break;
      default:
        return ferr("unknown field type " + std::to_string(f.type));
    }
  }
  return ok();
}

// ---- BatchBuilder -------------------------------------------------------------------------------

void BatchBuilder::append(const void* data, std::size_t size) {
  const std::size_t aligned = (used_ + 7) & ~std::size_t{7};
  const std::size_t need = aligned + size;
  if (need > capacity_) {
    const std::size_t cap = std::max({need, capacity_ * 2, hint_, std::size_t{256}});
    auto bigger = std::make_unique_for_overwrite<std::byte[]>(cap);
    if (used_ > 0) std::memcpy(bigger.get(), arena_.get(), used_);
    arena_ = std::move(bigger);
    capacity_ = cap;
  }
  if (size > 0) std::memcpy(arena_.get() + aligned, data, size);
  offsets_.push_back({static_cast<std::uint32_t>(aligned), static_cast<std::uint32_t>(size)});
  used_ = need;
}

void BatchBuilder::clear() noexcept {
  used_ = 0;
  offsets_.clear();
}

// ---- EventBus internals
// --------------------------------------------------------------------------

struct EventBus::Topic {
  TopicId id = 0;
  std::string owner;
  std::shared_ptr<const OwnedSchema> schema;
  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> kernel_drops{0};
  std::atomic<std::uint64_t> malformed{0};
  // Matching subscribers, replaced (never mutated) under the bus lock so publishers can copy the
  // pointer and enqueue without holding it.
  std::shared_ptr<const SubscriberList> subscribers = std::make_shared<SubscriberList>();
  std::vector<DemandListener> demand_listeners;
  bool wanted = false;     // a non-passive subscriber is in `subscribers`
  std::string off_reason;  // set_off()
};

struct EventBus::Subscriber {
  SubscriptionId id = 0;
  std::string owner;
  std::vector<std::string> globs;
  BatchCallback callback;
  SubscribeOptions options;

  struct Entry {
    std::shared_ptr<const Batch> batch;
    std::size_t begin;
    std::size_t end;
  };
  struct Counters {
    std::string topic;
    std::uint64_t delivered = 0;
    std::uint64_t dropped = 0;
  };

  std::mutex mu;
  std::condition_variable has_work;  // dispatch thread waits
  std::condition_variable has_room;  // blocked publishers wait
  std::condition_variable idle;      // drain() waits
  std::deque<Entry> queue;
  std::size_t queued = 0;
  bool busy = false;
  bool closed = false;
  std::unordered_map<TopicId, Counters> counters;
  std::thread thread;
  std::thread::id thread_id;

  bool matches(std::string_view topic) const {
    return std::any_of(globs.begin(), globs.end(),
                       [&](const std::string& g) { return glob_match(g, topic); });
  }

  Counters& counters_for(const Batch& b) {
    auto [it, inserted] = counters.try_emplace(b.topic);
    if (inserted) it->second.topic = std::string(b.schema->topic());
    return it->second;
  }

  // Called by publishers (never under the bus lock).
  void enqueue(const std::shared_ptr<const Batch>& batch) {
    const std::size_t n = batch->events.size();
    std::unique_lock lock(mu);
    auto& c = counters_for(*batch);
    if (closed) {
      c.dropped += n;
      return;
    }
    const std::size_t cap = std::max<std::size_t>(options.queue_capacity, 1);
    if (options.overflow == OverflowPolicy::kDropNewest) {
      const std::size_t room = cap > queued ? cap - queued : 0;
      const std::size_t take = std::min(room, n);
      if (take > 0) {
        queue.push_back({batch, 0, take});
        queued += take;
        has_work.notify_one();
      }
      c.dropped += n - take;
      return;
    }
    std::size_t pos = 0;
    while (pos < n) {
      has_room.wait(lock, [&] { return closed || queued < cap; });
      if (closed) {
        c.dropped += n - pos;
        return;
      }
      const std::size_t take = std::min(cap - queued, n - pos);
      queue.push_back({batch, pos, pos + take});
      queued += take;
      pos += take;
      has_work.notify_one();
    }
  }
};

bool glob_match(std::string_view glob, std::string_view text) noexcept {
  // Iterative wildcard match with single-star backtracking: linear for the patterns we see.
  std::size_t g = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (g < glob.size() && (glob[g] == '?' || glob[g] == text[t])) {
      ++g;
      ++t;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++;
      mark = t;
    } else if (star != std::string_view::npos) {
      g = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

EventBus::EventBus() = default;

EventBus::~EventBus() { stop(); }

Result<TopicId> EventBus::register_topic(std::string_view owner, const th_event_schema& schema) {
  TH_TRY(validate_schema(schema));
  auto owned = std::make_shared<const OwnedSchema>(schema);
  std::unique_lock lock(mu_);
  std::string name(owned->topic());
  if (auto it = topic_by_name_.find(name); it != topic_by_name_.end()) {
    return Error(ErrorKind::kEvent, "topic '" + name + "' is already registered by '" +
                                        topics_.at(it->second)->owner +
                                        "'; topic names must be unique across plugins");
  }
  auto topic = std::make_shared<Topic>();
  topic->id = next_topic_++;
  topic->owner = std::string(owner);
  topic->schema = std::move(owned);
  rebuild_topic_subscribers_locked(*topic);
  topics_.emplace(topic->id, topic);
  topic_by_name_.emplace(std::move(name), topic->id);
  return topic->id;
}

std::optional<TopicId> EventBus::find_topic(std::string_view topic) const {
  std::shared_lock lock(mu_);
  auto it = topic_by_name_.find(std::string(topic));
  if (it == topic_by_name_.end()) return std::nullopt;
  return it->second;
}

std::shared_ptr<const OwnedSchema> EventBus::schema(TopicId topic) const {
  std::shared_lock lock(mu_);
  auto it = topics_.find(topic);
  return it == topics_.end() ? nullptr : it->second->schema;
}

std::string EventBus::owner_of(TopicId topic) const {
  std::shared_lock lock(mu_);
  auto it = topics_.find(topic);
  return it == topics_.end() ? std::string() : it->second->owner;
}

std::vector<std::string> EventBus::topics() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  out.reserve(topic_by_name_.size());
  for (const auto& [name, id] : topic_by_name_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

void EventBus::rebuild_topic_subscribers_locked(Topic& topic) {
  auto list = std::make_shared<SubscriberList>();
  for (const auto& [id, sub] : subscribers_) {
    if (sub->matches(topic.schema->topic())) list->push_back(sub);
  }
  std::sort(list->begin(), list->end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  topic.subscribers = std::move(list);
  update_demand_locked(topic);
}

void EventBus::update_demand_locked(Topic& topic) {
  const auto& subs = *topic.subscribers;
  const bool wanted =
      std::any_of(subs.begin(), subs.end(), [](const auto& s) { return !s->options.passive; });
  if (wanted == topic.wanted) return;
  topic.wanted = wanted;
  for (const auto& listener : topic.demand_listeners) listener(wanted);
}

Status EventBus::add_demand_listener(TopicId topic, DemandListener listener) {
  if (!listener) return Error(ErrorKind::kInvalidArgument, "add_demand_listener: no listener");
  std::unique_lock lock(mu_);
  auto it = topics_.find(topic);
  if (it == topics_.end()) {
    return Error(ErrorKind::kEvent,
                 "add_demand_listener: unknown topic id " + std::to_string(topic));
  }
  listener(it->second->wanted);
  it->second->demand_listeners.push_back(std::move(listener));
  return ok();
}

Status EventBus::set_off(TopicId topic, std::string reason) {
  std::unique_lock lock(mu_);
  auto it = topics_.find(topic);
  if (it == topics_.end()) {
    return Error(ErrorKind::kEvent, "set_off: unknown topic id " + std::to_string(topic));
  }
  it->second->off_reason = std::move(reason);
  return ok();
}

bool EventBus::wanted(TopicId topic) const {
  std::shared_lock lock(mu_);
  auto it = topics_.find(topic);
  return it != topics_.end() && it->second->wanted;
}

Status EventBus::publish(TopicId topic, std::span<const std::byte> record) {
  auto s = schema(topic);
  if (!s) return Error(ErrorKind::kEvent, "publish: unknown topic id " + std::to_string(topic));
  if (record.size() < s->c().record_size) {
    std::shared_lock lock(mu_);
    if (auto it = topics_.find(topic); it != topics_.end()) it->second->malformed++;
    return Error(ErrorKind::kEvent, "publish to '" + std::string(s->topic()) + "': record of " +
                                        std::to_string(record.size()) +
                                        " bytes is shorter than the schema's record_size " +
                                        std::to_string(s->c().record_size));
  }
  BatchBuilder b(topic);
  b.append(record.data(), record.size());
  publish_batch(b);
  return ok();
}

Status EventBus::publish(std::string_view topic, std::span<const std::byte> record) {
  auto id = find_topic(topic);
  if (!id) {
    return Error(ErrorKind::kEvent, "publish: topic '" + std::string(topic) +
                                        "' is not registered (register its schema first)");
  }
  return publish(*id, record);
}

std::size_t EventBus::publish_batch(BatchBuilder& builder) {
  if (builder.empty()) return 0;
  std::shared_ptr<Topic> topic;
  std::shared_ptr<const SubscriberList> subs;
  {
    std::shared_lock lock(mu_);
    auto it = topics_.find(builder.topic());
    if (it != topics_.end()) {
      topic = it->second;
      subs = topic->subscribers;
    }
  }
  if (!topic) {
    builder.clear();
    return 0;
  }
  const std::uint32_t need = topic->schema->c().record_size;
  std::size_t good = 0;
  for (const auto& sp : builder.offsets_) good += sp.size >= need ? 1 : 0;
  if (good < builder.offsets_.size()) topic->malformed += builder.offsets_.size() - good;
  topic->published += good;
  if (good == 0 || subs->empty()) {
    // Nobody listens: keep the arena for the next round instead of handing it over.
    builder.clear();
    return good;
  }

  auto batch = std::make_shared<Batch>();
  batch->schema = topic->schema;
  batch->topic = topic->id;
  batch->arena = std::move(builder.arena_);
  // The next arena (allocated on the next append) starts as big as this one's content, so
  // steady-state rounds allocate once and never regrow.
  builder.capacity_ = 0;
  builder.hint_ = builder.used_ + builder.used_ / 4;
  batch->events.reserve(good);
  const std::uint64_t now = realtime_ns();
  const th_event_schema* cs = &topic->schema->c();
  const char* topic_name = cs->topic;
  for (const auto& sp : builder.offsets_) {
    if (sp.size < need) continue;
    th_event e{};
    e.struct_size = sizeof(th_event);
    e.topic = topic_name;
    e.schema = cs;
    e.data = batch->arena.get() + sp.offset;
    e.size = sp.size;
    e.time_ns = now;
    batch->events.push_back(e);
  }
  builder.clear();
  std::shared_ptr<const Batch> shared = std::move(batch);
  for (const auto& sub : *subs) sub->enqueue(shared);
  return good;
}

void EventBus::add_kernel_drops(TopicId topic, std::uint64_t delta) {
  if (delta == 0) return;
  std::shared_lock lock(mu_);
  if (auto it = topics_.find(topic); it != topics_.end()) it->second->kernel_drops += delta;
}

Result<SubscriptionId> EventBus::subscribe(std::string_view owner, std::string_view glob,
                                           BatchCallback callback, SubscribeOptions options) {
  std::string g(glob);
  return subscribe(owner, std::span<const std::string>(&g, 1), std::move(callback),
                   std::move(options));
}

Result<SubscriptionId> EventBus::subscribe(std::string_view owner,
                                           std::span<const std::string> globs,
                                           BatchCallback callback, SubscribeOptions options) {
  if (!callback) return Error(ErrorKind::kInvalidArgument, "subscribe: no callback");
  if (globs.empty()) return Error(ErrorKind::kInvalidArgument, "subscribe: no topic glob");
  for (const auto& g : globs) {
    if (g.empty()) return Error(ErrorKind::kInvalidArgument, "subscribe: empty topic glob");
  }
  if (options.queue_capacity == 0) options.queue_capacity = SubscribeOptions{}.queue_capacity;
  if (options.max_batch == 0) options.max_batch = SubscribeOptions{}.max_batch;

  auto sub = std::make_shared<Subscriber>();
  sub->owner = std::string(owner);
  sub->globs.assign(globs.begin(), globs.end());
  sub->callback = std::move(callback);
  sub->options = std::move(options);
  if (sub->options.name.empty()) sub->options.name = sub->owner;

  std::unique_lock lock(mu_);
  if (stopped_) return Error(ErrorKind::kEvent, "subscribe: the event bus is stopped");
  sub->id = next_subscription_++;
  subscribers_.emplace(sub->id, sub);
  for (auto& [id, topic] : topics_) {
    if (sub->matches(topic->schema->topic())) {
      auto list = std::make_shared<SubscriberList>(*topic->subscribers);
      list->push_back(sub);
      topic->subscribers = std::move(list);
      update_demand_locked(*topic);
    }
  }
  // The thread holds only a weak reference through `this` + the shared_ptr copy it owns.
  sub->thread = std::thread([this, sub] { dispatch_loop(sub); });
  sub->thread_id = sub->thread.get_id();
  return sub->id;
}

void EventBus::dispatch_loop(const std::shared_ptr<Subscriber>& sub) {
  auto& s = *sub;
  std::unique_lock lock(s.mu);
  for (;;) {
    s.has_work.wait(lock, [&] { return s.closed || !s.queue.empty(); });
    if (s.closed) break;
    auto& front = s.queue.front();
    const std::size_t k = std::min(front.end - front.begin, s.options.max_batch);
    std::shared_ptr<const Batch> batch = front.batch;
    const std::size_t begin = front.begin;
    front.begin += k;
    if (front.begin == front.end) s.queue.pop_front();
    s.queued -= k;
    s.busy = true;
    s.has_room.notify_all();
    lock.unlock();
    try {
      s.callback(std::span<const th_event>(batch->events.data() + begin, k));
    } catch (const std::exception& e) {
      component_logger("bus")->error("subscriber '{}' ({}) threw on topic '{}': {}", s.options.name,
                                     s.owner, batch->schema->topic(), e.what());
    } catch (...) {
      component_logger("bus")->error("subscriber '{}' ({}) threw on topic '{}'", s.options.name,
                                     s.owner, batch->schema->topic());
    }
    lock.lock();
    s.busy = false;
    s.counters_for(*batch).delivered += k;
    // Release the batch while not holding the lock for long: the last reference frees the arena.
    lock.unlock();
    batch.reset();
    lock.lock();
    if (s.queue.empty()) s.idle.notify_all();
  }
  s.busy = false;
  s.idle.notify_all();
}

void EventBus::close_subscriber(const std::shared_ptr<Subscriber>& sub) {
  {
    std::lock_guard lock(sub->mu);
    if (!sub->closed) {
      sub->closed = true;
      for (const auto& e : sub->queue) sub->counters_for(*e.batch).dropped += e.end - e.begin;
      sub->queue.clear();
      sub->queued = 0;
    }
  }
  sub->has_work.notify_all();
  sub->has_room.notify_all();
  sub->idle.notify_all();
  if (sub->thread.joinable()) {
    if (sub->thread.get_id() == std::this_thread::get_id()) {
      sub->thread.detach();  // the thread owns a reference to `sub` and exits after the callback
    } else {
      sub->thread.join();
    }
  }
}

Status EventBus::unsubscribe(SubscriptionId id) {
  std::shared_ptr<Subscriber> sub;
  {
    std::unique_lock lock(mu_);
    auto it = subscribers_.find(id);
    if (it == subscribers_.end()) {
      return Error(ErrorKind::kNotFound, "unsubscribe: no subscription " + std::to_string(id));
    }
    sub = it->second;
    subscribers_.erase(it);
    for (auto& [tid, topic] : topics_) {
      const auto& cur = *topic->subscribers;
      if (std::find(cur.begin(), cur.end(), sub) == cur.end()) continue;
      auto list = std::make_shared<SubscriberList>();
      for (const auto& s : cur) {
        if (s != sub) list->push_back(s);
      }
      topic->subscribers = std::move(list);
      update_demand_locked(*topic);
    }
  }
  close_subscriber(sub);
  return ok();
}

void EventBus::unsubscribe_owner(std::string_view owner) {
  std::vector<SubscriptionId> ids;
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, sub] : subscribers_) {
      if (sub->owner == owner) ids.push_back(id);
    }
  }
  for (auto id : ids) (void)unsubscribe(id);
}

void EventBus::remove_owner(std::string_view owner) {
  unsubscribe_owner(owner);
  std::unique_lock lock(mu_);
  for (auto it = topics_.begin(); it != topics_.end();) {
    if (it->second->owner == owner) {
      topic_by_name_.erase(std::string(it->second->schema->topic()));
      it = topics_.erase(it);
    } else {
      ++it;
    }
  }
}

bool EventBus::drain(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<std::shared_ptr<Subscriber>> subs;
    {
      std::shared_lock lock(mu_);
      for (const auto& [id, sub] : subscribers_) subs.push_back(sub);
    }
    bool all_idle = true;
    for (const auto& sub : subs) {
      std::unique_lock lock(sub->mu);
      if (sub->thread_id == std::this_thread::get_id()) continue;  // drain from a callback
      if (!sub->idle.wait_until(
              lock, deadline, [&] { return sub->closed || (sub->queue.empty() && !sub->busy); })) {
        return false;
      }
    }
    // A callback may have published to another subscriber we already passed: check again.
    for (const auto& sub : subs) {
      std::lock_guard lock(sub->mu);
      if (!sub->closed && (!sub->queue.empty() || sub->busy) &&
          sub->thread_id != std::this_thread::get_id()) {
        all_idle = false;
      }
    }
    if (all_idle) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

void EventBus::stop() {
  std::vector<SubscriptionId> ids;
  {
    std::unique_lock lock(mu_);
    stopped_ = true;
    for (const auto& [id, sub] : subscribers_) ids.push_back(id);
  }
  for (auto id : ids) (void)unsubscribe(id);
}

BusStats EventBus::stats() const {
  BusStats out;
  std::vector<std::shared_ptr<Subscriber>> subs;
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, t] : topics_) {
      TopicStats ts;
      ts.id = id;
      ts.topic = std::string(t->schema->topic());
      ts.owner = t->owner;
      ts.published = t->published.load(std::memory_order_relaxed);
      ts.kernel_drops = t->kernel_drops.load(std::memory_order_relaxed);
      ts.malformed = t->malformed.load(std::memory_order_relaxed);
      ts.follows_demand = !t->demand_listeners.empty();
      ts.wanted = t->wanted;
      ts.off_reason = t->off_reason;
      out.topics.push_back(std::move(ts));
    }
    for (const auto& [id, sub] : subscribers_) subs.push_back(sub);
  }
  std::sort(out.topics.begin(), out.topics.end(),
            [](const auto& a, const auto& b) { return a.topic < b.topic; });
  std::sort(subs.begin(), subs.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  for (const auto& sub : subs) {
    SubscriptionStats ss;
    ss.id = sub->id;
    ss.owner = sub->owner;
    ss.name = sub->options.name;
    ss.globs = sub->globs;
    std::lock_guard lock(sub->mu);
    ss.queued = sub->queued;
    for (const auto& [tid, c] : sub->counters) {
      ss.per_topic.push_back({c.topic, c.delivered, c.dropped});
    }
    std::sort(ss.per_topic.begin(), ss.per_topic.end(),
              [](const auto& a, const auto& b) { return a.topic < b.topic; });
    out.subscriptions.push_back(std::move(ss));
  }
  return out;
}

}  // namespace tracehost::host
