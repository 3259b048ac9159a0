#!/bin/sh
':' //; unset NODE_EXTRA_CA_CERTS; case "$NODE_OPTIONS" in *--use-bundled-ca*) o=;; *) o=--use-openssl-ca;; esac; exec node $o "$0" "$@"
// tsctl's launcher: a shell script (the line above) that is also JavaScript (from here on).
// - As a command (`tsctl`; /usr/local/bin/tsctl links here) sh starts node for it:
//   - without NODE_EXTRA_CA_CERTS: node 20 reads and parses that file and its own ~140 root
//     certificates before running any code, 30-50 ms of every call. tsctl has no use for
//     them: its one TLS peer is the cluster, trusted through the CA named in its
//     credentials alone (tls.ca replaces the root store; test/cli-launch.test.ts checks it).
//   - with --use-openssl-ca: node still builds its root store, unused, the first time a
//     context is given a CA; from its bundled certificates that costs 15-70 ms, from
//     OpenSSL's paths nothing once tsctl points them at the cluster's CA (tsctl/client.ts).
//     Not when NODE_OPTIONS asks for --use-bundled-ca: node refuses both at once.
//   `node bin/tsctl.cjs` runs tsctl the same way, without those two savings.
// - As JavaScript it loads the bundle (dist/tsctl.cjs) through V8's code cache kept beside
//   it: compiling its ~500 KB costs ~25 ms on every call. One cache per command (the first
//   argument), written at the exit of its first successful call: a cache holds the code
//   of the functions that had run by then, so `run` from a cache `ps` made still compiles
//   its own (~9 ms CPU); a --help call writes none. A cache is (re)written when missing or
//   rejected (V8 rejects one made for source of another length or another V8) or older
//   than the bundle, atomically, so concurrent calls are safe. A cache is code V8 runs:
//   one that someone else could have written (see trusted below) is ignored, never loaded.
// - `tsctl run`, `tsctl image pull` and `tsctl rm` first ask the warm tsctl (tsctl/warm.ts) over its socket,
//   before reading any bundle, and run the call themselves only when there is none to ask (see
//   warm below).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const cmd = /^[a-z][a-z-]{0,15}$/.test(process.argv[2] ?? '') ? process.argv[2] : 'tsctl';
// `tsctl run` has a bundle of its own: run's code alone, ~58% of the whole one to read, and
// less to load from its cache and to evaluate (tsctl/cli-run.ts)
const file = path.join(__dirname, '..', 'dist', cmd === 'run' ? 'tsctl-run.cjs' : 'tsctl.cjs');
const uid = process.getuid?.();
const mtime = (f) => { const st = fs.statSync(f); return [Math.max(st.mtimeMs, st.ctimeMs), st.uid]; };
let built = Infinity, owner;
try { [built, owner] = mtime(file); } catch { owner = uid; }
// the warm process is run's bundle (tsctl/cli-run.ts), whichever command asks it
const warmFile = path.join(__dirname, '..', 'dist', 'tsctl-run.cjs');
const pull = cmd === 'image' && process.argv[3] === 'pull';
/** What a call cut off by the warm process's end may have left: said in one line (native/src/launch/launch.c says the same). */
const gonePart = () => (pull ? 'the image was not recorded (pulling again resumes its layers)' : cmd === 'rm' ? 'some containers may not be removed (tsctl ps -a)' : 'the container may still run (tsctl ps -a)');

/** tsctl itself in this process: the bundle, through its code cache. `warmUp` starts a warm process at exit. */
function direct(warmUp) {
  const vm = require('node:vm');
  const Module = require('node:module');
  const cacheFile = `${file}.${cmd}.cache`;
  let source;
  try {
    source = fs.readFileSync(file, 'utf8').replace(/^#!.*/, '');
  } catch {
    process.stderr.write(`tsctl: ${file} is missing: build it with "npm run build" (ops/setup does)\n`);
    process.exit(125);
  }
  /**
   * Whether a file or directory is only writable by this user, root or the bundle's owner
   * (who could change the bundle itself anyway): owned by one of them, and writable by no
   * group or other (a directory may be if sticky: no one then replaces another's file).
   */
  const trusted = (st) => (st.uid === uid || st.uid === 0 || st.uid === owner) && ((st.mode & 0o022) === 0 || (st.isDirectory() && (st.mode & 0o1000) !== 0));
  let dirOk = false;
  try { dirOk = trusted(fs.statSync(path.dirname(file))); } catch { /* no cache then */ }
  let cachedData;
  if (dirOk) {
    let fd;
    try {
      fd = fs.openSync(cacheFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      const st = fs.fstatSync(fd);
      // V8 checks a cache against its source's length only: one older than the bundle (a
      // rebuild of the same length) would run the old code. The bundle's ctime counts too:
      // a copy that keeps an old mtime still changes it.
      if (st.isFile() && trusted(st) && st.mtimeMs >= built) cachedData = fs.readFileSync(fd);
    } catch { /* first run */ } finally { if (fd !== undefined) fs.closeSync(fd); }
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  // a call that ran here for want of a warm process starts one for the next (not the warm process itself, nor after tsctl's own error)
  if (warmUp) process.once('exit', (code) => { if (code !== 125) warmUp(); });
  if (dirOk && (!cachedData || script.cachedDataRejected) && !process.env.TSCTL_WARM_SERVE) {
    process.once('exit', (code) => {
      // only calls that did the command's work: a typo makes no file, and `run --help` would
      // make a cache of help's code that every later run loads and then compiles around (~9 ms)
      if (code !== 0 || process.argv.some((a) => a === '--help' || a === '-h')) return;
      try {
        const tmp = `${cacheFile}.${process.pid}`;
        fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o644 });
        fs.renameSync(tmp, cacheFile);
      } catch { /* a read-only install just compiles every time */ }
    });
  }
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
}

// The warm process (tsctl/warm.ts, ssh's ControlMaster for `tsctl run`): a call that finds it
// sends it its argv, environment and directory over a unix socket and writes what comes back;
// it saves loading tsctl and connecting (~35 ms of the ~85 ms of `run --rm busybox true`).
// Its socket is in a directory of this user's alone (0700), checked before each use: in
// someone else's, or a group-writable one, or a link, nothing is sent and tsctl runs here.
// Any failure before the warm process takes the call (no socket, a dead one, a decline: -i,
// -t) runs it here as if there were none; TSCTL_WARM=0 never uses one.
function warmDir() {
  const base = process.env.XDG_RUNTIME_DIR || path.join(process.env.HOME || require('node:os').homedir(), '.cache');
  return path.join(base, 'swarmlite');
}
/**
 * The socket of the warm process for this bundle and this node (another build runs another).
 * Its inputs are ones tsctl's C client (native/src/launch/launch.c) computes alike: the bundle's
 * path and identity (inode, mtime and ctime in ns), node's binary and its identity (the same
 * node: its version, without running it), node's flags and the uid, hashed over UTF-8 bytes.
 * A client that computes another name finds no socket and runs the call itself: never another process.
 */
function warmSocket(dir) {
  let id = 'none'; // no bundle (or no node?): its socket is never there
  try {
    const b = fs.statSync(warmFile, { bigint: true }), n = fs.statSync(process.execPath, { bigint: true });
    id = [warmFile, b.ino, b.mtimeNs, b.ctimeNs, process.execPath, n.ino, n.size, n.mtimeNs, process.execArgv.join(' '), uid].join('\0');
  } catch { /* as above */ }
  let a = 0x811c9dc5, b = 0x01000193;
  for (const byte of Buffer.from(id)) {
    a = Math.imul(a ^ byte, 0x01000193) >>> 0;
    b = Math.imul(b ^ byte, 0x2c9277b5) >>> 0;
  }
  return path.join(dir, `tsctl-${a.toString(16)}${b.toString(16)}.sock`);
}
/**
 * The socket's directory: a directory (no link) of this uid's alone, in one no one else can
 * swap it out of (owned by this uid or root, writable by no one else unless sticky).
 */
const privateDir = (st, dir) => {
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) return false;
  try {
    const up = fs.lstatSync(path.dirname(dir));
    return up.isDirectory() && (up.uid === uid || up.uid === 0) && ((up.mode & 0o022) === 0 || (up.mode & 0o1000) !== 0);
  } catch { return false; }
};

/** Starts a warm process on `sock` (detached: it outlives this call, and exits when idle). */
function startWarm(dir, sock) {
  try {
    fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
    try { fs.mkdirSync(dir, { mode: 0o700 }); } catch (err) { if (err.code !== 'EEXIST') return; }
    if (!privateDir(fs.lstatSync(dir), dir)) return;
    const env = { ...process.env, TSCTL_WARM_SERVE: sock };
    delete env.TSCTL_TRACE;
    require('node:child_process').spawn(process.execPath, [...process.execArgv, __filename, 'run'], { detached: true, stdio: 'ignore', cwd: '/', env }).unref();
  } catch { /* no warm process: every call runs here */ }
}

/** The longest line taken from the warm process (one write of the call's output, base64; the C client's too). */
const FRAME_MAX = 16 << 20;

function warm(dir, sock) {
  const t = process.env.TSCTL_TRACE ? [] : undefined;
  const mark = (l) => { if (t) { const u = process.cpuUsage(); t.push([l, performance.now(), (u.user + u.system) / 1000]); } };
  mark('loaded');
  const s = require('node:net').connect(sock);
  let taken = false, over = false, buf = '';
  const forward = (sig) => s.write(`{"sig":"${sig}"}\n`);
  /** Before the warm process took the call: this process runs it (`again`: and starts a warm process for the next). */
  const here = (again) => {
    if (taken || over) return;
    over = true;
    s.destroy();
    direct(again ? () => startWarm(dir, sock) : undefined);
  };
  const exit = (code) => {
    over = true;
    s.destroy();
    if (t) {
      mark('exit');
      const nt = performance.nodeTiming;
      process.stderr.write(`tsctl trace: node ${process.execArgv.join(' ')} (warm); ${[['v8Start', nt.v8Start], ['bootstrapComplete', nt.bootstrapComplete], ...t.map(([l, ms]) => [l, ms]), ...t.map(([l, , c]) => [`cpu.${l}`, c])].map(([l, ms]) => `${l}=${ms.toFixed(1)}`).join(' ')}\n`);
    }
    const pending = [process.stdout, process.stderr].filter((w) => w.writableLength > 0);
    if (!pending.length) process.exit(code);
    let n = pending.length;
    for (const w of pending) w.write('', () => { if (--n === 0) process.exit(code); });
  };
  s.on('connect', () => {
    mark('connected');
    s.write(`${JSON.stringify({ v: 1, argv: process.argv.slice(2), env: process.env, cwd: process.cwd(), tty: [!!process.stdout.isTTY, !!process.stderr.isTTY] })}\n`);
  });
  s.on('error', (err) => { if (!taken) here(err.code === 'ENOENT' || err.code === 'ECONNREFUSED'); });
  s.on('close', () => {
    if (!taken) return here(false);
    if (over) return;
    process.stderr.write(`tsctl: the warm tsctl process (${sock}) went away during the call; ${gonePart()}\n`);
    exit(125);
  });
  s.setEncoding('utf8');
  s.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0 && !over; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let f;
      try { f = JSON.parse(line); } catch { f = undefined; }
      if (!f || typeof f !== 'object') { if (!taken) return here(false); process.stderr.write('tsctl: the warm tsctl process sent junk\n'); return exit(125); }
      if (f.direct && !taken) return here(false);
      if (!taken) { taken = true; mark('taken'); }
      if (f.run) { process.on('SIGINT', forward); process.on('SIGTERM', forward); }
      else if (typeof f.o === 'string') process.stdout.write(Buffer.from(f.o, 'base64'));
      else if (typeof f.e === 'string') process.stderr.write(Buffer.from(f.e, 'base64'));
      else if (f.kill === 'SIGINT' || f.kill === 'SIGTERM') {
        over = true;
        s.destroy();
        process.removeAllListeners(f.kill);
        process.kill(process.pid, f.kill);
      } else if (Number.isInteger(f.exit)) return exit(f.exit);
    }
    if (buf.length > FRAME_MAX && !over) {
      if (!taken) return here(false);
      process.stderr.write('tsctl: the warm tsctl process sent junk\n');
      exit(125);
    }
  });
}

// tsctl's C client (native/build/tsctl) asked the warm process already, which did not take the
// call: it runs here, as in warm() after a decline (the variable is the client's, not the call's)
const asked = process.env.TSCTL_WARM_ASKED;
delete process.env.TSCTL_WARM_ASKED;
// a pull whose password comes on stdin reads it here (the warm process would decline it anyway)
if (!asked && (cmd === 'run' || cmd === 'rm' || (pull && !process.argv.includes('--password-stdin'))) && !process.env.TSCTL_WARM_SERVE && process.env.TSCTL_WARM !== '0' && process.getuid && !process.argv.some((a) => a === '--help' || a === '-h')) {
  const dir = warmDir();
  const sock = warmSocket(dir);
  let st;
  try { st = fs.lstatSync(dir); } catch { /* none yet */ }
  if (sock.length > 100) direct();
  else if (!st) direct(() => startWarm(dir, sock));
  else if (privateDir(st, dir)) warm(dir, sock);
  else direct();
} else direct();
