// A default container started the way a user starts one (`tsctl run` on a real cluster)
// is confined as Docker confines it: the agent's own path (ContainerHost → cgroups →
// createSpec → Runtime) applies the device rules, the seccomp profile, the capability
// sets, the rlimits and the masked paths, without any flag. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Cluster } from './helpers/cluster.js';

const t = suite('confine e2e');
let c: Cluster;
const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, mounts, cgroups)' : undefined;

t.before(async () => {
  if (skip) return;
  c = await Cluster.start();
  await c.importBusybox();
});
t.after(async () => { await c?.stop(); });

const NAME = 'confine e2e - tsctl run: host devices closed, seccomp on, caps and limits as Docker\'s';
if (skip) {
  console.log(`  skipped "${NAME}": ${skip}`);
  t.skip(NAME, () => undefined);
} else t(NAME, async () => {
  const script = [
    'mknod /dev/k c 10 232 && echo mknod=ok',
    'cat /dev/k >/dev/null 2>&1; echo kvm=$?',
    'mknod /dev/l b 7 0 && cat /dev/l >/dev/null 2>&1; echo loop=$?',
    'echo x > /dev/null; echo null=$?',
    'grep -E "^(CapInh|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status | tr -d "\\t" | tr : =',
    'echo nofile=$(ulimit -n)',
    'echo interrupts=$(wc -c < /proc/interrupts)',
    'unshare -U true 2>/dev/null; echo unshare=$?',
  ].join('; ');
  const r = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', script]);
  assert.is(r.code, 0, r.stderr);
  const got = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
  assert.equal(got, {
    mknod: 'ok', kvm: '1', loop: '1', null: '0',
    CapInh: '0000000000000000', CapAmb: '0000000000000000', NoNewPrivs: '0', Seccomp: '2',
    nofile: '1024', interrupts: '0', unshare: '1',
  });
});

t.run();
