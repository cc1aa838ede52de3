// libFuzzer target for the frame decoder and every body decoder
// (scripts/fuzz-frames.sh builds and runs it).  The input is fed to a
// FrameDecoder in two pieces split at its first byte's value, so arbitrary
// chunking is explored too; every decoded frame goes through the body
// decoders of both directions.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "regexd/server/protocol.h"

using namespace regexd::server::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t split = size ? data[0] % (size + 1) : 0;
  FrameDecoder d(1 << 20);
  Frame f;
  for (std::string_view piece : {in.substr(0, split), in.substr(split)}) {
    d.feed(piece);
    for (;;) {
      auto r = d.next(f);
      if (!r.ok() || !*r) break;
      (void)decode_scan(f.body);
      (void)decode_scan_reply(f.body);
      (void)decode_load_rules(f.body);
      (void)decode_load_rules_reply(f.body);
      (void)decode_hello(f.body);
      (void)decode_error(f.body);
      (void)decode_text(f.body);
    }
  }
  return 0;
}
