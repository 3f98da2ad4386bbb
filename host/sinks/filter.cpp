#include "host/sinks/filter.hpp"

#include <cstring>
#include <utility>

#include "host/config_util.hpp"
#include "host/event_bus.hpp"
#include "host/render.hpp"

namespace tracehost::host {

EventFilter::EventFilter(std::vector<std::string> topics, std::vector<Where> where)
    : topics_(std::move(topics)), where_(std::move(where)) {
  if (topics_.empty()) topics_ = {"*"};
}

Result<EventFilter> EventFilter::from_table(const toml::table& table,
                                            const std::filesystem::path& config_path,
                                            std::string_view table_name) {
  const std::string key_prefix = std::string(table_name) + ".";
  TH_ASSIGN_OR_RETURN(std::vector<std::string> topics,
                      get_string_list(table, "topics", {"*"}, config_path, table_name));
  if (const toml::node* n = table.get("topics"); n != nullptr && topics.empty()) {
    return config_error(*n, config_path, key_prefix + "topics",
                        "is empty, so this sink would receive nothing; use [\"*\"] for every "
                        "topic or disable the sink with enabled = false");
  }
  if (const toml::node* n = table.get("topics"); n != nullptr) {
    for (const auto& t : topics) {
      if (t.empty()) {
        return config_error(*n, config_path, key_prefix + "topics", "contains an empty topic glob");
      }
    }
  }
  std::vector<Where> where;
  if (const toml::node* n = table.get("where")) {
    const toml::table* w = n->as_table();
    if (w == nullptr) {
      return config_error(*n, config_path, key_prefix + "where",
                          "expected a table of field = value, e.g. where = { comm = \"nginx\" }, "
                          "found " +
                              std::string(type_name(n->type())));
    }
    for (const auto& [k, v] : *w) {
      Where clause;
      clause.field = std::string(k.str());
      if (const auto* s = v.as_string()) {
        clause.value = s->get();
      } else if (const auto* i = v.as_integer()) {
        clause.value = std::to_string(i->get());
      } else if (const auto* b = v.as_boolean()) {
        clause.value = b->get() ? "true" : "false";
      } else {
        return config_error(v, config_path, key_prefix + "where." + clause.field,
                            "expected a string, integer or boolean to compare the field's "
                            "rendered value with, found " +
                                std::string(type_name(v.type())));
      }
      where.push_back(std::move(clause));
    }
  }
  return EventFilter(std::move(topics), std::move(where));
}

bool EventFilter::topic_matches(std::string_view topic) const noexcept {
  for (const auto& g : topics_) {
    if (glob_match(g, topic)) return true;
  }
  return false;
}

bool EventFilter::matches(const th_event& event) const {
  if (where_.empty()) return true;
  const th_event_schema* schema = event.schema;
  if (schema == nullptr) return false;
  for (const auto& w : where_) {
    const th_field* field = nullptr;
    for (std::size_t i = 0; i < schema->field_count; ++i) {
      const th_field& f = schema->fields[i];
      if (f.name != nullptr && w.field == f.name) {
        field = &f;
        break;
      }
    }
    if (field == nullptr) return false;
    scratch_.clear();
    append_field_text(scratch_, *schema, *field, event.data, event.size);
    if (scratch_ != w.value) return false;
  }
  return true;
}

}  // namespace tracehost::host
