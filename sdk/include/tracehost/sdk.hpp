// The tracehost plugin SDK: header-only C++20 on top of the C ABI in plugin_api.h.
//
// A plugin is a class derived from tracehost::Plugin plus one TRACEHOST_PLUGIN(...) line:
//
//   class HelloPlugin final : public tracehost::Plugin {
//    public:
//     static std::vector<tracehost::ConfigKey> config_keys();          // optional
//     static std::vector<tracehost::EventSchema> topics();             // optional
//     static std::vector<tracehost::MetricFamily> metric_families();   // optional
//
//     explicit HelloPlugin(tracehost::Host& host);   // or a default constructor, or
//     // static tracehost::Result<std::unique_ptr<HelloPlugin>> make(tracehost::Host& host);
//     tracehost::Status start(tracehost::Host& host) override;
//     void stop() override;                          // optional
//   };
//   TRACEHOST_PLUGIN(HelloPlugin, "hello", "1.0.0", "says hello");
//
// The macro builds the descriptor from the static tables once (function-local statics, so the
// descriptor's pointers stay valid while the library is loaded), exports it through a Boost.DLL
// alias named `tracehost_plugin`, and wraps create/start/stop/destroy so that no exception
// crosses the C boundary. See docs/writing-a-plugin.md.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/dll/alias.hpp>

#include "tracehost/config.hpp"
#include "tracehost/detail.hpp"
#include "tracehost/host.hpp"
#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"
#include "tracehost/schema.hpp"

namespace tracehost {

// The base of every plugin. The SDK constructs it in `create`, calls start() once, stop() once
// (only after a successful start) and destroys it; all on the host's main thread.
class Plugin {
 public:
  Plugin() = default;
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;
  Plugin(Plugin&&) = delete;
  Plugin& operator=(Plugin&&) = delete;
  virtual ~Plugin() = default;

  // Opens, loads and attaches BPF, binds ring buffers and maps, subscribes. An error here makes
  // the host detach and close everything this plugin created and destroy it; other plugins keep
  // running (unless the config marks this one `required`).
  virtual Status start(Host& host) = 0;

  // Stops the plugin's own threads. Must not fail; exceptions are logged and swallowed. Probes
  // are still attached while it runs and detached by the host right after.
  virtual void stop() {}
};

// An exception carrying a typed Error. The export wrappers turn it into the Error's kind and
// message; any other exception becomes TH_ERR_INTERNAL with its what().
class Exception : public std::runtime_error {
 public:
  explicit Exception(Error error)
      : std::runtime_error(error.describe()), error_(std::move(error)) {}
  [[nodiscard]] const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

[[noreturn]] inline void raise(Error error) { throw Exception(std::move(error)); }

// The value of a Result, or throws its Error as tracehost::Exception. For code where
// propagating with TH_TRY is impractical (constructors, callbacks with no return channel).
template <typename T>
T unwrap(Result<T> result) {
  if (!result.ok()) raise(std::move(result).error());
  return std::move(result).value();
}
inline void unwrap(Status status) {
  if (!status.ok()) raise(std::move(status).error());
}

namespace detail {

// ---- the pieces behind TRACEHOST_PLUGIN ------------------------------------------------------

constexpr bool valid_plugin_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// What `th_instance*` points to. The Host outlives the plugin object (declared first, destroyed
// last), so the plugin may keep `Host&` for its whole life.
struct Instance {
  explicit Instance(const th_host_api* api) : host(api) {}
  Host host;
  std::unique_ptr<Plugin> plugin;
};

inline void fill_error(th_error* err, ErrorKind kind, const std::string& message) noexcept {
  try {
    Error(kind, message).to_c(err);
  } catch (...) {
    if (err != nullptr) {
      err->struct_size = sizeof(th_error);
      err->status = static_cast<std::int32_t>(kind);
      err->sys_errno = 0;
      std::strncpy(err->message, "out of memory while reporting an error", TH_ERROR_MESSAGE_MAX);
      err->message[TH_ERROR_MESSAGE_MAX - 1] = '\0';
    }
  }
}

// Runs `body` (returning Status) and maps every outcome to a th_status + th_error.
template <typename Body>
th_status guarded(std::string_view what, th_error* err, Body&& body) noexcept {
  try {
    Status st = body();
    if (st.ok()) return TH_OK;
    st.error().to_c(err);
    return static_cast<th_status>(st.error().kind());
  } catch (const Exception& e) {
    e.error().to_c(err);
    return static_cast<th_status>(e.error().kind());
  } catch (const Error& e) {
    e.to_c(err);
    return static_cast<th_status>(e.kind());
  } catch (const std::bad_alloc&) {
    fill_error(err, ErrorKind::kInternal, std::string(what) + ": out of memory");
  } catch (const std::exception& e) {
    fill_error(err, ErrorKind::kInternal, std::string(what) + " threw an exception: " + e.what());
  } catch (...) {
    fill_error(err, ErrorKind::kInternal, std::string(what) + " threw a non-std exception");
  }
  return TH_ERR_INTERNAL;
}

template <typename P>
Result<std::unique_ptr<P>> construct(Host& host) {
  if constexpr (requires(Host & h) {
                  { P::make(h) } -> std::convertible_to<Result<std::unique_ptr<P>>>;
                }) {
    return P::make(host);
  } else if constexpr (std::is_constructible_v<P, Host&>) {
    return std::make_unique<P>(host);
  } else {
    static_assert(std::is_default_constructible_v<P>,
                  "a plugin needs a constructor taking (tracehost::Host&), a default "
                  "constructor, or static Result<std::unique_ptr<P>> make(tracehost::Host&)");
    return std::make_unique<P>();
  }
}

template <typename P>
struct Entry {
  static th_status create(const th_host_api* api, th_instance** out, th_error* err) noexcept {
    if (out != nullptr) *out = nullptr;
    if (api == nullptr || out == nullptr) {
      fill_error(err, ErrorKind::kInvalidArgument, "create called without host services");
      return TH_ERR_INVALID_ARGUMENT;
    }
    if (api->api_major != TRACEHOST_PLUGIN_API_MAJOR) {
      fill_error(err, ErrorKind::kAbi,
                 concat("plugin built for plugin API ", TRACEHOST_PLUGIN_API_MAJOR, ".",
                        TRACEHOST_PLUGIN_API_MINOR, ", host provides ", api->api_major, ".",
                        api->api_minor));
      return TH_ERR_ABI;
    }
    std::unique_ptr<Instance> inst;
    th_status st = guarded("plugin constructor", err, [&]() -> Status {
      inst = std::make_unique<Instance>(api);
      TH_ASSIGN_OR_RETURN(std::unique_ptr<P> plugin, construct<P>(inst->host));
      if (plugin == nullptr) return Error(ErrorKind::kInternal, "make() returned no plugin");
      inst->plugin = std::move(plugin);
      return ok();
    });
    if (st != TH_OK) {
      destroy_instance(std::move(inst));
      return st;
    }
    *out = static_cast<th_instance*>(inst.release());
    return TH_OK;
  }

  static th_status start(th_instance* raw, th_error* err) noexcept {
    auto* inst = static_cast<Instance*>(raw);
    if (inst == nullptr || inst->plugin == nullptr) {
      fill_error(err, ErrorKind::kInvalidArgument, "start called without an instance");
      return TH_ERR_INVALID_ARGUMENT;
    }
    return guarded("start()", err, [&] { return inst->plugin->start(inst->host); });
  }

  static void stop(th_instance* raw) noexcept {
    auto* inst = static_cast<Instance*>(raw);
    if (inst == nullptr || inst->plugin == nullptr) return;
    try {
      inst->plugin->stop();
    } catch (const std::exception& e) {
      inst->host.log().error("stop() threw (ignored): ", e.what());
    } catch (...) {
      inst->host.log().error("stop() threw a non-std exception (ignored)");
    }
  }

  static void destroy(th_instance* raw) noexcept {
    destroy_instance(std::unique_ptr<Instance>(static_cast<Instance*>(raw)));
  }

  // Subscriptions end before the plugin object goes: their callables may refer to it.
  static void destroy_instance(std::unique_ptr<Instance> inst) noexcept {
    if (inst == nullptr) return;
    inst->host.unsubscribe_all();
    inst->plugin.reset();  // destructors are noexcept: a throwing one terminates, as anywhere
    inst.reset();
  }
};

// The descriptor's tables, built in place once and never moved: the C arrays point into the
// C++ builders next to them.
template <typename P>
class DescriptorTables {
 public:
  DescriptorTables(const char* name, const char* version, const char* description) {
    if constexpr (requires { P::config_keys(); }) {
      for (auto& k : P::config_keys()) keys_.push_back(std::move(k));
    }
    if constexpr (requires { P::topics(); }) {
      for (auto& t : P::topics()) topics_.push_back(std::move(t));
    }
    if constexpr (requires { P::metric_families(); }) {
      for (auto& f : P::metric_families()) families_.push_back(std::move(f));
    }
    for (auto& k : keys_) c_keys_.push_back(k.c());
    for (auto& t : topics_) c_topics_.push_back(t.c());
    for (auto& f : families_) c_families_.push_back(f.c());

    desc_.struct_size = sizeof(th_plugin_descriptor);
    desc_.api_major = TRACEHOST_PLUGIN_API_MAJOR;
    desc_.api_minor = TRACEHOST_PLUGIN_API_MINOR;
    desc_.name = name;
    desc_.version = version;
    desc_.description = description;
    desc_.config_keys = c_keys_.empty() ? nullptr : c_keys_.data();
    desc_.config_key_count = c_keys_.size();
    desc_.topics = c_topics_.empty() ? nullptr : c_topics_.data();
    desc_.topic_count = c_topics_.size();
    desc_.metrics = c_families_.empty() ? nullptr : c_families_.data();
    desc_.metric_count = c_families_.size();
    desc_.create = &Entry<P>::create;
    desc_.start = &Entry<P>::start;
    desc_.stop = &Entry<P>::stop;
    desc_.destroy = &Entry<P>::destroy;
  }
  DescriptorTables(const DescriptorTables&) = delete;
  DescriptorTables& operator=(const DescriptorTables&) = delete;

  [[nodiscard]] const th_plugin_descriptor* descriptor() const noexcept { return &desc_; }

 private:
  std::vector<ConfigKey> keys_;
  std::vector<EventSchema> topics_;
  std::vector<MetricFamily> families_;
  std::vector<th_config_key> c_keys_;
  std::vector<th_event_schema> c_topics_;
  std::vector<th_metric_family> c_families_;
  th_plugin_descriptor desc_{};
};

// When building the tables throws (a plugin's static function failed), the plugin still loads
// far enough to be refused with the reason: its create reports it.
inline std::string& descriptor_failure() {
  static std::string text;
  return text;
}
inline th_status failed_create(const th_host_api*, th_instance** out, th_error* err) noexcept {
  if (out != nullptr) *out = nullptr;
  fill_error(err, ErrorKind::kInternal, descriptor_failure());
  return TH_ERR_INTERNAL;
}
inline th_status failed_start(th_instance*, th_error* err) noexcept {
  fill_error(err, ErrorKind::kInternal, descriptor_failure());
  return TH_ERR_INTERNAL;
}
inline void failed_destroy(th_instance*) noexcept {}

template <typename P>
const th_plugin_descriptor* descriptor(const char* name, const char* version,
                                       const char* description) noexcept {
  static_assert(std::is_base_of_v<Plugin, P>, "TRACEHOST_PLUGIN needs a tracehost::Plugin");
  try {
    static const DescriptorTables<P> tables(name, version, description);
    return tables.descriptor();
  } catch (const std::exception& e) {
    static th_plugin_descriptor broken{};
    try {
      descriptor_failure() =
          std::string("building the plugin's descriptor tables failed: ") + e.what();
    } catch (...) {
    }
    broken.struct_size = sizeof(th_plugin_descriptor);
    broken.api_major = TRACEHOST_PLUGIN_API_MAJOR;
    broken.api_minor = TRACEHOST_PLUGIN_API_MINOR;
    broken.name = name;
    broken.version = version;
    broken.description = description;
    broken.create = &failed_create;
    broken.start = &failed_start;
    broken.destroy = &failed_destroy;
    return &broken;
  }
}

}  // namespace detail
}  // namespace tracehost

// Exports plugin class `Class` as "name" (lower-case [a-z0-9_]+, the [plugins.name] table).
// Use once per shared object, at namespace scope, followed by a semicolon.
// The exported symbol is the Boost.DLL alias `tracehost_plugin`: a default-visibility `const
// void*` in section "boostdll" holding the address of the descriptor function, so it is exported
// even when the plugin is built with -fvisibility=hidden.
#define TRACEHOST_PLUGIN(Class, name, version, description)                    \
  static_assert(::tracehost::detail::valid_plugin_name(name),                  \
                "plugin name must be non-empty [a-z0-9_]+");                   \
  namespace tracehost_plugin_export_ {                                         \
  inline const th_plugin_descriptor* descriptor() noexcept {                   \
    return ::tracehost::detail::descriptor<Class>(name, version, description); \
  }                                                                            \
  }                                                                            \
  BOOST_DLL_ALIAS(tracehost_plugin_export_::descriptor, tracehost_plugin)      \
  static_assert(true, "")
