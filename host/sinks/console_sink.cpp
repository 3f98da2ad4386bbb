#include "host/sinks/console_sink.hpp"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "host/config_util.hpp"
#include "host/render.hpp"
#include "host/sinks/sigpipe_guard.hpp"

namespace tracehost::host {

namespace {

constexpr std::size_t kWidth = 100;
constexpr std::size_t kNameCol = 46;

std::string fit(std::string s, std::size_t width) {
  if (s.size() <= width) return s;
  // cut on a UTF-8 boundary and mark the cut
  std::size_t cut = width - 1;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  s.resize(cut);
  s += "~";
  return s;
}

std::string pad_right(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string pad_left(const std::string& s, std::size_t width) {
  if (s.size() >= width) return " " + s;
  return std::string(width - s.size(), ' ') + s;
}

std::string format_uptime(double seconds) {
  auto total = static_cast<long long>(seconds);
  char buf[32];
  if (total >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02llds", total / 3600, (total / 60) % 60,
                  total % 60);
  } else if (total >= 60) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", total / 60, total % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1fs", seconds);
  }
  return buf;
}

std::string format_rate(double per_s) {
  if (per_s < 0) per_s = 0;
  if (per_s > 0 && per_s < 10) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%.1f", per_s);
    return buf;
  }
  return format_count(std::round(per_s));
}

std::string label_text(const FamilySnapshot& f, const SeriesSnapshot& s) {
  if (f.label_names.empty()) return "(all)";
  std::string out;
  for (std::size_t i = 0; i < f.label_names.size() && i < s.label_values.size(); ++i) {
    if (!out.empty()) out += ' ';
    out += f.label_names[i];
    out += '=';
    out += s.label_values[i];
  }
  return out;
}

std::string series_key(const FamilySnapshot& f, const SeriesSnapshot& s) {
  std::string k = f.name;
  for (const auto& v : s.label_values) {
    k += '\x1f';
    k += v;
  }
  return k;
}

bool is_seconds(const std::string& name) { return name.ends_with("_seconds"); }

// "_ratio" families hold 0..1 by Prometheus convention: shown as a percentage
std::string format_percent(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", ratio * 100.0);
  return buf;
}

std::string format_amount(const FamilySnapshot& f, double v) {
  if (is_seconds(f.name)) return format_duration_seconds(v);
  if (std::string_view(f.name).ends_with("_ratio")) return format_percent(v);
  return format_count(v);
}

bool family_selected(const std::vector<std::string>& globs, const std::string& name) {
  std::string_view shortname = name;
  if (shortname.starts_with(kMetricPrefix)) shortname.remove_prefix(kMetricPrefix.size());
  return std::any_of(globs.begin(), globs.end(), [&](const std::string& g) {
    return glob_match(g, name) || glob_match(g, shortname);
  });
}

}  // namespace

Result<ConsoleSinkOptions> console_sink_options(const toml::table& table,
                                                const std::filesystem::path& config_path,
                                                std::string_view table_name) {
  ConsoleSinkOptions o;
  const std::string prefix = std::string(table_name) + ".";
  TH_ASSIGN_OR_RETURN(o.interval_s, get_double(table, "interval_s", 2.0, config_path, table_name));
  if (!(o.interval_s >= 0.1 && o.interval_s <= 3600)) {
    return config_error(*table.get("interval_s"), config_path, prefix + "interval_s",
                        "must be between 0.1 and 3600 seconds");
  }
  TH_ASSIGN_OR_RETURN(std::int64_t top,
                      get_int_in_range(table, "top", 5, 1, 100, config_path, table_name));
  o.top = static_cast<int>(top);
  TH_ASSIGN_OR_RETURN(o.metrics, get_string_list(table, "metrics", {"*"}, config_path, table_name));
  TH_ASSIGN_OR_RETURN(o.output, get_string(table, "output", "auto", config_path, table_name));
  if (o.output != "auto" && o.output != "stdout" && o.output != "stderr") {
    return config_error(*table.get("output"), config_path, prefix + "output",
                        "must be \"auto\", \"stdout\" or \"stderr\", not \"" + o.output + "\"");
  }
  TH_ASSIGN_OR_RETURN(o.filter, EventFilter::from_table(table, config_path, table_name));
  o.asks_for_topics = table.contains("topics");
  return o;
}

ConsoleSink::ConsoleSink(std::string name, ConsoleSinkOptions options, EventBus& bus,
                         MetricRegistry& metrics, std::FILE* out)
    : name_(std::move(name)),
      options_(std::move(options)),
      bus_(bus),
      metrics_(metrics),
      out_(out),
      tty_(out != nullptr && ::isatty(::fileno(out)) != 0) {
  start_ = last_ = std::chrono::steady_clock::now();
}

ConsoleSink::~ConsoleSink() { stop(); }

Status ConsoleSink::start() {
  if (started_) return ok();
  SubscribeOptions so;
  so.name = name_;
  so.passive = !options_.asks_for_topics;
  TH_ASSIGN_OR_RETURN(sub_, bus_.subscribe(
                                "sink:" + name_, options_.filter.topics(),
                                [this](std::span<const th_event> ev) { count(ev); }, so));
  {
    std::lock_guard lock(render_mu_);
    start_ = last_ = std::chrono::steady_clock::now();
  }
  started_ = true;
  printer_ = std::thread([this] { printer_loop(); });
  return ok();
}

void ConsoleSink::stop() {
  if (!started_) return;
  started_ = false;
  (void)bus_.unsubscribe(sub_);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (printer_.joinable()) printer_.join();
  emit(true);
}

void ConsoleSink::count(std::span<const th_event> events) {
  if (events.empty()) return;
  std::uint64_t n = events.size();
  if (options_.filter.has_where()) {
    n = 0;
    for (const auto& e : events) n += options_.filter.matches(e) ? 1 : 0;
  }
  std::lock_guard lock(count_mu_);
  received_[events.front().topic] += n;  // a callback's events share one topic
}

void ConsoleSink::printer_loop() {
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(options_.interval_s));
  auto next = std::chrono::steady_clock::now() + interval;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (cv_.wait_until(lock, next, [this] { return stopping_; })) break;
    lock.unlock();
    emit(false);
    lock.lock();
    next += interval;
  }
}

void ConsoleSink::emit(bool final) {
  if (out_ == nullptr) return;
  std::string text = render(final);
  if (tty_ && !final) text.insert(0, "\x1b[H\x1b[2J");
  SigpipeGuard no_sigpipe;
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

std::string ConsoleSink::render(bool final) {
  std::lock_guard rlock(render_mu_);
  const auto now = std::chrono::steady_clock::now();
  const double uptime = std::chrono::duration<double>(now - start_).count();
  // Final summary: rates over the whole run; periodic: over the last interval.
  const double dt = final ? uptime : std::chrono::duration<double>(now - last_).count();
  const double div = dt > 1e-3 ? dt : 1e-3;

  std::map<std::string, std::uint64_t> received;
  {
    std::lock_guard lock(count_mu_);
    received = received_;
  }
  const BusStats bus = bus_.stats();
  const MetricsSnapshot snap = metrics_.collect();

  std::string out;
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  std::string stamp = format_rfc3339_ns(static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000LL);
  stamp.replace(stamp.find('.'), std::string::npos, "Z");
  std::string title = std::string(final ? "== tracehost final summary" : "== tracehost") +
                      " | up " + format_uptime(uptime) + " | " + stamp + " ";
  out += title;
  if (title.size() < kWidth) out.append(kWidth - title.size(), '=');
  out += '\n';

  // ---- events ----
  struct TopicRow {
    std::uint64_t total = 0;
    std::uint64_t kernel = 0;
    std::uint64_t bus_drops = 0;
    std::string off;  // why nothing is produced: its plugin turned it off, or nobody asks
  };
  std::map<std::string, TopicRow> rows;
  for (const auto& t : bus.topics) {
    if (!options_.filter.topic_matches(t.topic)) continue;
    rows[t.topic].kernel = t.kernel_drops;
    if (!t.off_reason.empty()) {
      rows[t.topic].off = t.off_reason;
    } else if (t.follows_demand && !t.wanted) {
      rows[t.topic].off = "no sink or plugin subscribes";
    }
  }
  for (const auto& s : bus.subscriptions) {
    for (const auto& pt : s.per_topic) {
      if (auto it = rows.find(pt.topic); it != rows.end()) it->second.bus_drops += pt.dropped;
    }
  }
  for (const auto& [topic, n] : received) rows[topic].total = n;
  out += pad_right("EVENTS", kNameCol) + pad_left(final ? "avg/s" : "rate/s", 12) +
         pad_left("total", 12) + pad_left("kernel drops", 14) + pad_left("bus drops", 12) + "\n";
  if (rows.empty()) out += "  (no topics)\n";
  for (const auto& [topic, r] : rows) {
    if (!r.off.empty() && r.total == 0) {
      out += pad_right("  " + fit(topic, kNameCol - 3), kNameCol) +
             pad_left(fit("off: " + r.off, 50), 50) + "\n";
      continue;
    }
    std::uint64_t prev = final ? 0 : last_received_[topic];
    double rate = static_cast<double>(r.total - std::min(prev, r.total)) / div;
    out += pad_right("  " + fit(topic, kNameCol - 3), kNameCol) + pad_left(format_rate(rate), 12) +
           pad_left(format_count(static_cast<double>(r.total)), 12) +
           pad_left(format_count(static_cast<double>(r.kernel)), 14) +
           pad_left(format_count(static_cast<double>(r.bus_drops)), 12) + "\n";
  }

  // ---- metrics ----
  const auto top = static_cast<std::size_t>(options_.top);
  bool header = false;
  std::map<std::string, double> values;
  auto nonzero = [](const FamilySnapshot& fam, const SeriesSnapshot& s) {
    return fam.type == MetricType::kHistogram ? s.count != 0 : s.value != 0;
  };
  for (const auto& f : snap.families) {
    // The bus counters are the EVENTS table above; all-zero series say nothing in a top list.
    if (std::string_view(f.name).starts_with("tracehost_events_")) continue;
    if (!family_selected(options_.metrics, f.name)) continue;
    std::vector<const SeriesSnapshot*> order;
    order.reserve(f.series.size());
    for (const auto& s : f.series) {
      if (nonzero(f, s)) order.push_back(&s);
    }
    if (order.empty()) continue;
    if (!header) {
      out += "METRICS\n";
      header = true;
    }
    auto by = [&](const SeriesSnapshot* s) {
      return f.type == MetricType::kHistogram ? s->sum : s->value;
    };
    const std::size_t n = std::min(top, order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                      [&](const auto* a, const auto* b) { return by(a) > by(b); });
    std::string what;
    switch (f.type) {
      case MetricType::kCounter:
        what = is_seconds(f.name) ? "by total time" : "by count";
        break;
      case MetricType::kGauge:
        what = "by value";
        break;
      case MetricType::kHistogram:
        what = is_seconds(f.name) ? "by total time" : "by total";
        break;
    }
    // Left column as wide as the number columns leave: 100 = left + 12 per column.
    const std::size_t ncols = f.type == MetricType::kHistogram ? 3 : 2;
    const std::size_t left = kWidth - 12 * ncols;
    std::string head = "  " + f.name + " - top " + std::to_string(n) + " of " +
                       std::to_string(order.size()) + " " + what;
    head = pad_right(fit(head, left - 1), left);
    switch (f.type) {
      case MetricType::kCounter:
        out += head + pad_left(final ? "avg/s" : "rate/s", 12) + pad_left("total", 12) + "\n";
        break;
      case MetricType::kGauge:
        out += head + pad_left("", 12) + pad_left("value", 12) + "\n";
        break;
      case MetricType::kHistogram:
        out += head + pad_left("count", 12) + pad_left("total", 12) + pad_left("mean", 12) + "\n";
        break;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const SeriesSnapshot& s = *order[i];
      std::string lbl = pad_right("    " + fit(label_text(f, s), left - 5), left);
      switch (f.type) {
        case MetricType::kCounter: {
          double prev = 0;
          if (!final) {
            auto it = last_values_.find(series_key(f, s));
            prev = it != last_values_.end() ? it->second : 0;
          }
          double rate = (s.value - std::min(prev, s.value)) / div;
          out += lbl + pad_left(format_rate(rate), 12) + pad_left(format_amount(f, s.value), 12) +
                 "\n";
          break;
        }
        case MetricType::kGauge:
          out += lbl + pad_left("", 12) + pad_left(format_amount(f, s.value), 12) + "\n";
          break;
        case MetricType::kHistogram: {
          double mean = s.count > 0 ? s.sum / static_cast<double>(s.count) : 0;
          out += lbl + pad_left(format_count(static_cast<double>(s.count)), 12) +
                 pad_left(format_amount(f, s.sum), 12) + pad_left(format_amount(f, mean), 12) +
                 "\n";
          break;
        }
      }
    }
  }
  // Remember every counter series (not only the shown ones): a series entering the top N later
  // then gets a true interval rate.
  for (const auto& f : snap.families) {
    if (f.type != MetricType::kCounter) continue;
    for (const auto& s : f.series) values[series_key(f, s)] = s.value;
  }
  last_values_ = std::move(values);
  last_received_ = std::move(received);
  last_ = now;
  return out;
}

}  // namespace tracehost::host
