// The RE2 tier's own runner: lazy DFAs for the translated patterns of a
// class's RE2 sets, stepped through a buffer together.
//
// Why not RE2::Set::Match, set after set: a DFA pass is a chain of dependent
// loads (the next state's row depends on the current state), ~2 ns per byte
// whatever the rules, and RE2 runs one set per call, so a class's 8 sets
// never overlap their chains.  Stepping all of them byte by byte in one loop
// gives the CPU independent chains to overlap (docs/benchmarks.md, "What
// stepping the sets together could buy").  RE2 has no API for that, so the
// runner has its own parser (for the translator's output only), Thompson NFA
// and lazy subset construction, built the way RE2's DFA is (states made on
// first use, the cache reset when it outgrows its budget, a bail-out when
// resets come too often).
//
// Exactness: the runner answers "does pattern k match anywhere in the
// buffer" with RE2's reading of the pattern (Latin-1, re2_options()): the
// translations' equivalence with PCRE2 is argued for RE2's semantics in
// re2_translate.cpp, and this runner implements those semantics for the
// syntax the translator writes, refusing (build() returns null) anything
// else, so a damaged or foreign pattern from a cache entry leaves its set on
// RE2::Set.  tests/engine/lockstep_dfa_test.cpp compares it with RE2::Set on
// hand-written corners and random translator-style patterns; the
// differential test (tests/engine/differential_test.cpp) compares whole
// scans of SpamAssassin's rules, whose sets run here, with PCRE2.
//
// Thread safety: a DfaProgram is immutable after build() and may be shared by
// any number of threads.  A DfaCache (the lazily built states) belongs to one
// thread at a time.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace regexd::engine::detail {

// The patterns of one RE2 set as one Thompson NFA over bytes.
class DfaProgram {
 public:
  // The set's patterns, in RE2 syntax as re2_translate.h writes them.
  // nullptr and *why (one line) for syntax the translator never writes, or
  // a program above kMaxInstructions.
  static std::unique_ptr<const DfaProgram> build(const std::vector<std::string>& patterns, std::string* why);

  static constexpr std::size_t kMaxInstructions = 1 << 19;

  std::size_t pattern_count() const { return starts_.size(); }
  const std::uint8_t* byte_class() const { return byte_class_; }
  std::size_t instruction_count() const { return insts_.size(); }
  int byte_classes() const { return classes_; }

  // The NFA's instructions; public for the builder in lockstep_dfa.cpp.
  enum class Op : std::uint8_t { kByte, kSplit, kAssert, kMatch };
  enum Assertion : std::uint8_t { kTextStart, kTextEnd, kLineStart, kLineEnd, kWordBoundary, kNotWordBoundary };
  struct Inst {
    Op op;
    std::uint8_t assertion = 0;  // kAssert
    std::uint32_t out = 0;       // next instruction (kByte, kAssert, kSplit's first)
    std::uint32_t arg = 0;       // kSplit: second branch; kByte: index into sets_; kMatch: pattern index
  };

 private:
  friend class DfaCache;
  friend class ProgramBuilder;
  DfaProgram() = default;

  std::vector<Inst> insts_;
  std::vector<std::bitset<256>> sets_;    // the byte sets of kByte instructions
  std::vector<std::uint32_t> starts_;     // each pattern's first instruction
  std::uint8_t byte_class_[256] = {};     // bytes no instruction (nor \b, nor ^/$) tells apart share a class
  std::vector<std::uint8_t> class_byte_;  // a byte of each class
  int classes_ = 0;
  bool asks_word_ = false;  // some instruction is \b or \B
  bool asks_line_ = false;  // some instruction is (?m:^)
};

// 64-byte aligned storage for a DFA's transition table: with rows a
// multiple of 16 entries, a row's first columns (the common bytes, see
// ProgramBuilder::classify) share one cache line.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) { ::operator delete (p, std::align_val_t{64}); }
  bool operator==(const CacheLineAllocator&) const { return true; }
};

// One thread's lazily built DFA of a DfaProgram: states made on first use,
// at most `budget` bytes of them and of its scratch (then the cache starts
// over).  Holds a reference to the program, which must outlive every use
// (destruction does not touch it).
class DfaCache {
 public:
  DfaCache(const DfaProgram& program, std::size_t budget);
  ~DfaCache();
  DfaCache(const DfaCache&) = delete;
  DfaCache& operator=(const DfaCache&) = delete;

  const DfaProgram& program() const { return program_; }
  std::size_t states() const { return states_.size(); }
  std::size_t resets() const { return total_resets_; }

 private:
  friend class Lockstep;
  struct State {
    std::uint8_t flags;                  // what the previous byte says (kPrevWord, kLineStart, kTextStart)
    std::vector<std::uint32_t> kernel;   // instructions to continue from, sorted
    std::vector<std::uint32_t> matches;  // patterns found to match just before this state's byte
  };
  // Table entries: a state's row offset (state index * stride), or for a
  // state with matches -(row + 1); kUnknown: not computed yet.
  static constexpr std::int32_t kUnknown = INT32_MIN;

  void reset();
  // The start state of a search that begins after byte `prev` (not at the
  // start of the text): its table entry, or -1 when the budget is spent.
  std::int32_t start_after(std::uint8_t prev);
  // The state for (flags, kernel, matches): found or added.  -1 when the
  // budget is spent (the caller resets and retries).
  std::int32_t intern(std::uint8_t flags, const std::vector<std::uint32_t>& kernel,
                      const std::vector<std::uint32_t>& matches);
  // Follows state `row` over byte class `cls` (or the end of the text,
  // cls == -1: then only *matches is set).  Returns the table entry, or
  // kUnknown when the budget is spent.
  std::int32_t step(std::int32_t row, int cls, std::vector<std::uint32_t>* matches);
  std::int32_t encode(std::int32_t index) const {
    const std::int32_t row = index * stride_;
    return states_[static_cast<std::size_t>(index)].matches.empty() ? row : -(row + 1);
  }

  const DfaProgram& program_;
  const std::size_t budget_;
  const std::int32_t stride_;
  std::size_t used_ = 0;
  std::size_t total_resets_ = 0;
  std::vector<State> states_;
  std::vector<std::int32_t, CacheLineAllocator<std::int32_t>> table_;
  std::unordered_map<std::string, std::int32_t> index_;
  std::int32_t start_ = 0;  // the start state's table entry
  // What a new start of every pattern contributes to a step (the search is
  // unanchored, so every step starts every pattern anew): the threads after
  // the byte and the patterns found, for one (flags, byte class or the end
  // of the text, -1), keyed by flags << 16 | (class + 1).  It
  // depends on nothing else, so it is computed once per pair instead of on
  // every step: the closure of a set's starts was most of a step's work, and
  // steps are most of the cost of new mail (SpamAssassin's body, 500
  // messages on a thread whose DFAs start empty, bench regexd_cold: 303-311
  // ms per pass before, 210-247 after; 9-10 ms of it once the states exist).
  struct StartPart {
    std::vector<std::uint32_t> kernel, found;
  };
  const StartPart& start_part(std::uint8_t flags, int cls);
  // Walks the closure of stack_ before byte class `cls` (-1: the end of the
  // text) for a state with `flags`, adding to kernel_ and found_.
  void closure(std::uint8_t flags, int cls);
  std::uint32_t next_stamp();
  std::unordered_map<std::uint32_t, StartPart> start_parts_;
  std::size_t start_parts_used_ = 0;
  StartPart uncached_part_;  // one not kept (start_part())
  // Scratch for step().
  std::vector<std::uint32_t> stack_, kernel_, found_;
  std::vector<std::uint32_t> seen_, queued_;
  std::uint32_t stamp_ = 0;
  std::string key_;
};

// Runs several DFAs over one buffer together.  After run(), answered(d) says
// whether DFA d finished (false: its cache thrashed on this buffer, bail-out
// as RE2's; the caller must answer its patterns otherwise) and matched(d)
// lists the indices of its patterns that match somewhere in the buffer.
//
// `max_group`: at most this many DFAs per pass over the buffer (1 to 12;
// tests use smaller groups to exercise every pass width).
class Lockstep {
 public:
  explicit Lockstep(std::size_t max_group = 12);
  ~Lockstep();
  Lockstep(const Lockstep&) = delete;
  Lockstep& operator=(const Lockstep&) = delete;
  void run(std::span<DfaCache* const> caches, std::string_view data);
  bool answered(std::size_t d) const { return answered_[d] != 0; }
  const std::vector<std::uint32_t>& matched(std::size_t d) const { return matched_[d]; }

 private:
  struct Group;  // the DFAs of one pass
  struct Bail {  // one DFA's start-overs in this run
    std::size_t resets = 0, reset_at = 0;
  };
  struct Pass {  // one pass's DFAs
    std::span<DfaCache* const> caches;
    std::array<Bail, 12> bail;
    std::size_t live;
    bool may_reset;  // false: a DFA whose budget is spent gives up (segmented())
  };
  template <std::size_t G>
  [[gnu::noinline]] std::array<std::int32_t, G> settle(std::array<std::int32_t, G> v,
                                                       const std::array<std::int32_t, G>& r, const std::int32_t* cc,
                                                       std::size_t i, Pass& ps);
  template <std::size_t G>
  void pass(std::span<DfaCache* const> caches, std::span<const std::size_t> dfas, std::string_view data);
  std::int32_t slow(DfaCache& cache, std::size_t d, std::size_t i, std::int32_t row, std::int32_t v, int cl, Bail& bail,
                    bool may_reset);
  template <std::size_t G>
  void segmented(std::span<DfaCache* const> caches, std::span<const std::size_t> dfas, std::string_view data,
                 std::size_t segments);
  void record(std::size_t d, const std::vector<std::uint32_t>& ms);

  std::unique_ptr<Group> group_;
  std::size_t max_group_;
  std::vector<std::uint8_t> answered_;
  std::vector<std::vector<std::uint32_t>> matched_;
  std::vector<std::vector<std::uint8_t>> seen_;  // per DFA, per pattern: in matched_ already
  std::vector<std::uint32_t> scratch_;
  std::vector<std::int32_t> history_;  // segmented(): each chain's first rows
};

}  // namespace regexd::engine::detail
