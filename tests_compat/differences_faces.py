"""The listed differences of the faces (command line, ini file, control API, Python suite):
same shape as `differences.DIFFERENCES` (the reason, and both observations pinned), merged
into it at the end of `differences.py`. Every reason is an entry of `docs/differences.md`
("What differs from the original"), an original bug listed in the reference, a 2.0 change, or
a deliberate departure."""
from __future__ import annotations

from typing import Dict

DIFFERENCES_FACES: Dict[str, Dict[str, str]] = {
    'behavior-section/delay-sleep': {
        "why": 'original bug (reference): [behavior:NAME] options in the ini file were ignored; they apply',
        "original": "{'result': 'accepted', 'client': ['sent', [b'reply:hello\\n', 'eof', '1s'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'result': 'accepted', 'client': ['sent', [b'reply:hello\\n', 'eof', '2s'], ['eof', 'now']], 'backend': [b'hello\\n']}",
    },
    'behavior-section/error-warmup': {
        "why": 'original bug (reference): [behavior:NAME] options in the ini file were ignored (and error on non-http sent nothing); they apply',
        "original": "{'result': 'accepted', 'client': ['sent', [b'', 'open', '5s'], ['open', '5s']], 'backend': [b'hello\\n']}",
        "ours": "{'result': 'accepted', 'client': ['sent', [b'reply:hello\\n', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
    },
    'callable/behavior/class-colon': {
        "why": 'original bug (reference): callable = module.Class did not load a plain class with the documented hooks; it must',
        "original": "{'result': 'accepted', 'client': ['sent', [b'', 'reset', 'now'], ['reset', 'now']], 'backend': [b'']}",
        "ours": "{'result': 'accepted', 'client': ['sent', [b'T:reply:hello\\n', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
    },
    'callable/behavior/class-dotted': {
        "why": 'original bug (reference): callable = module.Class did not load a plain class with the documented hooks; it must',
        "original": "{'result': 'accepted', 'client': ['sent', [b'', 'reset', 'now'], ['reset', 'now']], 'backend': [b'']}",
        "ours": "{'result': 'accepted', 'client': ['sent', [b'T:reply:hello\\n', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
    },
    'callable/protocol/class-dotted': {
        "why": 'original bug (reference): callable = module.Class did not load a plain class (1.9 crashed at start on a protocol class); it must',
        "original": "{'result': 'refused'}",
        "ours": "{'result': 'accepted', 'client': ['sent', [b'reply:HELLO\\n', 'eof', 'now'], ['eof', 'now']], 'backend': [b'HELLO\\n']}",
    },
    'client/original-with-mix': {
        "why": 'deliberate departure: the --behavior mix stays in effect under --http until the API sets a behavior (the original ignored it and started with dummy); GET /behavior returns it',
        "original": '[[\'get\', \'dummy\'], [\'list\', [\'blackout\', \'delay\', \'dummy\', \'error\', \'hang\', \'transient\']], [\'set\', None], [\'get2\', \'delay\'], [\'set-unknown\', \'ValueError\', "the \'nope\' behavior does not exist"], [\'get3\', \'delay\'], [\'with\', [\'blackout\', \'delay\']], [\'with-raises\', \'delay\'], [\'set-dummy\', None], [\'get4\', \'dummy\']]',
        "ours": '[[\'get\', \'50:delay\'], [\'list\', [\'blackout\', \'delay\', \'dummy\', \'error\', \'hang\', \'transient\']], [\'set\', None], [\'get2\', \'delay\'], [\'set-unknown\', \'ValueError\', "the \'nope\' behavior does not exist"], [\'get3\', \'delay\'], [\'with\', [\'blackout\', \'delay\']], [\'with-raises\', \'delay\'], [\'set-dummy\', None], [\'get4\', \'dummy\']]',
    },
    'client/ours-with-mix': {
        "why": 'deliberate departure: the --behavior mix stays in effect under --http until the API sets a behavior (the original ignored it and started with dummy); GET /behavior returns it',
        "original": '[[\'get\', \'dummy\'], [\'list\', [\'blackout\', \'delay\', \'dummy\', \'error\', \'hang\', \'transient\']], [\'set\', None], [\'get2\', \'delay\'], [\'set-unknown\', \'ValueError\', "the \'nope\' behavior does not exist"], [\'get3\', \'delay\'], [\'with\', [\'blackout\', \'delay\']], [\'with-raises\', \'delay\'], [\'set-dummy\', None], [\'get4\', \'dummy\']]',
        "ours": '[[\'get\', \'50:delay\'], [\'list\', [\'blackout\', \'delay\', \'dummy\', \'error\', \'hang\', \'transient\']], [\'set\', None], [\'get2\', \'delay\'], [\'set-unknown\', \'ValueError\', "the \'nope\' behavior does not exist"], [\'get3\', \'delay\'], [\'with\', [\'blackout\', \'delay\']], [\'with-raises\', \'delay\'], [\'set-dummy\', None], [\'get4\', \'dummy\']]',
    },
    'effect/--pool-max-size 0': {
        "why": 'docs/differences.md: with --pool-max-size 0 the original never reached the backend; ours keeps no idle connection but forwards',
        "original": "{'client': ['sent', [b'', 'open', '6s'], ['open', '6s']], 'backend': []}",
        "ours": "{'client': ['sent', [b'reply:hello\\n', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
    },
    'effect/--timeout 0': {
        "why": 'docs/differences.md: a zero or negative --timeout reset every connection in the original; ours runs with 1 ms and a warning',
        "original": "{'client': ['sent', [b'', 'reset', 'now'], ['reset', 'now']], 'backend': [b'']}",
        "ours": "{'client': ['sent', [b'reply:hello\\n', 'eof', 'now'], ['eof', 'now']], 'backend': [b'hello\\n']}",
    },
    'error/json-list': {
        "why": 'docs/differences.md: a JSON body that is not an object is a 400 error (the original answered 500)',
        "original": "{'api': [500, 200]}",
        "ours": "{'api': [400, 200]}",
    },
    'error/json-string': {
        "why": 'docs/differences.md: a JSON body that is not an object is a 400 error (the original answered 500)',
        "original": "{'api': [500, 200]}",
        "ours": "{'api': [400, 200]}",
    },
    'error/mix-name': {
        "why": 'deliberate departure (reference): PUT /behavior accepts a mix as name, so that with_behavior restores the --behavior mix kept under --http',
        "original": '{\'api\': [[400, \'application/json\', {\'status\': \'error\', \'errors\': [{\'location\': \'body\', \'name\': \'name\', \'description\': "the \'50:delay\' behavior does not exist"}]}], [200, \'application/json\', {\'behavior\': \'dummy\'}]]}',
        "ours": "{'api': [[200, 'application/json', {'status': 'ok'}], [200, 'application/json', {'behavior': '50:delay'}]]}",
    },
    'flags/over-file': {
        "why": 'deliberate departure: explicit flags win over the ini file (the original applied the file over the command line)',
        "original": "{'result': 'accepted', 'client': ['sent', [b'reply:hello\\n', 'eof', '1s'], ['eof', 'now']], 'backend': [b'hello\\n']}",
        "ours": "{'result': 'accepted', 'client': ['sent', [b'', 'reset', 'now'], ['reset', 'now']], 'backend': [b'']}",
    },
    'get-behavior/after-mix': {
        "why": 'deliberate departure: the --behavior mix stays in effect under --http until the API sets a behavior (the original ignored it and started with dummy); GET /behavior returns it',
        "original": "{'api': [[200, 'application/json', {'behavior': 'dummy'}]]}",
        "ours": "{'api': [[200, 'application/json', {'behavior': '50:delay'}]]}",
    },
    'get-behaviors': {
        "why": "2.0 change (abort is a 2.0 behavior) and docs/differences.md: GET /behaviors also lists this project's behaviors",
        "original": "{'api': [[200, 'application/json', {'behaviors': ['blackout', 'delay', 'dummy', 'error', 'hang', 'transient']}]]}",
        "ours": "{'api': [[200, 'application/json', {'behaviors': ['abort', 'bandwidth', 'blackout', 'delay', 'dummy', 'error', 'hang', 'latency', 'limit_data', 'noop', 'packet_loss', 'reset_peer', 'slicer', 'slow_close', 'timeout', 'transient']}]]}",
    },
    'options/bool': {
        "why": 'original bug (reference): options given with PUT /behavior were overwritten by command-line defaults; they apply',
        "original": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'reply:hello\\n', 'eof', '1s'], ['eof', 'now']]}",
        "ours": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'reply:hello\\n', 'open', 'now'], ['eof', '1s']]}",
    },
    'options/bool-string': {
        "why": 'original bug (reference): options given with PUT /behavior were overwritten by command-line defaults; they apply',
        "original": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'reply:hello\\n', 'eof', '1s'], ['eof', 'now']]}",
        "ours": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'reply:hello\\n', 'open', 'now'], ['eof', '1s']]}",
    },
    'options/error-warmup': {
        "why": 'original bug (reference): options given with PUT /behavior were overwritten by command-line defaults; they apply (and error on non-http sent nothing)',
        "original": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'', 'eof', '3s'], ['eof', 'now']]}",
        "ours": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'reply:hello\\n', 'eof', 'now'], ['eof', 'now']]}",
    },
    'options/float': {
        "why": 'original bug (reference): options given with PUT /behavior were overwritten by command-line defaults; they apply',
        "original": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'reply:hello\\n', 'eof', '1s'], ['eof', 'now']]}",
        "ours": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'reply:hello\\n', 'eof', 'now'], ['eof', 'now']]}",
    },
    'options/own': {
        "why": 'original bug (reference): options given with PUT /behavior were overwritten by command-line defaults; they apply',
        "original": "{'api': [[200, 'application/json', {'status': 'ok'}], [200, 'application/json', {'behavior': 'delay'}]], 'client': ['sent', [b'reply:hello\\n', 'eof', '1s'], ['eof', 'now']]}",
        "ours": "{'api': [[200, 'application/json', {'status': 'ok'}], [200, 'application/json', {'behavior': 'delay'}]], 'client': ['sent', [b'reply:hello\\n', 'eof', '2s'], ['eof', 'now']]}",
    },
    'options/string': {
        "why": 'original bug (reference): options given with PUT /behavior were overwritten by command-line defaults; they apply',
        "original": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'reply:hello\\n', 'eof', '1s'], ['eof', 'now']]}",
        "ours": "{'api': [[200, 'application/json', {'status': 'ok'}]], 'client': ['sent', [b'reply:hello\\n', 'eof', '2s'], ['eof', 'now']]}",
    },
    'prefix-ambiguous/--statsd ': {
        "why": "docs/differences.md: ours also has --statsd (beside the original's --statsd.enabled...), so --statsd is a flag, not an ambiguous prefix",
        "original": "{'result': 'refused'}",
        "ours": "{'result': 'accepted'}",
    },
    'route/backend': {
        "why": '2.0 change: GET/PUT /backend are 2.0 routes (1.9 answered 404)',
        "original": "{'api': [404]}",
        "ours": "{'api': [200]}",
    },
    'user-suite/test_delay_option': {
        "why": "original bug (reference): options given with PUT /behavior (with_behavior('delay', sleep=0.1)) were overwritten by command-line defaults; they apply",
        "original": "'FAIL'",
        "ours": "'ok'",
    },
    'value/--behavior-delay-before false': {
        "why": 'docs/differences.md: a bool option flag takes an optional true/false value',
        "original": "{'result': 'refused'}",
        "ours": "{'result': 'accepted'}",
    },
    'value/--protocol-tcp-keep-alive=true': {
        "why": 'docs/differences.md: a bool option flag takes an optional true/false value',
        "original": "{'result': 'refused'}",
        "ours": "{'result': 'accepted'}",
    },
    'value/--timeout 1e3': {
        "why": 'docs/differences.md: --timeout and --pool-timeout take fractional seconds (the original took integers only)',
        "original": "{'result': 'refused'}",
        "ours": "{'result': 'accepted'}",
    },
    'vaurien/http-keys': {
        "why": 'docs/differences.md: the [vaurien] keys http, http_host, http_port, log_level, log_output apply (the original read these from the command line only)',
        "original": "{'result': 'accepted', 'api': False, 'log file': False}",
        "ours": "{'result': 'accepted', 'api': True, 'log file': False}",
    },
    'vaurien/log-keys': {
        "why": 'docs/differences.md: the [vaurien] keys http, http_host, http_port, log_level, log_output apply (the original read these from the command line only)',
        "original": "{'result': 'accepted', 'api': False, 'log file': False}",
        "ours": "{'result': 'accepted', 'api': False, 'log file': True}",
    },
    'vaurien/multi-line-behavior': {
        "why": 'docs/differences.md: a multi-line behavior value is a mix (its lines joined with commas); the original crashed on the list',
        "original": "{'result': 'refused'}",
        "ours": "{'result': 'accepted', 'client': ['sent', [b'reply:hello\\n', 'eof', '1s'], ['eof', 'now']], 'backend': [b'hello\\n']}",
    },
}
