// Checkpoint benchmark (not a test): the cost of one checkpoint write (a container event: its
// record and the event it promises) with 1k, 10k and 100k containers in the agent's memory.
//   before: the whole state rewritten as JSON, temp file + rename (lowdb over json-file.ts,
//           what the agent did per container event until the journal)
//   after:  one journal append (agent/pipeline/checkpoint.ts); compaction measured apart
//           (its total time, the longest event-loop block while it runs, and what it adds per
//           write spread over the writes between two compactions), and a restart (open)
//   node dist/test/bench/checkpoint.js [N,N,…]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { writeJsonAtomic } from '../../agent/json-file.js';
import { Checkpoint, type CheckpointData, type ContainerRecord, type PendingEvent } from '../../agent/pipeline/checkpoint.js';

const SIZES = (process.argv[2] ?? '1000,10000,100000').split(',').map(Number);

// containers ever run: one in ten still there (with its spec), the others tombstones
const record = (i: number): ContainerRecord => i % 10 ? { lastSeq: i * 3, requestId: `01J${String(i).padStart(23, '0')}`, reported: 'removed' } : ({
  lastSeq: i * 3, requestId: `01J${String(i).padStart(23, '0')}`, reported: 'running', pid: 10_000 + i,
  spec: {
    name: `web-${i}`, image: 'busybox', imageDigest: `sha256:${'ab'.repeat(32)}`, args: ['sleep', '1000'], env: ['PATH=/usr/bin:/bin', `N=${i}`],
    hostname: `web-${i}`, workdir: '/', network: 'bridge', autoRemove: false, resources: { cpus: 0.5, memory: 64 << 20 },
  },
});
const exited = (id: string, i: number): PendingEvent => ({
  id: `01K${String(i).padStart(23, '0')}`, type: 'ContainerExited', entity: id, cause: `01J${String(i).padStart(23, '0')}`,
  data: { exitCode: 0, oomKilled: false, exitedAt: 1_700_000_000_000 + i },
});

const stats = (ms: number[]) => {
  const s = [...ms].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { mean, p50: s[Math.floor(s.length / 2)], p99: s[Math.floor(s.length * 0.99)], max: s[s.length - 1] };
};
const f = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`);

function before(dir: string, n: number): ReturnType<typeof stats> {
  const data: CheckpointData = { containers: {}, seen: {}, pending: {} };
  for (let i = 0; i < n; i++) data.containers[`c${i}`] = record(i);
  const file = join(dir, 'checkpoint.json');
  const writes = Math.max(10, Math.min(200, Math.round(2e5 / n)));
  const ms: number[] = [];
  for (let w = 0; w < writes; w++) {
    const id = `c${(w * 7919) % n}`;
    const t0 = performance.now();
    data.containers[id] = { ...data.containers[id], reported: 'exited', lastSeq: n * 3 + w };
    data.pending![id] = [exited(id, w)];
    writeJsonAtomic(file, data);
    ms.push(performance.now() - t0);
  }
  return stats(ms);
}

async function after(dir: string, n: number) {
  const cpDir = join(dir, 'checkpoint');
  let cp = await Checkpoint.open(cpDir, { minCompactBytes: 1 << 30 }); // compactions only when asked, below
  for (let i = 0; i < n; i++) cp.set(`c${i}`, record(i));
  await cp.compact();
  cp.close();
  // a restart: snapshot + a journal as long as the minimum before a compaction
  cp = await Checkpoint.open(cpDir, { minCompactBytes: 1 << 30 });
  const writes = 5000;
  const ms: number[] = [];
  let journal = cp.files.journal;
  for (let w = 0; w < writes; w++) {
    const id = `c${(w * 7919) % n}`;
    const t0 = performance.now();
    cp.update(id, { reported: 'exited', lastSeq: n * 3 + w }, [exited(id, w)]); // the record and its promise
    ms.push(performance.now() - t0);
    cp.kept(id); // after the append: no write of its own
  }
  cp.flush();
  const perWrite = (cp.files.journal - journal) / writes;
  journal = cp.files.journal;
  // one compaction, while appends go on
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  const done = cp.compact();
  let during = 0;
  const tick = setInterval(() => { cp.update(`c${during % n}`, { lastSeq: n * 5 + during }); during++; }, 1);
  await done;
  clearInterval(tick);
  const compactMs = performance.now() - t0;
  h.disable();
  const snapshot = cp.files.snapshot;
  cp.close();
  const o0 = performance.now();
  const again = await Checkpoint.open(cpDir);
  const openMs = performance.now() - o0;
  again.close();
  // a compaction comes once the journal is as big as the snapshot (4 MiB at least)
  const between = Math.max(4 << 20, snapshot) / perWrite;
  return { write: stats(ms), perWrite, compactMs, blockMs: h.max / 1e6, during, snapshot, between, amortized: compactMs / between, openMs };
}

async function main(): Promise<void> {
  console.log(`swarmlite checkpoint benchmark, ${new Date().toISOString()}, node ${process.version}`);
  console.log('containers ever run (one in ten still there, the rest tombstones); a write = a record and the event it promises');
  console.log('containers | before: whole-file JSON write (mean / p99) | after: journal append (mean / p50 / p99 / max) | bytes/write | compaction (total, longest block, writes meanwhile) | amortized/write | restart (open)');
  for (const n of SIZES) {
    const dir = mkdtempSync(join(tmpdir(), 'swl-bench-ckpt-'));
    try {
      const b = before(dir, n);
      const a = await after(dir, n);
      console.log(`${String(n).padStart(9)} | ${f(b.mean)} / ${f(b.p99)} | ${f(a.write.mean)} / ${f(a.write.p50)} / ${f(a.write.p99)} / ${f(a.write.max)} | ${a.perWrite.toFixed(0)} B`
        + ` | ${f(a.compactMs)}, ${f(a.blockMs)}, ${a.during} | ${f(a.amortized)} (every ${Math.round(a.between)} writes, snapshot ${(a.snapshot / 2 ** 20).toFixed(1)} MiB) | ${f(a.openMs)}`);
      console.log(`${' '.repeat(9)} | per write: ${(b.mean / (a.write.mean + a.amortized)).toFixed(0)}× less with the journal (compaction included)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

main().catch((err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
