import lattice


def test_public_surface_is_pinned():
    assert sorted(lattice.__all__) == sorted([
        "APIError", "AsyncLatticeClient", "AuthenticationError", "HeadUnavailable", "HeadUnavailableError",
        "LangGraphClient", "LatticeClient", "LatticeError", "LatticeWorkflow", "MemoryExceeded", "NonRetryable",
        "NotFoundError", "OutputError", "ResourceUnavailable", "RunCancelled", "RunFailed", "SandboxViolation",
        "TaskDefinition", "TaskDefinitionError", "TaskFailed", "TaskKilled", "TaskTimeout", "UntrustedOutputError",
        "WaitTimeout", "WorkflowError", "__version__", "current_task", "task",
    ])
    for name in lattice.__all__:
        if name != "LangGraphClient":
            assert getattr(lattice, name) is not None
