// tsctl: the user's side. Errors are one line on stderr and exit code 125; an attached
// `run` exits with the container's code, like docker. Commands live in commands/, one
// module per resource.
import { buildProgram, runProgram, type Actions } from './program.js';
import { CliError } from './client.js';
import { flushOutput, setCreds, setTimeoutLimit, setUrl } from './session.js';
import { userCommands } from './commands/users.js';
import { containerCommands } from './commands/containers.js';
import { logCommands } from './commands/log.js';
import { imageCommands, addImageExtras } from './commands/images.js';
import { networkCommands } from './commands/networks.js';
import { volumeCommands } from './commands/volumes.js';
import { nodeCommands } from './commands/nodes.js';
import { execCommands } from './commands/exec.js';
import { lifecycleCommands } from './commands/lifecycle.js';
import { startCommands } from './commands/start.js';
import { addBuild } from './commands/build.js';
import { serviceCommands } from './commands/services.js';

const actions: Actions = { ...containerCommands, ...logCommands, ...imageCommands, ...networkCommands, ...volumeCommands, ...nodeCommands, ...userCommands, ...execCommands, ...lifecycleCommands, ...startCommands, ...serviceCommands };
const program = buildProgram(actions);
addImageExtras(program);
addBuild(program);
setUrl(() => program.opts().nats);
setCreds(() => program.opts().creds);
program.hook('preAction', () => setTimeoutLimit(program.opts().timeout));

/** Runs tsctl on argv; the process exits with tsctl's (or the container's) code. */
export function main(argv: string[]): void {
  runProgram(program, argv)
    .catch((err) => {
      if (err instanceof CliError) { if (err.message) process.stderr.write(`tsctl: ${err.message}\n`); process.exitCode = err.exitCode; }
      else { process.stderr.write(`tsctl: ${(err as Error).message}\n`); process.exitCode = 125; }
    })
    .finally(async () => {
      // every request was answered and every publish awaited: a graceful close would only
      // wait for the server; but what is written must reach a slow pipe before exit
      await flushOutput();
      process.exit(process.exitCode ?? 0);
    });
}
