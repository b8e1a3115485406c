#!/usr/bin/env python3
"""Statements per order of a multinode run, by kind, from the PostgreSQL server's log.

Run the test with CLOVERLEAF_MULTINODE_LOG_STATEMENTS=1 (its database then logs every statement
with its duration), keep its output, then:

    statements.py SERVER_LOG TEST_OUTPUT [ORDERS] [--detail N]

SERVER_LOG is the server's log from before the run on (other databases' lines are skipped);
TEST_OUTPUT the test's stderr, which names the database and which backend served which process.
Durations are the server's wall time per statement (lock waits included), not CPU. With
--detail N, the N most frequent statements follow, each with the process that sent it (serve or
worker) and its text normalized, cut at 150 characters.
"""
import collections
import re
import sys

KINDS = [
    ('instance loads before a step', r'^SELECT id, process_key, process_version, status, business_key, parent_id, parent_call, state'),
    ('owed events between parent and child', r'pending_events'),
    ('messages', r'FROM messages|INTO messages|UPDATE messages|FROM subscriptions WHERE message_name = \$'),
    ('latest deployed versions', r'FROM deployments'),
    ('job fetches and due checks', r'fetch_groups|SELECT N AS one FROM jobs'),
    ('timer passes', r'FROM timers WHERE due_at|MIN\(GREATEST|FROM schedules'),
    ('step writes', r'^(UPDATE (instances|jobs|tasks|timers)|INSERT INTO (instances|history|events|jobs|timers|subscriptions|tasks|incidents|notifications)'
                    r'|DELETE FROM (timers|subscriptions|jobs)|SELECT id, version FROM instances|SELECT id, lock_epoch FROM jobs'
                    r'|SELECT pg_notify|SELECT pg_advisory_xact_lock\(hashtext)'),
    ('sub-ledger', r'idempotency_keys|customers|periods|journal_|invoice|payment|ledger_settings|orders|order_lines|outbox'
                   r'|number_sequences|pg_advisory_xact_lock_shared|SET LOCAL lock_timeout|stock|budgets|cost_|products|goods_'),
    ('reads of the HTTP routes', r'FROM tasks|FROM substitutes|FROM instances|FROM history|FROM incidents'),
]
HEAD = re.compile(r'^\d{4}-\d\d-\d\d [\d:.]+ \w+ \[(\d+)\] \S*@(\S*) (\w+):  (.*)$')
TIMED = re.compile(r'duration: ([\d.]+) ms  (statement|execute [^:]*|parse [^:]*|bind [^:]*): (.*)')


def norm(text):
    text = re.sub(r'\s+', ' ', text).strip()
    text = re.sub(r"'[^']*'", "'?'", text)
    return re.sub(r'\b\d+\b', 'N', text)


def main():
    args = sys.argv[1:]
    detail = 0
    if '--detail' in args:
        at = args.index('--detail')
        detail = int(args[at + 1])
        del args[at:at + 2]
    log, output = args[0], args[1]
    orders = int(args[2]) if len(args) > 2 else 2000
    test = open(output, errors='replace').read()
    db = re.search(r'logging every statement of database (\S+)', test).group(1)
    app_of = {pid: app for pid, app in re.findall(r'backend (\d+) pg:(\S+)', test)}
    entries, current = [], None
    for line in open(log, errors='replace'):
        head = HEAD.match(line)
        if head:
            if current:
                entries.append(current)
            current = None
            pid, database, level, message = head.groups()
            timed = TIMED.match(message)
            if database == db and level == 'LOG' and timed and not timed.group(2).startswith(('parse', 'bind')):
                current = [pid, timed.group(3), float(timed.group(1))]
        elif current is not None and line.startswith('\t'):
            current[1] += ' ' + line.strip()
    if current:
        entries.append(current)
    count, ms = collections.Counter(), collections.Counter()
    each, each_ms = collections.Counter(), collections.Counter()
    for pid, text, duration in entries:
        text = norm(text)
        sender = re.sub(r'-\d+$', '', app_of.get(pid, '?'))
        each[(sender, text[:150])] += 1
        each_ms[(sender, text[:150])] += duration
        if text.upper().startswith(('BEGIN', 'COMMIT', 'ROLLBACK')):
            kind = 'BEGIN and COMMIT'
        elif app_of.get(pid) == 'multinode-test':
            kind = "the test's own reads"
        else:
            kind = next((k for k, pattern in KINDS if re.search(pattern, text)), 'other')
        count[kind] += 1
        ms[kind] += duration
    total = sum(ms.values()) or 1.0
    print(f'{"kind":40} {"per order":>9} {"ms per order":>12} {"time":>6}')
    for kind, n in count.most_common():
        print(f'{kind:40} {n / orders:9.2f} {ms[kind] / orders:12.3f} {100 * ms[kind] / total:5.1f}%')
    print(f'{"all":40} {sum(count.values()) / orders:9.2f} {total / orders:12.3f}')
    if detail:
        print(f'\n{"per order":>9} {"ms per order":>12} {"sender":14} statement')
        for (sender, text), n in each.most_common(detail):
            print(f'{n / orders:9.2f} {each_ms[(sender, text)] / orders:12.3f} {sender:14} {text}')


if __name__ == '__main__':
    main()
