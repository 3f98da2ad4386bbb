// The console sink: a readable summary every interval_s on stdout, and a final one at stop().
//
//   uptime; per topic: event rate and total (as received by this sink, after its filter), kernel
//   drops and bus drops; per counter family the top N series by value (with rate); per histogram
//   family the top N series by sum ("by total"), with count and mean; gauges by value.
// Generic over families: any plugin's metrics show up without console code for them.
//
// Keys: interval_s (default 2), top (default 5), metrics (family-name globs, default ["*"];
// with or without the "tracehost_" prefix), output ("auto" | "stdout" | "stderr"; auto = stdout
// unless a json sink writes to stdout, then stderr so stdout stays pure JSON lines), plus the
// common type/enabled/topics/where. On a terminal each periodic summary redraws the screen; when
// the output is not a TTY summaries are appended with no escape codes. Lines fit in 100 columns.
//
// Demand: without a `topics` key the console only watches (a passive subscription): it counts
// the events that flow because another sink or a plugin subscribes, and lists the topics nobody
// subscribes to as off, so they cost nothing in the kernel. With `topics` it asks for them like
// any other sink.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "host/event_bus.hpp"
#include "host/metrics.hpp"
#include "host/sinks/filter.hpp"
#include "host/sinks/sink.hpp"

namespace tracehost::host {

struct ConsoleSinkOptions {
  double interval_s = 2;
  int top = 5;
  std::vector<std::string> metrics{"*"};
  std::string output = "auto";
  EventFilter filter;
  bool asks_for_topics = false;  // `topics` given: a subscription that turns its topics on
};

Result<ConsoleSinkOptions> console_sink_options(const toml::table& table,
                                                const std::filesystem::path& config_path,
                                                std::string_view table_name);
inline constexpr std::string_view kConsoleSinkKeys[] = {"interval_s", "top", "metrics", "output"};

class ConsoleSink final : public Sink {
 public:
  // `out` is where summaries go (stdout/stderr, or a tmpfile in tests); not owned.
  ConsoleSink(std::string name, ConsoleSinkOptions options, EventBus& bus, MetricRegistry& metrics,
              std::FILE* out);
  ~ConsoleSink() override;

  [[nodiscard]] std::string_view name() const override { return name_; }
  [[nodiscard]] std::string_view type() const override { return "console"; }
  Status start() override;
  void stop() override;

  // One summary as text (no escape codes). `final`: rates are averages over the whole run.
  // Also advances the "previous" values used for the next interval's rates.
  std::string render(bool final);
  [[nodiscard]] std::FILE* output() const noexcept { return out_; }

 private:
  void count(std::span<const th_event> events);
  void printer_loop();
  void emit(bool final);

  std::string name_;
  ConsoleSinkOptions options_;
  EventBus& bus_;
  MetricRegistry& metrics_;
  std::FILE* out_;
  bool tty_ = false;
  SubscriptionId sub_ = 0;

  std::mutex count_mu_;
  std::map<std::string, std::uint64_t> received_;  // topic → events passing the filter

  // render() state (printer thread, or the caller of stop())
  std::mutex render_mu_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
  std::map<std::string, std::uint64_t> last_received_;
  std::map<std::string, double> last_values_;  // family + labels → counter value

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool started_ = false;
  std::thread printer_;
};

}  // namespace tracehost::host
