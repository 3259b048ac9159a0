// What confinement costs on the start path (not a test): Runtime.start of `true` in a real
// cgroup, N times with Docker's defaults (device rules, seccomp, rlimits, oom score) and N
// times with all of it taken out of the same spec, interleaved so that the load of a busy
// machine hits both alike. Goal: confinement adds ≤ 1 ms to the median.
//   node dist/test/bench/confine.js [N]
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '../../agent/runtime/runtime.js';
import { createSpec, type OciSpec } from '../../agent/runtime/spec.js';
import { cgroupManager, detect, removeNodeGroup, type CgroupManager } from '../../agent/cgroups/index.js';

const N = Number(process.argv[2] ?? 40);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

function unconfined(s: OciSpec): OciSpec {
  const { seccomp: _s, resources: _r, ...linux } = s.linux;
  const { rlimits: _l, oomScoreAdj: _o, ...proc } = s.process;
  return { ...s, process: proc, linux };
}

async function main(): Promise<void> {
  const T = mkdtempSync(join(tmpdir(), 'sl-bench-confine-'));
  const rootfs = join(T, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(rootfs, 'bin', 'busybox'));
  symlinkSync('busybox', join(rootfs, 'bin', 'true'));
  const rt = new Runtime(join(T, 'state'));
  const det = detect();
  const node = `bench-confine-${process.pid}`;
  const managers: CgroupManager[] = [];
  const times = { confined: [] as number[], plain: [] as number[] };
  const diffs: number[] = []; // confined - plain of the same round: drift cancels
  try {
    for (let i = 0; i < N + 2; i++) {
      const round: Record<string, number> = {};
      for (const kind of (i % 2 ? ['confined', 'plain'] : ['plain', 'confined']) as ('confined' | 'plain')[]) {
        const id = `${kind}-${i}`;
        const m = cgroupManager(det, node, id);
        managers.push(m);
        m.create();
        const bundle = join(T, 'bundles', id);
        mkdirSync(bundle, { recursive: true });
        const t0 = performance.now();
        // createSpec is inside the timing: the profile's resolution is part of the cost
        const spec = createSpec({ id, hostname: id, args: ['true'], env: [], cwd: '/', network: { mode: 'none' }, rootfsPath: rootfs });
        await rt.start(id, bundle, kind === 'confined' ? spec : unconfined(spec), { cgroupProcs: m.procsFiles() });
        const ms = performance.now() - t0;
        if (i >= 2) times[kind].push(ms); // the first rounds load koffi and compile the profile
        round[kind] = ms;
        await rt.waitExit(id);
        await m.remove({ kill: true });
      }
      if (i >= 2) diffs.push(round.confined! - round.plain!);
    }
  } finally {
    for (const m of managers) await m.remove({ kill: true }).catch(() => undefined);
    removeNodeGroup(det, node);
    rmSync(T, { recursive: true, force: true });
  }
  const c = median(times.confined), p = median(times.plain);
  console.log(`swarmlite confinement start benchmark, N=${N} each (interleaved), cgroup ${det.kind}, ${new Date().toISOString()}`);
  console.log(`Runtime.start to exec, unconfined spec   median ${p.toFixed(2)} ms`);
  console.log(`Runtime.start to exec, Docker defaults   median ${c.toFixed(2)} ms`);
  console.log(`confinement adds                         ${(c - p).toFixed(2)} ms  (difference of medians)`);
  console.log(`confinement adds, paired                 ${median(diffs).toFixed(2)} ms  (median of per-round differences; goal <= 1 ms)`);
}

main().catch((e) => { console.error(e); process.exit(1); });
