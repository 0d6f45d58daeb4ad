"""An interactive bash on a pseudo-terminal, driven as a user would type: prompts, ^C to a
foreground job, background jobs (one stopped for reading the terminal, then resumed). Prints the screen (pids masked) so that a run in the Sentry
can be compared with a native one."""
import os, pty, re, select, signal, sys, time

PROMPT = b"PROMPT> "
pid, m = pty.fork()
if pid == 0:
    # A runner that started us as a background job of a non-interactive shell left SIGINT and
    # SIGQUIT ignored; bash hands that on to its jobs, and ^C would stop none of them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    os.execv("/bin/bash", ["bash", "--norc", "--noprofile", "-i"])

screen = b""
# Where the screen stood when the last input was sent: what follows is its answer.
mark = 0


def send(data):
    global mark
    mark = len(screen)
    os.write(m, data)


def expect(what, timeout=20):
    """Reads until the screen, past what the last input found, ends with `what` (None: until
    the terminal's other side is closed)."""
    global screen
    end = time.time() + timeout
    while what is None or not (len(screen) > mark and screen.endswith(what)):
        if time.time() > end:
            raise SystemExit("timed out waiting for %r; screen:\n%s" % (what, screen.decode()))
        r, _, _ = select.select([m], [], [], 0.1)
        if r:
            try:
                data = os.read(m, 4096)
            except OSError:
                return
            if not data:
                return
            screen += data


def type_line(line):
    send(line)
    expect(PROMPT)


# Spelt so that its echo does not show the prompt itself.
send(b"PS1='PROM''PT> '\n")
expect(PROMPT)
type_line(b"echo hi; tty | sed 's/[0-9]*$/N/'\n")
# The subshell says it runs before it becomes sleep (same process): a ^C after that reaches the
# foreground job, however slowly the machine forks, and never bash's line editor.
send(b"(echo started; exec sleep 5)\n")
expect(b"started\r\n")
time.sleep(0.5)  # and for bash to hand the job the terminal: a ^C before that reaches bash alone
send(b"\x03")
expect(PROMPT)
type_line(b"echo after-int $?\n")
type_line(b"sleep 3 &\n")
type_line(b"jobs\n")
type_line(b"kill %1; wait; echo killed $?\n")
# A background job reading the terminal stops (SIGTTIN) until brought to the foreground.
type_line(b"cat &\n")
type_line(b"sleep 0.5\n")
type_line(b"jobs\n")
send(b"fg\n")
expect(b"cat\r\n")
time.sleep(0.3)  # bash hands the terminal to cat after naming it
send(b"meow\r")
expect(b"meow\r\nmeow\r\n")
send(b"\x04")
expect(PROMPT)
type_line(b"echo fg-done $?\n")
send(b"exit\n")
expect(None)
_, status = os.waitpid(pid, 0)
text = screen.decode(errors="replace").replace("\r", "")
text = re.sub(r"\[(\d)\] \d+", r"[\1] PID", text)
# Whether bash reports the killed job depends on whether it reaps it before `wait` runs.
text = re.sub(r"\[1\]\+ +Terminated +sleep 3\n", "", text)
# Likewise when bash hears that cat stopped; `jobs` shows it anyway.
text = text.replace("\n\n[1]+  Stopped                 cat\n", "\n")
# Everything before the first prompt is bash's own start-up prompt.
print(text[text.index("PROMPT> "):])
print("status", os.waitstatus_to_exitcode(status))
