// v2 delegation: a controller works in a group only if every ancestor lists it in
// cgroup.subtree_control. create() enables what we need on the way down.
export const WANTED = ['cpu', 'cpuset', 'memory', 'pids', 'io'] as const;

/** Tokens of cgroup.controllers / cgroup.subtree_control ('+' tolerated). */
export function tokens(text: string): string[] {
  return text.trim().split(/\s+/).filter(Boolean).map((t) => t.replace(/^\+/, ''));
}

/** Pure: the value to write into subtree_control, or undefined when nothing is missing. */
export function enableValue(available: string, enabled: string, wanted: readonly string[] = WANTED): string | undefined {
  const have = new Set(tokens(enabled));
  const avail = new Set(tokens(available));
  const add = wanted.filter((c) => avail.has(c) && !have.has(c));
  return add.length ? add.map((c) => `+${c}`).join(' ') : undefined;
}
