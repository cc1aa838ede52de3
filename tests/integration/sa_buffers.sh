#!/usr/bin/env bash
# The Rspamd plugin's buffers against SpamAssassin 4.0.1's own (issue 12, docs/rules.md "Buffers as
# SpamAssassin builds them"): for N corpus messages (N/5 from each corpus directory), what
# SpamAssassin's Perl API gives its body, rawbody, uri and header rules (tests/support/sa_buffers.pl)
# and what clients/rspamd/regexd.lua builds from Rspamd 3.4's parsed message (under `rspamadm lua`,
# tests/support/plugin_buffers.lua) are compared per message and class; fails when a class is
# identical on fewer messages than its minimum (measured 2026-11-30, see below).
#
# Usage: sa_buffers.sh SOURCE_DIR CORPUS_DIR [N]     (N default 200)
set -euo pipefail

die() { echo "sa_buffers: FAIL: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || die "usage: $0 SOURCE_DIR CORPUS_DIR [N]"
src=$1 corpus=$2 n=${3:-200}
for tool in rspamadm perl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup-deps.sh --test installs it)"
done
perl -MMail::SpamAssassin -e 1 2>/dev/null || die "SpamAssassin's Perl modules are missing (Debian package spamassassin)"
[[ -d $corpus/messages ]] || die "no corpus under '$corpus' (run scripts/fetch-corpus.sh)"

tmp=$(mktemp -d /tmp/regexd-sa-buffers.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for d in "$corpus"/messages/*/; do
  find "$d" -maxdepth 1 -type f | sort | sed -n "1,$((n / 5))p"
done >"$tmp/list"
# Messages that once showed a difference the sample above does not reach: spam-1/00258 has a
# Return-Path after a Received header, so SpamAssassin's EnvelopeFrom is empty (the plugin once
# read the header names as Lua patterns, where '-' is a quantifier, and missed it).
for m in spam-1/00258.4af5bde7fabd4e797b85cf95bcbbb45a; do
  [[ -f $corpus/messages/$m ]] && echo "$corpus/messages/$m"
done >>"$tmp/list"
[[ -s $tmp/list ]] || die "no messages found under $corpus/messages"

export SA_BUFFERS_HEADERS="Subject From To From:addr From:name To:addr ToCc ToCc:addr Reply-To:addr
  Received Message-Id MESSAGEID ALL ALL:raw From:raw Subject:raw EnvelopeFrom Return-Path:addr
  X-Mailer Content-Type Date References From:name:raw"
started=$(date +%s)
xargs perl "$src/tests/support/sa_buffers.pl" "$tmp" <"$tmp/list" 2>"$tmp/sa.err" ||
  die "SpamAssassin failed: $(tail -n 3 "$tmp/sa.err")"
rspamadm lua "$src/tests/support/plugin_buffers.lua" \
  -a "$src/clients/rspamd/regexd.lua $tmp $tmp/list" >"$tmp/lua.out" 2>&1 ||
  die "the plugin's buffer building failed: $(tail -n 3 "$tmp/lua.out")"
grep -q 'failed\|error' "$tmp/lua.out" && die "the plugin's buffer building failed: $(grep -m3 'failed\|error' "$tmp/lua.out")"
[[ $(find "$tmp" -name '*.rx' | wc -l) -eq $(wc -l <"$tmp/list") ]] ||
  die "the plugin wrote buffers for $(find "$tmp" -name '*.rx' | wc -l) of $(wc -l <"$tmp/list") messages: $(tail -n 3 "$tmp/lua.out")"
# Minimums (% of messages identical), a little below what was measured on these 200 messages on
# 2026-11-30 (body 99.5, rawbody 99.0, url 94.7, every header >= 99); docs/rules.md names the
# causes of what differs.
python3 "$src/tests/support/sa_buffers_compare.py" "$tmp" body=98 rawbody=98 url=92 'header:*=97' header:EnvelopeFrom=100 ||
  die "a class is below its minimum"
echo "sa_buffers: PASS ($(wc -l <"$tmp/list") messages, $(($(date +%s) - started)) s)"
