// tsctl: the user's side. Errors are one line on stderr and exit code 125; an attached
// `run` exits with the container's code, like docker. Commands live in commands/, one
// module per resource.
import { buildProgram, type Actions } from './program.js';
import { launch } from './launch.js';
import { runCommands } from './commands/run.js';
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

const actions: Actions = { ...runCommands, ...containerCommands, ...logCommands, ...imageCommands, ...networkCommands, ...volumeCommands, ...nodeCommands, ...userCommands, ...execCommands, ...lifecycleCommands, ...startCommands, ...serviceCommands };

/** Runs tsctl on argv; the process exits with tsctl's (or the container's) code. */
export function main(argv: string[]): void {
  const program = buildProgram(actions);
  addImageExtras(program);
  addBuild(program);
  void launch(program, argv);
}
