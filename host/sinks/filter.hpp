// Per-sink event filter: topic globs (`topics`) and field equality (`where`).
//
// `where = { comm = "nginx", port = 443 }` keeps an event when every named field's rendered text
// (render.hpp: the same text the JSON sink writes, without quotes) equals the given value.
// Integers and booleans in the config compare as their decimal / "true"/"false" text. An event
// whose topic has no such field does not match: a where clause narrows, it never widens.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost::host {

class EventFilter {
 public:
  struct Where {
    std::string field;
    std::string value;
  };

  EventFilter() = default;  // every topic, no where
  EventFilter(std::vector<std::string> topics, std::vector<Where> where);

  // Reads `topics` and `where` from a sink table; `table_name` ("sinks.json") prefixes keys in
  // errors, which name file:line:col.
  static Result<EventFilter> from_table(const toml::table& table,
                                        const std::filesystem::path& config_path,
                                        std::string_view table_name);

  [[nodiscard]] const std::vector<std::string>& topics() const noexcept { return topics_; }
  [[nodiscard]] const std::vector<Where>& where() const noexcept { return where_; }
  [[nodiscard]] bool has_where() const noexcept { return !where_.empty(); }

  [[nodiscard]] bool topic_matches(std::string_view topic) const noexcept;
  // The where clauses only (topic selection happens in the bus subscription). Not thread-safe:
  // uses a per-filter scratch buffer; one filter per dispatch thread.
  [[nodiscard]] bool matches(const th_event& event) const;

 private:
  std::vector<std::string> topics_{"*"};
  std::vector<Where> where_;
  mutable std::string scratch_;
};

}  // namespace tracehost::host
