// The JSON lines sink: one object per event and line,
//   {"time":"2026-11-25T13:15:22.123456789Z","topic":"syscall.exec","pid":42,…}
// with "time" the host's CLOCK_REALTIME at batch take, then every schema field by name
// (render.hpp says how each type looks).
//
// Keys: path ("-" = stdout, default; else a file opened for append and created 0644), plus the
// common type/enabled/topics/where. Output is buffered and written with write(2) at 256 KiB, at
// least every 200 ms, and on stop(). The subscription drops the newest events when the writer
// cannot keep up (counted in tracehost_events_dropped_total{where="bus"}).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "host/event_bus.hpp"
#include "host/sinks/filter.hpp"
#include "host/sinks/sink.hpp"
#include "host/unique_fd.hpp"

namespace tracehost::host {

struct JsonSinkOptions {
  std::string path = "-";
  EventFilter filter;
  std::size_t queue_capacity = 65536;
};

// Keys of a [sinks.NAME] table of type json (the common keys are checked by validate_sink).
Result<JsonSinkOptions> json_sink_options(const toml::table& table,
                                          const std::filesystem::path& config_path,
                                          std::string_view table_name);
inline constexpr std::string_view kJsonSinkKeys[] = {"path"};

class JsonSink final : public Sink {
 public:
  static constexpr std::size_t kFlushBytes = 256 * 1024;
  static constexpr std::chrono::milliseconds kFlushInterval{200};

  // Opens the output now: an unwritable path fails here, naming the path and the errno.
  static Result<std::unique_ptr<JsonSink>> make(std::string name, JsonSinkOptions options,
                                                EventBus& bus);
  // Writes to an fd the caller keeps open (tests, benchmarks).
  static std::unique_ptr<JsonSink> for_fd(std::string name, int fd, EventFilter filter,
                                          EventBus& bus);
  ~JsonSink() override;

  [[nodiscard]] std::string_view name() const override { return name_; }
  [[nodiscard]] std::string_view type() const override { return "json"; }
  Status start() override;
  void stop() override;

  // The subscriber callback (public for benchmarks): renders and buffers a batch.
  void write_batch(std::span<const th_event> events);
  void flush();
  [[nodiscard]] std::uint64_t lines_written() const noexcept { return lines_; }
  [[nodiscard]] std::uint64_t write_errors() const noexcept { return write_errors_; }

 private:
  JsonSink(std::string name, UniqueFd owned, int fd, std::string path, EventFilter filter,
           std::size_t queue_capacity, EventBus& bus);
  void flush_locked();
  void flusher_loop();

  std::string name_;
  UniqueFd owned_;
  int fd_;
  std::string path_;
  EventFilter filter_;
  std::size_t queue_capacity_;
  EventBus& bus_;
  SubscriptionId sub_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::string buffer_;
  std::chrono::steady_clock::time_point oldest_{};  // when buffer_ became non-empty
  bool stopping_ = false;
  bool started_ = false;
  std::thread flusher_;
  std::uint64_t lines_ = 0;
  std::uint64_t write_errors_ = 0;
  bool error_logged_ = false;
};

}  // namespace tracehost::host
