// Removal benchmark (not a test): 100 running bridge-mode containers removed by one
// `tsctl rm -f` from one client, wall time of that command. Goal (issue 10): ≤ 1 s. Also
// the agent's event-loop stall while that happens (a start is not held up by removals).
//   node dist/test/bench/remove.js [N]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Cluster, ROOT } from '../helpers/cluster.js';

/** CPU time (user + system, ms) a process has used: on a loaded host a steadier measure than wall time. */
function cpuMs(pid: number): number {
  const [u, s] = cpuSplit(pid);
  return u + s;
}

/** [user, system] CPU ms of a process (its threads included: the thread pool's syscalls are system time). */
function cpuSplit(pid: number): [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(f[11]) * 10, Number(f[12]) * 10]; // utime, stime in clock ticks (100 Hz)
}

/** CPU ms of this process's waited-for children (the tsctl commands it ran). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * 10; // cutime, cstime
}

/**
 * The warm tsctl processes this tree's tsctl started (bin/tsctl.cjs serving, tsctl/warm.ts): a
 * call they serve spends its CPU there, not in the command's process, so the CPU a command
 * costs is the two together.
 */
function warmPids(): number[] {
  const launcher = join(ROOT, 'bin/tsctl.cjs');
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').some((e) => e.startsWith('TSCTL_WARM_SERVE=')) &&
        readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(launcher);
    } catch { return false; }
  }).map(Number);
}
const warmCpuMs = (pids: number[]): number => pids.reduce((sum, p) => { try { return sum + cpuMs(p); } catch { return sum; } }, 0);

const N = Number(process.argv[2] ?? 100);

async function main(): Promise<void> {
  const c = await Cluster.start();
  try {
    await c.importBusybox();
    const names = Array.from({ length: N }, (_, i) => `rm${i}`);
    // started 8 at a time: the point is the removal, not the starts
    for (let i = 0; i < N; i += 8) {
      await Promise.all(names.slice(i, i + 8).map((n) => c.ok(['run', '-d', '--name', n, 'busybox', 'sleep', '1000'])));
    }
    const running = JSON.parse(await c.ok(['ps', '--format', 'json'])) as unknown[];
    if (running.length !== N) throw new Error(`${running.length} of ${N} running`);
    // a start while the removals run: how long it takes, against one on a quiet agent
    const quiet = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'true']);
    const agentPid = c.agent().pid!;
    const cpu0 = cpuMs(agentPid);
    const [u0, s0] = cpuSplit(agentPid);
    const ctlPid = c.controller().pid!;
    const ctl0 = cpuMs(ctlPid);
    // SWARMLITE_BENCH_STRACE=FILE: the agent's syscalls during the removals, counted by strace -c
    // (a count, unlike a time, does not swing with the machine's load; the figures below do, under it)
    const trace = process.env.SWARMLITE_BENCH_STRACE;
    const strace = trace ? spawn('strace', [...(process.env.SWARMLITE_BENCH_STRACE_FULL ? ['-tt', '-T', '-yy'] : ['-c']), '-f', '-o', trace, '-p', String(agentPid)], { stdio: 'ignore' }) : undefined;
    if (strace) await new Promise((r) => setTimeout(r, 1000)); // attached to every thread
    // SWARMLITE_BENCH_PERF=FILE: perf record -g of the agent (its threads and the kernel's share) during them
    const perfOut = process.env.SWARMLITE_BENCH_PERF;
    const perf = perfOut ? spawn('perf', ['record', '-g', '-F', '2000', '-o', perfOut, '-p', String(agentPid)], { stdio: 'ignore' }) : undefined;
    if (perf) await new Promise((r) => setTimeout(r, 500));
    const natsPid = c.natsServer().pid;
    const nats0 = natsPid ? cpuMs(natsPid) : 0;
    const warm = warmPids();
    const warm0 = warmCpuMs(warm);
    const kids0 = childrenCpuMs();
    const wall0 = Date.now();
    const t0 = performance.now();
    // SWARMLITE_BENCH_TSCTL_NODE_OPTIONS: node flags for the rm -f command alone (e.g. --cpu-prof --cpu-prof-dir=DIR)
    const rmEnv = process.env.SWARMLITE_BENCH_TSCTL_NODE_OPTIONS ? { NODE_OPTIONS: process.env.SWARMLITE_BENCH_TSCTL_NODE_OPTIONS } : undefined;
    const rm = c.tsctl(['rm', '-f', ...names], { timeout: 120_000, ...(rmEnv ? { env: rmEnv } : {}) });
    await new Promise((r) => setTimeout(r, 150));
    const during = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'true']);
    const kidsMid = childrenCpuMs(); // the run's exit is reaped, the rm's not yet (it ends later)
    const r = await rm;
    const rmCpu = childrenCpuMs() - kidsMid;
    const ms = performance.now() - t0;
    if (strace) { const done = new Promise((res) => strace.once('exit', res)); strace.kill('SIGINT'); await done; }
    if (perf) { const done = new Promise((res) => perf.once('exit', res)); perf.kill('SIGINT'); await done; }
    const warmCpu = warmCpuMs(warm) - warm0;
    const nats = natsPid ? cpuMs(natsPid) - nats0 : 0;
    const kids = childrenCpuMs() - kids0;
    const cpu = cpuMs(agentPid) - cpu0; // the removals and the one start made during them
    const [u1, s1] = cpuSplit(agentPid);
    const ctl = cpuMs(ctlPid) - ctl0;
    if (r.code !== 0) throw new Error(`rm -f exited ${r.code}: ${r.stderr}`);
    const left = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as unknown[];
    if (left.length !== 0) throw new Error(`${left.length} containers left`);
    console.log(`swarmlite removal benchmark, N=${N}, ${new Date().toISOString()}`);
    console.log(`tsctl rm -f of ${N} running bridge containers   ${ms.toFixed(0)} ms  (goal <= 1000 ms)`);
    console.log(`agent CPU during them (user + system)       ${cpu.toFixed(0)} ms  (user ${u1 - u0}, system ${s1 - s0})`);
    console.log(`controller CPU during them                  ${ctl.toFixed(0)} ms`);
    console.log(`nats-server CPU during them                 ${nats.toFixed(0)} ms`);
    console.log(`tsctl CPU (rm -f and the run during it)     ${kids.toFixed(0)} ms  (the rm -f ${rmCpu} ms)`);
    console.log(`warm tsctl CPU (what it served of them)     ${warmCpu.toFixed(0)} ms  (${warm.length} warm process${warm.length === 1 ? '' : 'es'})`);
    console.log(`tsctl run --rm busybox true: quiet ${quiet.ms.toFixed(0)} ms, during the removals ${during.ms.toFixed(0)} ms`);
    // SWARMLITE_BENCH_TIMELINE=1: when the requests, exits and removals reached the log (each event's
    // ts, ms after the command began): where removals wait (the controller's requests, the agent)
    if (process.env.SWARMLITE_BENCH_TIMELINE) {
      const lines = (await c.ok(['events', '--since', new Date(wall0).toISOString(), '--format', 'json'])).split('\n').filter(Boolean);
      const at = new Map<string, number[]>();
      for (const l of lines) {
        const e = JSON.parse(l) as { type: string; ts: number };
        const list = at.get(e.type) ?? [];
        list.push(e.ts - wall0);
        at.set(e.type, list);
      }
      const q = (xs: number[], f: number) => xs[Math.min(xs.length - 1, Math.floor(f * xs.length))]!.toFixed(0);
      for (const [type, xs] of at) {
        xs.sort((a, b) => a - b);
        console.log(`  ${type.padEnd(26)} n=${String(xs.length).padStart(3)}  first ${q(xs, 0)}  p50 ${q(xs, 0.5)}  p90 ${q(xs, 0.9)}  last ${q(xs, 1)} ms`);
      }
    }
  } finally {
    // an agent run under --cpu-prof writes its profile only on a clean exit (SIGTERM), not the SIGKILL of stop()
    if (process.env.SWARMLITE_AGENT_NODE_ARGS?.includes('--cpu-prof')) {
      const a = c.agent();
      const gone = new Promise((r) => a.once('exit', r));
      a.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
    }
    await c.stop();
  }
}

main().catch((err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
