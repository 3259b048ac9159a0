// Cost of resource limits on the start path (not a test): median desired-event → running
// time (ContainerStarted data.runningAt - data.receivedAt) of N `tsctl run --rm busybox
// true` without limits and N with `--cpus 0.5 --memory 64m --pids-limit 100`, interleaved
// in one run on one cluster so drift hits both alike. Goal: limits add ≤ 2 ms.
//   node dist/test/bench/cgroups.js [N]
import { Cluster } from '../helpers/cluster.js';
import { nodeCgroups } from '../../agent/cgroups/node-cgroups.js';
import { removeNodeGroup } from '../../agent/cgroups/index.js';

const N = Number(process.argv[2] ?? 30);
const LIMITS = ['--cpus', '0.5', '--memory', '64m', '--pids-limit', '100'];
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const f = (ms: number) => `${ms.toFixed(2)} ms`;

type Ev = { type: string; entity: string; data: { spec?: { resources?: unknown }; runningAt?: number; receivedAt?: number } };

/** What the agent's nodeCgroups().create() costs by itself: directories in every hierarchy, then the writes. */
async function groupStep(): Promise<{ plain: number; limited: number; remove: number }> {
  const node = `bench-${process.pid}`;
  const cg = nodeCgroups(node);
  const plain: number[] = [], limited: number[] = [], remove: number[] = [];
  const res = { cpus: 0.5, memory: 64 * 1024 * 1024, pidsLimit: 100 };
  const time = async (xs: number[], f: () => Promise<unknown>) => { const t0 = performance.now(); await f(); xs.push(performance.now() - t0); };
  try {
    for (let i = 0; i < N; i++) {
      await time(plain, () => cg.create(`p${i}`, {}));
      await time(limited, () => cg.create(`l${i}`, res));
      await time(remove, () => cg.remove(`p${i}`));
      await cg.remove(`l${i}`);
    }
  } finally { removeNodeGroup(cg.detection, node); }
  return { plain: median(plain), limited: median(limited), remove: median(remove) };
}

async function main(): Promise<void> {
  const c = await Cluster.start();
  try {
    await c.importBusybox();
    // warm: layer unpacked, caches hot, both paths taken once
    for (const extra of [[], LIMITS, [], LIMITS]) await c.ok(['run', '--rm', '--network', 'none', ...extra, 'busybox', 'true']);
    const warm = 4;
    for (let i = 0; i < N; i++) {
      for (const extra of [[], LIMITS]) {
        const r = await c.tsctl(['run', '--rm', '--network', 'none', ...extra, 'busybox', 'true']);
        if (r.code !== 0) throw new Error(`run failed: ${r.stderr}`);
      }
    }
    const events = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l) as Ev);
    const limited = new Set(events.filter((e) => e.type === 'ContainerRequested' && e.data.spec?.resources).map((e) => e.entity));
    const started = events.filter((e) => e.type === 'ContainerStarted').slice(warm);
    const plain: number[] = [], withLimits: number[] = [];
    for (const e of started) (limited.has(e.entity) ? withLimits : plain).push(e.data.runningAt! - e.data.receivedAt!);
    if (plain.length !== N || withLimits.length !== N) throw new Error(`expected ${N} starts of each kind, got ${plain.length} and ${withLimits.length}`);
    const d = median(withLimits) - median(plain);
    console.log(`swarmlite cgroup-limits start benchmark, N=${N} each (interleaved), ${new Date().toISOString()}`);
    console.log(`desired event -> running, no limits     median ${f(median(plain))}  p90 ${f(pct(plain, 0.9))}`);
    console.log(`desired event -> running, with limits   median ${f(median(withLimits))}  p90 ${f(pct(withLimits, 0.9))}`);
    console.log(`limits add                              ${f(d)}  (goal <= 2 ms; limits: ${LIMITS.join(' ')})`);
    const g = await groupStep();
    console.log(`cgroup step alone (create + apply)      no limits median ${f(g.plain)}, with limits ${f(g.limited)}; remove ${f(g.remove)}`);
  } finally {
    await c.stop();
  }
}

main().catch((err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
