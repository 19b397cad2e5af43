"""Tracebacks of shipped task code name the user's file and line, also where that file does not exist
(another machine): ``lattice.wire.codeship`` (cloudpickle alone says ``File "<dynamic-code>"``)."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle

USER_MODULE = '''\
from lattice import task


def helper(x):
    if x > 1:
        raise ValueError(f"x is too big: {x}")
    return x


@task(inputs=["x"], outputs=["y"])
def my_step(params):
    value = params["x"]
    return {"y": helper(value)}
'''

LOAD_AND_RUN = textwrap.dedent('''\
    import base64, sys, traceback
    import cloudpickle
    fn = cloudpickle.loads(base64.b64decode(sys.stdin.read()))
    try:
        fn({"x": 5})
    except ValueError as exc:
        print("".join(traceback.format_exception(exc)))
''')


def _shipped(tmp_path: Path) -> tuple[str, Path]:
    """The task's code as a client ships it, from a module that then disappears."""
    path = tmp_path / "user_pipeline_mod.py"
    path.write_text(USER_MODULE)
    spec = importlib.util.spec_from_file_location("user_pipeline_mod", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_pipeline_mod"] = module
    try:
        spec.loader.exec_module(module)
        cloudpickle.register_pickle_by_value(module)
        pickled = module.my_step.code_spec()["pickle"]
    finally:
        cloudpickle.unregister_pickle_by_value(module)
        del sys.modules["user_pipeline_mod"]
    moved = path.rename(tmp_path / "elsewhere.txt")
    return pickled, moved


def _traceback_in_a_fresh_interpreter(pickled: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", LOAD_AND_RUN], input=pickled, capture_output=True, text=True,
                          timeout=60, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_traceback_names_the_users_file_line_and_source(tmp_path: Path) -> None:
    pickled, _ = _shipped(tmp_path)
    tb = _traceback_in_a_fresh_interpreter(pickled, tmp_path)
    original = str(tmp_path / "user_pipeline_mod.py")
    assert "<dynamic-code>" not in tb
    assert f'File "{original}", line 13, in my_step' in tb
    assert 'return {"y": helper(value)}' in tb
    assert f'File "{original}", line 6, in helper' in tb
    assert 'raise ValueError(f"x is too big: {x}")' in tb


def test_plain_cloudpickle_would_have_lost_the_file_name(tmp_path: Path) -> None:
    """What the test above guards against: the same function through cloudpickle.dumps."""
    pickled, moved = _shipped(tmp_path)
    fn = cloudpickle.loads(base64.b64decode(pickled))
    plain = base64.b64encode(cloudpickle.dumps(fn)).decode()
    assert 'File "<dynamic-code>"' in _traceback_in_a_fresh_interpreter(plain, tmp_path)
    assert moved.exists()


def test_a_code_object_marshal_cannot_write_still_ships() -> None:
    """A hand-built code object with a constant marshal refuses goes the way cloudpickle ships it."""
    from lattice.wire import codeship

    def f():
        return 1

    class Opaque:
        pass

    code = f.__code__.replace(co_consts=(None, Opaque()))
    assert isinstance(cloudpickle.loads(codeship.dumps(code)), type(code))
