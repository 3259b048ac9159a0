// Node commands: nodes.
import { controllerApi as capi } from '../../shared/api/controller.js';
import type { Actions } from '../program.js';
import { api, CliError } from '../client.js';
import { table, ago, bytes } from '../format.js';
import { each, me, nc, out } from '../session.js';

export const nodeCommands: Pick<Actions, 'nodes' | 'nodeRm' | 'nodeUpdate' | 'info'> = {
  // like docker info: the cluster (log, containers, images) and each node (storage, cgroups, kernel)
  async info(o) {
    const c = await nc();
    const [log, nodes, images, running, all] = await Promise.all([
      api(c, capi.info, {}), api(c, capi.nodes, {}), api(c, capi.imageLs, {}),
      api(c, capi.ps, {}), api(c, capi.ps, { all: true }),
    ]);
    const { agentApi } = await import('../../shared/api/agent.js');
    const { agent } = await import('../client.js');
    const perNode = await Promise.all(nodes.map(async (n) => {
      if (n.state === 'down') return { id: n.id, state: 'down' as const };
      try { return { id: n.id, state: n.state ?? 'ready', ...(await agent(c, n.id, agentApi.info, {}, 3000)) }; } catch (err) { return { id: n.id, state: n.state ?? 'ready', error: (err as Error).message }; }
    }));
    const layers = new Set(images.flatMap((i) => i.layers ?? [i.digest]));
    const summary = {
      log: { seq: log.seq, sources: Object.keys(log.sources).length, chainIssues: log.chainIssues, forged: log.forged ?? 0 },
      // one page each: past a page the count says "+" rather than reading the whole view
      containers: { running: running.items.length, runningMore: running.next !== undefined, listed: all.items.length, more: all.next !== undefined },
      images: images.length, layers: layers.size, nodes: perNode,
    };
    if (o.format === 'json') return out(JSON.stringify(summary));
    const lines = [
      `Log: #${log.seq}, ${summary.log.sources} writers, ${log.chainIssues} chain issue(s), ${summary.log.forged} refused as forged`,
      `Containers: ${running.items.length}${running.next !== undefined ? '+' : ''} running, ${all.items.length}${summary.containers.more ? '+' : ''} in all`,
      `Images: ${images.length} (${layers.size} distinct layers)`,
      `Nodes: ${nodes.length}`,
    ];
    for (const n of perNode) {
      if ('error' in n) { lines.push(` ${n.id}: ${n.state}, does not answer (${n.error})`); continue; }
      if (!('cgroups' in n)) { lines.push(` ${n.id}: down`); continue; }
      const st = n.storage;
      lines.push(` ${n.id}: ${n.state}, kernel ${n.kernel ?? '?'}, cgroups ${n.cgroups}`);
      if (st) lines.push(`   Storage Driver: ${st.driver}${st.deepStacks ? ' (fsconfig lowerdir+: stacks past one mount option page)' : ''}, root ${st.root}: ${st.layers} layers unpacked, ${st.containers} writable layers, ${st.volumes} volumes`);
    }
    out(lines.join('\n'));
  },

  async nodes(o) {
    const list = await api(await nc(), capi.nodes, {});
    if (o.format === 'json') return out(JSON.stringify(list));
    const labels = (l?: Record<string, string>) => Object.entries(l ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    out(table(['NODE', 'HOSTNAME', 'STATE', 'AVAILABILITY', 'CPUS', 'MEMORY', 'KERNEL', 'LABELS', 'JOINED'],
      list.map((n) => [n.id, n.hostname, n.state ?? 'ready', n.availability ?? 'active', String(n.cpus), bytes(n.memory), n.kernel, labels(n.labels), ago(n.joinedAt)])));
  },

  async nodeUpdate(node, o) {
    if (o.availability !== undefined && !['active', 'pause', 'drain'].includes(o.availability)) throw new CliError(`invalid --availability "${o.availability}": active, pause or drain`);
    for (const kv of o.labelAdd) if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}=/.test(kv)) throw new CliError(`invalid --label-add "${kv.slice(0, 60)}": key=value (a key of letters, digits, . _ - /)`);
    await api(await nc(), capi.nodeUpdate, {
      node, ...(o.availability ? { availability: o.availability as 'active' } : {}),
      ...(o.labelAdd.length ? { labelAdd: o.labelAdd } : {}), ...(o.labelRm.length ? { labelRm: o.labelRm } : {}), user: me(),
    });
    out(node);
  },

  async nodeRm(nodes, o) {
    const c = await nc();
    await each(nodes, (node) => api(c, capi.nodeRm, { node, force: o.force === true, user: me() }));
  },
};
