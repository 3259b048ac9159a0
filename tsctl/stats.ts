// tsctl stats: live resource usage like `docker stats`. The controller says which
// containers run where (api.ps); each node's agent samples their cgroup counters
// (agent.<node>.stats); CPU % is the CPU time used between two samples over the wall time
// between them (100% = one CPU busy, as docker shows it).
import type { NatsConnection } from 'nats';
import { api, agent, pages, CliError } from './client.js';
import { table, bytes } from './format.js';
import { controllerApi } from '../shared/api/controller.js';
import { agentApi, type ContainerSample } from '../shared/api/agent.js';
import type { ContainerView } from '../shared/reducer.js';

export interface StatsOpts { noStream?: boolean; format?: string }

/** One row of output; `--format json` prints an array of these per refresh. */
export interface StatsRow {
  id: string; name: string; node: string;
  cpuPercent: number; cpuUsageNs: number; ts: number;
  memoryUsage: number; memoryLimit: number; memoryPercent: number;
  pids: number; running: boolean;
}

export const INTERVAL_MS = 1000;
const AGENT_TIMEOUT_MS = 3000;

/** Pure: docker's CPU %: CPU ns used between two samples per wall ns between them, × 100. */
export function cpuPercent(prev: Pick<ContainerSample, 'cpuUsageNs' | 'ts'> | undefined, cur: Pick<ContainerSample, 'cpuUsageNs' | 'ts'>): number {
  if (!prev) return 0;
  const wallNs = (cur.ts - prev.ts) * 1e6;
  const used = cur.cpuUsageNs - prev.cpuUsageNs;
  if (!(wallNs > 0) || used < 0) return 0;
  return (used / wallNs) * 100;
}

/** Pure: a sample (and the one before it, if any) as an output row. */
export function toRow(node: string, s: ContainerSample, prev?: ContainerSample): StatsRow {
  return {
    id: s.id, name: s.name, node,
    cpuPercent: round2(cpuPercent(prev, s)), cpuUsageNs: s.cpuUsageNs, ts: s.ts,
    memoryUsage: s.memoryUsage, memoryLimit: s.memoryLimit,
    memoryPercent: s.memoryLimit > 0 ? round2((s.memoryUsage / s.memoryLimit) * 100) : 0,
    pids: s.pids, running: true,
  };
}

/** Pure: the table docker stats prints. */
export function render(rows: StatsRow[]): string {
  return table(['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'PIDS'],
    rows.map((r) => [r.id.slice(0, 12), r.name, `${r.cpuPercent.toFixed(2)}%`, `${bytes(r.memoryUsage)} / ${bytes(r.memoryLimit)}`, `${r.memoryPercent.toFixed(2)}%`, String(r.pids)]));
}

const round2 = (n: number) => Math.round(n * 100) / 100;

export async function stats(nc: () => Promise<NatsConnection>, refs: string[], o: StatsOpts): Promise<void> {
  if (o.format !== undefined && o.format !== 'json' && o.format !== 'table') throw new CliError(`invalid --format "${o.format}": json or table`);
  const c = await nc();
  // names and id prefixes resolve once, through the controller's own matching
  const named: ContainerView[] = [];
  for (const ref of refs) named.push(await api(c, controllerApi.inspect, { ref }));
  const only = refs.length ? new Set(named.map((n) => n.id)) : undefined;

  const warned = new Set<string>();
  const prev = new Map<string, ContainerSample>();
  const sample = async (): Promise<StatsRow[]> => {
    const list = await pages(c, controllerApi.ps, { all: only !== undefined });
    const mine = only ? list.filter((v) => only.has(v.id)) : list;
    const byNode = new Map<string, ContainerView[]>();
    for (const v of mine) if (v.state === 'running') byNode.set(v.node, [...(byNode.get(v.node) ?? []), v]);
    const replies = await Promise.all([...byNode].map(async ([node, vs]) => {
      try {
        return await agent(c, node, agentApi.stats, { ids: vs.map((v) => v.id) }, AGENT_TIMEOUT_MS);
      } catch (err) {
        if (!warned.has(node)) process.stderr.write(`tsctl: no stats from node ${node}: ${(err as Error).message}\n`);
        warned.add(node);
        return undefined;
      }
    }));
    const got = new Map<string, StatsRow>();
    for (const r of replies) {
      for (const s of r?.containers ?? []) {
        got.set(s.id, toRow(r!.node, s, prev.get(s.id)));
        prev.set(s.id, s);
      }
    }
    // in the controller's order (newest first); a named container that is not running shows zeros, like docker
    return mine.flatMap((v) => got.get(v.id) ?? (only ? [{
      id: v.id, name: v.name, node: v.node, cpuPercent: 0, cpuUsageNs: 0, ts: Date.now(),
      memoryUsage: 0, memoryLimit: 0, memoryPercent: 0, pids: 0, running: false,
    }] : []));
  };

  let stopped = false;
  let wake: () => void = () => undefined;
  const onSignal = () => { stopped = true; wake(); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // CPU % needs two samples: the first only primes `prev`
    await sample();
    for (;;) {
      await new Promise<void>((res) => { wake = res; setTimeout(res, INTERVAL_MS); });
      if (stopped) return;
      const rows = await sample();
      if (o.format === 'json') process.stdout.write(`${JSON.stringify(rows)}\n`);
      else process.stdout.write(`${o.noStream ? '' : '\x1b[2J\x1b[H'}${render(rows)}\n`);
      if (o.noStream || stopped) return;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
