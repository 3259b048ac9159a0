// v2 io weight: io.bfq.weight takes docker's 10..1000 as is; io.weight (iocost) is
// 1..10000, converted linearly as runc does.
import type { Plan, PlanContext, Resources } from '../types.js';

export function blkioToIoWeight(w: number): number {
  return w <= 0 ? 0 : 1 + Math.floor(((w - 10) * 9999) / 990);
}

export function plan(r: Resources, ctx: PlanContext): Plan {
  if (r.blkioWeight === undefined) return { writes: [], warnings: [] };
  if (ctx.files.has('io.bfq.weight')) return { writes: [{ file: 'io.bfq.weight', value: String(r.blkioWeight) }], warnings: [] };
  if (ctx.files.has('io.weight')) return { writes: [{ file: 'io.weight', value: String(blkioToIoWeight(r.blkioWeight)) }], warnings: [] };
  return { writes: [], warnings: ['--blkio-weight not enforced: neither io.bfq.weight nor io.weight exists here'] };
}
