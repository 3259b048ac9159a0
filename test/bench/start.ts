// Start-path benchmark (not a test): swarmlite vs `runc run` on the same rootfs, same
// run, same machine. Prints medians and ratios; the README quotes this output.
//   node dist/test/bench/start.js [N]
//   BENCH_BASE_TSCTL=PATH also runs another build's tsctl (its bin/tsctl.cjs) in the same rounds (A/B).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Cluster, ROOT, sleep } from '../helpers/cluster.js';
import { readLog } from '../../shared/nats/log.js';
import { signer, verifyEventSig } from '../../shared/signing.js';
import { DESIRED_TYPES, type StoredEvent } from '../../shared/events.js';

const N = Number(process.argv[2] ?? 50);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const f = (ms: number) => `${ms.toFixed(2)} ms`;

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function monitorPids(): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return readlinkSync(`/proc/${p}/exe`).endsWith('/sl-monitor'); } catch { return false; }
  }).map(Number);
}

function runcBaseline(rootfs: string, dir: string): number[] {
  const bundle = join(dir, 'runc-bundle');
  mkdirSync(bundle, { recursive: true });
  spawnSync('runc', ['spec', '-b', bundle]);
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = ['true'];
  spec.root = { path: rootfs, readonly: true };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  const times: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    const r = spawnSync('runc', ['--root', join(dir, 'runc-state'), 'run', '-b', bundle, `bench${process.pid}-${i}`], { stdio: 'ignore' });
    times.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`runc run failed (exit ${r.status})`);
  }
  rmSync(bundle, { recursive: true, force: true });
  return times;
}

/**
 * tsctl as a user runs it: the command /usr/local/bin/tsctl links to (ops/setup), native/build/tsctl
 * (tsctl's C client: the warm tsctl's client, else bin/tsctl.cjs), in this process's environment
 * (NODE_EXTRA_CA_CERTS included when set). `launcher` runs bin/tsctl.cjs as the command (its #!
 * line, node from PATH), with TSCTL_TRACE=1 so it says where its time went (the C client leaves a
 * traced call to it); `viaNode` runs `node bin/tsctl.cjs` instead.
 */
const CLIENT = join(ROOT, 'native/build/tsctl');
function tsctl(c: Cluster, args: string[], viaNode = false, bin = join(ROOT, 'bin/tsctl.cjs')): Promise<{ code: number | null; ms: number; stderr: string }> {
  const [cmd, argv] = viaNode ? [process.execPath, [bin, ...args]] : [bin, args];
  const trace = bin === CLIENT ? {} : { TSCTL_TRACE: '1' };
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds, ...trace } });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, ms: performance.now() - t0, stderr }));
  });
}

/** The marks of one call's trace line (ms), or undefined. */
function trace(stderr: string): Record<string, number> | undefined {
  const line = /^tsctl trace: [^;]*; (.*)$/m.exec(stderr)?.[1];
  return line ? Object.fromEntries(line.split(' ').map((kv) => { const [k, v] = kv.split('='); return [k, Number(v)]; })) : undefined;
}

/**
 * The CPU time (user + system, ms) of one call, whole and in three parts: node's start with
 * tsctl's load, the connect, the rest. Less bent than wall times by a loaded host.
 */
function cpuPhases(stderr: string): Record<string, number> | undefined {
  const t = trace(stderr);
  if (!t || !(t['cpu.exit']! >= 0)) return undefined;
  // a warm call's CPU is the client's alone (the warm process's share of each call is not in it)
  return {
    'whole process': t['cpu.exit']!, 'node start + load tsctl': t['cpu.loaded']!,
    'to connected': t['cpu.connected']! - t['cpu.loaded']!, 'connected -> exit': t['cpu.exit']! - t['cpu.connected']!,
  };
}

/** Phases of one call from its trace line (ms): node's start, tsctl's load, connect, the request, the cluster's part, the exit. */
function phases(stderr: string): Record<string, number> | undefined {
  const t = trace(stderr);
  if (!t) return undefined;
  // a call the warm process served (tsctl/warm.ts): the client's own marks; the cluster's part is in 'taken -> exit'
  if (t.taken !== undefined) {
    return {
      'node start (to its bootstrap)': t.bootstrapComplete, 'warm: load the client': t.loaded - t.bootstrapComplete, 'warm: socket connected': t.connected - t.loaded,
      'warm: call taken': t.taken - t.connected, 'warm: taken -> exit': t.exit - t.taken,
    };
  }
  return {
    'node start (to its bootstrap)': t.bootstrapComplete, 'load tsctl': t.loaded - t.bootstrapComplete, 'to dial': t.dial - t.loaded,
    'connect (TCP, TLS, nkey)': t.connected - t.dial, 'run request': t['api.run.reply'] - t['api.run'],
    'reply -> started': t.ContainerStarted - t['api.run.reply'], 'started -> exited': t.ContainerExited - t.ContainerStarted,
    'exited -> removed': t.ContainerRemoved - t.ContainerExited, 'removed -> process exit': t.exit - t.ContainerRemoved,
  };
}

/**
 * Signing's share of the start path, measured on the path's own events (same run): a running
 * cluster has no unsigned mode (readers refuse unsigned events, by design, with no switch to turn
 * that off), so the work signing adds is timed directly on the bytes of one `run --rm`'s events:
 * each is signed once by its writer (ed25519 over its bytes, as the Appender does) and checked
 * by each reader on the path (the agent checks the desired ones before it acts, the controller's
 * fold checks every one). Each figure is the median of R rounds.
 */
async function signingCost(c: Cluster, id: string): Promise<{ events: StoredEvent[]; signUs: number[]; checkUs: number[] }> {
  const nc = await c.connect();
  const events: StoredEvent[] = [];
  try {
    for await (const item of readLog(nc, { filter: `ev.*.*.${id}` })) if (item.ok) events.push(item.stored);
    // its name's claim (controller/lease.ts), on a subject of the name's own
    for await (const item of readLog(nc, { filter: 'ev.claim.>' })) if (item.ok && item.stored.event.entity === id) events.push(item.stored);
  } finally { await nc.close(); }
  const key = signer(randomBytes(32)); // the same kind of key the sources have (ed25519)
  const R = 400;
  const signUs: number[] = [], checkUs: number[] = [];
  for (const e of events) {
    const sig = key.sign(e.bytes!);
    const s: number[] = [], v: number[] = [];
    for (let r = 0; r < R; r++) {
      let t0 = performance.now();
      key.sign(e.bytes!);
      s.push((performance.now() - t0) * 1000);
      t0 = performance.now();
      if (verifyEventSig(key.pub, e.bytes!, e.hash, sig) === undefined) throw new Error('bench: a signature made here did not verify');
      v.push((performance.now() - t0) * 1000);
    }
    signUs.push(median(s)); checkUs.push(median(v));
  }
  return { events, signUs, checkUs };
}

async function main(): Promise<void> {
  const c = await Cluster.start();
  try {
    await c.importBusybox();
    await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'true']); // warm: layer unpacked, caches hot
    const idleRss = rssKb(c.agent().pid!);

    // the command as users run it (the C client), bin/tsctl.cjs as the command, and `node
    // bin/tsctl.cjs` (what the tests run), interleaved
    const run = ['run', '--rm', '--network', 'none', 'busybox', 'true'];
    const base = process.env.BENCH_BASE_TSCTL;
    await tsctl(c, run); await tsctl(c, run, true); // each way's code cache for `run`, and their warm processes
    if (base) await tsctl(c, run, false, base);
    const whole: number[] = [], viaLauncher: number[] = [], viaNode: number[] = [], baseWhole: number[] = [];
    const parts: Record<string, number[]> = {}, cpu: Record<string, number[]> = {}, baseCpu: Record<string, number[]> = {};
    for (let i = 0; i < N; i++) {
      // the base build (BENCH_BASE_TSCTL) takes its turn first in every other round
      const ways: ('client' | 'this' | 'node' | 'base')[] = base ? (i % 2 ? ['client', 'this', 'node', 'base'] : ['base', 'client', 'this', 'node']) : i % 2 ? ['client', 'this', 'node'] : ['this', 'client', 'node'];
      for (const way of ways) {
        const r = await tsctl(c, run, way === 'node', way === 'base' ? base : way === 'client' ? CLIENT : undefined);
        if (r.code !== 0) throw new Error(`run failed: ${r.stderr}`);
        ({ client: whole, this: viaLauncher, node: viaNode, base: baseWhole })[way].push(r.ms);
        if (way === 'node' || way === 'client') continue;
        for (const [k, v] of Object.entries(cpuPhases(r.stderr) ?? {})) ((way === 'base' ? baseCpu : cpu)[k] ??= []).push(v);
        if (way === 'base') continue;
        for (const [k, v] of Object.entries(phases(r.stderr) ?? {})) (parts[k] ??= []).push(v);
      }
    }
    const events = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l));
    const toRunning = events.filter((e) => e.type === 'ContainerStarted').slice(-N).map((e) => e.data.runningAt - e.data.receivedAt);
    const sc = await signingCost(c, events.filter((e) => e.type === 'ContainerStarted').pop().entity);

    const layers = join(c.dir, 'nodes', c.node, 'layers');
    const rootfs = join(layers, readdirSync(layers).find((d) => /^[0-9a-f]{64}$/.test(d))!);
    const runc = runcBaseline(rootfs, c.dir);

    // memory: agent idle, then with M running containers (monitors included)
    const M = 20;
    const before = new Set(monitorPids());
    for (let i = 0; i < M; i++) await c.ok(['run', '-d', '--network', 'none', '--name', `mem${i}`, 'busybox', 'sleep', '1000']);
    await sleep(500);
    const mons = monitorPids().filter((p) => !before.has(p));
    const monRss = mons.reduce((a, p) => a + rssKb(p), 0);
    const busyRss = rssKb(c.agent().pid!);
    for (let i = 0; i < M; i++) await c.ok(['rm', '-f', `mem${i}`]);

    const rm = median(runc);
    console.log(`swarmlite start benchmark, N=${N}, ${new Date().toISOString()}`);
    console.log(`runc run (baseline, whole)           median ${f(rm)}`);
    console.log(`desired event -> process running     median ${f(median(toRunning))}  ratio ${(median(toRunning) / rm).toFixed(2)}x runc  (goal <= 0.5x)`);
    console.log(`tsctl run --rm busybox true (whole)  median ${f(median(whole))}  ratio ${(median(whole) / rm).toFixed(2)}x runc  (goal <= 3x)`);
    console.log(`  the same as bin/tsctl.cjs (sh+node) median ${f(median(viaLauncher))}  ratio ${(median(viaLauncher) / rm).toFixed(2)}x runc  (the lines below are its)`);
    console.log(`  the same as node bin/tsctl.cjs     median ${f(median(viaNode))}  ratio ${(median(viaNode) / rm).toFixed(2)}x runc  (NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'unset'})`);
    for (const [k, v] of Object.entries(parts)) console.log(`  ${k.padEnd(32)} median ${f(median(v))}`);
    for (const [k, v] of Object.entries(cpu)) console.log(`  CPU, ${k.padEnd(27)} median ${f(median(v))}`);
    if (base) {
      console.log(`base build's tsctl run --rm (whole)  median ${f(median(baseWhole))}  ratio ${(median(baseWhole) / rm).toFixed(2)}x runc  (${base})`);
      for (const [k, v] of Object.entries(baseCpu)) console.log(`  CPU, ${k.padEnd(27)} median ${f(median(v))}`);
    }
    // signing on vs off, same run: the measured (signed) medians and the same less signing's work on the path's own events
    const desired = new Set<string>(DESIRED_TYPES);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const toRunCost = sc.events.reduce((a, e, i) => a + (e.event.type === 'ContainerRequested' ? sc.checkUs[i]! : 0), 0) / 1000; // the agent's check, after receivedAt
    const wholeCost = (sum(sc.signUs) + sum(sc.checkUs) + sc.events.reduce((a, e, i) => a + (desired.has(e.event.type) ? sc.checkUs[i]! : 0), 0)) / 1000;
    console.log(`signing on the start path, timed on one run --rm's own ${sc.events.length} events (${sc.events.map((e) => e.event.type).join(', ')}): sign median ${median(sc.signUs).toFixed(1)} us, check ${median(sc.checkUs).toFixed(1)} us an event`);
    console.log(`desired event -> running  signed ${f(median(toRunning))}, unsigned ${f(median(toRunning) - toRunCost)}  difference +${toRunCost.toFixed(2)} ms (the agent's check of ContainerRequested; goal <= +1 ms)`);
    console.log(`tsctl run --rm (whole)    signed ${f(median(whole))}, unsigned ${f(median(whole) - wholeCost)}  difference +${wholeCost.toFixed(2)} ms (${sc.events.length} signs, ${sc.events.length + sc.events.filter((e) => desired.has(e.event.type)).length} checks, all counted as on the path; goal <= +1 ms)`);
    console.log(`agent RSS idle                       ${(idleRss / 1024).toFixed(1)} MB  (goal < 80 MB)`);
    console.log(`per running container                ${((busyRss - idleRss + monRss) / M / 1024).toFixed(2)} MB  (agent +${((busyRss - idleRss) / 1024).toFixed(1)} MB, ${mons.length} monitors ${(monRss / 1024).toFixed(1)} MB, over ${M}; goal < 2 MB)`);
  } finally {
    await c.stop();
  }
}

main().catch((err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
