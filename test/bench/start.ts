// Start-path benchmark (not a test): swarmlite vs `runc run` on the same rootfs, same
// run, same machine. Prints medians and ratios; the README quotes this output.
//   node dist/test/bench/start.js [N]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, sleep } from '../helpers/cluster.js';

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

async function main(): Promise<void> {
  const c = await Cluster.start();
  try {
    await c.importBusybox();
    await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'true']); // warm: layer unpacked, caches hot
    const idleRss = rssKb(c.agent().pid!);

    const whole: number[] = [];
    for (let i = 0; i < N; i++) {
      const r = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'true']);
      if (r.code !== 0) throw new Error(`run failed: ${r.stderr}`);
      whole.push(r.ms);
    }
    const events = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l));
    const toRunning = events.filter((e) => e.type === 'ContainerStarted').slice(-N).map((e) => e.data.runningAt - e.data.receivedAt);

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
    console.log(`tsctl run --rm busybox true (whole)  median ${f(median(whole))}  ratio ${(median(whole) / rm).toFixed(2)}x runc  (goal <= 5x)`);
    console.log(`agent RSS idle                       ${(idleRss / 1024).toFixed(1)} MB  (goal < 80 MB)`);
    console.log(`per running container                ${((busyRss - idleRss + monRss) / M / 1024).toFixed(2)} MB  (agent +${((busyRss - idleRss) / 1024).toFixed(1)} MB, ${mons.length} monitors ${(monRss / 1024).toFixed(1)} MB, over ${M}; goal < 2 MB)`);
  } finally {
    await c.stop();
  }
}

main().catch((err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
