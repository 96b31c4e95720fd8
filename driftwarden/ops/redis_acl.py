"""The least-privilege Redis ACL of the workers: exactly the commands they send, on their key prefix only.

The stream, the retrain worker and ``driftwarden status`` share one user. It cannot read or write keys
outside ``<redis.key_prefix>:*``, use pub/sub, run scripts, or run anything administrative (CONFIG, FLUSHALL,
KEYS, ACL, DEBUG...). tests/integration/test_redis_acl.py runs both workers under it on a real Redis with ACLs
on and checks that Redis logged no denial, so a command added to the code without being added here fails.
"""

from __future__ import annotations

import re

# Sorted by family; a subcommand is written container|sub (Redis 7).
WORKER_COMMANDS = (
    # Health checks. redis-py also sends CLIENT SETINFO on connect and ignores a refusal; Redis 7.0 (Debian 12)
    # does not know it, so naming it here would make 7.0 reject the whole rule. On 7.2+ add +client|setinfo
    # to keep those refusals out of ACL LOG.
    "ping", "echo",
    "watch", "unwatch", "multi", "exec", "discard",  # the batch transaction
    "get", "set", "del", "incrby", "exists",  # redis-py sends INCR as INCRBY; EXISTS: the timer's pending adoptions
    "hget", "hmget", "hset", "hdel", "hincrby", "hlen", "hgetall",
    "zadd", "zrange", "zrangebyscore", "zrem", "zremrangebyscore",
    "rpush", "lrange", "ltrim", "llen",
    "sadd", "smembers", "smismember",
)


def key_pattern(prefix: str) -> str:
    """The glob of every key under ``prefix``, with the glob's own special characters escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":*"


def acl_rules(prefix: str) -> str:
    """ACL rules (``ACL SETUSER`` arguments or an ACL file's ``user`` line after the name and password)."""
    return " ".join(["resetkeys", f"~{key_pattern(prefix)}", "resetchannels", "-@all",
                     *(f"+{c}" for c in WORKER_COMMANDS)])


def acl_user_line(user: str, prefix: str, password: str = "<password>") -> str:
    """A line of a Redis ACL file (``aclfile``) defining the workers' user."""
    return f"user {user} on >{password} {acl_rules(prefix)}"
