#include "host/plugin_manager.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <exception>
#include <fstream>
#include <set>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "host/config_util.hpp"
#include "host/plugin_abi.hpp"

namespace tracehost::host {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPrefix = "tracehost_";
constexpr std::string_view kSuffix = ".so";

std::string mode_text(mode_t mode) { return fmt::format("{:04o}", mode & 07777); }

Status check_path_security(const fs::path& p, bool is_dir, const fs::path& loading) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) {
    int e = errno;
    return Error(e == ENOENT ? ErrorKind::kNotFound : ErrorKind::kPermission,
                 "cannot stat " + p.string() + ": " + std::strerror(e), e);
  }
  const uid_t euid = ::geteuid();
  std::string subject = is_dir ? "its directory " + p.string() : p.string();
  if (st.st_uid != 0 && st.st_uid != euid) {
    return Error(ErrorKind::kPermission, "refusing to load " + loading.string() + ": " + subject +
                                             " is owned by uid " + std::to_string(st.st_uid) +
                                             ", neither root nor the current user (uid " +
                                             std::to_string(euid) + "); fix: chown " +
                                             std::to_string(euid) + " " + p.string());
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error(ErrorKind::kPermission,
                 "refusing to load " + loading.string() + ": " + subject +
                     " is group/world-writable (mode " + mode_text(st.st_mode) +
                     "), so another user could replace the code; fix: chmod go-w " + p.string());
  }
  if (!is_dir && !S_ISREG(st.st_mode)) {
    return Error(ErrorKind::kInvalidArgument,
                 "refusing to load " + loading.string() + ": not a regular file");
  }
  return ok();
}

// Calls into plugin code with exceptions caught: the SDK's macro catches them, but a plugin
// written against the bare C API may not, and an exception must never unwind through the host.
template <typename F>
Status call_plugin(const std::string& plugin, std::string_view stage, F&& f) {
  try {
    th_error err{};
    err.struct_size = sizeof(err);
    th_status st = f(&err);
    if (st == TH_OK) return ok();
    return Error::from_c(st, err).with_context("plugin " + plugin + ": " + std::string(stage));
  } catch (const std::exception& e) {
    return Error(ErrorKind::kInternal, std::string("threw an exception: ") + e.what())
        .with_context("plugin " + plugin + ": " + std::string(stage));
  } catch (...) {
    return Error(ErrorKind::kInternal, "threw an unknown exception")
        .with_context("plugin " + plugin + ": " + std::string(stage));
  }
}

template <typename F>
void call_plugin_void(const std::string& plugin, std::string_view stage, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::error("plugin {}: {} threw an exception: {}", plugin, stage, e.what());
  } catch (...) {
    spdlog::error("plugin {}: {} threw an unknown exception", plugin, stage);
  }
}

}  // namespace

std::string plugin_file_name(std::string_view plugin) {
  return std::string(kPrefix) + std::string(plugin) + std::string(kSuffix);
}

Result<std::vector<fs::path>> discover_plugins(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Error(ErrorKind::kNotFound,
                 "plugin directory " + dir.string() +
                     " does not exist; set [host] plugin_dir or pass --plugin-dir");
  }
  std::vector<fs::path> out;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return Error(ErrorKind::kPermission,
                 "cannot read plugin directory " + dir.string() + ": " + ec.message(), ec.value());
  }
  for (const auto& entry : it) {
    std::string name = entry.path().filename().string();
    if (name.size() > kPrefix.size() + kSuffix.size() && name.starts_with(kPrefix) &&
        name.ends_with(kSuffix)) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status check_plugin_file_security(const fs::path& file) {
  fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  TH_TRY(check_path_security(dir, true, file));
  std::error_code ec;
  fs::path real = fs::canonical(file, ec);
  if (ec) {
    return Error(
        ec == std::errc::no_such_file_or_directory ? ErrorKind::kNotFound : ErrorKind::kPermission,
        "cannot resolve " + file.string() + ": " + ec.message(), ec.value());
  }
  // A symlink is as trustworthy as what it points to and the directory that holds that.
  if (real.parent_path() != fs::weakly_canonical(dir, ec)) {
    TH_TRY(check_path_security(real.parent_path(), true, file));
  }
  return check_path_security(real, false, file);
}

Status check_elf_shared_object(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error(ErrorKind::kNotFound, "cannot open " + file.string(), errno);
  unsigned char ident[EI_NIDENT] = {};
  in.read(reinterpret_cast<char*>(ident), sizeof(ident));
  if (in.gcount() < static_cast<std::streamsize>(SELFMAG) ||
      std::memcmp(ident, ELFMAG, SELFMAG) != 0) {
    return Error(ErrorKind::kAbi, file.string() +
                                      " is not an ELF file (no ELF magic); a plugin is a shared "
                                      "object built with tracehost_add_plugin()");
  }
  if (ident[EI_CLASS] != ELFCLASS64) {
    return Error(ErrorKind::kAbi, file.string() + " is a 32-bit ELF file; the host is 64-bit");
  }
  Elf64_Ehdr ehdr{};
  in.seekg(0);
  in.read(reinterpret_cast<char*>(&ehdr), sizeof(ehdr));
  if (in.gcount() != static_cast<std::streamsize>(sizeof(ehdr))) {
    return Error(ErrorKind::kAbi, file.string() + " is a truncated ELF file");
  }
  if (ehdr.e_type != ET_DYN) {
    return Error(ErrorKind::kAbi, file.string() + " is an ELF file but not a shared object (type " +
                                      std::to_string(ehdr.e_type) + ")");
  }
#if defined(__x86_64__)
  constexpr unsigned kMachine = EM_X86_64;
#elif defined(__aarch64__)
  constexpr unsigned kMachine = EM_AARCH64;
#else
  constexpr unsigned kMachine = 0;
#endif
  if (kMachine != 0 && ehdr.e_machine != kMachine) {
    return Error(ErrorKind::kAbi, file.string() +
                                      " is built for another CPU architecture (ELF "
                                      "machine " +
                                      std::to_string(ehdr.e_machine) + ", host " +
                                      std::to_string(kMachine) + ")");
  }
  return ok();
}

Status check_api_version(std::uint32_t major, std::uint32_t minor) {
  if (major == TRACEHOST_PLUGIN_API_MAJOR && minor <= TRACEHOST_PLUGIN_API_MINOR) return ok();
  return Error(ErrorKind::kAbi,
               fmt::format("built for plugin API {}.{}, host provides {}.{}", major, minor,
                           TRACEHOST_PLUGIN_API_MAJOR, TRACEHOST_PLUGIN_API_MINOR));
}

// ---- PluginLibrary -----------------------------------------------------------------------------

Result<std::unique_ptr<PluginLibrary>> PluginLibrary::open(const fs::path& file) {
  auto fail = [&](const Error& e) { return e.with_context(file.string()); };
  // Nothing of the file runs before these checks: dlopen executes its constructors.
  TH_TRY(check_plugin_file_security(file));
  TH_TRY(check_elf_shared_object(file));

  std::unique_ptr<PluginLibrary> lib(new PluginLibrary());
  lib->path_ = file;
  boost::dll::fs::error_code ec;
  ::dlerror();  // clear a stale message
  lib->lib_.load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec || !lib->lib_.is_loaded()) {
    const char* dl = ::dlerror();
    std::string why = dl != nullptr ? dl : ec.message();
    auto pos = why.find("undefined symbol: ");
    if (pos != std::string::npos) {
      return fail(Error(ErrorKind::kAbi,
                        "unresolved symbol " + why.substr(pos + 18) +
                            ": the plugin needs a symbol that neither the host nor its libraries "
                            "provide (build plugins with -Wl,--no-undefined to catch this at "
                            "link time)"));
    }
    return fail(Error(ErrorKind::kLoadFailed, "dlopen failed: " + why));
  }

  if (!lib->lib_.has(TRACEHOST_PLUGIN_SYMBOL)) {
    return fail(Error(ErrorKind::kAbi, "does not export '" TRACEHOST_PLUGIN_SYMBOL
                                       "': not a tracehost plugin, or built without "
                                       "TRACEHOST_PLUGIN(...)"));
  }
  if (lib->lib_.get<const void*>(TRACEHOST_PLUGIN_SYMBOL) == nullptr) {
    return fail(Error(ErrorKind::kAbi, "'" TRACEHOST_PLUGIN_SYMBOL "' is NULL"));
  }
  auto& entry = lib->lib_.get_alias<const th_plugin_descriptor*()>(TRACEHOST_PLUGIN_SYMBOL);
  const th_plugin_descriptor* d = nullptr;
  try {
    d = entry();
  } catch (const std::exception& e) {
    return fail(Error(ErrorKind::kAbi, std::string("descriptor function threw: ") + e.what()));
  } catch (...) {
    return fail(Error(ErrorKind::kAbi, "descriptor function threw an exception"));
  }
  if (d == nullptr) return fail(Error(ErrorKind::kAbi, "descriptor function returned NULL"));

  // Versions first (their place is fixed in every API version), then sizes.
  std::uint32_t size = 0, major = 0, minor = 0;
  std::memcpy(&size, d, sizeof(size));
  constexpr std::size_t kVersionEnd = offsetof(th_plugin_descriptor, api_minor) + sizeof(minor);
  if (size < kVersionEnd || size > kMaxAbiStructSize) {
    return fail(Error(ErrorKind::kAbi, "descriptor struct_size " + std::to_string(size) +
                                           " is not sane (expected at least " +
                                           std::to_string(sizeof(th_plugin_descriptor)) + ")"));
  }
  const auto* raw = reinterpret_cast<const unsigned char*>(d);
  std::memcpy(&major, raw + offsetof(th_plugin_descriptor, api_major), sizeof(major));
  std::memcpy(&minor, raw + offsetof(th_plugin_descriptor, api_minor), sizeof(minor));
  if (auto v = check_api_version(major, minor); !v.ok()) return fail(v.error());
  auto desc = abi_read<th_plugin_descriptor>(d, "plugin descriptor");
  if (!desc.ok()) return fail(desc.error());
  lib->desc_ = *desc;

  const th_plugin_descriptor& pd = lib->desc_;
  if (pd.name == nullptr || !valid_plugin_name(pd.name)) {
    return fail(
        Error(ErrorKind::kAbi, "plugin name '" + abi_string(pd.name) + "' is not [a-z0-9_]+"));
  }
  lib->name_ = pd.name;
  std::string expected = plugin_file_name(lib->name_);
  if (file.filename() != expected) {
    return fail(Error(ErrorKind::kAbi, "plugin '" + lib->name_ + "' must be installed as " +
                                           expected + " (file name and descriptor name differ)"));
  }
  if (pd.create == nullptr || pd.start == nullptr || pd.destroy == nullptr) {
    return fail(Error(ErrorKind::kAbi, "plugin '" + lib->name_ +
                                           "' lacks a required callback (create, start, destroy)"));
  }
  lib->version_ = abi_string(pd.version);
  lib->description_ = abi_string(pd.description);

  auto keys = read_config_keys(pd.config_keys, pd.config_key_count, lib->name_);
  if (!keys.ok()) return fail(keys.error());
  lib->keys_ = std::move(keys).value();

  auto topics = abi_read_array(pd.topics, pd.topic_count, "descriptor topics");
  if (!topics.ok()) return fail(topics.error());
  for (std::size_t i = 0; i < topics->size(); ++i) {
    auto n = normalize_schema(pd.topics == nullptr ? nullptr : &(*topics)[i],
                              "descriptor topic #" + std::to_string(i));
    if (!n.ok()) return fail(n.error());
    if (n->schema.topic == nullptr) {
      return fail(
          Error(ErrorKind::kAbi, "descriptor topic #" + std::to_string(i) + " has no topic name"));
    }
    lib->topics_.push_back(std::move(n).value());
  }
  // NormalizedSchema owns its field vector; re-point after the vector stopped moving.
  for (auto& t : lib->topics_) t.schema.fields = t.fields.empty() ? nullptr : t.fields.data();

  auto metrics = abi_read_array(pd.metrics, pd.metric_count, "descriptor metrics");
  if (!metrics.ok()) return fail(metrics.error());
  lib->metrics_ = std::move(metrics).value();
  for (std::size_t i = 0; i < lib->metrics_.size(); ++i) {
    if (lib->metrics_[i].name == nullptr) {
      return fail(
          Error(ErrorKind::kAbi, "descriptor metric #" + std::to_string(i) + " has no name"));
    }
  }
  return lib;
}

Result<PluginConfig> validate_plugin_table(const PluginLibrary& lib, const Config& config,
                                           const PluginSection& section) {
  return validate_plugin_config(lib.config_keys(), section.table, config.file, section.name);
}

std::string_view to_string(PluginState state) noexcept {
  switch (state) {
    case PluginState::kLoaded:
      return "loaded";
    case PluginState::kCreated:
      return "created";
    case PluginState::kRunning:
      return "running";
    case PluginState::kStopped:
      return "stopped";
    case PluginState::kFailed:
      return "failed";
    case PluginState::kDestroyed:
      return "destroyed";
  }
  return "unknown";
}

// ---- PluginManager
// -------------------------------------------------------------------------------

struct PluginManager::Instance {
  // Declared first so it is destroyed last: everything below may refer to its code.
  std::unique_ptr<PluginLibrary> lib;
  std::string name;
  bool required = false;
  PluginConfig config;
  std::unique_ptr<PluginContext> ctx;
  th_instance* instance = nullptr;
  bool created = false;
  bool started = false;  // start() returned OK: stop() is due
  PluginState state = PluginState::kLoaded;
  std::optional<Error> error;
};

PluginManager::PluginManager(HostCore& core) : core_(core) {}

PluginManager::~PluginManager() { shutdown(); }

Status PluginManager::add(std::unique_ptr<PluginLibrary> lib, PluginConfig config, bool required) {
  std::lock_guard lock(mu_);
  for (const auto& p : plugins_) {
    if (p->name == lib->name()) {
      return Error(ErrorKind::kConfig, "plugin '" + lib->name() + "' is loaded twice (" +
                                           (p->lib ? p->lib->path().string() : p->name) + " and " +
                                           lib->path().string() + ")");
    }
  }
  auto p = std::make_unique<Instance>();
  p->name = lib->name();
  p->lib = std::move(lib);
  p->config = std::move(config);
  p->required = required;
  plugins_.push_back(std::move(p));
  return ok();
}

Status PluginManager::load(const Config& config) {
  const fs::path& dir = config.host.plugin_dir;
  for (const PluginSection* s : config.enabled_plugins()) {
    fs::path file = dir / plugin_file_name(s->name);
    std::error_code ec;
    if (!fs::exists(file, ec)) {
      std::string available;
      if (auto found = discover_plugins(dir); found.ok()) {
        for (const auto& f : *found) {
          std::string n = f.filename().string();
          n = n.substr(kPrefix.size(), n.size() - kPrefix.size() - kSuffix.size());
          available += available.empty() ? n : ", " + n;
        }
      }
      std::string msg =
          "plugin '" + s->name + "' is enabled but " + file.string() + " does not exist; ";
      msg += available.empty() ? "no plugins are installed in " + dir.string()
                               : "plugins in " + dir.string() + ": " + available;
      if (s->table != nullptr) {
        return Error(ErrorKind::kConfig, where(*s->table, config.file) + ": " + msg);
      }
      return Error(ErrorKind::kConfig, msg);
    }
    auto lib = PluginLibrary::open(file);
    if (!lib.ok()) {
      Error e = lib.error().with_context("plugin " + s->name);
      if (s->required) return e;
      spdlog::error("{} (not required: continuing without it)", e.describe());
      std::lock_guard lock(mu_);
      auto p = std::make_unique<Instance>();
      p->name = s->name;
      p->state = PluginState::kFailed;
      p->error = e;
      plugins_.push_back(std::move(p));
      continue;
    }
    TH_ASSIGN_OR_RETURN(PluginConfig pc, validate_plugin_table(**lib, config, *s));
    spdlog::info("loaded plugin {} {} (API {}.{}) from {}", (*lib)->name(), (*lib)->version(),
                 (*lib)->api_major(), (*lib)->api_minor(), file.string());
    TH_TRY(add(std::move(lib).value(), std::move(pc), s->required));
  }
  return ok();
}

namespace {

Status in_context(Status s, const std::string& where) {
  if (s.ok()) return s;
  return s.error().with_context(where);
}

}  // namespace

Status PluginManager::start_one(Instance& p) {
  const std::string who = "plugin " + p.name;
  {
    std::lock_guard lock(mu_);
    p.ctx = std::make_unique<PluginContext>(p.name, core_, p.config);
  }
  // The descriptor's topics and metrics exist before create, so create may already use them.
  for (const auto& t : p.lib->topics()) {
    TH_TRY(in_context(p.ctx->register_topic(&t.schema), who + ": topic " + t.schema.topic));
  }
  for (const auto& m : p.lib->metrics()) {
    auto r = p.ctx->register_metric(&m);
    if (!r.ok()) return r.error().with_context(who + ": metric " + m.name);
  }

  const th_plugin_descriptor& d = p.lib->descriptor();
  th_instance* inst = nullptr;
  TH_TRY(call_plugin(p.name, "create",
                     [&](th_error* err) { return d.create(p.ctx->api(), &inst, err); }));
  {
    std::lock_guard lock(mu_);
    p.instance = inst;
    p.created = true;
    p.state = PluginState::kCreated;
  }
  TH_TRY(call_plugin(p.name, "start", [&](th_error* err) { return d.start(p.instance, err); }));
  p.started = true;
  TH_TRY(in_context(p.ctx->attach_deferred(), who + ": attaching deferred probes"));
  std::lock_guard lock(mu_);
  p.state = PluginState::kRunning;
  return ok();
}

void PluginManager::stop_one(Instance& p) {
  if (!p.started) return;
  p.started = false;
  if (p.lib && p.lib->descriptor().stop != nullptr) {
    auto stop = p.lib->descriptor().stop;
    call_plugin_void(p.name, "stop", [&] { stop(p.instance); });
  }
}

void PluginManager::destroy_one(Instance& p) {
  // No callback into the plugin may run once destroy starts.
  if (p.ctx) p.ctx->remove_subscriptions();
  if (p.created && p.lib) {
    auto destroy = p.lib->descriptor().destroy;
    call_plugin_void(p.name, "destroy", [&] { destroy(p.instance); });
  }
  p.created = false;
  p.instance = nullptr;
  // The th_host_api stays valid until destroy returned; only now can the context go.
  if (p.ctx) p.ctx->teardown();
  std::lock_guard lock(mu_);
  p.ctx.reset();
}

void PluginManager::fail(Instance& p, Error error) {
  spdlog::error("{}", error.describe());
  stop_one(p);
  if (p.ctx) {
    p.ctx->remove_subscriptions();
    p.ctx->close_kernel_objects();
  }
  destroy_one(p);
  std::lock_guard lock(mu_);
  p.state = PluginState::kFailed;
  p.error = std::move(error);
}

Status PluginManager::start_all() {
  std::optional<Error> first_failure;
  std::size_t attempted = 0;
  for (auto& ptr : plugins_) {
    Instance& p = *ptr;
    if (p.state == PluginState::kFailed) {  // could not even be loaded
      if (!first_failure && p.error) first_failure = p.error;
      ++attempted;
      continue;
    }
    if (p.state != PluginState::kLoaded) continue;
    ++attempted;
    Status s = start_one(p);
    if (s.ok()) {
      spdlog::info("plugin {} running ({} probes)", p.name, p.ctx->probes().size());
      continue;
    }
    Error e = s.error();
    fail(p, e);
    if (p.required) {
      return e.with_context("required plugin failed");
    }
    if (!first_failure) first_failure = e;
  }
  if (attempted > 0 && running_count() == 0 && first_failure) {
    return first_failure->with_context("no plugin is running");
  }
  return ok();
}

void PluginManager::stop_all() {
  for (std::size_t i = plugins_.size(); i-- > 0;) {  // reverse start order
    Instance& p = *plugins_[i];
    if (!p.started) continue;
    stop_one(p);
    std::lock_guard lock(mu_);
    if (p.state == PluginState::kRunning) p.state = PluginState::kStopped;
  }
}

void PluginManager::close_kernel_objects() {
  for (std::size_t i = plugins_.size(); i-- > 0;) {  // reverse start order
    Instance& p = *plugins_[i];
    if (!p.ctx) continue;
    p.ctx->remove_subscriptions();
    p.ctx->close_kernel_objects();
  }
}

void PluginManager::destroy_all() {
  for (std::size_t i = plugins_.size(); i-- > 0;) {  // reverse start order
    Instance& p = *plugins_[i];
    if (!p.ctx && !p.created) continue;
    stop_one(p);  // no-op unless stop_all was skipped
    destroy_one(p);
    std::lock_guard lock(mu_);
    if (p.state != PluginState::kFailed) p.state = PluginState::kDestroyed;
  }
}

void PluginManager::unload_all() {
  for (std::size_t i = plugins_.size(); i-- > 0;) {  // reverse start order
    Instance& p = *plugins_[i];
    if (p.ctx || p.created) destroy_one(p);  // never unload code that is still referenced
    std::unique_ptr<PluginLibrary> lib;
    {
      std::lock_guard lock(mu_);
      lib = std::move(p.lib);
    }
    lib.reset();
  }
}

void PluginManager::shutdown() {
  stop_all();
  close_kernel_objects();
  destroy_all();
  unload_all();
}

std::vector<PluginStatus> PluginManager::statuses() const {
  std::lock_guard lock(mu_);
  std::vector<PluginStatus> out;
  for (const auto& p : plugins_)
    out.push_back(PluginStatus{p->name, p->state, p->required, p->error});
  return out;
}

std::size_t PluginManager::running_count() const {
  std::lock_guard lock(mu_);
  return static_cast<std::size_t>(
      std::count_if(plugins_.begin(), plugins_.end(),
                    [](const auto& p) { return p->state == PluginState::kRunning; }));
}

std::vector<PluginManager::ProgramStat> PluginManager::program_stats() const {
  std::lock_guard lock(mu_);
  std::vector<ProgramStat> out;
  for (const auto& p : plugins_) {
    if (!p->ctx) continue;
    for (auto& s : p->ctx->program_stats()) {
      out.push_back(ProgramStat{p->name, s.program, s.run_cnt, s.run_time_ns});
    }
  }
  return out;
}

}  // namespace tracehost::host
