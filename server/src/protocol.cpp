#include "regexd/server/protocol.h"

#include "regexd/engine/utf8.h"

namespace regexd::server::protocol {
namespace {

std::uint32_t load_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
void store_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

Error bad(std::string_view what, std::string_view field) {
  return make_error(ErrorCode::kCorrupt, std::string(what) + ": truncated or malformed field '" +
                                             std::string(field) + "'");
}

}  // namespace

namespace {

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

// Length of the UTF-8 sequence that starts with `c` (1 for ASCII and for
// bytes that cannot start one; valid_utf8 decides the rest).
std::size_t sequence_length(unsigned char c) {
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 1;
}

}  // namespace

Status check_name(std::string_view what, std::string_view value) {
  auto refuse = [&](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(what) + " '" + printable(value) + "': " + why);
  };
  if (value.empty()) return refuse("empty");
  if (value.size() > kMaxNameBytes) return refuse("longer than " + std::to_string(kMaxNameBytes) + " bytes");
  if (!engine::valid_utf8(value)) return refuse("not valid UTF-8");
  for (unsigned char c : value)
    if (is_control(c)) return refuse("contains a control character");
  return {};
}

std::string printable(std::string_view s, std::size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = sequence_length(c);
    if (c >= 0x80 && n > 1 && i + n <= s.size() && engine::valid_utf8(s.substr(i, n))) {
      out.append(s.substr(i, n));
      i += n;
    } else if (c >= 0x80 || is_control(c)) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      ++i;
    } else {
      out += static_cast<char>(c);
      ++i;
    }
  }
  return out;
}

std::string_view wire_error_name(std::uint32_t code) {
  switch (static_cast<WireError>(code)) {
    case WireError::kMalformed: return "MALFORMED";
    case WireError::kTooLarge: return "TOO_LARGE";
    case WireError::kUnknownOpcode: return "UNKNOWN_OPCODE";
    case WireError::kUnknownRuleset: return "UNKNOWN_RULESET";
    case WireError::kUnknownClass: return "UNKNOWN_CLASS";
    case WireError::kBadRules: return "BAD_RULES";
    case WireError::kBusy: return "BUSY";
    case WireError::kInternal: return "INTERNAL";
    case WireError::kForbidden: return "FORBIDDEN";
  }
  return "UNKNOWN_ERROR";
}

std::string encode_frame(std::uint32_t id, std::uint8_t opcode, std::uint8_t flags, std::string_view body) {
  std::string out;
  out.reserve(kHeaderSize + body.size());
  store_u32(out, static_cast<std::uint32_t>(kMinLength + body.size()));
  store_u32(out, id);
  out.push_back(static_cast<char>(opcode));
  out.push_back(static_cast<char>(flags));
  out.append(body);
  return out;
}

void FrameDecoder::feed(std::string_view bytes) {
  if (failed_) return;
  // Drop consumed bytes once they dominate, so a long pipelined stream does
  // not keep every frame it ever carried.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

Result<bool> FrameDecoder::next(Frame& out) {
  if (failed_) return error_;
  std::size_t avail = buf_.size() - pos_;
  if (avail < 4) return false;
  const char* p = buf_.data() + pos_;
  std::uint32_t length = load_u32(p);
  auto fail = [&](WireError code, std::string msg) -> Error {
    failed_ = true;
    failure_ = code;
    if (avail >= 8) failed_id_ = load_u32(p + 4);
    error_ = make_error(ErrorCode::kCorrupt, std::move(msg));
    return error_;
  };
  if (length < kMinLength)
    return fail(WireError::kMalformed, "frame length " + std::to_string(length) + " is below the minimum of 6");
  if (length > max_frame_)
    return fail(WireError::kTooLarge, "frame length " + std::to_string(length) + " exceeds the maximum of " +
                                          std::to_string(max_frame_));
  if (avail < 4 + std::size_t{length}) return false;
  std::uint8_t flags = static_cast<std::uint8_t>(p[9]);
  if (flags & ~kKnownFlags) return fail(WireError::kMalformed, "unknown flag bits " + std::to_string(flags));
  out.id = load_u32(p + 4);
  out.opcode = static_cast<std::uint8_t>(p[8]);
  out.flags = flags;
  out.body.assign(p + kHeaderSize, length - kMinLength);
  pos_ += 4 + std::size_t{length};
  if (buf_.capacity() > kKeepCapacity) {
    std::string rest(buf_, pos_);  // usually empty: the frame was the last bytes read
    buf_.swap(rest);
    pos_ = 0;
  }
  return true;
}

Writer& Writer::u8(std::uint8_t v) {
  out_.push_back(static_cast<char>(v));
  return *this;
}
Writer& Writer::u32(std::uint32_t v) {
  store_u32(out_, v);
  return *this;
}
Writer& Writer::str(std::string_view s) {
  store_u32(out_, static_cast<std::uint32_t>(s.size()));
  out_.append(s);
  return *this;
}

bool Reader::u8(std::uint8_t& v) {
  if (rest_.empty()) return false;
  v = static_cast<std::uint8_t>(rest_[0]);
  rest_.remove_prefix(1);
  return true;
}
bool Reader::u32(std::uint32_t& v) {
  if (rest_.size() < 4) return false;
  v = load_u32(rest_.data());
  rest_.remove_prefix(4);
  return true;
}
bool Reader::str(std::string_view& v) {
  std::uint32_t n = 0;
  if (!u32(n) || rest_.size() < n) return false;
  v = rest_.substr(0, n);
  rest_.remove_prefix(n);
  return true;
}

std::string encode_hello(const Hello& h) {
  return Writer().u32(h.version).u32(h.max_frame).u32(h.capabilities).str(h.server).take();
}
Result<Hello> decode_hello(std::string_view body) {
  Reader r(body);
  Hello h;
  std::string_view server;
  if (!r.u32(h.version) || !r.u32(h.max_frame) || !r.u32(h.capabilities) || !r.str(server) || !r.at_end())
    return bad("greeting", "version/max_frame/capabilities/server");
  h.server = server;
  return h;
}

std::string encode_load_rules(const LoadRulesRequest& q) {
  return Writer().str(q.name).str(q.format).str(q.cls).str(q.text).take();
}
Result<LoadRulesRequest> decode_load_rules(std::string_view body) {
  Reader r(body);
  LoadRulesRequest q;
  if (!r.str(q.name)) return bad("LOAD_RULES", "name");
  if (!r.str(q.format)) return bad("LOAD_RULES", "format");
  if (!r.str(q.cls)) return bad("LOAD_RULES", "class");
  if (!r.str(q.text)) return bad("LOAD_RULES", "text");
  if (!r.at_end()) return bad("LOAD_RULES", "trailing bytes");
  return q;
}

std::string encode_load_rules_reply(const LoadRulesReply& a) {
  return Writer().u32(a.version).u32(a.rules).u32(a.rejected).str(a.state).str(a.report).take();
}
Result<LoadRulesReply> decode_load_rules_reply(std::string_view body) {
  Reader r(body);
  LoadRulesReply a;
  std::string_view state, report;
  if (!r.u32(a.version) || !r.u32(a.rules) || !r.u32(a.rejected) || !r.str(state) || !r.str(report) ||
      !r.at_end())
    return bad("LOAD_RULES reply", "version/rules/rejected/state/report");
  a.state = state;
  a.report = report;
  return a;
}

std::string encode_scan(const ScanRequest& q) {
  Writer w;
  w.str(q.ruleset).u32(static_cast<std::uint32_t>(q.buffers.size()));
  for (const auto& [cls, data] : q.buffers) w.str(cls).str(data);
  return w.take();
}
Result<ScanRequest> decode_scan(std::string_view body) {
  Reader r(body);
  ScanRequest q;
  std::uint32_t n = 0;
  if (!r.str(q.ruleset)) return bad("SCAN", "ruleset");
  if (!r.u32(n)) return bad("SCAN", "count");
  // Each buffer takes at least 8 bytes, so a count the body cannot hold is
  // refused before anything is reserved for it.
  if (n > body.size() / 8) return bad("SCAN", "count");
  q.buffers.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string_view cls, data;
    if (!r.str(cls) || !r.str(data)) return bad("SCAN", "buffer " + std::to_string(i));
    q.buffers.emplace_back(cls, data);
  }
  if (!r.at_end()) return bad("SCAN", "trailing bytes");
  return q;
}

std::string encode_scan_reply(const ScanReply& a) {
  Writer w;
  w.u32(a.version).str(a.state).u32(static_cast<std::uint32_t>(a.hits.size()));
  for (const auto& [id, n] : a.hits) w.str(id).u32(n);
  w.u32(static_cast<std::uint32_t>(a.limited.size()));
  for (const auto& id : a.limited) w.str(id);
  return w.take();
}
Result<ScanReply> decode_scan_reply(std::string_view body) {
  Reader r(body);
  ScanReply a;
  std::string_view state;
  std::uint32_t n = 0, m = 0;
  if (!r.u32(a.version) || !r.str(state) || !r.u32(n) || n > body.size() / 8) return bad("SCAN reply", "header");
  a.state = state;
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string_view id;
    std::uint32_t hits = 0;
    if (!r.str(id) || !r.u32(hits)) return bad("SCAN reply", "hit " + std::to_string(i));
    a.hits.emplace_back(std::string(id), hits);
  }
  if (!r.u32(m) || m > body.size() / 4) return bad("SCAN reply", "limited count");
  for (std::uint32_t i = 0; i < m; ++i) {
    std::string_view id;
    if (!r.str(id)) return bad("SCAN reply", "limited " + std::to_string(i));
    a.limited.emplace_back(id);
  }
  if (!r.at_end()) return bad("SCAN reply", "trailing bytes");
  return a;
}

std::string encode_error(const ErrorReply& e) { return Writer().u32(e.code).str(e.message).take(); }
Result<ErrorReply> decode_error(std::string_view body) {
  Reader r(body);
  ErrorReply e;
  std::string_view msg;
  if (!r.u32(e.code) || !r.str(msg) || !r.at_end()) return bad("ERROR", "code/message");
  e.message = msg;
  return e;
}

std::string encode_text(std::string_view s) { return Writer().str(s).take(); }
Result<std::string> decode_text(std::string_view body) {
  Reader r(body);
  std::string_view s;
  if (!r.str(s) || !r.at_end()) return bad("reply", "text");
  return std::string(s);
}

}  // namespace regexd::server::protocol
