// Removals off the event loop, the pure parts (no root): the link-group messages a batch of
// link deletions is made of, the group an agent uses, the limiter that keeps removals from
// taking every thread of the pool, and IPAM's release of many addresses in one write.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as m from '../agent/network/netlink-msg.js';
import { reapGroup, reapRequests } from '../agent/network/reaper.js';
import { Limiter } from '../agent/limiter.js';
import { Ipam } from '../agent/network/ipam.js';
import { Rounds } from '../agent/rounds.js';

const hex = (b: Buffer) => b.toString('hex');

test('remove-unit - set group matches `ip link set dev swlv0 group 7` by name (RTM_NEWLINK, IFLA_IFNAME, IFLA_GROUP)', () => {
  assert.is(hex(m.setLinkGroupByName('swlv0', 7)), [
    '34000000', '1000', '0500', '00000000', '00000000', // nlmsghdr: 52 bytes, RTM_NEWLINK, REQUEST|ACK
    '00000000', '00000000', '00000000', '00000000', // ifinfomsg: no index (the name says which)
    '0a000300', '73776c76', '30000000', // IFLA_IFNAME "swlv0\0"
    '08001b00', '07000000', // IFLA_GROUP 7
  ].join(''));
});

test('remove-unit - delete group matches `ip link del group 7` (RTM_DELLINK, index 0, IFLA_GROUP only)', () => {
  assert.is(hex(m.deleteLinkGroup(7)), [
    '28000000', '1100', '0500', '00000000', '00000000',
    '00000000', '00000000', '00000000', '00000000',
    '08001b00', '07000000',
  ].join(''));
});

test('remove-unit - group 0 (every link\'s default), negative, fractional or too large: refused before the kernel sees it', () => {
  for (const g of [0, -1, 1.5, 2 ** 32, Number.NaN]) {
    assert.throws(() => m.deleteLinkGroup(g), RangeError, `group ${g}`);
    assert.throws(() => m.setLinkGroupByName('swlv0', g), RangeError, `group ${g}`);
  }
  assert.throws(() => m.setLinkGroupByName('a-name-longer-than-15', 7));
});

test('remove-unit - a batch is the marks in order, then one group delete', () => {
  const g = reapGroup('swlab');
  const r = reapRequests(['swlabv1', 'swlabp1', 'swlabv2'], g);
  assert.equal(r.map((x) => x.op), ['RTM_SETLINK', 'RTM_SETLINK', 'RTM_SETLINK', 'RTM_DELLINK']);
  assert.equal(r.slice(0, 3).map((x) => hex(x.msg)), ['swlabv1', 'swlabp1', 'swlabv2'].map((n) => hex(m.setLinkGroupByName(n, g))));
  assert.is(hex(r[3]!.msg), hex(m.deleteLinkGroup(g)));
});

test('remove-unit - each node prefix has its own group, never 0, always in the agent\'s 0x5357xxxx range', () => {
  const seen = new Set<number>();
  for (const p of ['swla', 'swlab', 'swl12345', 'swlt0', 'swlt1', 'swlzz']) {
    const g = reapGroup(p);
    assert.ok(g >>> 16 === 0x5357, `${p}: ${g.toString(16)}`);
    assert.is(reapGroup(p), g, 'stable across restarts');
    seen.add(g);
  }
  assert.is(seen.size, 6);
});

test('remove-unit - limiter runs at most max at once, in arrival order, and passes on failures', async () => {
  const l = new Limiter(2);
  let active = 0, peak = 0;
  const order: number[] = [];
  const task = (i: number) => l.run(async () => {
    active++; peak = Math.max(peak, active);
    await new Promise((r) => setTimeout(r, 5));
    order.push(i);
    active--;
    if (i === 3) throw new Error('task 3');
    return i;
  });
  const rs = await Promise.allSettled([1, 2, 3, 4, 5, 6].map(task));
  assert.is(peak, 2);
  assert.equal(order, [1, 2, 3, 4, 5, 6]);
  assert.equal(rs.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
  // a failed task gave its slot back: the limiter still runs two at once
  const t0 = performance.now();
  await Promise.all([task(10), task(11)]);
  assert.ok(performance.now() - t0 < 200);
  assert.throws(() => new Limiter(0), RangeError);
});

test('remove-unit - limiter: a task marked first goes ahead of every waiting one (a run --rm among a batch)', async () => {
  const l = new Limiter(1);
  const order: string[] = [];
  const task = (n: string, first = false) => l.run(async () => { order.push(n); await new Promise((r) => setTimeout(r, 2)); }, first);
  await Promise.all([task('a'), task('b'), task('c'), task('lone', true)]);
  assert.equal(order, ['a', 'lone', 'b', 'c']);
});

test('remove-unit - ipam releaseAll frees many addresses in one write; unknown pools and owners are fine', () => {
  const dir = mkdtempSync(join(tmpdir(), 'swl-ipam-'));
  try {
    const file = join(dir, 'ipam.json');
    const ipam = Ipam.open(file);
    ipam.addPool('bridge', '10.9.0.0/24');
    const ips = ['a', 'b', 'c'].map((o) => ipam.allocate('bridge', o));
    ipam.releaseAll([['bridge', 'a'], ['bridge', 'c'], ['nope', 'a'], ['bridge', 'zz']]);
    assert.is(ipam.lookup('bridge', 'a'), undefined);
    assert.is(ipam.lookup('bridge', 'b'), ips[1]);
    assert.is(ipam.lookup('bridge', 'c'), undefined);
    // what is on disk is what a restarted agent sees
    const again = Ipam.open(file);
    assert.is(again.lookup('bridge', 'a'), undefined);
    assert.is(again.lookup('bridge', 'b'), ips[1]);
    assert.ok(!readFileSync(file, 'utf8').includes('"c"'));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('remove-unit - rounds: asks of one turn go together, asks during a round make the next, failures reach only their askers', async () => {
  const seen: string[][] = [];
  let release!: () => void;
  const r = new Rounds<string>(async (items) => {
    seen.push(items);
    if (seen.length === 1) await new Promise<void>((res) => (release = res));
    return new Map(items.filter((i) => i.startsWith('bad')).map((i) => [i, new Error(`no ${i}`)]));
  });
  const first = [r.add(['a']), r.add(['b', 'a'])];
  await new Promise((res) => setTimeout(res, 5));
  assert.equal(seen, [['a', 'b']], 'one turn, one round, each item once');
  const second = [r.add(['c']), r.add(['bad1', 'd']), r.add(['e'])];
  release();
  const out = await Promise.allSettled([...first, ...second]);
  assert.equal(seen, [['a', 'b'], ['c', 'bad1', 'd', 'e']]);
  assert.equal(out.map((o) => o.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
  assert.match(String((out[3] as PromiseRejectedResult).reason), /no bad1/);
  // a round that throws fails its askers only; the next round runs
  const boom = new Rounds<string>(async (items) => { if (items.includes('x')) throw new Error('boom'); return new Map(); });
  const [x, y] = await Promise.allSettled([boom.add(['x']), boom.add(['y'])]);
  assert.is(x.status, 'rejected');
  assert.is(y.status, 'rejected', 'same round as x');
  await boom.add(['z']);
});

test.run();
