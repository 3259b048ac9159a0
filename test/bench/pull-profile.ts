// Where a pull's time goes (not a test): wall and CPU of `tsctl image pull` and of the
// processes it makes work (nats-server, the registry, the controller), against `skopeo copy`
// to an OCI layout, interleaved, cold each time. CPU is what a loaded machine cannot hide.
//   node dist/test/bench/pull-profile.js [rounds]
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Cluster, ROOT } from '../helpers/cluster.js';
import { Registry, fiveLayerLayout, skopeo } from '../helpers/registry.js';

const N = Number(process.argv[2] ?? 5);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const tick = 1000 / 100;
/** CPU ms (user+sys) of the processes whose command line contains `needle`. */
function cpuOf(needle: string, also = ''): number {
  let ms = 0;
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cl = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (!cl.includes(needle) || !cl.includes(also)) continue;
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      ms += (Number(f[11]) + Number(f[12])) * tick;
    } catch { /* gone */ }
  }
  return ms;
}
function timed(cmd: string[], env?: NodeJS.ProcessEnv): { wall: number; cpu: number; out: string } {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', ...cmd], { encoding: 'utf8', env: env ?? process.env });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
  const [u, s] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return { wall, cpu: (u + s) * 1000, out: r.stdout };
}

async function main(): Promise<void> {
  const c = await Cluster.start();
  let reg: Registry | undefined;
  try {
    reg = await Registry.start(join(c.dir, 'registry'));
    const { layout } = fiveLayerLayout(c.dir, ROOT);
    skopeo([`oci:${layout.dir}:five`, `docker://${reg.host}/bench/five:1`]);
    const env = { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds };
    const tsctl = process.env.PROFILE_TSCTL ?? join(ROOT, 'bin/tsctl.cjs');
    const rows: Record<string, number[]> = {};
    const add = (k: string, v: number) => (rows[k] ??= []).push(v);
    for (let i = 0; i < N; i++) {
      const before = { nats: cpuOf(join(c.dir, 'nats.conf')), reg: cpuOf(join(reg.dir, 'config.yml')), ctl: cpuOf('controller/main.js', c.dir) };
      const prof = process.env.PROFILE_CPU ? ['--cpu-prof', '--cpu-prof-dir', process.env.PROFILE_CPU] : [];
      const ls = timed([process.execPath, tsctl, 'image', 'ls'], env);
      add('tsctl image ls cpu', ls.cpu); add('tsctl image ls wall', ls.wall);
      const t = timed([process.execPath, ...prof, tsctl, 'image', 'pull', `${reg.host}/bench/five:1`, '--name', 'five'], env);
      add('pull wall', t.wall); add('tsctl cpu', t.cpu);
      add('nats-server cpu', cpuOf(join(c.dir, 'nats.conf')) - before.nats);
      add('registry cpu (pull)', cpuOf(join(reg.dir, 'config.yml')) - before.reg);
      add('controller cpu', cpuOf('controller/main.js', c.dir) - before.ctl);
      await c.ok(['image', 'rm', 'five']);
      const dir = mkdtempSync(join(c.dir, 'skopeo-'));
      const r0 = cpuOf(join(reg.dir, 'config.yml'));
      const s = timed(['skopeo', '--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${reg.host}/bench/five:1`, `oci:${dir}:1`]);
      add('skopeo wall', s.wall); add('skopeo cpu', s.cpu);
      add('registry cpu (skopeo)', cpuOf(join(reg.dir, 'config.yml')) - r0);
      rmSync(dir, { recursive: true, force: true });
    }
    for (const [k, v] of Object.entries(rows)) console.log(`${k.padEnd(24)} median ${median(v).toFixed(0).padStart(6)} ms   [${v.map((x) => x.toFixed(0)).join(' ')}]`);
    console.log(`ratio ${(median(rows['pull wall']) / median(rows['skopeo wall'])).toFixed(2)}x wall`);
  } finally {
    await reg?.stop();
    await c.stop();
  }
}
main().catch((err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
