// Removes everything one node's agent made on this host: containers (they outlive the
// agent by design), mounts, cgroups, links, netns and the nft table. Used by ops/down and
// by the tests' cleanup, so both leave the machine as they found it.
//   node dist/agent/node-teardown.js --state-dir DIR --node NODE
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { Runtime } from './runtime/runtime.js';
import { umount2, MNT_DETACH } from '../native/libc.js';
import { detect, pruneContainerGroups, removeNodeGroup } from './cgroups/index.js';
import { nodeLayout } from './layout.js';
import { mountsUnder } from './mountinfo.js';

const { values } = parseArgs({ options: { 'state-dir': { type: 'string' }, node: { type: 'string' } } });

async function main(): Promise<void> {
  const node = values.node, state = values['state-dir'];
  if (!node || !state) throw new Error('usage: teardown --state-dir DIR --node NODE');
  const layout = nodeLayout(state, node);
  const problems: string[] = [];
  const step = async (what: string, f: () => unknown) => { try { await f(); } catch (err) { problems.push(`${what}: ${(err as Error).message}`); } };

  if (existsSync(layout.runtime)) {
    const rt = new Runtime(layout.runtime);
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
    if (!existsSync(layout.network)) return;
    const { NetworkManager } = await import('./network/manager.js');
    const m = await NetworkManager.open({ node, stateDir: layout.network });
    try { await m.destroy(); } finally { m.close(); }
  });
  await step('cgroups', async () => {
    const det = detect();
    const r = await pruneContainerGroups(det, node, [], { kill: true });
    for (const f of r.failed) problems.push(`cgroup ${f.container}: ${f.error.message}`);
    removeNodeGroup(det, node);
  });
  // every mount left under the node's dir (rootfs overlays, netns binds), deepest first
  for (const m of mountsUnder(layout.root)) await step(`umount ${m}`, () => umount2(m, MNT_DETACH));
  if (problems.length) {
    for (const p of problems) console.error(`teardown: ${p}`);
    process.exitCode = 1;
  }
}

main().catch((err) => { console.error(`teardown: ${(err as Error).message}`); process.exit(1); });
