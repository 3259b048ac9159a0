#!/usr/bin/env python3
# Runs a command under a real pty, as a user at a terminal would (test/tty-e2e.test.ts).
# argv: ROWS COLS STEPS_JSON -- COMMAND...
# STEPS: [{"expect": REGEX, "timeout": S} | {"send": TEXT} | {"resize": [ROWS, COLS]} | {"sleep": S}
#         | {"waitFile": PATH, "timeout": S} (until the test makes PATH: a step of its own in between)
#         | {"touch": PATH} (tells the test this step was reached)]
# Prints one JSON object: output (all the command wrote), code (its exit code, or null if
# it had to be killed), failed (the step that did not happen, or null), stty_before and
# stty_after (`stty -g` of the terminal before the command and after it ended).
import fcntl, json, os, re, select, signal, struct, subprocess, sys, termios, time

rows, cols, steps = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
cmd = sys.argv[sys.argv.index('--') + 1:]
master, slave = os.openpty()
def setsize(r, c): fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', r, c, 0, 0))
setsize(rows, cols)
stty = lambda: subprocess.run(['stty', '-g'], stdin=slave, capture_output=True, text=True).stdout.strip()
before = stty()

def ctty():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty, close_fds=True)
out = b''
seen = 0
failed = None

def pump(t):
    global out
    r, _, _ = select.select([master], [], [], t)
    if r:
        try:
            d = os.read(master, 65536)
        except OSError:
            return False
        out += d
    return True

for i, s in enumerate(steps):
    if 'expect' in s:
        rx = re.compile(s['expect'].encode(), re.S)
        end = time.time() + s.get('timeout', 30)
        while True:
            m = rx.search(out, seen)
            if m:
                seen = m.end()
                break
            if time.time() > end or (p.poll() is not None and not pump(0.2)):
                failed = {'step': i, 'expect': s['expect']}
                break
            pump(0.2)
        if failed: break
    elif 'send' in s:
        os.write(master, s['send'].encode())
    elif 'resize' in s:
        setsize(*s['resize'])  # the kernel signals the foreground group (SIGWINCH)
    elif 'touch' in s:
        open(s['touch'], 'w').close()
    elif 'waitFile' in s:
        end = time.time() + s.get('timeout', 120)
        while not os.path.exists(s['waitFile']):
            if time.time() > end:
                failed = {'step': i, 'waitFile': s['waitFile']}
                break
            pump(0.1)
        if failed: break
    elif 'sleep' in s:
        end = time.time() + s['sleep']
        while time.time() < end: pump(0.05)

code = None
end = time.time() + 30
while p.poll() is None and time.time() < end:
    pump(0.2)
if p.poll() is None:
    p.kill()
    p.wait()
else:
    code = p.returncode
while pump(0.05) and select.select([master], [], [], 0)[0]:
    pass
after = stty()
print(json.dumps({'output': out.decode('utf-8', 'replace'), 'code': code, 'failed': failed, 'stty_before': before, 'stty_after': after}))
