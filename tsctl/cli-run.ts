// Entry of dist/tsctl-run.cjs: `tsctl run ...`, the command whose start users wait on, as a
// bundle of its own (bin/tsctl.cjs loads it when run is the first argument). Its program
// has run's command alone (the same definition as the whole tsctl's, tsctl/program.ts), so
// the bundle holds what a run needs and not every command's code: less to read, to load
// from the code cache and to evaluate at every start. With TSCTL_WARM_SERVE=SOCKET it is
// the warm process instead (tsctl/warm.ts), serving later runs, `image pull`s and `rm`s on that
// socket (a pull or an rm then costs its client node's start, not tsctl's load and a TLS
// connect: their code is in this bundle for that, read but not compiled by a plain run).
import { dirname } from 'node:path';
import { addRm, buildProgram } from './program.js';
import { launch } from './launch.js';
import { runCommands } from './commands/run.js';
import { addPull, imagePull } from './commands/pull.js';
import { nc, startTrace } from './session.js';
import { removeAll } from './remove.js';
import { serveWarm } from './warm.js';

const sock = process.env.TSCTL_WARM_SERVE;
if (sock) {
  const idle = Number(process.env.TSCTL_WARM_IDLE ?? 60);
  void serveWarm(sock, (idle > 0 ? idle : 60) * 1000, (argv, take) => {
    // a call that wants what only the client has (its terminal, its stdin) is handed back to it
    // before anything is written; any other is taken and served here
    const servedUnless = (clients: boolean | undefined, serve: () => Promise<void>): Promise<void> => (clients ? Promise.resolve(take(false)) : (take(true), serve()));
    const p = buildProgram({
      // -i and -t want the client's terminal (raw mode, stdin, its size)
      run: (image, cmd, o) => servedUnless(o.interactive || o.tty, () => runCommands.run(image, cmd, o)),
    }, 'run');
    // --password-stdin reads the client's stdin
    addPull(p.command('image').description('images: pull'), (ref, o) => servedUnless(o.passwordStdin, () => imagePull(ref, o)));
    // rm -f of many containers waits mostly on the cluster: a load and a connect of its own were
    // ~100 ms of its CPU and of its wall time before the first request (test/bench/remove.ts)
    addRm(p, (refs, o) => servedUnless(false, async () => removeAll(await nc(), refs, o.force === true, o.volumes === true)));
    return launch(p, argv);
  }, dirname(sock)).then((up) => { if (!up) process.exit(0); });
} else {
  startTrace();
  void launch(buildProgram(runCommands, 'run'), process.argv.slice(2));
}
