// tsctl's command line: docker's verbs and flags where the meaning is the same.
// Built as a function of its actions so tests parse real argv without a cluster.
import { Command, CommanderError, Option } from 'commander';
import { CliError } from './client.js';
import { hostFlags, type HostFlagOpts } from './host-flags.js';
import { lifecycleFlags, type LifecycleFlags } from './lifecycle-flags.js';
import { healthFlags, type HealthFlags } from './health-flags.js';

export interface RunOpts extends HostFlagOpts, LifecycleFlags, HealthFlags {
  rm?: boolean; detach?: boolean; name?: string; hostname?: string; env: string[]; workdir?: string;
  network?: string; publish: string[]; volume?: string[]; tmpfs?: string[]; mount?: string[]; entrypoint?: string; pid?: string; ipc?: string; uts?: string;
  user?: string; groupAdd?: string[]; readOnly?: boolean; init?: boolean; label?: string[]; publishAll?: boolean; volumesFrom?: string[];
  /** -t: a pty in the container (run.ts fills the size from the local terminal) */
  tty?: boolean;
  /** -i: stdin kept open; tsctl run forwards its own (tsctl/terminal.ts) */
  interactive?: boolean;
  /** --detach-keys: what leaves an -it session instead of ctrl-p ctrl-q */
  detachKeys?: string;
  device: string[]; securityOpt: string[]; ulimit: string[]; capAdd: string[]; capDrop: string[]; oomScoreAdj?: string;
  cpus?: string; cpuShares?: string; cpusetCpus?: string; memory?: string; memorySwap?: string; pidsLimit?: string;
  /** --constraint node.labels.zone==a (repeatable) */
  constraint?: string[];
}

export interface ServiceCreateOpts extends Pick<RunOpts, 'env' | 'workdir' | 'network' | 'publish' | 'entrypoint' | 'cpus' | 'cpuShares' | 'cpusetCpus' | 'memory' | 'memorySwap' | 'pidsLimit' | 'constraint'> {
  name: string; replicas?: string; mode?: string; placementPref?: string[]; restartCondition?: string; restartMaxAttempts?: string; restartDelay?: string; detach?: boolean;
  mount?: string[];
}

/** --update-* and --rollback-* as typed (tsctl/commands/services.ts parses them), and --stop-grace-period. */
export interface RollOpts {
  updateParallelism?: string; updateDelay?: string; updateOrder?: string; updateMonitor?: string; updateFailureAction?: string; updateMaxFailureRatio?: string;
  rollbackParallelism?: string; rollbackDelay?: string; rollbackOrder?: string; rollbackMonitor?: string; rollbackFailureAction?: string; rollbackMaxFailureRatio?: string;
  stopGracePeriod?: string;
}

/** tsctl service update's flags: what changes (each absent: unchanged). */
export interface ServiceUpdateOpts extends RollOpts, Pick<RunOpts, 'cpus' | 'cpuShares' | 'cpusetCpus' | 'memory' | 'memorySwap' | 'pidsLimit'> {
  image?: string; args?: string; envAdd: string[]; envRm: string[]; workdir?: string; entrypoint?: string; replicas?: string; detach?: boolean;
  force?: boolean; placementPrefAdd?: string[]; placementPrefRm?: string[]; mountAdd?: string[]; mountRm?: string[];
}

/** --detach-keys on run, exec, start and attach */
const DETACH_KEYS_HELP = 'what detaches from an -it session instead of ctrl-p,ctrl-q (ctrl-X or one character, comma-separated)';

export interface ExecOpts { env: string[]; workdir?: string; user?: string; interactive?: boolean; tty?: boolean; detachKeys?: string }

export interface Actions {
  run(image: string, cmd: string[], o: RunOpts): Promise<void>;
  ps(o: { all?: boolean; quiet?: boolean; format?: string; filter?: string[]; last?: string }): Promise<void>;
  logs(ref: string, o: { follow?: boolean }): Promise<void>;
  stop(refs: string[], o: { time?: string }): Promise<void>;
  kill(refs: string[], o: { signal: string }): Promise<void>;
  rm(refs: string[], o: RmFlags): Promise<void>;
  inspect(refs: string[], o: { format?: string }): Promise<void>;
  events(o: { since?: string; follow?: boolean; format?: string; filter?: string[] }): Promise<void>;
  history(ref: string, o: { format?: string }): Promise<void>;
  viewAt(o: { at: string; format?: string }): Promise<void>;
  logArchive(o: { before: string; format?: string }): Promise<void>;
  audit(o: { format?: string; since?: string; threads?: string }): Promise<void>;
  imageImport(file: string, o: { name: string }): Promise<void>;
  imageLs(o: { format?: string; quiet?: boolean }): Promise<void>;
  imageRm(names: string[], o: { force?: boolean }): Promise<void>;
  nodes(o: { format?: string }): Promise<void>;
  nodeRm(nodes: string[], o: { force?: boolean }): Promise<void>;
  nodeUpdate(node: string, o: { availability?: string; labelAdd: string[]; labelRm: string[] }): Promise<void>;
  networkCreate(name: string, o: { subnet?: string; gateway?: string }): Promise<void>;
  networkLs(o: { format?: string; quiet?: boolean }): Promise<void>;
  networkRm(names: string[]): Promise<void>;
  networkInspect(names: string[]): Promise<void>;
  volumeCreate(name: string, o: { node?: string; label: string[] }): Promise<void>;
  volumeLs(o: { format?: string; quiet?: boolean; node?: string }): Promise<void>;
  volumeInspect(names: string[], o: { node?: string }): Promise<void>;
  volumeRm(names: string[], o: { node?: string }): Promise<void>;
  volumePrune(o: { node?: string; all?: boolean }): Promise<void>;
  port(ref: string): Promise<void>;
  update?(refs: string[], o: RunOpts): Promise<void>;
  stats?(refs: string[], o: { noStream?: boolean; format?: string }): Promise<void>;
  exec?(ref: string, cmd: string[], o: ExecOpts): Promise<void>;
  top?(ref: string): Promise<void>;
  diff?(ref: string): Promise<void>;
  info(o: { format?: string }): Promise<void>;
  exportFs?(ref: string, o: { output?: string }): Promise<void>;
  commit?(ref: string, name: string, o: { message?: string; author?: string }): Promise<void>;
  wait?(refs: string[]): Promise<void>;
  pause?(refs: string[]): Promise<void>;
  unpause?(refs: string[]): Promise<void>;
  rename?(ref: string, name: string): Promise<void>;
  create?(image: string, cmd: string[], o: RunOpts): Promise<void>;
  start?(refs: string[], o: { attach?: boolean; interactive?: boolean; detachKeys?: string }): Promise<void>;
  restart?(refs: string[], o: { time?: string }): Promise<void>;
  attach?(ref: string, o: { sigProxy?: boolean; stdin?: boolean; detachKeys?: string }): Promise<void>;
  cp?(src: string, dest: string, o: { archive?: boolean; followLink?: boolean }): Promise<void>;
  userAdd(name: string, o: { role: string; stateDir?: string }): Promise<void>;
  userRm(names: string[], o: { stateDir?: string }): Promise<void>;
  userLs(o: { format?: string; stateDir?: string }): Promise<void>;
  nodeToken(o: { stateDir?: string; ttl?: string }): Promise<void>;
  join(token: string, o: { node: string; stateDir: string }): Promise<void>;
  serviceCreate?(image: string, cmd: string[], o: ServiceCreateOpts): Promise<void>;
  serviceLs?(o: { format?: string; quiet?: boolean }): Promise<void>;
  servicePs?(ref: string, o: { format?: string }): Promise<void>;
  serviceInspect?(refs: string[]): Promise<void>;
  serviceScale?(pairs: string[]): Promise<void>;
  serviceRm?(refs: string[]): Promise<void>;
  serviceUpdate?(ref: string, o: ServiceUpdateOpts): Promise<void>;
  serviceRollback?(ref: string, o: RollOpts & { detach?: boolean }): Promise<void>;
  serviceLogs?(ref: string, o: { follow?: boolean; tail?: string; timestamps?: boolean }): Promise<void>;
}

const collect = (v: string, prev: string[]) => [...prev, v];

/**
 * tsctl's program. `only: 'run'` (tsctl/cli-run.ts) defines run's command alone, the same
 * definition: run's help, flags and errors are the same as in the whole program.
 */
export interface RmFlags { force?: boolean; volumes?: boolean }

/** `rm`'s command: the whole tsctl's and the warm process's (tsctl/cli-run.ts) alike. */
export function addRm(p: Command, action: (refs: string[], o: RmFlags) => Promise<void>): Command {
  return p.command('rm').description('remove containers').argument('<containers...>')
    .option('-f, --force', 'kill a running container first')
    .option('-v, --volumes', 'remove its anonymous volumes too (-v /path, the image\'s VOLUME)').action(action);
}

export function buildProgram(a: Pick<Actions, 'run'>, only: 'run'): Command;
export function buildProgram(a: Actions): Command;
export function buildProgram(a: Actions | Pick<Actions, 'run'>, only?: 'run'): Command {
  const p = new Command('tsctl')
    .description('swarmlite: containers on a small fleet, every change an event in one log')
    .option('--nats <url>', 'cluster NATS url (or SWARMLITE_NATS; default: the one in the credentials)')
    .option('--creds <file>', 'credentials (or SWARMLITE_CREDS, ~/.config/swarmlite/creds, /var/lib/swarmlite/trust/creds/admin.creds)')
    .option('--timeout <seconds>', 'the most any wait may take (requests, a node\'s confirmation, a start)')
    .helpOption('--help', 'show help')
    .showSuggestionAfterError(true)
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, outputError: () => undefined });

  const limits = (c: Command) => c
    .option('--cpus <n>', 'number of cpus (e.g. 0.5)')
    .option('-c, --cpu-shares <n>', 'relative cpu weight')
    .option('--cpuset-cpus <list>', 'cpus allowed (0-1, 0,1)')
    .option('-m, --memory <bytes>', 'memory limit (e.g. 64m)')
    .option('--memory-swap <bytes>', 'memory plus swap limit, -1 unlimited')
    .option('--pids-limit <n>', 'max processes, -1 unlimited');

  // a command that takes an image and the command to run in it (everything after the image is the command's)
  const imageCommand = (c: Command, description: string) => c.description(description).helpOption('--help', 'show help')
    .passThroughOptions().argument('<image>').argument('[command...]');

  // run's flags, create's too: --privileged, --sysctl, --shm-size, --dns*, --add-host are a block of their own (tsctl/host-flags.ts)
  const runFlags = (c: Command) => hostFlags(healthFlags(lifecycleFlags(limits(c
    .option('--rm', 'remove the container when it exits')
    .option('-d, --detach', 'run in the background and print the id')
    .option('--name <name>', 'container name')
    .option('-h, --hostname <name>', 'container host name')
    .option('-e, --env <K=V>', 'set an environment variable', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('--entrypoint <cmd>', 'replace the image\'s entrypoint (and its default command); "" clears it')
    .addOption(new Option('--network <mode>', 'bridge, host, none, container:<name|id> or a network name').default(undefined))
    .addOption(new Option('--net <mode>').hideHelp())
    .option('--pid <mode>', 'host (admins) or container:<name|id>: whose process namespace')
    .option('--ipc <mode>', 'host (admins) or container:<name|id>: whose IPC namespace')
    .option('--uts <mode>', 'host (admins): the host\'s name and domain')
    .option('-u, --user <user[:group]>', 'the process\'s user (and group), names from the image\'s /etc/passwd and /etc/group, or numbers')
    .option('--group-add <group>', 'an additional group (name or number)', collect, [])
    .option('--read-only', 'mount the root filesystem read-only')
    .option('--init', 'run a reaper as pid 1 that forwards signals to the command and reaps orphans')
    .option('-l, --label <KEY=VALUE>', 'a label (over the image\'s Labels): ps --filter label=KEY[=VALUE] finds it', collect, [])
    .option('-t, --tty', 'give the command a terminal (a pty in the container); its output comes through it')
    .option('-i, --interactive', 'keep stdin open: tsctl forwards its own to the command (with -t, ctrl-p ctrl-q detaches)')
    .option('--detach-keys <keys>', DETACH_KEYS_HELP)
    .option('-p, --publish <spec>', 'publish a port: [IP:][HOST:]CONTAINER[/tcp|udp] (no HOST: a free one, as docker)', collect, [])
    .option('-P, --publish-all', 'publish every port the image exposes (EXPOSE) on a free host port')
    .option('-v, --volume <spec>', 'mount SRC:DST[:ro|rw]: SRC a host path (admins) or a named volume of the node; DST alone: an anonymous volume', collect, [])
    .option('--tmpfs <spec>', 'mount a tmpfs: DST[:size=64m,mode=1777,ro]', collect, [])
    .option('--mount <spec>', 'mount, docker\'s long form: type=bind|volume|tmpfs,source=SRC,target=DST[,readonly][,volume-nocopy][,tmpfs-size=64m,tmpfs-mode=1777]', collect, [])
    .option('--volumes-from <container[:ro|rw]>', 'mount the volumes and binds of another container (on its node)', collect, [])
    .option('--device <dev>', 'add a host device: /dev/X[:/dev/Y][:rwm]', collect, [])
    .option('--security-opt <opt>', 'seccomp=FILE|unconfined, no-new-privileges', collect, [])
    .option('--ulimit <limit>', 'a resource limit: NAME=SOFT[:HARD], e.g. nofile=1024:2048', collect, [])
    .option('--cap-add <cap>', 'add a capability (or ALL)', collect, [])
    .option('--cap-drop <cap>', 'drop a capability (or ALL)', collect, [])
    .option('--oom-score-adj <n>', 'the OOM killer\'s preference, -1000 to 1000')
    .option('--constraint <expr>', 'where it may run: node.hostname==H, node.id!=N, node.labels.KEY==V (repeatable)', collect, [])))));
  runFlags(imageCommand(p.command('run'), 'run a command in a new container'))
    .action((image: string, cmd: string[], o: RunOpts & { net?: string }) => {
      return a.run(image, cmd, { ...o, network: o.network ?? o.net });
    });
  if (only === 'run') return p;
  return defineAll(p, a as Actions, limits, imageCommand, runFlags);
}

/** Every command after run (buildProgram's), with run's helpers for those that share its flags. */
function defineAll(p: Command, a: Actions, limits: (c: Command) => Command, imageCommand: (c: Command, description: string) => Command, runFlags: (c: Command) => Command): Command {

  p.command('exec').description('run a command in a running container')
    .helpOption('--help', 'show help')
    .passThroughOptions()
    .argument('<container>').argument('[command...]')
    .option('-e, --env <K=V>', 'set an environment variable', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user name or uid (and group), as the container\'s /etc/passwd knows them')
    .option('-i, --interactive', 'keep stdin open and send it to the process')
    .option('-t, --tty', 'give the process a terminal (a pty in the container); with -i, ctrl-p ctrl-q detaches')
    .option('--detach-keys <keys>', DETACH_KEYS_HELP)
    .action((ref: string, cmd: string[], o: ExecOpts) => {
      if (!a.exec) throw new CliError('exec is not available in this build');
      return a.exec(ref, cmd, o);
    });

  // docker's --update-* / --rollback-* (and --stop-grace-period), on create, update and rollback
  const rollFlags = (c: Command, kinds: ('update' | 'rollback')[] = ['update', 'rollback']) => {
    for (const k of kinds) c
      .option(`--${k}-parallelism <n>`, `tasks ${k === 'update' ? 'updated' : 'rolled back'} at once (0: all; default 1)`)
      .option(`--${k}-delay <duration>`, 'wait between batches (default 0s)')
      .option(`--${k}-order <order>`, 'stop-first (default) or start-first')
      .option(`--${k}-monitor <duration>`, 'a new task that ends within this counts as failed (default 5s)')
      .option(`--${k}-failure-action <action>`, `pause (default), continue${k === 'update' ? ' or rollback' : ''}`)
      .option(`--${k}-max-failure-ratio <r>`, 'failed share of tasks tolerated, 0 to 1 (default 0)');
    if (kinds.includes('update')) c.option('--stop-grace-period <duration>', 'time an old task gets to stop before SIGKILL (default 10s)');
    return c;
  };

  const need = <K extends keyof Actions>(k: K): NonNullable<Actions[K]> => {
    if (!a[k]) throw new CliError(`${String(k)} is not available in this build`);
    return a[k]!;
  };

  // services, as docker service: desired state in the log, tasks kept by the active controller
  const svc = p.command('service').description('manage services: a number of tasks (or one per node) kept running');
  limits(imageCommand(svc.command('create'), 'create a service: its tasks are placed and kept running by the controller')
    .requiredOption('--name <name>', 'service name (its tasks are <name>.<slot>.<n>)')
    .option('--replicas <n>', 'how many tasks (replicated mode; default 1)')
    .option('--mode <mode>', 'replicated or global (one task per eligible node)')
    .option('-e, --env <K=V>', 'set an environment variable', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside each task')
    .option('--entrypoint <cmd>', 'replace the image\'s entrypoint')
    .option('--network <mode>', 'bridge, host, none or a network name')
    .option('-p, --publish <spec>', 'publish a port on the node of each task: HOST:CONTAINER[/tcp|udp]', collect, [])
    .option('--mount <spec>', 'mount in each task: type=bind|volume|tmpfs,source=SRC,target=DST[,readonly]... (a volume without source: one per task)', collect, [])
    .option('--constraint <expr>', 'where tasks may run: node.hostname==H, node.id!=N, node.labels.KEY==V (repeatable)', collect, [])
    .option('--placement-pref <pref>', 'spread tasks evenly over a node label\'s values: spread=node.labels.KEY (repeatable: nested)', collect, [])
    .option('--restart-condition <cond>', 'replace a task that exited: any (default), on-failure, none')
    .option('--restart-max-attempts <n>', 'at most N replacements per slot (0: no limit)')
    .option('--restart-delay <duration>', 'wait after an exit before the replacement (default 5s)'))
    .action((image: string, cmd: string[], o) => need('serviceCreate')(image, cmd, o));
  rollFlags(svc.commands.find((x) => x.name() === 'create')!);
  rollFlags(limits(svc.command('update').description('change a service: the new spec rolls over its tasks in batches').argument('<service>')
    .option('--image <image>', 'the image each task runs')
    .option('--args <command>', 'the command each task runs (split at spaces)')
    .option('--env-add <K=V>', 'add or change an environment variable', collect, [])
    .option('--env-rm <K>', 'remove an environment variable', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside each task')
    .option('--entrypoint <cmd>', 'replace the image\'s entrypoint')
    .option('--replicas <n>', 'how many tasks (replicated mode)')
    .option('--placement-pref-add <pref>', 'add a placement preference: spread=node.labels.KEY (repeatable)', collect, [])
    .option('--placement-pref-rm <pref>', 'remove a placement preference (repeatable)', collect, [])
    .option('--mount-add <spec>', 'add a mount, or replace the one on its target (--mount\'s form)', collect, [])
    .option('--mount-rm <target>', 'remove the mount on a target path', collect, [])
    .option('--force', 'replace every task even if nothing changed (a rolling restart)')
    .option('-d, --detach', 'return at once instead of waiting for the update to end')))
    .action((ref: string, o) => need('serviceUpdate')(ref, o));
  rollFlags(svc.command('rollback').description('return a service to its spec before the last update, rolled like an update').argument('<service>')
    .option('-d, --detach', 'return at once instead of waiting for the rollback to end'), ['rollback'])
    .action((ref: string, o) => need('serviceRollback')(ref, o));
  svc.command('logs').description('print the output of every task of a service, each line prefixed with its task and node').argument('<service>')
    .option('-f, --follow', 'follow the output').option('-n, --tail <n>', 'only the last N lines of each task').option('-t, --timestamps', 'unused; accepted as docker does')
    .action((ref: string, o) => need('serviceLogs')(ref, o));
  svc.command('ls').description('list services').option('--format <fmt>', 'json').option('-q, --quiet', 'only names').action((o) => need('serviceLs')(o));
  svc.command('ps').description('list a service\'s tasks (and why a slot waits)').argument('<service>').option('--format <fmt>', 'json').action((r, o) => need('servicePs')(r, o));
  svc.command('inspect').description('show services as JSON').argument('<services...>').action((r) => need('serviceInspect')(r));
  svc.command('scale').description('set replicated services\' task counts').argument('<service=replicas...>').action((r) => need('serviceScale')(r));
  svc.command('rm').description('remove services and their tasks').argument('<services...>').action((r) => need('serviceRm')(r));
  p.command('top').description('list the processes of a running container').argument('<container>').action((r: string) => need('top')(r));
  p.command('diff').description('list what a container changed in its filesystem (A added, C changed, D deleted)').argument('<container>').action((r: string) => need('diff')(r));
  p.command('export').description('write a container\'s filesystem as a tar archive').argument('<container>')
    .option('-o, --output <file>', 'the archive (default: stdout)').action((r: string, o: { output?: string }) => need('exportFs')(r, o));
  p.command('commit').description('make an image of a container\'s changes: its writable layer on top of its image').argument('<container>').argument('<name>')
    .option('-m, --message <text>', 'a comment for the image\'s history').option('-a, --author <name>', 'the image\'s author')
    .action((r: string, n: string, o: { message?: string; author?: string }) => need('commit')(r, n, o));
  p.command('wait').description('wait until containers stop; print their exit codes').argument('<containers...>').action((r: string[]) => need('wait')(r));
  p.command('pause').description('freeze every process of containers').argument('<containers...>').action((r: string[]) => need('pause')(r));
  p.command('unpause').description('thaw paused containers').argument('<containers...>').action((r: string[]) => need('unpause')(r));
  p.command('cp').description('copy files between a running container and this machine: CONTAINER:SRC DEST, or SRC CONTAINER:DEST ("-" is a tar on stdin/stdout)')
    .argument('<src>').argument('<dest>')
    .option('-a, --archive', 'keep owners (uid:gid) from the source (default: root\'s in the container, yours here)')
    .option('-L, --follow-link', 'copy what SRC links to, not the link')
    .action((s: string, d: string, o: { archive?: boolean; followLink?: boolean }) => need('cp')(s, d, o));
  // create/start/restart/attach (tsctl/commands/start.ts)
  runFlags(imageCommand(p.command('create'), 'create a container on a node (prepared, not started); prints its id'))
    .action((image: string, cmd: string[], o: RunOpts & { net?: string }) => need('create')(image, cmd, { ...o, network: o.network ?? o.net }));
  p.command('start').description('start created or stopped containers').argument('<containers...>')
    .option('-a, --attach', 'stream its output and return its exit code (one container)')
    .option('-i, --interactive', 'attach its stdin too (a container created with -i; implies -a)')
    .option('--detach-keys <keys>', DETACH_KEYS_HELP)
    .action((r: string[], o: { attach?: boolean; interactive?: boolean; detachKeys?: string }) => need('start')(r, o));
  p.command('restart').description('stop (its stop signal, then KILL after the timeout) and start containers again').argument('<containers...>')
    .option('-t, --time <seconds>', 'seconds to wait before killing (default: its --stop-timeout, else 10)')
    .action((r: string[], o: { time?: string }) => need('restart')(r, o));
  p.command('attach').description('stream a running container\'s output from now on, and its stdin and terminal if it has them (run -i/-t); exits with its exit code (^C detaches; with -it ctrl-p ctrl-q)').argument('<container>')
    .option('--sig-proxy', 'send ^C (SIGINT) and SIGTERM to the container instead of detaching')
    .option('--no-stdin', 'do not attach stdin (a run -i container\'s input is its owner\'s alone)')
    .option('--detach-keys <keys>', DETACH_KEYS_HELP)
    .action((r: string, o: { sigProxy?: boolean; stdin?: boolean; detachKeys?: string }) => need('attach')(r, o));
  p.command('rename').description('rename a container').argument('<container>').argument('<new-name>').action((r: string, n: string) => need('rename')(r, n));

  p.command('ps').description('list containers')
    .option('-a, --all', 'show all containers (default shows running)')
    .option('-q, --quiet', 'only ids')
    .option('-f, --filter <filter>', 'name=PART,node=NODE,status=STATE,id=PREFIX,label=KEY[=VALUE] (repeatable; same key: any, different keys and every label: all)', collect, [])
    .option('-n, --last <n>', 'the n newest containers, in any state')
    .option('--format <fmt>', 'json for machine output')
    .action((o) => a.ps(o));

  p.command('logs').description('print a container\'s output').argument('<container>')
    .option('-f, --follow', 'follow the output').action((ref, o) => a.logs(ref, o));

  p.command('stop').description('stop containers (TERM, then KILL after a grace period)').argument('<containers...>')
    .option('-t, --time <seconds>', 'seconds to wait before killing (default: its --stop-timeout, else 10)').action((r, o) => a.stop(r, o));

  p.command('kill').description('send a signal to containers').argument('<containers...>')
    .option('-s, --signal <sig>', 'signal to send', 'KILL').action((r, o) => a.kill(r, o));

  addRm(p, (r, o) => a.rm(r, o));

  p.command('inspect').description('show a container\'s state as JSON').argument('<containers...>')
    .option('--format <fmt>', 'json (default)').action((r, o) => a.inspect(r, o));

  p.command('events').description('read the cluster\'s event log')
    .option('--since <seq|time>', 'start at a stream sequence, an ISO time, a unix time or a duration like 10m')
    .option('--follow', 'keep printing new events')
    .option('--filter <filter>', 'a subject (ev.state.>) or type=,node=,user=,entity=,src= tests (repeatable, all must hold)', collect, [])
    .option('--format <fmt>', 'json: one object a line').action((o) => a.events(o));

  p.command('history').description('one container\'s or network\'s events: who asked (the authenticated user), what its node did, causes')
    .argument('<ref>', 'container name, id or id prefix; net-<name> for a network').option('--format <fmt>', 'json: one object a line')
    .action((r, o) => a.history(r, o));

  p.command('view').description('the cluster as it was: the log folded up to a point')
    .requiredOption('--at <seq|time>', 'a stream sequence or an ISO/unix time').option('--format <fmt>', 'json')
    .action((o) => a.viewAt(o));

  const logc = p.command('log').description('the log\'s retention');
  logc.command('archive').description('seal the events before a position into signed archive segments, then purge them from the stream (admin)')
    .requiredOption('--before <seq>', 'the first stream position to keep in the stream').option('--format <fmt>', 'json')
    .action((o) => a.logArchive(o));

  p.command('audit').description('verify the log: signatures, every source\'s hash chain, gaps, the anchored head (audit verify)')
    .argument('[verify]', 'the same (audit verify)')
    .option('--since <seq>', 'start at this stream sequence (chains are checked from there)')
    .option('--threads <n>', 'reader threads that read, decode and hash the log beside the checker (default 0: all in one thread)')
    .option('--format <fmt>', 'json').action((v, o) => {
      if (v !== undefined && v !== 'verify') throw new CliError(`unknown audit command "${v}" (audit verify)`);
      return a.audit(o);
    });

  const image = p.command('image').description('manage images');
  image.command('import').description('import a rootfs tar (as docker export writes it)').argument('<file>')
    .requiredOption('--name <name>', 'image name').action((f, o) => a.imageImport(f, o));
  image.command('ls').description('list images').option('--format <fmt>', 'json').option('-q, --quiet', 'only names').action((o) => a.imageLs(o));
  image.command('rm').description('remove images').argument('<names...>').option('-f, --force', 'even if containers use it').action((n, o) => a.imageRm(n, o));

  const net = p.command('network').description('manage networks');
  net.command('create').description('create a bridge network on every node').argument('<name>')
    .option('--subnet <cidr>', 'subnet, e.g. 10.89.0.0/24 (default: a free /24 of 10.89.0.0/16)')
    .option('--gateway <ip>', 'gateway address (default: the first host of the subnet)')
    .option('-d, --driver <driver>', 'bridge (the only driver)', 'bridge')
    .action((n, o) => {
      if (o.driver !== 'bridge') throw new CliError(`invalid --driver "${o.driver}": only bridge is supported`);
      return a.networkCreate(n, { subnet: o.subnet, gateway: o.gateway });
    });
  net.command('ls').description('list networks').option('--format <fmt>', 'json').option('-q, --quiet', 'only names').action((o) => a.networkLs(o));
  net.command('rm').description('remove networks').argument('<names...>').action((n) => a.networkRm(n));
  net.command('inspect').description('show a network and its containers').argument('<names...>').action((n) => a.networkInspect(n));

  const vol = p.command('volume').description('manage named volumes (each on one node)');
  vol.command('create').description('create a named volume on a node').argument('<name>')
    .option('--node <node>', 'the node to keep it (default: the cluster\'s only node)')
    .option('--label <key=value>', 'a label (repeatable)', collect, [])
    .option('-d, --driver <driver>', 'local (the only driver)', 'local')
    .action((n, o) => {
      if (o.driver !== 'local') throw new CliError(`invalid --driver "${o.driver}": only local is supported`);
      return a.volumeCreate(n, { node: o.node, label: o.label });
    });
  vol.command('ls').description('list volumes').option('--format <fmt>', 'json').option('-q, --quiet', 'only names')
    .option('--node <node>', 'only this node\'s').action((o) => a.volumeLs(o));
  vol.command('inspect').description('show volumes and the containers that use them').argument('<names...>')
    .option('--node <node>', 'the node whose volume').action((n, o) => a.volumeInspect(n, o));
  vol.command('rm').description('remove volumes (refused while a container uses one)').argument('<names...>')
    .option('--node <node>', 'the node whose volume').action((n, o) => a.volumeRm(n, o));
  vol.command('prune').description('remove the anonymous volumes no container uses (-a: named ones too)').option('--node <node>', 'only this node\'s')
    .option('-a, --all', 'named volumes too, as docker 23+').option('-f, --force', 'do not ask (tsctl never asks)').action((o) => a.volumePrune({ node: o.node, all: o.all === true }));

  p.command('port').description('list a container\'s published ports').argument('<container>').action((r) => a.port(r));

  p.command('info').description('the cluster and each node: log, containers, images, storage driver, cgroups, kernel').option('--format <fmt>', 'json').action((o: { format?: string }) => a.info(o));
  p.command('nodes').description('list the cluster\'s nodes').option('--format <fmt>', 'json').action((o) => a.nodes(o));
  const node = p.command('node').description('manage nodes');
  node.command('ls').description('list the cluster\'s nodes').option('--format <fmt>', 'json').action((o) => a.nodes(o));
  node.command('update').description('change a node: where new work may go, its labels').argument('<node>')
    .option('--availability <a>', 'active, pause (no new work) or drain')
    .option('--label-add <key=value>', 'add or change a label (repeatable)', collect, [])
    .option('--label-rm <key>', 'remove a label (repeatable)', collect, [])
    .action((n, o) => a.nodeUpdate(n, o));
  node.command('rm').description('remove nodes from the cluster (a down or unknown one)').argument('<nodes...>')
    .option('-f, --force', 'even if it still has containers (they leave the view)').action((n, o) => a.nodeRm(n, o));

  node.command('token').description('print a one-time token a new host joins with (tsctl join)')
    .option('--ttl <duration>', 'how long it may be used: 30s, 10m, 24h, 7d (default 24h)')
    .option('--state-dir <dir>', 'the cluster\'s state dir (default: the admin credentials\')').action((o) => a.nodeToken(o));
  p.command('join').description('on a new host: turn a join token into this node\'s credentials').argument('<token>')
    .requiredOption('--node <name>', 'the new node\'s name').option('--state-dir <dir>', 'where its state and credentials go', '/var/lib/swarmlite')
    .action((t, o) => a.join(t, o));

  const user = p.command('user').description('manage who may use the cluster (on the host running nats-server, with admin credentials)');
  user.command('add').description('add a user and write its credentials file (prints its path)').argument('<name>')
    .requiredOption('--role <role>', 'admin, operator or viewer').option('--state-dir <dir>', 'the cluster\'s state dir (default: the admin credentials\')')
    .action((n, o) => a.userAdd(n, o));
  user.command('rm').description('remove identities (users, or node-<name> to revoke a node); their connections close at once').argument('<names...>')
    .option('--state-dir <dir>', 'the cluster\'s state dir').action((n, o) => a.userRm(n, o));
  user.command('ls').description('list identities').option('--format <fmt>', 'json').option('--state-dir <dir>', 'the cluster\'s state dir').action((o) => a.userLs(o));

  if (a.update) limits(p.command('update').description('change a running container\'s limits').argument('<containers...>'))
    .action((r, o) => a.update!(r, { env: [], publish: [], device: [], securityOpt: [], ulimit: [], capAdd: [], capDrop: [], ...o }));
  if (a.stats) p.command('stats').description('live resource usage').argument('[containers...]')
    .option('--no-stream', 'print once').option('--format <fmt>', 'json').action((r, o) => a.stats!(r, { noStream: o.stream === false, format: o.format }));
  return p;
}

/** Runs argv; every usage error becomes a one-line CliError (exit 125). */
export async function runProgram(p: Command, argv: string[]): Promise<void> {
  try {
    await p.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return;
      throw new CliError(err.message.replace(/^error: /, '').split('\n')[0] + ' (tsctl --help lists commands and flags)');
    }
    throw err;
  }
}
