// The agent and the log: malformed or impossible events are answered with a rejection
// and never block the ones behind them; replaying the whole stream changes nothing.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NatsConnection } from 'nats';
import { encode } from '@msgpack/msgpack';
import { Cluster, until, sleep } from './helpers/cluster.js';
import { SourceChain } from '../shared/codec.js';
import { STREAM } from '../shared/subjects.js';

const t = suite('agent-log');
let c: Cluster;
let nc: NatsConnection;

type Ev = { seq: number; type: string; entity: string; src: string; cause?: string; data: Record<string, unknown> };
const events = async (): Promise<Ev[]> => (await c.ok(['events', '--format', 'json'])).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  nc = await c.connect('tamper');
});
t.after(async () => { await nc?.close(); await c?.stop(); });

t('rejects - garbage, an unknown version, a bad payload and a forged source are each rejected with a reason', async () => {
  const js = nc.jetstream();
  const subject = (e: string) => `ev.desired.${c.node}.${e}`;
  await js.publish(subject('garbage1'), new Uint8Array([0xc1, 0x00, 0xff]));
  const base = { id: 'x1', ts: Date.now(), src: 'controller', srcSeq: 999, prev: '', entity: 'vers1' };
  await js.publish(subject('vers1'), encode({ ...base, v: 99, type: 'ContainerStopRequested', data: { timeout: 1, user: 'u' } }));
  await js.publish(subject('bad1'), encode({ ...base, v: 1, id: 'x2', entity: 'bad1', type: 'ContainerStopRequested', data: { timeout: -3, user: 'u' } }));
  const forged = new SourceChain('node:mallory').next('ContainerStopRequested', 'forged1', { timeout: 1, user: 'u' });
  await js.publish(subject('forged1'), forged.bytes);
  const nobody = new SourceChain('controller', 1000).next('ContainerKillRequested', 'f'.repeat(64), { signal: 'SIGKILL', user: 'u' });
  await js.publish(subject('f'.repeat(64)), nobody.bytes);
  // a valid run right behind them still works
  const r = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'still-fine']);
  assert.is(r.stdout, 'still-fine\n', r.stderr);
  const rej = await until(async () => { const l = (await events()).filter((e) => e.type === 'EventRejected'); return l.length >= 5 ? l : undefined; }, 5000, 'five rejections');
  const reason = (entity: string) => rej.find((e) => e.entity === entity)?.data.reason as string;
  assert.match(reason('garbage1'), /not msgpack|not a map/);
  assert.match(reason('vers1'), /unsupported schema version 99/);
  assert.match(reason('bad1'), /data\.timeout: -3 is out of range/);
  assert.match(reason('forged1'), /come from the controller, not node:mallory/);
  // claims the controller but is not signed by its key: refused before anything acts
  assert.match(reason('f'.repeat(64)), /signature: unsigned/);
  for (const e of rej) assert.is(e.src, `node:${c.node}`);
  const a = await c.tsctl(['audit', '--format', 'json']);
  assert.is(a.code, 1, 'junk in the log is a finding');
  const audit = JSON.parse(a.stdout) as { findings: { kind: string; seq: number }[] };
  assert.is(audit.findings.filter((f) => f.kind === 'undecodable').length, 3, 'garbage, v99 and the bad payload are counted, not hidden');
  assert.is(audit.findings.filter((f) => f.kind === 'forged').length, 2, 'the forged source and the unsigned "controller" event');
});

t('replay - a new consumer replaying every desired event changes nothing on the host', async () => {
  const id = (await c.ok(['run', '-d', '--network', 'none', '--name', 'keeper', 'busybox', 'sleep', '1000'])).trim();
  await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'true']);
  await c.ok(['run', '-d', '--network', 'none', '--name', 'stopped', 'busybox', 'true']);
  await until(async () => (await c.ok(['ps', '-a'])).includes('Exited (0)'), 5000, 'stopped exits');
  const pid = JSON.parse(await c.ok(['inspect', 'keeper']))[0].State.Pid;
  const psBefore = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])).map((p: { id: string; state: string }) => `${p.id}:${p.state}`).sort();
  const stateBefore = (await events()).filter((e) => e.src === `node:${c.node}` && e.type !== 'NodeJoined').length;

  await c.killAgent();
  const jsm = await nc.jetstreamManager();
  await jsm.consumers.delete(STREAM, `agent-${c.node}`); // the next agent replays from the first event
  c.startAgent();
  await c.waitJoined();
  await sleep(1500);

  const info = await jsm.consumers.info(STREAM, `agent-${c.node}`);
  assert.is(info.num_pending, 0, 'the replay did not finish');
  assert.is(info.num_ack_pending, 0);
  const stateAfter = (await events()).filter((e) => e.src === `node:${c.node}` && e.type !== 'NodeJoined').length;
  assert.is(stateAfter, stateBefore, 'the replay appended state events');
  const psAfter = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])).map((p: { id: string; state: string }) => `${p.id}:${p.state}`).sort();
  assert.equal(psAfter, psBefore);
  assert.is(JSON.parse(await c.ok(['inspect', id]))[0].State.Pid, pid, 'the running container was restarted');
  await c.ok(['rm', '-f', 'keeper', 'stopped']);
});

t.run();
