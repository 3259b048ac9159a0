// exec benchmark (not a test): `true` run into a running `sleep` container, swarmlite's
// runtime (Runtime.exec: sl-monitor joins the container, the exit seen through exit.json)
// against `runc exec` into a runc container of the same rootfs, same run; then the whole
// `tsctl exec box true` through a cluster. Prints medians and ratios.
//   node dist/test/bench/exec.js [N]
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Runtime } from '../../agent/runtime/runtime.js';
import { createSpec } from '../../agent/runtime/spec.js';
import { cgroupManager, detect, removeNodeGroup } from '../../agent/cgroups/index.js';
import { Cluster } from '../helpers/cluster.js';

const N = Number(process.argv[2] ?? 50);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const f = (ms: number) => `${ms.toFixed(2)} ms`;

function rootfs(dir: string): string {
  const r = join(dir, 'rootfs');
  mkdirSync(join(r, 'bin'), { recursive: true });
  for (const d of ['proc', 'sys', 'dev', 'etc', 'tmp']) mkdirSync(join(r, d), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(r, 'bin', 'busybox'));
  for (const a of ['sh', 'sleep', 'true']) symlinkSync('busybox', join(r, 'bin', a));
  writeFileSync(join(r, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  return r;
}

async function swarmliteRuntime(dir: string, root: string): Promise<number[]> {
  const rt = new Runtime(join(dir, 'state'));
  const node = `bexec${randomBytes(3).toString('hex')}`;
  const id = 'bench-exec';
  const m = cgroupManager(detect(), node, id);
  m.create();
  const b = join(dir, 'bundle');
  mkdirSync(b);
  const spec = createSpec({ id, hostname: 'box', args: ['sleep', '1000'], env: ['PATH=/bin'], cwd: '/', network: { mode: 'none' }, rootfsPath: root });
  const started = await rt.start(id, b, spec, { cgroupProcs: m.procsFiles() });
  const times: number[] = [];
  try {
    for (let i = 0; i < N + 3; i++) {
      const execId = randomBytes(32).toString('hex');
      const t0 = performance.now();
      await rt.exec(id, execId, spec, { args: ['true'] }, m.procsFiles());
      const exit = await rt.waitExecExit(id, execId);
      const ms = performance.now() - t0;
      if (exit.code !== 0) throw new Error(`exec true exited ${exit.code}`);
      rt.deleteExec(id, execId);
      if (i >= 3) times.push(ms); // the first ones warm the caches
    }
  } finally {
    process.kill(started.pid, 'SIGKILL');
    await rt.waitExit(id).catch(() => undefined);
    await m.remove({ kill: true }).catch(() => undefined);
    try { removeNodeGroup(detect(), node); } catch { /* best effort */ }
  }
  return times;
}

async function runcExec(dir: string, root: string): Promise<number[]> {
  const bundle = join(dir, 'runc-bundle');
  const state = join(dir, 'runc-state');
  mkdirSync(bundle, { recursive: true });
  spawnSync('runc', ['spec', '-b', bundle]);
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = ['sleep', '1000'];
  spec.root = { path: root, readonly: true };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  const id = `benchexec${process.pid}`;
  const r = spawnSync('runc', ['--root', state, 'run', '-d', '-b', bundle, id], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`runc run -d failed (exit ${r.status})`);
  const times: number[] = [];
  try {
    for (let i = 0; i < N + 3; i++) {
      const t0 = performance.now();
      const e = spawnSync('runc', ['--root', state, 'exec', id, 'true'], { stdio: 'ignore' });
      const ms = performance.now() - t0;
      if (e.status !== 0) throw new Error(`runc exec failed (exit ${e.status})`);
      if (i >= 3) times.push(ms);
    }
  } finally {
    spawnSync('runc', ['--root', state, 'kill', id, 'KILL'], { stdio: 'ignore' });
    for (let k = 0; k < 50 && spawnSync('runc', ['--root', state, 'delete', id], { stdio: 'ignore' }).status !== 0; k++) spawnSync('sleep', ['0.05']);
  }
  return times;
}

async function tsctlExec(): Promise<number[]> {
  const c = await Cluster.start();
  try {
    await c.importBusybox();
    await c.ok(['run', '-d', '--name', 'box', '--network', 'none', 'busybox', 'sleep', '1000']);
    const times: number[] = [];
    for (let i = 0; i < N + 3; i++) {
      const r = await c.tsctl(['exec', 'box', 'true']);
      if (r.code !== 0) throw new Error(`tsctl exec failed: ${r.stderr}`);
      if (i >= 3) times.push(r.ms);
    }
    return times;
  } finally { await c.stop(); }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sl-bench-exec-'));
  try {
    const root = rootfs(dir);
    const runc = await runcExec(dir, root);
    const ours = await swarmliteRuntime(dir, root);
    const whole = await tsctlExec();
    const rm = median(runc);
    console.log(`swarmlite exec benchmark, N=${N}, ${new Date().toISOString()}`);
    console.log(`runc exec <ctr> true (baseline, whole)  median ${f(rm)}`);
    console.log(`Runtime.exec true -> exit seen          median ${f(median(ours))}  ratio ${(median(ours) / rm).toFixed(2)}x runc  (goal <= 0.5x)`);
    console.log(`tsctl exec box true (whole)             median ${f(median(whole))}  ratio ${(median(whole) / rm).toFixed(2)}x runc`);
  } finally { rmSync(dir, { recursive: true, force: true }); }
}

main().catch((err) => { console.error(err); process.exit(1); });
