#!/usr/bin/env python3
"""tests/cluster/fake_pmi.py SCENARIO COMMAND...: run COMMAND as rank 0 of
2 (or 1) under a small PMI-1 server (the simple PMI wire protocol) that answers
one request badly, as SCENARIO says; print COMMAND's exit status.

The server is reached through PMI_FD=9 (one end of a socketpair), or for
the port-* scenarios through PMI_PORT=127.0.0.1:PORT with PMI_ID=0 (no
PMI_RANK or PMI_SIZE: the initack handshake tells them).

Scenarios: garbage (init answered with a line that is not PMI), version
(init answered with PMI version 2), closed (the connection closed at
get_maxes), refuse (put refused with rc=-1), mute (init never answered),
silent (barrier_in never answered), badkey (rank 1 of 2 is told a value
that is no key, a%20b encoded, for rank 0's keys), port-badset
(initack's size is not a number), port-size (initack says size 3: the
run must use the server's size)."""
import os
import socket
import subprocess
import sys
import threading

scenario, cmd = sys.argv[1], sys.argv[2:]

GOOD = {
    "init": "cmd=response_to_init rc=0 pmi_version=1 pmi_subversion=1",
    "get_maxes": "cmd=maxes rc=0 kvsname_max=256 keylen_max=64 vallen_max=1024",
    "get_my_kvsname": "cmd=my_kvsname rc=0 kvsname=fake_kvs",
    "put": "cmd=put_result rc=0 msg=success",
    "barrier_in": "cmd=barrier_out rc=0",
    "finalize": "cmd=finalize_ack rc=0",
}
# None: never answer (the connection stays open); "close": close it.
BAD = {
    "garbage": {"init": "hello there"},
    "version": {"init": "cmd=response_to_init rc=0 pmi_version=2 pmi_subversion=0"},
    "closed": {"get_maxes": "close"},
    "refuse": {"put": "cmd=put_result rc=-1 msg=kvs_full"},
    "mute": {"init": None},
    "silent": {"barrier_in": None},
    "badkey": {"get": "cmd=get_result rc=0 msg=success value=no%20key"},
    "port-badset": {},
    "port-size": {"barrier_in": None},
}[scenario]


def serve(conn):
    f = conn.makefile("rb")
    for raw in f:
        words = dict(w.split("=", 1) for w in raw.decode().split() if "=" in w)
        c = words.get("cmd", "")
        if c == "initack":
            size = "x" if scenario == "port-badset" else "3" if scenario == "port-size" else "2"
            conn.sendall(f"cmd=initack\ncmd=set size={size}\ncmd=set rank=0\n"
                         "cmd=set debug=0\n".encode())
            continue
        reply = BAD.get(c, GOOD.get(c, f"cmd={c}_result rc=-1 msg=no_{c}_here"))
        if reply == "close":
            conn.close()
            return
        if reply is None:
            threading.Event().wait()  # until the process ends
        conn.sendall((reply + "\n").encode())


env = {k: v for k, v in os.environ.items()
       if not k.startswith(("OMPI_", "PMIX_", "PMI_", "SLURM_"))}
if scenario.startswith("port-"):
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)
    env.update(PMI_PORT=f"127.0.0.1:{lsn.getsockname()[1]}", PMI_ID="0")
    child = subprocess.Popen(cmd, env=env)

    def accept():
        conn, _ = lsn.accept()
        serve(conn)
    threading.Thread(target=accept, daemon=True).start()
else:
    ours, theirs = socket.socketpair()
    os.dup2(theirs.fileno(), 9)
    theirs.close()
    env.update(PMI_FD="9", PMI_RANK="1" if scenario == "badkey" else "0", PMI_SIZE="2")
    child = subprocess.Popen(cmd, env=env, pass_fds=(9,))
    os.close(9)
    threading.Thread(target=serve, args=(ours,), daemon=True).start()
print(child.wait())
