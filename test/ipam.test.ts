import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ipam, IpamStateError, PoolExhaustedError, PoolExistsError, PoolInUseError, SubnetOverlapError, UnknownPoolError } from '../agent/network/ipam.js';

const dirs: string[] = [];
function fresh(): string {
  const d = mkdtempSync(join(tmpdir(), 'swl-ipam-'));
  dirs.push(d);
  return join(d, 'ipam.json');
}
test.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

test('ipam - gateway is the first host and is never handed out', () => {
  const ipam = Ipam.open(fresh());
  assert.is(ipam.addPool('a', '10.231.9.0/24').gateway, '10.231.9.1');
  assert.is(ipam.allocate('a', 'c1'), '10.231.9.2');
  assert.is(ipam.allocate('a', 'c2'), '10.231.9.3');
});

test('ipam - an explicit gateway is reserved instead, and must be a host of the subnet', () => {
  const ipam = Ipam.open(fresh());
  ipam.addPool('a', '10.231.9.0/29', '10.231.9.6');
  const got = ['c1', 'c2', 'c3', 'c4', 'c5'].map((c) => ipam.allocate('a', c));
  assert.equal(got, ['10.231.9.1', '10.231.9.2', '10.231.9.3', '10.231.9.4', '10.231.9.5']);
  assert.throws(() => Ipam.open(fresh()).addPool('b', '10.231.9.0/29', '10.231.9.7'), /broadcast/);
  assert.throws(() => Ipam.open(fresh()).addPool('b', '10.231.9.0/29', '10.231.9.0'), /network or broadcast/);
  assert.throws(() => Ipam.open(fresh()).addPool('b', '10.231.9.0/29', '10.231.10.1'), /outside/);
});

test('ipam - network and broadcast addresses are never given; a full pool is a typed error', () => {
  const ipam = Ipam.open(fresh());
  ipam.addPool('small', '10.231.9.0/29'); // .0 network, .1 gateway, .2-.6 hosts, .7 broadcast
  const got = ['a', 'b', 'c', 'd', 'e'].map((c) => ipam.allocate('small', c));
  assert.equal(got, ['10.231.9.2', '10.231.9.3', '10.231.9.4', '10.231.9.5', '10.231.9.6']);
  const err = (() => { try { ipam.allocate('small', 'f'); } catch (e) { return e; } })();
  assert.instance(err, PoolExhaustedError);
  assert.match((err as Error).message, /no free address/);
});

test('ipam - the same owner gets the same address (a retried attach is harmless)', () => {
  const ipam = Ipam.open(fresh());
  ipam.addPool('a', '10.231.9.0/24');
  assert.is(ipam.allocate('a', 'c1'), ipam.allocate('a', 'c1'));
  assert.equal(Object.keys(ipam.pool('a')!.allocations), ['c1']);
});

test('ipam - a released address is not reused at once (next-fit), and is reused when the pool wraps', () => {
  const ipam = Ipam.open(fresh());
  ipam.addPool('a', '10.231.9.0/29');
  const first = ipam.allocate('a', 'c1');
  ipam.release('a', 'c1');
  assert.is.not(ipam.allocate('a', 'c2'), first);
  for (const c of ['c3', 'c4', 'c5']) ipam.allocate('a', c);
  assert.is(ipam.allocate('a', 'c6'), first);
  ipam.release('a', 'nobody'); // releasing nothing is fine
});

test('ipam - allocations survive a restart and nothing is handed out twice', () => {
  const file = fresh();
  const a = Ipam.open(file);
  a.addPool('a', '10.231.9.0/24');
  const before = ['c1', 'c2', 'c3'].map((c) => a.allocate('a', c));
  const b = Ipam.open(file);
  assert.equal(b.pool('a')!.allocations, { c1: before[0], c2: before[1], c3: before[2] });
  const next = b.allocate('a', 'c4');
  assert.not.ok(before.includes(next));
  assert.is(b.allocate('a', 'c2'), before[1]);
  assert.equal(readdirSync(join(file, '..')), ['ipam.json']); // tmp file renamed away
});

test('ipam - reconcile frees leaked allocations only', () => {
  const file = fresh();
  const a = Ipam.open(file);
  a.addPool('a', '10.231.9.0/24');
  a.addPool('b', '10.231.10.0/24');
  a.allocate('a', 'live');
  a.allocate('a', 'dead');
  a.allocate('b', 'gone');
  assert.equal(a.reconcile(['live']).sort(), ['a/dead', 'b/gone']);
  assert.equal(Ipam.open(file).pool('a')!.allocations, { live: '10.231.9.2' });
  assert.equal(a.reconcile(['live']), []);
});

test('ipam - overlapping subnets and duplicate pools are typed errors; same pool again is a no-op', () => {
  const ipam = Ipam.open(fresh());
  ipam.addPool('a', '10.231.0.0/16');
  assert.throws(() => ipam.addPool('b', '10.231.9.0/24'), (e: unknown) => e instanceof SubnetOverlapError && /overlaps 10.231.0.0\/16/.test((e as Error).message));
  assert.throws(() => ipam.addPool('a', '10.232.0.0/16'), (e: unknown) => e instanceof PoolExistsError);
  assert.is(ipam.addPool('a', '10.231.0.0/16').gateway, '10.231.0.1');
  assert.throws(() => ipam.addPool('c', '10.240.0.5/24'), /host bits set/);
  assert.throws(() => ipam.addPool('c', '10.240.0.0/31'), /too small/);
});

test('ipam - removing a pool with allocations is refused; unknown pools are typed errors', () => {
  const ipam = Ipam.open(fresh());
  ipam.addPool('a', '10.231.9.0/24');
  ipam.allocate('a', 'c1');
  assert.throws(() => ipam.removePool('a'), (e: unknown) => e instanceof PoolInUseError);
  ipam.release('a', 'c1');
  ipam.removePool('a');
  ipam.removePool('a');
  assert.throws(() => ipam.allocate('a', 'c1'), (e: unknown) => e instanceof UnknownPoolError);
});

test('ipam - a corrupt state file is a clear error, a missing one is empty', () => {
  const file = fresh();
  assert.not.ok(existsSync(file));
  assert.equal(Ipam.open(file).pools(), []);
  writeFileSync(file, '{not json');
  assert.throws(() => Ipam.open(file), (e: unknown) => e instanceof IpamStateError && /move the file away/.test((e as Error).message));
});

test.run();
