// The log's own verbs: log.archive (retention, admin only: the server lets no one else ask).
import { controllerApi as api } from '../../shared/api/controller.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { invalid } from '../../shared/rpc.js';
import type { ApiContext } from './context.js';

export function logVerbs(ctx: ApiContext): Bound[] {
  return [
    bind(api.logArchive, async (r) => {
      if (!ctx.archive) throw invalid('this controller cannot archive (no trust files: nothing to seal with)');
      return ctx.archive(r.before);
    }),
  ];
}
