// What the health tests look at: a container's inspect and State.Health through tsctl, its
// ContainerHealthChanged events in the log, and its processes as the host sees them.
import { readdirSync, readFileSync } from 'node:fs';
import { until, type Cluster } from './cluster.js';

export type Health = { Status: string; FailingStreak: number; Log: { Start: string; End: string; ExitCode: number; Output: string }[] };
export type Inspected = { Id: string; Config: { Healthcheck?: unknown }; State: { Health?: Health; StartedAt: string } };

export function healthOf(c: Cluster) {
  const inspect = async (name: string) => JSON.parse(await c.ok(['inspect', name]))[0] as Inspected;
  const health = async (name: string) => (await inspect(name)).State.Health;
  /** Waits until the container's status is `status`; its State.Health then. */
  const becomes = (name: string, status: string, ms = 30_000) => until(async () => { const h = await health(name); return h?.Status === status ? h : undefined; }, ms, `${name} ${status}`);
  /** The container's ContainerHealthChanged events in the log, in order. */
  const changes = async (id: string) => (await c.ok(['events', '--format', 'json', '--since', '1'])).trim().split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; entity: string; data: { status: string } }).filter((e) => e.type === 'ContainerHealthChanged' && e.entity === id);
  return { inspect, health, becomes, changes };
}

/** The host's processes of a container (its id in their cgroup paths): pid, state letter, command line. */
export function procsOf(id: string): { pid: number; state: string; cmd: string }[] {
  const out: { pid: number; state: string; cmd: string }[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (!readFileSync(`/proc/${d}/cgroup`, 'utf8').includes(id)) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      out.push({ pid: Number(d), state: stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').trim() });
    } catch { /* gone */ }
  }
  return out;
}
