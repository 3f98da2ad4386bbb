#include "host/sinks/prometheus_sink.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <utility>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

#include "host/config_util.hpp"
#include "host/logging.hpp"
#include "host/unique_fd.hpp"

namespace tracehost::host {

namespace {

struct HostPort {
  std::string host;
  std::string port;
};

// "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464". Empty optional message on success.
Result<HostPort> split_listen(const std::string& listen) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorKind::kConfig, "'" + listen + "' is not HOST:PORT (" + why +
                                         "); e.g. \"127.0.0.1:9464\" or \"[::1]:9464\"");
  };
  HostPort hp;
  std::size_t colon;
  if (!listen.empty() && listen.front() == '[') {
    std::size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return bad("IPv6 addresses are written [addr]:port");
    }
    hp.host = listen.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = listen.rfind(':');
    if (colon == std::string::npos) return bad("no port");
    hp.host = listen.substr(0, colon);
    if (hp.host.find(':') != std::string::npos) return bad("IPv6 addresses need brackets");
  }
  hp.port = listen.substr(colon + 1);
  if (hp.port.empty() || hp.port.size() > 5 ||
      hp.port.find_first_not_of("0123456789") != std::string::npos) {
    return bad("the port must be a number");
  }
  int port = std::stoi(hp.port);
  if (port < 1 || port > 65535) return bad("the port must be 1..65535");
  if (hp.host.empty()) return bad("no address; use 0.0.0.0 to listen on every interface");
  return hp;
}

// Binds (and releases) the address ourselves first: civetweb only says "possible problem binding
// to port", while we want the errno and a fix.
Status probe_bind(const std::string& listen, const std::string& listen_where,
                  std::string_view sink_name) {
  TH_ASSIGN_OR_RETURN(HostPort hp, split_listen(listen));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string key = "sinks." + std::string(sink_name) + ".listen";
  const std::string at = listen_where.empty() ? key : listen_where + ": " + key;
  if (int rc = ::getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &res); rc != 0) {
    return Error(ErrorKind::kConfig, at + ": cannot resolve '" + hp.host +
                                         "': " + ::gai_strerror(rc) + "; use a numeric address");
  }
  int err = 0;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    UniqueFd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!s) {
      err = errno;
      continue;
    }
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(s.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
      ::freeaddrinfo(res);
      return ok();
    }
    err = errno;
  }
  ::freeaddrinfo(res);
  std::string fix = err == EADDRINUSE
                        ? "another process (another tracehost or exporter?) listens there; set " +
                              key + " to a free address, e.g. \"" + hp.host + ":" +
                              std::to_string(std::stoi(hp.port) + 1) + "\""
                        : "set " + key + " to an address of this machine";
  return Error(ErrorKind::kConfig,
               at + ": cannot listen on " + listen + ": " + std::strerror(err) + "; " + fix, err);
}

class RegistryCollectable final : public prometheus::Collectable {
 public:
  RegistryCollectable(EventBus& bus, MetricRegistry& metrics, EventFilter filter)
      : bus_(bus), metrics_(metrics), filter_(std::move(filter)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    MetricsSnapshot snap = metrics_.collect();
    MetricsSnapshot bus;
    append_bus_metrics(bus_.stats(), &filter_, bus);
    // The bus counters are this sink's (they honour its `topics`): a collector's family of the
    // same name is replaced, so the exposition never holds one name twice.
    std::erase_if(snap.families, [&](const FamilySnapshot& f) { return bus.find(f.name); });
    for (auto& f : bus.families) snap.families.push_back(std::move(f));
    return to_prometheus(snap);
  }

 private:
  EventBus& bus_;
  MetricRegistry& metrics_;
  EventFilter filter_;  // only topic globs are used: thread-safe
};

FamilySnapshot bus_family(std::string name, std::string help, std::vector<std::string> labels,
                          MetricType type = MetricType::kCounter) {
  FamilySnapshot f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  f.owner = "host";
  f.label_names = std::move(labels);
  return f;
}

void add(FamilySnapshot& f, std::vector<std::string> labels, double v) {
  SeriesSnapshot s;
  s.label_values = std::move(labels);
  s.value = v;
  f.series.push_back(std::move(s));
}

}  // namespace

Result<PrometheusSinkOptions> prometheus_sink_options(const toml::table& table,
                                                      const std::filesystem::path& config_path,
                                                      std::string_view table_name) {
  PrometheusSinkOptions o;
  const std::string prefix = std::string(table_name) + ".";
  if (const toml::node* w = table.get("where")) {
    return config_error(*w, config_path, prefix + "where",
                        "the prometheus sink exports metrics, not events, so it cannot filter "
                        "on event fields; remove 'where' (use 'topics' to limit the event "
                        "counters)");
  }
  TH_ASSIGN_OR_RETURN(o.listen,
                      get_string(table, "listen", "127.0.0.1:9464", config_path, table_name));
  if (const toml::node* l = table.get("listen")) {
    o.listen_where = where(*l, config_path);
    auto hp = split_listen(o.listen);
    if (!hp.ok()) return config_error(*l, config_path, prefix + "listen", hp.error().message());
  }
  TH_ASSIGN_OR_RETURN(o.filter, EventFilter::from_table(table, config_path, table_name));
  return o;
}

void append_bus_metrics(const BusStats& stats, const EventFilter* filter, MetricsSnapshot& out) {
  auto pass = [&](const std::string& topic) {
    return filter == nullptr || filter->topic_matches(topic);
  };
  auto published =
      bus_family("tracehost_events_published", "Events accepted onto the bus, by topic", {"topic"});
  auto malformed = bus_family("tracehost_events_malformed",
                              "Records refused because they were shorter than the topic's "
                              "record size",
                              {"topic"});
  auto delivered = bus_family("tracehost_events_delivered",
                              "Events handed to a subscriber's callback", {"topic", "subscriber"});
  auto dropped =
      bus_family("tracehost_events_dropped",
                 "Events lost: where=\"kernel\" the BPF side could not reserve ring buffer space, "
                 "where=\"bus\" a subscriber's queue was full",
                 {"topic", "subscriber", "where"});
  auto muted = bus_family("tracehost_events_topic_muted",
                          "1 while the topic is not produced: no sink or plugin subscribes to it "
                          "(its kernel-side producer is muted and costs nothing), or its plugin's "
                          "config turned it off; else 0",
                          {"topic"}, MetricType::kGauge);
  for (const auto& t : stats.topics) {
    if (!pass(t.topic)) continue;
    add(muted, {t.topic}, !t.off_reason.empty() || (t.follows_demand && !t.wanted) ? 1 : 0);
    add(published, {t.topic}, static_cast<double>(t.published));
    add(malformed, {t.topic}, static_cast<double>(t.malformed));
    add(dropped, {t.topic, "", "kernel"}, static_cast<double>(t.kernel_drops));
  }
  for (const auto& s : stats.subscriptions) {
    for (const auto& pt : s.per_topic) {
      if (!pass(pt.topic)) continue;
      add(delivered, {pt.topic, s.name}, static_cast<double>(pt.delivered));
      add(dropped, {pt.topic, s.name, "bus"}, static_cast<double>(pt.dropped));
    }
  }
  out.families.push_back(std::move(muted));
  out.families.push_back(std::move(published));
  out.families.push_back(std::move(malformed));
  out.families.push_back(std::move(delivered));
  out.families.push_back(std::move(dropped));
}

std::vector<prometheus::MetricFamily> to_prometheus(const MetricsSnapshot& snapshot) {
  std::vector<prometheus::MetricFamily> out;
  out.reserve(snapshot.families.size());
  std::set<std::string> seen;
  for (const auto& f : snapshot.families) {
    // Two families of one name make the whole scrape invalid: keep the first, say so once.
    if (!seen.insert(f.name).second) {
      static std::mutex mu;
      static std::set<std::string> warned;
      std::lock_guard lock(mu);
      if (warned.insert(f.name).second) {
        component_logger("prometheus")
            ->warn(
                "metric family '{}' is produced twice (a collector and a registered family?); "
                "exporting the first only",
                f.name);
      }
      continue;
    }
    prometheus::MetricFamily pf;
    pf.name = f.type == MetricType::kCounter ? f.name + "_total" : f.name;
    pf.help = f.help;
    switch (f.type) {
      case MetricType::kCounter:
        pf.type = prometheus::MetricType::Counter;
        break;
      case MetricType::kGauge:
        pf.type = prometheus::MetricType::Gauge;
        break;
      case MetricType::kHistogram:
        pf.type = prometheus::MetricType::Histogram;
        break;
    }
    pf.metric.reserve(f.series.size());
    for (const auto& s : f.series) {
      prometheus::ClientMetric m;
      for (std::size_t i = 0; i < f.label_names.size() && i < s.label_values.size(); ++i) {
        m.label.push_back({f.label_names[i], s.label_values[i]});
      }
      switch (f.type) {
        case MetricType::kCounter:
          m.counter.value = s.value;
          break;
        case MetricType::kGauge:
          m.gauge.value = s.value;
          break;
        case MetricType::kHistogram:
          m.histogram.sample_count = s.count;
          m.histogram.sample_sum = s.sum;
          for (const auto& b : s.buckets) {
            prometheus::ClientMetric::Bucket pb;
            pb.upper_bound = b.upper_bound;
            pb.cumulative_count = b.cumulative_count;
            m.histogram.bucket.push_back(pb);
          }
          break;
      }
      pf.metric.push_back(std::move(m));
    }
    out.push_back(std::move(pf));
  }
  return out;
}

std::string prometheus_text(const MetricsSnapshot& snapshot) {
  return prometheus::TextSerializer().Serialize(to_prometheus(snapshot));
}

PrometheusSink::PrometheusSink(std::string name, PrometheusSinkOptions options, EventBus& bus,
                               MetricRegistry& metrics)
    : name_(std::move(name)), options_(std::move(options)), bus_(bus), metrics_(metrics) {
  collectable_ = std::make_shared<RegistryCollectable>(bus_, metrics_, options_.filter);
}

PrometheusSink::~PrometheusSink() { stop(); }

Status PrometheusSink::start() {
  if (exposer_) return ok();
  TH_TRY(probe_bind(options_.listen, options_.listen_where, name_));
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(options_.listen, 2);
  } catch (const std::exception& e) {
    return Error(ErrorKind::kConfig, "sinks." + name_ + ".listen: cannot listen on " +
                                         options_.listen + ": " + e.what() + "; set sinks." +
                                         name_ + ".listen to a free address");
  }
  exposer_->RegisterCollectable(collectable_);
  return ok();
}

void PrometheusSink::stop() {
  if (!exposer_) return;
  exposer_->RemoveCollectable(collectable_);
  exposer_.reset();  // joins civetweb's threads: no scrape runs after this
}

std::vector<prometheus::MetricFamily> PrometheusSink::collect() const {
  return collectable_->Collect();
}

}  // namespace tracehost::host
