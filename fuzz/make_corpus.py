#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/): small valid messages of
each protocol, the API bodies of the tests, the ini files of tests_compat, typical command
lines, and short conversations through a proxy. Each file is named by the hash of its bytes;
run it again after changing a seed (it adds files, never removes): python3 fuzz/make_corpus.py

Layouts (see each target's header):
- framers: 2 bytes of split point (little endian), 1 byte that picks a variant, the stream;
- api: 1 byte for the route, 1 byte for a toxic type, the body;
- ini: the file's text; cli: the arguments separated by NUL bytes;
- exchange: 1 byte for protocol and settings, 1 byte for the behavior, then the script.
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def framer(target, stream, pick=0, cut=None):
    cut = len(stream) // 2 if cut is None else cut
    put(target, struct.pack("<HB", cut, pick) + stream)


# --- redis ----------------------------------------------------------------------------------
REDIS = [
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
    b"PING\r\n",
    b"set k v\r\nget k\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n\r\n\r\n\r\n",
    b"*2\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n",
    b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n",
    b"+OK\r\n",
    b"-ERR unknown command\r\n",
    b":42\r\n",
    b"$5\r\nhello\r\n",
    b"$-1\r\n*-1\r\n",
    b"*2\r\n:1\r\n$-1\r\n",
    b"%2\r\n+a\r\n*2\r\n:1\r\n$-1\r\n+b\r\n|1\r\n+t\r\n:1\r\n:2\r\n",
    b">3\r\n+message\r\n+c\r\n$2\r\nhi\r\n+OK\r\n",
    b"=15\r\ntxt:Some string\r\n",
    b",1.23\r\n(12345678901234567890\r\n#t\r\n_\r\n",
    b"~2\r\n+a\r\n+b\r\n!5\r\nerror\r\n",
    b"*0\r\n*1\r\n*1\r\n*0\r\n",
]
for i, s in enumerate(REDIS):
    framer("redis", s, i)

# --- http -----------------------------------------------------------------------------------
HTTP = [
    b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
    b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
]
for i, s in enumerate(HTTP):
    framer("http", s, i)

# --- memcache (pick: 0 Line, 1 Values, 2 Stats, 3 Meta, 4 Nothing, 5 Stream) ----------------
MEMCACHE = [
    (b"set k 0 0 5\r\nhello\r\nget k\r\n", 0),
    (b"cas k 0 0 2 77 noreply\r\nhi\r\n", 4),
    (b"gets a b c\r\n", 1),
    (b"ms k 2 T0\r\nhi\r\nmg k v\r\n", 3),
    (b"delete k noreply\r\nincr n 1\r\nstats items\r\n", 2),
    (b"STORED\r\nNOT_FOUND\r\n", 0),
    (b"VALUE k 0 5\r\nhello\r\nVALUE j 1 2 9\r\nhi\r\nEND\r\n", 1),
    (b"STAT pid 1\r\nSTAT uptime 2\r\nITEM x\r\nEND\r\n", 2),
    (b"VA 2 f\r\nhi\r\nEN\r\n", 3),
    (b"SERVER_ERROR out of memory\r\n", 1),
    (b"watch fetchers\r\nOK\r\n", 5),
]
for s, pick in MEMCACHE:
    framer("memcache", s, pick)

# --- smtp -----------------------------------------------------------------------------------
SMTP = [
    b"EHLO client.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
    b"BDAT 5\r\nhelloBDAT 0 LAST\r\n",
    b"QUIT\r\n",
    b"220 mail.example ESMTP\r\n",
    b"250-mail.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
    b"354 go ahead\r\n250 2.0.0 queued\r\n",
    b"Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\n",
    b"line\n.\n",
]
for i, s in enumerate(SMTP):
    framer("smtp", s, i)


# --- mysql (pick: the command) --------------------------------------------------------------
def packet(seq, payload):
    n = len(payload)
    return bytes([n & 0xFF, (n >> 8) & 0xFF, n >> 16, seq]) + payload


def eof(status=2):
    return b"\xfe\x00\x00" + struct.pack("<H", status)


def result_set(deprecate_eof, more=False):
    r = packet(1, b"\x02")
    r += packet(2, b"\x03def\x00\x00\x00\x01a\x00\x0c")
    r += packet(3, b"\x03def\x00\x00\x00\x01b\x00\x0c")
    status = 0x0008 if more else 2
    if not deprecate_eof:
        r += packet(4, eof())
    r += packet(5, b"\x011\x012")
    r += packet(6, b"\xfb\x012")
    if deprecate_eof:
        r += packet(7, b"\xfe\x00\x00" + struct.pack("<H", status) + b"\x00\x00")
    else:
        r += packet(7, eof(status))
    return r


OK = packet(1, b"\x00\x00\x00\x02\x00\x00\x00")
MYSQL = [
    (packet(0, b"\x03SELECT 1"), 0x03),
    (packet(0, b"\x01") + packet(0, b"\x0e"), 0x0E),
    (packet(1, struct.pack("<I", 0x0800 | 0x200) + b"\x00" * 28), 0x03),
    (result_set(False), 0x03),
    (result_set(True), 0x03),
    (result_set(False, more=True) + OK, 0x03),
    (OK, 0x0E),
    (packet(1, b"\xff\x51\x04#HY000boom"), 0x03),
    (packet(1, b"\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00")
     + packet(2, b"\x03def\x00\x00\x00\x01?\x00\x0c") + packet(3, eof())
     + packet(4, b"\x03def\x00\x00\x00\x01a\x00\x0c") + packet(5, eof()), 0x16),
    (packet(1, b"\x03def\x00\x00\x00\x01a\x00\x0c") + packet(2, eof()), 0x04),
    (packet(1, b"Uptime: 5  Threads: 1"), 0x09),
    (packet(1, b"\x011") + packet(2, eof()), 0x1C),
    (packet(1, b"\xfbfile.csv"), 0x03),
]
for s, pick in MYSQL:
    framer("mysql", s, pick)

# --- api (route: 0 PUT /behavior, 1 PUT /backend, 2 create toxic, 3 update toxic, 4 update
# proxy, 5 populate, 6 one proxy; toxic byte: the type of toxic `t` for route 3) ------------
API = [
    (0, 0, b'{"name": "20:delay"}'),
    (0, 0, b'{"name": "50:delay,10:error"}'),
    (0, 0, b'{"name": "delay", "sleep": 2}'),
    (0, 0, b'{"name": "delay", "sleep": "soon"}'),
    (0, 0, b'{"name": "error", "warmup": 3, "protocol_reply": true}'),
    (0, 0, b'{"name": "transient", "agitate": 2}'),
    (0, 0, b'{"name": null}'),
    (0, 0, b"not json"),
    (1, 0, b'{"backend": "127.0.0.1:6379"}'),
    (1, 0, b'{"backend": "nocolon"}'),
    (2, 0, b'{"name":"a","type":"latency","attributes":{"latency":2,"jitter":1}}'),
    (2, 0, b'{"name":"a","type":"bandwidth","stream":"upstream","attributes":{"rate":50000}}'),
    (2, 0, b'{"name":"a","type":"slicer","attributes":{"average_size":10,"size_variation":20}}'),
    (2, 0, b'{"name":"cut","type":"limit_data","count":2,"attributes":{"bytes":10}}'),
    (2, 0, b'{"name":"hold","type":"timeout","stream":"upstream","expires_ms":400,"attributes":{"timeout":0}}'),
    (2, 0, b'{"type":"bandwidth","stream":"UpStream","toxicity":0.5,"attributes":{"rate":100}}'),
    (2, 0, b'{"name":"a","type":"packet_loss","attributes":{"loss_rate":1.5}}'),
    (2, 0, b'{"name":"l2","type":"latency","attributes":{"latency":1.5}}'),
    (2, 0, b'{"type":"reset_peer","attributes":{"timeout":10}}'),
    (2, 0, b'{"type":"slow_close","attributes":{"delay":10}}'),
    (3, 0, b'{"attributes":{"latency":10,"jitter":0},"toxicity":1}'),
    (3, 1, b'{"attributes":{"rate":1000}}'),
    (3, 2, b'{"attributes":{"average_size":500,"delay":10}}'),
    (3, 6, b'{"attributes":{"bytes":20}}'),
    (3, 0, b'{"toxicity":0.25}'),
    (4, 0, b'{"NAME":"b","Listen":"127.0.0.1:0","UpStream":"127.0.0.1:1","enabled":false}'),
    (5, 0, b'[{"name":"p","listen":"127.0.0.1:0","upstream":"127.0.0.1:1","toxics":[{"type":"noop","count":3,"expires_ms":60000}]}]'),
    (5, 0, b'[{"name":"a","upstream":"127.0.0.1:1"},{"upstream":"127.0.0.1:1"}]'),
    (5, 0, b'[{"name":"q","upstream":"127.0.0.1:1"}] x'),
    (6, 0, b'{"name":"b","listen":"127.0.0.1:0","upstream":"127.0.0.1:1","enabled":false,"toxics":[]}'),
    (6, 0, b'{"name":"r","upstream":"127.0.0.1:1","protocol":"redis"}'),
]
for route, toxic, body in API:
    put("api", bytes([route, toxic]) + body)

# --- ini ------------------------------------------------------------------------------------
BASE = "[vaurien]\nproxy = 127.0.0.1:8000\nbackend = 127.0.0.1:6379\n"
INI = [
    BASE,
    BASE + "protocol = http\n",
    BASE + "behavior = 100:blackout\n",
    BASE + 'behavior = "100:delay"\n',
    BASE + "behavior = 100:hang\ntimeout = 1\n",
    BASE + "stay_connected = true\ntimeout = 2\n",
    BASE + "behavior =\n  50:delay,\n  50:error\n",
    "[vaurien]\nproxy = 127.0.0.1:8000\nbackend = ${HOME}:80\n",
    "# a comment\n; another\n" + BASE,
    "[vaurien]\nproxy=127.0.0.1:8000\nbackend   =   127.0.0.1:1\n",
    "[vaurien]\nproxy: 127.0.0.1:8000\nbackend: 127.0.0.1:1\n",
    BASE + "statsd.enabled = false\nstatsd.port = 9125\n",
    BASE + "[statsd]\nenabled = true\nport = 9125\nsample_rate = 0.5\nprefix = v\n",
    BASE + "http = true\nhttp_host = localhost\nhttp_port = 8080\nlog_level = debug\n",
    "[DEFAULT]\nextends = base.ini\n\n[vaurien]\nproxy = 127.0.0.1:8000\n",
    "[DEFAULT]\nextends = loop.ini\n",
    BASE + "[DEFAULT]\nextends = nothere.ini\n",
    "[DEFAULT]\ntimeout = 1\n" + BASE + "behavior = 100:hang\n",
    BASE + "behavior = 100:delay\n[behavior:delay]\nsleep = 2\n",
    BASE + "behavior = 100:error\n[behavior:error]\nwarmup = 5\nprotocol_reply = yes\n",
    BASE + "[behavior:delay]\nnope = 1\n",
    BASE + "[protocol:redis]\nkeep_alive = true\nbuffer = 4096\n",
    BASE + "[behavior:mine]\ncallable = mymod.Mine\n",
    BASE + "pool_max_size = 10\npool_timeout = 5\nbacklog = 16\nbufsize = 1024\nseed = 3\n",
]
for text in INI:
    put("ini", text.encode())

# --- cli ------------------------------------------------------------------------------------
CLI = [
    [],
    ["--proxy", "127.0.0.1:8000", "--backend", "127.0.0.1:6379"],
    ["--protocol", "redis", "--behavior", "50:delay,10:error", "--behavior-delay-sleep", "0.5"],
    ["--behavior", "delay"],
    ["--behavior", "60:delay,50:error"],
    ["--protocol", "gopher"],
    ["--config", "fuzz.ini", "--backend", "127.0.0.1:1"],
    ["--config", "loop.ini"],
    ["--timeout", "abc"],
    ["--timeout", "-1"],
    ["--http", "--http-host", "localhost", "--http-port", "8080"],
    ["--version"],
    ["--help"],
    ["--prox", "127.0.0.1:1", "--backe=127.0.0.1:2", "--tim", "3", "--timeout", "4"],
    ["--statsd", "--statsd.sample-rate", "0.5", "--stay-connected"],
    ["--protocol-tcp-keep-alive", "--protocol-tcp-buffer", "0"],
    ["--log-level", "chatty"],
    ["--proxy", "localhost:99999"],
    ["--seed", "7", "--events-file", "events.json", "--sync"],
]
for args in CLI:
    put("cli", b"\0".join(a.encode() for a in args))


# --- exchange (conf: protocol = byte % 6 [tcp http redis memcache smtp mysql], flags = byte // 6:
# 1 keep_alive, 2 tiny reads, 4 rewrite Host, 8 stay connected, 16 busy polling;
# behavior: byte % 17, see BEHAVIORS in exchange.rs) -------------------------------------------
def write(side, data):
    out = b""
    while True:
        chunk, data = data[:255], data[255:]
        out += bytes([side, len(chunk)]) + chunk
        if not data:
            return out


def shut(side):
    return bytes([6 | side])


def pause(ms):
    return bytes([6 | 8 | (ms << 4)])


C, B = 0, 1
TALKS = {
    0: write(C, b"hello\n") + write(B, b"hello\n") + shut(C) + shut(B),
    1: write(C, HTTP[0]) + write(B, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
       + write(C, HTTP[2][:30]) + pause(2) + write(C, HTTP[2][30:])
       + write(B, HTTP[10]),
    2: write(C, REDIS[0]) + write(B, b"+OK\r\n") + write(C, REDIS[1]) + write(B, b"$5\r\nhello\r\n+PONG\r\n"),
    3: write(C, MEMCACHE[0][0]) + write(B, b"STORED\r\n") + write(B, MEMCACHE[6][0]),
    4: write(B, SMTP[3]) + write(C, b"EHLO x\r\n") + write(B, SMTP[4]) + write(C, b"DATA\r\n")
       + write(B, b"354 go\r\n") + write(C, SMTP[6]) + write(B, b"250 ok\r\n"),
    5: write(B, packet(0, b"\x0a5.7.0\x00" + b"\x00" * 40)) + write(C, packet(1, b"\x00" * 32))
       + write(B, OK) + write(C, packet(0, b"\x03SELECT 1")) + write(B, result_set(False))
       + write(C, packet(0, b"\x01")),
}
for proto, talk in TALKS.items():
    for flags, behavior in [(0, 0), (9, 0), (0, 1), (8, 4), (2, 0), (0, 5), (1, 10),
                            (9, 12), (9, 13), (0, 14), (9, 15)]:
        put("exchange", bytes([proto + 6 * flags, behavior]) + talk)
