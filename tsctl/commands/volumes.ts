// Volume commands: create, ls, inspect, rm, prune.
import { controllerApi as capi } from '../../shared/api/controller.js';
import type { Actions } from '../program.js';
import { api } from '../client.js';
import { table } from '../format.js';
import { each, json, me, nc, out } from '../session.js';

export const volumeCommands: Pick<Actions, 'volumeCreate' | 'volumeLs' | 'volumeInspect' | 'volumeRm' | 'volumePrune'> = {
  async volumeCreate(name, o) {
    const r = await api(await nc(), capi.volumeCreate, { name, ...(o.node ? { node: o.node } : {}), ...(o.label.length ? { labels: o.label } : {}), user: me() }, 20000);
    out(r.name);
  },

  async volumeLs(o) {
    const list = await api(await nc(), capi.volumeLs, o.node ? { node: o.node } : {});
    if (o.format === 'json') return out(JSON.stringify(list));
    if (o.quiet) return out(list.map((v) => v.name).join('\n'));
    out(table(['DRIVER', 'VOLUME NAME', 'NODE', 'STATE', 'USED BY'], list.map((v) => [v.driver, v.name, v.node, v.state, v.containers.map((c) => c.name).join(',')])));
  },

  async volumeInspect(names, o) {
    const c = await nc();
    const list: unknown[] = [];
    for (const name of names) list.push(await api(c, capi.volumeInspect, { name, ...(o.node ? { node: o.node } : {}) }));
    out(json(list));
  },

  async volumeRm(names, o) {
    const c = await nc();
    await each(names, (name) => api(c, capi.volumeRm, { name, ...(o.node ? { node: o.node } : {}), user: me() }, 20000));
  },

  async volumePrune(o) {
    const r = await api(await nc(), capi.volumePrune, { ...(o.node ? { node: o.node } : {}), ...(o.all ? { all: true } : {}), user: me() }, 20000);
    if (r.removed.length) out(r.removed.map((v) => `${v.name}${v.node ? ` (${v.node})` : ''}`).join('\n'));
    out(`Removed ${r.removed.length} volume${r.removed.length === 1 ? '' : 's'}`);
  },
};
