// What each of tsctl's entries (the whole one, tsctl/main.ts; run's own, tsctl/cli-run.ts)
// does with its program: the global flags into the session, argv parsed and its action run,
// every error one line (exit 125), and the exit once output is written.
import type { Command } from 'commander';
import { runProgram } from './program.js';
import { CliError } from './client.js';
import { flushOutput, io, mark, setCreds, setTimeoutLimit, setUrl } from './session.js';

/**
 * Runs `program` on argv; the process (or, in the warm process, the call: tsctl/warm.ts)
 * exits with tsctl's (or the container's) code.
 */
export function launch(program: Command, argv: string[]): Promise<void> {
  mark('loaded'); // TSCTL_TRACE: the code loaded and the program built
  const o = io();
  setUrl(() => program.opts().nats);
  setCreds(() => program.opts().creds);
  program.hook('preAction', () => setTimeoutLimit(program.opts().timeout));
  return runProgram(program, argv)
    .catch((err) => {
      if (err instanceof CliError) { if (err.message) o.stderr.write(`tsctl: ${err.message}\n`); o.exitCode = err.exitCode; }
      else { o.stderr.write(`tsctl: ${(err as Error).message}\n`); o.exitCode = 125; }
    })
    .finally(async () => {
      // every request was answered and every publish awaited: a graceful close would only
      // wait for the server; but what is written must reach a slow pipe before exit
      await flushOutput();
      o.exit(o.exitCode ?? 0);
    });
}
