// Entry of dist/tsctl-run.cjs: `tsctl run ...`, the command whose start users wait on, as a
// bundle of its own (bin/tsctl.cjs loads it when run is the first argument). Its program
// has run's command alone (the same definition as the whole tsctl's, tsctl/program.ts), so
// the bundle holds what a run needs and not every command's code: less to read, to load
// from the code cache and to evaluate at every start.
import { buildProgram } from './program.js';
import { launch } from './launch.js';
import { runCommands } from './commands/run.js';
import { startTrace } from './session.js';

startTrace();
launch(buildProgram(runCommands, 'run'), process.argv.slice(2));
