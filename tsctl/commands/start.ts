// create, start, restart and attach: a container's life after (or without) its first start.
import type { NatsConnection } from 'nats';
import { readFileSync } from 'node:fs';
import { newContainerId, decodeEvent } from '../../shared/codec.js';
import { subjects } from '../../shared/subjects.js';
import type { AnyEvent } from '../../shared/events.js';
import { controllerApi as capi } from '../../shared/api/controller.js';
import type { Actions, RunOpts } from '../program.js';
import { api, CliError } from '../client.js';
import { runRequest } from '../requests.js';
import { limitsFromFlags } from '../limits-flags.js';
import { seconds } from '../lifecycle-flags.js';
import { each, flushOutput, me, nc, out, waitMs } from '../session.js';
import { attachTo, nodeReports, untilNode } from '../watch.js';
import { LocalTerminal, detachKeysFlag } from '../terminal.js';

/**
 * Streams the output of `id` until it exits; ^C detaches (or, with `sigProxy`, goes to the
 * container). With `term` (a container of run -i / -t), stdin and the window size go to it
 * once `ask` has seen it run, on `stdinSubject`; ctrl-p ctrl-q (with -it) detaches.
 */
async function attached(c: NatsConnection, id: string, autoRemove: boolean, ask: () => Promise<unknown>, sigProxy: boolean,
  term?: { t: LocalTerminal; subject: string; tty: boolean }, startsIt = false, node?: string): Promise<number> {
  const attach = attachTo(c, id, autoRemove, node, !startsIt);
  const gone = () => {
    term?.t.stop();
    attach.cancel();
    process.stderr.write(`${term?.tty ? '\r\n' : ''}tsctl: detached from ${id.slice(0, 12)}; it runs on\n`);
    void flushOutput().then(() => process.exit(0));
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (sigProxy) { void api(c, capi.kill, { ref: id, signal: sig, user: me() }).catch(() => undefined); return; }
    // as docker attach --sig-proxy=false: the client goes, the container runs on
    gone();
  };
  process.on('SIGINT', onSignal); process.on('SIGTERM', onSignal);
  // started now by `ask` (start -ai): the node takes input once it reports the process running
  let running: Promise<void> = Promise.resolve();
  if (startsIt) running = new Promise<void>((res) => attach.onStarted(res));
  term?.t.rawMode();
  try { await ask(); } catch (err) { term?.t.stop(); attach.cancel(); throw err; }
  if (term) {
    await Promise.race([running, attach.done]);
    term.t.io.onDetach = gone;
    term.t.start(term.subject);
    // a shell redraws nothing by itself: the size it gets is this terminal's from now on
    if (term.tty) term.t.sendSize();
  }
  try { return await attach.done; } finally { term?.t.stop(); }
}

function readProfile(path: string): string {
  try { return readFileSync(path, 'utf8'); } catch (err) {
    throw new CliError(`cannot read seccomp profile "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export const startCommands: Pick<Actions, 'create' | 'start' | 'restart' | 'attach'> = {
  // like docker create: placed and prepared on a node, not started; prints the id once the node has it ready
  async create(image, cmd, o: RunOpts) {
    if (o.detach) throw new CliError('create: -d has no meaning (a created container does not run until tsctl start)');
    if (o.detachKeys !== undefined) throw new CliError('create: --detach-keys belongs to start -ai (or run, attach, exec)');
    const id = newContainerId();
    const req = { ...runRequest(id, image, cmd, o, me(), limitsFromFlags, readProfile), create: true };
    const c = await nc();
    const ready = nodeReports(c, id, 'ContainerCreated', 60000, 'it was ready');
    try { ready.placed((await api(c, capi.run, req)).node); } catch (err) { ready.cancel(); throw err; }
    await ready.done;
    out(id);
  },

  async start(refs, o) {
    const detachKeys = detachKeysFlag(o.detachKeys);
    const c = await nc();
    if (o.attach || o.interactive) {
      if (refs.length !== 1) throw new CliError(`start -${o.interactive ? 'i' : 'a'}: attach to one container at a time`);
      const ctr = await api(c, capi.inspect, { ref: refs[0]! });
      if (ctr.state === 'running') throw new CliError(`container ${ctr.name} is already running (tsctl attach streams its output)`);
      // -i: its stdin (and with -t its terminal) is this one's once it runs, as attach gives it
      const tty = o.interactive === true && ctr.spec.tty !== undefined;
      const interactive = o.interactive === true && ctr.spec.interactive === true;
      if (interactive && ctr.requestedBy !== me()) {
        throw new CliError(`start -i: ${ctr.name}'s stdin is its owner's ("${ctr.requestedBy}" created it), not "${me()}"'s: start -a attaches to its output only`);
      }
      const term = tty || interactive
        ? { t: new LocalTerminal(c, { tty, interactive, detachKeys }, { onDetach: () => undefined }), subject: subjects.stdin(ctr.node, me(), ctr.id), tty }
        : undefined;
      process.exitCode = await attached(c, ctr.id, ctr.spec.autoRemove, () => api(c, capi.start, { ref: ctr.id, user: me() }), false, term, true, ctr.node);
      return;
    }
    await each(refs, async (ref) => {
      await untilNode(c, ref, capi.start, {}, 'ContainerStarted', () => true, 60000);
    });
  },

  async restart(refs, o) {
    const t = o.time === undefined ? undefined : seconds('-t', o.time);
    const c = await nc();
    await each(refs, async (ref) => {
      const wait = t ?? (await api(c, capi.inspect, { ref })).spec.stopTimeout ?? 10;
      await untilNode(c, ref, capi.restart, t === undefined ? {} : { timeout: t }, 'ContainerStarted', () => true, 60000 + wait * 1000);
    });
  },

  // like docker attach: its output from now on, then its exit code; a container of run -i gets
  // this stdin (its owner's only), one of run -t this terminal's size and, with -it, its keys
  async attach(ref, o) {
    const detachKeys = detachKeysFlag(o.detachKeys);
    const c = await nc();
    const first = await api(c, capi.inspect, { ref });
    const tty = first.spec.tty !== undefined;
    const interactive = first.spec.interactive === true && o.stdin !== false;
    if (interactive && first.requestedBy !== me()) {
      throw new CliError(`attach: ${first.name}'s stdin is its owner's ("${first.requestedBy}" ran it), not "${me()}"'s: --no-stdin attaches to its output only`);
    }
    const term = tty || interactive
      ? { t: new LocalTerminal(c, { tty, interactive, detachKeys }, { onDetach: () => undefined }), subject: subjects.stdin(first.node, me(), first.id), tty }
      : undefined;
    process.exitCode = await attached(c, first.id, first.spec.autoRemove, async () => {
      // subscribed first: an exit between this look and the subscription is not missed
      const ctr = await api(c, capi.inspect, { ref: first.id });
      if (ctr.state !== 'running') throw new CliError(`you cannot attach to a stopped container: ${ctr.name} is ${ctr.state}, start it first`);
      // its node down already: no NodeDown is coming for the watch to hear, so the wait would
      // have no end (a NodeDown from now on is heard: the watch subscribed before this look)
      const nodes = await api(c, capi.nodes, {});
      if (nodes.some((n) => n.id === ctr.node && n.state === 'down')) {
        throw new CliError(`attach: ${ctr.name}'s node ${ctr.node} is down: what became of the container is unknown until the node is heard again (tsctl ps -a)`, 125);
      }
    }, o.sigProxy === true, term, false, first.node);
  },
};
