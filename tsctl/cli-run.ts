// Entry of dist/tsctl-run.cjs: `tsctl run ...`, the command whose start users wait on, as a
// bundle of its own (bin/tsctl.cjs loads it when run is the first argument). Its program
// has run's command alone (the same definition as the whole tsctl's, tsctl/program.ts), so
// the bundle holds what a run needs and not every command's code: less to read, to load
// from the code cache and to evaluate at every start. With TSCTL_WARM_SERVE=SOCKET it is
// the warm process instead (tsctl/warm.ts), serving later runs on that socket.
import { dirname } from 'node:path';
import { buildProgram } from './program.js';
import { launch } from './launch.js';
import { runCommands } from './commands/run.js';
import { startTrace } from './session.js';
import { serveWarm } from './warm.js';

const sock = process.env.TSCTL_WARM_SERVE;
if (sock) {
  const idle = Number(process.env.TSCTL_WARM_IDLE ?? 60);
  void serveWarm(sock, (idle > 0 ? idle : 60) * 1000, (argv, take) => launch(buildProgram({
    // -i and -t want the client's terminal (raw mode, stdin, its size): the client runs those itself
    run: (image, cmd, o) => (o.interactive || o.tty ? Promise.resolve(take(false)) : (take(true), runCommands.run(image, cmd, o))),
  }, 'run'), argv), dirname(sock)).then((up) => { if (!up) process.exit(0); });
} else {
  startTrace();
  void launch(buildProgram(runCommands, 'run'), process.argv.slice(2));
}
