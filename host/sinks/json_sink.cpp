#include "host/sinks/json_sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "host/config_util.hpp"
#include "host/logging.hpp"
#include "host/render.hpp"
#include "host/sinks/sigpipe_guard.hpp"

namespace tracehost::host {

Result<JsonSinkOptions> json_sink_options(const toml::table& table,
                                          const std::filesystem::path& config_path,
                                          std::string_view table_name) {
  JsonSinkOptions o;
  TH_ASSIGN_OR_RETURN(o.path, get_string(table, "path", "-", config_path, table_name));
  if (o.path.empty()) {
    return config_error(*table.get("path"), config_path, std::string(table_name) + ".path",
                        "is empty; use \"-\" for stdout or a file path");
  }
  TH_ASSIGN_OR_RETURN(o.filter, EventFilter::from_table(table, config_path, table_name));
  return o;
}

Result<std::unique_ptr<JsonSink>> JsonSink::make(std::string name, JsonSinkOptions options,
                                                 EventBus& bus) {
  UniqueFd owned;
  int fd = STDOUT_FILENO;
  if (options.path != "-") {
    owned.reset(::open(options.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!owned) {
      const int err = errno;
      return Error(ErrorKind::kConfig,
                   "cannot open '" + options.path + "' for appending: " + std::strerror(err) +
                       "; create its directory, fix the permissions, or set path = \"-\" for "
                       "stdout",
                   err);
    }
    fd = owned.get();
  }
  return std::unique_ptr<JsonSink>(new JsonSink(std::move(name), std::move(owned), fd,
                                                std::move(options.path), std::move(options.filter),
                                                options.queue_capacity, bus));
}

std::unique_ptr<JsonSink> JsonSink::for_fd(std::string name, int fd, EventFilter filter,
                                           EventBus& bus) {
  return std::unique_ptr<JsonSink>(
      new JsonSink(std::move(name), UniqueFd(), fd, "<fd>", std::move(filter), 65536, bus));
}

JsonSink::JsonSink(std::string name, UniqueFd owned, int fd, std::string path, EventFilter filter,
                   std::size_t queue_capacity, EventBus& bus)
    : name_(std::move(name)),
      owned_(std::move(owned)),
      fd_(fd),
      path_(std::move(path)),
      filter_(std::move(filter)),
      queue_capacity_(queue_capacity),
      bus_(bus) {
  buffer_.reserve(kFlushBytes + 64 * 1024);
}

JsonSink::~JsonSink() { stop(); }

Status JsonSink::start() {
  if (started_) return ok();
  SubscribeOptions so;
  so.name = name_;
  so.queue_capacity = queue_capacity_;
  TH_ASSIGN_OR_RETURN(sub_, bus_.subscribe(
                                "sink:" + name_, filter_.topics(),
                                [this](std::span<const th_event> ev) { write_batch(ev); }, so));
  started_ = true;
  flusher_ = std::thread([this] { flusher_loop(); });
  return ok();
}

void JsonSink::stop() {
  if (!started_) {
    flush();
    return;
  }
  started_ = false;
  // The App drained the bus before stopping sinks: what is still queued arrives here first.
  (void)bus_.unsubscribe(sub_);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  flush();
}

void JsonSink::write_batch(std::span<const th_event> events) {
  std::lock_guard lock(mu_);
  if (buffer_.empty()) oldest_ = std::chrono::steady_clock::now();
  for (const th_event& e : events) {
    if (!filter_.matches(e)) continue;
    append_event_json(buffer_, e);
    buffer_ += '\n';
    ++lines_;
    if (buffer_.size() >= kFlushBytes) {
      flush_locked();
      oldest_ = std::chrono::steady_clock::now();
    }
  }
}

void JsonSink::flush() {
  std::lock_guard lock(mu_);
  flush_locked();
}

void JsonSink::flush_locked() {
  if (buffer_.empty()) return;
  SigpipeGuard no_sigpipe;
  const char* p = buffer_.data();
  std::size_t left = buffer_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      ++write_errors_;
      if (!error_logged_) {
        component_logger("json")->error(
            "sink '{}': writing to {} failed: {}; events are being lost", name_,
            path_ == "-" ? std::string("stdout") : "'" + path_ + "'", std::strerror(errno));
        error_logged_ = true;
      }
      break;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  buffer_.clear();
}

void JsonSink::flusher_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, kFlushInterval / 4, [this] { return stopping_; });
    // Flush when the oldest buffered line has waited a flush interval (or is about to).
    if (!buffer_.empty() &&
        std::chrono::steady_clock::now() - oldest_ >= kFlushInterval - kFlushInterval / 4) {
      flush_locked();
    }
  }
}

}  // namespace tracehost::host
