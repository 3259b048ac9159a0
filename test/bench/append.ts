// Append benchmark (not a test): one writer's appends through the Appender (pipelined, a
// bounded window in flight), unsigned and signed rounds interleaved in the same run, in
// events/s (median of 5 rounds each); the window is the first argument's companion.
//   node dist/test/bench/append.js [N per round] [WINDOW]
import { Cluster } from '../helpers/cluster.js';
import { Appender } from '../../shared/nats/log.js';
import { SourceChain } from '../../shared/codec.js';
import { subjects } from '../../shared/subjects.js';
import { readCreds, signerOf } from '../../shared/nats/trust.js';

const N = Number(process.argv[2] ?? 10_000);
const WINDOW = Number(process.argv[3] ?? 256);
const ROUNDS = 5;

async function main(): Promise<void> {
  const c = await Cluster.start();
  try {
    const creds = readCreds(c.addIdentity('node-bench', 'agent', { node: 'bench' }));
    // the server alone: on two cores the controller's fold of these events (a signature check
    // each) would compete with the writer for the same CPU (the trust bench measures with it)
    const procs = (c as unknown as { procs: Record<string, { kill(s: string): void; once(e: string, f: () => void): void }> }).procs;
    for (const name of ['agent', 'controller']) { const p = procs[name]!; const gone = new Promise<void>((r) => p.once('exit', r)); p.kill('SIGKILL'); await gone; }
    const nc = await c.connect('node-bench');
    const js = nc.jetstream();
    const { signer, reg } = signerOf(creds);
    const chain = new SourceChain('node:bench');
    const signed = new Appender(js, chain, signer, { window: WINDOW, nc });
    await signed.append(subjects.keys('node-bench'), 'KeyRegistered', 'bench', { key: reg.key, rootSig: reg.rootSig });
    // the same chain, with and without a signer (the unsigned rounds are what the log costs without trust)
    const unsigned = new Appender(js, chain, undefined, { window: WINDOW, nc });
    const ids = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(64, '0'));
    const cpu = { unsigned: [] as number[], signed: [] as number[] };
    const round = async (a: Appender, kind: 'unsigned' | 'signed') => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const all: Promise<unknown>[] = [];
      for (let i = 0; i < N; i++) {
        const id = ids[i & 4095]!;
        all.push(a.append(subjects.state('bench', id), 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: Date.now() }));
      }
      await Promise.all(all);
      const used = process.cpuUsage(c0);
      cpu[kind].push(N / ((used.user + used.system) / 1e6));
      return N / ((performance.now() - t0) / 1000);
    };
    const rates = { unsigned: [] as number[], signed: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      rates.unsigned.push(await round(unsigned, 'unsigned'));
      rates.signed.push(await round(signed, 'signed'));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const u = med(rates.unsigned), s = med(rates.signed);
    console.log(`append benchmark, one writer, ${N} appends per round, window ${WINDOW}, ${new Date().toISOString()}`);
    console.log(`append, unsigned  median ${u.toFixed(0)} events/s   (goal >= 20000)   rounds ${rates.unsigned.map((x) => x.toFixed(0)).join(' ')}; by the writer's CPU time ${med(cpu.unsigned).toFixed(0)}/s`);
    console.log(`append, signed    median ${s.toFixed(0)} events/s   (${(s / u).toFixed(2)}x unsigned; goal >= 0.8x)   rounds ${rates.signed.map((x) => x.toFixed(0)).join(' ')}; by the writer's CPU time ${med(cpu.signed).toFixed(0)}/s`);
    await nc.close();
  } finally {
    await c.stop();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
