#!/usr/bin/env python3
"""sa_buffers_compare.py DIR [CLASS=MIN%...]: compares SpamAssassin's buffers (*.sa) with the
plugin's (*.rx) per message and class (url as a set); prints, per class, the messages where they are
identical, and the first differences of the classes below their minimum; exit 1 if any is below."""
import collections
import os
import sys


def load(path):
    res = collections.defaultdict(list)
    with open(path, 'rb') as f:
        for line in f.read().split(b'\n'):
            if line:
                key, _, value = line.partition(b'\t')
                res[key.decode()].append(value)
    return res


def main():
    d = sys.argv[1]
    minimums = {}
    for arg in sys.argv[2:]:
        cls, _, pct = arg.partition('=')
        minimums[cls] = float(pct)
    same, total, diffs = collections.Counter(), collections.Counter(), collections.defaultdict(list)
    for name in sorted(os.listdir(d)):
        if not name.endswith('.sa'):
            continue
        base = name[:-3]
        sa, rx = load(os.path.join(d, name)), load(os.path.join(d, base + '.rx'))
        for cls in set(sa) | set(rx):
            a, b = sa.get(cls, []), rx.get(cls, [])
            if cls == 'url':
                a, b = sorted(set(a)), sorted(set(b))
            total[cls] += 1
            if a == b:
                same[cls] += 1
            else:
                diffs[cls].append((base, [x for x in a if x not in b][:2], [x for x in b if x not in a][:2]))
    failed = False
    for cls in sorted(total):
        pct = 100.0 * same[cls] / total[cls]
        want = minimums.get(cls, minimums.get('header:*' if cls.startswith('header:') else '', 0))
        low = pct < want
        failed |= low
        print('%-24s %4d/%4d identical (%5.1f%%)%s' % (cls, same[cls], total[cls], pct,
                                                      '  BELOW %g%%' % want if low else ''))
        if low:
            for base, a, b in diffs[cls][:3]:
                print('    %s\n      SpamAssassin: %r\n      plugin:       %r' % (base, a, b))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
