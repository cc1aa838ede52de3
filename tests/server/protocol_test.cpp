// The frame codec: round trips, arbitrary splits, truncation at every length,
// and random bytes (run under ASan/UBSan by the debug-asan preset).
#include <gtest/gtest.h>

#include <random>

#include "regexd/server/protocol.h"

namespace {

using namespace regexd::server::protocol;

std::string sample_stream() {
  std::string s;
  s += encode_frame(1, kPing, 0, {});
  ScanRequest q;
  q.ruleset = "default";
  q.buffers = {{"body", "hello world"}, {"header:Subject", std::string_view("\0\xff", 2)}};
  s += encode_frame(2, kScan, kFlagClose, encode_scan(q));
  s += encode_frame(3, kLoadRules, 0, encode_load_rules({"x", "native", "", "A body /a/\n"}));
  return s;
}

std::vector<Frame> decode_all(std::string_view stream, std::size_t chunk) {
  FrameDecoder d;
  std::vector<Frame> out;
  for (std::size_t i = 0; i < stream.size(); i += chunk) {
    d.feed(stream.substr(i, chunk));
    Frame f;
    for (;;) {
      auto r = d.next(f);
      EXPECT_TRUE(r.ok()) << r.error().message;
      if (!r.ok() || !*r) break;
      out.push_back(f);
    }
  }
  return out;
}

TEST(Protocol, MessagesRoundTrip) {
  auto hello = decode_hello(encode_hello({1, 4096, kCapLoadRules, "regexd test"}));
  ASSERT_TRUE(hello.ok());
  EXPECT_EQ(hello->max_frame, 4096u);
  EXPECT_EQ(hello->server, "regexd test");

  ScanRequest q;
  q.ruleset = "rs";
  q.buffers = {{"body", "abc"}, {"url", ""}};
  std::string body = encode_scan(q);  // decoded views point into it
  auto q2 = decode_scan(body);
  ASSERT_TRUE(q2.ok());
  EXPECT_EQ(q2->ruleset, "rs");
  ASSERT_EQ(q2->buffers.size(), 2u);
  EXPECT_EQ(q2->buffers[0].second, "abc");
  EXPECT_EQ(q2->buffers[1].first, "url");

  ScanReply a{7, "hyperscan", {{"A", 1}, {"B", 3}}, {"L"}};
  auto a2 = decode_scan_reply(encode_scan_reply(a));
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(a2->version, 7u);
  EXPECT_EQ(a2->hits, a.hits);
  EXPECT_EQ(a2->limited, a.limited);

  auto l = decode_load_rules_reply(encode_load_rules_reply({3, 10, 1, "pcre2", "x:1: rule Q: bad\n"}));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->rejected, 1u);
  EXPECT_EQ(l->report, "x:1: rule Q: bad\n");

  auto e = decode_error(encode_error({5, "no class"}));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->code, 5u);
  EXPECT_EQ(wire_error_name(e->code), "UNKNOWN_CLASS");
}

TEST(Protocol, AStreamDecodesTheSameWhateverTheChunking) {
  std::string stream = sample_stream();
  for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{7}, stream.size()}) {
    auto frames = decode_all(stream, chunk);
    ASSERT_EQ(frames.size(), 3u) << "chunk " << chunk;
    EXPECT_EQ(frames[0].opcode, kPing);
    EXPECT_EQ(frames[1].id, 2u);
    EXPECT_EQ(frames[1].flags, kFlagClose);
    EXPECT_TRUE(decode_scan(frames[1].body).ok());
    EXPECT_EQ(frames[2].opcode, kLoadRules);
  }
}

TEST(Protocol, EveryTruncationWaitsForMoreAndNeverYieldsAPartialFrame) {
  std::string stream = sample_stream();
  std::size_t first = encode_frame(1, kPing, 0, {}).size();
  for (std::size_t len = 0; len < stream.size(); ++len) {
    FrameDecoder d;
    d.feed(std::string_view(stream).substr(0, len));
    Frame f;
    std::size_t got = 0;
    for (;;) {
      auto r = d.next(f);
      ASSERT_TRUE(r.ok()) << "length " << len;
      if (!*r) break;
      ++got;
    }
    EXPECT_LT(got, 3u) << "length " << len;  // the last frame is never complete
    if (len < first) EXPECT_EQ(got, 0u) << "length " << len;
    else EXPECT_GE(got, 1u) << "length " << len;
  }
}

TEST(Protocol, TruncatedBodiesAreErrorsNotReads) {
  ScanRequest q;
  q.ruleset = "default";
  q.buffers = {{"body", "hello"}, {"url", "http://x"}};
  std::string body = encode_scan(q);
  for (std::size_t len = 0; len < body.size(); ++len)
    EXPECT_FALSE(decode_scan(std::string_view(body).substr(0, len)).ok()) << len;
  std::string reply = encode_scan_reply({1, "pcre2", {{"A", 2}}, {"B"}});
  for (std::size_t len = 0; len < reply.size(); ++len)
    EXPECT_FALSE(decode_scan_reply(std::string_view(reply).substr(0, len)).ok()) << len;
  // A count far beyond what the body holds is refused before allocating.
  EXPECT_FALSE(decode_scan(Writer().str("rs").u32(0xffffffffu).take()).ok());
}

TEST(Protocol, BadLengthsAndFlagsFailTheStream) {
  FrameDecoder small(1024);
  small.feed(encode_frame(9, kScan, 0, std::string(2000, 'x')));
  Frame f;
  auto r = small.next(f);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(small.failure(), WireError::kTooLarge);
  EXPECT_EQ(small.failed_id(), 9u);
  EXPECT_FALSE(small.next(f).ok());  // stays failed

  FrameDecoder tiny;
  tiny.feed(std::string("\x03\x00\x00\x00\x01\x00\x00", 7));
  ASSERT_FALSE(tiny.next(f).ok());
  EXPECT_EQ(tiny.failure(), WireError::kMalformed);

  FrameDecoder flags;
  flags.feed(encode_frame(1, kPing, 0x80, {}));
  ASSERT_FALSE(flags.next(f).ok());
  EXPECT_EQ(flags.failure(), WireError::kMalformed);
}

TEST(Protocol, RandomBytesNeverCrashTheDecoders) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 20000; ++round) {
    std::size_t n = rng() % 64;
    std::string bytes(n, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    // Random, and random with a plausible small length prefix.
    if (round % 2 && n >= 4) bytes[0] = static_cast<char>(n - 4), bytes[1] = bytes[2] = bytes[3] = 0;
    FrameDecoder d(1 << 16);
    d.feed(bytes);
    Frame f;
    while (true) {
      auto r = d.next(f);
      if (!r.ok() || !*r) break;
      (void)decode_scan(f.body);
      (void)decode_load_rules(f.body);
    }
    (void)decode_scan(bytes);
    (void)decode_scan_reply(bytes);
    (void)decode_load_rules(bytes);
    (void)decode_load_rules_reply(bytes);
    (void)decode_hello(bytes);
    (void)decode_error(bytes);
    (void)decode_text(bytes);
  }
  SUCCEED();
}

}  // namespace
