// Calibration samples for the planner (docs/rules.md, "Planner"): the text
// the engine measures every rule's cost on to choose its engine.  The
// built-in text ships with the engine; an operator may measure on their own
// mail instead (regexctl compile --calibrate DIR, the daemon's
// compile.calibrate), set as CompileOptions::calibration.
//
// Thread safety: pure functions; the loader reads the file system only.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "regexd/engine/result.h"

namespace regexd::engine {

// The built-in calibration text (deterministic, the same on every machine).
// A CompileOptions::calibration equal to it is the default.
std::string_view builtin_calibration_text();

// At most this much of a sample is used.  Every rule is scanned over the
// text about a dozen times while the planner measures it, so compile time
// grows with the sample: 256 KiB (4x the built-in text, a few hundred
// messages) keeps a SpamAssassin compile within seconds of the built-in
// text's (docs/rules.md has the numbers).
inline constexpr std::size_t kMaxCalibrationBytes = 256 * 1024;

// Reads an operator's sample: the regular files directly in `dir` (not its
// subdirectories, nor files whose name starts with '.'), in byte order of
// their names so the same directory gives the same text on every machine,
// each ending in '\n' (one is added if missing), concatenated up to
// `max_bytes`: the file that crosses the cap is cut at its last line end
// before it (or at the cap when it has none there), and later files are not
// read.  Symbolic links to regular files count as files.
// Errors (kIo, one line naming the directory or file): `dir` missing or not
// a directory, a file that cannot be read, no bytes at all (no files, or all
// empty).
Result<std::shared_ptr<const std::string>> load_calibration_dir(const std::filesystem::path& dir,
                                                               std::size_t max_bytes = kMaxCalibrationBytes);

}  // namespace regexd::engine
