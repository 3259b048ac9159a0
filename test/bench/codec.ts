// Codec benchmark (not a test): decode (msgpack + every check), decode + hash (what a reader
// does per message) and encode (a writer's chain.next) of a realistic mix of events, in
// events/s, median of 7 rounds.
//   node dist/test/bench/codec.js [N]
import { decodeEvent, hashBytes, SourceChain } from '../../shared/codec.js';
import type { ContainerSpec } from '../../shared/events.js';

const N = Number(process.argv[2] ?? 100_000);
const ROUNDS = 7;

const spec = (i: number): ContainerSpec => ({
  name: `web-${i}`, image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['sh', '-c', 'sleep 1000'],
  env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `N=${i}`], hostname: `web-${i}`, workdir: '/',
  network: 'bridge', autoRemove: false, resources: { memory: 64 << 20, cpus: 0.5 }, ports: [{ host: 8000 + (i % 1000), container: 80, proto: 'tcp' }],
});

/** One container's life, as the log holds it: asked, started, stop asked, exited, removed. */
export function sampleLog(n: number): Uint8Array[] {
  const ctl = new SourceChain('controller');
  const node = new SourceChain('node:n1');
  const out: Uint8Array[] = [];
  const add = (c: SourceChain, r: { event: { srcSeq: number }; bytes: Uint8Array; hash: string }) => { c.commit(r.event.srcSeq, r.hash); out.push(r.bytes); };
  for (let i = 0; out.length < n; i++) {
    const id = i.toString(16).padStart(64, '0');
    const req = ctl.next('ContainerRequested', id, { node: 'n1', spec: spec(i), user: 'admin' });
    add(ctl, req);
    add(node, node.next('ContainerStarted', id, { pid: 1000 + i, receivedAt: Date.now(), runningAt: Date.now(), ip: '10.0.0.2' }, req.event.id as string));
    add(ctl, ctl.next('ContainerStopRequested', id, { timeout: 10, user: 'admin' }));
    add(node, node.next('ContainerExited', id, { exitCode: 137, signal: 'SIGKILL', oomKilled: false, exitedAt: Date.now() }));
    add(node, node.next('ContainerRemoved', id, { reason: 'removed' }));
  }
  return out.slice(0, n);
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
/** Median events/s by the wall clock, and by this process's CPU time (steadier on a busy machine). */
function rate(f: () => void, n: number): string {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    f();
    wall.push(n / ((performance.now() - t0) / 1000));
    const c = process.cpuUsage(c0);
    cpu.push(n / ((c.user + c.system) / 1e6));
  }
  return `median ${Math.round(med(wall))} events/s (by CPU time ${Math.round(med(cpu))})`;
}

function main(): void {
  if (process.argv[1]?.endsWith('codec.js') !== true) return;
  const log = sampleLog(N);
  const bytes = log.reduce((s, b) => s + b.length, 0);
  let sink = 0;
  const dec = rate(() => { for (const b of log) sink += decodeEvent(b).srcSeq; }, N);
  const decHash = rate(() => { for (const b of log) { sink += decodeEvent(b).srcSeq; sink += hashBytes(b).length; } }, N);
  const chain = new SourceChain('node:n1');
  const data = { exitCode: 0, oomKilled: false, exitedAt: Date.now() };
  const ids = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(64, '0'));
  const enc = rate(() => { for (let i = 0; i < N; i++) { const r = chain.next('ContainerExited', ids[i & 4095]!, data); chain.commit(r.event.srcSeq, r.hash); } }, N);
  console.log(`codec benchmark, ${N} events (mean ${Math.round(bytes / N)} B; requested/started/stop/exited/removed), ${new Date().toISOString()}`);
  console.log(`decode (msgpack + checks)         ${dec}   (goal >= 250000)`);
  console.log(`decode + sha256 (a reader's work) ${decHash}`);
  console.log(`encode + sha256 (chain.next)      ${enc}`);
  if (sink === -1) console.log('');
}

main();
