#include "syscall/syscall_tables.hpp"

#include <algorithm>
#include <vector>

namespace tracehost::syscall {

std::optional<std::uint32_t> find_id(std::span<const th_enum_entry> entries,
                                     std::string_view name) noexcept {
  for (const auto& e : entries) {
    if (name == e.name) return static_cast<std::uint32_t>(e.value);
  }
  return std::nullopt;
}

std::string_view find_name(std::span<const th_enum_entry> entries, std::int64_t id) noexcept {
  // tables are sorted by number
  auto it = std::lower_bound(entries.begin(), entries.end(), id,
                             [](const th_enum_entry& e, std::int64_t v) { return e.value < v; });
  if (it == entries.end() || it->value != id) return {};
  return it->name;
}

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0u : 1u)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string_view closest_name(std::span<const th_enum_entry> entries, std::string_view name) {
  std::string_view best;
  // beyond a third of the name the suggestion is more confusing than helpful
  std::size_t best_distance = std::max<std::size_t>(2, name.size() / 3) + 1;
  for (const auto& e : entries) {
    std::size_t d = edit_distance(name, e.name);
    if (d < best_distance) {
      best_distance = d;
      best = e.name;
    }
  }
  return best;
}

}  // namespace tracehost::syscall
