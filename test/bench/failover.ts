// Controller failover benchmark (not a test), on a simulated fleet (ops/fleet, 3 hosts, a
// controller on each): the leading controller is killed (kill -9 of it and its supervisor) or
// its host is cut off (ops/fleet partition), ROUNDS times each, and the bench times, from the
// kill or the cut: the lease held by another host (read from the lease stream's leader), the
// first `ps` answered (the new leader: only a leader serves the API), and the first
// `tsctl run -d` answered. Goal (issue 11): controller failover <= 3 s. Prints each round
// and the medians.
//   node dist/test/bench/failover.js [ROUNDS=3] [kill|partition|both]
import { connect, type NatsConnection } from 'nats';
import { connectOptions, readCreds } from '../../shared/nats/trust.js';
import { call } from '../../shared/nats/rpc.js';
import { controllerApi } from '../../shared/api/controller.js';
import { subjects } from '../../shared/subjects.js';
import { LEASE_BUCKET, LEASE_KEY } from '../../controller/lease.js';
import { Fleet, sleep } from '../helpers/fleet.js';
import { runTsctl } from '../helpers/cluster.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const MODE = process.argv[3] ?? 'both';

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN; };

async function holder(nc: NatsConnection): Promise<string> {
  try {
    const jsm = await nc.jetstreamManager({ timeout: 1000 });
    const m = await jsm.streams.getMessage(`KV_${LEASE_BUCKET}`, { last_by_subj: `$KV.${LEASE_BUCKET}.${LEASE_KEY}` });
    const op = m.header?.get('KV-Operation');
    return (!op || op === 'PUT') && m.data.length ? (JSON.parse(new TextDecoder().decode(m.data)) as { host: string }).host : '';
  } catch { return ''; }
}

/** Connected through every server but `but`'s (a cut-off server would only stall the reads). */
async function dial(f: Fleet, but: string): Promise<NatsConnection> {
  const urls = f.env.SWARMLITE_NATS.split(',').filter((_, i) => `h${i + 1}` !== but).join(',');
  return connect({ ...connectOptions(readCreds(f.env.SWARMLITE_CREDS), urls), maxReconnectAttempts: -1, pingInterval: 1000, maxPingOut: 2 });
}

interface Round { mode: string; from: string; to: string; leaseMs: number; psMs: number; runMs: number; runTries: number; tries: string[]; steadyMs: number }

async function round(f: Fleet, mode: 'kill' | 'partition', n: number): Promise<Round> {
  let nc = await dial(f, '');
  // after a heal the lease may move once more: a round starts from a settled leader
  let from = '';
  for (let k = 0; k < 120 && !from; k++) { from = await holder(nc); if (!from) await sleep(500); }
  if (!from) throw new Error('nobody holds the lease');
  await sleep(6000); // past the new term's first look at the lease stream's leader (keepLeadersAway)
  // the same run with nothing failing, to compare with (a loaded host's start takes seconds)
  const q0 = Date.now();
  const q = await runTsctl(['run', '-d', '--name', `fq${mode[0]}${n}`, 'busybox', 'sleep', '600'], { env: f.env });
  const steadyMs = q.code === 0 ? Date.now() - q0 : -1;
  await nc.close();
  nc = await dial(f, from);
  const env = { ...f.env, SWARMLITE_NATS: f.env.SWARMLITE_NATS.split(',').filter((_, i) => `h${i + 1}` !== from).join(',') };
  const t0 = Date.now();
  if (mode === 'kill') f.kill(from, 'controller'); else f.partition(from);
  let leaseMs = 0, psMs = 0, runMs = 0, runTries = 0, to = '';
  const tries: string[] = [];
  const lease = (async () => { for (;;) { const h = await holder(nc); if (h && h !== from) { to = h; leaseMs = Date.now() - t0; return; } await sleep(50); } })();
  const ps = (async () => {
    for (;;) {
      try { await call(nc, `${subjects.api}.admin`, controllerApi.ps, {}, 1000); psMs = Date.now() - t0; return; } catch { await sleep(50); }
    }
  })();
  const run = (async () => {
    for (;;) {
      runTries++;
      const s0 = Date.now() - t0;
      const r = await runTsctl(['run', '-d', '--name', `fo${mode[0]}${n}`, 'busybox', 'sleep', '600'], { env: { ...env, TSCTL_TRACE: '1' } });
      // where a try's time went: the controller's reply (api.run.reply) or the node's start after it
      const m = /api\.run=([\d.]+) .*api\.run\.reply=([\d.]+).* exit=([\d.]+)/.exec(r.stderr);
      const err = r.stderr.split('\n').filter((l) => l && !l.startsWith('tsctl trace')).pop() ?? '';
      tries.push(`+${s0}: ${m ? `reply ${Math.round(Number(m[2]) - Number(m[1]))} ms, after it ${Math.round(Number(m[3]) - Number(m[2]))} ms` : `${Date.now() - t0 - s0} ms`}${r.code ? ` (${err.slice(0, 90)})` : ''}`);
      if (r.code === 0 || r.stderr.includes('already in use')) { runMs = Date.now() - t0; return; }
      if (Date.now() - t0 > 120_000) throw new Error(`run: ${r.stderr.trim()}`);
    }
  })();
  let bound: NodeJS.Timeout | undefined;
  try {
    await Promise.race([Promise.all([lease, ps, run]), new Promise((_, no) => { bound = setTimeout(() => no(new Error('no failover within 150 s')), 150_000); })]);
  } finally { clearTimeout(bound); }
  await nc.close();
  // back to three controllers: the old one returns as a standby
  if (mode === 'partition') f.heal(from);
  f.revive(from, 'controller');
  await sleep(mode === 'partition' ? 15_000 : 5000); // the heal's elections settle
  return { mode, from, to, leaseMs, psMs, runMs, runTries, tries, steadyMs };
}

async function main(): Promise<void> {
  const f = await Fleet.up(3);
  try {
    await f.importBusybox();
    const modes = MODE === 'both' ? ['kill', 'partition'] as const : [MODE as 'kill' | 'partition'];
    // the standbys are up (ops/fleet starts them once h1 leads)
    await sleep(5000);
    const out: Round[] = [];
    for (const mode of modes) {
      for (let i = 0; i < ROUNDS; i++) {
        const r = await round(f, mode, i);
        console.log(`failover ${mode} #${i + 1}: ${r.from} -> ${r.to}: lease moved ${r.leaseMs} ms, first ps answered ${r.psMs} ms, first run answered ${r.runMs} ms (${r.runTries} tries: ${r.tries.join('; ')}); a run before the failure took ${r.steadyMs} ms`);
        out.push(r);
      }
      const rs = out.filter((r) => r.mode === mode);
      console.log(`failover ${mode}: median of ${rs.length}: lease ${median(rs.map((r) => r.leaseMs))} ms, new leader answering ${median(rs.map((r) => r.psMs))} ms, run answered ${median(rs.map((r) => r.runMs))} ms (a run with nothing failing ${median(rs.map((r) => r.steadyMs))} ms) (goal: new leader answering <= 3000 ms)`);
    }
  } finally { f.down(); }
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
