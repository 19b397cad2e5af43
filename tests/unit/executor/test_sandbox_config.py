"""SandboxConfig validation and merging, level ordering, the process-wide default."""

from __future__ import annotations

import pytest

from lattice.executor.sandbox import SandboxConfig, SandboxLevel, get_sandbox_config, set_sandbox_config


def test_levels_are_ordered_by_strictness() -> None:
    order = [SandboxLevel.NONE, SandboxLevel.SUBPROCESS, SandboxLevel.SECCOMP, SandboxLevel.DOCKER]
    assert [level.strictness for level in order] == [0, 1, 2, 3]
    assert SandboxLevel.SECCOMP.at_least("subprocess") and SandboxLevel.SECCOMP.at_least(SandboxLevel.SECCOMP)
    assert not SandboxLevel.SUBPROCESS.at_least("docker")
    assert SandboxLevel.strictest("subprocess", "docker", "none") is SandboxLevel.DOCKER
    assert SandboxLevel.strictest() is SandboxLevel.NONE


def test_level_parse_is_lenient_in_case_and_clear_on_error() -> None:
    assert SandboxLevel.parse(" SecComp ") is SandboxLevel.SECCOMP
    with pytest.raises(ValueError, match="expected one of: none, subprocess, seccomp, docker"):
        SandboxLevel.parse("chroot")


def test_seed_form_and_defaults() -> None:
    before = get_sandbox_config()
    try:
        set_sandbox_config(SandboxConfig(level=SandboxLevel.SECCOMP, timeout=300, max_memory_mb=2048))
        config = get_sandbox_config()
        assert config.level is SandboxLevel.SECCOMP and config.timeout == 300 and config.max_memory_mb == 2048
        assert config.network is False and config.max_processes == 256
    finally:
        set_sandbox_config(before)
    assert SandboxConfig().level is SandboxLevel.NONE
    assert SandboxConfig(level="docker").level is SandboxLevel.DOCKER


def test_set_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        set_sandbox_config({"level": "seccomp"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field,value",
    [
        ("timeout", 0),
        ("timeout", -1),
        ("max_memory_mb", 0),
        ("max_memory_mb", 1.5),
        ("max_processes", 2),
        ("max_open_files", True),
        ("output_limit_bytes", 0),
        ("max_cpus", -0.5),
        ("network", "yes"),
        ("docker_image", ""),
        ("level", "jail"),
    ],
)
def test_bad_values_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field if field != "level" else "sandbox level"):
        SandboxConfig(**{field: value})


def test_merged_applies_validates_and_keeps_the_rest() -> None:
    base = SandboxConfig(level="seccomp", timeout=300, max_memory_mb=2048)
    task = base.merged(timeout=10, network=True)
    assert (task.level, task.timeout, task.max_memory_mb, task.network) == ("seccomp", 10, 2048, True)
    assert base.timeout == 300  # frozen: the original is untouched
    assert base.merged(timeout=None).timeout is None  # None is a value: no limit
    with pytest.raises(TypeError, match="unknown SandboxConfig field"):
        base.merged(memory=1)
    with pytest.raises(ValueError):
        base.merged(max_memory_mb=-5)


def test_dict_round_trip() -> None:
    config = SandboxConfig(level="docker", timeout=5, extra_read_paths=("/data",))
    data = config.to_dict()
    assert data["level"] == "docker" and data["extra_read_paths"] == ["/data"]
    assert SandboxConfig.from_dict({**data, "unknown": 1}) == config
