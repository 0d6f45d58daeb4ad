"""os.openpty and pty.spawn, printed so that a run in the Sentry can be compared with a native
one (pty numbers masked). argv[1]: busybox's path."""
import os, pty, re, sys, termios

busybox = sys.argv[1]
m, s = os.openpty()
print("openpty ttyname:", re.sub(r"\d+$", "N", os.ttyname(s)), os.isatty(m), os.isatty(s))
print("lflag has ICANON:", bool(termios.tcgetattr(s)[3] & termios.ICANON))
os.close(s)
try:
    os.read(m, 10)
except OSError as e:
    print("master read, slave closed:", e.errno == 5)
os.close(m)

captured = []
def read(fd):
    data = os.read(fd, 1024)
    captured.append(data)
    return data

sys.stdout.flush()
saved = os.dup(1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
status = pty.spawn([busybox, "sh", "-c", "stty rows 24 cols 80; stty size; tty; echo spawned"], read)
os.dup2(saved, 1)
out = re.sub(rb"/dev/pts/\d+", b"/dev/pts/N", b"".join(captured))
print("spawn output:", out)
print("spawn status:", os.waitstatus_to_exitcode(status))
