#include "probe.h"

#include <fcntl.h>
#include <hs.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "cost.h"

namespace regexd::engine::detail {
namespace {

// hs_expression_info parses and analyses a pattern without building bytecode:
// it rejects every unsupported construct and tells the minimum width, at a
// fraction of hs_compile's cost.  Patterns that pass it and still fail the
// real compile (resource limits) are demoted by the class compile later.
std::string info_error(const ProbeInput& in, unsigned flags, bool* can_match_empty) {
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* err = nullptr;
  if (hs_expression_info(in.expression.c_str(), flags, &info, &err) != HS_SUCCESS) {
    std::string msg = err && err->message ? err->message : "unknown error";
    hs_free_compile_error(err);
    return msg;
  }
  // A pattern that can match the empty string is left to PCRE2: Hyperscan
  // refuses it without HS_FLAG_ALLOWEMPTY, and with it reports matches whose
  // semantics differ from PCRE2's at buffer edges.
  *can_match_empty = info->min_width == 0;
  std::free(info);
  return {};
}

bool write_all(int fd, const void* buf, std::size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Closes every descriptor but 0-2 and `fd`.
void keep_only_stdio_and(int fd) {
  if (fd > 3) ::close_range(3, static_cast<unsigned>(fd) - 1, 0);
  ::close_range(static_cast<unsigned>(fd) + 1, ~0u, 0);
}

// A child's CPU time, which bounds the measurements (below).
struct ChildClock {
  clockid_t clock{};
  bool ok = false;
  ChildClock() = default;  // none: budgets are wall time
  explicit ChildClock(pid_t pid) { ok = ::clock_getcpuclockid(pid, &clock) == 0; }
  double ns() const { return ok ? clock_ns(clock) : -1; }
};

// Reads exactly n bytes while the child has spent less than `budget` of CPU
// time since `cpu_start` (its ns() then), and at most until `wall_cap`.
// "Hyperscan takes too long to compile this alone" is a property of the
// pattern only if it is counted in CPU time: on a loaded machine (a compile
// beside a daemon's scans, a CI build) a wall-clock bound called patterns
// slow that compile in 150 ms of CPU, and the plan changed with the load.
// The wall cap still ends a child the scheduler starves.  Without a CPU
// clock (cpu_start < 0) the budget is wall time.
bool read_all_cpu(int fd, void* buf, std::size_t n, const ChildClock& clock, double cpu_start,
                  std::chrono::milliseconds budget, std::chrono::steady_clock::time_point wall_cap) {
  char* p = static_cast<char*>(buf);
  const auto wall_start = std::chrono::steady_clock::now();
  while (n > 0) {
    const auto now = std::chrono::steady_clock::now();
    const double cpu = cpu_start >= 0 ? clock.ns() : -1;
    const double used_ms = cpu >= 0 ? (cpu - cpu_start) / 1e6
                                    : std::chrono::duration<double, std::milli>(now - wall_start).count();
    const double left_ms = static_cast<double>(budget.count()) - used_ms;
    if (left_ms <= 0 || now >= wall_cap) return false;
    // The child cannot spend CPU faster than the clock runs: wait at most
    // what is left of its budget, then look again.
    const double cap_ms = std::chrono::duration<double, std::milli>(wall_cap - now).count();
    pollfd pfd{fd, POLLIN, 0};
    int pr = ::poll(&pfd, 1, static_cast<int>(std::min(left_ms, cap_ms)) + 1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return false;
    if (pr == 0) continue;
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Reads exactly n bytes, waiting at most until `deadline`.  Returns false on
// timeout, EOF or error.
bool read_all(int fd, void* buf, std::size_t n, std::chrono::steady_clock::time_point deadline) {
  const auto budget = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return read_all_cpu(fd, buf, n, ChildClock(), -1, budget, deadline);
}

// How much longer than its CPU budget a measurement may take in wall time.
constexpr int kWallOverCpu = 4;

// Child: answers inputs[from..] in order, two records each: the
// classification (u8 tier, u32 reason length, reason bytes), then, only for
// inputs with `measure`, the measurement (u8 HsMeasure, f64 ns, u8 fired,
// f64 compile ms), so
// that the parent can bound the two steps separately.  Between the two, for
// a tier Hyperscan compiles, one byte when its compile alone is over.
[[noreturn]] void child_main(const std::vector<ProbeInput>& inputs, std::size_t from, int fd,
                             const ProbeLimits& limits, const Calibration& cal) {
  for (std::size_t i = from; i < inputs.size(); ++i) {
    ProbeResult r = probe_one(inputs[i]);
    auto tier = static_cast<std::uint8_t>(r.tier);
    auto len = static_cast<std::uint32_t>(r.reason.size());
    if (!write_all(fd, &tier, 1) || !write_all(fd, &len, 4) || !write_all(fd, r.reason.data(), len)) _exit(1);
    if (!inputs[i].measure) continue;
    // One byte when the compile is over, so the parent bounds it alone.
    measure_one(inputs[i], cal, limits.measure, &r, [fd] {
      const std::uint8_t done = 1;
      if (!write_all(fd, &done, 1)) _exit(1);
    });
    auto m = static_cast<std::uint8_t>(r.measured);
    std::uint8_t fired = r.hs_fired ? 1 : 0;
    if (!write_all(fd, &m, 1) || !write_all(fd, &r.hs_ns, 8) || !write_all(fd, &fired, 1) ||
        !write_all(fd, &r.hs_compile_ms, 8))
      _exit(1);
  }
  _exit(0);
}

std::vector<ProbeResult> probe_serial(const std::vector<ProbeInput>& inputs, const ProbeLimits& limits,
                                      const Calibration& cal);

}  // namespace

void measure_one(const ProbeInput& in, const Calibration& cal, std::chrono::milliseconds compile_limit,
                 ProbeResult* r, const std::function<void()>& compiled) {
  if (!in.measure || r->tier == Tier::kPcre2) return;
  unsigned flags = in.flags | HS_FLAG_SINGLEMATCH;
  if (r->tier == Tier::kPrefilter) flags |= HS_FLAG_PREFILTER;
  HsSample s;
  r->measured = measure_hs_expression(in.expression, flags, cal, &s, compiled) ? HsMeasure::kDone : HsMeasure::kFailed;
  if (r->measured == HsMeasure::kDone) r->hs_compile_ms = s.compile_ms;
  if (r->measured == HsMeasure::kDone && s.compile_ms > static_cast<double>(compile_limit.count())) {
    r->measured = HsMeasure::kTooSlow;
    return;
  }
  r->hs_ns = s.ns;
  r->hs_fired = s.fired;
}

ProbeResult probe_one(const ProbeInput& in) {
  bool empty = false;
  if (in.prefilter_only) {
    std::string pre_err = info_error(in, in.flags | HS_FLAG_PREFILTER, &empty);
    if (pre_err.empty() && !empty) return {Tier::kPrefilter, "superset rewrite: prefilter only"};
    return {Tier::kPcre2, pre_err.empty() ? "can match the empty string" : "hyperscan: " + pre_err};
  }
  std::string native_err = info_error(in, in.flags, &empty);
  if (native_err.empty()) {
    if (!empty) return {Tier::kNative, {}};
    return {Tier::kPcre2, "can match the empty string"};
  }
  if (!in.allow_prefilter) return {Tier::kPcre2, "hyperscan: " + native_err + " (back-references: PCRE2 alone)"};
  std::string pre_err = info_error(in, in.flags | HS_FLAG_PREFILTER, &empty);
  if (pre_err.empty() && !empty) return {Tier::kPrefilter, "hyperscan: " + native_err};
  return {Tier::kPcre2, "hyperscan: " + native_err};
}

std::vector<ProbeResult> probe_patterns(const std::vector<ProbeInput>& inputs, const ProbeLimits& limits,
                                        const Calibration& cal) {
  if (limits.children <= 1 || inputs.size() < 2) return probe_serial(inputs, limits, cal);
  // Several children, each on every k-th input, so slow patterns (which
  // cluster in rule files) spread over them.
  const std::size_t k = std::min<std::size_t>(limits.children, inputs.size());
  std::vector<std::vector<ProbeInput>> parts(k);
  for (std::size_t i = 0; i < inputs.size(); ++i) parts[i % k].push_back(inputs[i]);
  std::vector<std::vector<ProbeResult>> results(k);
  {
    std::vector<std::jthread> threads;
    for (std::size_t p = 0; p < k; ++p)
      threads.emplace_back([&, p] { results[p] = probe_serial(parts[p], limits, cal); });
  }
  std::vector<ProbeResult> out(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) out[i] = std::move(results[i % k][i / k]);
  return out;
}

namespace {

std::vector<ProbeResult> probe_serial(const std::vector<ProbeInput>& inputs, const ProbeLimits& limits,
                                      const Calibration& cal) {
  const auto timeout = limits.classify;
  // Compile + scans: the scans grow with the text (see ProbeLimits::measure).
  const auto measure_wait = std::chrono::duration_cast<std::chrono::milliseconds>(limits.measure * cal.scale());
  std::vector<ProbeResult> out;
  out.reserve(inputs.size());
  while (out.size() < inputs.size()) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) break;
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      break;
    }
    if (pid == 0) {
      // The child dies with the thread that forked it, and keeps none of the
      // caller's descriptors but stdio and its pipe.  A daemon's compile
      // child killed at shutdown would otherwise leave its probe child
      // running on, holding the daemon's listening socket and the write end
      // of the compile child's pipe, so that the daemon waited for that pipe
      // to close until compile.timeout (seen in CI under ASan, where the
      // orphan was stuck in the allocator: 490 s).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
      keep_only_stdio_and(fds[1]);
      child_main(inputs, out.size(), fds[1], limits, cal);
    }
    ::close(fds[1]);
    const ChildClock child_clock(pid);
    bool child_ok = true, measured_overrun = false;
    while (out.size() < inputs.size()) {
      auto deadline = std::chrono::steady_clock::now() + timeout;
      std::uint8_t tier = 0;
      std::uint32_t len = 0;
      if (!read_all(fds[0], &tier, 1, deadline) || !read_all(fds[0], &len, 4, deadline) || tier > 2 ||
          len > (1u << 20)) {
        child_ok = false;
        break;
      }
      std::string reason(len, '\0');
      if (!read_all(fds[0], reason.data(), len, deadline + timeout)) {
        child_ok = false;
        break;
      }
      out.push_back({static_cast<Tier>(tier), std::move(reason)});
      if (!inputs[out.size() - 1].measure) continue;
      // The measurement: a pattern Hyperscan takes too long to compile alone
      // is reported as such (its tier stands), and the child starts over
      // with the next pattern.
      std::uint8_t m = 0, fired = 0;
      double ns = -1, compile_ms = -1;
      // The compile alone within limits.measure (the child's byte when it
      // is over; none for the pcre2 tier, which compiles nothing), then the
      // scans within measure_wait.
      // Both bounded in the child's CPU time (read_all_cpu).
      std::uint8_t compiled = 0;
      const double compile_start = child_clock.ns();
      const bool compile_ok =
          out.back().tier == Tier::kPcre2 ||
          read_all_cpu(fds[0], &compiled, 1, child_clock, compile_start, limits.measure,
                       std::chrono::steady_clock::now() + kWallOverCpu * limits.measure);
      const double scan_start = child_clock.ns();
      const auto cap = std::chrono::steady_clock::now() + kWallOverCpu * measure_wait;
      auto field = [&](void* p, std::size_t bytes) {
        return read_all_cpu(fds[0], p, bytes, child_clock, scan_start, measure_wait, cap);
      };
      if (!compile_ok || !field(&m, 1) || !field(&ns, 8) || !field(&fired, 1) || !field(&compile_ms, 8) || m > 3) {
        out.back().measured = HsMeasure::kTooSlow;
        // At least this long; the split estimate (split.h) takes the bound.
        out.back().hs_compile_ms = static_cast<double>(limits.measure.count());
        measured_overrun = true;
        child_ok = false;
        break;
      }
      out.back().measured = static_cast<HsMeasure>(m);
      out.back().hs_ns = ns;
      out.back().hs_fired = fired != 0;
      out.back().hs_compile_ms = compile_ms;
    }
    ::close(fds[0]);
    if (!child_ok) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!child_ok && !measured_overrun && out.size() < inputs.size()) {
      // The pattern being probed overran the deadline (or crashed the child):
      // PCRE2 alone will answer for it.
      out.push_back({Tier::kPcre2, "classification probe gave no answer within " +
                                       std::to_string(timeout.count()) + " ms"});
    }
  }
  // fork/pipe refused (e.g. RLIMIT_NPROC in a sandbox): probe in-process.
  for (std::size_t i = out.size(); i < inputs.size(); ++i) {
    out.push_back(probe_one(inputs[i]));
    measure_one(inputs[i], cal, limits.measure, &out.back());
  }
  return out;
}

}  // namespace

}  // namespace regexd::engine::detail
