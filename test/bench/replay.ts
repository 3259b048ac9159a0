// Replay benchmark (not a test): the real controller folding a long log into its view.
//   node dist/test/bench/replay.js [EVENTS] [LIVE] [AFTER]
// Makes EVENTS synthetic but valid events (the project's codec and hash chains, each signed by
// its source's registered key, as the controller and NODES agents would write them) in a real
// nats-server: LIVE containers requested and started, the rest of the events containers that
// run and are removed (5 events each). Then times the real controller (dist/controller/main.js):
//   1. from an empty state dir to "ready" (the whole log folded, signatures checked), its RSS;
//   2. stopped, AFTER more events appended, started again: from its snapshot to "ready";
//   3. `tsctl view --at` of the log's last sequence and of one in the middle, once the controller
//      stored its snapshots (a full every TRAVEL_EVERY events, a delta every fifth of that);
//      BENCH_BASE_TSCTL=PATH also times another build's tsctl on the same points (A/B).
// BENCH_DIR=DIR reuses the cluster dir of an earlier run (its log; its controller state is removed).
// BENCH_SAVE=DIR copies the controller state dir after step 1; BENCH_NO_AT=1 skips step 3.
// BENCH_TRACE=1 prints each controller start's phases (SWARMLITE_TRACE_START, controller/start-trace.ts).
// BENCH_AT_ONLY=1 with BENCH_DIR (a run kept with BENCH_KEEP=1): only step 3, on the log and the
// snapshots that run stored (nothing appended, no controller), to time view --at alone;
// BENCH_AT=SEQ[,SEQ...] times those points instead of the end and the middle.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers, type NatsConnection, type JetStreamClient } from 'nats';
import { addIdentity, connectOptions, credsPath, initTrust, readCreds, signerOf } from '../../shared/nats/trust.js';
import { ensureStream, DEFAULT_LIMITS } from '../../shared/nats/log.js';
import { applyJournal, readSnapshot } from '../../shared/snapshot.js';
import { SourceChain } from '../../shared/codec.js';
import { SIG_HEADER, type Signer } from '../../shared/signing.js';
import { subjects } from '../../shared/subjects.js';
import type { ContainerSpec, EventData, EventType } from '../../shared/events.js';
import { CONTROLLER_NODE_FLAGS, freePort, ROOT } from '../helpers/cluster.js';
import { listSnapshots, travelPlan, SNAPSHOT_BUCKET } from '../../shared/nats/snapshots.js';
import { DELTAS_PER_FULL, TRAVEL_EVERY } from '../../controller/view.js';

const EVENTS = Number(process.argv[2] ?? 1_000_000);
const LIVE = Number(process.argv[3] ?? 100_000);
const AFTER = Number(process.argv[4] ?? 100_000);
const NODES = 20;
const WINDOW = 1024;

interface Source { chain: SourceChain; signer: Signer; reg: { key: string; rootSig: string } }

class Writer {
  private inflight: Promise<unknown>[] = [];
  count = 0;
  constructor(private js: JetStreamClient) {}
  async put<T extends EventType>(s: Source, subject: string, type: T, entity: string, data: EventData[T]): Promise<void> {
    const { event, bytes, hash } = s.chain.next(type, entity, data);
    s.chain.commit(event.srcSeq, hash);
    const h = headers();
    h.set('Nats-Msg-Id', event.id);
    h.set(SIG_HEADER, s.signer.sign(bytes));
    this.inflight.push(this.js.publish(subject, bytes, { headers: h }));
    this.count += 1;
    if (this.inflight.length >= WINDOW) await Promise.all(this.inflight.splice(0, WINDOW / 2));
  }
  async drain(): Promise<void> { await Promise.all(this.inflight.splice(0)); }
}

const spec = (name: string): ContainerSpec => ({
  name, image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['sleep', '1000'], env: ['A=1'], hostname: name.slice(0, 12),
  workdir: '/', network: 'bridge', autoRemove: false,
});
const cid = (i: number) => i.toString(16).padStart(64, '0');

/** Appends `n` events: a share of them keeps containers alive, the rest run and remove containers. */
async function generate(w: Writer, ctl: Source, nodes: Source[], n: number, live: number, first: number): Promise<number> {
  const churn = Math.max(0, Math.floor((n - 2 * live) / 5));
  const total = live + churn;
  let i = first;
  const start = w.count;
  for (let k = 0; k < total && w.count - start < n; k++, i++) {
    const keep = Math.floor(((k + 1) * live) / total) > Math.floor((k * live) / total);
    const ni = i % nodes.length, node = `b${ni}`, id = cid(i + 1), src = nodes[ni]!;
    await w.put(ctl, subjects.desired(node, id), 'ContainerRequested', id, { node, spec: spec(`c${i}`), user: 'admin' });
    await w.put(src, subjects.state(node, id), 'ContainerStarted', id, { pid: 100 + (i % 30000), receivedAt: Date.now(), runningAt: Date.now() });
    if (keep) continue;
    await w.put(src, subjects.state(node, id), 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: Date.now() });
    await w.put(ctl, subjects.desired(node, id), 'ContainerRemoveRequested', id, { force: false, user: 'admin' });
    await w.put(src, subjects.state(node, id), 'ContainerRemoved', id, { reason: 'rm' });
  }
  await w.drain();
  return i;
}

function controller(dir: string, url: string): { p: ChildProcess; ready: Promise<{ ms: number; line: string }> } {
  const t0 = performance.now();
  // the flags ops/up starts it with; BENCH_CONTROLLER_FLAGS (space-separated, may be empty) instead, for an A/B
  const flags = process.env.BENCH_CONTROLLER_FLAGS !== undefined ? process.env.BENCH_CONTROLLER_FLAGS.split(' ').filter(Boolean) : CONTROLLER_NODE_FLAGS;
  const prof = process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : [];
  // BENCH_TRACE=1: the controller's start-up phases (controller/start-trace.ts), printed at ready
  const trace = process.env.BENCH_TRACE === '1';
  const p = spawn(process.execPath, [...flags, ...prof, join(ROOT, 'dist/controller/main.js'), '--nats', url, '--state-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'], ...(trace ? { env: { ...process.env, SWARMLITE_TRACE_START: '1' } } : {}) });
  let err = '';
  p.stderr!.on('data', (d) => { err += d; });
  const ready = new Promise<{ ms: number; line: string }>((resolve, reject) => {
    let out = '';
    p.stdout!.on('data', (d) => {
      out += d;
      const m = /controller ready at seq \d+/.exec(out);
      if (!m) return;
      if (trace) console.log(err.split('\n').filter((l) => l.startsWith('controller: start +')).map((l) => `    ${l}`).join('\n'));
      resolve({ ms: performance.now() - t0, line: m[0] });
    });
    p.once('exit', (code) => reject(new Error(`controller exited ${code}: ${err.slice(-2000)}`)));
  });
  return { p, ready };
}

/** CPU seconds a process has used (user + system): less bent by other load on the machine than its wall time. */
const cpuS = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
// a controller stopped right at "ready" (before its SIGTERM handler is set) ends by the signal:
// exitCode stays null then, and waiting for an 'exit' already emitted hung the bench
const stopped = (p: ChildProcess) => new Promise<void>((r) => { if (p.exitCode !== null || p.signalCode !== null) r(); else { p.once('exit', () => r()); p.kill('SIGTERM'); } });
const size = (d: string) => readdirSync(d).map((f) => `${f} ${(statSync(join(d, f)).size / 1048576).toFixed(1)} MiB`).join(', ');

async function main(): Promise<void> {
  const reuse = process.env.BENCH_DIR;
  const dir = reuse ?? mkdtempSync(join(tmpdir(), 'swl-replay-'));
  const port = reuse ? Number(/listen: 127\.0\.0\.1:(\d+)/.exec(readFileSync(join(dir, 'nats.conf'), 'utf8'))![1]) : await freePort();
  let nats: ChildProcess | undefined, ctlProc: ChildProcess | undefined;
  try {
    const atOnly = !!process.env.BENCH_AT_ONLY;
    if (atOnly && !reuse) throw new Error('BENCH_AT_ONLY needs BENCH_DIR (a cluster dir kept with BENCH_KEEP=1)');
    if (reuse && !atOnly) rmSync(join(dir, 'controller'), { recursive: true, force: true });
    initTrust(dir, { port });
    if (!reuse) {
      addIdentity(dir, { name: 'bench', kind: 'superuser' }, undefined, false);
      for (let k = 0; k < NODES; k++) addIdentity(dir, { name: `node-b${k}`, kind: 'agent', node: `b${k}` }, undefined, k === NODES - 1);
    }
    nats = spawn('nats-server', ['-c', join(dir, 'nats.conf'), '-l', join(dir, 'nats.log')], { stdio: 'ignore' });
    const url = `nats://127.0.0.1:${port}`;
    let nc!: NatsConnection;
    for (let k = 0; ; k++) {
      try { nc = await connect({ ...connectOptions(readCreds(credsPath(dir, 'bench')), url), name: 'bench' }); break; } catch (err) { if (k > 50) throw err; await new Promise((r) => setTimeout(r, 100)); }
    }
    await ensureStream(await nc.jetstreamManager(), DEFAULT_LIMITS);
    if (atOnly) {
      const last = (await (await nc.jetstreamManager()).streams.info('EVENTS')).state.last_seq;
      console.log(`view --at only: ${last} events in ${dir}, ${new Date().toISOString()}`);
      await viewAt(nc, url, dir, last);
      await nc.close();
      return;
    }
    // a reused log: the snapshots an earlier controller stored would spare this one its own
    if (reuse && !atOnly) {
      const adm = await connect({ ...connectOptions(readCreds(credsPath(dir, 'admin')), url), name: 'bench-admin' }); // only an admin deletes a stream
      await (await adm.jetstreamManager()).streams.delete(`OBJ_${SNAPSHOT_BUCKET}`).catch((err) => console.error(`bench: dropping the stored snapshots: ${(err as Error).message}`));
      await adm.close();
    }
    const js = nc.jetstream();
    const w = new Writer(js);
    const src = (name: string, source: string): Source => ({ chain: new SourceChain(source), ...signerOf(readCreds(credsPath(dir, name))) });
    const ctl = src('controller', 'controller');
    const nodes = Array.from({ length: NODES }, (_, k) => src(`node-b${k}`, `node:b${k}`));
    let t0 = performance.now();
    let next = 0;
    if (!reuse) {
      await w.put(ctl, subjects.keys('controller'), 'KeyRegistered', 'controller', ctl.reg);
      for (let k = 0; k < NODES; k++) {
        await w.put(nodes[k]!, subjects.keys(`node-b${k}`), 'KeyRegistered', `b${k}`, nodes[k]!.reg);
        await w.put(nodes[k]!, subjects.node(`b${k}`), 'NodeJoined', `b${k}`, { hostname: `b${k}`, cpus: 64, memory: 2 ** 40, kernel: '6.1', features: [], version: 'bench' });
      }
      next = await generate(w, ctl, nodes, EVENTS - w.count, LIVE, 0);
    } else w.count = (await (await nc.jetstreamManager()).streams.info('EVENTS')).state.last_seq;
    console.log(`replay benchmark: ${w.count} signed events (${LIVE} containers kept, ${NODES} nodes) ${reuse ? 'reused from' : 'appended in'} ${reuse ?? `${Math.round(performance.now() - t0)} ms`}, ${new Date().toISOString()}`);

    // 1. from an empty state dir
    let c = controller(dir, url);
    ctlProc = c.p;
    let r = await c.ready;
    const rss = rssMb(c.p.pid!), cpu = cpuS(c.p.pid!);
    console.log(`from an empty state dir: ${r.line} in ${Math.round(r.ms)} ms (whole process start, ${cpu.toFixed(1)} s CPU), RSS ${rss.toFixed(0)} MB (goal <= 10 s, <= 300 MB)`);
    await new Promise((res) => setTimeout(res, 1500)); // its idle delta
    await stopped(c.p);
    console.log(`  its files: ${size(join(dir, 'controller'))}`);
    // a copy of the state at the log's end (BENCH_SAVE=DIR): a later run can time the restart from it alone
    if (process.env.BENCH_SAVE) cpSync(join(dir, 'controller'), process.env.BENCH_SAVE, { recursive: true });
    // the writers go on from the chain heads the controller's view holds (a reused log's are not in memory)
    const v = readSnapshot(readFileSync(join(dir, 'controller', 'snapshot.bin')));
    applyJournal(v, readFileSync(join(dir, 'controller', 'journal.bin')), v.seq);
    for (const x of [ctl, ...nodes]) { const h = v.sources[x.chain.src]!; x.chain.commit(h.srcSeq, h.hash); }
    next = Math.max(next, Object.keys(v.containers).length + 10_000_000);

    // 2. from its snapshot, AFTER events later
    t0 = performance.now();
    const before = w.count;
    next = await generate(w, ctl, nodes, AFTER, 0, next);
    console.log(`appended ${w.count - before} more in ${Math.round(performance.now() - t0)} ms`);
    c = controller(dir, url);
    ctlProc = c.p;
    r = await c.ready;
    console.log(`from its snapshot + ${w.count - before} events: ${r.line} in ${Math.round(r.ms)} ms (${cpuS(c.p.pid!).toFixed(1)} s CPU; goal <= 2 s), RSS ${rssMb(c.p.pid!).toFixed(0)} MB`);

    if (process.env.BENCH_NO_AT) { await stopped(c.p); await nc.close(); return; }
    // 3. view --at, once the controller's uploads reached the log's end (they run behind its fold)
    t0 = performance.now();
    const step = TRAVEL_EVERY / DELTAS_PER_FULL;
    let near = 0, close = 0;
    for (;;) {
      const p = travelPlan(await listSnapshots(nc), { seq: w.count });
      near = p ? (p.deltas[p.deltas.length - 1] ?? p.full).seq : 0;
      // the end itself once the controller is idle (its side delta); within two links of it after 30 s more
      if (near > w.count - 2 * step) close ||= performance.now();
      if (near === w.count || (close && performance.now() - close > 30_000) || performance.now() - t0 > 300_000) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    console.log(`waited ${Math.round(performance.now() - t0)} ms for the snapshots to reach the end`);
    await viewAt(nc, url, dir, w.count);
    await stopped(c.p);
    await nc.close();
    void next;
  } finally {
    if (ctlProc) await stopped(ctlProc);
    if (nats) await stopped(nats);
    if (process.env.BENCH_KEEP) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/** Step 3: `tsctl view --at` of the log's end (`last`) and of its middle, with each build asked. */
async function viewAt(nc: NatsConnection, url: string, dir: string, last: number): Promise<void> {
  const p = travelPlan(await listSnapshots(nc), { seq: last });
  const near = p ? (p.deltas[p.deltas.length - 1] ?? p.full).seq : 0;
  const stored = await listSnapshots(nc);
  console.log(`stored snapshots: ${stored.filter((x) => x.base === undefined).length} full (${stored.filter((x) => x.base === undefined).map((x) => x.seq).join(' ')}), ${stored.filter((x) => x.base !== undefined).length} deltas; the nearest to the end #${near}`);
  const builds: [string, string][] = [['this build', join(ROOT, 'bin/tsctl.cjs')], ...(process.env.BENCH_BASE_TSCTL ? [['base build', process.env.BENCH_BASE_TSCTL] as [string, string]] : [])];
  // BENCH_REPEAT=N: each point N times, the builds taking turns (an A/B in the same minutes)
  const repeat = Number(process.env.BENCH_REPEAT ?? 1);
  // BENCH_AT=SEQ[,SEQ...]: those points instead of the end and the middle
  const points = process.env.BENCH_AT ? process.env.BENCH_AT.split(',') : [String(last), String(Math.floor(last / 2))];
  for (const at of points) {
    for (let k = 0; k < repeat; k++) {
      for (const [what, bin] of builds) {
        const t0 = performance.now();
        const prof = process.env.BENCH_PROF && what === 'this build' ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : [];
        const v = spawnSync(process.execPath, [...prof, bin, '--nats', url, '--creds', credsPath(dir, 'admin'), 'view', '--at', at], { encoding: 'utf8', timeout: 600_000, maxBuffer: 1 << 30 });
        const ms = performance.now() - t0;
        const err = v.status === 0 ? '' : ` ${v.stderr.trim().split('\n')[0] ?? ''}`;
        console.log(`tsctl view --at ${at} (${what}): ${Math.round(ms)} ms (goal <= 1000), exit ${v.status}: ${v.stdout.split('\n')[0]}${err}`);
        // TSCTL_TRACE=1 (passed on to tsctl): its phases, from its stderr
        if (process.env.TSCTL_TRACE && v.status === 0) console.log(v.stderr.trim().split('\n').map((l) => `    ${l}`).join('\n'));
      }
    }
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
