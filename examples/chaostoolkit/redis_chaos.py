"""What experiment.json needs besides chaostoolkit-toxiproxy: a control that puts the proxy in
front of redis before anything else runs, and probes that time real redis requests through it.

Put this folder on PYTHONPATH (`cd examples/chaostoolkit && PYTHONPATH=. chaos run ...`).
"""

import socket
import time

import redis
from chaoslib.exceptions import ActivityFailed
from chaostoxi.proxy.actions import create_proxy
from logzero import logger

__all__ = ["before_experiment_control", "redis_roundtrip_ms", "redis_refused"]


def before_experiment_control(
    context,
    proxy_name,
    upstream_host,
    upstream_port,
    listen_host="127.0.0.1",
    listen_port=0,
    configuration=None,
    **kwargs,
):
    """Creates the proxy through the Toxiproxy API (chaostoolkit-toxiproxy's own action),
    before the steady state is first checked. The port it got lands in the configuration as
    `${<proxy_name>_PORT}`; the rollbacks delete the proxy."""
    try:
        create_proxy(
            proxy_name=proxy_name,
            upstream_host=upstream_host,
            upstream_port=upstream_port,
            listen_host=listen_host,
            listen_port=listen_port,
            configuration=configuration,
        )
    except Exception:
        # Chaos Toolkit only logs a failing control at debug level: say it louder.
        logger.error(f"could not create the proxy {proxy_name!r} through the Toxiproxy API")
        raise
    logger.info(
        f"proxy {proxy_name!r} listens on {listen_host}:{configuration[proxy_name + '_PORT']}"
        f" in front of {upstream_host}:{upstream_port}"
    )


def redis_roundtrip_ms(host, port, value_size=10000, timeout=5.0):
    """Milliseconds for one PING, one SET of `value_size` bytes and the GET that reads it back,
    on a new connection (its set-up included). Fails if redis does not answer right."""
    value = b"v" * int(value_size)
    key = f"chaos:{time.monotonic_ns()}"
    # No CLIENT SETINFO on connect (redis-py 5+): the three commands are the whole exchange.
    client = redis.Redis(
        host=host,
        port=int(port),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        lib_name=None,
        lib_version=None,
    )
    try:
        start = time.perf_counter()
        if not client.ping():
            raise ActivityFailed("PING got no PONG")
        client.set(key, value, ex=60)
        got = client.get(key)
        elapsed = (time.perf_counter() - start) * 1000.0
        client.delete(key)
    except redis.RedisError as e:
        raise ActivityFailed(f"redis at {host}:{port}: {e}") from e
    finally:
        client.close()
    if got != value:
        raise ActivityFailed(f"GET returned {len(got or b'')} bytes, not the {len(value)} set")
    logger.info(f"redis round trip through {host}:{port}: {elapsed:.1f} ms")
    return round(elapsed, 1)


def redis_refused(host, port, timeout=2.0):
    """True when nothing accepts a connection at host:port (a disabled proxy closes its
    listener), False when something does."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return False
    except OSError:
        return True
