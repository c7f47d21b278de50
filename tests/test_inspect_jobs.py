"""`bootforge inspect --jobs N`: several files inspected in worker processes print what one
process prints, in the order given (text, JSON, errors on stderr, exit status)."""

import glob
import json
import subprocess
import sys

import pytest

from conftest import require

ROMS = sorted(glob.glob("/usr/lib/ipxe/qemu/*.rom"))[:6]
XEN_GZ = "/boot/xen-4.17-amd64.gz"


def inspect(*args):
    return subprocess.run([sys.executable, "-m", "bootforge", "inspect", *args], capture_output=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    require(XEN_GZ, "/usr/lib/ipxe/qemu/pxe-e1000.rom")
    return ROMS + [str(tmp_path_factory.mktemp("jobs") / "missing.rom"), XEN_GZ, "tests/data/fdt-reserved.dtb"]


@pytest.mark.parametrize("mode", [["--json"], []], ids=["json", "text"])
def test_jobs_prints_what_one_process_prints(corpus, mode):
    one = inspect(*mode, "--jobs", "1", *corpus)
    many = inspect(*mode, "--jobs", "3", *corpus)
    assert (many.returncode, many.stdout, many.stderr) == (one.returncode, one.stdout, one.stderr)
    assert one.returncode == 2          # the missing file
    assert one.stderr.decode().count("bootforge: error:") == 1


def test_jobs_json_entries_are_the_single_file_documents(corpus):
    docs = json.loads(inspect("--json", "--jobs", "2", *corpus).stdout)
    assert [d["file"] for d in docs] == corpus
    for path, doc in zip(corpus, docs):
        if "error" in doc:
            assert doc["error"]["message"] == "No such file or directory"
            continue
        assert doc == json.loads(inspect("--json", path).stdout)


@pytest.mark.parametrize("mode", [["--json"], []], ids=["json", "text"])
def test_jobs_keeps_errors_in_place_on_one_stream(corpus, mode):
    """Standard error and output on one pipe (2>&1): each error line comes where one process
    writes it, among the reports (the workers hand over whole chunks of written bytes)."""
    files = corpus + corpus[-3::-1]         # two missing files, one in each worker's chunks

    def merged(jobs):
        return subprocess.run([sys.executable, "-m", "bootforge", "inspect", *mode, "--jobs", jobs, *files],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    one = merged("1")
    assert one.count(b"bootforge: error:") == 2
    assert merged("3") == one


def _slow_when_even(chunk):
    """A job whose even chunks take longer, so children finish out of order."""
    import time
    if chunk[0] % 2 == 0:
        time.sleep(0.01)
    return (0, [(False, f"chunk {chunk[0]}")], None)


def _fails_on_seven(chunk):
    if chunk[0] == 7:
        raise ValueError("chunk seven is bad")
    return (0, [], None)


def test_forked_workers_give_results_in_order():
    from bootforge.commands.inspect import _forked
    chunks = [[i] for i in range(40)]
    got = [events[0][1] for _status, events, _doc in _forked(_slow_when_even, chunks, 3)]
    assert got == [f"chunk {i}" for i in range(40)]


def test_a_failing_worker_is_raised_with_its_traceback():
    from bootforge.commands.inspect import _forked
    # The chunk may fall to this process (its own exception) or to a child (the child's
    # traceback, sent through its pipe): either way the caller sees why.
    with pytest.raises((ValueError, RuntimeError), match="chunk seven is bad"):
        list(_forked(_fails_on_seven, [[i] for i in range(20)], 2))
