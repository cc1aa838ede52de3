#include "lockstep_dfa.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace regexd::engine::detail {
namespace {

using ByteSet = std::bitset<256>;

bool is_word(int c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_alnum(int c) { return is_word(c) && c != '_'; }
int hex_value(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct Refusal {
  std::string why;
};

// ---------------------------------------------------------------------------
// The translator's RE2 syntax (re2_translate.cpp, Emitter), read as RE2 reads
// it in Latin-1 mode with re2_options():
//   a byte:      a letter, digit or '_' as itself; '\' + ASCII punctuation is
//                that character; \xHH the byte HH; \n
//   a class:     [...] or [^...] of such bytes and ranges a-b; [^...] is the
//                complement over all 256 bytes (RE2's default options let a
//                negated class match \n)
//   groups:      (?:...) with '|' alternatives (an alternative may be empty)
//   assertions:  \A, \z, \b, \B (ASCII word characters on both sides, as
//                RE2's), (?m:^) (at the start or after any \n), (?m:$) (at
//                the end or before any \n)
//   repeats:     * + ? {n} {n,} {n,m} (greedy; greed does not change whether
//                a match exists)
// Anything else (an unescaped '.', a lazy or doubled quantifier, other
// flags, \d-style classes, counts above RE2's 1000) is refused: the
// translator never writes it, so it can only come from a damaged entry.

struct Node {
  enum Kind { kSet, kCat, kAlt, kRepeat, kAssert } kind;
  explicit Node(Kind k) : kind(k) {}
  ByteSet set;
  std::vector<Node> kids;
  int min = 0, max = -1;
  DfaProgram::Assertion assertion = DfaProgram::kTextStart;
};

class SyntaxReader {
 public:
  explicit SyntaxReader(std::string_view p) : p_(p) {}
  static constexpr int kMaxDepth = 1000;

  Node read() {
    Node n = alternation();
    if (i_ < p_.size()) fail("unexpected ')'");
    return n;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Refusal{what + " at offset " + std::to_string(i_)}; }
  int peek(std::size_t k = 0) const { return i_ + k < p_.size() ? static_cast<unsigned char>(p_[i_ + k]) : -1; }
  bool take(std::string_view s) {
    if (p_.substr(i_, s.size()) != s) return false;
    i_ += s.size();
    return true;
  }

  Node alternation() {
    Node alt(Node::kAlt);
    alt.kids.push_back(sequence());
    while (peek() == '|') {
      ++i_;
      alt.kids.push_back(sequence());
    }
    return alt.kids.size() == 1 ? std::move(alt.kids[0]) : alt;
  }

  Node sequence() {
    Node cat(Node::kCat);
    while (peek() != -1 && peek() != '|' && peek() != ')') {
      Node a = atom();
      cat.kids.push_back(quantified(std::move(a)));
    }
    return cat;
  }

  Node assertion(DfaProgram::Assertion a) {
    Node n(Node::kAssert);
    n.assertion = a;
    return n;
  }

  Node atom() {
    const int c = peek();
    if (c == '(') {
      if (take("(?m:^)")) return assertion(DfaProgram::kLineStart);
      if (take("(?m:$)")) return assertion(DfaProgram::kLineEnd);
      if (!take("(?:")) fail("group other than (?:...)");
      // The reader and the builder recurse once per level: a bound keeps a
      // crafted entry's pattern from exhausting the stack.  Translations
      // nest no deeper than their rules, which PCRE2 holds to 250 levels
      // (its default parenthesis limit), plus a few groups of their own.
      if (++depth_ > kMaxDepth) fail("groups nested deeper than " + std::to_string(kMaxDepth));
      Node inner = alternation();
      if (!take(")")) fail("unclosed group");
      --depth_;
      return inner;
    }
    if (c == '[') return byte_class();
    if (c == '\\') {
      const int e = peek(1);
      if (e == 'A' || e == 'z' || e == 'b' || e == 'B') {
        i_ += 2;
        return assertion(e == 'A'   ? DfaProgram::kTextStart
                         : e == 'z' ? DfaProgram::kTextEnd
                         : e == 'b' ? DfaProgram::kWordBoundary
                                    : DfaProgram::kNotWordBoundary);
      }
    }
    Node n(Node::kSet);
    n.set.set(static_cast<std::size_t>(one_byte()));
    return n;
  }

  // A byte written as itself, as \<punctuation> or as \xHH.
  int one_byte() {
    const int c = peek();
    if (c == -1) fail("pattern ends early");
    if (is_word(c)) {
      ++i_;
      return c;
    }
    if (c != '\\') fail("unescaped '" + std::string(1, static_cast<char>(c)) + "'");
    const int e = peek(1);
    if (e == 'n') {  // written only in "(?:\n?\z)"
      i_ += 2;
      return '\n';
    }
    if (e == 'x') {
      const int h = hex_value(peek(2)), l = hex_value(peek(3));
      if (h < 0 || l < 0) fail("\\x without two hex digits");
      i_ += 4;
      return h * 16 + l;
    }
    if (e > 0x20 && e < 0x7f && !is_alnum(e) && e != '_') {
      i_ += 2;
      return e;
    }
    fail("escape the translator does not write");
  }

  Node byte_class() {
    ++i_;  // '['
    const bool negate = peek() == '^';
    if (negate) ++i_;
    Node n(Node::kSet);
    bool any = false;
    while (peek() != ']') {
      if (peek() == -1) fail("unclosed class");
      const int lo = one_byte();
      int hi = lo;
      if (peek() == '-' && peek(1) != ']') {
        ++i_;
        hi = one_byte();
        if (hi < lo) fail("reversed range");
      }
      for (int b = lo; b <= hi; ++b) n.set.set(static_cast<std::size_t>(b));
      any = true;
    }
    ++i_;  // ']'
    if (!any) fail("empty class");
    if (negate) n.set.flip();
    return n;
  }

  int number() {
    int v = 0;
    bool digits = false;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      if (v > 1000) fail("repeat count above 1000");
      ++i_;
      digits = true;
    }
    if (!digits) fail("repeat without a count");
    return v;
  }

  Node quantified(Node a) {
    int min, max;
    const int q = peek();
    if (q == '*') {
      min = 0, max = -1, ++i_;
    } else if (q == '+') {
      min = 1, max = -1, ++i_;
    } else if (q == '?') {
      min = 0, max = 1, ++i_;
    } else if (q == '{') {
      ++i_;
      min = max = number();
      if (peek() == ',') {
        ++i_;
        max = peek() == '}' ? -1 : number();
      }
      if (!take("}")) fail("unclosed repeat");
      if (max != -1 && max < min) fail("repeat {n,m} with m < n");
    } else {
      return a;
    }
    if (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{') fail("doubled or lazy quantifier");
    Node r(Node::kRepeat);
    r.min = min;
    r.max = max;
    r.kids.push_back(std::move(a));
    return r;
  }

  std::string_view p_;
  std::size_t i_ = 0;
  int depth_ = 0;  // groups open at i_
};

}  // namespace

// ---------------------------------------------------------------------------
// Thompson construction, back to front: compile(n, next) returns the first
// instruction of n's fragment, whose every way through ends at `next`.

class ProgramBuilder {
 public:
  explicit ProgramBuilder(DfaProgram& p) : p_(p) {}

  std::uint32_t compile(const Node& n, std::uint32_t next) {
    switch (n.kind) {
      case Node::kSet:
        return add({DfaProgram::Op::kByte, 0, next, set_index(n.set)});
      case Node::kAssert:
        return add({DfaProgram::Op::kAssert, static_cast<std::uint8_t>(n.assertion), next, 0});
      case Node::kCat:
        for (std::size_t k = n.kids.size(); k-- > 0;) next = compile(n.kids[k], next);
        return next;
      case Node::kAlt: {
        std::uint32_t t = compile(n.kids.back(), next);
        for (std::size_t k = n.kids.size() - 1; k-- > 0;) {
          const std::uint32_t e = compile(n.kids[k], next);
          t = add({DfaProgram::Op::kSplit, 0, e, t});
        }
        return t;
      }
      case Node::kRepeat: {
        const Node& body = n.kids[0];
        std::uint32_t tail = next;
        if (n.max == -1) {
          // X*: a split that enters X, whose end loops back to the split.
          const std::uint32_t loop = add({DfaProgram::Op::kSplit, 0, 0, next});
          p_.insts_[loop].out = compile(body, loop);
          tail = loop;
        } else {
          // X{0,k} = (X(X(...)?)?)?, built from the inside out.
          for (int k = n.min; k < n.max; ++k) {
            const std::uint32_t e = compile(body, tail);
            tail = add({DfaProgram::Op::kSplit, 0, e, next});
          }
        }
        for (int k = 0; k < n.min; ++k) tail = compile(body, tail);
        return tail;
      }
    }
    return next;
  }

  std::uint32_t add(DfaProgram::Inst inst) {
    if (p_.insts_.size() >= DfaProgram::kMaxInstructions)
      throw Refusal{"more than " + std::to_string(DfaProgram::kMaxInstructions) + " instructions"};
    p_.insts_.push_back(inst);
    return static_cast<std::uint32_t>(p_.insts_.size() - 1);
  }

  std::uint32_t set_index(const ByteSet& s) {
    std::string key(reinterpret_cast<const char*>(&s), sizeof s);
    auto [it, fresh] = sets_.emplace(std::move(key), static_cast<std::uint32_t>(p_.sets_.size()));
    if (fresh) p_.sets_.push_back(s);
    return it->second;
  }

  // Byte classes: bytes that every set, the word characters (for \b) and \n
  // (for the multiline anchors) treat alike.
  void classify() {
    std::vector<ByteSet> splitters = p_.sets_;
    ByteSet word, newline;
    for (int c = 0; c < 256; ++c)
      if (is_word(c)) word.set(static_cast<std::size_t>(c));
    newline.set('\n');
    splitters.push_back(word);
    splitters.push_back(newline);
    std::vector<int> cls(256, 0);
    int count = 1;
    for (const ByteSet& s : splitters) {
      std::map<std::pair<int, bool>, int> renumber;
      for (int c = 0; c < 256; ++c) {
        auto [it, fresh] = renumber.emplace(std::make_pair(cls[c], s.test(static_cast<std::size_t>(c))),
                                            static_cast<int>(renumber.size()));
        cls[c] = it->second;
      }
      count = static_cast<int>(renumber.size());
      if (count == 256) break;
    }
    // Number the classes by how common their bytes are in mail text, most
    // common first: a state's row then holds the columns a scan mostly
    // takes in its first cache line or two, instead of spread over all of
    // it (a row is 4 bytes per class; 150 classes span 10 lines).  Any
    // numbering gives the same answers.
    std::vector<int> rank(256, 256);
    static constexpr std::string_view kCommon =
        " etaoinsrhldcumfpgwybvk\nxjqz.,-ETAOINSRHLDCUMFPGWYBVK01234567892:/'\"=<>_!?;()\r\tXJQZ@&%*#+$[]{}|~^`";
    for (std::size_t k = 0; k < kCommon.size(); ++k)
      rank[static_cast<unsigned char>(kCommon[k])] =
          std::min(rank[static_cast<unsigned char>(kCommon[k])], static_cast<int>(k));
    std::vector<int> best(static_cast<std::size_t>(count), 256);
    for (int c = 0; c < 256; ++c)
      best[static_cast<std::size_t>(cls[c])] = std::min(best[static_cast<std::size_t>(cls[c])], rank[c]);
    std::vector<int> order(static_cast<std::size_t>(count));
    for (int k = 0; k < count; ++k) order[static_cast<std::size_t>(k)] = k;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return best[static_cast<std::size_t>(a)] < best[static_cast<std::size_t>(b)];
    });
    std::vector<int> renumbered(static_cast<std::size_t>(count));
    for (int k = 0; k < count; ++k) renumbered[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = k;
    for (int c = 0; c < 256; ++c) cls[c] = renumbered[static_cast<std::size_t>(cls[c])];
    p_.classes_ = count;
    p_.class_byte_.assign(static_cast<std::size_t>(count), 0);
    for (int c = 255; c >= 0; --c) {
      p_.byte_class_[c] = static_cast<std::uint8_t>(cls[c]);
      p_.class_byte_[static_cast<std::size_t>(cls[c])] = static_cast<std::uint8_t>(c);
    }
  }

 private:
  DfaProgram& p_;
  std::unordered_map<std::string, std::uint32_t> sets_;
};

std::unique_ptr<const DfaProgram> DfaProgram::build(const std::vector<std::string>& patterns, std::string* why) {
  std::unique_ptr<DfaProgram> p(new DfaProgram());
  ProgramBuilder b(*p);
  for (std::size_t k = 0; k < patterns.size(); ++k) {
    try {
      Node tree = SyntaxReader(patterns[k]).read();
      const std::uint32_t match = b.add({Op::kMatch, 0, 0, static_cast<std::uint32_t>(k)});
      p->starts_.push_back(b.compile(tree, match));
    } catch (const Refusal& r) {
      if (why) *why = "pattern " + std::to_string(k) + ": " + r.why;
      return nullptr;
    }
  }
  b.classify();
  for (const Inst& in : p->insts_) {
    if (in.op != Op::kAssert) continue;
    if (in.assertion == kWordBoundary || in.assertion == kNotWordBoundary) p->asks_word_ = true;
    if (in.assertion == kLineStart) p->asks_line_ = true;
  }
  return p;
}

// ---------------------------------------------------------------------------
// The lazy DFA.

namespace {
constexpr std::uint8_t kPrevWord = 1, kLineStart = 2, kTextStart = 4;
// A state's bookkeeping beyond its table row, for the budget (the hash map's
// node and bucket, the vectors' headers).
constexpr std::size_t kStateOverhead = sizeof(void*) * 12;
}  // namespace

DfaCache::DfaCache(const DfaProgram& program, std::size_t budget)
    : program_(program),
      budget_(budget),
      stride_((program.classes_ + 15) / 16 * 16),  // whole cache lines per row
      seen_(program.insts_.size(), 0),
      queued_(program.insts_.size(), 0) {
  reset();
}

DfaCache::~DfaCache() = default;

void DfaCache::reset() {
  states_.clear();
  table_.clear();
  index_.clear();
  start_parts_.clear();
  start_parts_used_ = 0;
  used_ = (seen_.size() + queued_.size()) * sizeof(std::uint32_t);  // the closure's marks count too
  start_ = encode(intern(kTextStart | kLineStart, {}, {}));
}

std::int32_t DfaCache::start_after(std::uint8_t prev) {
  // The flags step() gives a state entered over `prev`, so that a chain
  // started here meets the chain before it in the very same states.
  const std::uint8_t flags = static_cast<std::uint8_t>(((is_word(prev) && program_.asks_word_) ? kPrevWord : 0) |
                                                       ((prev == '\n' && program_.asks_line_) ? kLineStart : 0));
  const std::int32_t index = intern(flags, {}, {});
  return index < 0 ? -1 : encode(index);
}

std::int32_t DfaCache::intern(std::uint8_t flags, const std::vector<std::uint32_t>& kernel,
                              const std::vector<std::uint32_t>& matches) {
  key_.clear();
  key_.push_back(static_cast<char>(flags));
  const auto m = static_cast<std::uint32_t>(matches.size());
  key_.append(reinterpret_cast<const char*>(&m), sizeof m);
  key_.append(reinterpret_cast<const char*>(matches.data()), matches.size() * sizeof(std::uint32_t));
  key_.append(reinterpret_cast<const char*>(kernel.data()), kernel.size() * sizeof(std::uint32_t));
  if (auto it = index_.find(key_); it != index_.end()) return it->second;
  const std::size_t cost = kStateOverhead + 2 * key_.size() + static_cast<std::size_t>(stride_) * sizeof(std::int32_t);
  // The first state always fits: a budget below one state would loop.
  if (!states_.empty() && used_ + cost > budget_) return -1;
  // Rows are offsets into the table, in int32.
  if (table_.size() + static_cast<std::size_t>(stride_) > static_cast<std::size_t>(INT32_MAX / 2)) return -1;
  used_ += cost;
  const auto index = static_cast<std::int32_t>(states_.size());
  states_.push_back(State{flags, kernel, matches});
  table_.resize(table_.size() + static_cast<std::size_t>(stride_), kUnknown);
  index_.emplace(key_, index);
  return index;
}

std::uint32_t DfaCache::next_stamp() {
  if (++stamp_ == 0) {  // wrapped: old stamps could collide
    std::fill(seen_.begin(), seen_.end(), 0);
    std::fill(queued_.begin(), queued_.end(), 0);
    stamp_ = 1;
  }
  return stamp_;
}

void DfaCache::closure(std::uint8_t flags, int cls) {
  const DfaProgram& p = program_;
  const int c = cls >= 0 ? p.class_byte_[static_cast<std::size_t>(cls)] : -1;
  const bool at_end = c < 0;
  const bool prev_word = flags & kPrevWord, next_word = !at_end && is_word(c);
  auto holds = [&](std::uint8_t a) {
    switch (a) {
      case DfaProgram::kTextStart:
        return (flags & kTextStart) != 0;
      case DfaProgram::kTextEnd:
        return at_end;
      case DfaProgram::kLineStart:
        return (flags & kLineStart) != 0;
      case DfaProgram::kLineEnd:
        return at_end || c == '\n';
      case DfaProgram::kWordBoundary:
        return prev_word != next_word;
      case DfaProgram::kNotWordBoundary:
        return prev_word == next_word;
    }
    return false;
  };
  while (!stack_.empty()) {
    const std::uint32_t i = stack_.back();
    stack_.pop_back();
    if (seen_[i] == stamp_) continue;
    seen_[i] = stamp_;
    const DfaProgram::Inst& in = p.insts_[i];
    switch (in.op) {
      case DfaProgram::Op::kByte:
        if (!at_end && p.sets_[in.arg].test(static_cast<std::size_t>(c)) && queued_[in.out] != stamp_) {
          queued_[in.out] = stamp_;
          kernel_.push_back(in.out);
        }
        break;
      case DfaProgram::Op::kSplit:
        stack_.push_back(in.arg);
        stack_.push_back(in.out);
        break;
      case DfaProgram::Op::kAssert:
        if (holds(in.assertion)) stack_.push_back(in.out);
        break;
      case DfaProgram::Op::kMatch:
        found_.push_back(in.arg);
        break;
    }
  }
}

const DfaCache::StartPart& DfaCache::start_part(std::uint8_t flags, int cls) {
  const std::uint32_t key = static_cast<std::uint32_t>(flags) << 16 | static_cast<std::uint32_t>(cls + 1);
  if (auto it = start_parts_.find(key); it != start_parts_.end()) return it->second;
  next_stamp();
  kernel_.clear();
  found_.clear();
  for (auto s = program_.starts_.rbegin(); s != program_.starts_.rend(); ++s) stack_.push_back(*s);
  closure(flags, cls);
  // Kept within an eighth of the budget, counted like the states (reset()
  // drops them too): in a small cache, states matter more.  Past that the
  // part is recomputed on every step that needs it, as it always was.
  const std::size_t cost = kStateOverhead + (kernel_.size() + found_.size()) * sizeof(std::uint32_t);
  StartPart* part = &uncached_part_;
  if (start_parts_used_ + cost <= budget_ / 8) {
    start_parts_used_ += cost;
    used_ += cost;
    part = &start_parts_[key];
  }
  part->kernel = kernel_;
  part->found = found_;
  return *part;
}

std::int32_t DfaCache::step(std::int32_t row, int cls, std::vector<std::uint32_t>* matches) {
  const DfaProgram& p = program_;
  const State& from = states_[static_cast<std::size_t>(row / stride_)];
  const std::uint8_t flags = from.flags;
  // The closure of the state's threads and of a new start of every pattern
  // (the search is unanchored) at the boundary before the byte (or the end
  // of the text, cls -1), then the step over it.  The closure of a union is
  // the union of the closures, so the starts' part comes from start_part()
  // and only the state's own threads are walked here.
  const StartPart& part = start_part(flags, cls);
  const std::uint32_t stamp = next_stamp();
  kernel_.assign(part.kernel.begin(), part.kernel.end());
  for (std::uint32_t k : kernel_) queued_[k] = stamp;
  found_.assign(part.found.begin(), part.found.end());
  stack_.assign(from.kernel.rbegin(), from.kernel.rend());
  closure(flags, cls);
  std::sort(kernel_.begin(), kernel_.end());
  // A pattern has one match instruction, but the starts' walk and this one
  // each mark their own: it may be found by both.
  std::sort(found_.begin(), found_.end());
  found_.erase(std::unique(found_.begin(), found_.end()), found_.end());
  if (cls < 0) {
    *matches = found_;
    return 0;
  }
  const int c = p.class_byte_[static_cast<std::size_t>(cls)];
  // A flag no instruction asks about would only split states.
  const std::uint8_t next_flags = static_cast<std::uint8_t>(((is_word(c) && p.asks_word_) ? kPrevWord : 0) |
                                                            ((c == '\n' && p.asks_line_) ? kLineStart : 0));
  const std::int32_t index = intern(next_flags, kernel_, found_);
  if (index < 0) return kUnknown;
  const std::int32_t entry = encode(index);
  table_[static_cast<std::size_t>(row + cls)] = entry;
  return entry;
}

// ---------------------------------------------------------------------------
// The runner.

namespace {

// A DFA that has left the run (finished or gave up) keeps its slot in its
// group as this one-state table: every byte leads back to row 0.
const std::int32_t kIdleTable[1] = {0};

// At most this many DFAs step together in one pass over the buffer.  Their
// rows stay in registers (the chains of dependent loads overlap only if a
// row is not stored and reloaded between bytes); more than 12 spill.  Body's
// 9 RE2 sets of SpamAssassin, 500 messages (bench/): RE2::Set one after
// another 64 ms, two passes of at most 8 27 ms, one pass of 12 22 ms, one
// of 16 29 ms.
constexpr std::size_t kMaxGroup = 12;

// segmented(): the least bytes per segment, and how many of a chain's first
// rows the chain before it may compare with before it runs on alone.
constexpr std::size_t kMinSegment = 256;
constexpr std::size_t kMeetWindow = 1024;

}  // namespace

struct Lockstep::Group {
  std::array<std::size_t, kMaxGroup> which{};  // DFA index per slot, or SIZE_MAX (idle)
  std::array<std::int32_t, kMaxGroup> row{};
  std::array<const std::int32_t*, kMaxGroup> table{};
  std::array<std::array<std::int32_t, kMaxGroup>, 256> col{};  // per byte: each slot's class (its column)
  const std::uint8_t idle_class[256] = {};                     // segmented(): an idle slot's byte classes
  void idle(std::size_t j) {
    which[j] = SIZE_MAX;
    row[j] = 0;
    table[j] = kIdleTable;
    for (auto& c : col) c[j] = 0;
  }
};

void Lockstep::record(std::size_t d, const std::vector<std::uint32_t>& ms) {
  for (std::uint32_t m : ms)
    if (!seen_[d][m]) {
      seen_[d][m] = 1;
      matched_[d].push_back(m);
    }
}

std::int32_t Lockstep::slow(DfaCache& cache, std::size_t d, std::size_t i, std::int32_t row, std::int32_t v, int cl,
                            Bail& bail, bool may_reset) {
  if (v == DfaCache::kUnknown) {
    v = cache.step(row, cl, nullptr);
    if (v == DfaCache::kUnknown) {
      // The budget is spent: start the cache over from this state, as RE2
      // does, unless the last start-over made too little progress (fewer
      // than 10 bytes per state it had built: RE2's bail-out), which means
      // this buffer needs more states than the budget holds.  Segments
      // (segmented()) hold rows of one cache in several chains, which a
      // start-over would invalidate: there the DFA gives up instead, and
      // RE2::Set answers this buffer.
      if (!may_reset || (bail.resets > 0 && i - bail.reset_at < 10 * cache.states())) {
        answered_[d] = 0;
        return -1;
      }
      const DfaCache::State keep = cache.states_[static_cast<std::size_t>(row / cache.stride_)];
      cache.reset();
      ++cache.total_resets_;
      ++bail.resets;
      bail.reset_at = i;
      const std::int32_t again = cache.intern(keep.flags, keep.kernel, keep.matches);
      v = again < 0 ? DfaCache::kUnknown : cache.step(again * cache.stride_, cl, nullptr);
      if (v == DfaCache::kUnknown) {  // one state does not fit the budget
        answered_[d] = 0;
        return -1;
      }
    }
  }
  if (v < 0) {
    v = -(v + 1);
    record(d, cache.states_[static_cast<std::size_t>(v / cache.stride_)].matches);
    if (matched_[d].size() == seen_[d].size()) return -1;  // every pattern found
  }
  return v;
}

template <std::size_t G>
std::array<std::int32_t, G> Lockstep::settle(std::array<std::int32_t, G> v, const std::array<std::int32_t, G>& r,
                                             const std::int32_t* cc, std::size_t i, Pass& ps) {
  Group& g = *group_;
  for (std::size_t j = 0; j < G; ++j) {
    if (v[j] >= 0 || g.which[j] == SIZE_MAX) continue;
    const std::size_t d = g.which[j];
    DfaCache& cache = *ps.caches[d];
    v[j] = slow(cache, d, i, r[j], v[j], cc[j], ps.bail[j], ps.may_reset);
    if (v[j] < 0) {
      // Finished or gave up: every chain of the DFA leaves (segmented()
      // runs several per DFA).
      for (std::size_t k = 0; k < G; ++k)
        if (g.which[k] == d) {
          g.idle(k);
          v[k] = 0;
          --ps.live;
        }
    }
  }
  // A step may have grown a table (or started it over): every slot of that
  // DFA reloads its pointer.
  for (std::size_t j = 0; j < G; ++j)
    if (g.which[j] != SIZE_MAX) g.table[j] = ps.caches[g.which[j]]->table_.data();
  return v;
}

template <std::size_t G>
void Lockstep::pass(std::span<DfaCache* const> caches, std::span<const std::size_t> dfas, std::string_view data) {
  Group& g = *group_;
  Pass ps{caches, {}, dfas.size(), true};
  for (std::size_t j = 0; j < G; ++j) {
    if (j >= dfas.size()) {
      g.idle(j);
      continue;
    }
    const DfaCache& cache = *caches[dfas[j]];
    g.which[j] = dfas[j];
    g.row[j] = cache.start_;
    g.table[j] = cache.table_.data();
    const std::uint8_t* cls = cache.program().byte_class();
    for (int c = 0; c < 256; ++c) g.col[static_cast<std::size_t>(c)][j] = cls[c];
  }
  const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
  const std::size_t len = data.size();
  // The rows live in registers: only constant indices into r and v here
  // (the slow path gets copies), so the compiler keeps them out of memory;
  // a row stored and reloaded every byte put a store-to-load forwarding
  // into every chain.
  std::array<std::int32_t, G> r;
#pragma GCC unroll 16
  for (std::size_t j = 0; j < G; ++j) r[j] = g.row[j];
  for (std::size_t i = 0; i < len; ++i) {
    const std::int32_t* cc = g.col[p[i]].data();
    std::array<std::int32_t, G> v;
    std::int32_t any = 0;
#pragma GCC unroll 16
    for (std::size_t j = 0; j < G; ++j) {
      v[j] = g.table[j][r[j] + cc[j]];
      any |= v[j];
    }
    if (any < 0) [[unlikely]] {
      v = settle<G>(v, r, cc, i, ps);
      if (ps.live == 0) return;
    }
    r = v;
  }
  // The end of the text: matches that need it (\z, $, \b after a word).
  for (std::size_t j = 0; j < G; ++j) {
    if (g.which[j] == SIZE_MAX) continue;
    caches[g.which[j]]->step(r[j], -1, &scratch_);
    record(g.which[j], scratch_);
  }
}

// One DFA over several segments of the buffer at once, for passes of few
// DFAs (one set alone has no other chain to overlap with).  Chain s starts
// at its segment's first byte from the start state for the byte before it
// (a fresh unanchored search there): it finds every match that starts in
// or after its segment.  Chain s - 1 finds the matches that start before;
// after its own segment it runs on into the next until its state equals
// the state chain s had at the same position, from where the two would
// only find the same things.  Together: every match, as one chain finds
// them.  Mail rarely keeps threads alive long: the chains meet within a
// few bytes.  A chain that does not meet within the recorded window runs on
// to the end.
template <std::size_t G>
void Lockstep::segmented(std::span<DfaCache* const> caches, std::span<const std::size_t> dfas, std::string_view data,
                         std::size_t segments) {
  Group& g = *group_;
  const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
  const std::size_t len = data.size(), seglen = len / segments;
  const std::size_t window = std::min(seglen, kMeetWindow);
  Pass ps{caches, {}, 0, false};
  std::array<std::size_t, G> base{};
  std::array<const std::uint8_t*, G> cls{};
  std::array<std::size_t, G> segment{};
  history_.resize(G * window);
  for (std::size_t j = 0; j < G; ++j) {
    const std::size_t k = j / segments, sgm = j % segments;
    if (k >= dfas.size()) {
      g.idle(j);
      cls[j] = g.idle_class;
      continue;
    }
    DfaCache& cache = *caches[dfas[k]];
    const std::int32_t start = sgm == 0 ? cache.start_ : cache.start_after(p[sgm * seglen - 1]);
    if (start < 0) {  // no room for the state: no segments for this DFA
      answered_[dfas[k]] = 0;
      g.idle(j);
      cls[j] = g.idle_class;
      continue;
    }
    g.which[j] = dfas[k];
    g.row[j] = start;
    g.table[j] = cache.table_.data();
    segment[j] = sgm;
    base[j] = sgm * seglen;
    cls[j] = cache.program().byte_class();
    ++ps.live;
  }
  for (std::size_t j = 0; j < G; ++j)  // a DFA without all its chains is not run
    if (g.which[j] != SIZE_MAX && !answered_[g.which[j]]) {
      g.idle(j);
      cls[j] = g.idle_class;
      --ps.live;
    }
  for (std::size_t j = 0; j < G; ++j)
    if (g.which[j] != SIZE_MAX) g.table[j] = caches[g.which[j]]->table_.data();
  std::array<std::int32_t, G> r;
#pragma GCC unroll 16
  for (std::size_t j = 0; j < G; ++j) r[j] = g.row[j];
  std::array<std::int32_t, G> cc;
  for (std::size_t i = 0; i < seglen && ps.live > 0; ++i) {
    if (i < window)
      for (std::size_t j = 0; j < G; ++j) history_[j * window + i] = r[j];
    std::array<std::int32_t, G> v;
    std::int32_t any = 0;
#pragma GCC unroll 16
    for (std::size_t j = 0; j < G; ++j) {
      cc[j] = cls[j][p[base[j] + i]];
      v[j] = g.table[j][r[j] + cc[j]];
      any |= v[j];
    }
    if (any < 0) [[unlikely]] {
      v = settle<G>(v, r, cc.data(), base[0] + i, ps);
      for (std::size_t j = 0; j < G; ++j)
        if (g.which[j] == SIZE_MAX) cls[j] = g.idle_class;
    }
    r = v;
  }
  // Each chain from the end of its segment, one at a time: the last to the
  // end of the buffer, the others until they meet the next chain.
  for (std::size_t j = 0; j < G; ++j) {
    const std::size_t d = g.which[j];
    if (d == SIZE_MAX || !answered_[d] || matched_[d].size() == seen_[d].size()) continue;
    DfaCache& cache = *caches[d];
    const bool last = segment[j] + 1 == segments;
    std::int32_t row = r[j];
    std::size_t pos = base[j] + seglen;
    bool met = false;
    for (std::size_t k = 0; pos < len; ++pos, ++k) {
      if (!last && k < window && row == history_[(j + 1) * window + k]) {
        met = true;
        break;
      }
      const int cl = cache.program().byte_class()[p[pos]];
      std::int32_t v = cache.table_[static_cast<std::size_t>(row + cl)];
      if (v < 0) v = slow(cache, d, pos, row, v, cl, ps.bail[j], false);
      if (v < 0) break;  // finished, or gave up
      row = v;
    }
    if (met || !answered_[d] || matched_[d].size() == seen_[d].size()) continue;
    // The end of the text: matches that need it (\z, $, \b after a word).
    cache.step(row, -1, &scratch_);
    record(d, scratch_);
  }
}

Lockstep::Lockstep(std::size_t max_group)
    : group_(std::make_unique<Group>()), max_group_(std::clamp<std::size_t>(max_group, 1, kMaxGroup)) {}
Lockstep::~Lockstep() = default;

void Lockstep::run(std::span<DfaCache* const> caches, std::string_view data) {
  const std::size_t n = caches.size();
  answered_.assign(n, 1);
  matched_.resize(n);
  seen_.resize(n);
  std::vector<std::size_t> todo;  // a set of no patterns is answered already
  for (std::size_t d = 0; d < n; ++d) {
    matched_[d].clear();
    seen_[d].assign(caches[d]->program().pattern_count(), 0);
    if (!seen_[d].empty()) todo.push_back(d);
  }
  // Few DFAs: each over several segments at once (at least kMinSegment
  // bytes each), up to 8 chains.  rawbody's one SpamAssassin set over the
  // 500 corpus messages: 6.3 ms as one chain, 3.1 with 4 segments, 3.0 with
  // 8, 3.4 with 12 (RE2::Set 6.6); 4 KiB segments instead of 256 bytes
  // left most messages whole (5.6 ms).
  const std::size_t width = std::min<std::size_t>(max_group_, 8);
  if (!todo.empty() && 2 * todo.size() <= width) {
    const std::size_t segments = std::min(width / todo.size(), data.size() / kMinSegment);
    if (segments >= 2) {
      const std::size_t chains = segments * todo.size();
      if (chains <= 4)
        segmented<4>(caches, todo, data, segments);
      else if (chains <= 8)
        segmented<8>(caches, todo, data, segments);
      else
        segmented<12>(caches, todo, data, segments);
      for (auto& m : matched_) std::sort(m.begin(), m.end());
      return;
    }
  }
  // As few passes as the group size allows, the DFAs spread evenly.
  const std::size_t passes = (todo.size() + max_group_ - 1) / max_group_;
  for (std::size_t k = 0, q = 0; q < passes; ++q) {
    const std::size_t size = todo.size() / passes + (q < todo.size() % passes ? 1 : 0);
    const auto part = std::span<const std::size_t>(todo).subspan(k, size);
    if (size <= 4)
      pass<4>(caches, part, data);
    else if (size <= 8)
      pass<8>(caches, part, data);
    else
      pass<12>(caches, part, data);
    k += size;
  }
  for (auto& m : matched_) std::sort(m.begin(), m.end());
}

}  // namespace regexd::engine::detail
