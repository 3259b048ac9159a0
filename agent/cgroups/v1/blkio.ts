// v1 blkio weight. blkio.weight belonged to CFQ, gone since 5.0; with BFQ the file is
// blkio.bfq.weight (same 10..1000 scale). Neither exists when no device uses BFQ.
import type { Plan, PlanContext, Resources } from '../types.js';

export function plan(r: Resources, ctx: PlanContext): Plan {
  if (r.blkioWeight === undefined) return { writes: [], warnings: [] };
  for (const file of ['blkio.weight', 'blkio.bfq.weight']) {
    if (ctx.files.has(file)) return { writes: [{ file, value: String(r.blkioWeight) }], warnings: [] };
  }
  return { writes: [], warnings: ['--blkio-weight not enforced: the kernel offers no blkio weight here (no device uses the BFQ scheduler)'] };
}
