// Membership: agents heartbeat on core NATS, the controller appends NodeDown after a silence
// and NodeReady when a node is heard again; availability and labels are events too. The rule
// is pure (decide); the behaviour is checked on a 3-host fleet by killing and cutting hosts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decide, Membership, nextSilence, type Said } from '../controller/membership.js';
import { emptyView, reduce, type ClusterView } from '../shared/reducer.js';
import { place } from '../controller/placement.js';
import type { ContainerSpec, StoredEvent } from '../shared/events.js';
import { Fleet, leftovers, sleep, until } from './helpers/fleet.js';
import { connectOptions, inboxPrefix, permissions, readCreds, serverOrder, type Identity } from '../shared/nats/trust.js';
import { homeOf, homeServer, nextMove, ownServer } from '../agent/consumer-home.js';
import { misplaced } from '../shared/nats/log.js';
import { streamApi } from '../controller/lease.js';
import { STREAM, subjects } from '../shared/subjects.js';
import { connect, type NatsConnection } from 'nats';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { subjectMatches } from './helpers/subject-match.js';

const view = (states: Record<string, 'ready' | 'down' | undefined>, since = 0): ClusterView => {
  const v = emptyView();
  for (const [id, state] of Object.entries(states)) {
    v.nodes[id] = { id, hostname: id, cpus: 2, memory: 1 << 30, kernel: 'k', features: [], version: '0', joinedAt: 0, lastSeq: 1, ...(state ? { state, stateSince: since } : {}) };
  }
  return v;
};
const none = new Map<string, Said>();

const u = suite('membership-rule');
u('membership - a node silent for longer than the silence is down, once', () => {
  const v = view({ a: 'ready', b: undefined });
  const seen = new Map([['a', 1000], ['b', 3500]]);
  assert.equal(decide(v, seen, none, 4000, 3000, 0).down, []);
  assert.equal(decide(v, seen, none, 4001, 3000, 0).down.map((d) => d.node), ['a']);
  // appended already, not folded yet: not again
  assert.equal(decide(v, seen, new Map([['a', { state: 'down', at: 4001 }]]), 4500, 3000, 0).down, []);
});
u('membership - a fresh controller gives nodes it never heard one silence', () => {
  const v = view({ a: 'ready' });
  assert.equal(decide(v, new Map(), none, 12_000, 3000, 10_000).down, []);
  assert.equal(decide(v, new Map(), none, 13_001, 3000, 10_000).down.map((d) => d.node), ['a']);
});
u('membership - a down node is ready again only on a beat after it went down', () => {
  const v = view({ a: 'down' }, 5000);
  assert.equal(decide(v, new Map([['a', 4900]]), none, 5100, 3000, 0).ready, [], 'a beat from before the verdict');
  assert.equal(decide(v, new Map([['a', 6000]]), none, 6100, 3000, 0).ready, [{ node: 'a', downMs: 1100 }]);
  // said down just now (view not folded), beats from before that do not count
  const r = view({ a: 'ready' }, 0);
  assert.equal(decide(r, new Map([['a', 6000]]), new Map([['a', { state: 'down', at: 6050 }]]), 6100, 3000, 0).ready, []);
});

const ev = (seq: number, type: string, entity: string, data: unknown, src = 'controller'): StoredEvent =>
  ({ seq, hash: '', event: { v: 1, id: `e${seq}`, type, ts: seq * 1000, src, srcSeq: seq, prev: '', entity, data } } as unknown as StoredEvent);
u('membership - the fold: down, ready, availability and labels from the controller only', () => {
  const v = view({ a: undefined, b: undefined });
  reduce(v, ev(2, 'NodeDown', 'a', { silenceMs: 3000 }));
  reduce(v, ev(3, 'NodeDown', 'b', { silenceMs: 3000 }, 'node:b'));
  assert.is(v.nodes.a.state, 'down');
  assert.is(v.nodes.b.state, undefined, 'a node declared itself down');
  reduce(v, ev(4, 'NodeUpdated', 'b', { availability: 'drain', labelAdd: { zone: 'a', constructor: 'x' }, user: 'admin' }));
  reduce(v, ev(5, 'NodeUpdated', 'b', { labelRm: ['constructor'], user: 'admin' }));
  assert.equal(v.nodes.b.labels, { zone: 'a' });
  assert.is(v.nodes.b.availability, 'drain');
  // a rejoin (agent restart) keeps the verdict and the operator's word
  reduce(v, ev(6, 'NodeJoined', 'a', { hostname: 'a', cpus: 2, memory: 1, kernel: 'k', features: [], version: '0' }, 'node:a'));
  assert.is(v.nodes.a.state, 'down');
  reduce(v, ev(7, 'NodeReady', 'a', {}));
  assert.is(v.nodes.a.state, 'ready');
  // placement: neither a down nor a drained node gets new work
  reduce(v, ev(8, 'NodeDown', 'a', { silenceMs: 3000 }));
  const spec = { network: 'none' } as ContainerSpec;
  assert.throws(() => place(v, spec), /no node is ready and active/);
  reduce(v, ev(9, 'NodeReady', 'a', {}));
  assert.is(place(v, spec).id, 'a');
});
u('membership - only a node may beat for itself; no user may beat at all', () => {
  const ids: Identity[] = [{ name: 'node-a', kind: 'agent', node: 'a', key: 'A' }, { name: 'node-b', kind: 'agent', node: 'b', key: 'B' },
    { name: 'alice', kind: 'user', role: 'admin', key: 'C' }];
  const a = permissions(ids[0], ids).publish.allow;
  assert.ok(a.includes('hb.a'));
  assert.not.ok(a.some((s) => s.startsWith('hb.') && s !== 'hb.a'), a.filter((s) => s.startsWith('hb')).join());
  assert.not.ok(permissions(ids[2], ids).publish.allow.some((s) => s.startsWith('hb.') || s === '>'), 'a user may forge heartbeats');
});
u('permissions - a server whose config predates an identity still carries the replies to it; no user writes into an inbox', () => {
  // in a cluster only the server where an identity is made reloads at once: a controller on
  // another server must still answer it (a join token's request timed out in CI)
  const old: Identity[] = [{ name: 'controller', kind: 'controller', key: 'K' }, { name: 'node-a', kind: 'agent', node: 'a', key: 'A' },
    { name: 'alice', kind: 'user', role: 'admin', key: 'C' }];
  const matches = subjectMatches;
  const reply = `${inboxPrefix('join-0123456789ab')}.x1y2.7`;
  for (const who of [old[0]!, old[1]!]) assert.ok(permissions(who, old).publish.allow.some((g) => matches(g, reply)), `${who.name} cannot answer a new identity`);
  assert.not.ok(permissions(old[2]!, old).publish.allow.some((g) => matches(g, reply)), 'a user may write into another identity\'s inbox');
  assert.not.ok(permissions(old[2]!, old).subscribe.allow.some((g) => matches(g, reply)), 'a user may read another identity\'s inbox');
  assert.ok(permissions(old[2]!, old).subscribe.allow.some((g) => matches(g, `${inboxPrefix('alice')}.abc.1`)), 'a user cannot read its own inbox');
});
u('membership - a NodeDown appended is told at once (the services move its tasks then), a refused one is not', async () => {
  const told: unknown[] = [];
  let refuse = false;
  const m = new Membership({
    view: () => view({ a: 'ready' }), silenceMs: 20, confirm: async () => true,
    append: async () => { if (refuse) throw new Error('no quorum'); return { seq: 7 }; },
    changed: (r) => told.push(r),
  });
  await new Promise((r) => setTimeout(r, 60));
  const err = console.error;
  console.error = () => undefined;
  try {
    refuse = true;
    await m.tick();
    assert.equal(told, [], 'refused: nothing to tell');
    refuse = false;
    await m.tick();
    assert.equal(told, [{ seq: 7 }]);
    await m.tick();
    assert.equal(told, [{ seq: 7 }], 'said once, though the view has not folded it');
  } finally { console.error = err; m.stop(); }
});
u('serverOrder - this host\'s own server first, every other one kept, in any order', () => {
  const all = ['tls://10.213.4.1:4222', 'tls://10.213.4.2:4222', 'tls://10.213.4.3:4222'];
  const local = new Set(['127.0.0.1', '10.213.4.2', 'h2']);
  for (const r of [0, 0.5, 0.999]) {
    const o = serverOrder(all, local, () => r);
    assert.is(o[0], 'tls://10.213.4.2:4222');
    assert.equal([...o].sort(), [...all].sort());
  }
  // a host without a server: all of them, shuffled; names and bare host:port too
  assert.equal([...serverOrder(all, new Set(['10.213.4.9']), () => 0)].sort(), [...all].sort());
  assert.equal(serverOrder(['h1:4222', 'localhost:4222'], new Set(['localhost']))[0], 'localhost:4222');
  assert.equal(serverOrder(['tls://[::1]:4222', 'tls://h9:4222'], new Set(['::1']))[0], 'tls://[::1]:4222');
  // junk is kept (nats.js says what is wrong with it), never first
  assert.equal(serverOrder(['tls://h9:4222', '::junk::'], new Set(['h9'])), ['tls://h9:4222', '::junk::']);
});

u('consumer-home - the connection\'s server, while it has one', () => {
  // the server dialed first: the host's own (trust.ts serverOrder), or the first reached on a host without one
  assert.is(homeServer({ info: { server_name: 'h2' } } as unknown as NatsConnection), 'h2');
  assert.is(homeServer({ info: undefined } as unknown as NatsConnection), undefined, 'closed');
  assert.is(homeServer({ info: { server_name: '' } } as unknown as NatsConnection), undefined);
});

u('consumer-home - home is the host\'s own server while it is a current replica, wherever the connection is', () => {
  const up = [{ name: 'h3', current: true }, { name: 'h1', current: true }];
  // connected to h1 since its own server h3 was lost a while: the consumer goes back to h3 all the same
  assert.is(homeOf('h3', 'h1', 'h2', up), 'h3');
  assert.is(homeOf('h3', 'h1', 'h3', [{ name: 'h1', current: true }]), 'h3', 'leading it already');
  // its own server down or behind: the connection's, not a server that cannot lead it
  assert.is(homeOf('h3', 'h1', 'h2', [{ name: 'h3', current: false }, { name: 'h1', current: true }]), 'h1');
  assert.is(homeOf('h3', 'h1', 'h2', [{ name: 'h3', current: true, offline: true }]), 'h1');
  assert.is(homeOf('h3', 'h1', undefined, []), 'h1', 'no info (electing): the connection\'s');
  // a host without a server (none learned): the connection's
  assert.is(homeOf(undefined, 'h1', 'h2', up), 'h1');
  // its own: the one the connection is on when that is at a local address
  const nc = (at: string, name: string) => ({ getServer: () => at, info: { server_name: name } }) as unknown as NatsConnection;
  assert.is(ownServer(nc('10.0.0.3:4222', 'h3'), new Set(['10.0.0.3'])), 'h3');
  assert.is(ownServer(nc('10.0.0.1:4222', 'h1'), new Set(['10.0.0.3'])), undefined, 'another host\'s');
  assert.is(ownServer(nc('[::1]:4222', 'h3'), new Set(['::1'])), 'h3');
  assert.is(ownServer(nc('', 'h3'), new Set(['10.0.0.3'])), undefined, 'not connected');
});

u('consumer-home - a look steps the leader down only towards a current peer, and looks again soon while it cannot', () => {
  const peers = (h3: { current?: boolean; offline?: boolean }) => [{ name: 'h3', ...h3 }, { name: 'h1', current: true }];
  assert.is(nextMove('h3', 'h3', { leader: 'h2', replicas: peers({ current: true }) }), 'step');
  assert.is(nextMove('h3', 'h3', { leader: 'h3', replicas: [{ name: 'h1', current: true }, { name: 'h2', current: true }] }), 'stay');
  // healed, catching up: a step-down now would land on h1 and be wasted (20 a minute at most)
  assert.is(nextMove('h3', 'h3', { leader: 'h2', replicas: peers({ current: false }) }), 'wait');
  assert.is(nextMove('h3', 'h3', { leader: 'h2', replicas: peers({ current: true, offline: true }) }), 'wait');
  // no answer (cut off) or no leader (electing): again in a second, not at the next regular look
  assert.is(nextMove('h3', 'h3', undefined), 'wait');
  assert.is(nextMove('h3', 'h3', { replicas: peers({ current: true }) }), 'wait');
  // home no peer of the group (a fourth server): no step-down can reach it
  assert.is(nextMove('h4', 'h4', { leader: 'h2', replicas: peers({ current: true }) }), 'stay');
  // own server behind, the connection's server current: there meanwhile
  assert.is(nextMove('h3', 'h1', { leader: 'h2', replicas: peers({ current: false }) }), 'step');
});

u('consumer-home - a consumer is moved (a follower\'s R1 made again, an agent\'s durable stepped down) only when known to be led away from home', () => {
  assert.is(misplaced('h3', 'h1'), true);
  assert.is(misplaced('h1', 'h1'), false);
  assert.is(misplaced(undefined, 'h1'), false, 'no cluster info (one server): kept');
  assert.is(misplaced('h3', undefined), false, 'no server known: kept');
});

u('membership - the first silence to end: nodes not down, from their last beat or the controller\'s start', () => {
  const v = view({ a: 'ready', b: 'down', c: undefined });
  assert.is(nextSilence(v, new Map([['a', 5000], ['c', 4000]]), none, 3000, 4500), 7500, 'c, heard before the start, counts from it');
  assert.is(nextSilence(v, new Map([['a', 5000], ['c', 6000]]), none, 3000, 0), 8000);
  // said down, not folded yet: no silence of its own to wait for
  assert.is(nextSilence(v, new Map([['a', 5000], ['c', 6000]]), new Map([['a', { state: 'down', at: 9000 }]]), 3000, 0), 9000);
  assert.is(nextSilence(view({ b: 'down' }), new Map(), none, 3000, 0), undefined);
});

u('membership - a NodeDown comes when the silence ends, not at the next regular tick', async () => {
  // five nodes whose last beats are 20 ms apart: with ticks 100 ms apart alone, their silences
  // end at every phase of a tick, and the median NodeDown came 40-60 ms late
  const nodes = ['na', 'nb', 'nc', 'nd', 'ne'];
  const v = view(Object.fromEntries(nodes.map((n) => [n, 'ready'])));
  const downs = new Map<string, number>();
  let beat: ((err: unknown, m: { subject: string }) => void) | undefined;
  const nc = {
    status: () => ({ async *[Symbol.asyncIterator]() { /* never reconnects */ } }),
    subscribe: (_s: string, o: { callback: typeof beat }) => { beat = o.callback; return { unsubscribe() { /* test */ } }; },
  } as unknown as NatsConnection;
  const silenceMs = 1000;
  const m = new Membership({
    view: () => v, silenceMs, confirm: async () => true,
    append: async (_s, type, entity) => { if (type === 'NodeDown' && !downs.has(entity)) downs.set(entity, Date.now()); },
  });
  m.start(nc);
  const beats = new Map<string, number>();
  try {
    for (const n of nodes) {
      beat!(null, { subject: subjects.heartbeat(n) });
      beats.set(n, Date.now());
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, silenceMs + 400));
  } finally { m.stop(); }
  const late = nodes.map((n) => downs.get(n)! - beats.get(n)! - silenceMs).sort((a, b) => a - b);
  assert.ok(late.every((x) => Number.isFinite(x) && x >= 0), `NodeDown before the silence ended or never: ${late.join(', ')} ms`);
  assert.ok(late[2]! < 25, `NodeDowns this late after the silence: ${late.join(', ')} ms`);
});

u.run();

const t = suite('membership-fleet');
let f: Fleet | undefined;
// four hosts: h4 runs no nats-server, so cutting it off tests membership, not the servers' quorum
t.before(async () => { f = await Fleet.up(4); });
t.after(() => {
  if (!f) return;
  const p = f.prefix;
  f.down();
  const left = leftovers(p);
  if (left.length) throw new Error(`ops/fleet down left: ${left.join('; ')}`);
});

const stateOf = async (node: string) => (await f!.nodes()).find((n) => n.id === node)?.state;
const lastEvent = async (type: string, node: string) => {
  const lines = (await f!.ok(['events', '--format', 'json', '--filter', `type=${type}`])).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return lines.filter((e) => e.entity === node).pop() as { ts: number; data: Record<string, unknown> } | undefined;
};

t('membership - the agent of each server host has its durable consumer led by its own server', async () => {
  // a cut of another host then costs it no election (agent/consumer-home.ts); h4 runs no server
  const nc = await connect({ ...connectOptions(readCreds(f!.env.SWARMLITE_CREDS), f!.env.SWARMLITE_NATS), maxReconnectAttempts: -1 });
  try {
    const leaders = async () => {
      const jsm = await streamApi(nc, 2000);
      return Promise.all([1, 2, 3].map((i) => jsm.consumers.info(STREAM, `agent-${f!.node(i)}`).then((c) => c.cluster?.leader, () => undefined)));
    };
    await until(async () => (await leaders()).every((l, i) => l === `h${i + 1}`), 60_000, 'each consumer led by its host\'s server');
  } finally { await nc.close(); }
});

t('membership - each controller follows the log through a consumer on its own host\'s server', async () => {
  // a cut of another host then leaves the view (and a NodeDown's reconcile) alone (shared/nats/log.ts home)
  const nc = await connect({ ...connectOptions(readCreds(f!.env.SWARMLITE_CREDS), f!.env.SWARMLITE_NATS), maxReconnectAttempts: -1 });
  let seen = '';
  try {
    await until(async () => {
      // a listing gathers every server's answer: one may time out on a loaded machine (asked again)
      const all = await streamApi(nc, 5000).then((jsm) => jsm.consumers.list(STREAM).next()).catch(() => undefined);
      if (!all) return false;
      const views = all.filter((c) => c.name.startsWith('view_'));
      seen = views.map((c) => `${c.name}@${c.cluster?.leader}`).join(' ');
      // a controller's host is its node's name (ops/fleet: the node file) or the netns' hostname
      return [1, 2, 3].every((i) => {
        const mine = views.filter((c) => c.name.startsWith(`view_${f!.node(i)}_`) || c.name.startsWith(`view_h${i}_`));
        return mine.length > 0 && mine.every((c) => c.cluster?.leader === `h${i}`);
      });
    }, 60_000, 'each view consumer led by its host\'s server');
  } catch (err) { throw new Error(`${(err as Error).message}: ${seen}`); } finally { await nc.close(); }
});

t('membership - a killed agent is down within the silence, a revived one ready again', async () => {
  const node = f!.node(3);
  assert.is(await stateOf(node), 'ready');
  const killed = Date.now();
  f!.kill('h3', 'agent');
  await until(async () => (await stateOf(node)) === 'down', 10_000, `${node} down`);
  const down = await lastEvent('NodeDown', node);
  const detect = down!.ts - killed;
  console.log(`membership: NodeDown ${detect} ms after the agent was killed (silence 3000 ms)`);
  assert.ok(detect >= 2000 && detect <= 3000 + 1500, `NodeDown after ${detect} ms`);
  // the other hosts stayed ready
  assert.equal((await f!.nodes()).filter((n) => n.state === 'ready').map((n) => n.id).sort(), [f!.node(1), f!.node(2), f!.node(4)]);
  const revived = Date.now();
  f!.revive('h3', 'agent');
  await until(async () => (await stateOf(node)) === 'ready', 20_000, `${node} ready`);
  const ready = await lastEvent('NodeReady', node);
  assert.ok(ready && ready.ts >= revived, 'no NodeReady after the revive');
  console.log(`membership: NodeReady ${ready!.ts - revived} ms after the revive (agent start included)`);
});

t('membership - a partitioned host is down, healed it is ready', async () => {
  const node = f!.node(4);
  f!.partition('h4');
  try {
    await until(async () => (await stateOf(node)) === 'down', 15_000, `${node} down while cut off`);
  } finally { f!.heal('h4'); }
  await until(async () => (await stateOf(node)) === 'ready', 20_000, `${node} ready after heal`);
});

t('membership - availability and labels are events, shown by node ls', async () => {
  const node = f!.node(2);
  await f!.ok(['node', 'update', '--availability', 'drain', '--label-add', 'zone=a', '--label-add', 'disk=ssd', node]);
  let n = (await f!.nodes()).find((x) => x.id === node)!;
  assert.is(n.availability, 'drain', JSON.stringify(n));
  assert.equal(n.labels, { zone: 'a', disk: 'ssd' });
  await f!.ok(['node', 'update', '--availability', 'active', '--label-rm', 'disk', node]);
  n = (await f!.nodes()).find((x) => x.id === node)!;
  assert.is(n.availability, 'active');
  assert.equal(n.labels, { zone: 'a' });
  const table = await f!.ok(['node', 'ls']);
  assert.match(table, /STATE\s+AVAILABILITY/);
  assert.match(table, new RegExp(`${node}\\s+h2\\s+ready\\s+active`));
  for (const bad of [['--availability', 'gone'], ['--label-add', '=x'], ['--label-add', 'no-equals']]) {
    const r = await f!.tsctl(['node', 'update', ...bad, node]);
    assert.is(r.code, 125, `${bad.join(' ')} accepted`);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const r = await f!.tsctl(['node', 'update', '--availability', 'pause', 'nosuchnode']);
  assert.match(r.stderr, /no such node/);
});

/** The server leading node h<i>'s durable consumer, asked of the group itself (undefined while it elects). */
/**
 * The leader of node i's consumer, or undefined (no answer within `ms`: a consumer info asked
 * while its group elects may go unanswered).
 */
const consumerLeader = async (nc: NatsConnection, i: number, ms = 2000) =>
  streamApi(nc, ms).then((jsm) => jsm.consumers.info(STREAM, `agent-${f!.node(i)}`)).then((c) => c.cluster?.leader, () => undefined);

t('membership - an agent\'s consumer moved off its host\'s server by an election is back there within 4 s (median of 3), each before the 10 s look', async () => {
  // a heal's elections move consumers (the partitioned server comes back with a higher term); looked
  // at only every 10 s, one stayed on that host's server until the bench cut it again (8.4 s stall)
  const nc = await connect({ ...connectOptions(readCreds(f!.env.SWARMLITE_CREDS), f!.env.SWARMLITE_NATS), maxReconnectAttempts: -1 });
  const took: number[] = [];
  try {
    for (let round = 0, tries = 0; round < 3; round++) {
      if (++tries > 10) throw new Error('agent-h3 does not stay on h3');
      await until(async () => (await consumerLeader(nc, 3)) === 'h3', 60_000, 'agent-h3 led by h3');
      // past the agent's own look 1 s after a step-down of its own: this move is one it did not make
      await sleep(1500);
      if ((await consumerLeader(nc, 3)) !== 'h3') { round--; continue; }
      // what an election does: the group's leader goes to one of the two others
      const r = await nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${STREAM}.agent-${f!.node(3)}`, new Uint8Array(0), { timeout: 2000 });
      const moved = Date.now();
      assert.not.ok((JSON.parse(new TextDecoder().decode(r.data)) as { error?: unknown }).error, 'the step-down was refused');
      // asked often and briefly: a look that waited out 2 s while the group elected added those
      // 2 s to what it measured (CI on a slower machine: 'back after 1005, 6258, 543 ms')
      await until(async () => (await consumerLeader(nc, 3, 300)) === 'h3', 15_000, 'agent-h3 back on h3');
      took.push(Date.now() - moved);
    }
  } finally { await nc.close(); }
  console.log(`membership: agent-h3's consumer back on h3 ${took.join(', ')} ms after a step-down`);
  // each round is a few step-downs, each landing on one of two servers at random (~0.5 s a try);
  // this machine showed a round of 3.8-6.3 s now and then (2 runs in 8; not understood: the
  // agent's log of those runs was not kept), so a round may take longer than most, but never
  // as long as the agent's regular look (10 s), which is what brought a consumer back before
  const median = [...took].sort((a, b) => a - b)[1]!;
  assert.ok(median <= 4000 && took.every((ms) => ms < 9000), `back after ${took.join(', ')} ms (median at most 4 s, each under 9 s)`);
});

t('membership - an agent whose connection stayed on another server after its own came back has its consumer on its own server', async () => {
  // its server killed, the agent reconnects elsewhere and stays there (nats.js); its consumer
  // following the connection went down with that other host's cut, connection and consumer both
  f!.kill('h3', 'nats');
  try {
    await until(() => /agent: \S+ on h[12] again/.test(readFileSync(join(f!.dir, 'h3', 'logs', 'agent.log'), 'utf8')), 30_000, 'h3\'s agent on another server');
  } finally { f!.revive('h3', 'nats'); }
  const nc = await connect({ ...connectOptions(readCreds(f!.env.SWARMLITE_CREDS), f!.env.SWARMLITE_NATS), maxReconnectAttempts: -1 });
  try {
    try {
      await until(async () => (await consumerLeader(nc, 3)) === 'h3', 60_000, 'agent-h3 led by h3 again');
    } catch (err) {
      // CI (load 8-15) once ran out these 60 s, never seen alone: what the agent said of its consumer and connection
      const said = readFileSync(join(f!.dir, 'h3', 'logs', 'agent.log'), 'utf8').split('\n').filter((l) => /consumer|connected to| on h\d|reconnect/.test(l)).slice(-12);
      throw new Error(`${(err as Error).message}; its group now ${await streamApi(nc, 2000).then((jsm) => jsm.consumers.info(STREAM, `agent-${f!.node(3)}`)).then((c) => JSON.stringify(c.cluster), (e) => (e as Error).message)}; h3's agent said:\n${said.join('\n')}`);
    }
    // and kept there: longer than the agent's regular look (10 s), which would move it towards the connection
    for (const end = Date.now() + 12_000; Date.now() < end; await sleep(500)) {
      const at = await consumerLeader(nc, 3);
      assert.ok(at === 'h3' || at === undefined, `agent-h3 moved to ${at}`);
    }
    // and it is still connected elsewhere: the consumer went home, not the connection
    const log = readFileSync(join(f!.dir, 'h3', 'logs', 'agent.log'), 'utf8');
    const last = [...log.matchAll(/agent: \S+ (?:connected to|on) (h\d+)/g)].pop()?.[1];
    assert.ok(last && last !== 'h3', `h3's agent is on ${last ?? 'no server'}: the test did not move its connection`);
  } finally { await nc.close(); }
});

t.run();
