"""The differences between the original Vaurien 1.9 and this vaurien that the differential
suite accepts, each with its reason, and both observations pinned (so that a change on either
side shows). Every reason is one of:

- an original bug listed in `shared/reference/vaurien-original.md` (the reference says what
  this project does instead);
- a 2.0 change: the reference describes Vaurien 2.0, which changed this after 1.9 (the
  reference wins);
- a deliberate departure (flags win over the ini file; the `--behavior` mix is kept under
  `--http`);
- an entry of `docs/differences.md` ("What differs from the original").
"""
from __future__ import annotations

from typing import Dict

BUG_ERROR = (
    "original bug listed in the reference: `error` (and `transient`) on non-http protocols sent "
    "nothing in 1.9 (it read the request, forwarded it, then the protocol waited for more and the "
    "connection stalled until --timeout); this vaurien does what the docs promise: 1000 random "
    "bytes instead of the answer (then it closes), or 100 random bytes injected with `inject`"
)
V20_TIMEOUT = (
    "2.0 change: in the default tcp mode 1.9 never closes on --timeout (its backend socket is "
    "non-blocking without a timeout, so it polls until the backend closes); the reference (2.0) "
    "closes after --timeout. The client sees a reset because its second request was never read"
)
REF_HANG = (
    "reference: `hang` closes the connection after --timeout; 1.9's hang on an exchange the "
    "backend starts (a greeting) never ends, its backend socket having no timeout"
)
BUG_SPIN = (
    "original bug listed in the reference: with --stay-connected 1.9 spun at 100% CPU once a side "
    "closed, and the other side was never told; this vaurien passes the half-close on (tcp "
    "keep_alive with --stay-connected streams) and ends when both sides are done"
)
BUG_MEMCACHE_PIPELINE = (
    "docs/differences.md: 1.9's memcache framing took the rest of a pipeline's replies, when they "
    "came in a second read, for a request from the backend and waited on the client until "
    "--timeout (the same framing bugs as the reference lists for memcache); this vaurien "
    "answers each command of the pipeline"
)

V20_ABORT = (
    "2.0 change: the `abort` behavior is new in 2.0 (1.9 refuses `--behavior 100:abort` as an "
    "unknown behavior); this vaurien does what the reference says: the request reaches the "
    "backend, then the connection is cut before any answer"
)

DIFFERENCES: Dict[str, Dict[str, object]] = {
    'answer-open/tcp': {"why": V20_TIMEOUT, "v20": True,
        "original": "{'client': ['sent', [b'reply:one\\n', 'open', 'now'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'one\\n']}",
        "ours": "{'client': ['sent', [b'reply:one\\n', 'open', 'now'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'one\\n']}"},
    'answer-open/tcp-stay': {"why": V20_TIMEOUT, "v20": True,
        "original": "{'client': ['sent', [b'reply:one\\n', 'open', 'now'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'one\\n']}",
        "ours": "{'client': ['sent', [b'reply:one\\n', 'open', 'now'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'one\\n']}"},
    'backend-answers-closes/tcp-keep-alive-stay': {"why": BUG_SPIN, "v20": False,
        "original": "{'client': ['sent', [b'reply:hello\\n', 'open', '1s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', [b'reply:hello\\n', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}"},
    'greet/tcp-keep-alive-stay/hang': {"why": REF_HANG, "v20": False,
        "original": "{'client': [[b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'']}",
        "ours": "{'client': [[b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'']}"},
    'greet/tcp-keep-alive/hang': {"why": REF_HANG, "v20": False,
        "original": "{'client': [[b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'']}",
        "ours": "{'client': [[b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'']}"},
    'greet/tcp-stay/hang': {"why": REF_HANG, "v20": False,
        "original": "{'client': [[b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'']}",
        "ours": "{'client': [[b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'']}"},
    'greet/tcp/hang': {"why": REF_HANG, "v20": False,
        "original": "{'client': [[b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'']}",
        "ours": "{'client': [[b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'']}"},
    'half-close/tcp-keep-alive-stay': {"why": BUG_SPIN, "v20": False,
        "original": "{'client': ['sent', [b'bye\\n', 'open', 'now'], 'shut', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'bye\\n']}",
        "ours": "{'client': ['sent', [b'bye\\n', 'open', 'now'], 'shut', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'bye\\n']}"},
    'memcache-stay/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'memcache-stay/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<108 random bytes>', 'open', 'now'], 'sent', ['<127 random bytes>', 'open', 'now'], ['open', '5s']]}"},
    'memcache-stay/error-warmup': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'STORED\\r\\n', 'open', 'now'], 'sent', [b'', 'eof', '3s'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', [b'STORED\\r\\n', 'open', 'now'], 'sent', ['<1000 random bytes>', 'eof', 'now'], ['eof', 'now']]}"},
    'memcache-stay/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'memcache/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'memcache/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<108 random bytes>', 'open', 'now'], 'sent', ['<127 random bytes>', 'open', 'now'], ['eof', '3s']]}"},
    'memcache/error-warmup': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'STORED\\r\\n', 'open', 'now'], 'sent', [b'', 'eof', '3s'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', [b'STORED\\r\\n', 'open', 'now'], 'sent', ['<1000 random bytes>', 'eof', 'now'], ['eof', 'now']]}"},
    'memcache/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'pipelined/memcache-stay': {"why": BUG_MEMCACHE_PIPELINE, "v20": False,
        "original": ["{'client': ['sent', [b'STORED\\r\\nVALUE p 0 1\\r\\nx\\r\\nEND\\r\\nDELETED\\r\\n', 'open', 'now'], ['eof', '3s']]}",
                     "{'client': ['sent', [b'STORED\\r\\nVALUE p 0 1\\r\\nx\\r\\nEND\\r\\nDELETED\\r\\n', 'open', 'now'], ['open', '5s']]}"],
        "ours": "{'client': ['sent', [b'STORED\\r\\nVALUE p 0 1\\r\\nx\\r\\nEND\\r\\nDELETED\\r\\n', 'open', 'now'], ['open', '5s']]}"},
    'redis-stay/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'redis-stay/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<107 random bytes>', 'open', 'now'], 'sent', ['<108 random bytes>', 'open', 'now'], ['open', '5s']]}"},
    'redis-stay/error-warmup': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'+PONG\\r\\n', 'open', 'now'], 'sent', [b'', 'eof', '3s'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', [b'+PONG\\r\\n', 'open', 'now'], 'sent', ['<1000 random bytes>', 'eof', 'now'], ['eof', 'now']]}"},
    'redis-stay/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'redis/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'redis/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<107 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'redis/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'smtp-stay/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': [['<1000 random bytes>', 'open', 'now'], 'sent', [b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']]}",
        "ours": "{'client': [['<1000 random bytes>', 'open', 'now'], 'sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'smtp-stay/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': [['<133 random bytes>', 'open', 'now'], 'sent', [b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']]}",
        "ours": "{'client': [['<133 random bytes>', 'open', 'now'], 'sent', ['<115 random bytes>', 'open', 'now'], 'sent', ['<108 random bytes>', 'open', 'now'], ['open', '5s']]}"},
    'smtp-stay/error-warmup': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': [[b'220 localhost Python SMTP 1.4.6\\r\\n', 'open', 'now'], 'sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': [[b'220 localhost Python SMTP 1.4.6\\r\\n', 'open', 'now'], 'sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'smtp-stay/hang': {"why": REF_HANG, "v20": False,
        "original": "{'client': [[b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']]}",
        "ours": "{'client': [[b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'smtp-stay/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': [['<1000 random bytes>', 'open', 'now'], 'sent', [b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']]}",
        "ours": "{'client': [['<1000 random bytes>', 'open', 'now'], 'sent', [b'250 localhost\\r\\n', 'open', 'now'], 'sent', [b'250 OK\\r\\n', 'open', 'now'], ['open', '5s']]}"},
    'smtp/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': [['<1000 random bytes>', 'open', 'now'], 'sent', [b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']]}",
        "ours": "{'client': [['<1000 random bytes>', 'open', 'now'], 'sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'smtp/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': [['<133 random bytes>', 'open', 'now'], 'sent', [b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']]}",
        "ours": "{'client': [['<133 random bytes>', 'open', 'now'], 'sent', ['<115 random bytes>', 'open', 'now'], 'sent', ['<108 random bytes>', 'open', 'now'], ['eof', '3s']]}"},
    'smtp/error-warmup': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': [[b'220 localhost Python SMTP 1.4.6\\r\\n', 'open', 'now'], 'sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}",
        "ours": "{'client': [[b'220 localhost Python SMTP 1.4.6\\r\\n', 'open', 'now'], 'sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'smtp/hang': {"why": REF_HANG, "v20": False,
        "original": "{'client': [[b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']]}",
        "ours": "{'client': [[b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']]}"},
    'smtp/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': [['<1000 random bytes>', 'open', 'now'], 'sent', [b'', 'open', '5s'], 'sent', [b'', 'open', '5s'], ['open', '5s']]}",
        "ours": "{'client': [['<1000 random bytes>', 'open', 'now'], 'sent', [b'250 localhost\\r\\n', 'open', 'now'], 'sent', [b'250 OK\\r\\n', 'open', 'now'], ['eof', '3s']]}"},
    'stream/tcp-keep-alive-stay/dummy': {"why": BUG_SPIN, "v20": False,
        "original": "{'client': ['sent', ['<204800 random bytes>', 'open', 'now'], ['open', '5s']], 'backend': [b'go\\n']}",
        "ours": "{'client': ['sent', ['<204800 random bytes>', 'eof', 'now'], ['eof', 'now']], 'backend': [b'go\\n']}"},
    'tcp-keep-alive-stay/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-keep-alive-stay/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<106 random bytes>', 'open', 'now'], 'sent', ['<106 random bytes>', 'open', 'now'], ['open', '5s']], 'backend': [b'hello\\nagain\\n']}"},
    'tcp-keep-alive-stay/error-warmup': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', ['<1000 random bytes>', 'open', 'now'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'open', 'now'], 'sent', ['<1000 random bytes>', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\nagain\\n']}"},
    'tcp-keep-alive-stay/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-keep-alive/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-keep-alive/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<106 random bytes>', 'open', 'now'], 'sent', ['<106 random bytes>', 'open', 'now'], ['eof', '3s']], 'backend': [b'hello\\nagain\\n']}"},
    'tcp-keep-alive/error-warmup': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', ['<1000 random bytes>', 'open', 'now'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'open', 'now'], 'sent', ['<1000 random bytes>', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\nagain\\n']}"},
    'tcp-keep-alive/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-stay/delay': {"why": V20_TIMEOUT, "v20": True,
        "original": "{'client': ['sent', [b'hello\\n', 'open', '1s'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', [b'hello\\n', 'open', '1s'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-stay/dummy': {"why": V20_TIMEOUT, "v20": True,
        "original": "{'client': ['sent', [b'hello\\n', 'open', 'now'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', [b'hello\\n', 'open', 'now'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-stay/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-stay/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<106 random bytes>', 'open', 'now'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-stay/error-warmup': {"why": V20_TIMEOUT, "v20": True,
        "original": "{'client': ['sent', [b'hello\\n', 'open', 'now'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', [b'hello\\n', 'open', 'now'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-stay/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}"},
    'tcp/delay': {"why": V20_TIMEOUT, "v20": True,
        "original": "{'client': ['sent', [b'hello\\n', 'open', '1s'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', [b'hello\\n', 'open', '1s'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp/dummy': {"why": V20_TIMEOUT, "v20": True,
        "original": "{'client': ['sent', [b'hello\\n', 'open', 'now'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', [b'hello\\n', 'open', 'now'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp/error': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}"},
    'tcp/error-inject': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<106 random bytes>', 'open', 'now'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp/error-warmup': {"why": V20_TIMEOUT, "v20": True,
        "original": "{'client': ['sent', [b'hello\\n', 'open', 'now'], 'sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', [b'hello\\n', 'open', 'now'], 'sent', [b'', 'reset', '3s'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp/transient': {"why": BUG_ERROR, "v20": False,
        "original": "{'client': ['sent', [b'', 'eof', '3s'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'client': ['sent', ['<1000 random bytes>', 'eof', 'now'], 'gone', [b'', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}"},
    'http-keep-alive-reuse/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']]}"},
    'http-stay/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']]}"},
    'http/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']]}"},
    'memcache-stay/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']]}"},
    'memcache/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']]}"},
    'mysql-stay/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['connect failed']}"},
    'mysql/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['connect failed']}"},
    'redis-stay/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']]}"},
    'redis/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']]}"},
    'smtp-stay/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': [[b'220 localhost Python SMTP 1.4.6\\r\\n', 'open', 'now'], 'sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']]}"},
    'smtp/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': [[b'220 localhost Python SMTP 1.4.6\\r\\n', 'open', 'now'], 'sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']]}"},
    'tcp-keep-alive-stay/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-keep-alive/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp-stay/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
    'tcp/abort': {"why": V20_ABORT, "v20": True,
        "original": "{'refused': 'did not start'}",
        "ours": "{'client': ['sent', [b'', 'reset', 'now'], 'gone', [b'', 'reset', 'now'], ['reset', 'now']], 'backend': [b'hello\\n']}"},
}

from differences_faces import DIFFERENCES_FACES  # noqa: E402

DIFFERENCES.update(DIFFERENCES_FACES)
