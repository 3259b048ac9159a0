// Where a container's groups live: swarmlite/<node>/<container> under every hierarchy,
// so two agents (two node ids) on one machine never see each other's groups.
import { CgroupError } from './errors.js';

export const TOP = 'swarmlite';

// Ids become directory names: no '/', no '..', nothing the kernel treats specially.
const SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function checkSegment(kind: 'node' | 'container', s: string): string {
  if (!SEGMENT_RE.test(s)) {
    throw new CgroupError(`cgroup: invalid ${kind} id ${JSON.stringify(s)} (use letters, digits, '_', '.', '-')`, s, 'EINVAL');
  }
  return s;
}

/** Relative path of the node's parent group. */
export function nodeGroup(node: string): string {
  return `${TOP}/${checkSegment('node', node)}`;
}

/** Relative path of one container's group. */
export function containerGroup(node: string, container: string): string {
  return `${nodeGroup(node)}/${checkSegment('container', container)}`;
}
