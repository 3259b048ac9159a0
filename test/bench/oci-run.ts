// sl-runtime benchmark (not a test): `sl-runtime run` against `runc run` of `true` on the
// same busybox bundle (runc's default spec), alternating, same run; also the in-process
// create → start → exit → delete of agent/oci without node's start. Prints medians and ratios.
//   node dist/test/bench/oci-run.js [N]
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultSpec } from '../../agent/oci/default-spec.js';
import { OciRuntime, cgroupNode } from '../../agent/oci/container.js';
import { detect, removeNodeGroup } from '../../agent/cgroups/index.js';

const N = Number(process.argv[2] ?? 20);
const BIN = fileURLToPath(new URL('../../../bin/sl-runtime', import.meta.url));
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

const T = mkdtempSync(join(tmpdir(), 'sl-oci-bench-'));
const root = join(T, 'sl'), runcRoot = join(T, 'runc');
const bundle = join(T, 'bundle');
mkdirSync(join(bundle, 'rootfs', 'bin'), { recursive: true });
copyFileSync('/usr/bin/busybox', join(bundle, 'rootfs', 'bin', 'busybox'));
for (const a of ['sh', 'true']) symlinkSync('busybox', join(bundle, 'rootfs', 'bin', a));
const spec = defaultSpec() as { process: { args: string[] } };
spec.process.args = ['true'];
writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));

const time = (cmd: string, args: string[]) => {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd: bundle, stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}`);
  return performance.now() - t0;
};
const sl: number[] = [], rc: number[] = [], inproc: number[] = [];
const rt = new OciRuntime(root);
try {
  for (let i = 0; i < N; i++) {
    sl.push(time(process.execPath, [BIN, '--root', root, 'run', `b${i}`]));
    rc.push(time('runc', ['--root', runcRoot, 'run', `b${i}`]));
    const t0 = performance.now();
    await rt.create(`p${i}`, { bundle });
    await rt.start(`p${i}`);
    await rt.waitExit(`p${i}`);
    await rt.delete(`p${i}`, true);
    inproc.push(performance.now() - t0);
  }
  const a = median(sl), b = median(rc), c = median(inproc);
  console.log(`N=${N}  sl-runtime run ${a.toFixed(1)} ms  runc run ${b.toFixed(1)} ms  ratio ${(a / b).toFixed(2)}x`);
  console.log(`       agent/oci create+start+wait+delete in process (no node start) ${c.toFixed(1)} ms  ratio ${(c / b).toFixed(2)}x`);
} finally {
  try { removeNodeGroup(detect(), cgroupNode(root)); } catch { /* none */ }
  rmSync(T, { recursive: true, force: true });
}
