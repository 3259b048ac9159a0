// A workload for the view's unit tests (snapshots, deltas, view --at): containers requested and
// started on three nodes n1..n3; every third exits and is removed; an older one (`oldBy` before)
// exits while later ones start. Through MemLog: the real codec and reducer.
import type { ContainerSpec } from '../../shared/events.js';
import type { MemLog } from './memlog.js';

export const spec = (name: string): ContainerSpec => ({
  name, image: 'busybox', imageDigest: `sha256:${'a'.repeat(64)}`, args: ['true'], env: [], hostname: 'h', workdir: '/', network: 'bridge', autoRemove: false,
});
export const cid = (i: number) => i.toString(16).padStart(64, '0');

/** `o.removeRequested`: the controller's ContainerRemoveRequested before each removal; `o.rejoinEvery`: a node rejoins every so many containers. */
export function lives(log: MemLog, from: number, n: number, o: { oldBy?: number; removeRequested?: boolean; rejoinEvery?: number } = {}): void {
  const oldBy = o.oldBy ?? 700;
  for (let i = from; i < from + n; i++) {
    const node = `n${(i % 3) + 1}`, id = cid(i);
    log.append('controller', `ev.desired.${node}.${id}`, 'ContainerRequested', id, { node, spec: spec(`c${i}`), user: 'u' });
    log.append(`node:${node}`, `ev.state.${node}.${id}`, 'ContainerStarted', id, { pid: 10, receivedAt: 1, runningAt: 2 });
    if (i % 3 === 0) {
      log.append(`node:${node}`, `ev.state.${node}.${id}`, 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: 3 });
      if (o.removeRequested) log.append('controller', `ev.desired.${node}.${id}`, 'ContainerRemoveRequested', id, { force: false, user: 'u' });
      log.append(`node:${node}`, `ev.state.${node}.${id}`, 'ContainerRemoved', id, { reason: 'rm' });
    }
    // an older one changes while the snapshot is being made
    const old = cid(Math.max(1, i - oldBy));
    const c = log.view.containers[old];
    if (c?.state === 'running') log.append(`node:${c.node}`, `ev.state.${c.node}.${old}`, 'ContainerExited', old, { exitCode: 1, oomKilled: false, exitedAt: 4 });
    if (o.rejoinEvery && i % o.rejoinEvery === 0) log.join(node, 2 + (i % 7));
  }
}
