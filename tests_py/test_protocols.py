"""The protocols against the real thing: real servers (servers.py), real client libraries, the
`vaurien` binary in between. For each protocol: `dummy` gives the same results as talking to
the server directly, `delay` delays, `error` gives the client 1000 random bytes once the request
reached the server (as the original documents), and `error` with `protocol_reply` makes the
client library raise its own protocol error (not a parse failure, not a hang)."""
from __future__ import annotations

import contextlib
import hashlib
import re
import smtplib
import socket
import subprocess
import threading
import time
from email.message import EmailMessage
from typing import Iterator

import pytest

from helpers import free_port, run_vaurien, which_or_skip


@contextlib.contextmanager
def proxy(backend: int, protocol: str, behavior: str = "100:dummy", *extra: str) -> Iterator[int]:
    """Runs vaurien in front of 127.0.0.1:`backend`; yields the proxy's port."""
    port = free_port()
    args = [
        "--proxy", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{backend}",
        "--protocol", protocol, "--behavior", behavior, "--timeout", "10", "--seed", "7", *extra,
    ]
    with run_vaurien(args, port=port):
        yield port


def recv_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until the peer closes."""
    sock.settimeout(timeout)
    out = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return out
        out += data


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while marker not in out:
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"closed before {marker!r}: {out[-200:]!r}")
        out += data
    return out


# --------------------------------------------------------------------------------------- redis

redis = pytest.importorskip("redis")


def redis_session(r) -> list:
    """A varied conversation; returns everything it saw (errors as their text)."""
    out: list = []
    key = f"t:{r.connection_pool.connection_kwargs.get('port')}:{id(out)}"
    binary = b"a\r\nb\r\n\x00\xff" * 100
    out.append(r.set(key + ":bin", binary))
    out.append(r.get(key + ":bin"))
    out.append(r.get(key + ":missing"))
    out.append(r.mset({key + ":1": "one", key + ":2": "two"}))
    out.append(r.mget([key + ":1", key + ":missing", key + ":2"]))
    out.append(r.hset(key + ":h", mapping={"a": "1", "b": "2"}))
    out.append(sorted(r.hgetall(key + ":h").items()))
    out.append(r.rpush(key + ":l", *[str(i) for i in range(200)]))
    out.append(r.lrange(key + ":l", 0, -1))
    out.append(r.zadd(key + ":z", {"x": 1.5, "y": 2.5}))
    out.append(r.zrange(key + ":z", 0, -1, withscores=True))
    out.append(r.sadd(key + ":s", "p", "q"))
    out.append(sorted(r.smembers(key + ":s")))
    out.append(r.incr(key + ":n", 5))
    out.append(r.eval("return {1, {2, {3, 'x'}}, false, 'y'}", 0))
    out.append(r.set(key + ":big", b"z" * 1_500_000))
    out.append(hashlib.sha256(r.get(key + ":big")).hexdigest())
    try:
        r.lpush(key + ":1", "x")
    except redis.ResponseError as e:
        out.append(("error", str(e)))
    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"{key}:p{i}", i)
        pipe.get(f"{key}:p{i}")
    out.append(pipe.execute())
    tx = r.pipeline(transaction=True)
    tx.incr(key + ":tx").incr(key + ":tx").get(key + ":tx")
    out.append(tx.execute())
    out.append(r.delete(*[f"{key}:{s}" for s in ("bin", "1", "2", "h", "l", "z", "s", "n", "big", "tx")]))
    return out


@pytest.mark.parametrize("resp", [2, 3])
def test_redis_dummy_gives_the_same_results(redis_server, resp):
    direct = redis.Redis(port=redis_server, protocol=resp)
    expected = redis_session(direct)
    with proxy(redis_server, "redis", "100:dummy", "--stay-connected") as port:
        through = redis.Redis(port=port, protocol=resp)
        got = redis_session(through)
        through.close()
    direct.close()
    # The key names hold the port: compare what the server answered.
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        if isinstance(a, tuple):
            assert a[0] == b[0]
        else:
            assert a == b


def test_redis_without_stay_connected_closes_after_each_reply(redis_server):
    with proxy(redis_server, "redis") as port:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            assert recv_all(s) == b"+PONG\r\n"


def test_redis_pipeline_in_one_write_is_answered_whole_without_stay_connected(redis_server):
    # As the original (it forwarded a whole read): every command of the write is answered,
    # then the connection closes.
    with proxy(redis_server, "redis") as port:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$1\r\na\r\n")
            assert recv_all(s) == b"+PONG\r\n$1\r\na\r\n"


def test_a_client_closing_is_not_an_exchange(redis_server):
    # transient with agitate=3: the first three commands fail, whatever connections they
    # come on; each client's close between exchanges does not count as one.
    with proxy(redis_server, "redis", "100:transient", "--stay-connected", "--behavior-transient-agitate", "3",
               "--behavior-error-protocol-reply", "--behavior-transient-protocol-reply") as port:
        answers = []
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                answers.append(recv_until(s, b"\r\n")[:4])
    assert answers == [b"-ERR", b"-ERR", b"-ERR", b"+PON", b"+PON"]


def test_redis_pipelined_raw_and_split_commands(redis_server):
    with proxy(redis_server, "redis", "100:dummy", "--stay-connected") as port:
        with socket.create_connection(("127.0.0.1", port)) as s:
            # Three commands in one write, the last one cut in the middle of a binary value.
            s.sendall(b"*3\r\n$3\r\nSET\r\n$6\r\nvr:raw\r\n$4\r\n\r\n\r\n\r\nPING\r\n*2\r\n$3\r\nGET\r\n$6\r\nvr:")
            time.sleep(0.2)
            s.sendall(b"raw\r\n")
            want = b"+OK\r\n+PONG\r\n$4\r\n\r\n\r\n\r\n"
            assert recv_until(s, want) == want


def test_redis_pubsub_through_the_proxy(redis_server):
    with proxy(redis_server, "redis", "100:dummy", "--stay-connected") as port:
        sub = redis.Redis(port=port)
        ps = sub.pubsub()
        ps.subscribe("vaurien-ch")
        assert ps.get_message(timeout=5)["type"] == "subscribe"
        pub = redis.Redis(port=redis_server)
        for i in range(3):
            pub.publish("vaurien-ch", f"m{i}")
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            m = ps.get_message(timeout=1)
            if m and m["type"] == "message":
                got.append(m["data"])
        assert got == [b"m0", b"m1", b"m2"]
        ps.close()
        sub.close()
        pub.close()


def test_redis_blocking_command_outlives_the_timeout(redis_server):
    port = free_port()
    args = ["--proxy", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{redis_server}",
            "--protocol", "redis", "--stay-connected", "--timeout", "1"]
    with run_vaurien(args, port=port):
        r = redis.Redis(port=port)
        r.delete("vr:queue")

        def push_later():
            time.sleep(1.8)
            redis.Redis(port=redis_server).rpush("vr:queue", "job")

        t = threading.Thread(target=push_later)
        t.start()
        assert r.blpop(["vr:queue"], timeout=5) == (b"vr:queue", b"job")
        t.join()
        r.close()


def test_redis_delay(redis_server):
    with proxy(redis_server, "redis", "100:delay", "--stay-connected", "--behavior-delay-sleep", "0.5") as port:
        r = redis.Redis(port=port)
        start = time.monotonic()
        assert r.ping()
        assert time.monotonic() - start >= 0.5
        r.close()


def test_redis_error_is_a_response_error(redis_server):
    with proxy(redis_server, "redis", "100:error", "--stay-connected", "--behavior-error-protocol-reply") as port:
        r = redis.Redis(port=port, protocol=2)
        with pytest.raises(redis.ResponseError, match="vaurien"):
            r.get("x")
        with pytest.raises(redis.ResponseError, match="vaurien"):
            r.set("x", "y")
        r.close()


def test_error_sends_random_bytes_after_the_request_reached_the_server(redis_server, memcached_server):
    # As the original documents: the request goes through, 1000 random bytes replace the answer.
    direct = redis.Redis(port=redis_server)
    direct.delete("vaurien:side")
    with proxy(redis_server, "redis", "100:error", "--stay-connected") as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$12\r\nvaurien:side\r\n$1\r\n1\r\n")
            got = recv_all(s)
        assert len(got) == 1000 and got != b"+OK\r\n"
    assert direct.get("vaurien:side") == b"1", "the request reached redis"
    direct.close()
    with proxy(memcached_server, "memcache", "100:error", "--stay-connected") as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"version\r\n")
            assert len(recv_all(s)) == 1000
        c = MemcacheClient(("127.0.0.1", port), timeout=5)
        with pytest.raises(Exception):
            c.get("vm:any")
        c.close()


def test_error_inject_puts_100_random_bytes_in_the_real_answer(redis_server):
    with proxy(redis_server, "redis", "100:error", "--stay-connected", "--behavior-error-inject") as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"PING\r\n")
            got = b""
            deadline = time.monotonic() + 10
            while len(got) < 107 and time.monotonic() < deadline:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
    # `+PONG\r\n` with 100 bytes in its middle.
    assert len(got) == 107, got
    assert got.startswith(b"+PO") and got.endswith(b"NG\r\n"), got


@pytest.mark.timeout(120)
def test_redis_benchmark_through_the_proxy(redis_server):
    bench = which_or_skip("redis-benchmark")
    with proxy(redis_server, "redis", "100:dummy", "--stay-connected") as port:
        out = subprocess.run(
            [bench, "-h", "127.0.0.1", "-p", str(port), "-n", "2000", "-c", "10", "-q", "-t", "ping,set,get,lpush,lrange"],
            capture_output=True, text=True, timeout=100,
        )
    assert out.returncode == 0, out.stderr
    assert "error" not in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
    assert "requests per second" in out.stdout


# ------------------------------------------------------------------------------------ memcache

pymemcache = pytest.importorskip("pymemcache")
from pymemcache.client.base import Client as MemcacheClient  # noqa: E402
from pymemcache.exceptions import MemcacheServerError  # noqa: E402


def memcache_session(c, tag: str) -> list:
    out: list = []
    k = f"vm{tag}"
    c.delete_many([k + s for s in ("a", "b", "n")], noreply=False)
    out.append(c.set(k + "a", b"1\r\n2"))  # noreply by default in pymemcache
    out.append(c.set(k + "b", b"x" * 300_000, noreply=False))
    out.append(c.get(k + "a"))
    out.append(sorted(c.get_many([k + "a", k + "b", k + "none"]).items()))
    out.append(c.add(k + "a", b"no", noreply=False))
    out.append(c.replace(k + "a", b"yes", noreply=False))
    out.append(c.append(k + "a", b"++", noreply=False))
    out.append(c.prepend(k + "a", b"--", noreply=False))
    value, cas = c.gets(k + "a")
    out.append(value)
    out.append(c.cas(k + "a", b"casd", cas, noreply=False))
    out.append(c.set(k + "n", b"10", noreply=False))
    out.append(c.incr(k + "n", 5))
    out.append(c.decr(k + "n", 3))
    out.append(c.touch(k + "n", 100, noreply=False))
    out.append(c.gat(100, k + "n") if hasattr(c, "gat") else None)
    out.append(c.delete(k + "a", noreply=False))
    out.append(c.delete(k + "missing", noreply=False))
    out.append(c.get(k + "a"))
    out.append(sorted(c.stats().keys())[:5])
    out.append(c.version() != b"")
    return out


def test_memcache_dummy_gives_the_same_results(memcached_server):
    direct = MemcacheClient(("127.0.0.1", memcached_server), timeout=10)
    expected = memcache_session(direct, "same")
    with proxy(memcached_server, "memcache", "100:dummy", "--stay-connected") as port:
        through = MemcacheClient(("127.0.0.1", port), timeout=10)
        got = memcache_session(through, "same")
        through.close()
    direct.close()
    assert got == expected


def test_memcache_data_in_pieces_and_noreply(memcached_server):
    with proxy(memcached_server, "memcache", "100:dummy", "--stay-connected") as port:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"set vm:pieces 0 0 10\r\n01234")
            time.sleep(0.3)
            s.sendall(b"56789\r\n")
            assert recv_until(s, b"\r\n") == b"STORED\r\n"
            s.sendall(b"set vm:quiet 0 0 2 noreply\r\nhi\r\nget vm:pieces vm:quiet\r\n")
            want = b"VALUE vm:pieces 0 10\r\n0123456789\r\nVALUE vm:quiet 0 2\r\nhi\r\nEND\r\n"
            assert recv_until(s, b"END\r\n") == want


def test_memcache_delay(memcached_server):
    with proxy(memcached_server, "memcache", "100:delay", "--stay-connected", "--behavior-delay-sleep", "0.5") as port:
        c = MemcacheClient(("127.0.0.1", port), timeout=10)
        start = time.monotonic()
        c.get("vm:any")
        assert time.monotonic() - start >= 0.5
        c.close()


def test_memcache_error_is_a_server_error(memcached_server):
    with proxy(memcached_server, "memcache", "100:error", "--stay-connected", "--behavior-error-protocol-reply") as port:
        c = MemcacheClient(("127.0.0.1", port), timeout=10, default_noreply=False)
        with pytest.raises(MemcacheServerError, match="vaurien"):
            c.get("vm:any")
        with pytest.raises(MemcacheServerError, match="vaurien"):
            c.set("vm:any", b"1")
        c.close()


# --------------------------------------------------------------------------------------- mysql

pymysql = pytest.importorskip("pymysql")


def mysql_session(port: int) -> list:
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=10,
                           read_timeout=20, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    out: list = []
    try:
        with conn.cursor() as c:
            c.execute("CREATE DATABASE IF NOT EXISTS vaurien")
            c.execute("DROP TABLE IF EXISTS vaurien.t")
            c.execute("CREATE TABLE vaurien.t (id INT PRIMARY KEY, name VARCHAR(50), data LONGBLOB)")
            c.executemany("INSERT INTO vaurien.t VALUES (%s, %s, %s)",
                          [(i, f"name {i}", bytes([i % 256]) * (i * 10)) for i in range(100)])
            c.execute("INSERT INTO vaurien.t VALUES (1000, NULL, %s)", (b"\x00\xff\r\n" * 500_000,))
            conn.commit()
            c.execute("SELECT id, name, LENGTH(data), MD5(data) FROM vaurien.t ORDER BY id")
            out.append(c.fetchall())
            c.execute("SELECT data FROM vaurien.t WHERE id = 1000")
            out.append(hashlib.sha256(c.fetchone()[0]).hexdigest())
            c.execute("SELECT 1 AS a; SELECT 'x' AS b, 2; DO 1")
            results = [c.fetchall()]
            while c.nextset():
                results.append(c.fetchall())
            out.append(results)
            c.execute("SELECT * FROM vaurien.t WHERE id < 0")
            out.append(c.fetchall())
            try:
                c.execute("SELECT * FROM vaurien.nope")
            except pymysql.err.ProgrammingError as e:
                out.append(e.args[0])
            out.append(conn.ping(reconnect=False))
    finally:
        conn.close()
    return out


@pytest.mark.timeout(180)
def test_mysql_dummy_gives_the_same_results(mariadb_server):
    expected = mysql_session(mariadb_server)
    with proxy(mariadb_server, "mysql") as port:
        assert mysql_session(port) == expected


def test_mysql_delay(mariadb_server):
    with proxy(mariadb_server, "mysql", "100:delay", "--behavior-delay-sleep", "0.5") as port:
        start = time.monotonic()
        conn = pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=10)
        with conn.cursor() as c:
            c.execute("SELECT 1")
            assert c.fetchall() == ((1,),)
        conn.close()
        assert time.monotonic() - start >= 0.5


def _mysql_prepare_session(mariadb_port: int, *extra: str) -> tuple:
    """Through vaurien (`delay` 0 s: every exchange goes through the hooks, logged at debug
    level): prepares a statement with one parameter and one column (the server's answer: OK,
    the parameter's definition, EOF, the column's definition, EOF: PyMySQL does not ask for
    CLIENT_DEPRECATE_EOF), then runs a query. Returns (the prepare answer's packets, the
    query's rows, the exchange lines of the log)."""
    port = free_port()
    args = ["--proxy", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{mariadb_port}", "--protocol", "mysql",
            "--behavior", "100:delay", "--behavior-delay-sleep", "0", "--timeout", "10", "--log-level", "debug",
            *extra]
    with run_vaurien(args, port=port) as proc:
        conn = pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=10, read_timeout=10)
        client = f"client=127.0.0.1:{conn._sock.getsockname()[1]} "
        try:
            conn._execute_command(0x16, "SELECT ? + 1")  # COM_STMT_PREPARE
            packets = [conn._read_packet().get_all_data() for _ in range(5)]
            packets[0] = packets[0][:1] + b"<id>" + packets[0][5:]  # the statement id
            with conn.cursor() as c:
                c.execute("SELECT 41 + 1")
                rows = c.fetchall()
        finally:
            conn.close()
        time.sleep(0.3)
        proc.terminate()
        log = proc.stderr.read().decode()
    # Only this client's lines: the probe that waited for the port to listen is a connection
    # too, and whether its greeting was forwarded before it closed is a race.
    exchanges = [
        line for line in log.splitlines() if client in line and (" exchange " in line or line.endswith(" exchange"))
    ]
    assert exchanges, log
    return packets, rows, exchanges


@pytest.mark.timeout(120)
def test_mysql_prepared_statement_is_one_exchange_wherever_the_reads_end(mariadb_server):
    # With 1-byte reads the answer's last EOF arrives in a read of its own: it still ends the
    # prepare's exchange (the handshake said classic EOFs), instead of starting a stray one
    # that the next command's answer would be framed after.
    whole = _mysql_prepare_session(mariadb_server)
    split = _mysql_prepare_session(mariadb_server, "--protocol-mysql-buffer", "1")
    assert whole[0][0][0] == 0 and whole[0][2][0] == 0xFE and whole[0][4][0] == 0xFE, whole[0]
    assert split[0] == whole[0]
    assert split[1] == whole[1] == ((42,),)
    dirs = lambda lines: [("upstream" if "dir=upstream" in ln else "downstream") for ln in lines]  # noqa: E731
    assert dirs(split[2]) == dirs(whole[2]), (whole[2], split[2])


def _mysql_login_and_quit_in_one_write(port: int) -> bytes:
    """Reads the greeting, then sends the handshake response (root, no password) and COM_QUIT
    in one write; returns everything the server sends back until it closes."""
    import struct

    def packet(seq: int, payload: bytes) -> bytes:
        return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.recv(65536)  # the greeting
        login = struct.pack("<IIB23x", 0x8200, 1 << 24, 33) + b"root\0" + b"\0"  # PROTOCOL_41 | SECURE_CONNECTION
        s.sendall(packet(1, login) + packet(0, b"\x01"))
        return recv_all(s)


def test_mysql_login_and_quit_in_one_write_get_the_ok(mariadb_server):
    direct = _mysql_login_and_quit_in_one_write(mariadb_server)
    assert direct[3:5] == b"\x02\x00"  # the OK packet (sequence id 2)
    with proxy(mariadb_server, "mysql") as port:
        assert _mysql_login_and_quit_in_one_write(port) == direct


def test_mysql_error_is_a_pymysql_error(mariadb_server):
    # From the first exchange: the greeting is replaced by an ERR packet (sequence id 0, the
    # first packet of the connection): PyMySQL raises it with the server's code.
    with proxy(mariadb_server, "mysql", "100:error", "--behavior-error-protocol-reply") as port:
        with pytest.raises(pymysql.err.OperationalError) as e:
            pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=5, read_timeout=5)
        assert e.value.args[0] == 1105 and "vaurien" in e.value.args[1]
    # After the handshake: the control API turns `error` on, and the next query gets the ERR
    # packet, raised by PyMySQL as an OperationalError (and the connection still works).
    port, api = free_port(), free_port()
    args = ["--proxy", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{mariadb_server}", "--protocol", "mysql",
            "--http", "--http-host", "127.0.0.1", "--http-port", str(api), "--timeout", "10"]
    with run_vaurien(args, port=port, http_port=api):
        conn = pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=5, read_timeout=5)
        with conn.cursor() as c:
            c.execute("SELECT 1")
            set_behavior(api, {"name": "error", "protocol_reply": True})
            with pytest.raises(pymysql.err.OperationalError) as e:
                c.execute("SELECT 2")
            assert e.value.args[0] == 1105 and "vaurien" in e.value.args[1]
            set_behavior(api, {"name": "dummy"})
            c.execute("SELECT 3")
            assert c.fetchall() == ((3,),)
        conn.close()


def set_behavior(api: int, body: dict) -> None:
    import json
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{api}/behavior", data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


# ---------------------------------------------------------------------------------------- smtp


def send_mail(port: int, n: int = 1) -> list:
    out = []
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        out.append(s.ehlo()[0])
        for i in range(n):
            msg = EmailMessage()
            msg["From"] = "a@example.com"
            msg["To"] = "b@example.com"
            msg["Subject"] = f"vaurien {i}"
            msg.set_content("line one\n.leading dot\n\n" + "x" * 100_000 + "\n")
            out.append(s.send_message(msg))
        out.append(s.noop()[0])
    return out


def test_smtp_dummy_gives_the_same_results(smtp_server):
    port, maildir = smtp_server
    before = set(maildir.iterdir())
    expected = send_mail(port, 2)
    direct = sorted(p.read_bytes() for p in set(maildir.iterdir()) - before)
    before = set(maildir.iterdir())
    with proxy(port, "smtp") as pport:
        got = send_mail(pport, 2)
    through = sorted(p.read_bytes() for p in set(maildir.iterdir()) - before)
    assert got == expected
    assert through == direct and len(through) == 2


def test_smtp_delay(smtp_server):
    port, _ = smtp_server
    with proxy(port, "smtp", "100:delay", "--behavior-delay-sleep", "0.5") as pport:
        start = time.monotonic()
        with smtplib.SMTP("127.0.0.1", pport, timeout=10) as s:
            assert s.noop()[0] == 250
        assert time.monotonic() - start >= 0.5


def test_smtp_error_is_an_smtp_error(smtp_server):
    port, _ = smtp_server
    with proxy(port, "smtp", "100:error", "--behavior-error-protocol-reply") as pport:
        with pytest.raises(smtplib.SMTPResponseException) as e:
            smtplib.SMTP("127.0.0.1", pport, timeout=5)
        assert e.value.smtp_code == 451
    with proxy(port, "smtp", "100:error", "--behavior-error-warmup", "2", "--behavior-error-protocol-reply") as pport:
        s = smtplib.SMTP("127.0.0.1", pport, timeout=5)
        with pytest.raises(smtplib.SMTPResponseException) as e:
            s.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nhi\r\n")
        assert e.value.smtp_code == 451
        s.close()


# ---------------------------------------------------------------------------------------- http

KEEP = ("--protocol-http-keep-alive", "--protocol-http-reuse-socket")


def http_get(port: int, path: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None):
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    result = (r.status, data, {k.lower(): v for k, v in r.getheaders()})
    c.close()
    return result


def without_date(raw: bytes) -> bytes:
    return b"\r\n".join(l for l in raw.split(b"\r\n") if not l.lower().startswith((b"date:", b"server:")))


def test_http_dummy_with_python_http_server(http_backend):
    direct = http_get(http_backend, "/hello.txt")
    with proxy(http_backend, "http") as port:
        got = http_get(port, "/hello.txt")
        missing = http_get(port, "/nope")
    assert got[0] == direct[0] == 200
    assert got[1] == direct[1] == b"hello vaurien\n"
    assert missing[0] == 404


def test_http_dummy_custom_server_cases(custom_http_server):
    b = custom_http_server
    with proxy(b, "http", "100:dummy", *KEEP) as port:
        for path, method in [("/chunked", "GET"), ("/empty", "GET"), ("/cached", "GET"),
                             ("/x", "HEAD"), ("/close", "GET"), ("/big/5000000", "GET")]:
            direct = http_get(b, path, method)
            got = http_get(port, path, method)
            assert got[0] == direct[0], path
            assert got[1] == direct[1], path
        # A big upload, by length and chunked.
        body = hashlib.sha256(b"up").digest() * 200_000
        want = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        assert http_get(port, "/up", "POST", body=body)[1] == want
        # An iterable body goes chunked (http.client encodes it).
        assert http_get(port, "/up", "POST", body=iter([body[:1000], body[1000:]]))[1] == want


def raw_exchange(port: int, request: bytes, until: bytes | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(request)
        if until is None:
            return recv_all(s)
        return recv_until(s, until)


def test_http_chunked_trailers_are_byte_exact(custom_http_server):
    req = b"GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    direct = raw_exchange(custom_http_server, req)
    with proxy(custom_http_server, "http") as port:
        got = raw_exchange(port, req)
    # The proxy says it closes (the original's quirk: it closes after each response).
    assert without_date(got).replace(b"Connection: close\r\n", b"") == without_date(direct)
    assert b"0\r\nX-Checksum: " in got and got.endswith(b"\r\n\r\n")


def test_http_pipelined_requests_with_keep_alive(custom_http_server):
    reqs = b"".join(f"GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(3))
    reqs += b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with proxy(custom_http_server, "http", "100:dummy", *KEEP) as port:
        got = raw_exchange(port, reqs)
    # The Host header is rewritten to the backend (overwrite_host_header is on by default).
    host = b"host=127.0.0.1:%d" % custom_http_server
    bodies = re.findall(rb"GET /\w+ host=[^\n]+", got)
    assert bodies == [b"GET /p0 " + host, b"GET /p1 " + host, b"GET /p2 " + host, b"GET /last " + host]
    assert got.count(b"HTTP/1.1 200 OK") == 4


def test_http_closes_after_each_response_by_default(custom_http_server):
    reqs = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    with proxy(custom_http_server, "http") as port:
        got = raw_exchange(port, reqs)
    assert got.count(b"HTTP/1.1 200") == 1
    # As the original: the response is not changed (no Connection: close is added).
    assert b"Connection: close\r\n" not in got
    assert b"GET /a" in got and b"GET /b" not in got


def test_http_expect_100_continue(custom_http_server):
    body = b"q" * 50_000
    head = (f"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n").encode()
    with proxy(custom_http_server, "http") as port:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(head)
            interim = recv_until(s, b"\r\n\r\n")
            assert interim.startswith(b"HTTP/1.1 100")
            s.sendall(body)
            rest = recv_all(s)
    assert rest.startswith(b"HTTP/1.1 200")
    assert rest.endswith(f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode())


def test_http_upgrade_hands_over_to_raw_forwarding(custom_http_server):
    req = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    with proxy(custom_http_server, "http") as port:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(req)
            first = recv_until(s, b"WELCOME\n")
            assert first.startswith(b"HTTP/1.1 101")
            for msg in (b"ping\n", b"\x81\x05hello", b"x" * 100_000):
                s.sendall(msg)
                assert recv_until(s, msg) == msg


def test_http_overwrite_host_header(custom_http_server):
    with proxy(custom_http_server, "http", "100:dummy", "--protocol-http-overwrite-host-header") as port:
        status, body, _ = http_get(port, "/h")
    assert status == 200
    assert body == f"GET /h host=127.0.0.1:{custom_http_server}\n".encode()
    # The backend as configured (a name, as name-based virtual hosts need), not its address.
    port = free_port()
    args = ["--proxy", f"127.0.0.1:{port}", "--backend", f"localhost:{custom_http_server}",
            "--protocol", "http", "--protocol-http-overwrite-host-header"]
    with run_vaurien(args, port=port):
        status, body, _ = http_get(port, "/h")
    assert status == 200
    assert body == f"GET /h host=localhost:{custom_http_server}\n".encode()


def test_http_delay(custom_http_server):
    with proxy(custom_http_server, "http", "100:delay", "--behavior-delay-sleep", "0.5") as port:
        start = time.monotonic()
        assert http_get(port, "/d")[0] == 200
        assert time.monotonic() - start >= 0.5


def test_http_error_is_a_50x_response(custom_http_server):
    import urllib.error
    import urllib.request

    with proxy(custom_http_server, "http", "100:error") as port:
        for _ in range(4):
            status, body, headers = http_get(port, "/e")
            assert status in (500, 501, 502, 503)
            assert headers["connection"] == "close"
            # the original's page: its title and description for the status
            assert body.startswith(b"<!DOCTYPE HTML") and b"<title>%d " % status in body and b"<p>" in body
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/e", timeout=10)
        assert 500 <= e.value.code <= 503
        e.value.close()


# ----------------------------------------------------------------------------------------- tcp


def test_tcp_default_mode_warns_once_that_a_second_request_is_dropped(redis_server):
    # The original's default tcp mode forwards only the client's first read: a redis client
    # that sends a second command on the connection waits for nothing. Said once, in the log.
    port = free_port()
    args = ["--proxy", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{redis_server}", "--timeout", "1"]
    with run_vaurien(args, port=port) as proc:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                assert recv_until(s, b"\r\n") == b"+PONG\r\n"
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                # Nothing more comes: the connection ends after --timeout (reset: the second
                # command was never read).
                s.settimeout(5)
                with pytest.raises(ConnectionResetError):
                    s.recv(100)
        proc.terminate()
        err = proc.stderr.read().decode()
    assert err.count("a client sent more after its first request") == 1, err
    assert "--protocol-tcp-keep-alive" in err


def test_debug_log_has_one_line_per_exchange_with_its_fault(redis_server):
    port = free_port()
    args = ["--proxy", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{redis_server}", "--protocol", "redis",
            "--stay-connected", "--behavior", "100:delay", "--behavior-delay-sleep", "0", "--log-level", "debug"]
    with run_vaurien(args, port=port) as proc:
        with socket.create_connection(("127.0.0.1", port)) as s:
            for _ in range(2):
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                assert recv_until(s, b"\r\n") == b"+PONG\r\n"
        proc.terminate()
        err = proc.stderr.read().decode()
    lines = [line for line in err.splitlines() if " exchange " in line or line.endswith(" exchange")]
    assert len(lines) == 2, err
    assert all('behavior="delay"' in line and "dir=upstream" in line for line in lines), lines
