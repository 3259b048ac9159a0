// Controller leadership (controller/lease.ts): one controller leads through a KV lease and a
// standby takes over when it dies; claims are fenced with expected-last-subject-sequence, so
// two controllers that both believe they lead never take one name twice.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StorageType, type NatsConnection } from 'nats';
import { Cluster, CONTROLLER_NODE_FLAGS, sleep, until } from './helpers/cluster.js';
import { CLAIM_GRACE_MS, decide, expectedFor, fenceAnswer, fencedAt, fenceVerdict, highestTerm, lastSeqOn, leaderMoves, nextTerm, pendingClaim, validFor, whileElecting, LEADER_STREAMS, LEASE_BUCKET, LEASE_KEY } from '../controller/lease.js';
import { Appender, AppendError, readLog } from '../shared/nats/log.js';
import { SourceChain } from '../shared/codec.js';
import { subjects, STREAM } from '../shared/subjects.js';
import { credsPath } from '../shared/nats/trust.js';
import { call } from '../shared/nats/rpc.js';
import { controllerApi } from '../shared/api/controller.js';
import { emptyView } from '../shared/reducer.js';
import { RpcError } from '../shared/rpc.js';
import { MemLog } from './helpers/memlog.js';
import type { AnyEvent } from '../shared/events.js';

const DIST = fileURLToPath(new URL('../', import.meta.url));
// one server here: the lease is asked for (a cluster's controllers use it by default)
process.env.SWARMLITE_LEASE = '1';
const t = suite('lease');

t('lease - decide and the local validity are pure', () => {
  assert.is(decide('h1', { held: false }), 'create');
  assert.is(decide('h1', { held: true, host: 'h2', revision: 4 }), 'wait');
  assert.is(decide('h1', { held: true, host: 'h1', revision: 4 }), 'update');
  // the leader stops before the server's TTL runs out
  assert.is(validFor(5000), 4000);
  assert.is(validFor(1000), 750);
  const v = emptyView();
  assert.is(expectedFor(v, 'container', 'web', 1), 0);
  v.claims = { 'container/web': { seq: 42, entity: 'c1', ts: 1000 } };
  assert.is(expectedFor(v, 'container', 'web', 1), 42);
  assert.is(expectedFor(v, 'container', 'web', 43), 0, 'a claim purged from the stream is expected absent');
  assert.is(pendingClaim(v, 'container', 'web', () => false, 2000), 'c1', 'claimed, its container not in the view yet');
  assert.is(pendingClaim(v, 'container', 'web', () => true, 2000), undefined, 'its container is there: the view\'s name check decides');
  assert.is(pendingClaim(v, 'container', 'web', () => false, 1000 + CLAIM_GRACE_MS + 1), undefined, 'a claimer that died before using the name holds it no longer');
  // the claimer's request folded, then its container removed (run --rm): the name is free at once
  v.claims['container/web']!.used = true;
  assert.is(pendingClaim(v, 'container', 'web', () => false, 2000), undefined, 'a used claim held a removed container\'s name');
  assert.is(subjects.claim('container', 'a..b.'), `ev.claim.container.${Buffer.from('a..b.').toString('hex')}`, 'one token whatever dots a name holds');
});

t('lease - nextTerm: above every term the log announced, and at least the lease\'s revision; the view keeps the highest, from controllers only', () => {
  assert.is(nextTerm(7, 0), 7, 'a first leader: the revision');
  assert.is(nextTerm(12, 9), 12, 'a lease that kept its history: the revision, above the log\'s');
  assert.is(nextTerm(1, 8), 9, 'a bucket that began again at 1: above the log\'s highest');
  assert.is(nextTerm(8, 8), 9, 'never the same term twice');
  assert.is(nextTerm(3, 1_700_000_000_000), 1_700_000_000_001, 'after a leader without a lease (its term a clock)');
  assert.throws(() => nextTerm(1, Number.MAX_SAFE_INTEGER), /no term is left above the log's highest/);
  const log = new MemLog();
  assert.is(highestTerm(log.view), 0);
  const lead = (term: number, src = 'controller') => log.append(src, subjects.controller, 'ControllerLeading', 'controller', { host: 'h', term, ttlMs: 2000 });
  lead(40);
  // a log from before nextTerm: a term that went backwards (the bucket's history lost)
  lead(1);
  assert.is(log.view.leader!.term, 1, 'the last announcement leads');
  assert.is(highestTerm(log.view), 40, 'the highest is kept');
  assert.is(nextTerm(2, highestTerm(log.view)), 41);
  // a snapshot from before `highest` was kept: its last term
  assert.is(highestTerm({ ...emptyView(), leader: { host: 'h', term: 5, seq: 3 } }), 5);
  // not a controller's: folded as nothing, whatever term it names
  lead(Number.MAX_SAFE_INTEGER, 'node:n1');
  assert.is(highestTerm(log.view), 40, 'a node cannot raise the next term');
  lead(41);
  assert.is(highestTerm(log.view), 41);
});

t('lease - fenceAnswer: a refusal past the view\'s position deposes, one before it keeps the lead; one line each', () => {
  const m = { what: 'a desire for abc', disagree: 'container abc: the copies disagree', taken: 'container abc was just changed by another controller' };
  const other = fenceAnswer({ fenced: true, expect: 68, actual: 70 }, 'ev.desired.n1.abc', m);
  assert.instance(other.error, RpcError);
  assert.is(other.error.code, 'conflict');
  assert.is(other.error.message, m.taken);
  assert.is(other.depose, fenceVerdict('ev.desired.n1.abc', 68, 70).why);
  assert.is(other.log, undefined);
  const disagree = fenceAnswer({ fenced: true, expect: 68, actual: 67 }, 'ev.desired.n1.abc', m);
  assert.is(disagree.error.message, m.disagree);
  assert.is(disagree.depose, undefined, 'the lead stays');
  assert.match(disagree.log!, /^a desire for abc refused: the stream's last message on ev\.desired\.n1\.abc is #67, before this view's #68.*; still leading$/);
  // where it ends unknown, or no expectation said (junk in the error): another writer's, taken as such
  assert.ok(fenceAnswer({ fenced: true, expect: 68 }, 's', m).depose);
  for (const junk of [undefined, null, 'x', { expect: 'NaN' }, { expect: 5, actual: -1 }]) {
    const a = fenceAnswer(junk, 'ev.claim.container.77', m);
    assert.is(a.error.message, m.taken, JSON.stringify(junk));
    assert.match(a.depose!, /^another controller wrote on ev\.claim\.container\.77/);
    assert.not.match(a.depose!, /\n/);
  }
});

t('lease - a takeover waits out an election at a fixed interval, reads only; the log\'s stream is kept off the leader\'s host', async () => {
  // an election ending after 6 tries: the 7th goes on within one interval (a growing back-off went on up to 1.5 s late)
  let n = 0;
  const at: number[] = [];
  const t0 = Date.now();
  const v = await whileElecting(async () => { at.push(Date.now() - t0); if (++n < 7) throw new Error('503: EVENTS has no leader yet'); return 'led'; }, 5000, 50);
  assert.is(v, 'led');
  assert.is(n, 7);
  for (let k = 1; k < at.length; k++) assert.ok(at[k] - at[k - 1] < 1000, `try ${k + 1} came ${at[k] - at[k - 1]} ms after the one before: a fixed interval, not a back-off`);
  // an error an election does not explain is the caller's at once
  n = 0;
  await whileElecting(async () => { n++; throw new Error('permissions violation'); }, 5000, 10).then(() => assert.unreachable('no error'), (err: Error) => assert.match(err.message, /permissions/));
  assert.is(n, 1, 'not tried again');
  // bounded: a leader that never comes ends in the last error
  n = 0;
  await whileElecting(async () => { n++; throw new Error('TIMEOUT'); }, 300, 50).then(() => assert.unreachable('no error'), (err: Error) => assert.match(err.message, /TIMEOUT/));
  assert.ok(n >= 2 && n <= 8, `${n} tries within 300 ms at 50 ms`);
  // both streams a takeover waits for (the lease's and the log's) are led from elsewhere
  const kept = LEADER_STREAMS.map((l) => l.stream);
  assert.ok(kept.includes(`KV_${LEASE_BUCKET}`) && kept.includes(STREAM), kept.join(', '));
  assert.not.ok(kept.some((s) => s.startsWith('OBJ_')), 'the images\' store is written by tsctl directly: no step-downs under it');
  assert.ok(LEADER_STREAMS.find((l) => l.stream === STREAM)!.fromMs >= 30_000, 'the log\'s first step-down comes after a first term\'s agents started (their start reads it without retries)');
});

t('lease - leaderMoves: off the controller\'s host first, then every kept stream led from the log\'s server', () => {
  const lease = `KV_${LEASE_BUCKET}`, both = [lease, STREAM];
  // either led from this host: only those move (where they land is not known yet)
  assert.equal(leaderMoves({ [lease]: 'h1', [STREAM]: 'h2' }, ['h1'], both), { away: [lease], together: [] });
  assert.equal(leaderMoves({ [lease]: 'h2', [STREAM]: 'h1' }, ['h1'], both), { away: [STREAM], together: [] });
  // led from two other servers: the loss of either would cost a write an election; the lease joins the log
  assert.equal(leaderMoves({ [lease]: 'h3', [STREAM]: 'h2' }, ['h1'], both), { away: [], together: [lease] });
  // together: nothing moves (no step-down churn every 10 s)
  assert.equal(leaderMoves({ [lease]: 'h2', [STREAM]: 'h2' }, ['h1'], both), { away: [], together: [] });
  // the log's own step-downs not due yet (first 30 s of a term) and it is led from here: the
  // lease stays away from this host rather than following the log onto it
  assert.equal(leaderMoves({ [lease]: 'h2', [STREAM]: 'h1' }, ['h1'], [lease]), { away: [], together: [] });
  // not due yet, led from elsewhere: the lease still joins it
  assert.equal(leaderMoves({ [lease]: 'h3', [STREAM]: 'h2' }, ['h1'], [lease]), { away: [], together: [lease] });
  // a stream electing (no leader) moves nothing: looked at again in 10 s
  assert.equal(leaderMoves({ [lease]: 'h3', [STREAM]: '' }, ['h1'], both), { away: [], together: [] });
  assert.equal(leaderMoves({ [lease]: undefined, [STREAM]: 'h2' }, ['h1'], both), { away: [], together: [] });
});

/** Another controller process against `c`'s server, with its own state dir and the cluster's controller key. */
function controller(c: Cluster, host: string, env: Record<string, string> = {}, dir?: string): { p: ChildProcess; dir: string; out: () => string } {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'swl-lease-'));
  let out = '';
  const p = spawn(process.execPath, [...CONTROLLER_NODE_FLAGS, join(DIST, 'controller/main.js'), '--nats', c.url, '--state-dir', d, '--creds', credsPath(c.dir, 'controller'), '--host', host],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  p.stdout!.on('data', (b) => { out += b; });
  p.stderr!.on('data', (b) => { out += b; });
  return { p, dir: d, out: () => out };
}

async function kill(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

async function controllerEvents(nc: NatsConnection): Promise<{ seq: number; e: AnyEvent }[]> {
  const out: { seq: number; e: AnyEvent }[] = [];
  for await (const item of readLog(nc)) if (item.ok && item.stored.event.src === 'controller') out.push({ seq: item.stored.seq, e: item.stored.event });
  return out;
}

t('lease - the fence: of two writers claiming one subject with the same expected sequence, one is stored, and the refused one leaves no gap in its chain', async () => {
  const c = await Cluster.start();
  const nc = await c.connect('controller');
  try {
    const js = nc.jetstream();
    const a = new Appender(js, new SourceChain('controller', 0, ''), undefined, { nc });
    const b = new Appender(js, new SourceChain('controller', 0, ''), undefined, { nc });
    const subj = subjects.claim('container', 'fence-me');
    const r = await Promise.allSettled([
      a.appendExpecting(subj, 'Claimed', 'x', { kind: 'container', key: 'fence-me' }, 0),
      b.appendExpecting(subj, 'Claimed', 'y', { kind: 'container', key: 'fence-me' }, 0),
    ]);
    assert.is(r.filter((x) => x.status === 'fulfilled').length, 1, JSON.stringify(r.map((x) => x.status)));
    const lost = r.find((x) => x.status === 'rejected') as PromiseRejectedResult;
    assert.instance(lost.reason, AppendError);
    assert.is((lost.reason as { fenced?: boolean }).fenced, true);
    // the refusal says where the stream leader's copy ends there: past the expected 0, another writer's
    const won = (r.find((x) => x.status === 'fulfilled') as PromiseFulfilledResult<{ seq: number }>).value.seq;
    assert.is(fencedAt(lost.reason), won);
    assert.equal(fenceVerdict(subj, 0, fencedAt(lost.reason)).depose, true);
    const loser = (r[0].status === 'rejected' ? a : b);
    // the refused claim gave its chain position back; the writer goes on
    const before = loser.chain.position.srcSeq;
    await loser.append(subjects.controller, 'ControllerStarted', 'controller', { version: 't' });
    assert.is(loser.chain.position.srcSeq, before + 1);
  } finally { await nc.close(); await c.stop(); }
});

t('lease - a fenced desire whose view is ahead of the stream leader\'s copy (copies that disagree) keeps the lead; one behind it steps down', async () => {
  // nats-server 2.9.10 left a replica one event short, every later position shifted by one; led
  // from it, every controller's first desire was refused for "another controller wrote", each
  // stepped down and the next did the same (fleet-loss: no controller answering for minutes)
  assert.equal(fenceVerdict('ev.desired.n1.c', 68, 67), { depose: false, why: "the stream's last message on ev.desired.n1.c is #67, before this view's #68: its copies disagree or it was purged under the view (no other writer's)" });
  assert.is(fenceVerdict('ev.desired.n1.c', 68, 0).depose, false, 'purged under the view');
  assert.is(fenceVerdict('ev.desired.n1.c', 68, 70).depose, true, 'another writer\'s message after the view\'s');
  assert.is(fenceVerdict('ev.desired.n1.c', 68, undefined).depose, true, 'where, unknown: taken as another writer\'s');
  assert.is(fencedAt({ actual: 'x' }), undefined);
  assert.is(fencedAt(new Error('no')), undefined);
  const c = await Cluster.start();
  const nc = await c.connect('controller');
  try {
    const w = new Appender(nc.jetstream(), new SourceChain('controller', 0, ''), undefined, { nc });
    const subj = subjects.desired('n1', 'c'.repeat(64));
    const first = await w.append(subj, 'ContainerStopRequested', 'c'.repeat(64), { timeout: 1, user: 'u' });
    // a view that holds a later position there than the leader's copy does
    const err = await w.appendExpecting(subj, 'ContainerKillRequested', 'c'.repeat(64), { signal: 'KILL', user: 'u' }, first.seq + 1).then(() => undefined, (e: unknown) => e);
    assert.instance(err, AppendError);
    assert.is((err as { fenced?: boolean }).fenced, true);
    assert.is((err as { expect?: number }).expect, first.seq + 1);
    assert.is(fencedAt(err), first.seq);
    assert.is(fenceVerdict(subj, first.seq + 1, fencedAt(err)).depose, false);
    // nothing was appended, and the writer goes on from where it was
    const again = await w.appendExpecting(subj, 'ContainerKillRequested', 'c'.repeat(64), { signal: 'KILL', user: 'u' }, first.seq);
    assert.ok(again.seq > first.seq);
  } finally { await nc.close(); await c.stop(); }
});

t('lease - SIGKILL the leader: the standby leads within the lease time and tsctl run works; the audit verifies', async () => {
  const c = await Cluster.start();
  const extra: { p: ChildProcess; dir: string; out: () => string }[] = [];
  const nc = await c.connect();
  try {
    await c.importBusybox();
    await c.ok(['run', '-d', '--name', 'before', 'busybox', 'sleep', '300']);
    const b = controller(c, 'standby');
    extra.push(b);
    await until(() => b.out().includes('lease: standby'), 20000, 'the second controller waiting as a standby');
    // only the leader serves: every request answered by it
    for (let i = 0; i < 3; i++) await c.ok(['ps']);
    const kv = await nc.jetstream().views.kv(LEASE_BUCKET);
    const ttl = (await kv.status()).ttl;
    await c.controller().kill('SIGKILL');
    const t0 = Date.now();
    await until(async () => (await c.tsctl(['run', '-d', '--name', 'after', 'busybox', 'sleep', '300'])).code === 0, 30000, 'tsctl run through the new leader');
    const took = Date.now() - t0;
    console.log(`lease: leader SIGKILLed, tsctl run answered by the standby after ${took} ms (lease ${ttl} ms)`);
    assert.ok(took < ttl + 2500, `takeover took ${took} ms with a ${ttl} ms lease`);
    assert.ok(b.out().includes('leads'), b.out());
    const lease = await kv.get(LEASE_KEY);
    assert.is(JSON.parse(new TextDecoder().decode(lease!.value)).host, 'standby');
    const ev = await controllerEvents(nc);
    const leading = ev.filter((x) => x.e.type === 'ControllerLeading').map((x) => x.e.data as { host: string; term: number });
    assert.is(leading.length, 2, JSON.stringify(leading));
    assert.is(leading[1].host, 'standby');
    assert.ok(leading[1].term > leading[0].term, 'terms grow');
    const audit = await c.tsctl(['audit', 'verify']);
    assert.is(audit.code, 0, audit.stdout + audit.stderr);
    const ps = JSON.parse(await c.ok(['ps', '--format', 'json'])) as { name: string; state: string }[];
    assert.ok(ps.some((p) => p.name === 'after'), 'the container placed by the new leader');
  } finally {
    await nc.close();
    for (const x of extra) { await kill(x.p); rmSync(x.dir, { recursive: true, force: true }); }
    await c.stop();
  }
});

t('lease - a leader paused (SIGSTOP) across its lease\'s end, then resumed: the standby leads, the stale one\'s queued kill has no effect, nothing is placed twice', async () => {
  const c = await Cluster.start();
  const extra: { p: ChildProcess; dir: string; out: () => string }[] = [];
  const nc = await c.connect();
  let a: ChildProcess | undefined;
  try {
    await c.importBusybox();
    // the cluster's controller again, as a process whose output the test reads
    await kill(c.controller());
    const one = controller(c, 'one', {}, c.dir);
    extra.push({ ...one, dir: '' });
    a = one.p;
    await until(() => one.out().includes('controller ready'), 30000, 'controller one');
    await c.ok(['run', '-d', '--name', 'victim', 'busybox', 'sleep', '300']);
    const b = controller(c, 'standby');
    extra.push(b);
    await until(() => b.out().includes('lease: standby'), 30000, 'the second controller waiting as a standby');
    const aExit = new Promise<number | null>((r) => one.p.once('exit', (code) => r(code)));
    one.p.kill('SIGSTOP');
    // only the paused leader serves now: this request waits in its socket (the standby cannot
    // lead before the lease's TTL)
    const queued = call(nc, `${subjects.api}.admin`, controllerApi.kill, { ref: 'victim', signal: 'KILL' }, 30000)
      .then(() => 'done', (err: Error) => err.message);
    await until(() => /standby leads/.test(b.out()), 60000, 'the standby leading');
    // the new leader acts on the same container, and places a new one
    await until(async () => (await c.tsctl(['stop', '-t', '1', 'victim'])).code === 0, 60000, 'stop through the new leader');
    await until(async () => { const r = await c.tsctl(['run', '-d', '--name', 'after', 'busybox', 'sleep', '300']); return r.code === 0 || r.stderr.includes('already in use'); }, 60000, 'run through the new leader');
    one.p.kill('SIGCONT');
    const answer = await queued;
    // resumed, it ends its lead by its own clock before or while answering (exit 75: its
    // supervisor starts it again as a standby)
    assert.is(await aExit, 75, one.out());
    assert.match(one.out(), /lost the lead/);
    assert.not.match(answer, /\n/, 'one line');
    assert.ok(answer === 'done' || /no longer leads|timed out|TIMEOUT/i.test(answer), answer);
    console.log(`lease: the paused leader's queued kill was answered: ${answer}`);
    const ev = await controllerEvents(nc);
    const victim = Object.values(JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { id: string; name: string }[]).find((x) => x.name === 'victim')!;
    const acts = ev.filter((x) => x.e.entity === victim.id && x.e.type !== 'Claimed').map((x) => x.e.type);
    if (answer === 'done') assert.ok(acts.indexOf('ContainerKillRequested') < acts.indexOf('ContainerStopRequested'), `a kill that went through was the old leader's, before its lease ended: ${acts}`);
    else assert.equal(acts, ['ContainerRequested', 'ContainerStopRequested'], 'the stale kill had no effect');
    const names = ev.filter((x) => x.e.type === 'ContainerRequested').map((x) => (x.e.data as { spec: { name: string } }).spec.name);
    assert.equal(names, ['victim', 'after'], 'each container requested once');
    const leading = ev.filter((x) => x.e.type === 'ControllerLeading').map((x) => (x.e.data as { host: string }).host);
    assert.is(leading.at(-1), 'standby');
    const audit = await c.tsctl(['audit', 'verify']);
    assert.is(audit.code, 0, audit.stdout + audit.stderr);
  } finally {
    try { a?.kill('SIGCONT'); } catch { /* gone */ }
    await nc.close();
    for (const x of extra) { await kill(x.p); rmSync(x.dir, { recursive: true, force: true }); }
    await c.stop();
  }
});

t('lease - the lease\'s bucket loses its history after a leader announced term T: the next leader\'s term is above T, and the old leader\'s fenced writes are refused', async () => {
  // nats-server 2.10.27 restored KV_swarmlite-leader with "Restored 0 messages": its revisions
  // began again at 1, and a term taken from the revision alone went below an earlier leader's
  const c = await Cluster.start();
  const extra: { p: ChildProcess; dir: string; out: () => string }[] = [];
  const nc = await c.connect('controller');
  const su = await c.connect('tamper');
  try {
    await c.importBusybox();
    await kill(c.controller());
    const one = controller(c, 'one', {}, c.dir);
    extra.push({ ...one, dir: '' });
    await until(() => one.out().includes('controller ready'), 30000, 'controller one');
    await c.ok(['run', '-d', '--name', 'victim', 'busybox', 'sleep', '300']);
    const b = controller(c, 'standby');
    extra.push(b);
    await until(() => b.out().includes('lease: standby'), 30000, 'the second controller waiting as a standby');
    const before = (await controllerEvents(nc)).filter((x) => x.e.type === 'ControllerLeading').map((x) => x.e.data as { host: string; term: number });
    assert.is(before.at(-1)?.host, 'one');
    const T = Math.max(...before.map((l) => l.term));
    // where the old leader's view has its subjects' last messages: what its next fenced writes expect
    const victim = (JSON.parse(await c.ok(['ps', '--format', 'json'])) as { id: string; name: string; node: string }[]).find((x) => x.name === 'victim')!;
    const desired = subjects.desired(victim.node, victim.id);
    const oldDesire = await lastSeqOn(nc, STREAM, desired);
    const oldLeading = await lastSeqOn(nc, STREAM, subjects.controller);
    assert.ok(oldDesire > 0 && oldLeading > 0);
    const oneExit = new Promise<number | null>((r) => one.p.once('exit', (code) => r(code)));
    // the bucket as a server that restored none of it has it: same config, no history
    const kv = await su.jetstream().views.kv(LEASE_BUCKET);
    const st = await kv.status();
    const revBefore = (await kv.get(LEASE_KEY))!.revision;
    await (await su.jetstreamManager()).streams.delete(`KV_${LEASE_BUCKET}`);
    await su.jetstream().views.kv(LEASE_BUCKET, { ttl: st.ttl, history: st.history, storage: StorageType.File });
    await until(() => /standby leads/.test(b.out()), 30000, 'the standby leading');
    // the old leader's renew finds another revision: it ends its lead (and its process: exit 75)
    assert.is(await oneExit, 75, one.out());
    await until(async () => (await c.tsctl(['stop', '-t', '1', 'victim'])).code === 0, 30000, 'stop through the new leader');
    const revAfter = (await (await nc.jetstream().views.kv(LEASE_BUCKET)).get(LEASE_KEY))!.revision;
    assert.ok(revAfter < revBefore, `the bucket's revisions began again (${revBefore}, then ${revAfter}): else this test proved nothing`);
    const leading = (await controllerEvents(nc)).filter((x) => x.e.type === 'ControllerLeading').map((x) => x.e.data as { host: string; term: number });
    assert.is(leading.at(-1)!.host, 'standby');
    assert.ok(leading.at(-1)!.term > T, `the new leader's term ${leading.at(-1)!.term} is above the old one's ${T}`);
    for (let k = 1; k < leading.length; k++) assert.ok(leading[k].term > leading[k - 1].term, `terms never go backwards: ${JSON.stringify(leading)}`);
    assert.match(b.out(), new RegExp(`takeover of term ${leading.at(-1)!.term}:`));
    assert.match(b.out(), new RegExp(`term ${leading.at(-1)!.term}, above the log's highest \\(${T}\\)`));
    // the old leader's writes, as its view had them, are refused: a desire for the victim, a term's announcement
    const w = new Appender(nc.jetstream(), new SourceChain('controller', 0, ''), undefined, { nc });
    const fenced = async (subject: string, p: Promise<unknown>, expect: number) => {
      const err = await p.then(() => undefined, (e: unknown) => e);
      assert.instance(err, AppendError, `${subject}: the old leader's write was stored`);
      assert.is((err as { fenced?: boolean }).fenced, true);
      assert.ok(fencedAt(err)! > expect, `${subject}: the stream's last there (#${fencedAt(err)}) is past the old view's #${expect}`);
      assert.is(fenceVerdict(subject, expect, fencedAt(err)).depose, true);
    };
    await fenced(desired, w.appendExpecting(desired, 'ContainerKillRequested', victim.id, { signal: 'KILL', user: 'u' }, oldDesire), oldDesire);
    await fenced(subjects.controller, w.appendExpecting(subjects.controller, 'ControllerLeading', 'controller', { host: 'one', term: T, ttlMs: st.ttl }, oldLeading), oldLeading);
    const after = (await controllerEvents(nc)).filter((x) => x.e.type === 'ControllerLeading');
    assert.is(after.length, leading.length, 'nothing appended by the old leader');
    const audit = await c.tsctl(['audit', 'verify']);
    assert.is(audit.code, 0, audit.stdout + audit.stderr);
  } finally {
    await nc.close();
    await su.close();
    for (const x of extra) { await kill(x.p); if (x.dir) rmSync(x.dir, { recursive: true, force: true }); }
    await c.stop();
  }
});

t('lease - two controllers that both believe they lead, concurrent runs of the same names: no name placed twice', async () => {
  const c = await Cluster.start();
  const extra: { p: ChildProcess; dir: string; out: () => string }[] = [];
  const nc = await c.connect();
  try {
    await c.importBusybox();
    // the cluster's controller again, and a second one, both with the lease check off
    await kill(c.controller());
    const a = controller(c, 'one', { SWARMLITE_TEST_NO_LEASE: '1', SWARMLITE_TEST_CLAIM_DELAY_MS: '30' }, c.dir);
    extra.push({ ...a, dir: '' });
    await until(() => a.out().includes('controller ready'), 30000, 'controller one');
    const b = controller(c, 'two', { SWARMLITE_TEST_NO_LEASE: '1', SWARMLITE_TEST_CLAIM_DELAY_MS: '30' });
    extra.push(b);
    await until(() => b.out().includes('controller ready'), 30000, 'controller two');
    const N = 30;
    const replies: { name: string; ok: boolean; msg?: string }[] = [];
    // each name asked for twice at once; the queue group gives each request to one of the two
    await Promise.all(Array.from({ length: N }, (_, i) => `dup${i}`).flatMap((name) => [0, 1].map(async () => {
      try {
        await call(nc, `${subjects.api}.admin`, controllerApi.run, { image: 'busybox', name, args: ['sleep', '60'] }, 30000);
        replies.push({ name, ok: true });
      } catch (err) { replies.push({ name, ok: false, msg: (err as Error).message }); }
    })));
    const fenced = replies.filter((r) => !r.ok && /taken by another controller/.test(r.msg ?? '')).length;
    const seen = replies.filter((r) => !r.ok && /already in use|being taken/.test(r.msg ?? '')).length;
    const other = replies.filter((r) => !r.ok && !/taken by another controller|already in use|being taken/.test(r.msg ?? ''));
    assert.equal(other, [], 'no other failure');
    // count what the log holds: a name requested twice would be a task placed twice
    const ev = await controllerEvents(nc);
    const requested = new Map<string, number>();
    for (const x of ev) if (x.e.type === 'ContainerRequested') { const n = (x.e.data as { spec: { name: string } }).spec.name; requested.set(n, (requested.get(n) ?? 0) + 1); }
    const dups = [...requested.values()].filter((n) => n > 1).length;
    const claims = ev.filter((x) => x.e.type === 'Claimed').length;
    console.log(`lease: two leaders, ${2 * N} concurrent runs of ${N} names: ${requested.size} placed, ${dups} duplicates, ${fenced} refused by the fence, ${seen} by a view that had the other's claim`);
    assert.is(dups, 0, 'no name placed twice');
    assert.is(requested.size, N, 'every name placed once');
    assert.is(replies.filter((r) => r.ok).length, N);
    assert.is(fenced + seen, N);
    assert.is(claims, N, 'one claim per name in the log');
    assert.ok(fenced > 0, 'the two controllers raced on some name (else this test proved nothing of the fence)');
  } finally {
    await nc.close();
    for (const x of extra) { await kill(x.p); if (x.dir) rmSync(x.dir, { recursive: true, force: true }); }
    await c.stop();
  }
});

t.run();
void STREAM; void sleep;
