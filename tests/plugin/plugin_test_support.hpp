// A host for the plugin tests: bus, registries, poller and a PluginManager wired like App does,
// torn down in App's shutdown order, plus helpers to load the purpose-built plugin libraries.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "good.h"
#include "host/config.hpp"
#include "host/event_bus.hpp"
#include "host/host_services.hpp"
#include "host/map_registry.hpp"
#include "host/metrics.hpp"
#include "host/plugin_manager.hpp"
#include "host/ringbuf_poller.hpp"

namespace tracehost::plugin_test {

namespace fs = std::filesystem;

// <build>/tests/plugin/<case>/tracehost_<name>.so
inline fs::path case_library(const std::string& case_dir, const std::string& name) {
  return fs::path(TRACEHOST_TEST_PLUGIN_CASES) / case_dir / ("tracehost_" + name + ".so");
}
inline fs::path case_library(const std::string& name) { return case_library(name, name); }

// Waits up to `timeout` for `pred`.
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

class TestHost {
 public:
  // with_poller: ring buffers can be bound (needs BPF privileges to be useful)
  explicit TestHost(bool with_poller) {
    if (with_poller) {
      auto p = host::RingbufPoller::make(bus_);
      if (p.ok())
        poller_ = std::move(p).value();
      else
        ADD_FAILURE() << p.error().describe();
    }
    core_ = std::make_unique<host::HostCore>(
        host::HostCore{bus_, metrics_, maps_, poller_.get(), true});
    manager_ = std::make_unique<host::PluginManager>(*core_);
    auto sub = bus_.subscribe("test", "good.*", [this](std::span<const th_event> events) {
      std::lock_guard lock(mu_);
      for (const th_event& e : events) {
        if (std::string_view(e.topic) == "good.sys_enter" && e.size >= sizeof(good_event)) {
          good_event rec{};
          std::memcpy(&rec, e.data, sizeof(rec));
          sys_enter_.push_back(rec);
        } else if (std::string_view(e.topic) == "good.hello") {
          ++hello_;
        }
      }
    });
    if (sub.ok())
      subscription_ = *sub;
    else
      ADD_FAILURE() << sub.error().describe();
  }

  // App's shutdown order: poller, stop plugins, drain, kernel objects, instances, libraries.
  ~TestHost() {
    if (poller_) poller_->stop();
    manager_->stop_all();
    bus_.drain(std::chrono::seconds(5));
    if (subscription_ != 0) (void)bus_.unsubscribe(subscription_);
    manager_->close_kernel_objects();
    manager_->destroy_all();
    manager_->unload_all();
    bus_.stop();
    manager_.reset();
  }

  TestHost(const TestHost&) = delete;
  TestHost& operator=(const TestHost&) = delete;

  host::PluginManager& manager() { return *manager_; }
  host::MetricRegistry& metrics() { return metrics_; }
  host::EventBus& bus() { return bus_; }

  Status start() {
    if (poller_) TH_TRY(poller_->start());
    return manager_->start_all();
  }

  // Opens a test library and adds it with `plugin_toml` as its [plugins.NAME] table body.
  Status add(const fs::path& library, const std::string& name, const std::string& plugin_toml,
             bool required = false) {
    TH_ASSIGN_OR_RETURN(auto lib, host::PluginLibrary::open(library));
    std::string text = "[plugins." + name + "]\nenabled = true\n" + plugin_toml + "\n";
    TH_ASSIGN_OR_RETURN(host::Config cfg, host::parse_config(text, "plugin_test.toml", nullptr));
    const host::PluginSection* section = cfg.find_plugin(name);
    if (section == nullptr) return Error(ErrorKind::kInternal, "no section for " + name);
    TH_ASSIGN_OR_RETURN(host::PluginConfig pc, host::validate_plugin_table(*lib, cfg, *section));
    return manager_->add(std::move(lib), std::move(pc), required);
  }

  Status add_good() {
    return add(case_library("good"), "good", "target_tgid = " + std::to_string(::getpid()));
  }

  [[nodiscard]] std::optional<host::PluginStatus> status(const std::string& name) const {
    for (auto& s : manager_->statuses()) {
      if (s.name == name) return s;
    }
    return std::nullopt;
  }

  std::size_t sys_enter_count(std::int64_t nr) {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& e : sys_enter_) {
      if (e.nr == nr && e.pid == static_cast<__u32>(::getpid())) ++n;
    }
    return n;
  }
  std::size_t hello_count() {
    std::lock_guard lock(mu_);
    return hello_;
  }

  // Value of a plugin-fed or map-bound series: family full name, label values.
  std::optional<double> series_value(const std::string& family,
                                     const std::vector<std::string>& labels = {}) {
    host::MetricsSnapshot snap = metrics_.collect();
    const host::FamilySnapshot* f = snap.find(family);
    if (f == nullptr) return std::nullopt;
    for (const auto& s : f->series) {
      if (s.label_values == labels) return s.value;
    }
    return std::nullopt;
  }

 private:
  host::EventBus bus_;
  host::MetricRegistry metrics_;
  host::MapRegistry maps_;
  std::unique_ptr<host::RingbufPoller> poller_;
  std::unique_ptr<host::HostCore> core_;
  std::unique_ptr<host::PluginManager> manager_;
  host::SubscriptionId subscription_ = 0;

  std::mutex mu_;
  std::vector<good_event> sys_enter_;
  std::size_t hello_ = 0;
};

// Names (as the kernel keeps them: at most 15 characters) of the BPF programs this process holds,
// through program fds or link fds. A plugin that failed must leave none of its programs behind.
inline std::set<std::string> programs_held_by_this_process() {
  std::set<std::uint32_t> ids;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    fs::path target = fs::read_symlink(entry.path(), ec);
    if (ec) continue;
    std::string t = target.string();
    if (t != "anon_inode:bpf-prog" && t != "anon_inode:bpf_link") continue;
    std::ifstream info("/proc/self/fdinfo/" + entry.path().filename().string());
    std::string line;
    while (std::getline(info, line)) {
      if (line.rfind("prog_id:", 0) == 0)
        ids.insert(static_cast<std::uint32_t>(std::stoul(line.substr(8))));
    }
  }
  std::set<std::string> names;
  for (std::uint32_t id : ids) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    std::uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) names.insert(info.name);
    ::close(fd);
  }
  return names;
}

}  // namespace tracehost::plugin_test
