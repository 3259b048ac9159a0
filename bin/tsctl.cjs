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
//   its own (~9 ms CPU). A cache is (re)written when missing or rejected (V8 rejects one
//   made for other source or another V8), atomically, so concurrent calls are safe.
'use strict';
const fs = require('node:fs');
const vm = require('node:vm');
const path = require('node:path');
const Module = require('node:module');

const file = path.join(__dirname, '..', 'dist', 'tsctl.cjs');
const cmd = /^[a-z][a-z-]{0,15}$/.test(process.argv[2] ?? '') ? process.argv[2] : 'tsctl';
const cacheFile = `${file}.${cmd}.cache`;
let source;
try {
  source = fs.readFileSync(file, 'utf8').replace(/^#!.*/, '');
} catch {
  process.stderr.write(`tsctl: ${file} is missing: build it with "npm run build" (ops/setup does)\n`);
  process.exit(125);
}
let cachedData;
try { cachedData = fs.readFileSync(cacheFile); } catch { /* first run */ }
const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
if (!cachedData || script.cachedDataRejected) {
  process.once('exit', (code) => {
    if (code !== 0) return; // only commands that worked: a typo makes no file
    try {
      const tmp = `${cacheFile}.${process.pid}`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch { /* a read-only install just compiles every time */ }
  });
}
const mod = { exports: {} };
script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
