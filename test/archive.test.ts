// Retention that keeps the audit honest: the stream's head is sealed into archive segments
// (shared/archive.ts) and purged; `audit verify` stays complete over archived + live parts,
// and still finds a purge that was not archived, a modified segment and a missing one.
// The pure part (seal, open, chain) first, then a real cluster.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes, sign as edSign } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { keyOf, registration, signer } from '../shared/signing.js';
import { checkChain, digestOf, encodeBody, openSegment, seal, segmentName, type SegmentBody } from '../shared/archive.js';
import { ARCHIVE_BUCKET, STREAM } from '../shared/subjects.js';
import { Cluster, sleep, until } from './helpers/cluster.js';
import { encodeBody as encodeRequest } from '../shared/rpc.js';
import { withRetry } from '../shared/nats/log.js';

const pure = suite('archive (pure)');
const root = keyOf(randomBytes(32));
const ctl = signer(randomBytes(32));
const reg = { key: ctl.pub, rootSig: edSign(null, registration('controller', ctl.pub), root.priv).toString('base64') };
const body = (first: number, last: number, prev = ''): SegmentBody => ({
  v: 1, first, last, prev, heads: { controller: { srcSeq: 3, hash: 'ab'.repeat(32), seq: last } }, keys: { controller: reg },
  msgs: [{ seq: first, subject: 'ev.controller', data: Uint8Array.from([1, 2, 3]), sig: 'c2ln' }, { seq: last, subject: 'ev.controller', data: Uint8Array.from([4]) }],
});

pure('archive - a sealed segment opens with the root key alone, as it was sealed', () => {
  const b = encodeBody(body(1, 10));
  const o = openSegment(seal(b, ctl, reg), root.pub);
  assert.ok(typeof o === 'object', String(o));
  if (typeof o !== 'object') return;
  assert.is(o.body.first, 1);
  assert.is(o.body.last, 10);
  assert.equal(o.body.msgs[0], { seq: 1, subject: 'ev.controller', data: Uint8Array.from([1, 2, 3]), sig: 'c2ln' });
  assert.equal(o.body.msgs[1], { seq: 10, subject: 'ev.controller', data: Uint8Array.from([4]) });
  assert.is(o.digest, digestOf(b));
});

pure('archive - a modified segment, a foreign seal and junk are refused in one line', () => {
  const sealed = seal(encodeBody(body(1, 10)), ctl, reg);
  // flip one byte of an archived event (inside the body)
  const i = Buffer.from(sealed).indexOf(Buffer.from([1, 2, 3]));
  assert.ok(i > 0);
  const edited = Uint8Array.from(sealed);
  edited[i + 1] = 9;
  assert.match(String(openSegment(edited, root.pub)), /the seal does not verify/);
  const other = signer(randomBytes(32));
  const forged = seal(encodeBody(body(1, 10)), other, { key: other.pub, rootSig: reg.rootSig });
  assert.match(String(openSegment(forged, root.pub)), /not register/);
  for (const junk of [new Uint8Array(0), randomBytes(64), Buffer.from('{"body":1}')]) {
    const o = openSegment(junk, root.pub);
    assert.type(o, 'string');
  }
});

pure('archive - the chain of segments: from #1, each naming the one before, reaching the anchor', () => {
  const a = { name: segmentName(1, 10), first: 1, last: 10, prev: '', digest: 'd1' };
  const b = { name: segmentName(11, 20), first: 11, last: 20, prev: 'd1', digest: 'd2' };
  assert.equal(checkChain([a, b], { through: 20, segments: 2, digest: 'd2' }), []);
  assert.match(checkChain([b], { through: 20, segments: 2, digest: 'd2' })[0]!.detail, /#1\.\.#10 missing/);
  assert.match(checkChain([a, { ...b, prev: 'zz' }])[0]!.detail, /does not name the segment before it/);
  assert.match(checkChain([a], { through: 20, segments: 2, digest: 'd2' })[0]!.detail, /archive ends at #10 \(segments missing\)/);
  assert.match(checkChain([a, { ...b, digest: 'd3' }], { through: 20, segments: 2, digest: 'd2' })[0]!.detail, /not the segment the anchor recorded/);
  assert.ok(segmentName(9, 9) < segmentName(10, 10), 'names sort in stream order');
});

pure.run();

const t = suite('archive');
let c: Cluster;
const conns: NatsConnection[] = [];
type Audit = { findings: { kind: string; seq: number; detail: string }[]; intact: boolean; events: number; archive: { segments: number; events: number; through: number }; firstSeq: number };
const audit = async (): Promise<{ code: number; a: Audit; stdout: string }> => {
  const r = await c.tsctl(['audit', 'verify', '--format', 'json']);
  return { code: r.code, a: JSON.parse(r.stdout || '{}') as Audit, stdout: r.stdout + r.stderr };
};
const lastSeq = async () => (await withRetry(async () => (await c.connect()).jetstreamManager(), 10)).streams.info(STREAM).then((i) => i.state);
const archive = async (before: number) => {
  const r = await c.tsctl(['log', 'archive', '--before', String(before), '--format', 'json']);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { through: number; segments: number; names: string[]; purged: number };
};

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  for (let i = 0; i < 3; i++) await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'true']);
  await c.ok(['run', '-d', '--network', 'none', '--name', 'keeper', 'busybox', 'sleep', '1000']);
  c.addIdentity('olive', 'user', { role: 'operator' });
});
t.after(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await c?.stop();
});

t('archive - only an admin archives: an operator is refused by the server', async () => {
  await sleep(300);
  const r = await c.tsctl(['log', 'archive', '--before', '5'], { env: { SWARMLITE_CREDS: join(c.dir, 'trust/creds/olive.creds') } });
  assert.is(r.code, 125);
  assert.match(r.stderr, /permission denied: "olive" may not ask log\.archive \(the server refused it\)/);
  const bad = await c.tsctl(['log', 'archive', '--before', 'x']);
  assert.is(bad.code, 125);
  assert.match(bad.stderr, /^tsctl: invalid --before "x"/);
  const past = await c.tsctl(['log', 'archive', '--before', '99999999']);
  assert.is(past.code, 125);
  assert.match(past.stderr, /past the log's end/);
});

t('archive - sealed and purged in two segments, the audit is complete over archived and live parts', async () => {
  await sleep(2500); // an anchor
  const before = await audit();
  assert.equal(before.a.findings, [], before.stdout);
  const s0 = await lastSeq();
  const half = Math.floor(s0.last_seq / 2);
  const r1 = await archive(half);
  assert.is(r1.through, half - 1);
  assert.is(r1.names.length, 1);
  assert.is(r1.purged, half - 1);
  // more life after the first cut, then the second
  await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'true']);
  const s1 = await lastSeq();
  const r2 = await archive(s1.last_seq - 2);
  assert.is(r2.segments, 2);
  const st = await lastSeq();
  assert.is(st.first_seq, s1.last_seq - 2, 'the stream starts where the archive ends');
  // a reader of the whole log starts at the stream's first position: what the purge took is no
  // gap to ask the stream about, position by position (shared/nats/log.ts firstHeld)
  // (each position asked about and not found is a JetStream API error in the account's count)
  const acct = await c.connect('admin');
  conns.push(acct);
  const apiErrors = async () => (await (await acct.jetstreamManager()).getAccountInfo()).api.errors;
  assert.ok(st.first_seq > 20, `a purge of ${st.first_seq - 1} positions`);
  const errors0 = await apiErrors();
  const ev = await c.tsctl(['events', '--format', 'json']);
  assert.is(ev.code, 0, ev.stderr);
  assert.is((JSON.parse(ev.stdout.split('\n')[0]!) as { seq: number }).seq, st.first_seq);
  assert.not.match(ev.stderr, /passed over/);
  assert.ok(await apiErrors() - errors0 < 5, `${await apiErrors() - errors0} API errors while events read the log`);
  const { code, a, stdout } = await audit();
  assert.equal(a.findings, [], stdout);
  assert.is(code, 0);
  assert.is(a.archive.segments, 2);
  assert.is(a.archive.through, s1.last_seq - 3);
  assert.ok(a.events >= st.last_seq - 1, `the audit saw ${a.events} events of #1..#${st.last_seq}`);
  const plain = await c.tsctl(['audit']);
  assert.match(plain.stdout, /in 2 archive segment\(s\)/);
  assert.match(plain.stdout, /log intact/);
});

t('archive - the controller folds the archive when its snapshot is older than the stream; an agent keeps its chain', async () => {
  const ps = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { id: string; state: string }[];
  // everything the nodes acknowledged goes: the agent's own last events are archived too
  const s = await lastSeq();
  await archive(s.last_seq + 1);
  for (const f of ['snapshot.bin', 'journal.bin']) rmSync(join(c.dir, 'controller', f), { force: true });
  await c.restartController();
  const again = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { id: string; state: string }[];
  assert.equal(again.map((x) => `${x.id} ${x.state}`).sort(), ps.map((x) => `${x.id} ${x.state}`).sort());
  // a restarted agent whose chain head is only in the archive continues it (from the anchor)
  await c.killAgent();
  c.startAgent();
  await until(async () => (await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'true'])).code === 0, 30000, 'the agent back');
  await sleep(2500);
  const { code, a, stdout } = await audit();
  assert.equal(a.findings, [], stdout);
  assert.is(code, 0);
});

t('archive - sealed but not purged (tsctl died between the steps): the audit is intact, the same command finishes the purge', async () => {
  await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'true']);
  const s = await lastSeq();
  // the controller's step alone, as a tsctl killed before its purge left it
  const nc = await c.connect('admin');
  conns.push(nc);
  const m = await nc.request('api.admin.log.archive', encodeRequest({ before: s.last_seq }), { timeout: 60000 });
  const reply = JSON.parse(new TextDecoder().decode(m.data)) as { ok?: { through: number; names: string[] }; error?: string };
  assert.ok(reply.ok, reply.error);
  assert.is(reply.ok!.through, s.last_seq - 1);
  assert.ok((await lastSeq()).first_seq <= reply.ok!.through, 'the controller purged: only an admin may');
  const mid = await audit();
  assert.equal(mid.a.findings, [], mid.stdout);
  assert.is(mid.code, 0);
  const r = await archive(s.last_seq);
  assert.equal(r.names, [], 'sealed twice');
  assert.ok(r.purged > 0);
  assert.is((await lastSeq()).first_seq, s.last_seq);
  const after = await audit();
  assert.equal(after.a.findings, [], after.stdout);
});

t('archive - a modified segment, a missing segment and a purge that was not archived are found', async () => {
  const nc = await c.connect('tamper');
  conns.push(nc);
  // nats.js asks the server's account info first: a busy server once answered that with a 503
  const os = await withRetry(() => nc.jetstream().views.os(ARCHIVE_BUCKET), 10);
  const names = (await os.list()).filter((o) => !o.deleted).map((o) => o.name).sort();
  assert.ok(names.length >= 3, names.join(','));
  // one byte of the second segment changed, put back under its name
  const orig = (await os.getBlob(names[1]!))!;
  const edited = Uint8Array.from(orig);
  edited[Math.floor(edited.length / 2)] ^= 1;
  await os.putBlob({ name: names[1]! }, edited);
  let r = await audit();
  assert.is(r.code, 1);
  const mod = r.a.findings.find((f) => f.kind === 'archive' && f.detail.includes(names[1]!));
  assert.ok(mod, r.stdout);
  assert.match(mod!.detail, /seal does not verify|not msgpack|not a sealed segment/);
  await os.putBlob({ name: names[1]! }, orig);
  assert.equal((await audit()).a.findings, [], 'restored');
  // the first segment deleted: its positions are missing, the chain says so
  const first = (await os.getBlob(names[0]!))!;
  await os.delete(names[0]!);
  r = await audit();
  assert.is(r.code, 1);
  assert.ok(r.a.findings.some((f) => f.kind === 'archive' && f.seq === 1 && /missing/.test(f.detail)), r.stdout);
  assert.ok(r.a.findings.some((f) => f.kind === 'deleted' && f.seq === 1), r.stdout);
  await os.putBlob({ name: names[0]! }, first);
  // the last segment deleted: only the anchor knows it existed
  const lastName = names[names.length - 1]!;
  await os.delete(lastName);
  r = await audit();
  assert.is(r.code, 1);
  assert.ok(r.a.findings.some((f) => f.kind === 'archive' && /anchor records the archive through/.test(f.detail)), r.stdout);
  // a purge past the archive (as an admin could): the positions are neither archived nor in the stream
  const admin = await c.connect('admin');
  conns.push(admin);
  const jsm = await withRetry(() => admin.jetstreamManager(), 10);
  await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'true']);
  const st = (await jsm.streams.info(STREAM)).state;
  await jsm.streams.purge(STREAM, { seq: st.last_seq - 1 });
  r = await audit();
  assert.is(r.code, 1);
  assert.ok(r.a.findings.some((f) => f.kind === 'truncated' && /neither in the archive nor in the stream/.test(f.detail)), r.stdout);
});

t.run();
