// Audit benchmark (not a test): one writer appends N signed events (pipelined), then
// `tsctl audit verify` replays the whole log with every check, signatures included; the
// replay rate (events/s, the command's own timing) and the whole command's wall time.
//   node dist/test/bench/audit.js [N] [ROUNDS]      (AUDIT_PROF=dir: CPU profiles of tsctl;
//                                                    AUDIT_THREADS=n: audit verify --threads n;
//                                                    AUDIT_BASE=an older dist/tsctl.cjs: A/B, its
//                                                    rounds interleaved with this tree's on the same log)
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, ROOT } from '../helpers/cluster.js';
import { Appender } from '../../shared/nats/log.js';
import { SourceChain } from '../../shared/codec.js';
import { subjects } from '../../shared/subjects.js';
import { readCreds, signerOf } from '../../shared/nats/trust.js';

const N = Number(process.argv[2] ?? 100_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const ARGS = ['audit', 'verify', '--format', 'json', ...(process.env.AUDIT_THREADS ? ['--threads', process.env.AUDIT_THREADS] : [])];

/** The same command run by node directly, under --cpu-prof if `dir` (tsctl's launcher does not pass NODE_OPTIONS on). */
function direct(c: Cluster, dir: string | undefined, bundle = join(ROOT, 'dist/tsctl.cjs')): { code: number; stdout: string; stderr: string } {
  const flags = bundle === join(ROOT, 'dist/tsctl.cjs') ? (process.env.AUDIT_NODE_FLAGS ?? '').split(' ').filter(Boolean) : [];
  const r = spawnSync(process.execPath, [...flags, ...(dir ? [`--cpu-prof`, `--cpu-prof-dir=${dir}`] : []), bundle, ...ARGS], {
    encoding: 'utf8', env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds }, maxBuffer: 1 << 28,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function main(): Promise<void> {
  const c = await Cluster.start();
  try {
    const creds = readCreds(c.addIdentity('node-bench', 'agent', { node: 'bench' }));
    const nc = await c.connect('node-bench');
    const { signer, reg } = signerOf(creds);
    const a = new Appender(nc.jetstream(), new SourceChain('node:bench'), signer, { nc });
    await a.append(subjects.keys('node-bench'), 'KeyRegistered', 'bench', { key: reg.key, rootSig: reg.rootSig });
    const ids = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(64, '0'));
    for (let done = 0; done < N; done += 10_000) {
      await Promise.all(Array.from({ length: Math.min(10_000, N - done) }, (_, i) => {
        const id = ids[(done + i) & 4095]!;
        return a.append(subjects.state('bench', id), 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: Date.now() });
      }));
    }
    await nc.close();
    // the controller's anchor has seen the log; then nothing else runs while the audit does
    await new Promise((r) => setTimeout(r, 3000));
    const procs = (c as unknown as { procs: Record<string, { kill(s: string): void; once(e: string, f: () => void): void }> }).procs;
    for (const name of ['agent', 'controller']) { const p = procs[name]!; const gone = new Promise<void>((r) => p.once('exit', r)); p.kill('SIGKILL'); await gone; }
    const base = process.env.AUDIT_BASE;
    const runs = { this: { rates: [] as number[], walls: [] as number[], cpuRates: [] as number[], serverUs: [] as number[], last: '' }, base: { rates: [] as number[], walls: [] as number[], cpuRates: [] as number[], serverUs: [] as number[], last: '' } };
    // nats-server's CPU per event read: on 2 cores the reader and the server share the machine
    const natsPid = (procs as unknown as Record<string, { pid?: number }>).nats?.pid;
    const serverCpuMs = (): number => {
      try { const f = readFileSync(`/proc/${natsPid}/stat`, 'utf8').split(') ')[1]!.split(' '); return ((Number(f[11]) + Number(f[12])) * 1000) / 100; } catch { return NaN; }
    };
    for (let r = 0; r < ROUNDS; r++) {
      for (const which of base ? (['base', 'this'] as const) : (['this'] as const)) {
        const x = runs[which];
        const t0 = performance.now();
        const s0 = serverCpuMs();
        const res = which === 'base' ? direct(c, process.env.AUDIT_PROF, base) : process.env.AUDIT_PROF || base ? direct(c, process.env.AUDIT_PROF) : await c.tsctl(ARGS, { timeout: 600_000 });
        x.walls.push(performance.now() - t0);
        if (res.code > 1 || !res.stdout) throw new Error(`tsctl audit verify (${which}) exited ${res.code}: ${res.stderr}`);
        const rep = JSON.parse(res.stdout) as { events: number; ms: number; cpuMs: number; findings: { kind: string; detail: string }[] };
        x.rates.push(rep.events / (rep.ms / 1000));
        x.cpuRates.push(rep.events / (rep.cpuMs / 1000));
        x.serverUs.push(((serverCpuMs() - s0) * 1000) / rep.events);
        x.last = `${rep.events} events, ${rep.findings.length} findings${rep.findings.length ? ` (${rep.findings.map((f) => `${f.kind}: ${f.detail}`).join('; ').slice(0, 300)})` : ''}`;
      }
    }
    const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
    console.log(`audit benchmark, ${new Date().toISOString()}${process.env.AUDIT_THREADS ? ` (--threads ${process.env.AUDIT_THREADS})` : ''}: ${runs.this.last}`);
    const line = (label: string, x: typeof runs.this) => console.log(`${label} median ${Math.round(med(x.rates))} events/s replay (goal >= 100000)   rounds ${x.rates.map((v) => Math.round(v)).join(' ')}; whole command median ${Math.round(med(x.walls))} ms; by tsctl's CPU time ${Math.round(med(x.cpuRates))} events/s; nats-server ${med(x.serverUs).toFixed(1)} us CPU per event`);
    if (base) {
      console.log(`baseline ${base}: ${runs.base.last}`);
      line('audit verify, baseline           ', runs.base);
      line('audit verify, this tree          ', runs.this);
      console.log(`this tree / baseline: ${(med(runs.this.rates) / med(runs.base.rates)).toFixed(2)}x by the clock, ${(med(runs.this.cpuRates) / med(runs.base.cpuRates)).toFixed(2)}x by CPU time`);
    } else line('audit verify (signatures checked) ', runs.this);
  } finally {
    await c.stop();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
