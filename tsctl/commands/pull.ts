// `image pull`'s command: its flags, its login and its action, apart from the other image
// commands so that the warm tsctl (tsctl/cli-run.ts) serves pulls with run's bundle plus this,
// not every image command's code.
import type { Command } from 'commander';
import { CliError } from '../client.js';
import { io, me, nc, out } from '../session.js';

export interface PullFlags { name?: string; insecure?: boolean; username?: string; passwordStdin?: boolean; quiet?: boolean }

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8').replace(/\r?\n$/, '');
}

/** The registry login of pull and push: --username and --password-stdin, or their environment variables. */
export async function registryLogin(o: PullFlags): Promise<{ username?: string; password?: string }> {
  const env = io().env;
  const username = o.username ?? env.SWARMLITE_REGISTRY_USER;
  let password = env.SWARMLITE_REGISTRY_PASSWORD;
  if (o.passwordStdin) password = await readStdin();
  if (password !== undefined && username === undefined) throw new CliError('a registry password needs --username (or SWARMLITE_REGISTRY_USER)');
  return username !== undefined ? { username, password: password ?? '' } : {};
}

/** The call's own io throughout: the warm tsctl serves pulls too (tsctl/cli-run.ts). */
export async function imagePull(ref: string, o: PullFlags): Promise<void> {
  const { pullImage } = await import('../image-pull.js');
  const { terminalProgress, plainProgress } = await import('../pull-progress.js');
  const { spoolDir } = await import('../registry/spool.js');
  const login = await registryLogin(o);
  const t0 = Date.now();
  const { stderr, env, cwd, gone, background } = io();
  // progress goes to stderr (stdout is the digest): redrawn on a terminal, plain lines otherwise
  const write = (s: string) => { stderr.write(s); };
  // connecting to the cluster overlaps reading the manifest and config from the registry
  const r = await pullImage(nc(), ref, {
    ...(o.name ? { name: o.name } : {}), insecure: o.insecure === true, user: me(),
    ...login, spool: spoolDir(env, cwd), ...(gone ? { gone } : {}), defer: background !== undefined,
    ...(o.quiet ? {} : { progress: stderr.isTTY ? terminalProgress(write) : plainProgress(write) }),
  });
  if (!o.quiet && stderr.isTTY) stderr.write(`${r.name}: ${r.layers.length} layer(s), ${r.fetched} pulled (${(r.bytes / 1e6).toFixed(1)} MB) in ${Date.now() - t0} ms\n`);
  out(r.digest);
  // the layers are verified and spooled, the image recorded: their put into the object store
  // goes on in the warm process after the answer (agents wait for an object that is not there yet)
  if (r.fill) background!(r.fill().then((err) => {
    if (err) console.error(`tsctl: image ${r.name}: filling the cluster's store failed (${err.message}); pulling it again finishes it`);
  }));
}

/** `image pull` under `image`: the whole program's, and the warm tsctl's (tsctl/cli-run.ts), one definition. */
export function addPull(image: Command, action: (ref: string, o: PullFlags) => Promise<void>): Command {
  return image.command('pull').description('pull an image from a registry (OCI distribution API) into the cluster').argument('<ref>', 'host[:port]/path[:tag|@sha256:…]')
    .option('--name <name>', 'image name in the cluster (default: the reference)')
    .option('--insecure', 'plain http (loopback registries are http already)')
    .option('-u, --username <user>', 'registry login (or SWARMLITE_REGISTRY_USER)')
    .option('--password-stdin', 'read the registry password from stdin (or SWARMLITE_REGISTRY_PASSWORD)')
    .option('-q, --quiet', 'only the digest')
    .action(action);
}

