// Node and cluster verbs: nodes, info.
import { controllerApi as api } from '../../shared/api/controller.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { subjects } from '../../shared/subjects.js';
import { indexOf, own } from '../../shared/reducer.js';
import { conflict, invalid, notFound } from '../../shared/rpc.js';
import { checked, userOf, type ApiContext } from './context.js';

export function nodeVerbs(ctx: ApiContext): Bound[] {
  return [
    bind(api.nodes, () => Object.values(ctx.view().nodes)),
    // like docker node rm: a node that still has containers needs --force, and a node that is
    // still alive joins again when its agent restarts
    bind(api.nodeRm, async (r) => {
      const view = ctx.view();
      const node = own(view.nodes, r.node);
      if (!node) throw notFound(`no such node "${r.node}" (tsctl nodes lists them)`);
      // a down node's containers cannot be managed any more (its services' tasks were placed
      // elsewhere): removing it forgets them, as --force does; a live node still needs --force
      const down = node.state === 'down';
      const held = [...indexOf(view).onNode(r.node)].map((id) => view.containers[id]).filter((c) => ['created', 'running', 'removing'].includes(c.state));
      if (held.length && r.force !== true && !down) {
        throw conflict(`node ${r.node} still has ${held.length} container${held.length > 1 ? 's' : ''} (${held.slice(0, 3).map((c) => c.name).join(', ')}${held.length > 3 ? ', …' : ''}): remove them first or use --force`);
      }
      const { seq } = await ctx.append(subjects.cluster(r.node), 'NodeRemoved', r.node, checked('NodeRemoved', { force: r.force === true || down, user: userOf(r) }));
      await ctx.waitFor(seq);
      return { node: r.node };
    }),
    bind(api.nodeUpdate, async (r) => {
      if (!own(ctx.view().nodes, r.node)) throw notFound(`no such node "${r.node}" (tsctl node ls lists them)`);
      if (!r.availability && !r.labelAdd?.length && !r.labelRm?.length) throw invalid('node update: nothing to change (--availability, --label-add k=v, --label-rm k)');
      const labelAdd = r.labelAdd?.length ? Object.fromEntries(r.labelAdd.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) : undefined;
      const data = checked('NodeUpdated', {
        ...(r.availability ? { availability: r.availability } : {}), ...(labelAdd ? { labelAdd } : {}),
        ...(r.labelRm?.length ? { labelRm: r.labelRm } : {}), user: userOf(r),
      });
      const { seq } = await ctx.append(subjects.cluster(r.node), 'NodeUpdated', r.node, data);
      await ctx.waitFor(seq);
      return { node: r.node };
    }),
    bind(api.join, async (r) => {
      if (!ctx.join) throw invalid('this controller cannot add nodes (no trust files)');
      if (!r.user || !/^join-[0-9a-f]{12}$/.test(r.user)) throw invalid('join needs a join token (tsctl node token)');
      return { creds: await ctx.join(r.user, r.node) };
    }),
    bind(api.info, () => { const v = ctx.view(); return { seq: v.seq, sources: v.sources, chainIssues: v.chainIssues.length, forged: v.forgedCount ?? 0 }; }),
  ];
}
