"""The wire: the vocabulary the client, the head's API and core, and the executors share.

Nothing here depends on another Lattice package (an import-linter contract checks it), so each side
can speak it without pulling in the others:

* ``spec`` — the workflow spec (format ``lattice.workflow/v1``): tasks, inputs, outputs, policy;
* ``resources`` — what a task asks for (:class:`~lattice.wire.resources.Resources`);
* ``sandbox`` — the sandbox levels and their order (:class:`~lattice.wire.sandbox.SandboxLevel`);
* ``encoding`` — how values become bytes and back, and who may decode which
  (``restricted_pickle`` for what sandboxed tasks wrote);
* ``attempt`` — what an attempt carries to an executor and what comes back
  (:class:`~lattice.wire.attempt.AttemptPayload`, :class:`~lattice.wire.attempt.Envelope`);
* ``http`` — the request and response models of ``/api/v1``;
* ``errors`` and ``failures`` — the exception tree, task failures as data, and the one converter
  between them;
* ``context`` — which run, task and attempt the code running now belongs to.
"""
