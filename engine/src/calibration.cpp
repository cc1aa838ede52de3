#include "regexd/engine/calibration.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>
#include <vector>

#include "cost.h"

namespace regexd::engine {

std::string_view builtin_calibration_text() { return detail::calibration_text(); }

Result<std::shared_ptr<const std::string>> load_calibration_dir(const std::filesystem::path& dir,
                                                               std::size_t max_bytes) {
  namespace fs = std::filesystem;
  const std::string where = "calibration sample " + dir.string();
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) return make_error(ErrorCode::kIo, where + ": no such directory");
  if (ec) return make_error(ErrorCode::kIo, where + ": " + ec.message());
  if (st.type() != fs::file_type::directory) return make_error(ErrorCode::kIo, where + ": not a directory");
  std::vector<fs::path> files;
  fs::directory_iterator it(dir, ec), end;
  if (ec) return make_error(ErrorCode::kIo, where + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return make_error(ErrorCode::kIo, where + ": " + ec.message());
    const fs::path& p = it->path();
    if (p.filename().string().starts_with('.')) continue;
    std::error_code fec;
    const bool regular = it->is_regular_file(fec);  // follows symbolic links
    // A link to nowhere (or a loop) is a file of the sample that cannot be read.
    if (fec) return make_error(ErrorCode::kIo, where + ": " + p.string() + ": " + fec.message());
    if (regular) files.push_back(p);
  }
  if (ec) return make_error(ErrorCode::kIo, where + ": " + ec.message());
  // Byte order of the names: the same on every machine and locale.
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });

  auto text = std::make_shared<std::string>();
  for (const auto& p : files) {
    if (text->size() >= max_bytes) break;
    std::ifstream in(p, std::ios::binary);
    if (!in) return make_error(ErrorCode::kIo, where + ": " + p.string() + ": " + std::strerror(errno));
    // Never more than the room left: a sample directory may hold an mbox of
    // gigabytes.
    const std::size_t room = max_bytes - text->size();
    std::error_code sec;
    const auto size = fs::file_size(p, sec);
    std::string body(sec ? room : std::min<std::size_t>(room, size + 1), '\0');
    in.read(body.data(), static_cast<std::streamsize>(body.size()));
    if (in.bad()) return make_error(ErrorCode::kIo, where + ": " + p.string() + ": read error");
    body.resize(static_cast<std::size_t>(in.gcount()));
    const bool cut = body.size() == room && in.peek() != std::ifstream::traits_type::eof();
    if (body.empty()) continue;
    if (cut) {
      // Cut on a line end, so the last message does not end mid-line.
      std::size_t nl = body.rfind('\n');
      if (nl != std::string::npos) body.resize(nl + 1);
    } else if (body.back() != '\n' && body.size() < room) {
      body += '\n';  // messages stay apart
    }
    *text += body;
    if (cut) break;  // the sample is full
  }
  if (text->empty())
    return make_error(ErrorCode::kIo, where + ": empty (" + std::to_string(files.size()) +
                                          " files, no bytes; put a few hundred of your messages there)");
  return std::shared_ptr<const std::string>(std::move(text));
}

}  // namespace regexd::engine
