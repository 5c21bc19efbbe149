# Sourced by the scripts that start test servers and daemons (cloud-servers.sh, slurm-local.sh):
# how to start one detached, and a watchdog that stops it when its owner dies. $PY is the caller's
# Python.

# detach CMD...: CMD in a new session with every inherited descriptor above 2 closed, no signal
# blocked and the usual signals at their default actions. A server must not keep the caller's
# pipes or Foundation's process-watching socket open, or the caller (Command.run in the Swift
# tests) waits for this script's end forever; and a test process may hand down SIGTERM ignored
# or blocked, which would make the server deaf to `stop`.
detach() {
  exec "$PY" -c '
import os, signal, sys
os.closerange(3, 65536)
signal.pthread_sigmask(signal.SIG_SETMASK, [])
for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGPIPE", "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGXFSZ"):
    signal.signal(getattr(signal, name), signal.SIG_DFL)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

# Stops process argv[2] when process argv[1] is gone (a zombie counts as gone).
WATCHDOG='
import os, signal, sys, time
owner, pid = int(sys.argv[1]), int(sys.argv[2])
def alive(p):
    try:
        with open(f"/proc/{p}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while alive(owner) and alive(pid):
    time.sleep(1)
if alive(pid):
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not alive(pid):
            sys.exit(0)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
'
