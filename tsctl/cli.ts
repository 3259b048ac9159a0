// Entry point of the bundle (dist/tsctl.cjs) and of the compiled tree (dist/tsctl/cli.js).
import { main } from './main.js';
import { startTrace } from './session.js';

startTrace();
main(process.argv.slice(2));
