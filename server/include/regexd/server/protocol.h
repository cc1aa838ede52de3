// regexd::server::protocol: the frame codec of docs/protocol.md, shared by the
// daemon, regexctl and the tests.  No I/O here: bytes in, values out.
//
// Every decode function checks each length against the bytes actually present
// before using it, so arbitrary input yields an Error (code kCorrupt), never
// an out-of-bounds read.  Decoded views (std::string_view) point into the
// caller's buffer and are valid as long as it is.
//
// Thread safety: free functions are pure; a FrameDecoder belongs to one
// connection and must not be shared without external locking.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "regexd/engine/result.h"

namespace regexd::server::protocol {

inline constexpr std::uint32_t kVersion = 1;
// length (u32) + id (u32) + opcode (u8) + flags (u8)
inline constexpr std::size_t kHeaderSize = 10;
inline constexpr std::uint32_t kMinLength = 6;  // id + opcode + flags
inline constexpr std::uint32_t kDefaultMaxFrame = 64u << 20;

enum Opcode : std::uint8_t {
  kPing = 0x01,
  kLoadRules = 0x02,
  kScan = 0x03,
  kStats = 0x04,
  kListRulesets = 0x05,
  kMetrics = 0x06,  // reply: the Prometheus text of /metrics (docs/protocol.md)
  kHello = 0x40,
  kError = 0x7f,
};
inline constexpr std::uint8_t kReplyBit = 0x80;
inline constexpr std::uint8_t kFlagClose = 0x01;
// SCAN only: the buffers are one whole message (absent header classes are
// absent headers; docs/protocol.md).  Other opcodes ignore it.
inline constexpr std::uint8_t kFlagMessage = 0x02;
inline constexpr std::uint8_t kKnownFlags = kFlagClose | kFlagMessage;

inline constexpr std::uint32_t kCapLoadRules = 1u << 0;
inline constexpr std::uint32_t kCapTcp = 1u << 1;
// SCAN evaluates meta rules and accepts kFlagMessage.
inline constexpr std::uint32_t kCapMessage = 1u << 2;

// Error codes of the ERROR reply (docs/protocol.md, "Errors").
enum class WireError : std::uint32_t {
  kMalformed = 1,  // connection closed after the error frame
  kTooLarge = 2,   // connection closed after the error frame
  kUnknownOpcode = 3,
  kUnknownRuleset = 4,
  kUnknownClass = 5,
  kBadRules = 6,
  kBusy = 7,
  kInternal = 8,
  kForbidden = 9,  // the daemon's policy refuses this request on this connection
};
std::string_view wire_error_name(std::uint32_t code);

// Rule-set names and classes travel as `str` (bytes), but they come back in
// JSON replies (STATS, LIST_RULESETS), log lines and one-line error messages:
// a name or class is accepted from a client only when it is valid UTF-8,
// 1..kMaxNameBytes bytes, without control characters.  The error names
// `what` ("rule-set name", "class") and shows the value through printable().
inline constexpr std::size_t kMaxNameBytes = 256;
Status check_name(std::string_view what, std::string_view value);
// `s` as one line of valid UTF-8: control bytes and bytes that are not part
// of a valid UTF-8 sequence become \xNN; longer than `max` bytes is cut with
// "...".  For echoing client bytes in error messages and logs.
std::string printable(std::string_view s, std::size_t max = 200);

struct Frame {
  std::uint32_t id = 0;
  std::uint8_t opcode = 0;
  std::uint8_t flags = 0;
  std::string body;
};

// The frame's bytes on the wire, length prefix included.
std::string encode_frame(std::uint32_t id, std::uint8_t opcode, std::uint8_t flags, std::string_view body);

// Splits a byte stream into frames.  feed() appends bytes; next() yields
// complete frames in order.  A length below kMinLength or above max_frame,
// or unknown flag bits, is an error (with the WireError to send back); after
// an error the decoder stays failed, as the stream can no longer be framed.
class FrameDecoder {
 public:
  explicit FrameDecoder(std::uint32_t max_frame = kDefaultMaxFrame) : max_frame_(max_frame) {}
  void feed(std::string_view bytes);
  // True and fills `out` when a whole frame is buffered; false when more
  // bytes are needed; an Error when the stream is malformed.
  Result<bool> next(Frame& out);
  // The id of the frame being decoded when an error happened (0 if unknown).
  std::uint32_t failed_id() const { return failed_id_; }
  WireError failure() const { return failure_; }
  // Bytes received and not yet returned as frames (a partial frame).
  std::size_t buffered() const { return buf_.size() - pos_; }
  // Bytes the decoder holds allocated.  After a frame larger than
  // kKeepCapacity is returned, the buffer shrinks back to what it still
  // holds: one large request does not pin its size for the connection's life.
  std::size_t capacity() const { return buf_.capacity(); }
  static constexpr std::size_t kKeepCapacity = 256 * 1024;

 private:
  std::uint32_t max_frame_;
  std::string buf_;
  std::size_t pos_ = 0;
  bool failed_ = false;
  WireError failure_ = WireError::kMalformed;
  std::uint32_t failed_id_ = 0;
  Error error_;
};

// Body builder and reader for the field types of docs/protocol.md.
class Writer {
 public:
  Writer& u8(std::uint8_t v);
  Writer& u32(std::uint32_t v);
  Writer& str(std::string_view s);
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view body) : rest_(body) {}
  bool u8(std::uint8_t& v);
  bool u32(std::uint32_t& v);
  bool str(std::string_view& v);
  bool at_end() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

// Typed bodies.  decode_* fail with kCorrupt naming the first bad field.
struct Hello {
  std::uint32_t version = kVersion;
  std::uint32_t max_frame = kDefaultMaxFrame;
  std::uint32_t capabilities = 0;
  std::string server;
};
std::string encode_hello(const Hello& h);
Result<Hello> decode_hello(std::string_view body);

struct LoadRulesRequest {
  std::string_view name, format, cls, text;
};
std::string encode_load_rules(const LoadRulesRequest& r);
Result<LoadRulesRequest> decode_load_rules(std::string_view body);

struct LoadRulesReply {
  std::uint32_t version = 0, rules = 0, rejected = 0;
  std::string state, report;
};
std::string encode_load_rules_reply(const LoadRulesReply& r);
Result<LoadRulesReply> decode_load_rules_reply(std::string_view body);

struct ScanRequest {
  std::string_view ruleset;
  std::vector<std::pair<std::string_view, std::string_view>> buffers;  // (class, data)
};
std::string encode_scan(const ScanRequest& r);
Result<ScanRequest> decode_scan(std::string_view body);

struct ScanReply {
  std::uint32_t version = 0;
  std::string state;
  std::vector<std::pair<std::string, std::uint32_t>> hits;  // sorted by rule id
  std::vector<std::string> limited;
};
std::string encode_scan_reply(const ScanReply& r);
Result<ScanReply> decode_scan_reply(std::string_view body);

struct ErrorReply {
  std::uint32_t code = 0;
  std::string message;
};
std::string encode_error(const ErrorReply& e);
Result<ErrorReply> decode_error(std::string_view body);

// STATS and LIST_RULESETS carry one string (JSON).
std::string encode_text(std::string_view s);
Result<std::string> decode_text(std::string_view body);

}  // namespace regexd::server::protocol
