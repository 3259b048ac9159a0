// Placement preferences as docker swarm writes them (--placement-pref spread=node.labels.zone):
// a service's tasks spread evenly over the values of a node label, before the spread over nodes.
// Several preferences nest: the second spreads inside each group of the first. Parsed where they
// enter (tsctl, the controller's request check) and applied by the placement
// (controller/placement.ts). Pure.
import type { NodeView } from './reducer.js';

export interface PlacementPref { label: string; text: string }

/** At most this many preferences on one service: each nests one more level of groups. */
export const MAX_PLACEMENT_PREFS = 8;

export class PlacementPrefError extends Error {
  constructor(readonly pref: string, why: string) { super(`invalid --placement-pref ${JSON.stringify(pref.slice(0, 80))}: ${why}`); this.name = 'PlacementPrefError'; }
}

/** A preference as the log keeps it (normalised): the schema refuses any other shape in a forged event. */
export const PLACEMENT_PREF_RE = /^spread=node\.labels\.([A-Za-z0-9][A-Za-z0-9._/-]{0,127})$/;

/** One preference; a PlacementPrefError that says the expected shape otherwise. */
export function parsePlacementPref(s: string): PlacementPref {
  if (typeof s !== 'string' || s.length > 160) throw new PlacementPrefError(String(s), 'at most 160 characters');
  const m = PLACEMENT_PREF_RE.exec(s.trim());
  if (!m) throw new PlacementPrefError(s, 'use spread=node.labels.<name> (the only strategy docker has)');
  return { label: m[1]!, text: `spread=node.labels.${m[1]}` };
}

/** Every preference of a list, checked and normalised; a PlacementPrefError on the first bad one. */
export function parsePlacementPrefs(list: readonly string[]): PlacementPref[] {
  if (list.length > MAX_PLACEMENT_PREFS) throw new PlacementPrefError(list[MAX_PLACEMENT_PREFS]!, `at most ${MAX_PLACEMENT_PREFS} preferences`);
  return list.map(parsePlacementPref);
}

/**
 * Per preference level, the group a node falls in: the label values of levels 0..i joined, so a
 * level's groups nest in the one above. A node without the label forms one group of its own at
 * that level, as in docker.
 */
export function groupKeys(node: NodeView, prefs: readonly PlacementPref[]): string[] {
  const keys: string[] = [];
  let key = '';
  for (const p of prefs) {
    const v = node.labels && Object.hasOwn(node.labels, p.label) ? `=${node.labels[p.label]}` : '-';
    key += `\0${v}`;
    keys.push(key);
  }
  return keys;
}

/**
 * For each candidate node, the task counts of its groups, one per level: the placement takes
 * the node whose tuple is least (fewest tasks in its level-0 group, then in its level-1 group
 * inside it, and so on). `count` is how many of the service's tasks a node runs.
 */
export function groupLoads(nodes: readonly NodeView[], prefs: readonly PlacementPref[], count: (node: string) => number): Map<string, number[]> {
  const keysOf = new Map(nodes.map((n) => [n.id, groupKeys(n, prefs)] as const));
  const total = new Map<string, number>();
  for (const [id, keys] of keysOf) {
    const c = count(id);
    if (c) for (const k of keys) total.set(k, (total.get(k) ?? 0) + c);
  }
  const out = new Map<string, number[]>();
  for (const [id, keys] of keysOf) out.set(id, keys.map((k) => total.get(k) ?? 0));
  return out;
}

/** Whether tuple a is below tuple b (same length): -1, 0 or 1. */
export function compareLoads(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}
