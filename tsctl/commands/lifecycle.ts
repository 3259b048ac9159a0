// The container lifecycle verbs beyond run/stop/rm: top, wait, pause, unpause, rename, diff, export, commit, cp.
import type { NatsConnection } from 'nats';
import { decodeEvent } from '../../shared/codec.js';
import { subjects } from '../../shared/subjects.js';
import type { AnyEvent } from '../../shared/events.js';
import { controllerApi as capi } from '../../shared/api/controller.js';
import { agentApi } from '../../shared/api/agent.js';
import type { Actions } from '../program.js';
import { agent, api, CliError } from '../client.js';
import { table } from '../format.js';
import { each, me, nc, out } from '../session.js';
import { untilNode } from '../watch.js';

/** Resolves with the container's exit code once it is no longer running (docker wait). */
async function waitOne(c: NatsConnection, ref: string): Promise<number> {
  const first = await api(c, capi.inspect, { ref });
  // subscribed before looking at the state again, so an exit in between is not missed
  const sub = c.subscribe(subjects.stateOf(first.id));
  try {
    const ctr = await api(c, capi.inspect, { ref: first.id });
    if (ctr.state === 'exited' || ctr.state === 'failed') return ctr.exitCode ?? 0;
    if (ctr.state === 'rejected') throw new CliError(`${ctr.name}: refused by node ${ctr.node}: ${ctr.error ?? ''}`);
    for await (const m of sub) {
      let e: AnyEvent;
      try { e = decodeEvent(m.data); } catch { continue; }
      if (e.type === 'ContainerExited' || e.type === 'ContainerFailed') return e.data.exitCode;
      if (e.type === 'ContainerRemoved') throw new CliError(`${ctr.name}: removed before it exited`);
    }
    throw new CliError(`${ctr.name}: the wait was cut off`);
  } finally { sub.unsubscribe(); }
}

export const lifecycleCommands: Pick<Actions, 'top' | 'wait' | 'pause' | 'unpause' | 'rename' | 'diff' | 'exportFs' | 'commit' | 'cp'> = {
  // like docker: each returns once its node froze (thawed) the container, printing the ref
  async pause(refs) {
    const c = await nc();
    await each(refs, (ref) => untilNode(c, ref, capi.pause, {}, 'ContainerPaused', (s) => s === 'running', 15000));
  },
  async unpause(refs) {
    const c = await nc();
    await each(refs, (ref) => untilNode(c, ref, capi.unpause, {}, 'ContainerUnpaused', (s) => s === 'running', 15000));
  },
  async rename(ref, name) {
    await api(await nc(), capi.rename, { ref, name });
  },

  async top(ref) {
    const c = await nc();
    const ctr = await api(c, capi.inspect, { ref });
    if (ctr.state !== 'running') throw new CliError(`container ${ctr.name} is not running`);
    const r = await agent(c, ctr.node, agentApi.top, { id: ctr.id });
    out(table(r.titles, r.processes));
  },

  // like docker diff: one change a line, A added, C changed, D deleted
  async diff(ref) {
    const c = await nc();
    const ctr = await api(c, capi.inspect, { ref });
    const r = await agent(c, ctr.node, agentApi.diff, { id: ctr.id });
    // a name with a newline in it stays on its line
    if (r.changes.length) out(r.changes.map(([k, p]) => `${k} ${p.replace(/[\n\r\\]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : '\\r'))}`).join('\n'));
    if (r.truncated) process.stderr.write(`tsctl: diff: only the first ${r.changes.length} changes of ${ctr.name} are shown\n`);
  },

  // like docker export: the container's filesystem (its merged root) as a tar
  async exportFs(ref, o) {
    const file = o.output ?? '-';
    if (file === '-' && process.stdout.isTTY) throw new CliError('export: refusing to write an archive to a terminal: give -o FILE or redirect stdout');
    const { exportContainer } = await import('../container-archive.js');
    await exportContainer(await nc(), ref, file);
  },

  // like docker cp: one side is CONTAINER:PATH, the other a local path or "-" (a tar)
  async cp(src, dest, o) {
    const { splitRef, copyIn, copyOut } = await import('../container-copy.js');
    const from = splitRef(src), to = splitRef(dest);
    if (from && to) throw new CliError('cp: copying between two containers is not supported: copy to this machine first');
    if (!from && !to) throw new CliError('cp: one of SRC and DEST must be CONTAINER:PATH');
    if (from) { await copyOut(await nc(), from.ref, from.path, dest, { ...(o.followLink ? { follow: true } : {}) }); return; }
    await copyIn(await nc(), src, to!.ref, to!.path, { ...(o.archive ? { archive: true } : {}), user: me() });
  },

  // like docker commit: the writable layer becomes a new layer on the container's image
  async commit(ref, name, o) {
    const { commitContainer } = await import('../container-archive.js');
    const r = await commitContainer(await nc(), ref, name, { ...(o.message ? { message: o.message } : {}), ...(o.author ? { author: o.author } : {}), user: me() });
    out(r.digest);
  },

  // like docker wait: one exit code a line, in the order given, once each has stopped
  async wait(refs) {
    const c = await nc();
    const codes = await Promise.all(refs.map((ref) => waitOne(c, ref).then((n) => ({ n }), (err: Error) => ({ err }))));
    let failed: CliError | undefined;
    for (const r of codes) {
      if ('n' in r) out(String(r.n));
      else { process.stderr.write(`tsctl: ${r.err.message}\n`); failed = r.err instanceof CliError ? r.err : new CliError(r.err.message); }
    }
    if (failed) throw new CliError('', failed.exitCode);
  },
};
