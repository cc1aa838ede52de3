#include "split.h"

#include <algorithm>
#include <numeric>

namespace regexd::engine::detail {
namespace {

// Unmeasured rules (the measurement failed) count as the mean of the
// measured ones; with nothing measured (no cost check) the estimate is 0 and
// the class stays one database.
std::vector<double> costs_of(const std::vector<std::uint32_t>& ids, const std::vector<double>& cost_ms) {
  double sum = 0;
  std::size_t known = 0;
  for (auto id : ids)
    if (id < cost_ms.size() && cost_ms[id] >= 0) sum += cost_ms[id], ++known;
  const double fill = known ? sum / static_cast<double>(known) : 0.0;
  std::vector<double> out;
  out.reserve(ids.size());
  for (auto id : ids) out.push_back(id < cost_ms.size() && cost_ms[id] >= 0 ? cost_ms[id] : fill);
  return out;
}

}  // namespace

double estimate_ms(const std::vector<std::uint32_t>& ids, const std::vector<double>& cost_ms) {
  auto c = costs_of(ids, cost_ms);
  return std::accumulate(c.begin(), c.end(), 0.0);
}

std::vector<std::vector<std::uint32_t>> split_rules(const std::vector<std::uint32_t>& ids,
                                                    const std::vector<double>& cost_ms, unsigned max_parts,
                                                    double min_ms) {
  if (min_ms < 0 || max_parts < 2 || ids.size() < 2 || estimate_ms(ids, cost_ms) < min_ms) return {ids};
  const std::size_t k = std::min<std::size_t>(max_parts, ids.size());
  auto cost = costs_of(ids, cost_ms);
  std::vector<std::size_t> order(ids.size());
  std::iota(order.begin(), order.end(), 0);
  // Most expensive first; ties by rule index, so equal inputs give equal parts.
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return cost[a] != cost[b] ? cost[a] > cost[b] : ids[a] < ids[b]; });
  std::vector<std::vector<std::uint32_t>> parts(k);
  std::vector<double> load(k, 0);
  for (auto i : order) {
    // The least loaded part, then the one with fewest rules (so rules that
    // cost nothing still spread), then the first: the result is stable.
    std::size_t p = 0;
    for (std::size_t q = 1; q < k; ++q)
      if (load[q] < load[p] || (load[q] == load[p] && parts[q].size() < parts[p].size())) p = q;
    parts[p].push_back(ids[i]);
    load[p] += cost[i];
  }
  for (auto& p : parts) std::sort(p.begin(), p.end());
  return parts;
}

}  // namespace regexd::engine::detail
