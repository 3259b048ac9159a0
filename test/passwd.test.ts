// --user and --group-add resolved against an image's /etc/passwd and /etc/group (runc's rules).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveUser, UserError } from '../agent/runtime/passwd.js';

const passwd = 'root:x:0:0:root:/root:/bin/sh\n# a comment\nweb:x:33:44:web:/var/www:/bin/false\nbroken-line\nnobody:x:65534:65534::/nonexistent:/bin/false\n';
const group = 'root:x:0:\nwww:x:44:\nadm:x:4:web,other\nstaff:x:50:other\nbad:x:notanumber:web\n';

test('a name takes its uid, gid and home; groups that list it are added', () => {
  assert.equal(resolveUser('web', passwd, group), { uid: 33, gid: 44, additionalGids: [4], home: '/var/www' });
});

test('a number need not exist; one that does takes its entry', () => {
  assert.equal(resolveUser('1000', passwd, group), { uid: 1000, gid: 0, additionalGids: [], home: '/' });
  assert.equal(resolveUser('33', passwd, group), { uid: 33, gid: 44, additionalGids: [4], home: '/var/www' });
});

test('a group given replaces the gid; --group-add adds names or numbers', () => {
  assert.equal(resolveUser('web:staff', passwd, group, ['root', '77']), { uid: 33, gid: 50, additionalGids: [4, 0, 77], home: '/var/www' });
  assert.equal(resolveUser('1:2', '', ''), { uid: 1, gid: 2, additionalGids: [], home: '/' });
});

test('unknown names are refused; malformed lines are skipped, not trusted', () => {
  assert.throws(() => resolveUser('nosuch', passwd, group), (e: Error) => e instanceof UserError && /unable to find user nosuch/.test(e.message));
  assert.throws(() => resolveUser('web:nosuch', passwd, group), /unable to find group nosuch/);
  assert.throws(() => resolveUser('web', passwd, group, ['ghost']), /--group-add/);
  assert.throws(() => resolveUser('broken-line', passwd, group), /unable to find user/);
  assert.throws(() => resolveUser('99999999999', passwd, group), /unable to find user/);
});

test.run();
