// Hostile messages from any NATS client: junk bytes on every subject kind, forged and
// malformed envelopes, 5,000 fuzzed desired events and 2,000 fuzzed API requests. Nothing
// crashes, nothing blocks what follows, nothing phantom enters the view, every rejection
// decodes, the agent's memory stays bounded, and both processes start again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import type { NatsConnection } from 'nats';
import { encode } from '@msgpack/msgpack';
import { Cluster, until, sleep } from './helpers/cluster.js';
import { SourceChain, decodeEvent } from '../shared/codec.js';
import { STREAM } from '../shared/subjects.js';

let c: Cluster;
let nc: NatsConnection;

// a seeded generator, so a failure can be replayed
let seed = 0x5eed;
const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
const int = (n: number) => Math.floor(rnd() * n);
const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
const pick = <T>(xs: T[]) => xs[int(xs.length)]!;

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function drained(): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await until(async () => {
    const i = await jsm.consumers.info(STREAM, `agent-${c.node}`);
    return i.num_pending === 0 && i.num_ack_pending === 0;
  }, 120000, 'the agent to process every message');
}

test.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  nc = await c.connect('tamper');
});
test.after(async () => { await nc?.close(); await c?.stop(); });

test('poison - junk on every subject kind and forged envelopes: both processes live, the next run works', async () => {
  const n = c.node;
  const junk = [new Uint8Array([0xc1]), bytes(3), new TextEncoder().encode('{"v":1}'), new Uint8Array(0)];
  const subjects = [`ev.node.${n}`, `ev.desired.${n}.${'a'.repeat(64)}`, `ev.desired.${n}.UPPER`, `ev.state.${n}.x`, 'ev.image.x', 'ev.cluster.x',
    `logs.${n}.x`, `agent.${n}.logs`, `agent.${n}.stats`, `agent.${n}.info`, `agent.${n}.constructor`, 'api.run', 'api.constructor', 'api.__proto__'];
  for (const s of subjects) for (const j of junk) nc.publish(s, j);
  // a desired event with an upper-case entity, and ids that do not decode again
  nc.publish(`ev.desired.${n}.abc`, encode({ v: 1, id: 'x\u0000', type: 'ContainerKillRequested', ts: 1, src: 'controller', srcSeq: 1, prev: '', entity: 'ABC', data: { signal: 'KILL', user: 'u' } }));
  // an event of another writer on the node's own subject (the chain head must skip it)
  const forged = new SourceChain('node:someone-else').next('NodeJoined', n, { hostname: 'h', cpus: 1, memory: 1, kernel: 'k', features: [], version: 'v' });
  nc.publish(`ev.node.${n}`, forged.bytes);
  nc.publish(`ev.node.${n}`, bytes(3)); // junk last on the node's subject
  await nc.flush();
  await drained();
  assert.is(c.agent().exitCode, null, 'agent alive');
  assert.is(c.controller().exitCode, null, 'controller alive');
  assert.match(await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'still here']), /still here/);
  // the agent starts again over that log (its chain head is behind junk and a foreign event)
  await c.killAgent();
  c.startAgent();
  await c.waitJoined();
  await c.restartController();
  assert.match(await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'after restart']), /after restart/);
});

test('poison - 5,000 fuzzed desired events: refused and logged, no phantom containers, agent RSS under 100 MB', async () => {
  const n = c.node;
  const chain = new SourceChain('controller');
  const valid = chain.next('ContainerRequested', 'b'.repeat(64), {
    node: n, user: 'fuzz', spec: { name: 'fz', image: 'busybox', imageDigest: `sha256:${'e'.repeat(64)}`, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'none', autoRemove: false },
  }).bytes;
  const mutate = (): Uint8Array => {
    const b = Uint8Array.from(valid);
    switch (int(4)) {
      case 0: for (let k = 0; k < 1 + int(8); k++) b[int(b.length)] = int(256); return b;
      case 1: return b.subarray(0, int(b.length));
      case 2: return bytes(int(200));
      default: return encode({ v: pick([1, 2, 'x', null]), id: pick(['', 'ok1', 'Z'.repeat(80)]), type: pick(['ContainerRequested', 'NodeJoined', 'Nope', 7]), ts: pick([1, -1, 'x']),
        src: pick(['controller', 'node:x', '']), srcSeq: pick([1, 0, 1e20]), prev: '', entity: pick(['b'.repeat(64), 'BAD', '__proto__', 'constructor']), data: pick([{}, null, [1], { node: n }]) });
    }
  };
  const before = (await (await nc.jetstreamManager()).streams.info(STREAM)).state.last_seq;
  for (let k = 0; k < 5000; k++) {
    nc.publish(`ev.desired.${n}.${int(3) ? `fz${k.toString(36)}` : 'b'.repeat(64)}`, mutate());
    if (k % 500 === 0) await nc.flush();
  }
  await nc.flush();
  await drained();
  assert.is(c.agent().exitCode, null, 'agent alive');
  const rss = rssMb(c.agent().pid!);
  assert.ok(rss < 100, `agent RSS ${rss.toFixed(1)} MB after the fuzz`);
  // every rejection the agent wrote decodes again
  const js = nc.jetstream();
  const cons = await js.consumers.get(STREAM, { filterSubjects: `ev.state.${n}.>`, opt_start_seq: before + 1, deliver_policy: 'by_start_sequence' as never });
  let rejections = 0;
  for (;;) {
    const m = await cons.next({ expires: 2000 });
    if (!m) break;
    const e = decodeEvent(m.data);
    if (e.type === 'EventRejected') rejections++;
    if (m.info.pending === 0) break;
  }
  assert.ok(rejections >= 4500, `${rejections} rejections logged`);
  // nothing the agent refused shows as a container that exists
  const ps = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { name: string; state: string }[];
  assert.equal(ps.filter((x) => x.state === 'created' || x.state === 'running'), [], 'no phantom containers');
  assert.match(await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'ok']), /ok/);
});

test('poison - the log is bounded: messages at most 1 MiB, the oldest dropped past max bytes, no age limit', async () => {
  const cfg = (await (await nc.jetstreamManager()).streams.info(STREAM)).config;
  assert.is(cfg.max_msg_size, 1024 * 1024);
  assert.is(cfg.max_bytes, 8 * 1024 ** 3);
  assert.is(cfg.discard, 'old');
  assert.is(cfg.max_age, 0);
});

test('poison - 2,000 fuzzed API requests: each answered with a coded error or a result, the controller stays up', async () => {
  const verbs = ['run', 'ps', 'inspect', 'stop', 'kill', 'rm', 'update', 'nodes', 'node.rm', 'image.import', 'image.rm', 'network.create', 'network.rm', 'network.inspect', 'service.create', 'service.scale', 'service.rm', 'service.ps',
    'constructor', '__proto__', 'toString', 'valueOf', 'x'.repeat(300), '*'];
  const bodies = () => pick<Uint8Array>([bytes(int(64)), new TextEncoder().encode(JSON.stringify(pick([null, 1, [], 'x', { ref: pick([1, null, 'zz', {}]) },
    { image: 'busybox', args: pick([['true'], 'x', [1]]), resources: pick([{ memory: -5 }, { cpus: 'all' }, {}]) }, { name: pick(['', 'a/b', 'constructor']), subnet: pick(['1.2.3.4/40', 'x']) }])))]);
  let answered = 0, errors = 0;
  for (let k = 0; k < 2000; k++) {
    const v = pick(verbs);
    try {
      const m = await nc.request(`api.tamper.${v}`, bodies(), { timeout: 5000 });
      const r = JSON.parse(new TextDecoder().decode(m.data)) as { ok?: unknown; error?: string; code?: string };
      answered++;
      if (r.error !== undefined) { errors++; assert.ok(['invalid', 'not_found', 'conflict', 'timeout', 'unavailable', 'internal'].includes(r.code!), r.code); assert.not.match(r.error, /\n/); }
    } catch (err) { assert.unreachable(`api.${v} got no answer: ${(err as Error).message}`); }
  }
  assert.is(answered, 2000);
  assert.ok(errors > 1500, `${errors} errors`);
  assert.is(c.controller().exitCode, null, 'controller alive');
  await sleep(100);
  assert.match(await c.ok(['ps']), /CONTAINER ID/);
});

test.run();
