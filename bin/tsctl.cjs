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
'use strict';
const fs = require('node:fs');
const vm = require('node:vm');
const path = require('node:path');
const Module = require('node:module');

const cmd = /^[a-z][a-z-]{0,15}$/.test(process.argv[2] ?? '') ? process.argv[2] : 'tsctl';
// `tsctl run` has a bundle of its own: run's code alone, ~58% of the whole one to read, and
// less to load from its cache and to evaluate (tsctl/cli-run.ts)
const file = path.join(__dirname, '..', 'dist', cmd === 'run' ? 'tsctl-run.cjs' : 'tsctl.cjs');
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
const uid = process.getuid?.();
let owner, built = Infinity;
try { const st = fs.statSync(file); owner = st.uid; built = Math.max(st.mtimeMs, st.ctimeMs); } catch { owner = uid; }
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
if (dirOk && (!cachedData || script.cachedDataRejected)) {
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
