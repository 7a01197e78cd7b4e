"""``cellctl test SCENARIO... [--junit FILE] [--workers N] [--ray ADDRESS]``: many scenarios, each
isolated in its own process (its own twin, ports and run directory), on local cores or an existing
Ray cluster; one table, one JUnit file, one exit status.

Exit status: 2 when any scenario file is malformed (it names the file, the key, what was expected
and what was found; malformed wins over failed), 1 when any scenario failed an expectation, 0 when
all passed. The valid scenarios run either way, so one broken file does not hide the others' verdicts.

On Ray, a scenario travels as text (the scenario and its line config) and runs in a temporary
directory on the node, which needs cellctl installed; files the line config names by relative path
(a URDF of your own, keys) must exist on every node at the same absolute path.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite
from rich.console import Console
from rich.table import Table

from cellctl.config.loader import ConfigError
from cellctl.processes.signals import stop_on_sigterm
from cellctl.rundir import RunDir, RunDirUnusable, make_dir
from cellctl.testkit.scenarios.schema import LoadedScenario, load_scenario
from cellctl.testkit.scenarios.run import Check, ScenarioResult

EXIT_PASSED, EXIT_FAILED, EXIT_MALFORMED = 0, 1, 2
RESULT_PREFIX = "CELLCTL_SCENARIO_RESULT "  # the worker's last line: its result as JSON
CONNECT_TIMEOUT_S = 5.0
_WORKERS: set[subprocess.Popen] = set()  # scenario processes running now: stopped with the campaign


def _stop_workers() -> None:
    """Ctrl-C or SIGTERM of ``cellctl test``: every running scenario stops its line the way the
    launcher does on SIGTERM (cells and twin stopped, summary written), none is left behind."""
    for proc in list(_WORKERS):
        proc.terminate()
    for proc in list(_WORKERS):
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_isolated(scenario_path: Path, run_dir: Path) -> ScenarioResult:
    """One scenario in a fresh process (``python -m cellctl.testkit.scenarios.worker``): nothing shared
    with the other scenarios of the campaign but the machine."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "scenario.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cellctl.testkit.scenarios.worker", str(scenario_path), str(run_dir)],
                                stdout=subprocess.PIPE, stderr=out, text=True)
        _WORKERS.add(proc)
        try:
            stdout, _ = proc.communicate()
        finally:
            _WORKERS.discard(proc)
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        found = f"exit status {proc.returncode} and no result; its log {log} ends:\n{log.read_text()[-2000:]}"
        return ScenarioResult(scenario_path.stem, str(scenario_path), False,
                              [Check("ran", "the scenario's process to report its result", found, False)],
                              run_dir=str(run_dir))
    return ScenarioResult.from_json(json.loads(lines[-1].removeprefix(RESULT_PREFIX)))


def _ray_task(scenario_name: str, scenario_text: str, line_name: str, line_text: str) -> dict:
    """On a Ray node: the scenario and its line config written to a temporary directory, run as
    :func:`run_isolated` does. The run directory stays on the node (its path is in the result)."""
    work = Path(tempfile.mkdtemp(prefix=f"cellctl-{scenario_name}-"))
    (work / line_name).write_text(line_text)
    scenario = work / f"{scenario_name}.yaml"
    scenario.write_text(scenario_text)
    return run_isolated(scenario, work / "run").to_json()


def _shipped(scenario: LoadedScenario) -> tuple[str, str, str, str]:
    data = yaml.safe_load(scenario.path.read_text(encoding="utf-8"))
    data["line"] = scenario.line_path.name
    return scenario.name, yaml.safe_dump(data, sort_keys=False), scenario.line_path.name, scenario.line_path.read_text()


class ClusterUnavailable(RuntimeError):
    """No Ray to run on: said in one line, before anything waits (ray.init retries a dead address
    for minutes)."""


def _check_cluster(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnavailable(f"--ray {address!r}: expected HOST:PORT of the cluster's head (its GCS port, "
                                 f"6379 unless `ray start --head --port` said otherwise)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterUnavailable(f"--ray {address}: no Ray head answers there ({exc.strerror or exc}); "
                                 f"start one with `ray start --head --port {port}`") from None


def run_on_ray(address: str, scenarios: Sequence[LoadedScenario]) -> list[ScenarioResult]:
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable("--ray needs Ray: pip install 'cellctl[cluster]'") from None
    _check_cluster(address)
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=1)(_ray_task)
        results = [ScenarioResult.from_json(r) for r in ray.get([task.remote(*_shipped(s)) for s in scenarios])]
    finally:
        ray.shutdown()
    for scenario, result in zip(scenarios, results):
        result.path = str(scenario.path)  # as given here, not the node's temporary copy
    return results


def run_local(scenarios: Sequence[LoadedScenario], root: Path, workers: int) -> list[ScenarioResult]:
    dirs = [root / f"{i:03d}-{s.name}" for i, s in enumerate(scenarios, 1)]
    pool = ThreadPoolExecutor(max_workers=workers)  # each job is a process: threads only wait
    try:
        return list(pool.map(run_isolated, [s.path for s in scenarios], dirs))
    except KeyboardInterrupt:
        _stop_workers()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _detail(result: ScenarioResult) -> str:
    if result.malformed:
        return "\n".join(result.malformed)
    failures = result.failures()
    if failures:
        return "\n".join(f"{c.name}: expected {c.expected}, found {c.found}" for c in failures)
    return f"{len(result.checks)} expectations met"


def table(results: Sequence[ScenarioResult]) -> Table:
    out = Table(title="cellctl test", show_lines=True)
    for column in ("scenario", "result", "expectation: expected, found", "faults", "sim end", "wall", "events"):
        out.add_column(column, overflow="fold")
    for r in results:
        verdict = "[red]MALFORMED[/red]" if r.malformed else "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
        injected = sum(1 for f in r.faults if "index" in f)
        out.add_row(r.name, verdict, _detail(r), str(injected) if r.faults else "-",
                    f"{r.end_s:.1f}s" if r.end_s is not None else "-", f"{r.wall_s:.1f}s", r.fingerprint or "-")
    return out


def junit(results: Sequence[ScenarioResult], path: Path) -> None:
    suite = TestSuite("cellctl test")
    for r in results:
        case = TestCase(r.name, classname=str(Path(r.path).parent), time=r.wall_s)
        if r.malformed:
            error = Error("\n".join(r.malformed).splitlines()[0][:500], "malformed")
            error.text = "\n".join(r.malformed)
            case.result = [error]
        elif not r.passed:
            failure = Failure(_detail(r).splitlines()[0], "expectation")
            failure.text = _detail(r)
            case.result = [failure]
        case.system_out = "\n".join([*(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: expected {c.expected}, found {c.found}"
                                      for c in r.checks),
                                    *(f"fault {json.dumps(f)}" for f in r.faults),
                                    f"events fingerprint {r.fingerprint or '-'}", f"run directory {r.run_dir or '-'}"])
        suite.add_testcase(case)
    suite.update_statistics()
    xml = JUnitXml("cellctl")
    xml.add_testsuite(suite)
    xml.update_statistics()
    xml.write(str(path), pretty=True)


def _unusable(root: Path) -> str | None:
    """Why the campaign cannot keep its runs under ``root`` (made here if need be), if it cannot."""
    if held := sorted(d.name for d in (root.iterdir() if root.is_dir() else ()) if RunDir(d).earlier_run()):
        return (f"run directory {root} holds runs already ({', '.join(held[:5])}{' …' if len(held) > 5 else ''}): "
                f"give a new --run-dir")
    try:
        make_dir(root)
    except RunDirUnusable as exc:
        return str(exc)
    return None


def run_campaign(paths: Sequence[str], workers: int = 1, ray_address: str | None = None, junit_path: str | None = None,
                 run_dir: str | None = None, as_json: bool = False,
                 console: Console | None = None) -> int:
    console = console or Console(stderr=True, highlight=False)
    root = Path(run_dir) if run_dir else RunDir.fresh(Path("runs"), time.strftime("test-%Y%m%d-%H%M%S"))
    if problem := _unusable(root):
        console.print(f"[red]cellctl test: {problem}[/red]", soft_wrap=True)
        return EXIT_MALFORMED
    loaded: list[LoadedScenario] = []
    malformed: list[ScenarioResult] = []
    for path in map(Path, paths):
        try:
            loaded.append(load_scenario(path))
        except ConfigError as exc:
            malformed.append(ScenarioResult(path.stem, str(path), False, malformed=exc.lines))
    where = f"the Ray cluster at {ray_address}" if ray_address else f"{workers} local worker(s)"
    console.print(f"cellctl test: {len(loaded)} scenario(s) on {where}, {len(malformed)} malformed; runs in {root}")
    started = time.monotonic()
    runner: Callable[[], list[ScenarioResult]] = (
        (lambda: run_on_ray(ray_address, loaded)) if ray_address else (lambda: run_local(loaded, root, workers)))
    stop_on_sigterm()
    try:
        ran = runner() if loaded else []
    except ClusterUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        return EXIT_MALFORMED
    except KeyboardInterrupt:
        console.print("the scenarios were stopped (interrupted): no verdict")
        return EXIT_FAILED
    order = {str(Path(p)): i for i, p in enumerate(paths)}
    results = sorted([*ran, *malformed], key=lambda r: order.get(r.path, len(order)))
    Console(highlight=False, width=160).print(table(results))
    wall = time.monotonic() - started
    console.print(f"{sum(r.passed for r in results)} passed, {sum(not r.passed and not r.malformed for r in results)} "
                  f"failed, {len(malformed) + sum(bool(r.malformed) for r in ran)} malformed in {wall:.1f}s wall "
                  f"({len(ran) / wall * 3600 if wall and ran else 0:.0f} scenarios/hour)")
    if junit_path:
        junit(results, Path(junit_path))
        console.print(f"JUnit XML: {junit_path}")
    if as_json:
        print(json.dumps({"results": [r.to_json() for r in results], "wall_s": round(wall, 2)}))
    if any(r.malformed for r in results):
        return EXIT_MALFORMED
    return EXIT_PASSED if all(r.passed for r in results) else EXIT_FAILED
