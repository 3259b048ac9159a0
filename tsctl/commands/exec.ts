// tsctl exec: a process in a running container, on whichever node runs it. tsctl makes the
// exec id, subscribes to its output (logs.*.<execId>) before asking, asks the controller
// (which routes to the node), prints the output and exits with the process's code, which
// the node's end-of-output frame carries. -i forwards stdin on stdin.<node>.<execId>.
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { controllerApi as capi } from '../../shared/api/controller.js';
import { subjects } from '../../shared/subjects.js';
import type { Actions, ExecOpts } from '../program.js';
import { api, CliError } from '../client.js';
import { me, nc, write } from '../session.js';
import { LocalTerminal, localSize, detachKeysFlag } from '../terminal.js';

/** What one request may carry: NATS refuses a message over 1 MiB; leave room for the rest. */
const REQUEST_MAX = 900 << 10;

/** Checks what the node would refuse anyway, so the user gets the one line before any round trip. */
export function execRequestOf(ref: string, cmd: string[], o: ExecOpts, execId: string) {
  if (cmd.length === 0 || cmd[0] === '') throw new CliError('exec needs a command: tsctl exec [-e K=V] [-w DIR] [-u USER] [-i] CONTAINER COMMAND [ARG...]');
  const env = o.env ?? [];
  for (const e of env) {
    if (e.indexOf('=') <= 0) throw new CliError(`invalid -e "${e.slice(0, 40)}": K=V`);
    if (e.includes('\0')) throw new CliError(`invalid -e "${e.slice(0, 40).replace(/\0/g, '\\0')}": contains a NUL byte`);
  }
  cmd.forEach((a) => { if (a.includes('\0')) throw new CliError(`invalid command argument "${a.slice(0, 40).replace(/\0/g, '\\0')}": contains a NUL byte`); });
  if (o.workdir !== undefined && !o.workdir.startsWith('/')) throw new CliError(`invalid -w "${o.workdir.slice(0, 40)}": an absolute path in the container`);
  const size = [...cmd, ...env, o.workdir ?? '', o.user ?? ''].reduce((n, s) => n + Buffer.byteLength(s) + 8, 0);
  if (size > REQUEST_MAX) throw new CliError(`the command and environment are ${size} bytes; an exec takes at most ${REQUEST_MAX} (a message of the cluster is at most 1 MiB)`);
  return {
    ref, execId, args: cmd, ...(env.length ? { env } : {}), ...(o.workdir ? { workdir: o.workdir } : {}),
    ...(o.user !== undefined ? { processUser: o.user } : {}), ...(o.interactive ? { interactive: true } : {}),
    ...(o.tty ? { tty: localSize() ?? { rows: 0, cols: 0 } } : {}),
  };
}

export const execCommands: Pick<Actions, 'exec'> = {
  async exec(ref, cmd, o) {
    const execId = randomBytes(32).toString('hex');
    const req = execRequestOf(ref, cmd, o, execId);
    const detachKeys = detachKeysFlag(o.detachKeys);
    const c = await nc();
    let ended: (code: number) => void = () => undefined;
    const done = new Promise<number>((res) => { ended = res; });
    // a restarted agent streams a running exec again from its start: frames carry their
    // offset in the exec's log, so one already printed is dropped
    let printed = -1;
    // the server refuses the subscription to a role that may not read output (a viewer):
    // that refusal is the answer, not the request's timeout after it
    let refused: (err: Error) => void = () => undefined;
    const denied = new Promise<never>((_res, rej) => { refused = rej; });
    denied.catch(() => undefined);
    const sub = c.subscribe(subjects.logsOf(execId), {
      callback: (e, m) => {
        if (e) { refused(new CliError(/permissions violation/i.test(e.message) ? `permission denied: "${me()}" may not exec (the server refused to deliver its output)` : `exec: ${e.message}`)); return; }
        if (m.headers?.get('eof')) { ended(Number(m.headers.get('code') || -1)); return; }
        const o = m.headers?.get('o');
        if (o) { if (Number(o) <= printed) return; printed = Number(o); }
        write(Number(m.headers?.get('s') ?? 1), m.data);
      },
    });
    // ctrl-p ctrl-q: tsctl goes, the process runs on (its stdin stays open, as docker's)
    let detach: (v: 'detached') => void = () => undefined;
    const detached = new Promise<'detached'>((res) => { detach = res; });
    const term = new LocalTerminal(c, { tty: o.tty === true, interactive: o.interactive === true, detachKeys }, { onDetach: () => detach('detached') });
    term.rawMode();
    const r = await Promise.race([api(c, capi.exec, req), denied]).catch((err) => { term.stop(); sub.unsubscribe(); throw err; });
    if (!r.started) { term.stop(); sub.unsubscribe(); throw new CliError(r.error, r.exitCode); }
    try {
      term.start(subjects.stdin(r.node, me(), execId));
      // the size may have changed between the request and now; a resize is cheap
      if (o.tty) term.sendSize();
      const code = await Promise.race([done, denied, detached]);
      if (code === 'detached') { process.stderr.write('\r\n'); return; }
      if (code < 0) throw new CliError('the exec ended with its container; its exit code is unknown');
      process.exitCode = code;
    } finally {
      term.stop();
      sub.unsubscribe();
    }
  },
};
