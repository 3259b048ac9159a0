// Health checks of this node's running containers (docker's HEALTHCHECK / --health-*): each
// probe is an exec into the container through the container host (sl-monitor joins its
// namespaces and cgroups, with the container's confinement), at the check's interval, killed
// with everything it started when it outlives its timeout. The state machine is shared/health.ts;
// here are the timers and the process. Only a change of status is an event
// (ContainerHealthChanged, promised in the checkpoint with the state it leads to), so a
// restarted agent picks up each running container's state from its record and goes on probing.
// Probes run off the start path: they start after the container's ContainerStarted is recorded.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { newId } from '../shared/codec.js';
import type { Appender } from '../shared/nats/log.js';
import { subjects } from '../shared/subjects.js';
import { applyProbe, checks, formatNs, healthTiming, HEALTH_OUTPUT_MAX, initialHealth, nextProbeIn, probeArgs, truncateOutput,
  type Healthcheck, type HealthProbe, type HealthState, type HealthTiming } from '../shared/health.js';
import { FRAME_HEADER } from './runtime/logfile.js';
import { failpoint } from './failpoints.js';
import { processStartTime } from './runtime/runtime.js';
import { ContainerError, type ContainerHost } from './host/container-host.js';
import type { Checkpoint, ContainerRecord } from './pipeline/checkpoint.js';

/** A probe's exec id: the runtime's id shape, apart from tsctl exec's 64-hex ids (Execs.adopt leaves these alone). */
export const HEALTH_EXEC_PREFIX = 'health-';
export const isHealthExec = (execId: string) => execId.startsWith(HEALTH_EXEC_PREFIX);
/** How often the running containers are looked over for checks to start or stop. */
const SYNC_MS = 1000;
/** After a timeout's kill, how long the monitor gets to record the end before the probe gives up on it. */
const KILL_GRACE_MS = 5000;

export interface HealthDeps {
  node: string;
  host: Pick<ContainerHost, 'exec' | 'waitExecExit' | 'execLogPath' | 'deleteExec' | 'execIds' | 'execStatus' | 'status'>;
  checkpoint: Pick<Checkpoint, 'all' | 'get' | 'update' | 'kept'>;
  log: Pick<Appender, 'append'>;
  /** The container's processes (host pids): a timed-out probe's descendants are found among them. */
  pids: (id: string) => number[];
  /** Whether the container is frozen (tsctl pause): no probe runs then, and none counts (docker). */
  frozen: (id: string) => boolean;
}

interface Probing { runningAt: number; check: Healthcheck; timing: HealthTiming; state: HealthState; timer?: NodeJS.Timeout; stopped: boolean }

export class HealthChecks {
  private probing = new Map<string, Probing>();
  private ticker?: NodeJS.Timeout;

  constructor(private d: HealthDeps) {}

  /** Clears what probes a dead agent left (killed, forgotten), then looks at the containers every second. */
  start(): void {
    for (const [id, r] of this.d.checkpoint.all()) if (r.reported === 'running') this.sweep(id);
    this.sync();
    this.ticker = setInterval(() => this.sync(), SYNC_MS);
    this.ticker.unref();
  }

  stop(): void {
    if (this.ticker) clearInterval(this.ticker);
    for (const p of this.probing.values()) this.end(p);
    this.probing.clear();
  }

  /** Probing follows the checkpoint: each container reported running with a check, for its current run. */
  sync(): void {
    const want = new Set<string>();
    for (const [id, r] of this.d.checkpoint.all()) {
      if (r.reported !== 'running' || !checks(r.spec?.healthcheck) || !r.runningAt) continue;
      want.add(id);
      const p = this.probing.get(id);
      if (p && p.runningAt === r.runningAt) continue;
      if (p) this.end(p);
      this.begin(id, r);
    }
    for (const [id, p] of this.probing) if (!want.has(id)) { this.end(p); this.probing.delete(id); }
  }

  private begin(id: string, r: ContainerRecord): void {
    const check = r.spec!.healthcheck!;
    const runningAt = r.runningAt!;
    // a restarted agent goes on from what it last reported of this run; a new run starts again
    const kept = r.health && r.health.runningAt === runningAt ? { status: r.health.status, failingStreak: r.health.failingStreak, log: [] } : initialHealth();
    const p: Probing = { runningAt, check, timing: healthTiming(check), state: kept, stopped: false };
    this.probing.set(id, p);
    this.schedule(id, p, nextProbeIn(p.state, p.timing, runningAt, Date.now()));
  }

  private end(p: Probing): void {
    p.stopped = true;
    if (p.timer) clearTimeout(p.timer);
  }

  private schedule(id: string, p: Probing, ms: number): void {
    if (p.stopped) return;
    p.timer = setTimeout(() => {
      void this.round(id, p).catch((err) => console.error(`agent: health ${id.slice(0, 12)}: ${(err as Error).message}`))
        .finally(() => this.schedule(id, p, nextProbeIn(p.state, p.timing, p.runningAt, Date.now())));
    }, ms);
    p.timer.unref();
  }

  private async round(id: string, p: Probing): Promise<void> {
    const probe = await this.probe(id, p);
    // the container stopped (or this run ended) while it ran: not a result about this run
    const r = this.d.checkpoint.get(id);
    if (!probe || p.stopped || r?.reported !== 'running' || r.runningAt !== p.runningAt) return;
    const { state, changed } = applyProbe(p.state, probe, p.timing, p.runningAt);
    p.state = state;
    if (!changed) return;
    const data = { status: state.status, failingStreak: state.failingStreak, runningAt: p.runningAt, log: state.log };
    const e = { type: 'ContainerHealthChanged' as const, entity: id, data, cause: r.requestId, id: newId() };
    // the record and the promise in one write: a crash before the append appends it at the next start
    this.d.checkpoint.update(id, { health: { status: state.status, failingStreak: state.failingStreak, runningAt: p.runningAt } }, [e]);
    failpoint('health:after-checkpoint');
    await this.d.log.append(subjects.state(this.d.node, id), e.type, id, e.data, e.cause, e.id);
    // only this promise: the pipeline may have one of its own for the container in flight
    this.d.checkpoint.kept(id, [e.id]);
  }

  /** One probe: undefined when the container was not running for it (nothing to count). */
  private async probe(id: string, p: Probing): Promise<HealthProbe | undefined> {
    if (this.frozen(id)) return undefined;
    const start = Date.now();
    const execId = `${HEALTH_EXEC_PREFIX}${randomBytes(12).toString('hex')}`;
    let pid: number;
    let rootStart: number | undefined;
    try {
      ({ pid } = await this.d.host.exec(id, execId, { args: probeArgs(p.check) }));
      rootStart = processStartTime(pid);
      failpoint('health:probing');
    } catch (err) {
      this.forget(id, execId);
      if (this.d.host.status(id).state !== 'running' || this.frozen(id)) return undefined;
      // the check could not run (no such command, not executable): a failure with docker's code and one line
      const code = err instanceof ContainerError ? err.exitCode : 125;
      return { start, end: Date.now(), exitCode: code, output: oneLine((err as Error).message) };
    }
    let timedOut = false;
    const ac = new AbortController();
    const killer = setTimeout(() => {
      timedOut = true;
      killTree(pid, this.d.pids(id), rootStart);
      // a monitor that cannot record the end does not hold the probe: it is given up on
      setTimeout(() => ac.abort(new Error('the probe\'s end was not recorded')), KILL_GRACE_MS).unref();
    }, p.timing.timeoutMs);
    let exitCode = -1;
    try {
      exitCode = (await this.d.host.waitExecExit(id, execId, ac.signal)).code;
    } catch { /* the container went with it, or the monitor was lost */ }
    clearTimeout(killer);
    const end = Date.now();
    const output = timedOut ? `Health check exceeded timeout (${formatNs(p.timing.timeoutMs * 1e6)})` : await readHead(this.d.host.execLogPath(id, execId));
    this.forget(id, execId);
    // frozen under it (a pause) or stopped: not this check's failure
    if (this.frozen(id) || (!timedOut && this.d.host.status(id).state !== 'running')) return undefined;
    return { start, end, exitCode: timedOut ? -1 : Math.max(-1, Math.min(255, exitCode)), output };
  }

  /** Frozen, as far as its cgroup says (a container gone has none: not frozen). */
  private frozen(id: string): boolean {
    try { return this.d.frozen(id); } catch { return false; }
  }

  private forget(id: string, execId: string): void {
    try { this.d.host.deleteExec(id, execId); } catch { /* gone with its container */ }
  }

  /** A probe a dead agent left in container `id`: killed if it still runs, its files removed. */
  private sweep(id: string): void {
    let ids: string[];
    try { ids = this.d.host.execIds(id).filter(isHealthExec); } catch { return; }
    for (const execId of ids) {
      let running = false;
      try {
        const st = this.d.host.execStatus(id, execId);
        running = st.state === 'running';
        if (running && st.pid) killTree(st.pid, this.d.pids(id));
      } catch { /* nothing left to kill */ }
      if (!running) { this.forget(id, execId); continue; }
      // forgotten once its monitor has recorded the end (the root goes after its children)
      void this.d.host.waitExecExit(id, execId, AbortSignal.timeout(KILL_GRACE_MS)).then(() => this.forget(id, execId), () => {
        if (this.d.host.execStatus(id, execId).state !== 'running') this.forget(id, execId);
        else console.error(`agent: health ${id.slice(0, 12)}: a probe a dead agent left did not end when killed (${execId})`);
      });
    }
  }
}

/** Up to HEALTH_OUTPUT_MAX bytes of a probe's output (stdout and stderr as written), read frame by frame: a check that prints megabytes costs 4 KiB here. */
export async function readHead(path: string, max = HEALTH_OUTPUT_MAX): Promise<string> {
  let fh;
  try { fh = await open(path, 'r'); } catch { return ''; }
  try {
    const parts: Buffer[] = [];
    let got = 0, off = 0;
    const head = Buffer.alloc(FRAME_HEADER);
    while (got <= max) {
      if ((await fh.read(head, 0, FRAME_HEADER, off)).bytesRead < FRAME_HEADER) break;
      const len = head.readUInt32LE(1);
      const take = Math.min(len, max + 1 - got);
      const b = Buffer.alloc(take);
      const n = (await fh.read(b, 0, take, off + FRAME_HEADER)).bytesRead;
      parts.push(b.subarray(0, n));
      got += n;
      if (n < take) break;
      off += FRAME_HEADER + len;
    }
    return truncateOutput(Buffer.concat(parts));
  } finally { await fh.close(); }
}

/** The first line of a message, bounded: what a probe that could not run shows. */
const oneLine = (s: string) => s.split('\n', 1)[0]!.slice(0, 512);

/**
 * SIGKILLs every process of the container that descends from `pid`, deepest first, and then,
 * after ROOT_GRACE_MS, `pid` itself if it has not ended: a shell still alive reaps the children
 * it waits for, so they are not left as zombies to the container's init, which may not reap.
 * Pids are checked by start time between the look and the kill.
 */
export function killTree(pid: number, containerPids: number[], rootStart = processStartTime(pid)): void {
  const parent = new Map<number, number>();
  const started = new Map<number, number | undefined>();
  for (const p of containerPids) {
    const pp = ppidOf(p);
    if (pp !== undefined) { parent.set(p, pp); started.set(p, processStartTime(p)); }
  }
  const depth = (p: number): number => {
    let d = 0;
    for (let x = p; x !== pid; d++) { const up = parent.get(x); if (up === undefined || d > 64) return -1; x = up; }
    return d;
  };
  const below = containerPids.map((p) => [p, depth(p)] as const).filter(([p, d]) => d > 0 && p !== pid).sort((a, b) => b[1] - a[1]);
  for (const [p] of below) {
    if (processStartTime(p) !== started.get(p)) continue;
    try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  }
  const root = () => {
    if (rootStart === undefined || processStartTime(pid) !== rootStart) return;
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  };
  if (below.length) setTimeout(root, ROOT_GRACE_MS).unref(); else root();
}

/** How long a probe's process gets to reap its killed children and end before it is killed too. */
const ROOT_GRACE_MS = 200;

function ppidOf(pid: number): number | undefined {
  try {
    // sync on purpose: a timeout's kill is rare and must see one moment of the tree
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[1]);
    return Number.isFinite(v) ? v : undefined;
  } catch { return undefined; }
}
