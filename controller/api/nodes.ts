// Node and cluster verbs: nodes, info.
import { controllerApi as api } from '../../shared/api/controller.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import type { ApiContext } from './context.js';

export function nodeVerbs(ctx: ApiContext): Bound[] {
  return [
    bind(api.nodes, () => Object.values(ctx.view().nodes)),
    bind(api.info, () => { const v = ctx.view(); return { seq: v.seq, sources: v.sources, chainIssues: v.chainIssues.length }; }),
  ];
}
