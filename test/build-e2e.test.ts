// tsctl build end to end on a real one-node cluster: a Dockerfile using every instruction
// builds an image that runs with its files, env, working dir and command; a second build
// takes every step from the cache (same digest); an edited COPY source runs that step and
// the ones after it again; --no-cache runs everything. Attacks: a context symlink to
// /etc/shadow stays a link, `COPY ../x` and a source through a symlinked directory are
// refused, a failing RUN ends the build with its code and leaves no container or temporary
// image, a malformed line is one line naming it. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { StorageType } from 'nats';
import { Cluster, ROOT, until } from './helpers/cluster.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';

const t = suite('build-e2e');
let c: Cluster;
let ctx: string;

const DOCKERFILE = `# every instruction of the build
ARG BASE=busybox
FROM \${BASE}
ARG GREETING=hello
ENV APP_HOME=/app \\
    MODE=test
WORKDIR $APP_HOME
COPY app/ ./
COPY escape link/ /app/
ADD files.tar.gz /opt/
RUN echo "$GREETING from run" > /app/ran && mkdir -p /app/made
RUN ["/bin/sh", "-c", "echo exec > /app/exec"]
LABEL org.example.name="demo app"
EXPOSE 8080/tcp
USER 1000
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat hello.txt; echo $MODE $GREETING; pwd; cat ran exec /opt/inner/x.txt; stat -c %u /opt/inner/x.txt; readlink escape; ls /app"]
`;

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  ctx = join(c.dir, 'ctx');
  mkdirSync(join(ctx, 'app'), { recursive: true });
  writeFileSync(join(ctx, 'Dockerfile'), DOCKERFILE);
  writeFileSync(join(ctx, 'app/hello.txt'), 'hello v1\n');
  writeFileSync(join(ctx, 'app/key.secret'), 'do not copy\n');
  writeFileSync(join(ctx, '.dockerignore'), '**/*.secret\n');
  // a link to a host file: it must arrive as a link, never as the host's shadow file
  symlinkSync('/etc/shadow', join(ctx, 'escape'));
  mkdirSync(join(ctx, 'link'));
  writeFileSync(join(ctx, 'link/inlink.txt'), 'x');
  mkdirSync(join(c.dir, 'tarsrc/inner'), { recursive: true });
  writeFileSync(join(c.dir, 'tarsrc/inner/x.txt'), 'from the archive\n');
  const tr = spawnSync('tar', ['-czf', join(ctx, 'files.tar.gz'), '--numeric-owner', '--owner=1234', '--group=99', '-C', join(c.dir, 'tarsrc'), 'inner'], { encoding: 'utf8' });
  assert.is(tr.status, 0, tr.stderr);
});
t.after(async () => { await c?.stop(); });

const build = (args: string[], dir = ctx) => c.tsctl(['build', ...args, dir], { timeout: 300000 });

/** The step numbers a build's output says came from the cache, and those it ran. */
function steps(out: string): { cached: number[]; ran: number[] } {
  const cached: number[] = [], ran: number[] = [];
  const lines = out.split('\n');
  for (const [i, l] of lines.entries()) {
    const m = /^Step (\d+)\/\d+ : (\S+)/.exec(l);
    if (!m || m[2] === 'FROM' || m[2] === 'ARG') continue;
    // the step's own lines run up to the next Step line
    const rest = lines.slice(i + 1, lines.findIndex((x, j) => j > i && x.startsWith('Step ')) >>> 0);
    (rest.includes(' ---> Using cache') ? cached : ran).push(Number(m[1]));
  }
  return { cached, ran };
}

const leftovers = async () => {
  const ps = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as { Names?: string; name?: string }[];
  const imgs = (await c.ok(['image', 'ls', '-q'])).split('\n');
  return { containers: ps.filter((p) => JSON.stringify(p).includes('tsctl-build-')).length, images: imgs.filter((n) => n.startsWith('tsctl-build-')) };
};

const oneLine = (r: { code: number; stderr: string }, why: RegExp) => {
  assert.is.not(r.code, 0);
  assert.match(r.stderr, why, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
};

let firstDigest = '';

t('build - every instruction; the image runs with its files, env, working dir, entrypoint and cmd', async () => {
  const r = await build(['-t', 'app:3', '--build-arg', 'GREETING=bonjour']);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /Successfully tagged app:3/);
  const [img] = JSON.parse(await c.ok(['image', 'inspect', 'app:3'])) as { digest: string; layers: string[] }[];
  firstDigest = img!.digest;
  assert.is(img!.layers.length, 6, 'busybox + COPY + COPY + ADD + RUN + RUN');
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'app:3'], { timeout: 120000 });
  assert.is(run.code, 0, run.stderr);
  assert.is(run.stdout, 'hello v1\ntest\n/app\nbonjour from run\nexec\nfrom the archive\n1234\n/etc/shadow\n'
    + 'escape\nexec\nhello.txt\ninlink.txt\nmade\nran\n', 'key.secret is left out by .dockerignore; escape is a link');
  // the image's USER is the process's user (docker run's default)
  assert.is((await c.ok(['run', '--rm', '--network', 'none', 'app:3', 'id -u'])).trim(), '1000');
  // the config: labels, ports, user, env, history with one entry per step
  const nc = await c.connect();
  try {
    const os = await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
    const cfg = JSON.parse(Buffer.from((await os.getBlob(firstDigest.replace(':', '-')))!).toString()) as {
      config: { Labels: object; ExposedPorts: object; User: string; Env: string[]; WorkingDir: string; Entrypoint: string[] }; history: { empty_layer?: boolean }[];
    };
    assert.equal(cfg.config.Labels, { 'org.example.name': 'demo app' });
    assert.equal(cfg.config.ExposedPorts, { '8080/tcp': {} });
    assert.is(cfg.config.User, '1000');
    assert.ok(cfg.config.Env.includes('APP_HOME=/app') && cfg.config.Env.includes('MODE=test'), cfg.config.Env.join());
    assert.not.ok(cfg.config.Env.some((e) => e.startsWith('GREETING=')), 'a build arg is not in the image\'s env');
    assert.is(cfg.history.filter((h) => !h.empty_layer).length, 6);
  } finally { await nc.close(); }
  assert.equal(await leftovers(), { containers: 0, images: [] }, 'no intermediate container or image');
});

t('build - RUN runs as the USER set before it, and the next USER switches back', async () => {
  const dir = join(c.dir, 'ctx-user');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nUSER nobody\nRUN id -u > /tmp/uid\nUSER root\nRUN id -u >> /tmp/uid\nCMD ["cat", "/tmp/uid"]\n');
  const r = await build(['-t', 'users:1'], dir);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.is((await c.ok(['run', '--rm', '--network', 'none', 'users:1'])), '65534\n0\n');
});

t('build - STOPSIGNAL becomes the image\'s StopSignal, which tsctl stop sends first (--stop-signal still overrides it)', async () => {
  const dir = join(c.dir, 'ctx-stopsignal');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nSTOPSIGNAL SIGUSR1\nCMD ["sh", "-c", "trap \'echo got-usr1; exit 7\' USR1; trap \'echo got-term; exit 8\' TERM; echo ready; while :; do sleep 0.1; done"]\n');
  const r = await build(['-t', 'stopsig:1'], dir);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const stopWith = async (extra: string[]) => {
    const id = (await c.ok(['run', '-d', '--network', 'none', ...extra, 'stopsig:1'])).trim();
    await until(async () => (await c.ok(['logs', id])).includes('ready'), 20000, 'the trap set');
    await c.ok(['stop', '-t', '20', id]);
    const [ins] = JSON.parse(await c.ok(['inspect', id])) as { State: { ExitCode: number } }[];
    const logs = await c.ok(['logs', id]);
    await c.ok(['rm', id]);
    return { code: ins!.State.ExitCode, logs };
  };
  const img = await stopWith([]);
  assert.equal([img.code, img.logs.includes('got-usr1')], [7, true], img.logs);
  const flag = await stopWith(['--stop-signal', 'TERM']);
  assert.equal([flag.code, flag.logs.includes('got-term')], [8, true], flag.logs);
});

t('build - multi-stage: COPY --from a stage by name or number sees its whiteouts; only the last stage is the image; nothing leaks', async () => {
  const dir = join(c.dir, 'ctx-stages');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), [
    'FROM busybox AS build',
    'RUN mkdir -p /out/sub /out/gone && echo built > /out/sub/a && ln -s a /out/sub/link && echo x > /out/gone/f && echo y > /out/del && ln -s /etc /out/etc',
    // a later layer deletes a file (whiteout) and replaces a directory (opaque)
    'RUN rm /out/del && rm -rf /out/gone && mkdir /out/gone && echo new > /out/gone/n',
    'FROM busybox',
    'COPY --from=build /out /app',
    'COPY --from=0 /out/sub/a /single',
    'CMD ["sh", "-c", "cat /app/sub/a /single; readlink /app/sub/link; ls -A /app/gone; ls /app/del 2>&1 | grep -c \'No such\'; readlink /app/etc"]',
    '',
  ].join('\n'));
  const tmpBefore = readdirSync(tmpdir()).filter((n) => n.startsWith('tsctl-stage-')).length;
  const r = await build(['-t', 'stages:1'], dir);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.is(await c.ok(['run', '--rm', '--network', 'none', 'stages:1']), 'built\nbuilt\na\nn\n1\n/etc\n');
  const [img] = JSON.parse(await c.ok(['image', 'inspect', 'stages:1'])) as { layers: string[] }[];
  const [base] = JSON.parse(await c.ok(['image', 'inspect', 'busybox'])) as { layers: string[] }[];
  assert.is(img!.layers.length, base!.layers.length + 2, 'the base and the two COPY layers: nothing of the first stage');
  assert.is(readdirSync(tmpdir()).filter((n) => n.startsWith('tsctl-stage-')).length, tmpBefore, 'the unpacked stage is removed');
  // a stage's links are followed inside the stage, as its container sees them (docker's rule):
  // an absolute link or one climbing out with .. ends at the stage's root, never the host's
  writeFileSync(join(dir, 'Dockerfile.links'), [
    'FROM busybox AS build',
    'RUN echo "stage-secret:x:0:0::/:/bin/sh" > /etc/passwd && ln -s /etc /evil && ln -s ../../../../../../etc/passwd /up && mkdir -p /usr/lib && echo lib > /usr/lib/libx.so.1 && ln -s libx.so.1 /usr/lib/libx.so && ln -s usr/lib /lib2 && ln -s loop1 /loop2 && ln -s loop2 /loop1',
    'FROM busybox',
    'COPY --from=build /evil/passwd /p1',
    'COPY --from=build /up /p2',
    'COPY --from=build /lib2/libx.so /out/',
    'CMD ["sh", "-c", "cat /p1 /p2 /out/libx.so; [ -L /out/libx.so ] || echo not-a-link"]',
    '',
  ].join('\n'));
  const links = await build(['-t', 'links:1', '-f', join(dir, 'Dockerfile.links')], dir);
  assert.is(links.code, 0, links.stdout + links.stderr);
  assert.is(await c.ok(['run', '--rm', '--network', 'none', 'links:1']), 'stage-secret:x:0:0::/:/bin/sh\nstage-secret:x:0:0::/:/bin/sh\nlib\nnot-a-link\n');
  writeFileSync(join(dir, 'Dockerfile.loop'), 'FROM busybox AS build\nRUN ln -s loop1 /loop2 && ln -s loop2 /loop1\nFROM busybox\nCOPY --from=build /loop1/x /x\n');
  const loop = await build(['-t', 'loop:1', '-f', join(dir, 'Dockerfile.loop')], dir);
  assert.is(loop.code, 125, loop.stdout);
  assert.match(loop.stderr, /^tsctl: Dockerfile:4: COPY \/loop1\/x: more than 40 symlinks on the way\n$/);
  writeFileSync(join(dir, 'Dockerfile.none'), 'FROM busybox AS build\nRUN ln -s /nowhere /dangling\nFROM busybox\nCOPY --from=build /dangling /x\n');
  const none = await build(['-t', 'none:1', '-f', join(dir, 'Dockerfile.none')], dir);
  assert.is(none.code, 125, none.stdout);
  assert.match(none.stderr, /^tsctl: Dockerfile:4: COPY \/dangling: no such file in the stage\n$/);
  for (const [file, re] of [
    ['FROM busybox AS a\nFROM busybox\nCOPY --from=a2 /x /y\n', /^tsctl: Dockerfile:3: COPY --from=a2: no stage of that name and no such image "a2"/],
    ['FROM busybox AS a\nCOPY --from=a /x /y\n', /^tsctl: Dockerfile:2: COPY --from=a: no earlier stage has that name/],
    ['FROM busybox\nCOPY --from=3 /x /y\n', /^tsctl: Dockerfile:2: COPY --from=3: no earlier stage has that number/],
  ] as [string, RegExp][]) {
    writeFileSync(join(dir, 'Dockerfile.bad'), file);
    const bad = await build(['-t', 'bad:1', '-f', join(dir, 'Dockerfile.bad')], dir);
    assert.is(bad.code, 125, bad.stdout);
    assert.match(bad.stderr, re);
    assert.is(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  }
});

t('build - here-documents (RUN script, a #! script, RUN with a command, COPY with $ARG), SHELL, MAINTAINER; a changed body is not a cache hit', async () => {
  const dir = join(c.dir, 'ctx-heredoc');
  mkdirSync(dir, { recursive: true });
  const df = (word: string, last: string) => [
    'FROM busybox',
    'MAINTAINER team <t@example.com>',
    'ARG WHO=world',
    'RUN <<EOF', 'echo one > /r1', `echo ${word} >> /r1`, 'EOF',
    'RUN <<EOF', '#!/bin/sh', 'echo "shebang $0" | sed "s/[.].*//" > /r2', 'EOF',
    'RUN cat <<A > /r3 && wc -l < /r3 >> /r3', 'x', 'A',
    'COPY <<NOTE /etc/note', 'hello $WHO', 'NOTE',
    "COPY <<'RAW' <<-TABS /raw/", '$WHO stays', 'RAW', '\t\tindented', '\tTABS',
    'SHELL ["/bin/sh", "-e", "-c"]',
    last, '',
  ].join('\n');
  writeFileSync(join(dir, 'Dockerfile'), df('two', 'RUN false; echo never > /r4'));
  const failed = await build(['-t', 'heredoc:1', '--build-arg', 'WHO=you'], dir);
  assert.is(failed.code, 1, 'SHELL -e: the RUN after it stops at false');
  assert.match(failed.stderr, /Dockerfile:24: RUN .*returned a non-zero code: 1/, failed.stdout + failed.stderr);
  writeFileSync(join(dir, 'Dockerfile'), df('two', 'RUN echo shell $0 > /r4'));
  const r = await build(['-t', 'heredoc:1', '--build-arg', 'WHO=you'], dir);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const out = await c.ok(['run', '--rm', '--network', 'none', 'heredoc:1', 'sh', '-c', 'cat /r1 /r2 /r3 /etc/note /raw/RAW /raw/TABS /r4; stat -c "%a %u" /etc/note; ls -a /tmp']);
  assert.is(out, 'one\ntwo\nshebang /tmp/\nx\n1\nhello you\n$WHO stays\nindented\nshell /bin/sh\n644 0\n.\n..\n', 'the #! script ran as a file and left nothing in /tmp');
  const [img] = JSON.parse(await c.ok(['image', 'inspect', 'heredoc:1'])) as { digest: string }[];
  const nc = await c.connect();
  try {
    const os = await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
    const cfg = JSON.parse(Buffer.from((await os.getBlob(img!.digest.replace(':', '-')))!).toString()) as { author: string; config: { Shell: string[] } };
    assert.is(cfg.author, 'team <t@example.com>');
    assert.equal(cfg.config.Shell, ['/bin/sh', '-e', '-c']);
  } finally { await nc.close(); }
  // only the body of the first RUN changes: MAINTAINER stays cached, that RUN and every step after it run again
  writeFileSync(join(dir, 'Dockerfile'), df('three', 'RUN echo shell $0 > /r4'));
  const again = await build(['-t', 'heredoc:2', '--build-arg', 'WHO=you'], dir);
  assert.is(again.code, 0, again.stdout + again.stderr);
  assert.equal(steps(again.stdout).cached, [2], again.stdout);
  assert.is(await c.ok(['run', '--rm', '--network', 'none', 'heredoc:2', 'cat', '/r1']), 'one\nthree\n');
  assert.equal(await leftovers(), { containers: 0, images: [] });
});

t('build - COPY --chown by name (the image\'s /etc/passwd and /etc/group, as a later layer left them) and --chmod', async () => {
  const dir = join(c.dir, 'ctx-chown');
  mkdirSync(join(dir, 'd'), { recursive: true });
  writeFileSync(join(dir, 'f.txt'), 'f\n');
  writeFileSync(join(dir, 'd/inner.txt'), 'i\n');
  writeFileSync(join(dir, 'Dockerfile'), [
    'FROM busybox',
    'COPY --chown=nobody:nogroup f.txt /a',
    'RUN echo "app:x:4242:4343::/:/bin/sh" >> /etc/passwd && echo "apps:x:4343:" >> /etc/group',
    'COPY --chown=app --chmod=750 d /d/',
    'COPY --chown=app:apps --chmod=0600 f.txt /b',
    'CMD ["sh", "-c", "stat -c \'%n %u %g %a\' /a /b /d /d/inner.txt"]', '',
  ].join('\n'));
  const r = await build(['-t', 'chown:1'], dir);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.is(await c.ok(['run', '--rm', '--network', 'none', 'chown:1']), '/a 65534 65534 644\n/b 4242 4343 600\n/d 4242 4242 755\n/d/inner.txt 4242 4242 750\n');
  // a name the image does not have, and an image whose /etc/group a later layer removed: one line each, no image
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY --chown=ghost f.txt /a\n');
  oneLine(await build(['-t', 'chown:2'], dir), /Dockerfile:2: --chown=ghost: no user ghost in the image's \/etc\/passwd/);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN rm /etc/group\nCOPY --chown=nobody:nogroup f.txt /a\n');
  oneLine(await build(['-t', 'chown:3'], dir), /Dockerfile:3: --chown=nobody:nogroup: the image has no \/etc\/group to look nogroup up in/);
  assert.equal(await leftovers(), { containers: 0, images: [] });
});

t('build - ONBUILD: a child build runs its base\'s triggers right after FROM, with the child\'s context and args; the child keeps none', async () => {
  const base = join(c.dir, 'ctx-onbuild-base');
  const child = join(c.dir, 'ctx-onbuild-child');
  mkdirSync(base, { recursive: true });
  mkdirSync(child, { recursive: true });
  writeFileSync(join(base, 'Dockerfile'), 'FROM busybox\nONBUILD ARG FLAVOUR=plain\nONBUILD COPY src.txt /app/src.txt\nONBUILD RUN echo "built $FLAVOUR" > /app/built\nCMD ["cat", "/app/src.txt", "/app/built"]\n');
  const rb = await build(['-t', 'onbase:1'], base);
  assert.is(rb.code, 0, rb.stdout + rb.stderr);
  // the base itself: the triggers did not run in it
  const plain = await c.tsctl(['run', '--rm', '--network', 'none', 'onbase:1', 'ls', '/app'], { timeout: 120000 });
  assert.is.not(plain.code, 0, 'no /app in the base');
  writeFileSync(join(child, 'src.txt'), 'from the child context\n');
  writeFileSync(join(child, 'Dockerfile'), 'FROM onbase:1\nENV X=1\n');
  const rc = await build(['-t', 'onchild:1', '--build-arg', 'FLAVOUR=spicy'], child);
  assert.is(rc.code, 0, rc.stdout + rc.stderr);
  assert.match(rc.stdout, / # Executing 3 build triggers/);
  assert.is(await c.ok(['run', '--rm', '--network', 'none', 'onchild:1']), 'from the child context\nbuilt spicy\n');
  // a build FROM the child: no trigger left to run
  writeFileSync(join(child, 'Dockerfile'), 'FROM onchild:1\nENV Y=2\n');
  const rg = await build(['-t', 'ongrand:1'], child);
  assert.is(rg.code, 0, rg.stdout + rg.stderr);
  assert.not.match(rg.stdout, /build trigger/);
  // a trigger that fails in the child is the child's failure, one line, nothing left behind
  writeFileSync(join(base, 'Dockerfile'), 'FROM busybox\nONBUILD COPY missing.txt /x\n');
  assert.is((await build(['-t', 'onbase:2'], base)).code, 0);
  writeFileSync(join(child, 'Dockerfile'), 'FROM onbase:2\n');
  oneLine(await build(['-t', 'onchild:2'], child), /Dockerfile:1: .*missing\.txt/);
  assert.equal(await leftovers(), { containers: 0, images: [] });
});

t('cache - the second build takes every step from the cache and makes the same image', async () => {
  const r = await build(['-t', 'app:3b', '--build-arg', 'GREETING=bonjour']);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const s = steps(r.stdout);
  assert.equal(s.ran, [], r.stdout);
  assert.is(s.cached.length, 12, r.stdout);
  assert.match(r.stdout, /Steps from cache: 12 of 12/);
  const [img] = JSON.parse(await c.ok(['image', 'inspect', 'app:3b'])) as { digest: string }[];
  assert.is(img!.digest, firstDigest);
  // another build arg value is another RUN
  const other = await build(['-t', 'app:3c', '--build-arg', 'GREETING=hi']);
  assert.is(other.code, 0, other.stderr);
  assert.equal(steps(other.stdout).ran, [9, 10, 11, 12, 13, 14, 15], other.stdout);
});

t('cache - an edited COPY source runs that step and every one after it again; --no-cache runs all', async () => {
  writeFileSync(join(ctx, 'app/hello.txt'), 'hello v2\n');
  const r = await build(['-t', 'app:4', '--build-arg', 'GREETING=bonjour']);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const s = steps(r.stdout);
  assert.equal(s.cached, [4, 5], r.stdout);
  assert.equal(s.ran, [6, 7, 8, 9, 10, 11, 12, 13, 14, 15], r.stdout);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'app:4'], { timeout: 120000 });
  assert.match(run.stdout, /^hello v2\n/, run.stderr);
  const nocache = await build(['-t', 'app:5', '--no-cache', '--build-arg', 'GREETING=bonjour']);
  assert.is(nocache.code, 0, nocache.stderr);
  assert.equal(steps(nocache.stdout).cached, [], nocache.stdout);
  assert.equal(await leftovers(), { containers: 0, images: [] });
});

t('build - a file copied to a directory of the image goes inside it; a symlinked directory of the image stays a link', async () => {
  const dir = join(c.dir, 'tree');
  mkdirSync(dir);
  writeFileSync(join(dir, 'f'), 'F\n');
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN mkdir -p /opt/real && chmod 751 /opt/real && ln -s /opt/real /linked\n'
    + 'COPY f /linked/\nCOPY f /bin\nCMD ["sh", "-c", "readlink /linked; cat /opt/real/f /bin/f; stat -c %a /opt/real; test -x /bin/sh && echo sh-stays"]\n');
  const r = await build(['-t', 'tree:1'], dir);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'tree:1'], { timeout: 120000 });
  const lines = run.stdout.split('\n');
  assert.equal(lines, ['/opt/real', 'F', 'F', '751', 'sh-stays', ''], run.stdout + run.stderr);
});

t('build - FROM a loaded image whose config is not JSON.stringify\'s bytes: RUN on it works; FROM alone is the same image', async () => {
  // a docker-save archive with a pretty-printed config, the busybox rootfs as its one layer
  const stage = join(c.dir, 'pretty');
  mkdirSync(stage);
  const layer = readFileSync(join(process.env.SWARMLITE_TEST_CACHE ?? c.dir, 'busybox.tar'));
  writeFileSync(join(stage, 'layer.tar'), layer);
  const diffId = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['PRETTY=1'], Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [diffId] } }, null, 3);
  writeFileSync(join(stage, 'config.json'), config);
  writeFileSync(join(stage, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: ['pretty:1'], Layers: ['layer.tar'] }]));
  const tr = spawnSync('tar', ['-cf', join(c.dir, 'pretty.tar'), '-C', stage, 'manifest.json', 'config.json', 'layer.tar'], { encoding: 'utf8' });
  assert.is(tr.status, 0, tr.stderr);
  await c.ok(['image', 'load', '-i', join(c.dir, 'pretty.tar')]);
  const [base] = JSON.parse(await c.ok(['image', 'inspect', 'pretty:1'])) as { digest: string }[];
  assert.is(base!.digest, `sha256:${createHash('sha256').update(config).digest('hex')}`);
  const dir = join(c.dir, 'prettyctx');
  mkdirSync(dir);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM pretty:1\nRUN echo ok-$PRETTY > /ok\nCMD ["cat", "/ok"]\n');
  const r = await build(['-t', 'pretty:2'], dir);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'pretty:2'], { timeout: 120000 });
  assert.is(run.stdout, 'ok-1\n', run.stderr);
  writeFileSync(join(dir, 'Dockerfile'), 'ARG V=1\nFROM pretty:$V\n');
  const same = await build(['-t', 'pretty:3'], dir);
  assert.is(same.code, 0, same.stdout + same.stderr);
  const [img] = JSON.parse(await c.ok(['image', 'inspect', 'pretty:3'])) as { digest: string }[];
  assert.is(img!.digest, base!.digest);
});

t('attack - COPY ../x and a source through a symlinked directory are refused in one line', async () => {
  const dir = join(c.dir, 'bad1');
  mkdirSync(dir);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY ../ctx/Dockerfile /x\n');
  oneLine(await build(['-t', 'bad:1'], dir), /^tsctl: Dockerfile:2: COPY \.\.\/ctx\/Dockerfile: outside the build context/);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY etc/shadow /x\n');
  symlinkSync('/etc', join(dir, 'etc'));
  oneLine(await build(['-t', 'bad:1'], dir), /Dockerfile:2: COPY etc\/shadow: etc is a symlink/);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nADD http://127.0.0.1:1/x /x\n');
  oneLine(await build(['-t', 'bad:1'], dir), /Dockerfile:2: ADD .*URLs are not fetched/);
  assert.not.ok((await c.ok(['image', 'ls', '-q'])).includes('bad:1'));
});

t('attack - a failing RUN ends the build with its exit code and leaves no container or image behind', async () => {
  const dir = join(c.dir, 'bad2');
  mkdirSync(dir);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo before > /f\nRUN echo failing; exit 7\nCMD ["true"]\n');
  const r = await build(['-t', 'bad:2'], dir);
  assert.is(r.code, 7, r.stdout + r.stderr);
  assert.match(r.stderr, /Dockerfile:3: RUN "echo failing; exit 7" returned a non-zero code: 7/);
  assert.match(r.stdout, /failing/, 'the RUN\'s output is shown');
  assert.not.match(r.stdout, /Step 4\/4/);
  assert.not.ok((await c.ok(['image', 'ls', '-q'])).includes('bad:2'));
  assert.equal(await leftovers(), { containers: 0, images: [] });
});

t('attack - a malformed Dockerfile is one line with its line number, before any work', async () => {
  const dir = join(c.dir, 'bad3');
  mkdirSync(dir);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN true \\\n  && true\nCOPY a\n');
  oneLine(await build(['-t', 'bad:3'], dir), /^tsctl: Dockerfile:4: COPY needs a source and a destination\n$/);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\n\nFOO bar\n');
  const r = await build(['-t', 'bad:3'], dir);
  oneLine(r, /^tsctl: Dockerfile:3: unknown instruction "FOO"/);
  assert.is(r.code, 125);
  assert.is(r.stdout, '', 'nothing ran');
  writeFileSync(join(dir, 'Dockerfile'), Buffer.from([0x46, 0x52, 0x4f, 0x4d, 0x20, 0xff, 0xfe, 0x00, 0x0a]));
  oneLine(await build(['-t', 'bad:3'], dir), /^tsctl: Dockerfile:1: /);
  oneLine(await build(['-t', 'bad:3'], join(c.dir, 'nosuchdir')), /cannot read .*Dockerfile: ENOENT/);
  oneLine(await build(['-t', 'Bad Tag'], ctx), /invalid tag/);
});

/** A build in the background, to signal: resolves once its output shows `marker`. */
async function buildUntil(dir: string, tag: string, marker: string): Promise<{ p: ChildProcess; out: () => string; exit: Promise<number | null> }> {
  const p = spawn(process.execPath, [join(ROOT, 'bin/tsctl.cjs'), 'build', '-t', tag, dir], { env: { ...process.env, SWARMLITE_NATS: c.url, SWARMLITE_CREDS: c.adminCreds } });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number | null>((r) => p.on('close', (code) => r(code)));
  try {
    await until(() => out.includes(marker), 120000, `build output "${marker}"`);
  } catch (err) { p.kill('SIGKILL'); throw new Error(`${(err as Error).message}: ${out}`); }
  return { p, out: () => out, exit };
}

/** A build whose RUN sleeps, started in the background and caught inside that RUN. */
async function slowBuild(name: string, content: string) {
  const dir = join(c.dir, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'a'), content);
  // the marker is what the RUN prints, not its text (the step line shows the text)
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY a /a\nRUN echo ready-$((1+1)); sleep 300\n');
  return { dir, b: await buildUntil(dir, `${name}:1`, 'ready-2') };
}

t('fault - Ctrl-C during a RUN kills and removes its container and the temporary image; exit 130', async () => {
  const { b } = await slowBuild('slow1', 'a');
  b.p.kill('SIGINT');
  const timer = setTimeout(() => b.p.kill('SIGKILL'), 90000);
  const code = await b.exit;
  clearTimeout(timer);
  assert.is(code, 130, b.out());
  assert.match(b.out(), /build interrupted by SIGINT/);
  assert.equal(await leftovers(), { containers: 0, images: [] });
});

t('fault - tsctl SIGKILLed during a RUN: the next build finishes from the cache up to that step; the leftovers are named and removable', async () => {
  const { dir, b } = await slowBuild('slow2', 'a2');
  b.p.kill('SIGKILL');
  await b.exit;
  // nothing could clean up: the step's container and image stay, named as the build's
  const left = await leftovers();
  assert.is(left.containers, 1);
  assert.is(left.images.length, 1);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY a /a\nRUN echo quick > /q\nCMD ["cat", "/a", "/q"]\n');
  const r = await build(['-t', 'slow2:1'], dir);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.equal(steps(r.stdout), { cached: [2], ran: [3, 4] });
  // removing the leftovers keeps the built image whole (the layers they share stay)
  const ps = JSON.parse(await c.ok(['ps', '-a', '--format', 'json'])) as unknown[];
  const name = /"(tsctl-build-[0-9a-f]{12}-1)"/.exec(JSON.stringify(ps))![1]!;
  await c.ok(['rm', '-f', name]);
  await c.ok(['image', 'rm', left.images[0]!]);
  assert.equal(await leftovers(), { containers: 0, images: [] });
  const run = await c.tsctl(['run', '--rm', '--network', 'none', 'slow2:1'], { timeout: 120000 });
  assert.is(run.stdout, 'a2quick\n', run.stderr);
});

t.run();
