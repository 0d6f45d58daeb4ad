"""Python as applications use it: threads, multiprocessing, asyncio, sockets, signals,
sqlite3, os.nice, and an AF_UNIX socket left open at exit."""
import asyncio
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time


def square(x):
    return x * x


def threads():
    total = [0]
    lock = threading.Lock()

    def work():
        for _ in range(10000):
            with lock:
                total[0] += 1

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return total[0]


async def echo():
    async def handle(r, w):
        w.write((await r.readline()).upper())
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"ping\n")
    await w.drain()
    got = await r.readline()
    w.close()
    server.close()
    await server.wait_closed()
    return got.decode().strip()


def alarm():
    hits = []
    signal.signal(signal.SIGALRM, lambda s, f: hits.append(s))
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    time.sleep(0.5)
    return hits == [signal.SIGALRM]


def database():
    c = sqlite3.connect("/tmp/programs.db")
    c.execute("create table t(x)")
    c.executemany("insert into t values (?)", [(i,) for i in range(1000)])
    c.commit()
    return c.execute("select count(*), sum(x) from t").fetchone()


def main():
    print("threads", threads())
    with multiprocessing.Pool(2) as pool:
        print("pool", sum(pool.map(square, range(100))))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        print("spawned pool", pool.apply(square, (12,)))
    print("asyncio", asyncio.run(echo()))
    a, b = socket.socketpair(socket.AF_UNIX)
    a.sendall(b"unix")
    print("socketpair", b.recv(4).decode())
    print("alarm", alarm())
    print("sqlite", database())
    print("nice", os.nice(0), os.nice(3))
    out = subprocess.run(["sh", "-c", "echo $((6 * 7)); exit 3"], capture_output=True, text=True)
    print("subprocess", out.stdout.strip(), out.returncode)
    # Left open at exit (globals): the interpreter closes them while tearing down.
    global left_open, client
    left_open = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left_open.bind("/tmp/left-open.sock")
    left_open.listen()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect("/tmp/left-open.sock")
    print("peer", repr(client.getpeername()))


if __name__ == "__main__":
    main()
