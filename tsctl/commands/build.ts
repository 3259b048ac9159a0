// tsctl build: an image from a Dockerfile and a context directory (tsctl/build.ts does the work).
import type { Command } from 'commander';
import { me, nc, out } from '../session.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export interface BuildFlags { tag: string[]; file?: string; buildArg: string[]; cache?: boolean; quiet?: boolean }

export function addBuild(program: Command): void {
  program.command('build').description('build an image from a Dockerfile: FROM, COPY, ADD, RUN, ENV, WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE, LABEL, ARG').argument('<dir>', 'the build context')
    .option('-t, --tag <name>', 'name of the image (repeatable)', collect, [])
    .option('-f, --file <file>', 'the Dockerfile (default: DIR/Dockerfile)')
    .option('--build-arg <k=v>', 'a value for an ARG (repeatable)', collect, [])
    .option('--no-cache', 'run every step again instead of reusing a cached one')
    .option('-q, --quiet', 'print only the image digest')
    .action(async (dir: string, o: BuildFlags) => {
      const { build } = await import('../build.js');
      const quiet = o.quiet === true;
      const r = await build(await nc(), dir, {
        tags: o.tag, ...(o.file ? { file: o.file } : {}), buildArgs: o.buildArg, noCache: o.cache === false, user: me(),
        say: (line) => { if (!quiet) out(line); },
      });
      if (quiet) out(r.digest);
    });
}
