// Trust benchmark (not a test): signed vs unsigned append rate (same run, interleaved), and
// `tsctl audit verify` over the resulting log (signatures checked), in events/s.
//   node dist/test/bench/trust.js [N] [AUDIT_N]
import { Cluster } from '../helpers/cluster.js';
import { Appender } from '../../shared/nats/log.js';
import { SourceChain } from '../../shared/codec.js';
import { subjects } from '../../shared/subjects.js';
import { readCreds, signerOf } from '../../shared/nats/trust.js';
import type { Signer } from '../../shared/signing.js';

const N = Number(process.argv[2] ?? 5000);
const WINDOW = 64;
const AUDIT_N = Number(process.argv[3] ?? 20000); // appends in flight (one writer's appends are serialised; many entities in parallel)

async function main(): Promise<void> {
  const c = await Cluster.start();
  try {
    const creds = readCreds(c.addIdentity('node-bench', 'agent', { node: 'bench' }));
    const nc = await c.connect('node-bench');
    const js = nc.jetstream();
    const { signer, reg } = signerOf(creds);
    const chain = new SourceChain('node:bench');
    const signed = new Appender(js, chain, signer);
    await signed.append(subjects.keys('node-bench'), 'KeyRegistered', 'bench', { key: reg.key, rootSig: reg.rootSig });
    // the same chain, with and without a signer: unsigned rounds are what the log cost before
    const unsigned = new Appender(js, chain);
    const round = async (a: Appender, n: number) => {
      const t0 = performance.now();
      const inflight: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        const id = (i % 4096).toString(16).padStart(64, '0');
        inflight.push(a.append(subjects.state('bench', id), 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: Date.now() }));
        if (inflight.length >= WINDOW) await inflight.shift();
      }
      await Promise.all(inflight);
      return n / ((performance.now() - t0) / 1000);
    };
    const rates: Record<string, number[]> = { unsigned: [], signed: [] };
    for (let r = 0; r < 3; r++) {
      rates.unsigned.push(await round(unsigned, N / 2));
      rates.signed.push(await round(signed, N / 2));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const u = med(rates.unsigned), s = med(rates.signed);
    // a pure sign+verify figure, the cost each event adds on its writer and each reader
    const sg: Signer = signer;
    const bytes = chain.next('ContainerExited', 'x'.repeat(64), { exitCode: 0, oomKilled: false, exitedAt: Date.now() }).bytes;
    let t0 = performance.now();
    for (let i = 0; i < 5000; i++) sg.sign(bytes);
    const signUs = ((performance.now() - t0) / 5000) * 1000;
    console.log(`trust benchmark, N=${N} appends per kind, ${new Date().toISOString()}`);
    console.log(`append, unsigned          median ${u.toFixed(0)} events/s`);
    console.log(`append, signed            median ${s.toFixed(0)} events/s   (${(s / u).toFixed(2)}x unsigned; goal >= 0.8x)`);
    console.log(`ed25519 sign of an event  ${signUs.toFixed(1)} us`);
    // a signed-only stretch for the audit figure (the unsigned rounds above are findings)
    const from = (await signed.append(subjects.state('bench', 'f'.repeat(64)), 'ContainerRemoved', 'f'.repeat(64), { reason: 'bench' })).seq;
    await round(signed, AUDIT_N);
    await nc.close();
    for (const args of [['--since', String(from)], []]) {
      t0 = performance.now();
      const r = await c.tsctl(['audit', 'verify', '--format', 'json', ...args], { timeout: 600000 });
      const wall = performance.now() - t0;
      const rep = JSON.parse(r.stdout) as { events: number; ms: number; findings: unknown[] };
      console.log(`audit verify ${args.join(' ').padEnd(13)} ${rep.events} events in ${rep.ms} ms replay: ${Math.round(rep.events / (rep.ms / 1000))} events/s, signatures checked (${Math.round(wall)} ms for the whole tsctl call); ${rep.findings.length} findings`);
    }
  } finally {
    await c.stop();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
