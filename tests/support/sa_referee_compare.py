#!/usr/bin/env python3
"""The set logic of the SpamAssassin referee (bench/sa_referee.sh, issue 12).

  sa_referee_compare.py lists DESCRIBE.jsonl REGEXD.log COMPILE.json OUTDIR
      From SpamAssassin's parsed configuration (sa_referee.pl --describe), the rules regexd
      rejected (its log) and regexd's compile report (`regexctl compile --format spamassassin
      --json`), writes OUTDIR/off.txt (the rules regexd cannot run, to be switched off in
      SpamAssassin), OUTDIR/known.txt (the rules and metas regexd runs), OUTDIR/relay.txt (rules on
      SpamAssassin's relay pseudo-headers) and OUTDIR/lists.json (all of it with counts).
      When the report names regexd's `unsupported` tests (a regexd with metas), those and the
      rejected ones are what regexd cannot run; from an older regexd (no such list) it is derived
      from SpamAssassin's test types: eval, exists:, !~ and empty tests off, metas not compared.

  sa_referee_compare.py compare OUTDIR SA.jsonl RSPAMD.jsonl [--report FILE]
                                [--min-public PCT] [--min-sub PCT] [--metas auto|yes|no]
      Compares, message by message, SpamAssassin's hits with regexd's (through Rspamd and the
      plugin) and prints a Markdown report; exits 1 when an agreement is below its minimum.

What is compared, per message: the names regexd knows (known.txt, plus SpamAssassin's metas when
regexd evaluates metas), without
  - rules on SpamAssassin's relay pseudo-headers (X-Spam-Relays-*, ALL-TRUSTED, ALL-UNTRUSTED,
    ALL-INTERNAL, ALL-EXTERNAL): built from SpamAssassin's Received-header parsing and its
    trusted/internal network settings, which Rspamd does not expose;
  - public rules and metas whose score is 0 in SpamAssassin's score set 0 (local tests, no Bayes):
    SpamAssassin does not run them at all (Plugin/Check.pm skips rules whose score is 0).
Public = names without a leading `__`; sub-rules = names with it.
"""
import argparse
import collections
import json
import os
import re
import sys

RELAY_HEADER = re.compile(r'^(X-Spam-Relays-(Trusted|Untrusted|Internal|External)|'
                          r'ALL-(TRUSTED|UNTRUSTED|INTERNAL|EXTERNAL))(:|$)', re.I)
NAME = re.compile(r'^[A-Za-z0-9_]+$')
REGEX_TYPES = {'header', 'body', 'rawbody', 'full', 'uri'}


def read_jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def write_list(path, names):
    with open(path, 'w', encoding='utf-8') as f:
        for n in sorted(names):
            f.write(n + '\n')


def cmd_lists(a):
    rules = read_jsonl(a.describe)
    rejected = set()
    with open(a.regexd_log, encoding='utf-8', errors='replace') as f:
        for line in f:
            # "rule set NAME: FILE:LINE: rule ID: reason" (server/src/main.cpp, engine RuleError)
            m = re.search(r'rule set \S+: .*?: rule ([A-Za-z0-9_]+): ', line)
            if m:
                rejected.add(m.group(1))
    with open(a.compile_json, encoding='utf-8') as f:
        report = json.load(f)
    for e in report.get('rejected', []):
        if e.get('rule'):
            rejected.add(e['rule'])
    unsupported = report.get('unsupported')  # {name: kind}, from a regexd that evaluates metas
    known, off, relay, metas, zero, why_off = set(), set(), set(), set(), set(), collections.Counter()
    for r in rules:
        name, typ = r['name'], r['type']
        if r['score'] == 0:
            zero.add(name)
        if typ == 'meta':
            metas.add(name)
        reason = None
        if name in rejected:
            reason = 'rejected by regexd'
        elif unsupported is not None:
            if name in unsupported:
                reason = 'regexd: ' + str(unsupported[name])
            elif typ == 'empty':
                reason = 'type empty'
        elif typ == 'meta':
            continue  # an older regexd without metas: they are simply not compared
        elif typ not in REGEX_TYPES:
            reason = 'type ' + typ
        elif r['eval']:
            reason = 'eval'
        elif r.get('exists'):
            reason = 'exists:'
        elif r.get('neg'):
            reason = 'negated header test (!~)'
        if reason:
            off.add(name)
            why_off[reason] += 1
            continue
        known.add(name)
        if typ == 'header' and RELAY_HEADER.match(r.get('header', '')):
            relay.add(name)
    os.makedirs(a.outdir, exist_ok=True)
    write_list(os.path.join(a.outdir, 'off.txt'), off)
    write_list(os.path.join(a.outdir, 'known.txt'), known)
    write_list(os.path.join(a.outdir, 'relay.txt'), relay)
    deps = {r['name']: r.get('deps', []) for r in rules if r['type'] == 'meta'}
    with open(os.path.join(a.outdir, 'lists.json'), 'w', encoding='utf-8') as f:
        json.dump({'known': sorted(known), 'off': sorted(off), 'off_why': why_off, 'relay': sorted(relay),
                   'metas': sorted(metas), 'zero': sorted(zero), 'rejected': sorted(rejected),
                   'meta_deps': deps, 'types': {r['name']: r['type'] for r in rules},
                   'headers': {r['name']: r['header'] for r in rules if 'header' in r},
                   'regexd_metas': unsupported is not None}, f)
    print(f'SpamAssassin: {len(rules)} tests ({len(metas)} metas); regexd runs {len(known)} of them '
          f'({len(known & metas)} metas; {len(relay)} rules on relay pseudo-headers; regexd\'s own count: '
          f'{report.get("rules")} rules, {report.get("metas", 0)} metas); switched off in SpamAssassin: '
          f'{len(off)} ({", ".join(f"{k} {v}" for k, v in why_off.most_common(8))}); '
          f'regexd rejected {len(rejected)}')


OTHER = re.compile(r'^REGEXD_OTHER(_[0-9]+)?$')


def regexd_hits(d):
    """Every rule name in an `rspamc -j` answer: the symbols, and the options of REGEXD_OTHER (and
    of REGEXD_OTHER_2, _3 ..., over which the plugin spreads them past Rspamd's per-symbol limits)."""
    syms = d.get('symbols', {})
    names = set()
    for sym, v in syms.items():
        if sym == 'REGEXD_FAIL':
            continue
        if OTHER.match(sym):
            for o in v.get('options', []):
                o = str(o).split('(')[0].strip()
                if NAME.match(o):
                    names.add(o)
        elif NAME.match(sym):
            names.add(sym)
    return names


def pct(n, d):
    return 100.0 * n / d if d else 0.0


def closure(name, deps, memo, stack=()):
    """Every rule a meta depends on, transitively."""
    if name in memo:
        return memo[name]
    out = set()
    for d in deps.get(name, []):
        out.add(d)
        if d in deps and d not in stack:
            out |= closure(d, deps, memo, stack + (name,))
    memo[name] = out
    return out


def tally(files, sa, got, universe):
    """Per message: are the public sets identical, are the __ sets; per rule: messages where only
    SpamAssassin / only regexd hit."""
    only_sa, only_rx = collections.Counter(), collections.Counter()
    same_pub = same_sub = 0
    for f in files:
        s = set(sa[f]['hits']) & universe
        r = got[f] & universe
        for x in s - r:
            only_sa[x] += 1
        for x in r - s:
            only_rx[x] += 1
        same_pub += {x for x in s if not x.startswith('__')} == {x for x in r if not x.startswith('__')}
        same_sub += {x for x in s if x.startswith('__')} == {x for x in r if x.startswith('__')}
    return same_pub, same_sub, only_sa, only_rx


def cmd_compare(a):
    with open(os.path.join(a.outdir, 'lists.json'), encoding='utf-8') as f:
        L = json.load(f)
    known, relay, zero, metas = set(L['known']), set(L['relay']), set(L['zero']), set(L['metas'])
    types, headers, deps = L['types'], L['headers'], L['meta_deps']
    sa = {r['file']: r for r in read_jsonl(a.sa)}
    sa_nr = {r['file']: r for r in read_jsonl(a.sa_norelay)} if a.sa_norelay else None
    rs = {r['file']: r for r in read_jsonl(a.rspamd)}
    files = [f for f in rs if f in sa and (sa_nr is None or f in sa_nr)]
    missing = sorted({f for f in list(sa) + list(rs) + list(sa_nr or {}) if f not in files})
    failed = [f for f in files if 'REGEXD_FAIL' in rs[f]['answer'].get('symbols', {})]
    # A test switched off with score 0 must never show up in SpamAssassin's hits (checks that the
    # extra .cf took effect), nor a relay rule in the run without them.
    off_set, relay_set = set(L['off']), set(L['relay'])
    leaked = {x for f in files for x in sa[f]['hits'] if x in off_set}
    if sa_nr is not None:
        leaked |= {x for f in files for x in sa_nr[f]['hits'] if x in off_set | relay_set}

    got = {f: regexd_hits(rs[f]['answer']) for f in files}
    seen_metas = set().union(*got.values()) & metas if got else set()
    evaluates_metas = {'yes': True, 'no': False}.get(a.metas, L.get('regexd_metas') or bool(seen_metas))
    universe = set(known) | (metas - set(L['off']) if evaluates_metas else set())
    universe -= relay
    universe -= {x for x in zero if not x.startswith('__')}
    unknown_to_sa = collections.Counter(x for f in files for x in got[f] if x not in types)

    memo = {}
    relay_dep = {m for m in metas if closure(m, deps, memo) & relay}
    zero_dep = {m for m in metas if {d for d in closure(m, deps, memo) if d in zero and d not in metas}}
    same_pub, same_sub, only_sa, only_rx = tally(files, sa, got, universe)
    if sa_nr is not None:
        nr_pub, nr_sub, nr_only_sa, nr_only_rx = tally(files, sa_nr, got, universe)
    n = len(files)

    def what(name):
        t = types.get(name, '?')
        if t == 'header':
            return 'header ' + headers.get(name, '?')
        if t == 'meta':
            notes = [x for x, c in (('a relay rule', relay_dep), ('a score-0 rule', zero_dep)) if name in c]
            return 'meta' + (f' (reads {" and ".join(notes)})' if notes else '')
        return t

    out = []
    w = out.append
    w(f'## SpamAssassin referee: {n} messages')
    w('')
    w('| SpamAssassin | public rules and metas identical | `__` sub-rules identical |')
    w('|---|---|---|')
    w(f'| stock, minus the tests regexd cannot run | {same_pub}/{n} ({pct(same_pub, n):.1f}%) | '
      f'{same_sub}/{n} ({pct(same_sub, n):.1f}%) |')
    if sa_nr is not None:
        w(f'| also without the {len(relay)} relay pseudo-header rules (what Rspamd can give) | '
          f'{nr_pub}/{n} ({pct(nr_pub, n):.1f}%) | {nr_sub}/{n} ({pct(nr_sub, n):.1f}%) |')
    w('')
    npub = len({x for x in universe if not x.startswith('__')})
    w(f'Compared: {len(universe)} names ({npub} public, {len(universe) - npub} `__`); regexd evaluates '
      f'metas: {"yes" if evaluates_metas else "no"} ({len(seen_metas)} distinct SpamAssassin metas in its '
      f'answers; its compile report {"lists" if L.get("regexd_metas") else "does not list"} '
      f'unsupported tests; --metas {a.metas}). Left out: the {len(relay)} relay pseudo-header rules '
      f'themselves ({len(relay_dep & universe)} compared metas read them), '
      f'{len([x for x in zero if not x.startswith("__")])} public rules/metas with score 0, '
      f'{len(L["off"])} tests regexd cannot run (switched off in SpamAssassin).')
    if failed:
        w(f'**REGEXD_FAIL on {len(failed)} messages** (e.g. {failed[0]}).')
    if missing:
        w(f'**{len(missing)} messages answered by only one side** (e.g. {missing[0]}).')
    if leaked:
        w(f'**SpamAssassin hit tests that were switched off**: {", ".join(sorted(leaked)[:10])}.')
    w('')
    sa_ms = sorted(sa[f].get('ms', 0) for f in files)
    rs_ms = sorted(rs[f].get('ms', 0) for f in files)
    task_ms = sorted(1000.0 * rs[f]['answer'].get('time_real', 0) for f in files)
    if n:
        med = lambda v: v[len(v) // 2]
        w(f'Time per message: SpamAssassin check() median {med(sa_ms):.1f} ms, mean {sum(sa_ms) / n:.1f} ms; '
          f'Rspamd task (its time_real: parsing, the plugin building buffers, regexd) median '
          f'{med(task_ms):.1f} ms, mean {sum(task_ms) / n:.1f} ms; rspamc round trip (process start '
          f'included) median {med(rs_ms):.1f} ms.')
        if a.stats:
            try:
                with open(a.stats, encoding='utf-8') as f:
                    st = json.load(f)['rulesets'][0]
                w(f'regexd inside the daemon (STATS, all SCAN requests): p50 {st["latency_us"]["p50"] / 1000:.1f} ms, '
                  f'p99 {st["latency_us"]["p99"] / 1000:.1f} ms; rule set state {st["state"]} at the end'
                  + (' (Hyperscan was still compiling: PCRE2 answered, same answers, slower).'
                     if st['state'] != 'hyperscan' else '.'))
            except (OSError, ValueError, KeyError, IndexError) as e:
                w(f'(regexd STATS unreadable: {e})')
        w('')
    rows = set(only_sa) | set(only_rx)
    if sa_nr is not None:
        rows |= set(nr_only_sa) | set(nr_only_rx)
        key = lambda x: (-(nr_only_sa[x] + nr_only_rx[x]), -(only_sa[x] + only_rx[x]), x)
    else:
        key = lambda x: (-(only_sa[x] + only_rx[x]), x)
    rows = sorted(rows, key=key)
    w(f'Rules that differ ({len(rows)}), messages where only SpamAssassin / only regexd hit'
      + (', sorted by the second pair (SpamAssassin without relay rules):' if sa_nr is not None else ':'))
    w('')
    if sa_nr is not None:
        w('| rule | kind | SA only | regexd only | SA only, no relay rules | regexd only, no relay rules |')
        w('|---|---|---|---|---|---|')
    else:
        w('| rule | kind | SA only | regexd only |')
        w('|---|---|---|---|')
    for x in rows[:a.top]:
        extra = f' {nr_only_sa[x]} | {nr_only_rx[x]} |' if sa_nr is not None else ''
        w(f'| {x} | {what(x)} | {only_sa[x]} | {only_rx[x]} |{extra}')
    if len(rows) > a.top:
        rest = rows[a.top:]
        extra = (f' {sum(nr_only_sa[x] for x in rest)} | {sum(nr_only_rx[x] for x in rest)} |'
                 if sa_nr is not None else '')
        w(f'| ({len(rest)} more) | | {sum(only_sa[x] for x in rest)} | {sum(only_rx[x] for x in rest)} |{extra}')
    if unknown_to_sa:
        w('')
        w(f'Names in regexd\'s answers that SpamAssassin\'s configuration does not define: '
          + ', '.join(f'{k} ({v})' for k, v in unknown_to_sa.most_common(15)))
    text = '\n'.join(out) + '\n'
    sys.stdout.write(text)
    if a.report:
        with open(a.report, 'w', encoding='utf-8') as f:
            f.write(text)
        with open(a.report + '.json', 'w', encoding='utf-8') as f:
            j = {'messages': n, 'public_identical': same_pub, 'sub_identical': same_sub,
                 'evaluates_metas': evaluates_metas, 'regexd_fail': len(failed),
                 'only_sa': only_sa, 'only_regexd': only_rx}
            if sa_nr is not None:
                j.update({'norelay_public_identical': nr_pub, 'norelay_sub_identical': nr_sub,
                          'norelay_only_sa': nr_only_sa, 'norelay_only_regexd': nr_only_rx})
            json.dump(j, f, indent=1)
    rc = 0
    if n == 0 or missing or failed or leaked:
        print('sa_referee: FAIL: messages missing or failed on one side, or a switched-off test hit',
              file=sys.stderr)
        rc = 1
    # The minimums hold for the comparison on what Rspamd can give (SpamAssassin without its relay
    # rules, when that run is there): what the plugin's buffers and regexd's engine decide.
    gate_pub, gate_sub = (nr_pub, nr_sub) if sa_nr is not None else (same_pub, same_sub)
    for label, got_n, minimum in (('public rules and metas', gate_pub, a.min_public),
                                  ('sub-rules', gate_sub, a.min_sub)):
        if minimum is not None and pct(got_n, n) < minimum:
            print(f'sa_referee: FAIL: {label} identical on {pct(got_n, n):.1f}% < {minimum}%', file=sys.stderr)
            rc = 1
    return rc


def main():
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest='cmd', required=True)
    l = sp.add_parser('lists')
    l.add_argument('describe')
    l.add_argument('regexd_log')
    l.add_argument('compile_json')
    l.add_argument('outdir')
    c = sp.add_parser('compare')
    c.add_argument('outdir')
    c.add_argument('sa')
    c.add_argument('rspamd')
    c.add_argument('--sa-norelay', help='SpamAssassin run with the relay rules switched off too')
    c.add_argument('--report')
    c.add_argument('--stats', help="regexctl stats --json taken after the scans")
    c.add_argument('--min-public', type=float)
    c.add_argument('--min-sub', type=float)
    c.add_argument('--metas', choices=['auto', 'yes', 'no'], default='auto')
    c.add_argument('--top', type=int, default=40)
    a = p.parse_args()
    if a.cmd == 'lists':
        cmd_lists(a)
        return 0
    return cmd_compare(a)


if __name__ == '__main__':
    sys.exit(main())
