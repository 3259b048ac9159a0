// `tsctl build`: a Dockerfile turned into an image in the cluster, one step at a time. The
// image being built is its config (docker's image JSON) and the layers it lists:
// - FROM starts from an image of the cluster (or `scratch`);
// - COPY/ADD write a layer tar from the build context (build-context.ts) and put it in the
//   object store like any other layer;
// - RUN imports the current state as a temporary image, runs the command in a container of it
//   through the normal run path (network none, no entrypoint), commits the container's
//   writable layer (the same archive `tsctl commit` uses) and removes the container;
// - ENV, WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE, LABEL, STOPSIGNAL, VOLUME, HEALTHCHECK change only
//   the config.
//   A RUN after a VOLUME keeps what it writes under the volume's path (BuildKit's behaviour,
//   docker's default builder since 23.0; the classic builder discarded it): its container runs
//   an image whose config has no Volumes, so no anonymous volume hides the path from the commit.
// Every step adds a history entry. A step's cache key is its parent's config digest, the
// instruction after substitution, and for COPY/ADD the digest of what it copies (for RUN the
// build args it sees); the cache entry (`build-cache-<hex>` in the object store) is the
// config the step made, so a hit reuses its exact bytes and the steps after it hit too. A hit
// is used only when the layers it adds are still stored and it extends its parent's layers.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, posix, resolve } from 'node:path';
import { scratchDir } from './scratch.js';
import type { NatsConnection, ObjectStore } from 'nats';
import { decodeEvent, newContainerId } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import type { AnyEvent } from '../shared/events.js';
import { signalName, signalNumber } from '../shared/signals.js';
import { controllerApi } from '../shared/api/controller.js';
import { configLayers, MAX_CONFIG_BYTES } from '../shared/image-config.js';
import { IMAGE_NAME_RE } from '../shared/ids.js';
import { api, CliError } from './client.js';
import { checkChownForm, chownNeedsNames, collect, contentDigest, layerFile, parseChmod, parseChown, removeTemps, type Context, type IdFiles } from './build-context.js';
import { commitLayer } from './container-archive.js';
import { imageTree, placeInImage, readImageFiles } from './build-tree.js';
import { DockerfileError, execForm, heredocMarkers, pairs, parseDockerfile, substitute, volumePaths, words, type Heredoc, type RawInstruction } from './dockerfile.js';
import { parseIgnore } from './dockerignore.js';
import { HEALTHCHECK_FLAGS, parseHealthcheck } from './dockerfile-healthcheck.js';
import { imageStore, importedConfig, lookupImages, readBlob } from './image-blobs.js';
import { ociArch } from './registry/manifest.js';
import { hasObject, objectKey, putLayer } from './layer-put.js';
import { waitMs } from './session.js';
import { attachTo } from './watch.js';
import { stageRoot } from './build-stage.js';

export interface BuildOptions {
  tags: string[]; file?: string; buildArgs: string[]; noCache: boolean; user: string;
  /** Where step lines go (stdout for the CLI). */
  say: (line: string) => void;
}

export interface ImageConfig {
  architecture?: string; os?: string; created?: string; author?: string;
  config: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; User?: string; ExposedPorts?: Record<string, object>; Labels?: Record<string, string>; Shell?: string[]; OnBuild?: unknown; [k: string]: unknown };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: { created?: string; created_by?: string; empty_layer?: boolean; comment?: string }[];
  [k: string]: unknown;
}

/** Bump when what a cache entry means changes, so old entries stop matching. */
const CACHE_VERSION = 1;
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const short = (digest: string) => digest.slice(7, 19);

/** A stage's name (FROM image AS name): docker's shape, compared without case. */
const STAGE_NAME_RE = /^[a-z][a-z0-9_.-]{0,127}$/i;

/** Checks the whole file before any work: keywords, flags, forms, stage names. Pure. */
export function checkInstructions(list: RawInstruction[]): void {
  if (!list.length) throw new DockerfileError(1, 'the Dockerfile has no instructions');
  let from = 0;
  const names = new Set<string>();
  for (const ins of list) {
    if (from === 0 && ins.keyword !== 'FROM' && ins.keyword !== 'ARG') throw new DockerfileError(ins.line, `${ins.keyword} before FROM: a Dockerfile starts with FROM (ARG may come first)`);
    if (ins.keyword === 'FROM') from++;
    const allowed: readonly string[] = ins.keyword === 'COPY' ? ['chown', 'chmod', 'from'] : ins.keyword === 'ADD' ? ['chown', 'chmod'] : ins.keyword === 'HEALTHCHECK' ? HEALTHCHECK_FLAGS : [];
    for (const f of Object.keys(ins.flags)) {
      if (!allowed.includes(f)) throw new DockerfileError(ins.line, `${ins.keyword} --${f}: unknown flag`);
    }
    if (ins.flags.from !== undefined && !ins.flags.from) throw new DockerfileError(ins.line, 'COPY --from: name a stage (its name or number) or an image');
    // names are looked up when the step runs, in the image it copies into; here only the form
    if (ins.flags.chown !== undefined && !ins.flags.chown.includes('$')) checkChownForm(ins.flags.chown, ins.line);
    if (ins.flags.chmod !== undefined) parseChmod(ins.flags.chmod, ins.line);
    if ((ins.keyword === 'COPY' || ins.keyword === 'ADD')) {
      const n = (execForm(ins.text) ?? words(ins.text, ins.line, ins.escape)).length;
      if (n < 2) throw new DockerfileError(ins.line, `${ins.keyword} needs a source and a destination`);
    }
    if (ins.keyword === 'FROM') {
      const w = words(ins.text, ins.line, ins.escape);
      if (w.length !== 1 && !(w.length === 3 && w[1]!.toUpperCase() === 'AS')) throw new DockerfileError(ins.line, 'FROM takes one image, optionally AS a stage name');
      if (w.length === 3 && !STAGE_NAME_RE.test(w[2]!)) throw new DockerfileError(ins.line, `FROM … AS "${w[2]!.slice(0, 40)}": a stage name is a letter, then letters, digits, _ . -`);
      if (w.length === 3 && names.has(w[2]!.toLowerCase())) throw new DockerfileError(ins.line, `FROM … AS ${w[2]}: another stage has that name`);
      if (w.length === 3) names.add(w[2]!.toLowerCase());
    }
    if (ins.keyword === 'SHELL') shellForm(ins);
    if (ins.keyword === 'HEALTHCHECK') parseHealthcheck(ins);
    if (ins.keyword === 'ONBUILD') checkTrigger(ins.text, ins.line, ins.escape);
    if (ins.heredocs && (ins.keyword === 'COPY' || ins.keyword === 'ADD')) heredocSources(ins);
    if ((ins.keyword === 'RUN' || ins.keyword === 'CMD' || ins.keyword === 'ENTRYPOINT') && ins.text.startsWith('[') && !execForm(ins.text)) {
      // docker would run `[...` as a shell command; a broken JSON array is far more likely a typo
      throw new DockerfileError(ins.line, `${ins.keyword} ${ins.text.slice(0, 40)}: not a JSON array of strings (exec form) `);
    }
  }
  if (!from) throw new DockerfileError(list[list.length - 1]!.line, 'no FROM: a Dockerfile needs a base image (FROM scratch for none)');
}

/** SHELL's argument: a JSON array of strings, the shell and its flags (docker accepts no other form). */
function shellForm(ins: RawInstruction): string[] {
  const sh = execForm(ins.text);
  if (!sh || !sh.length || !sh[0]) throw new DockerfileError(ins.line, 'SHELL takes a JSON array: the shell and its flags, like ["/bin/bash", "-c"]');
  return sh;
}

/** Instructions an ONBUILD may not hold (docker's rule: no chains, no new base). */
const NOT_TRIGGERS: ReadonlySet<string> = new Set(['ONBUILD', 'FROM', 'MAINTAINER']);
/** An image's triggers past these are not a build's (they bound what a hostile base can queue). */
export const MAX_TRIGGERS = 64;
const MAX_TRIGGER_BYTES = 64 * 1024;

/** One ONBUILD trigger as an instruction of its own, checked as the Dockerfile's are. */
export function checkTrigger(text: string, line: number, escape = '\\'): RawInstruction {
  if (text.length > MAX_TRIGGER_BYTES || /[\n\r\0]/.test(text)) throw new DockerfileError(line, `ONBUILD: a trigger is one line of at most ${MAX_TRIGGER_BYTES} bytes`);
  let inner: RawInstruction[];
  try { inner = parseDockerfile(text); } catch (err) {
    throw new DockerfileError(line, `ONBUILD: ${err instanceof DockerfileError ? err.reason : (err as Error).message}`);
  }
  if (inner.length !== 1) throw new DockerfileError(line, 'ONBUILD holds one instruction');
  const ins = { ...inner[0]!, line, escape };
  if (NOT_TRIGGERS.has(ins.keyword)) throw new DockerfileError(line, `ONBUILD ${ins.keyword}: not allowed as a trigger (ONBUILD, FROM and MAINTAINER are not)`);
  if (/<</.test(ins.text) && (ins.keyword === 'COPY' || ins.keyword === 'ADD' || ins.keyword === 'RUN') && heredocMarkers(ins.text).length) {
    throw new DockerfileError(line, `ONBUILD ${ins.keyword}: a trigger cannot hold a here-document`);
  }
  checkInstructions([{ line, keyword: 'FROM', text: 'scratch', flags: {}, escape }, ins]);
  return ins;
}

/** The triggers an image's config names (OnBuild), as instructions; a malformed list is one line naming the base. */
export function imageTriggers(onBuild: unknown, line: number, base: string): RawInstruction[] {
  if (onBuild === undefined || onBuild === null) return [];
  if (!Array.isArray(onBuild) || onBuild.length > MAX_TRIGGERS || !onBuild.every((t) => typeof t === 'string')) {
    throw new DockerfileError(line, `FROM ${base.slice(0, 80)}: the image's OnBuild is not a list of at most ${MAX_TRIGGERS} instructions`);
  }
  return (onBuild as string[]).map((t) => {
    try { return checkTrigger(t, line); } catch (err) {
      throw new DockerfileError(line, `FROM ${base.slice(0, 80)}: the image's trigger "${t.slice(0, 60).replace(/[^\x20-\x7e]/g, '?')}": ${(err as DockerfileError).reason ?? (err as Error).message}`);
    }
  });
}

/** COPY/ADD with here-documents: every source is one of them (by its name), the last word the destination. */
export function heredocSources(ins: RawInstruction): { docs: Heredoc[]; dest: string } {
  if (execForm(ins.text)) throw new DockerfileError(ins.line, `${ins.keyword}: here-documents need the shell form`);
  if (ins.flags.from !== undefined) throw new DockerfileError(ins.line, `${ins.keyword} --from: a here-document is not a stage's file`);
  const w = words(ins.text, ins.line, ins.escape);
  const srcs = w.slice(0, -1);
  const docs = srcs.map((src) => {
    const m = /^<<-?(["']?)([A-Za-z_][A-Za-z0-9_]*)\1$/.exec(src);
    const doc = m ? ins.heredocs!.find((h) => h.name === m[2]) : undefined;
    if (!doc) throw new DockerfileError(ins.line, `${ins.keyword} ${src.slice(0, 40)}: a here-document and a path of the context cannot be copied in one instruction`);
    return doc;
  });
  if (new Set(docs.map((d) => d.name)).size !== docs.length) throw new DockerfileError(ins.line, `${ins.keyword}: two here-documents with one name`);
  if (w.length < 2 || w[w.length - 1]!.startsWith('<<')) throw new DockerfileError(ins.line, `${ins.keyword} needs a destination after its here-documents`);
  return { docs, dest: w[w.length - 1]! };
}

/**
 * RUN with here-documents (shell form): alone (`RUN <<EOF`), the body is the script, run by the
 * shell or, when it starts with `#!`, as a file with that interpreter; with a command
 * (`RUN python3 <<EOF`, `RUN <<EOF bash`), the shell reads the here-documents itself, as
 * BuildKit does. Pure.
 */
export function heredocRun(ins: RawInstruction, sh: string[]): string[] {
  const docs = ins.heredocs!;
  const marks = heredocMarkers(ins.text);
  const rest = marks.reduceRight((t, m) => t.slice(0, m.start) + t.slice(m.end), ins.text).trim();
  if (!rest && docs.length === 1) {
    const body = docs[0]!.body;
    if (!body.startsWith('#!')) return [...sh, body];
    // the script as a file outside the layer's paths that matter, removed before the commit
    return ['/bin/sh', '-c', 'f=$(mktemp /tmp/.heredoc.XXXXXX) || exit 1; printf %s "$1" > "$f" && chmod 700 "$f" && "$f"; r=$?; rm -f "$f"; exit $r', 'heredoc', body];
  }
  return [...sh, `${ins.text}\n${docs.map((d) => `${d.raw}${d.stripTabs ? '\t' : ''}${d.name}\n`).join('')}`];
}

/** `--build-arg K=V` (or `K`, taking K from tsctl's environment, as docker). */
export function parseBuildArgs(list: string[], env: NodeJS.ProcessEnv): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of list) {
    const eq = a.indexOf('=');
    const k = eq < 0 ? a : a.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new CliError(`invalid --build-arg "${a}": NAME=VALUE`);
    const v = eq < 0 ? env[k] : a.slice(eq + 1);
    if (v !== undefined) m.set(k, v);
  }
  return m;
}

const envMap = (env: string[] | undefined) => new Map((env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as [string, string]));
/** docker's default shell, and the config's SHELL when a build or its base set one. */
const DEFAULT_SHELL = ['/bin/sh', '-c'];
const shellOf = (cfg: ImageConfig) => (Array.isArray(cfg.config.Shell) && cfg.config.Shell.length && cfg.config.Shell.every((x) => typeof x === 'string') ? cfg.config.Shell : DEFAULT_SHELL);
const shell = (cfg: ImageConfig, text: string) => [...shellOf(cfg), text];

/** Applies a metadata instruction to a config (ENV, WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE, LABEL, STOPSIGNAL, SHELL, ONBUILD, MAINTAINER, VOLUME, HEALTHCHECK). Pure. */
export function applyMetadata(cfg: ImageConfig, ins: RawInstruction, text: string, cmdSet: boolean): void {
  const c = cfg.config;
  switch (ins.keyword) {
    case 'ENV': {
      const env = envMap(c.Env);
      for (const [k, v] of pairs(text, ins.line, 'ENV', ins.escape)) {
        if (!/^[^=\s]+$/.test(k)) throw new DockerfileError(ins.line, `ENV: invalid name "${k}"`);
        env.set(k, v ?? '');
      }
      c.Env = [...env].map(([k, v]) => `${k}=${v}`);
      return;
    }
    case 'WORKDIR': c.WorkingDir = posix.resolve(c.WorkingDir || '/', text.trim()); return;
    case 'USER': {
      const u = text.trim();
      if (!/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(u)) throw new DockerfileError(ins.line, `USER "${u}": a name or id, optionally :group`);
      c.User = u;
      return;
    }
    case 'CMD': c.Cmd = execForm(ins.text) ?? shell(cfg, ins.text); return;
    case 'SHELL': c.Shell = shellForm(ins); return;
    // as written (docker expands no variable in it); a later one replaces it, NONE switches the base's off
    case 'HEALTHCHECK': c.Healthcheck = parseHealthcheck(ins); return;
    case 'MAINTAINER': cfg.author = text.trim(); return;
    // kept as written: the trigger is expanded when it runs, in the build that uses this image
    case 'ONBUILD': checkTrigger(ins.text, ins.line, ins.escape); c.OnBuild = [...(Array.isArray(c.OnBuild) ? c.OnBuild as string[] : []), ins.text]; return;
    case 'ENTRYPOINT':
      c.Entrypoint = execForm(ins.text) ?? shell(cfg, ins.text);
      // as docker: an ENTRYPOINT resets a Cmd inherited from the base image
      if (!cmdSet) delete c.Cmd;
      return;
    case 'EXPOSE': {
      const ports = { ...(c.ExposedPorts ?? {}) };
      for (const p of words(text, ins.line, ins.escape)) {
        const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(p);
        if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) throw new DockerfileError(ins.line, `EXPOSE "${p}": a port 1-65535, optionally /tcp, /udp or /sctp`);
        ports[`${Number(m[1])}/${(m[2] ?? 'tcp').toLowerCase()}`] = {};
      }
      c.ExposedPorts = ports;
      return;
    }
    case 'STOPSIGNAL': {
      // checked here as docker build does: a name the kernel knows (SIGINT, INT) or a number
      const sig = text.trim();
      try { signalName(sig); } catch { throw new DockerfileError(ins.line, `STOPSIGNAL "${sig.slice(0, 32)}": a signal name like SIGINT or a number`); }
      c.StopSignal = sig;
      return;
    }
    case 'VOLUME': {
      const vols = { ...(c.Volumes as Record<string, object> | undefined) };
      for (const v of volumePaths(text, ins.line, ins.escape)) vols[v] = {};
      c.Volumes = vols;
      return;
    }
    case 'LABEL': {
      const labels = { ...(c.Labels ?? {}) };
      for (const [k, v] of pairs(text, ins.line, 'LABEL', ins.escape)) labels[k] = v ?? '';
      c.Labels = labels;
      return;
    }
    default: throw new DockerfileError(ins.line, `${ins.keyword} is not a metadata instruction`);
  }
}

export interface BuildResult { digest: string; layers: string[]; cached: number[]; steps: number }

export async function build(nc: NatsConnection, dir: string, o: BuildOptions): Promise<BuildResult> {
  // the image is kept by its name: without one, cleaning up the RUN steps' images would drop their layers
  if (!o.tags.length) throw new CliError('build: give the image a name with -t NAME');
  for (const t of o.tags) if (!IMAGE_NAME_RE.test(t)) throw new CliError(`invalid tag "${t}": letters, digits, _ . - or a reference like host:5000/team/app:1`);
  const ctxDir = resolve(dir);
  const dockerfile = o.file ? resolve(o.file) : join(ctxDir, 'Dockerfile');
  let src: string;
  try { src = readFileSync(dockerfile, 'utf8'); } catch (err) { throw new CliError(`build: cannot read ${dockerfile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`); }
  let ignore = '';
  try { ignore = readFileSync(join(ctxDir, '.dockerignore'), 'utf8'); } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CliError(`build: cannot read ${join(ctxDir, '.dockerignore')}: ${(err as NodeJS.ErrnoException).code}`);
  }
  const list = parseDockerfile(src);
  checkInstructions(list);
  const ctx: Context = { dir: ctxDir, rules: parseIgnore(ignore) };
  const buildArgs = parseBuildArgs(o.buildArgs, process.env);
  const used = new Set<string>();
  const os = await imageStore(nc);
  const run = new BuildRun(nc, os, o);
  // the stages COPY --from read, unpacked (build-stage.ts), by config digest: removed at the end
  const roots = new Map<string, string>();
  // Ctrl-C (or a TERM) ends the build as a failed RUN does: the step's container killed and
  // removed, the temporary images removed, exit 128+n
  const onSignal = (sig: NodeJS.Signals) => run.interrupt(sig);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // ARGs before FROM are for FROM only (docker's meta args)
    const meta = new Map<string, string>();
    const stage = new Map<string, string>();
    let cfg: ImageConfig | undefined;
    let digest = '';
    // the config's exact bytes (a pulled image's are not always what JSON.stringify would write)
    let cfgBytes: Buffer = Buffer.alloc(0);
    let cmdSet = false;
    const cached: number[] = [];
    // the stages done so far (multi-stage builds): COPY --from and FROM read them
    const stages: { name?: string; cfg: ImageConfig; digest: string; bytes: Buffer }[] = [];
    let stageName: string | undefined;
    /** COPY --from=REF: an earlier stage by name or number, else an image of the cluster, unpacked once per build. */
    const fromStage = async (ref: string, line: number): Promise<{ digest: string; dir: string }> => {
      const s = /^\d+$/.test(ref) ? stages[Number(ref)] : stages.find((x) => x.name === ref.toLowerCase());
      if (!s && (/^\d+$/.test(ref) || ref.toLowerCase() === stageName)) throw new DockerfileError(line, `COPY --from=${ref}: no earlier stage has that ${/^\d+$/.test(ref) ? 'number' : 'name'} (a stage cannot copy from itself or a later one)`);
      const src = s ?? await run.base(ref).catch((err: Error) => { throw new DockerfileError(line, `COPY --from=${ref}: no stage of that name and ${err.message}`); });
      let dir = roots.get(src.digest);
      if (!dir) { dir = await stageRoot(os, src.cfg.rootfs.diff_ids, `Dockerfile:${line}: COPY --from=${ref}`); roots.set(src.digest, dir); }
      return { digest: src.digest, dir };
    };
    // the Dockerfile's steps, and a base image's ONBUILD triggers queued right after its FROM
    const queue: { ins: RawInstruction; n?: number }[] = list.map((ins, i) => ({ ins, n: i + 1 }));
    for (let q = 0; q < queue.length; q++) {
      const { ins, n } = queue[q]!;
      run.checkInterrupted();
      const vars = new Map([...(cfg ? stage : meta), ...envMap(cfg?.config.Env)]);
      const expand = (t: string) => substitute(t, vars, ins.line, ins.escape);
      o.say(`${n !== undefined ? `Step ${n}/${list.length}` : 'Trigger'} : ${ins.keyword} ${ins.text.replace(/\s*\n\s*/g, ' ')}`);
      if (ins.keyword === 'ARG') {
        for (const [k, def] of pairs(ins.text, ins.line, 'ARG', ins.escape)) {
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new DockerfileError(ins.line, `ARG: invalid name "${k}"`);
          const given = buildArgs.get(k);
          if (given !== undefined) used.add(k);
          // after FROM, a meta arg declared again without a value keeps the meta arg's (docker)
          const value = given ?? (def !== undefined ? expand(def) : cfg ? meta.get(k) : undefined);
          if (value !== undefined) (cfg ? stage : meta).set(k, value);
        }
        continue;
      }
      if (ins.keyword === 'FROM') {
        if (cfg) stages.push({ ...(stageName ? { name: stageName } : {}), cfg, digest, bytes: cfgBytes });
        const w = words(ins.text, ins.line, ins.escape);
        const name = expand(w[0]!);
        stageName = w[2]?.toLowerCase();
        const earlier = stages.find((s) => s.name === name.toLowerCase());
        ({ cfg, digest, bytes: cfgBytes } = earlier ? { ...earlier, cfg: structuredClone(earlier.cfg) } : await run.base(name));
        // a stage's ARGs and CMD are its own (docker): the meta args stay
        stage.clear();
        cmdSet = false;
        o.say(` ---> ${short(digest)}`);
        // the base's triggers run now, in this build; the image made here does not keep them (docker)
        const triggers = imageTriggers(cfg!.config.OnBuild, ins.line, name);
        if (cfg!.config.OnBuild !== undefined) { cfg = structuredClone(cfg!); delete cfg.config.OnBuild; }
        if (triggers.length) {
          o.say(` # Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}`);
          queue.splice(q + 1, 0, ...triggers.map((t) => ({ ins: t })));
        }
        continue;
      }
      const parentDigest = digest;
      const parent = cfg!;
      const parentBytes = cfgBytes;
      let text = ins.text;
      let extra = '';
      let collected: Awaited<ReturnType<typeof collect>> | undefined;
      let runArgs: string[] | undefined;
      let runEnv: string[] = [];
      let heredocDir: string | undefined;
      if (ins.keyword === 'RUN') {
        runArgs = execForm(ins.text) ?? (ins.heredocs ? heredocRun(ins, shellOf(parent)) : shell(parent, ins.text));
        // build args reach RUN as environment (ENV of the same name wins, as docker)
        const env = envMap(parent.config.Env);
        runEnv = [...stage].filter(([k]) => !env.has(k)).map(([k, v]) => `${k}=${v}`);
        extra = JSON.stringify(runEnv);
        // the here-documents' bodies are part of what runs, so of the step's cache key
        if (ins.heredocs) text = JSON.stringify(runArgs);
      } else if (ins.keyword === 'COPY' || ins.keyword === 'ADD') {
        const exec = execForm(ins.text);
        let parts = (exec ?? words(expand(ins.text), ins.line, ins.escape)).map((p) => (exec ? expand(p) : p));
        if (ins.heredocs) {
          // each here-document is a file of its own (0644, root's unless --chown), copied as a context's file
          const { docs, dest } = heredocSources(ins);
          heredocDir = scratchDir('heredoc');
          try {
            for (const d of docs) writeFileSync(join(heredocDir, d.name), d.expand ? expand(d.body) : d.body, { mode: 0o644 });
          } catch (err) { rmSync(heredocDir, { recursive: true, force: true }); throw err; }
          parts = [...docs.map((d) => d.name), expand(dest)];
        }
        const chownV = ins.flags.chown !== undefined ? expand(ins.flags.chown) : undefined;
        const chown = chownV !== undefined ? parseChown(chownV, ins.line, chownNeedsNames(chownV) ? await run.idFiles(parent) : undefined) : undefined;
        const chmod = ins.flags.chmod !== undefined ? parseChmod(ins.flags.chmod, ins.line) : undefined;
        const step = { line: ins.line, keyword: ins.keyword, sources: parts.slice(0, -1), dest: parts[parts.length - 1]!, workdir: parent.config.WorkingDir || '/', ...(chown ? { chown } : {}), ...(chmod !== undefined ? { chmod } : {}) };
        let from: { digest: string; dir: string } | undefined;
        if (ins.flags.from !== undefined) from = await fromStage(expand(ins.flags.from), ins.line);
        try {
          collected = await collect(step, from ? { dir: from.dir, rules: [], scoped: true } : heredocDir ? { dir: heredocDir, rules: [] } : ctx);
        } catch (err) { if (heredocDir) rmSync(heredocDir, { recursive: true, force: true }); throw err; }
        extra = await contentDigest(collected.entries);
        text = JSON.stringify([step.sources, step.dest, step.workdir, chown ?? null, ...(from ? [from.digest] : []), ...(chmod !== undefined ? [chmod] : [])]);
      } else if (!['CMD', 'ENTRYPOINT', 'SHELL', 'ONBUILD', 'MAINTAINER', 'HEALTHCHECK'].includes(ins.keyword)) {
        text = expand(ins.text);
      }
      // its flags are not in its text: the config it makes is the key
      if (ins.keyword === 'HEALTHCHECK') extra = JSON.stringify(parseHealthcheck(ins));
      const key = sha256(JSON.stringify([CACHE_VERSION, parentDigest, ins.keyword, text, extra]));
      try {
        const hit = o.noCache ? null : await run.cacheGet(key, parent);
        if (hit) {
          ({ cfg, digest, bytes: cfgBytes } = hit);
          if (n !== undefined) cached.push(n);
          o.say(' ---> Using cache');
          o.say(` ---> ${short(digest)}`);
          if (ins.keyword === 'CMD') cmdSet = true;
          continue;
        }
        const next: ImageConfig = structuredClone(parent);
        next.config ??= {};
        const now = new Date().toISOString();
        let layer: string | undefined;
        let createdBy: string;
        if (runArgs) {
          layer = await run.runStep(parent, parentDigest, parentBytes, runArgs, runEnv, ins.line);
          createdBy = execForm(ins.text) ? `RUN ${ins.text}` : `/bin/sh -c ${ins.text}`;
        } else if (collected) {
          // where the files land depends on the image's tree (a directory there, a link on the way)
          const entries = parent.rootfs.diff_ids.length ? placeInImage(collected.entries, await imageTree(os, parent.rootfs.diff_ids), collected.single) : collected.entries;
          layer = await run.layerStep(entries, ins.line);
          createdBy = `/bin/sh -c #(nop) ${ins.keyword} ${extra.slice(0, 19)} in ${text}`;
        } else {
          applyMetadata(next, ins, text, cmdSet);
          createdBy = `/bin/sh -c #(nop) ${ins.keyword} ${text}`;
        }
        if (layer) next.rootfs.diff_ids = [...parent.rootfs.diff_ids, layer];
        next.created = now;
        next.history = [...(parent.history ?? []), { created: now, created_by: createdBy, ...(layer ? {} : { empty_layer: true }) }];
        const bytes = Buffer.from(JSON.stringify(next));
        digest = `sha256:${sha256(bytes)}`;
        cfg = next;
        cfgBytes = bytes;
        await run.cachePut(key, bytes);
        if (ins.keyword === 'CMD') cmdSet = true;
        o.say(` ---> ${short(digest)}`);
      } finally {
        if (collected) await removeTemps(collected.temps);
        if (heredocDir) rmSync(heredocDir, { recursive: true, force: true });
      }
    }
    const runnable = list.filter((i) => i.keyword !== 'FROM' && i.keyword !== 'ARG').length;
    o.say(`Steps from cache: ${cached.length} of ${runnable}${cached.length ? ` (${cached.join(' ')})` : ''}`);
    for (const k of buildArgs.keys()) if (!used.has(k)) o.say(`[Warning] one or more build-args [${k}] were not consumed`);
    if (!cfg!.rootfs.diff_ids.length) throw new CliError('build: the image has no layer (FROM scratch needs a COPY or ADD)');
    await run.putConfig(digest, cfgBytes);
    for (const t of o.tags) {
      await api(nc, controllerApi.imageImport, { name: t, digest, layers: cfg!.rootfs.diff_ids, source: `build:${basename(ctxDir)}`.slice(0, 512), user: o.user });
    }
    o.say(`Successfully built ${short(digest)}`);
    for (const t of o.tags) o.say(`Successfully tagged ${t}`);
    return { digest, layers: cfg!.rootfs.diff_ids, cached, steps: list.length };
  } finally {
    for (const dir of roots.values()) rmSync(dir, { recursive: true, force: true });
    await run.cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The cluster side of one build: the store, the temporary images RUN needs, and their removal. */
class BuildRun {
  private readonly id = randomBytes(6).toString('hex');
  private readonly temps: string[] = [];
  private current: string | undefined;
  private interrupted: NodeJS.Signals | undefined;
  private killer: NodeJS.Timeout | undefined;
  constructor(private readonly nc: NatsConnection, private readonly os: ObjectStore, private readonly o: BuildOptions) {}

  async base(name: string): Promise<{ cfg: ImageConfig; digest: string; bytes: Buffer }> {
    if (name === 'scratch') {
      const cfg: ImageConfig = { architecture: ociArch(), os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
      const bytes = Buffer.from(JSON.stringify(cfg));
      return { cfg, digest: `sha256:${sha256(bytes)}`, bytes };
    }
    const [img] = await lookupImages(this.nc, [name]);
    const bytes = img!.layers?.length ? await readBlob(this.os, img!.digest, MAX_CONFIG_BYTES) : importedConfig(img!.digest);
    const listed = configLayers(bytes);
    if (typeof listed === 'string') throw new CliError(`FROM ${name}: ${listed}`);
    const cfg = JSON.parse(bytes.toString('utf8')) as ImageConfig;
    cfg.config ??= {};
    return { cfg, digest: `sha256:${sha256(bytes)}`, bytes };
  }

  interrupt(sig: NodeJS.Signals): void {
    this.interrupted ??= sig;
    this.killCurrent();
  }

  private ids = new Map<string, Promise<IdFiles>>();
  /** The image's /etc/passwd and /etc/group (for --chown by name), read once per stack of layers. */
  idFiles(img: ImageConfig): Promise<IdFiles> {
    const key = img.rootfs.diff_ids.join(',');
    let p = this.ids.get(key);
    if (!p) {
      p = readImageFiles(this.os, img.rootfs.diff_ids, ['etc/passwd', 'etc/group'], 1 << 20)
        .then((f) => ({ ...(f.has('etc/passwd') ? { passwd: f.get('etc/passwd')!.toString('utf8') } : {}), ...(f.has('etc/group') ? { group: f.get('etc/group')!.toString('utf8') } : {}) }));
      this.ids.set(key, p);
    }
    return p;
  }

  /** Kills the step's container, again each second: a kill that lands before its start is not kept by the node. */
  private killCurrent(): void {
    const id = this.current;
    if (!id || !this.interrupted || this.killer) return;
    const kill = () => { void api(this.nc, controllerApi.kill, { ref: id, signal: 'KILL', user: this.o.user }).catch(() => undefined); };
    kill();
    this.killer = setInterval(kill, 1000);
  }

  checkInterrupted(): void {
    if (this.interrupted) throw new CliError(`build interrupted by ${this.interrupted}`, 128 + (signalNumber(this.interrupted) ?? 0));
  }

  /** A cache entry for `key`, used only if it extends `parent` and its new layers are stored. */
  async cacheGet(key: string, parent: ImageConfig): Promise<{ cfg: ImageConfig; digest: string; bytes: Buffer } | null> {
    const info = await this.os.info(`build-cache-${key}`);
    if (!info || info.size > MAX_CONFIG_BYTES) return null;
    const bytes = await this.os.getBlob(`build-cache-${key}`);
    if (!bytes) return null;
    const listed = configLayers(bytes);
    if (typeof listed === 'string') return null;
    const base = parent.rootfs.diff_ids;
    // a poisoned or stale entry may not swap the layers under the step
    if (listed.length < base.length || listed.length > base.length + 1 || base.some((d, i) => listed[i] !== d)) return null;
    for (const d of listed.slice(base.length)) if (!(await hasObject(this.os, d))) return null;
    const b = Buffer.from(bytes);
    return { cfg: JSON.parse(b.toString('utf8')) as ImageConfig, digest: `sha256:${sha256(b)}`, bytes: b };
  }

  async cachePut(key: string, bytes: Buffer): Promise<void> {
    await this.os.putBlob({ name: `build-cache-${key}`, description: 'tsctl build cache: the config a step made' }, bytes);
  }

  async putConfig(digest: string, bytes: Buffer): Promise<void> {
    if (!(await hasObject(this.os, digest))) await this.os.putBlob({ name: objectKey(digest), description: `image config ${digest}` }, bytes);
  }

  /** A COPY/ADD layer: written to a temp file, then streamed into the store checked against its digest. */
  async layerStep(entries: Parameters<typeof layerFile>[0], line: number): Promise<string> {
    const { file, digest } = await layerFile(entries, tmpdir());
    try {
      if (!(await hasObject(this.os, digest))) {
        await putLayer({ nc: this.nc, os: this.os }, createReadStream(file), { gzip: false, diffId: digest, fail: (m) => new CliError(`Dockerfile:${line}: ${m}`) });
      }
    } finally { await rm(file, { force: true }); }
    return digest;
  }

  /** RUN: a container of the current image runs the command; its writable layer is the step's layer. */
  async runStep(parent: ImageConfig, parentDigest: string, parentBytes: Buffer, args: string[], env: string[], line: number): Promise<string> {
    // the step's container mounts no anonymous volume over a VOLUME path (see the top), and is not
    // probed by a HEALTHCHECK set before the RUN (docker's builder runs none)
    if (parent.config.Volumes || parent.config.Healthcheck) {
      const { Volumes: _v, Healthcheck: _h, ...rest } = parent.config;
      parentBytes = Buffer.from(JSON.stringify({ ...parent, config: rest }));
      parentDigest = `sha256:${sha256(parentBytes)}`;
    }
    await this.putConfig(parentDigest, parentBytes);
    const image = `tsctl-build-${this.id}:${this.temps.length + 1}`;
    this.temps.push(image);
    await api(this.nc, controllerApi.imageImport, { name: image, digest: parentDigest, layers: parent.rootfs.diff_ids, source: 'build', user: this.o.user });
    const id = newContainerId();
    const attach = attachTo(this.nc, id, false);
    let ctr: { node: string } | undefined;
    try {
      try {
        ctr = await api(this.nc, controllerApi.run, {
          id, image, args, env, entrypoint: '', network: 'none', name: `tsctl-build-${this.id}-${this.temps.length}`, user: this.o.user,
          ...(parent.config.WorkingDir ? { workdir: parent.config.WorkingDir } : {}),
        });
      } catch (err) { attach.cancel(); throw err; }
      this.current = id;
      this.killCurrent();
      const code = await attach.done.finally(() => { this.current = undefined; clearInterval(this.killer); this.killer = undefined; });
      this.checkInterrupted();
      if (code !== 0) throw new CliError(`Dockerfile:${line}: RUN ${JSON.stringify(args.length === 3 && args[0] === '/bin/sh' ? args[2] : args)} returned a non-zero code: ${code}`, code);
      return await commitLayer(this.nc, this.os, ctr.node, id);
    } finally {
      // the intermediate container goes whatever happened (docker build --rm, its default)
      if (ctr) await this.remove(id);
    }
  }

  /** rm -f of the step's container, returning once its node reports it removed (or says why not). */
  private async remove(id: string): Promise<void> {
    const sub = this.nc.subscribe(subjects.stateOf(id));
    try {
      await this.nc.flush();
      const r = await api(this.nc, controllerApi.rm, { ref: id, force: true, user: this.o.user }, 20000);
      if (r.state === 'rejected') return;
      const timer = setTimeout(() => sub.unsubscribe(), waitMs(60000));
      for await (const m of sub) {
        let e: AnyEvent;
        try { e = decodeEvent(m.data); } catch { continue; }
        if (e.type === 'ContainerRemoved') { clearTimeout(timer); return; }
        if (e.type === 'EventRejected' && e.cause === r.eventId) { clearTimeout(timer); throw new CliError(`build container ${id.slice(0, 12)}: ${e.data.reason}`); }
      }
      throw new CliError(`build container ${id.slice(0, 12)}: its node did not confirm the removal within ${waitMs(60000) / 1000} s (tsctl rm -f ${id.slice(0, 12)})`);
    } finally { sub.unsubscribe(); }
  }

  /** Removes the temporary images (their configs; layers stay while the built image or another has them). */
  async cleanup(): Promise<void> {
    for (const name of this.temps) await api(this.nc, controllerApi.imageRm, { name, force: true, user: this.o.user }).catch(() => undefined);
  }
}
