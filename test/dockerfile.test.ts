// The pure half of tsctl build: the Dockerfile parser (continuations, comments, the escape
// directive, exec and shell forms, flags), substitution, .dockerignore patterns, the checks
// run before any work, and the config each metadata instruction makes. No root, no cluster.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerfileError, execForm, pairs, parseDockerfile, substitute, volumePaths, words } from '../tsctl/dockerfile.js';
import { cleanRel, ignored, parseIgnore, patternRegExp } from '../tsctl/dockerignore.js';
import { applyMetadata, checkInstructions, checkTrigger, heredocRun, heredocSources, imageTriggers, MAX_TRIGGERS, parseBuildArgs } from '../tsctl/build.js';
import { contextPath, parseChmod, parseChown } from '../tsctl/build-context.js';

const lineOf = (f: () => unknown): { line: number; message: string } => {
  try { f(); } catch (err) {
    assert.instance(err, DockerfileError);
    const e = err as DockerfileError;
    assert.not.match(e.message, /\n/, 'one line');
    return { line: e.line, message: e.message };
  }
  throw new Error('no error');
};

test('parse - instructions, case-insensitive keywords, comments, blank lines', () => {
  const l = parseDockerfile('# a comment\nFROM busybox\n\nrun echo hi\n  # indented comment\nENV A=1\n');
  assert.equal(l.map((i) => [i.line, i.keyword, i.text]), [[2, 'FROM', 'busybox'], [4, 'RUN', 'echo hi'], [6, 'ENV', 'A=1']]);
});

test('parse - line continuations join lines; comments inside them are dropped; the first line is the instruction\'s', () => {
  const l = parseDockerfile('FROM x\nRUN echo a \\\n  && echo b \\\n# between\n  && echo c\nCMD ["sh"]\n');
  assert.is(l[1]!.line, 2);
  assert.is(l[1]!.text, 'echo a   && echo b   && echo c');
  assert.is(l[2]!.line, 6);
});

test('parse - the escape directive makes ` the continuation character (Windows style)', () => {
  const l = parseDockerfile('# escape=`\nFROM x\nRUN dir c:\\ `\n  /w\n');
  assert.is(l[1]!.text, 'dir c:\\   /w');
  assert.is(l[1]!.escape, '`');
  assert.is(lineOf(() => parseDockerfile('# escape=x\nFROM a')).line, 1);
});

test('parse - flags before the arguments; CRLF files; a BOM', () => {
  const l = parseDockerfile('\uFEFFFROM x\r\nCOPY --chown=1:2 a /b\r\n');
  assert.equal(l[1]!.flags, { chown: '1:2' });
  assert.is(l[1]!.text, 'a /b');
});

test('parse - a malformed line is one DockerfileError with its line number', () => {
  assert.equal(lineOf(() => parseDockerfile('FROM x\nRUN a\nFOO bar\n')), { line: 3, message: 'Dockerfile:3: unknown instruction "FOO" (FROM, COPY, ADD, RUN, ENV, WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE, LABEL, ARG, STOPSIGNAL, SHELL, ONBUILD, MAINTAINER, VOLUME, HEALTHCHECK)' });
  assert.is(lineOf(() => parseDockerfile('FROM x\n\nCOPY\n')).line, 3);
  assert.is(lineOf(() => parseDockerfile('FROM x\nRUN \\\n')).line, 2);
  assert.is(lineOf(() => parseDockerfile('FROM x\nR\u00dcN a\n')).line, 2);
  assert.is(lineOf(() => parseDockerfile('FROM x\nRUN a\0b\n')).line, 2);
  assert.is(lineOf(() => parseDockerfile('x'.repeat((1 << 20) + 1))).line, 1);
});

test('parse - junk bytes never crash: an error with a line, or instructions', () => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 300; i++) {
    const s = Array.from({ length: Math.floor(rnd() * 200) }, () => String.fromCharCode(Math.floor(rnd() * 128))).join('');
    try {
      const l = parseDockerfile(s);
      checkInstructions(l);
    } catch (err) {
      assert.instance(err, DockerfileError, String(err));
      assert.ok((err as DockerfileError).line >= 1);
    }
  }
});

test('exec form - a JSON array of strings; anything else is shell form', () => {
  assert.equal(execForm('["sh", "-c", "echo"]'), ['sh', '-c', 'echo']);
  assert.is(execForm('echo [a]'), null);
  assert.is(execForm('[1, 2]'), null);
  assert.is(execForm('[not json'), null);
});

test('substitute - $X, ${X}, ${X:-d}, ${X-d}, ${X:+w}, ${X+w}, \\$ literal, unknown empty', () => {
  const v = new Map([['A', 'a'], ['E', '']]);
  assert.is(substitute('$A/${A}-$B.', v, 1), 'a/a-.');
  assert.is(substitute('${B:-dflt} ${E:-d2} ${E-d3} ${B-d4}', v, 1), 'dflt d2  d4');
  assert.is(substitute('${A:+set} ${E:+no} ${E+yes} ${B+no}', v, 1), 'set  yes ');
  assert.is(substitute('\\$A costs $5 ${B:-${A}}', v, 1), '$A costs $5 a');
  assert.is(lineOf(() => substitute('${A', v, 4)).line, 4);
  assert.is(lineOf(() => substitute('${1bad}', v, 5)).line, 5);
});

test('words and pairs - quotes, escapes, ENV\'s two forms, ARG without a value', () => {
  assert.equal(words('a "b c" \'d e\' f\\ g', 1), ['a', 'b c', 'd e', 'f g']);
  assert.equal(pairs('A=1 B="two words" C=', 1, 'ENV'), [['A', '1'], ['B', 'two words'], ['C', '']]);
  assert.equal(pairs('LEGACY some value here', 1, 'ENV'), [['LEGACY', 'some value here']]);
  assert.equal(pairs('V', 1, 'ARG'), [['V', undefined]]);
  assert.equal(pairs('V=3', 1, 'ARG'), [['V', '3']]);
  assert.is(lineOf(() => words('"open', 9)).line, 9);
  assert.is(lineOf(() => pairs('A=1 =x', 3, 'LABEL')).line, 3);
});

test('dockerignore - Go patterns, **, ! exceptions, excluded directories take their contents', () => {
  const r = parseIgnore('# comment\n*.log\nsecret/\n**/tmp\n!keep.log\nbuild/**\n!build/out\n');
  assert.ok(ignored(r, 'a.log'));
  assert.not.ok(ignored(r, 'keep.log'));
  assert.not.ok(ignored(r, 'sub/a.log'), '* does not cross a /');
  assert.ok(ignored(r, 'secret/key'));
  assert.ok(ignored(r, 'x/y/tmp/file'));
  assert.ok(ignored(r, 'tmp'));
  assert.ok(ignored(r, 'build/obj/x.o'));
  assert.not.ok(ignored(r, 'build/out'));
  assert.not.ok(ignored(r, 'src/main.c'));
  assert.ok(patternRegExp('a/[bc]?d').test('a/cxd'));
  assert.not.ok(patternRegExp('a/[^b]d').test('a/bd'));
  assert.is(cleanRel('/./a/../b//c/'), 'b/c');
  assert.is(cleanRel('../x'), '../x');
});

test('sources - ../ escapes and URLs are refused in one line; ids for --chown are numeric', () => {
  const s = { line: 4, keyword: 'COPY' as const, sources: [], dest: '/', workdir: '/' };
  assert.is(contextPath(s, '/etc/passwd'), 'etc/passwd', 'an absolute source is relative to the context, as docker');
  assert.is(contextPath(s, 'a/../b'), 'b');
  for (const bad of ['../x', 'a/../../x', '..', './../etc']) assert.match(lineOf(() => contextPath(s, bad)).message, /Dockerfile:4: COPY .*outside the build context/);
  assert.match(lineOf(() => contextPath({ ...s, keyword: 'ADD' }, 'https://example.com/x')).message, /URLs are not fetched/);
  assert.equal(parseChown('1000:50', 1), { uid: 1000, gid: 50 });
  assert.equal(parseChown('7', 1), { uid: 7, gid: 7 });
  assert.match(lineOf(() => parseChown('root', 6)).message, /^Dockerfile:6: --chown=root: a user name needs the image's \/etc\/passwd$/);
});

test('--chown by name from the image\'s /etc/passwd and /etc/group (a user alone: its id as the group), --chmod octal; junk refused in one line', () => {
  const files = { passwd: 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nbad:x:notanumber:1\nbig:x:99999999999:1\n', group: 'root:x:0:\nstaff:x:50:node\n' };
  assert.equal(parseChown('node', 1, files), { uid: 1000, gid: 1000 });
  assert.equal(parseChown('node:staff', 1, files), { uid: 1000, gid: 50 });
  assert.equal(parseChown('0:staff', 1, files), { uid: 0, gid: 50 });
  assert.equal(parseChown('node:7', 1, files), { uid: 1000, gid: 7 });
  for (const [v, why] of [
    ['ghost', /no user ghost in the image's \/etc\/passwd/], ['node:ghost', /no group ghost/], ['bad', /no user bad/], ['big', /no user big/],
    ['a:b:c', /USER\[:GROUP\]/], ['../x', /USER\[:GROUP\]/], ['n\u00f6de', /USER\[:GROUP\]/], [`${'a'.repeat(40)}`, /USER\[:GROUP\]/], ['9999999999', /out of range/], ['99999999999', /USER\[:GROUP\]/],
  ] as const) assert.match(lineOf(() => parseChown(v, 3, files)).message, why, v);
  assert.match(lineOf(() => parseChown('node', 3, {})).message, /the image has no \/etc\/passwd to look node up in/);
  assert.match(lineOf(() => parseChown('0:staff', 3, { passwd: files.passwd })).message, /the image has no \/etc\/group/);
  assert.is(parseChmod('755', 1), 0o755);
  assert.is(parseChmod('0644', 1), 0o644);
  for (const bad of ['8', '75', 'u+x', '77777', '-1']) assert.match(lineOf(() => parseChmod(bad, 2)).message, /^Dockerfile:2: --chmod=/, bad);
  // the checks before any work: the form only (a name is looked up when its step runs)
  checkInstructions(parseDockerfile('FROM x\nCOPY --chown=node:staff --chmod=640 a /b\nADD --chmod=755 a /c\n'));
  assert.match(lineOf(() => checkInstructions(parseDockerfile('FROM x\nCOPY --chmod=999 a /b\n'))).message, /^Dockerfile:2: --chmod=999/);
  assert.match(lineOf(() => checkInstructions(parseDockerfile('FROM x\nCOPY --chown=a:b:c a /b\n'))).message, /^Dockerfile:2: --chown=a:b:c/);
});

test('checks - FROM first, stage names, known flags, exec form that is JSON, a source and a destination', () => {
  const chk = (s: string) => lineOf(() => checkInstructions(parseDockerfile(s)));
  checkInstructions(parseDockerfile('ARG V=1\nFROM busybox:${V}\nRUN true\n'));
  assert.is(chk('RUN true\nFROM x').line, 1);
  checkInstructions(parseDockerfile('FROM a AS build\nRUN make\nFROM b\nCOPY --from=build /out /app\nCOPY --from=0 /x /y\n'));
  assert.match(chk('FROM a AS x\nFROM b AS X').message, /^Dockerfile:2: FROM … AS X: another stage has that name$/);
  assert.match(chk('FROM a AS 1x').message, /^Dockerfile:1: FROM … AS "1x": a stage name/);
  assert.match(chk('FROM a AS b c').message, /^Dockerfile:1: FROM takes one image, optionally AS a stage name$/);
  assert.match(chk('FROM a\nADD --from=b x y').message, /^Dockerfile:2: ADD --from: unknown flag$/);
  assert.match(chk('FROM a\nCOPY --from= x y').message, /^Dockerfile:2: COPY --from: name a stage/);
  assert.match(chk('FROM a\nRUN --mount=type=cache true').message, /Dockerfile:2: RUN --mount: unknown flag/);
  assert.match(chk('FROM a\nCMD ["sh", 1]').message, /Dockerfile:2: CMD .*JSON array/);
  assert.match(chk('FROM a\nCOPY onlyone').message, /Dockerfile:2: COPY needs a source and a destination/);
  assert.match(chk('FROM a BS b').message, /Dockerfile:1/);
  assert.match(chk('ARG x').message, /no FROM/);
  assert.match(chk('').message, /no instructions/);
});

test('metadata - ENV, WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE, LABEL, STOPSIGNAL change only the config', () => {
  const cfg = { config: { Cmd: ['base'], Env: ['PATH=/bin', 'A=old'] }, rootfs: { type: 'layers' as const, diff_ids: ['sha256:' + 'a'.repeat(64)] } };
  const ins = (s: string) => parseDockerfile(`FROM x\n${s}`)[1]!;
  const apply = (s: string, cmdSet = false) => { const i = ins(s); applyMetadata(cfg, i, i.text, cmdSet); };
  apply('ENV A=new B="b c"');
  assert.equal(cfg.config.Env, ['PATH=/bin', 'A=new', 'B=b c']);
  apply('WORKDIR /app'); apply('WORKDIR sub/../src');
  assert.is((cfg.config as { WorkingDir?: string }).WorkingDir, '/app/src');
  apply('USER 1000:1000');
  assert.is((cfg.config as { User?: string }).User, '1000:1000');
  assert.is(lineOf(() => apply('USER a b')).line, 2);
  apply('ENTRYPOINT ["/bin/app"]');
  assert.equal((cfg.config as { Entrypoint?: string[] }).Entrypoint, ['/bin/app']);
  assert.is(cfg.config.Cmd, undefined, 'an ENTRYPOINT resets the inherited Cmd');
  apply('CMD echo $HOME');
  assert.equal(cfg.config.Cmd, ['/bin/sh', '-c', 'echo $HOME']);
  apply('ENTRYPOINT /x', true);
  assert.equal(cfg.config.Cmd, ['/bin/sh', '-c', 'echo $HOME'], 'a Cmd of this Dockerfile stays');
  apply('EXPOSE 80 53/udp 8080/TCP');
  assert.equal((cfg.config as { ExposedPorts?: object }).ExposedPorts, { '80/tcp': {}, '53/udp': {}, '8080/tcp': {} });
  assert.match(lineOf(() => apply('EXPOSE 70000')).message, /Dockerfile:2: EXPOSE "70000"/);
  apply('LABEL a=1 "b c"=2');
  assert.equal((cfg.config as { Labels?: object }).Labels, { a: '1', 'b c': '2' });
  apply('STOPSIGNAL SIGUSR1');
  assert.is((cfg.config as { StopSignal?: string }).StopSignal, 'SIGUSR1');
  for (const bad of ['SIGNOPE', '99', '$(reboot)']) assert.match(lineOf(() => apply(`STOPSIGNAL ${bad}`)).message, /^Dockerfile:2: STOPSIGNAL ".*": a signal name like SIGINT or a number$/, bad);
  assert.is(lineOf(() => apply('STOPSIGNAL')).message, 'Dockerfile:2: STOPSIGNAL needs an argument');
  assert.equal(cfg.rootfs.diff_ids.length, 1, 'no layer');
});

test('VOLUME - JSON and plain forms add to the config\'s Volumes (the base\'s kept), $X substituted; bad paths are one line', () => {
  const cfg: Parameters<typeof applyMetadata>[0] = { config: { Volumes: { '/base': {} } }, rootfs: { type: 'layers', diff_ids: [] } };
  const vars = new Map([['DIR', '/srv/data'], ['EMPTY', '']]);
  const apply = (s: string) => { const i = parseDockerfile(`FROM x\n${s}`)[1]!; applyMetadata(cfg, i, substitute(i.text, vars, i.line, i.escape), false); };
  apply('VOLUME ["/data"]');
  apply('VOLUME /a /b');
  apply('VOLUME $DIR "/with space"');
  apply('VOLUME ["${DIR}/logs", "/a"]');
  assert.equal(Object.keys(cfg.config.Volumes as object).sort(), ['/a', '/b', '/base', '/data', '/srv/data', '/srv/data/logs', '/with space']);
  assert.equal(volumePaths('["/x", "/y"]', 1), ['/x', '/y']);
  assert.equal(volumePaths('/x\\ y /z', 1), ['/x y', '/z'], 'the escape keeps a space in a path');
  for (const [bad, why] of [['VOLUME data', /^Dockerfile:2: VOLUME "data": an absolute path in the container$/], ['VOLUME [""]', /^Dockerfile:2: VOLUME: a path cannot be empty$/],
    ['VOLUME $EMPTY', /^Dockerfile:2: VOLUME needs a path$/], ['VOLUME ["rel/x"]', /VOLUME "rel\/x"/]] as const) {
    assert.match(lineOf(() => apply(bad)).message, why, bad);
  }
  assert.is(lineOf(() => parseDockerfile('FROM x\nVOLUME\n')).message, 'Dockerfile:2: VOLUME needs an argument');
  assert.equal(cfg.rootfs.diff_ids.length, 0, 'no layer');
});

test('heredocs - RUN and COPY bodies are not instructions; <<-, quoted and several delimiters; unclosed is one line', () => {
  const l = parseDockerfile('FROM x\nRUN <<EOF\nFROM evil\n  echo $HOME\nEOF\nCOPY <<-"A" <<b /dst/\n\t\tone $X\n\tA\ntwo\nb\nCMD ["sh"]\n');
  assert.equal(l.map((i) => i.keyword), ['FROM', 'RUN', 'COPY', 'CMD']);
  assert.equal(l[1]!.heredocs, [{ name: 'EOF', raw: 'FROM evil\n  echo $HOME\n', body: 'FROM evil\n  echo $HOME\n', expand: true, stripTabs: false }]);
  assert.equal(l[2]!.heredocs!.map((h) => [h.name, h.body, h.expand, h.stripTabs]), [['A', 'one $X\n', false, true], ['b', 'two\n', true, false]]);
  assert.is(l[3]!.line, 11);
  // not here-documents: inside quotes, a shift, RUN's exec form, an instruction that has none
  for (const t of ['RUN echo "a <<EOF"', 'RUN echo $((1<<2))', 'RUN ["sh", "-c", "cat <<EOF"]', 'ENV A="<<EOF"']) {
    assert.is(parseDockerfile(`FROM x\n${t}\nCMD x\n`).length, 3, t);
  }
  assert.equal(lineOf(() => parseDockerfile('FROM x\nRUN <<EOF\necho\nEO\n')), { line: 2, message: 'Dockerfile:2: here-document <<EOF is not closed: no line "EOF" after it' });
  assert.match(lineOf(() => parseDockerfile(`FROM x\nRUN ${'<<A '.repeat(17)}\n${'A\n'.repeat(17)}`)).message, /more than 16 here-documents/);
});

test('heredocs - RUN: alone the body is the script (a #! one a file), with a command the shell reads it', () => {
  const ins = (s: string) => parseDockerfile(`FROM x\n${s}`)[1]!;
  assert.equal(heredocRun(ins('RUN <<EOF\necho a\necho b\nEOF'), ['/bin/sh', '-c']), ['/bin/sh', '-c', 'echo a\necho b\n']);
  assert.equal(heredocRun(ins('RUN <<EOF\necho a\nEOF'), ['/bin/bash', '-eu', '-c']), ['/bin/bash', '-eu', '-c', 'echo a\n'], 'SHELL is used');
  const sb = heredocRun(ins('RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF'), ['/bin/sh', '-c']);
  assert.is(sb[sb.length - 1], '#!/usr/bin/env python3\nprint(1)\n');
  assert.match(sb[2]!, /mktemp/);
  assert.equal(heredocRun(ins('RUN python3 <<EOF > /out\nprint(1)\nEOF'), ['/bin/sh', '-c']), ['/bin/sh', '-c', 'python3 <<EOF > /out\nprint(1)\nEOF\n']);
  assert.equal(heredocRun(ins('RUN cat <<A <<-B\na\nA\n\tb\n\tB'), ['/bin/sh', '-c'])[2], 'cat <<A <<-B\na\nA\n\tb\n\tB\n');
});

test('heredocs - COPY: every source a here-document and a destination; anything else is one line', () => {
  const chk = (s: string) => lineOf(() => checkInstructions(parseDockerfile(`FROM x\n${s}`)));
  const ok = parseDockerfile('FROM x\nCOPY <<a <<"b" /d/\n1\na\n2\nb\n')[1]!;
  assert.equal(heredocSources(ok).docs.map((d) => d.name), ['a', 'b']);
  assert.is(heredocSources(ok).dest, '/d/');
  checkInstructions(parseDockerfile('FROM x\nCOPY <<a /f\n1\na\n'));
  assert.match(chk('COPY <<a file /d/\n1\na').message, /^Dockerfile:2: COPY file: a here-document and a path of the context cannot be copied in one instruction$/);
  assert.match(chk('COPY <<a <<a /d/\n1\na\n2\na').message, /two here-documents with one name/);
  assert.match(chk('COPY --from=s <<a /d\n1\na').message, /--from/);
});

test('SHELL, MAINTAINER, ONBUILD - change only the config; shell forms after SHELL use it; bad forms refused', () => {
  const cfg: Parameters<typeof applyMetadata>[0] = { config: {}, rootfs: { type: 'layers', diff_ids: [] } };
  const ins = (s: string) => parseDockerfile(`FROM x\n${s}`)[1]!;
  const apply = (s: string) => { const i = ins(s); applyMetadata(cfg, i, i.text, false); };
  apply('SHELL ["/bin/bash", "-o", "pipefail", "-c"]');
  assert.equal(cfg.config.Shell, ['/bin/bash', '-o', 'pipefail', '-c']);
  apply('CMD echo hi');
  assert.equal(cfg.config.Cmd, ['/bin/bash', '-o', 'pipefail', '-c', 'echo hi']);
  for (const bad of ['SHELL /bin/bash -c', 'SHELL []', 'SHELL [""]', 'SHELL ["a", 1]']) {
    assert.match(lineOf(() => checkInstructions(parseDockerfile(`FROM x\n${bad}`))).message, /^Dockerfile:2: SHELL takes a JSON array/, bad);
  }
  apply('MAINTAINER Jane <jane@example.com>');
  assert.is(cfg.author, 'Jane <jane@example.com>');
  apply('ONBUILD COPY . /app/src');
  apply('ONBUILD RUN make $TARGET');
  assert.equal(cfg.config.OnBuild, ['COPY . /app/src', 'RUN make $TARGET'], 'kept as written');
  for (const [bad, why] of [['ONBUILD ONBUILD RUN x', /ONBUILD ONBUILD: not allowed/], ['ONBUILD FROM y', /ONBUILD FROM: not allowed/], ['ONBUILD MAINTAINER y', /not allowed/], ['ONBUILD FOO x', /ONBUILD: unknown instruction "FOO"/], ['ONBUILD COPY --nope a b', /COPY --nope: unknown flag/]] as const) {
    assert.match(lineOf(() => checkInstructions(parseDockerfile(`FROM x\n${bad}`))).message, why, bad);
  }
});

test('ONBUILD - a hostile base image\'s triggers are refused in one line naming it; good ones are instructions', () => {
  assert.equal(imageTriggers(['RUN echo a', 'ENV A=1'], 3, 'base').map((i) => [i.line, i.keyword, i.text]), [[3, 'RUN', 'echo a'], [3, 'ENV', 'A=1']]);
  assert.equal(imageTriggers(undefined, 1, 'b'), []);
  assert.equal(imageTriggers(null, 1, 'b'), []);
  const bad: unknown[] = ['RUN a', { x: 1 }, [1], Array(MAX_TRIGGERS + 1).fill('RUN a'), ['FROM evil'], ['RUN a\nFROM b'], ['ONBUILD RUN a'], ['x'.repeat(70000)], ['RUN <<EOF'], ['COPY <<a /x'], ['']];
  for (const b of bad) {
    const e = lineOf(() => imageTriggers(b, 4, 'team/app:1'));
    assert.is(e.line, 4, JSON.stringify(b).slice(0, 40));
    assert.match(e.message, /^Dockerfile:4: FROM team\/app:1: the image's /);
  }
  assert.is(checkTrigger('COPY --chown=1:1 a b', 2).flags.chown, '1:1');
});

test('build args - K=V, K from the environment, bad names refused', () => {
  const m = parseBuildArgs(['A=1', 'B', 'C'], { B: 'env' });
  assert.equal([...m], [['A', '1'], ['B', 'env']]);
  assert.throws(() => parseBuildArgs(['1A=x'], {}), /invalid --build-arg/);
});

test.run();
