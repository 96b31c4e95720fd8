"""The ACL line ``driftwarden redis-acl`` prints (the real server's verdict: tests/integration/test_redis_acl.py)."""

from __future__ import annotations

from click.testing import CliRunner

from driftwarden.cli import main as cli
from driftwarden.ops.redis_acl import WORKER_COMMANDS, key_pattern


def test_the_cli_prints_the_users_line_for_the_configured_prefix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"DRIFTWARDEN__REDIS__KEY_PREFIX": "team-a", "DRIFTWARDEN_CONFIG": str(tmp_path / "none.yaml")}
    result = CliRunner().invoke(cli, ["redis-acl", "--user", "dw-workers"], env=env)
    assert result.exit_code == 0, result.output
    words = result.output.split()
    assert words[:4] == ["user", "dw-workers", "on", "><password>"]
    assert "~team-a:*" in words and "resetkeys" in words and "-@all" in words
    assert [w[1:] for w in words if w.startswith("+")] == list(WORKER_COMMANDS)
    assert not any(w.startswith(("+@", "&", "allkeys", "allcommands")) for w in words)


def test_glob_characters_in_a_prefix_do_not_widen_the_key_pattern() -> None:
    assert key_pattern("dw") == "dw:*"
    assert key_pattern("team*[1]?") == r"team\*\[1\]\?:*"
