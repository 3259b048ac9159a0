// Retention benchmark (not a test): `tsctl log archive` over N signed events (seal into
// segments + the admin's purge), then `tsctl audit verify` over the archived log against the
// same events live.
//   node dist/test/bench/archive.js [N]
import { Cluster } from '../helpers/cluster.js';
import { Appender } from '../../shared/nats/log.js';
import { SourceChain } from '../../shared/codec.js';
import { subjects } from '../../shared/subjects.js';
import { readCreds, signerOf } from '../../shared/nats/trust.js';

const N = Number(process.argv[2] ?? 40000);
const WINDOW = 64;

async function main(): Promise<void> {
  const c = await Cluster.start();
  try {
    const creds = readCreds(c.addIdentity('node-bench', 'agent', { node: 'bench' }));
    const nc = await c.connect('node-bench');
    const { signer, reg } = signerOf(creds);
    const log = new Appender(nc.jetstream(), new SourceChain('node:bench'), signer);
    await log.append(subjects.keys('node-bench'), 'KeyRegistered', 'bench', { key: reg.key, rootSig: reg.rootSig });
    const inflight: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      const id = (i % 4096).toString(16).padStart(64, '0');
      inflight.push(log.append(subjects.state('bench', id), 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: Date.now() }));
      if (inflight.length >= WINDOW) await inflight.shift();
    }
    await Promise.all(inflight);
    await nc.close();
    await new Promise((r) => setTimeout(r, 2500)); // the controller's anchor
    const audit = async () => {
      const t0 = performance.now();
      const r = await c.tsctl(['audit', 'verify', '--format', 'json'], { timeout: 600000 });
      const rep = JSON.parse(r.stdout) as { events: number; ms: number; findings: unknown[]; archive: { segments: number } };
      return { ...rep, wall: performance.now() - t0 };
    };
    const live = await audit();
    const admin = await c.connect('admin');
    const last = (await (await admin.jetstreamManager()).streams.info('EVENTS')).state.last_seq;
    await admin.close();
    const t0 = performance.now();
    const a = await c.tsctl(['log', 'archive', '--before', String(last + 1), '--format', 'json'], { timeout: 600000 });
    const ms = performance.now() - t0;
    if (a.code !== 0) throw new Error(`tsctl log archive exited ${a.code} after ${Math.round(ms)} ms: ${a.stderr}${a.stdout}`);
    const rep = JSON.parse(a.stdout) as { through: number; segments: number; purged: number };
    const archived = await audit();
    console.log(`swarmlite archive benchmark, N=${N} signed events, ${new Date().toISOString()}`);
    console.log(`log archive --before ${last + 1}      ${rep.through} events sealed into ${rep.segments} segments and ${rep.purged} purged in ${Math.round(ms)} ms (${Math.round(rep.through / (ms / 1000))} events/s, whole tsctl call)`);
    console.log(`audit verify, all live           ${live.events} events in ${live.ms} ms replay (${Math.round(live.events / (live.ms / 1000))} events/s); ${live.findings.length} findings`);
    console.log(`audit verify, archived + live    ${archived.events} events in ${archived.ms} ms replay (${Math.round(archived.events / (archived.ms / 1000))} events/s, ${archived.archive.segments} segments); ${archived.findings.length} findings`);
  } finally {
    await c.stop();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
