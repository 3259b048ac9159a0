// tsctl run: a container started on a node, attached (its output, its exit code, docker's
// signal proxy) or detached. A module of its own: `tsctl run` is bundled alone
// (tsctl/cli-run.ts), with only what a run needs.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { newContainerId } from '../../shared/codec.js';
import { subjects } from '../../shared/subjects.js';
import { controllerApi as capi } from '../../shared/api/controller.js';
import type { Actions, RunOpts } from '../program.js';
import { api, apiAgain, CliError } from '../client.js';
import { runRequest } from '../requests.js';
import { limitsFromFlags } from '../limits-flags.js';
import { flushOutput, io, me, nc, out } from '../session.js';
import { signalNumber } from '../../shared/signals.js';
import { attachTo, waitStarted } from '../watch.js';
import { LocalTerminal, detachKeysFlag } from '../terminal.js';

export const runCommands: Pick<Actions, 'run'> = {
  async run(image, cmd, o: RunOpts) {
    const id = newContainerId();
    const std = io();
    const req = runRequest(id, image, cmd, o, me(), limitsFromFlags, readProfile);
    const detachKeys = detachKeysFlag(o.detachKeys);
    const c = await nc();
    if (o.detach) {
      // like docker run -d: print the id once the node has started it (or say why not)
      const started = waitStarted(c, id);
      try { started.placed((await apiAgain(c, capi.run, req)).node); } catch (err) { started.cancel(); throw err; }
      await started.done;
      out(id);
      return;
    }
    // Subscribe before asking, so no output or state event can slip past us.
    const attach = attachTo(c, id, req.autoRemove);
    let started = false;
    // -i / -t: stdin and the window size go to the container once it runs (tsctl/terminal.ts);
    // with -it ctrl-p ctrl-q leaves it running, as docker's
    let detach: () => void = () => undefined;
    const detached = new Promise<'detached'>((res) => { detach = () => res('detached'); });
    const term = o.interactive || o.tty ? new LocalTerminal(c, { tty: o.tty === true, interactive: o.interactive === true, detachKeys }, { onDetach: () => detach() }) : undefined;
    // after the start a signal goes to the container, as docker's proxy does; before it, it ends tsctl
    const forward = (sig: NodeJS.Signals) => {
      if (started) { void api(c, capi.kill, { ref: id, signal: sig, user: me() }).catch(() => undefined); return; }
      term?.stop();
      attach.cancel();
      std.stderr.write(`tsctl: ${sig} before container ${id.slice(0, 12)} started; it may still start (tsctl rm -f ${id.slice(0, 12)} removes it)\n`);
      void flushOutput(std).then(() => std.exit(128 + (signalNumber(sig) ?? 0)));
    };
    std.onSignal('SIGINT', forward); std.onSignal('SIGTERM', forward);
    // raw before asking: a shell's first prompt may come before the answer
    term?.rawMode();
    let node: string | undefined;
    let seen = false;
    // the start may be seen before the answer that names the node: input begins at the later of the two
    const begin = () => {
      if (started || !node || !seen) return;
      started = true;
      if (!term) return;
      term.start(subjects.stdin(node, me(), id));
      // the size may have changed since the request
      if (o.tty) term.sendSize();
    };
    attach.onStarted(() => { seen = true; begin(); });
    try {
      ({ node } = await apiAgain(c, capi.run, req));
      attach.placed(node);
    } catch (err) {
      term?.stop();
      attach.cancel();
      throw err;
    }
    begin();
    try {
      const code = await Promise.race([attach.done, detached]);
      if (code === 'detached') {
        attach.cancel();
        std.stderr.write(`\r\ntsctl: detached from ${id.slice(0, 12)}; it runs on (tsctl attach ${id.slice(0, 12)})\n`);
        return;
      }
      std.exitCode = code;
    } finally { term?.stop(); }
  }
};

/** --security-opt seccomp=FILE: the profile's text, or one line saying why not. */
function readProfile(path: string): string {
  try { return readFileSync(resolve(io().cwd, path), 'utf8'); } catch (err) {
    throw new CliError(`cannot read seccomp profile "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
