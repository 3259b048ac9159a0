// sl-runtime's entry (bin/sl-runtime runs it): the exit code is runc's (cli.ts).
import { main } from './cli.js';

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
  process.stderr.write(`sl-runtime: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
