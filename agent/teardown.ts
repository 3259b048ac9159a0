// Removes everything one node's agent made on this host: containers (they outlive the
// agent by design), mounts, cgroups, links, netns and the nft table. Used by ops/down and
// by the tests' cleanup, so both leave the machine as they found it.
//   node dist/agent/teardown.js --state-dir DIR --node NODE
import { parseArgs } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime } from './runtime/runtime.js';
import { umount2, MNT_DETACH } from '../native/libc.js';
import { detect, pruneContainerGroups, removeNodeGroup } from './cgroups/index.js';

const { values } = parseArgs({ options: { 'state-dir': { type: 'string' }, node: { type: 'string' } } });

async function main(): Promise<void> {
  const node = values.node, state = values['state-dir'];
  if (!node || !state) throw new Error('usage: teardown --state-dir DIR --node NODE');
  const dir = join(state, 'nodes', node);
  const problems: string[] = [];
  const step = async (what: string, f: () => unknown) => { try { await f(); } catch (err) { problems.push(`${what}: ${(err as Error).message}`); } };

  if (existsSync(join(dir, 'runtime'))) {
    const rt = new Runtime(join(dir, 'runtime'));
    for (const id of rt.list()) {
      await step(`kill ${id.slice(0, 12)}`, async () => {
        const st = rt.status(id);
        if (st.state !== 'running') return;
        const exited = rt.waitExit(id);
        rt.kill(id, 'SIGKILL');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      });
    }
  }
  await step('network', async () => {
    if (!existsSync(join(dir, 'network'))) return;
    const { NetworkManager } = await import('./network/manager.js');
    const m = await NetworkManager.open({ node, stateDir: join(dir, 'network') });
    try { await m.destroy(); } finally { m.close(); }
  });
  await step('cgroups', async () => {
    const det = detect();
    const r = await pruneContainerGroups(det, node, [], { kill: true });
    for (const f of r.failed) problems.push(`cgroup ${f.container}: ${f.error.message}`);
    removeNodeGroup(det, node);
  });
  // every mount left under the node's dir (rootfs overlays, netns binds), deepest first
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`))).sort((a, b) => b.length - a.length);
  for (const m of mounts) await step(`umount ${m}`, () => umount2(m, MNT_DETACH));
  if (problems.length) {
    for (const p of problems) console.error(`teardown: ${p}`);
    process.exitCode = 1;
  }
}

main().catch((err) => { console.error(`teardown: ${(err as Error).message}`); process.exit(1); });
