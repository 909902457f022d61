#!/usr/bin/env python3
"""scripts/check-layers.py: check that lib/'s folders include downward only.

Each folder of lib/ is a layer that may include the headers of the layers
listed for it in LAYERS, and of theirs (the arrows are followed). A
public header include/tgraph/X.h belongs to the layer that implements it
(PUBLIC). lib/internal.h is util's. Every other include found in
lib/<folder>/*.c|h is reported as file:line with the arrow it breaks, and
the exit status is 1; so is every use of a word FORBIDDEN to the folder.

Usage:
  check-layers.py ROOT                 check ROOT/lib (ROOT: the source tree)
  check-layers.py ROOT --expect F:L... succeed only when the violations are
                                       exactly F:L... (tests of this check;
                                       L is 0 for a folder)
"""
import os
import re
import sys

# Layer -> the layers it may include directly (the arrows point down).
LAYERS = {
    'util': [],
    'value': ['util'],
    'serial': ['value'],
    'registry': ['value'],
    'plugin': ['registry'],
    'builtins': ['registry'],
    'graph': ['registry'],
    'json': ['graph', 'plugin'],           # the graph.json reader
    'cache': ['serial'],                   # storage: LMDB, blobs, records
    'memo': ['graph', 'cache'],            # node keys, store/lookup policy
    'sched': ['memo'],
    'wire': ['serial'],                    # the worker protocol, links, keys
    'worker': ['graph', 'wire'],           # the worker runtime: calls tasks
                                           # over a task host, not a run
    'backends': ['sched'],                 # in process: sync, threads
    'offload': ['backends', 'worker'],     # the out-of-process engine and its
                                           # transports (forked, ZeroMQ)
    'report': ['sched'],
    'dashboard': ['report', 'offload'],
    'launch': ['offload', 'plugin'],       # ranks of mpirun/srun: tgraph/cluster.h
}

# Public headers (include/tgraph/) -> the layer implementing them.
PUBLIC = {
    'error.h': 'util', 'readfile.h': 'util',
    'value.h': 'value',
    'serial.h': 'serial',
    'registry.h': 'registry', 'codeid.h': 'registry',
    'plugin.h': 'plugin',
    'builtins.h': 'builtins',
    'graph.h': 'graph',
    'graphjson.h': 'json',
    'cache.h': 'cache',
    'executor.h': 'sched',
    'remote.h': 'wire',  # keys and stats of the layers above it
    'report.h': 'report',
    'dashboard.h': 'dashboard',
    'cluster.h': 'launch',
    'tgraph.h': 'dashboard',  # all of them
}

# Known exceptions: (file, included header) -> why it is tolerated. One
# whose file no longer includes the header fails the check, so the list
# only shrinks.
EXCEPTIONS = {
    ('lib/cache/cache_memo.h', 'tgraph/graph.h'):
        'the kinds of notes kept for dry runs are the public '
        'tg_explain_note (an enum only)',
}

# Words a layer must not use -> why: the scheduler finds a backend by name
# and reads its capabilities (sched/backend.h), it never tests which one
# it runs.
FORBIDDEN = {
    'sched': [(re.compile(r'\btg__backend_(sync|threads|processes|tcp)\b|'
                          r'ops->name\s*[!=]=|strcmp\([^;]*ops->name'),
               'the scheduler tests which backend it runs: give the backend '
               'a capability flag (TG__CAP_*, sched/backend.h) instead')],
    'offload': [(re.compile(r'->tr\s*[!=]=|[!=]=\s*&tg__transport_'),
                 'the engine tests which transport it runs: give the '
                 'transport a hook or a capability flag (TG__TR_*, '
                 'offload/engine.h) instead')],
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def closure(layer):
    """The layers `layer` may include: itself and everything below."""
    seen, todo = {layer}, [layer]
    while todo:
        for d in LAYERS[todo.pop()]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def layer_of(src_dir, inc, lib):
    """The layer of header `inc` included from a file in lib/src_dir,
    or None for a header outside lib/ and include/tgraph/ (generated)."""
    if inc.startswith('tgraph/'):
        return PUBLIC.get(inc[len('tgraph/'):], '?' + inc)
    local = os.path.normpath(os.path.join(lib, src_dir, inc))
    if os.path.exists(local):  # "x.h" next to the file, or "../dir/x.h"
        rel = os.path.relpath(local, lib)
    elif os.path.exists(os.path.join(lib, inc)):  # "dir/x.h" from lib/
        rel = os.path.normpath(inc)
    else:
        return None
    parts = rel.split(os.sep)
    if len(parts) == 1:
        return 'util' if parts[0] == 'internal.h' else '?' + rel
    return parts[0]


def check(root):
    lib = os.path.join(root, 'lib')
    found, used = [], set()
    for d in sorted(os.listdir(lib)):
        if not os.path.isdir(os.path.join(lib, d)):
            continue
        if d not in LAYERS:
            found.append((f'lib/{d}', 0, f'lib/{d}/ is no layer of '
                          'scripts/check-layers.py: add it to LAYERS'))
            continue
        allowed = closure(d)
        for name in sorted(os.listdir(os.path.join(lib, d))):
            if not name.endswith(('.c', '.h')):
                continue
            path = f'lib/{d}/{name}'
            with open(os.path.join(lib, d, name), encoding='utf-8') as f:
                for no, line in enumerate(f, 1):
                    for word, why in FORBIDDEN.get(d, []):
                        w = word.search(line)
                        if w:
                            found.append((path, no, f'"{w.group(0)}": {why}'))
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    to = layer_of(d, inc, lib)
                    if to is None or to in allowed:
                        continue
                    if (path, inc) in EXCEPTIONS:
                        used.add((path, inc))
                        continue
                    if to.startswith('?'):
                        why = f'{to[1:]} belongs to no layer'
                    else:
                        why = (f'{d}/ may not include {to}/ (it may include: '
                               f'{", ".join(sorted(allowed - {d})) or "nothing"})')
                    found.append((path, no, f'"{inc}": {why}'))
    for (path, inc), why in sorted(EXCEPTIONS.items()):
        if (path, inc) not in used and os.path.exists(os.path.join(root, path)):
            found.append((path, 0, f'the exception for "{inc}" is no longer '
                          'needed: remove it from EXCEPTIONS'))
    return found


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = check(argv[1])
    if len(argv) > 2 and argv[2] == '--expect':
        want = set(argv[3:])
        got = {f'{p}:{n}' for p, n, _ in found}
        for p, n, msg in found:
            print(f'{p}:{n}: {msg}' if n else f'{p}: {msg}')
        if got != want:
            print(f'expected violations {sorted(want)}, found {sorted(got)}',
                  file=sys.stderr)
            return 1
        return 0
    for p, n, msg in found:
        print(f'{p}:{n}: {msg}' if n else f'{p}: {msg}', file=sys.stderr)
    if found:
        print(f'{len(found)} violation(s) of the layering', file=sys.stderr)
        return 1
    print('layers: every include of lib/ points downward')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
