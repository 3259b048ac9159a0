// Placement constraints as docker swarm writes them (--constraint node.labels.zone==a):
// parsed once where they enter (tsctl, the controller's request checks) and matched by the
// placement (controller/placement.ts) against a node. Pure.
import type { NodeView } from './reducer.js';

export interface Constraint { field: 'node.id' | 'node.hostname' | `node.labels.${string}`; op: '==' | '!='; value: string; text: string }

/** At most this many constraints on one task: each is matched against every node. */
export const MAX_CONSTRAINTS = 32;

export class ConstraintError extends Error {
  constructor(readonly constraint: string, why: string) { super(`invalid --constraint ${JSON.stringify(constraint.slice(0, 80))}: ${why}`); this.name = 'ConstraintError'; }
}

const SHAPE = /^\s*(node\.id|node\.hostname|node\.labels\.([A-Za-z0-9][A-Za-z0-9._/-]{0,127}))\s*(==|!=)\s*([A-Za-z0-9._/:-]{1,256})\s*$/;

/** One constraint; a ConstraintError that says the expected shape otherwise. */
export function parseConstraint(s: string): Constraint {
  if (typeof s !== 'string' || s.length > 512) throw new ConstraintError(String(s), 'at most 512 characters');
  const m = SHAPE.exec(s);
  if (!m) {
    if (!/==|!=/.test(s)) throw new ConstraintError(s, 'use KEY==VALUE or KEY!=VALUE');
    throw new ConstraintError(s, 'KEY is node.id, node.hostname or node.labels.<name>; VALUE letters, digits and . _ - / :');
  }
  return { field: m[1] as Constraint['field'], op: m[3] as '==' | '!=', value: m[4]!, text: `${m[1]}${m[3]}${m[4]}` };
}

/** Every constraint of a list, checked and normalised (no spaces); a ConstraintError on the first bad one. */
export function parseConstraints(list: readonly string[]): Constraint[] {
  if (list.length > MAX_CONSTRAINTS) throw new ConstraintError(list[MAX_CONSTRAINTS]!, `at most ${MAX_CONSTRAINTS} constraints`);
  return list.map(parseConstraint);
}

/** Whether `node` satisfies `c`; a label the node lacks is never equal (and always unequal). */
export function satisfies(node: NodeView, c: Constraint): boolean {
  let have: string | undefined;
  if (c.field === 'node.id') have = node.id;
  else if (c.field === 'node.hostname') have = node.hostname;
  else {
    const k = c.field.slice('node.labels.'.length);
    have = node.labels && Object.hasOwn(node.labels, k) ? node.labels[k] : undefined;
  }
  return c.op === '==' ? have === c.value : have !== c.value;
}

/** The first constraint of `cs` that `node` does not satisfy, if any. */
export function unmet(node: NodeView, cs: readonly Constraint[]): Constraint | undefined {
  for (const c of cs) if (!satisfies(node, c)) return c;
  return undefined;
}
