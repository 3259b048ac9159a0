// The agent's actions and triage against fake ports: no root, no nats-server. Each desired
// event becomes an Outcome (events, checkpoint change, what to watch); nothing is appended.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as actions from '../agent/pipeline/actions.js';
import { triage, INVALID_ENTITY } from '../agent/pipeline/triage.js';
import type { ContainerRecord } from '../agent/pipeline/checkpoint.js';
import type { Outcome } from '../agent/pipeline/outcome.js';
import { ContainerError } from '../agent/host/container-host.js';
import { SourceChain, encodeEvent, decodeEvent } from '../shared/codec.js';
import { encode } from '@msgpack/msgpack';
import type { ContainerSpec, EventData, EventType } from '../shared/events.js';
import type { ExitStatus } from '../agent/runtime/runtime.js';

const ID = 'c'.repeat(64);
const spec = (over: Partial<ContainerSpec> = {}): ContainerSpec => ({
  name: 'web', image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'none', autoRemove: false, ...over,
});

class FakeHost {
  calls: string[] = [];
  running = new Set<string>();
  createFails?: Error;
  stopExit: ExitStatus = { code: 0, signal: 'SIGTERM', exitedAt: 5 };
  status(id: string) { return this.running.has(id) ? { state: 'running' as const, pid: 42 } : { state: 'unknown' as const }; }
  async create(id: string) { this.calls.push(`create ${id.slice(0, 4)}`); if (this.createFails) throw this.createFails; this.running.add(id); return { pid: 42, runningAt: 2, ip: '10.0.0.2' }; }
  async start(id: string) { this.calls.push(`start ${id.slice(0, 4)}`); this.running.add(id); return { pid: 43, runningAt: 10, logFrom: 7 }; }
  async stop(id: string, t: number, sig?: string) { this.calls.push(`stop ${t}${sig ? ` ${sig}` : ''}`); if (!this.running.delete(id)) return undefined; return this.stopExit; }
  kill(id: string, sig: string) { this.calls.push(`kill ${sig}`); if (!this.running.has(id)) throw new Error('ESRCH'); }
  async killNow(id: string) { this.calls.push('killNow'); this.running.delete(id); return { code: 0, signal: 'SIGKILL', exitedAt: 6 }; }
  async remove(id: string) { this.calls.push(`remove ${id.slice(0, 4)}`); this.running.delete(id); }
  async update() { this.calls.push('update'); }
  oomKilled() { return false; }
}

function setup() {
  const host = new FakeHost();
  const records = new Map<string, ContainerRecord>();
  const nets: string[] = [];
  const ctx: actions.ActionContext = {
    node: 'n1', host: host as unknown as actions.HostActions,
    networks: {
      createNetwork: async (name, subnet) => { nets.push(name); if (name === 'bad') throw new Error('subnet overlaps a host route'); return { subnet, gateway: '10.9.0.1', bridge: 'slbr1' }; },
      removeNetwork: async (name) => { nets.push(`-${name}`); },
    },
    record: (id) => records.get(id),
    progress: () => undefined,
  };
  // applies an outcome's record change the way the reconciler does, then its next step
  const record = async (o: Outcome): Promise<Outcome[]> => {
    if (o.record) {
      if ('set' in o.record) records.set(o.record.id, o.record.set);
      else Object.assign(records.get(o.record.id) ?? {}, o.record.patch);
    }
    return o.next ? [o, ...(await record(await o.next()))] : [o];
  };
  const chain = new SourceChain('controller');
  let seq = 0;
  const desired = <T extends EventType>(type: T, data: EventData[T], entity = ID) => {
    const { event, hash } = chain.next(type, entity, data);
    chain.commit(event.srcSeq, hash);
    return { seq: ++seq, hash, event } as never;
  };
  return { host, records, ctx, record, desired, nets };
}

const types = (os: Outcome[]) => os.flatMap((o) => o.events.map((e) => e.type));

test('actions - ContainerRequested starts it: follow, record running, ContainerStarted naming its cause, then watch', async () => {
  const { ctx, desired, host } = setup();
  const s = desired('ContainerRequested', { node: 'n1', spec: spec(), user: 'u' });
  const o = await actions.container(ctx, s, 1);
  assert.equal(host.calls, [`create ${ID.slice(0, 4)}`]);
  assert.is(o.follow, ID); assert.is(o.watch, ID);
  assert.equal(o.record, { id: ID, set: { lastSeq: 1, requestId: (s as { event: { id: string } }).event.id, spec: spec(), owner: 'u', reported: 'running', pid: 42, runningAt: 2 } });
  assert.equal(o.events, [{ type: 'ContainerStarted', entity: ID, data: { pid: 42, receivedAt: 1, runningAt: 2, ip: '10.0.0.2' }, cause: (s as { event: { id: string } }).event.id }]);
});

test('actions - a request for another node, or for a container this node does not have, is rejected and remembered', async () => {
  const { ctx, desired } = setup();
  const o = await actions.container(ctx, desired('ContainerRequested', { node: 'n2', spec: spec(), user: 'u' }), 1);
  assert.equal(types([o]), ['EventRejected']);
  assert.match((o.events[0].data as { reason: string }).reason, /placed on node n2, this is n1/);
  assert.equal(o.seen, { key: `rejected:${ID}`, seq: 1 });
  const k = await actions.container(ctx, desired('ContainerKillRequested', { signal: 'SIGTERM', user: 'u' }), 1);
  assert.match((k.events[0].data as { reason: string }).reason, /no container cccccccccccc on node n1/);
});

test('actions - a failed start reports the runtime\'s exit code; --rm removes it afterwards', async () => {
  const { ctx, desired, host, record } = setup();
  host.createFails = new ContainerError('start: exec /nope: ENOENT', ID, 127);
  const os = await record(await actions.container(ctx, desired('ContainerRequested', { node: 'n1', spec: spec({ autoRemove: true }), user: 'u' }), 1));
  assert.equal(types(os), ['ContainerFailed', 'ContainerRemoved']);
  assert.equal(os[0].events[0].data, { error: 'start: exec /nope: ENOENT', exitCode: 127 });
  assert.is(host.calls.at(-1), `remove ${ID.slice(0, 4)}`);
});

test('actions - stop reports the exit once, as 128+signal; a second exit for the same run is nothing', async () => {
  const { ctx, desired, record, host } = setup();
  await record(await actions.container(ctx, desired('ContainerRequested', { node: 'n1', spec: spec(), user: 'u' }), 1));
  const os = await record(await actions.container(ctx, desired('ContainerStopRequested', { timeout: 3, user: 'u' }), 1));
  assert.equal(types(os), ['ContainerExited']);
  assert.equal(os[0].events[0].data, { exitCode: 143, signal: 'SIGTERM', oomKilled: false, exitedAt: 5 });
  assert.is(os[0].logsEnd, ID, 'the log ends before the exit is reported');
  assert.ok(host.calls.includes('stop 3'));
  assert.equal(actions.exited(ctx, ID, { code: 0, exitedAt: 9 }, false), { events: [] });
  // a signal only the platform table knows still gets its number
  const { ctx: c2, desired: d2, record: r2 } = setup();
  await r2(await actions.container(c2, d2('ContainerRequested', { node: 'n1', spec: spec(), user: 'u' }), 1));
  const o = actions.exited(c2, ID, { code: 0, signal: 'SIGXCPU', exitedAt: 3 }, true);
  assert.equal(o.events[0].data, { exitCode: 152, signal: 'SIGXCPU', oomKilled: false, exitedAt: 3, whileAway: true });
});

test('actions - rm -f of a running container: killed, exit reported, then removed; rm without force is refused', async () => {
  const { ctx, desired, record, host, records } = setup();
  await record(await actions.container(ctx, desired('ContainerRequested', { node: 'n1', spec: spec(), user: 'u' }), 1));
  const refused = await actions.container(ctx, desired('ContainerRemoveRequested', { force: false, user: 'u' }), 1);
  assert.equal(types([refused]), ['EventRejected']);
  assert.ok(host.running.has(ID));
  const os = await record(await actions.container(ctx, desired('ContainerRemoveRequested', { force: true, user: 'u' }), 1));
  assert.equal(types(os), ['ContainerExited', 'ContainerRemoved']);
  assert.is(os[0].unwatch, ID);
  assert.equal(host.calls.slice(-2), ['killNow', `remove ${ID.slice(0, 4)}`]);
  assert.is(records.get(ID)!.reported, 'removed');
  // after removal every request for it is refused (the tombstone)
  const again = await actions.container(ctx, desired('ContainerStopRequested', { timeout: 1, user: 'u' }), 1);
  assert.equal(types([again]), ['EventRejected']);
});

test('actions - networks: created with the node\'s bridge, a refusal names the reason, both remembered by entity', async () => {
  const { ctx, desired, nets } = setup();
  const ok = await actions.network(ctx, desired('NetworkCreateRequested', { node: 'n1', name: 'front', subnet: '10.9.0.0/24', user: 'u' }, 'net-front'));
  assert.equal(ok.events[0], { type: 'NetworkCreated', entity: 'net-front', data: { name: 'front', subnet: '10.9.0.0/24', gateway: '10.9.0.1', bridge: 'slbr1' }, cause: ok.events[0].cause });
  assert.equal(ok.seen, { key: 'net-front', seq: 1 });
  const bad = await actions.network(ctx, desired('NetworkCreateRequested', { node: 'n1', name: 'bad', subnet: '10.8.0.0/24', user: 'u' }, 'net-bad'));
  assert.is(bad.events[0].type, 'EventRejected');
  assert.match((bad.events[0].data as { reason: string }).reason, /overlaps a host route/);
  const other = await actions.network(ctx, desired('NetworkRemoveRequested', { node: 'n9', name: 'front', user: 'u' }, 'net-front'));
  assert.match((other.events[0].data as { reason: string }).reason, /addressed to node n9/);
  assert.equal(nets, ['front', 'bad']);
});

test('triage - junk, forged, misaddressed and replayed messages; every rejection decodes again', () => {
  const mem = { seen: (k: string) => (k === 'rejected:old' ? 7 : 0), get: (id: string) => (id === ID ? { lastSeq: 9 } as ContainerRecord : undefined) };
  const roundTrip = (t: ReturnType<typeof triage>, seq: number, token: string) => {
    const o = actions.refuse(t as never, seq, token);
    const chain = new SourceChain('node:n1');
    const e = o.events[0];
    const { bytes } = chain.next(e.type, e.entity, e.data as never, e.cause);
    return decodeEvent(bytes);
  };
  const junk = triage({ subject: `ev.desired.n1.${ID}`, seq: 10, data: new Uint8Array([0xc1, 0xff, 0x00]) }, mem);
  assert.is(junk.kind, 'reject');
  assert.is(roundTrip(junk, 10, ID).entity, ID);
  // an upper-case entity and an id with a NUL: the rejection is filed where it decodes
  const upper = encode({ v: 1, id: 'a\u0000b', type: 'ContainerKillRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'ABC', data: {} });
  const t = triage({ subject: 'ev.desired.n1.ABC', seq: 11, data: upper }, mem);
  assert.equal(t.kind === 'reject' && [t.entity, t.id], [INVALID_ENTITY, undefined]);
  assert.is(roundTrip(t, 11, 'ABC').entity, INVALID_ENTITY);
  // forged source, wrong type, entity that does not match the subject
  const ev = (over: Record<string, unknown>) => encodeEvent({ v: 1, id: 'x1', type: 'ContainerKillRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: ID, data: { signal: 'SIGKILL', user: 'u' }, ...over } as never);
  assert.match((triage({ subject: `ev.desired.n1.${ID}`, seq: 12, data: ev({ src: 'node:n1' }) }, mem) as { reason: string }).reason, /come from the controller, not node:n1/);
  assert.match((triage({ subject: `ev.desired.n1.${ID}`, seq: 12, data: ev({ type: 'ContainerExited', data: { exitCode: 0, oomKilled: false, exitedAt: 1 } }) }, mem) as { reason: string }).reason, /not a desired event/);
  assert.match((triage({ subject: 'ev.desired.n1.other', seq: 12, data: ev({}) }, mem) as { reason: string }).reason, /does not match subject/);
  // at or below what was applied or rejected: a replay
  assert.is(triage({ subject: `ev.desired.n1.${ID}`, seq: 9, data: ev({}) }, mem).kind, 'replay');
  assert.is(triage({ subject: 'ev.desired.n1.old', seq: 7, data: new Uint8Array([1]) }, mem).kind, 'replay');
  // refused by an action before (kept under its entity): a replay, not a second refusal
  const mem2 = { seen: (k: string) => (k === `rejected:${ID}` ? 20 : 0), get: () => undefined };
  assert.is(triage({ subject: `ev.desired.n1.${ID}`, seq: 20, data: ev({}) }, mem2).kind, 'replay');
  assert.is(triage({ subject: `ev.desired.n1.${ID}`, seq: 13, data: ev({}) }, mem).kind, 'container');
});



test('actions - on-failure:2: each failed exit is answered by a start after docker\'s back-off, counted, until the limit', async () => {
  const { ctx, desired, host, record, records } = setup();
  await record(await actions.container(ctx, desired('ContainerRequested', { node: 'n1', spec: spec({ restartPolicy: { name: 'on-failure', maxRetries: 2 } }), user: 'u' }), 1));
  const backoffs: number[] = [];
  for (let k = 1; k <= 2; k++) {
    host.running.delete(ID);
    const e = actions.exited(ctx, ID, { code: 1, exitedAt: 1000 * k }, false, undefined, 5000 * k);
    await record(e);
    assert.is(e.restartAt?.at, 5000 * k + (e.events[0]!.data as { restartInMs: number }).restartInMs);
    backoffs.push((e.events[0]!.data as { restartInMs: number }).restartInMs);
    assert.is(records.get(ID)!.reported, 'exited');
    // an early timer waits on; a due one starts it again, counted
    const early = await actions.restartDue(ctx, ID, 5000 * k);
    assert.is(early.events.length, 0);
    const o = await actions.restartDue(ctx, ID, 5000 * k + 1000);
    await record(o);
    assert.is(o.events[0]!.type, 'ContainerStarted');
    assert.is((o.events[0]!.data as { restartCount: number }).restartCount, k);
    assert.is(o.followFrom, 7);
  }
  assert.equal(backoffs, [100, 200]);
  host.running.delete(ID);
  const last = actions.exited(ctx, ID, { code: 1, exitedAt: 20000 }, false, undefined, 20000);
  assert.is(last.restartAt, undefined);
  assert.is((last.events[0]!.data as { restartInMs?: number }).restartInMs, undefined);
  await record(last);
  assert.is((await actions.restartDue(ctx, ID, 1e12)).events.length, 0);
});

test('actions - a user\'s stop sends the stop signal and ends the policy, also in its back-off', async () => {
  const { ctx, desired, host, record, records } = setup();
  await record(await actions.container(ctx, desired('ContainerRequested', { node: 'n1', spec: spec({ restartPolicy: { name: 'always' }, stopSignal: 'SIGINT' }), user: 'u' }), 1));
  const o = await actions.container(ctx, desired('ContainerStopRequested', { timeout: 3, user: 'u' }), 1);
  await record(o);
  assert.ok(host.calls.includes('stop 3 SIGINT'), host.calls.join(','));
  assert.is(o.restartAt, undefined);
  assert.is(records.get(ID)!.stopped, true);
  // started by a user: the policy again; exit 0 under always: a start is due; then a stop in the back-off
  await record(await actions.container(ctx, desired('ContainerStartRequested', { user: 'u' }), 1));
  assert.is(records.get(ID)!.stopped, false);
  host.running.delete(ID);
  const ex = actions.exited(ctx, ID, { code: 0, exitedAt: 50 }, false, undefined, 100);
  await record(ex);
  assert.ok(ex.restartAt);
  await record(await actions.container(ctx, desired('ContainerStopRequested', { timeout: 3, user: 'u' }), 1));
  assert.is(records.get(ID)!.restartAt, undefined);
  assert.is((await actions.restartDue(ctx, ID, 1e12)).events.length, 0);
  // start of a running container is refused
  await record(await actions.container(ctx, desired('ContainerStartRequested', { user: 'u' }), 1));
  const again = await actions.container(ctx, desired('ContainerStartRequested', { user: 'u' }), 1);
  assert.is(again.events[0]!.type, 'EventRejected');
  assert.match((again.events[0]!.data as { reason: string }).reason, /already running/);
});

test.run();
