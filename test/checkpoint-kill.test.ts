// Fault injection for the checkpoint's journal: a process is SIGKILLed in the middle of an
// append (half a record written), right after a compaction rotated the segment, halfway
// through writing the snapshot, and after the snapshot's rename but before the old files
// are deleted. After each, a reopen has every change that was durable, nothing twice, and
// writing on finishes cleanly. Then the same with the real agent: killed mid-append and
// between its checkpoint write and the compaction, a container is reported exactly once.
import { suite } from 'uvu';
import { unless } from './helpers/skip.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { Checkpoint } from '../agent/pipeline/checkpoint.js';
import { ENTITIES, entity, eventId, keptLater, record, seenKey } from './helpers/checkpoint-writer.js';
import { AGENT_NODE_FLAGS, Cluster, until } from './helpers/cluster.js';
import { decodeRecords, MAGIC } from '../agent/pipeline/journal.js';
import { decodeEvent } from '../shared/codec.js';
import { readRaw } from '../shared/nats/log.js';

const t = suite('checkpoint-kill');
const WRITER = new URL('./helpers/checkpoint-writer.js', import.meta.url).pathname;

interface Run { acked: number; seen: number[]; done: boolean; signal: NodeJS.Signals | null; out: string }

function write(dir: string, from: number, to: number, env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [WRITER, dir, String(from), String(to)], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  const lines = r.stdout.split('\n');
  const ok = lines.filter((l) => l.startsWith('ok ')).map((l) => Number(l.slice(3)));
  return {
    acked: ok.length ? Math.max(...ok) : from - 1, seen: lines.filter((l) => l.startsWith('seen ')).map((l) => Number(l.slice(5))),
    done: lines.includes('done'), signal: r.signal, out: r.stdout.slice(-400) + r.stderr.slice(-400),
  };
}

/**
 * What a reopen must read when changes 1..acked were durable and change acked+1 may or may not
 * have been written whole: returns where a writer carries on (after the last change present).
 */
async function check(dir: string, acked: number, seen: number[]): Promise<number> {
  const cp = await Checkpoint.open(dir, { warn: () => undefined });
  try {
    const next = acked + 1;
    const nextWritten = cp.get(entity(next))?.lastSeq === next;
    const last = nextWritten ? next : acked;
    for (let e = 0; e < ENTITIES; e++) {
      const id = `c${e}`;
      let want = 0;
      for (let i = last; i >= 1; i--) if (entity(i) === id) { want = i; break; }
      const rec = cp.get(id);
      if (!want) { assert.is(rec, undefined, `${id} never written`); continue; }
      assert.equal(rec, record(want), `${id}'s record is change ${want}'s, whole`);
      const ids = (cp.pending().find(([k]) => k === id)?.[1] ?? []).map((p) => p.id);
      assert.is(new Set(ids).size, ids.length, `${id}: no promised event twice (${ids.join(',')})`);
      const nums = ids.map((x) => Number(x.slice(2)));
      assert.equal(nums, [...nums].sort((a, b) => a - b), `${id}: promised events in order`);
      for (let i = 1; i <= last; i++) {
        if (entity(i) === id && !keptLater(i)) assert.ok(ids.includes(eventId(i)), `${id}: ${eventId(i)} still promised`);
      }
      assert.ok(nums.every((n) => n <= last && entity(n) === id), `${id}: only its own durable promises`);
    }
    for (const s of seen) assert.ok(cp.seen(seenKey(s)) >= s, `position ${s} of ${seenKey(s)} kept`);
    return last + 1;
  } finally {
    cp.close();
  }
}

const cases: [string, Record<string, string>][] = [
  ['checkpoint:torn-append', { SWARMLITE_CHECKPOINT_COMPACT_BYTES: String(1 << 30) }],
  ['checkpoint:after-rotate', { SWARMLITE_CHECKPOINT_COMPACT_BYTES: String(32 << 10) }],
  ['checkpoint:mid-snapshot', { SWARMLITE_CHECKPOINT_COMPACT_BYTES: String(32 << 10) }],
  ['checkpoint:after-snapshot', { SWARMLITE_CHECKPOINT_COMPACT_BYTES: String(32 << 10) }],
];

for (const [fp, env] of cases) {
  t(`checkpoint kill - ${fp}: the restart loses nothing durable and duplicates nothing`, async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'swl-ckpt-kill-')), 'checkpoint');
    try {
      // a history first (compacted at least once in the compaction cases), then the killed run
      const a = write(dir, 1, 1500, env);
      assert.ok(a.done, a.out);
      let from = await check(dir, a.acked, a.seen);
      const b = write(dir, from, 3000, { ...env, SWARMLITE_FAILPOINTS: fp });
      assert.is(b.signal, 'SIGKILL', `killed at ${fp}: ${b.out}`);
      assert.ok(b.acked < 3000, `died before the end (acked ${b.acked})`);
      from = await check(dir, b.acked, [...a.seen, ...b.seen]);
      // and it goes on: the rest written, a compaction finished, everything read back
      const c = write(dir, from, 4000, env);
      assert.ok(c.done, c.out);
      await check(dir, 4000, [...a.seen, ...b.seen, ...c.seen]);
      if (fp !== 'checkpoint:torn-append') assert.ok(readdirSync(dir).some((f) => f.startsWith('snapshot.')), 'compacted');
      assert.not.ok(readdirSync(dir).some((f) => f.endsWith('.tmp')), 'no temp file left');
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  });
}

// ---- the real agent -------------------------------------------------------------------

let c: Cluster | undefined;
let nc: NatsConnection | undefined;
const root = process.getuid?.() === 0;

async function stateEvents(id: string): Promise<string[]> {
  const out: string[] = [];
  for await (const m of readRaw(nc!, `ev.state.${c!.node}.${id}`)) out.push(decodeEvent(m.data).type);
  return out;
}

async function crashAt<T>(env: Record<string, string>, act: () => Promise<T>, after: Record<string, string> = {}): Promise<T> {
  await c!.killAgent();
  const armed = c!.startAgent(env);
  await c!.waitJoined();
  const result = act();
  // generous: the armed agent starts, adopts, takes the request and reaches the failpoint on a busy CI machine
  await until(() => armed.exitCode !== null || armed.signalCode !== null, 90000, `the agent to die at ${env.SWARMLITE_FAILPOINTS}`);
  assert.is(armed.signalCode, 'SIGKILL', `killed at ${env.SWARMLITE_FAILPOINTS}`);
  c!.startAgent(after);
  return result;
}

const agentCase = (name: string, f: () => Promise<void>) => unless(t, root ? undefined : 'needs root (containers, namespaces)')(name, async () => {
  c ??= await Cluster.start();
  if (!nc) { await c.importBusybox(); nc = await c.connect(); }
  await f();
});

agentCase('checkpoint kill - agent killed halfway through writing ContainerStarted\'s record: started exactly once', async () => {
  const r = await crashAt({ SWARMLITE_FAILPOINTS: 'checkpoint:torn-append' }, () => c!.tsctl(['run', '-d', '--network', 'none', '--name', 'j1', 'busybox', 'sleep', '300']));
  assert.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.equal(await stateEvents(id), ['ContainerStarted']);
  assert.is(JSON.parse(await c!.ok(['inspect', 'j1']))[0].State.Status, 'running');
  await c!.ok(['rm', '-f', 'j1']);
  assert.equal(await stateEvents(id), ['ContainerStarted', 'ContainerExited', 'ContainerRemoved']);
});

agentCase('checkpoint kill - agent killed between its checkpoint write and the compaction it started: each event once', async () => {
  const small = { SWARMLITE_CHECKPOINT_COMPACT_BYTES: '1' }; // every write compacts
  const r = await crashAt({ ...small, SWARMLITE_FAILPOINTS: 'checkpoint:after-rotate' },
    () => c!.tsctl(['run', '-d', '--network', 'none', '--name', 'j2', 'busybox', 'sleep', '300']), small);
  assert.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.equal(await stateEvents(id), ['ContainerStarted']);
  // the next kill lands while the snapshot is half written, after the stop's record
  const s = await crashAt({ ...small, SWARMLITE_FAILPOINTS: 'checkpoint:mid-snapshot' }, () => c!.tsctl(['stop', '-t', '1', 'j2']), small);
  assert.is(s.code, 0, s.stderr);
  await until(async () => JSON.parse(await c!.ok(['inspect', 'j2']))[0].State.Status === 'exited', 10000, 'j2 exited');
  await c!.ok(['rm', 'j2']);
  await until(async () => !(await c!.ok(['ps', '-a'])).includes('j2'), 10000, 'j2 removed');
  assert.equal(await stateEvents(id), ['ContainerStarted', 'ContainerExited', 'ContainerRemoved']);
  const files = readdirSync(join(c!.dir, 'nodes', c!.node, 'checkpoint'));
  assert.ok(files.some((f) => f.startsWith('snapshot.')), `compacted: ${files.join(' ')}`);
});

agentCase('checkpoint kill - junk in the journal: the agent stops with one line and touches nothing; restored, it adopts', async () => {
  await c!.killAgent();
  c!.startAgent(); // the default compaction size: the segment keeps its records
  const id = (await c!.ok(['run', '-d', '--network', 'none', '--name', 'j3', 'busybox', 'sleep', '300'])).trim();
  let pid = 0;
  for await (const m of readRaw(nc!, `ev.state.${c!.node}.${id}`)) { const e = decodeEvent(m.data); if (e.type === 'ContainerStarted') pid = e.data.pid; }
  assert.ok(pid > 0);
  await c!.killAgent();
  const dir = join(c!.dir, 'nodes', c!.node, 'checkpoint');
  const seg = readdirSync(dir).filter((f) => f.startsWith('journal.')).sort((a, b) => Number(a.slice(8)) - Number(b.slice(8))).at(-1)!;
  const good = readFileSync(join(dir, seg));
  assert.ok(decodeRecords(good, seg).records.length >= 1, 'the segment has records');
  const junk = Buffer.concat([good.subarray(0, MAGIC.length), Buffer.alloc(16, 0xab), good.subarray(MAGIC.length)]);
  writeFileSync(join(dir, seg), junk);
  const args = [...AGENT_NODE_FLAGS, new URL('../agent/main.js', import.meta.url).pathname, '--nats', c!.url, '--state-dir', c!.dir, '--node', c!.node, ...(c!.subnet ? ['--subnet', c!.subnet] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0], new RegExp(`^agent: checkpoint ${join(dir, seg)}: a record of \\d+ bytes \\(damaged\\) at byte 8; the agent does not act on a damaged memory`));
  assert.equal(readFileSync(join(dir, seg)), junk, 'the file is left for the operator');
  assert.not.throws(() => process.kill(pid, 0), 'the container still runs');
  // the operator restores the file: the agent adopts the container and goes on
  writeFileSync(join(dir, seg), good);
  c!.startAgent();
  await c!.ok(['rm', '-f', 'j3']);
  assert.equal(await stateEvents(id), ['ContainerStarted', 'ContainerExited', 'ContainerRemoved']);
});

t.after(async () => { await nc?.close(); await c?.stop(); });

t.run();
