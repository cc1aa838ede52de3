#include "fixed_counter.h"

#include <cstring>

#include "re2_translate.h"

namespace regexd::engine::detail {

std::unique_ptr<const FixedCounter> FixedCounter::make(const Rule& rule) {
  std::string why;
  auto alts = fixed_alternatives(rule, kMaxAlternatives, kMaxLength, &why);
  if (!alts) return nullptr;
  auto c = std::unique_ptr<FixedCounter>(new FixedCounter);
  for (const auto& seq : *alts) {
    c->alternatives_.push_back({static_cast<std::uint32_t>(c->rest_.size()), static_cast<std::uint32_t>(seq.size())});
    c->rest_.insert(c->rest_.end(), seq.begin() + 1, seq.end());
  }
  // Per first byte, the alternatives in their order (a counting sort).
  std::array<std::uint32_t, 257> n{};
  for (const auto& seq : *alts)
    for (std::size_t b = 0; b < 256; ++b)
      if (seq[0].test(b)) ++n[b + 1];
  for (std::size_t b = 0; b < 256; ++b) n[b + 1] += n[b];
  c->first_ = n;
  c->by_first_.resize(n[256]);
  for (std::uint32_t a = 0; a < alts->size(); ++a)
    for (std::size_t b = 0; b < 256; ++b)
      if ((*alts)[a][0].test(b)) c->by_first_[n[b]++] = a;
  int leads = 0;
  for (std::size_t b = 0; b < 256; ++b)
    if (c->first_[b] != c->first_[b + 1]) {
      c->lead_[b] = 1;
      c->only_lead_ = static_cast<int>(b);
      ++leads;
    }
  if (leads != 1) c->only_lead_ = -1;
  return c;
}

const FixedCounter* LazyFixedCounter::get(const Rule& rule) const {
  std::call_once(once_, [&] { counter_ = FixedCounter::make(rule); });
  return counter_.get();
}

unsigned FixedCounter::count(std::string_view data, unsigned cap) const {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t size = data.size();
  unsigned hits = 0;
  if (cap == 0) return 0;
  std::size_t i = 0;
  while (i < size) {
    // Most bytes start no alternative (`e` is a tenth of English text).
    if (only_lead_ >= 0) {
      const void* at = std::memchr(p + i, only_lead_, size - i);
      if (!at) break;
      i = static_cast<std::size_t>(static_cast<const unsigned char*>(at) - p);
    } else {
      while (i < size && !lead_[p[i]]) ++i;
      if (i == size) break;
    }
    const unsigned char b = p[i];
    std::size_t next = i + 1;
    for (std::uint32_t k = first_[b]; k < first_[b + 1]; ++k) {
      const Alternative& a = alternatives_[by_first_[k]];
      if (a.length > size - i) continue;
      std::uint32_t j = 1;
      while (j < a.length && rest_[a.rest + j - 1].test(p[i + j])) ++j;
      if (j == a.length) {
        if (++hits >= cap) return hits;
        next = i + a.length;
        break;
      }
    }
    i = next;
  }
  return hits;
}

}  // namespace regexd::engine::detail
