"""Station sensors wired to a robot's digital inputs (``sensor: {io: {ROBOT: INPUT}}``): the twin
sets the input from the station's occupancy, the cell reads it through its own robot's driver, a
line sensed that way delivers every part once (also after a SIGKILL mid-handoff), and configs that
cannot work are refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cellctl.cell.process import _sensors
from cellctl.config.loader import ConfigError, load_config
from cellctl.devices.sensing import StationSensors, TwinPartSensor
from cellctl.drivers.errors import DriverError
from cellctl.drivers.twin import TwinDriver
from cellctl.drivers.twin_client import TwinClient

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges

IO_LINE = Path(__file__).parent / "configs" / "io_sensor_line.yaml"


@pytest.fixture
def realtime_io_line(tmp_path) -> Path:
    path = tmp_path / "io_line.yaml"
    path.write_text(IO_LINE.read_text().replace("mode: lockstep", "mode: realtime"))
    return path


@pytest.mark.timeout(60)
def test_the_twin_sets_a_wired_input_from_the_station_and_refuses_writes_to_it(twin_factory, realtime_io_line):
    twin = twin_factory(realtime_io_line)
    with TwinClient(twin.endpoint, client="test") as client:
        assert client.request("read_io", robot="pack", name="handoff_present") is False
        client.request("spawn_part", id="x-1", station="handoff")
        assert client.request("read_io", robot="press", name="handoff_present") is True
        assert client.request("read_io", robot="pack", name="handoff_present") is True
        assert client.request("read_io", robot="pack", name="outfeed_present") is False
        with pytest.raises(DriverError, match="IO 'handoff_present' of robot press is an input wired to station "
                                              "handoff's presence sensor: the world sets it, a write cannot"):
            client.request("write_io", robot="press", name="handoff_present", value=False)
        client.request("remove_part", id="x-1")
        assert client.request("read_io", robot="press", name="handoff_present") is False


@pytest.mark.timeout(60)
def test_a_cell_reads_a_wired_station_through_its_own_robot(twin_factory, realtime_io_line):
    config = load_config(realtime_io_line)
    twin = twin_factory(realtime_io_line)
    with TwinDriver(twin.endpoint, "press", client="press") as robot, \
            TwinClient(twin.endpoint, client="test") as client:
        sensors = _sensors(config, "press", robot, TwinPartSensor(robot, config.stations))
        assert isinstance(sensors, StationSensors)
        assert sensors.identifies("infeed") and not sensors.identifies("handoff")
        assert not sensors.present("handoff")
        client.request("spawn_part", id="x-2", station="handoff")
        assert sensors.present("handoff")
        with pytest.raises(DriverError, match=r"station handoff: its sensor gives presence only \(input 'handoff_present'\)"):
            sensors.occupant("handoff")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash", [None, "press:sender_after_place_before_commit",
                                   "pack:receiver_after_transport_finished_before_commit"])
def test_a_line_sensed_by_robot_inputs_delivers_every_part_once(tmp_path, crash):
    result = subprocess.run([sys.executable, "-m", "cellctl", "run", str(IO_LINE), "--parts", "4", "--json",
                             "--run-dir", str(tmp_path / "run"), *(["--crash", crash] if crash else [])],
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["finished"] and summary["parts_in"] == summary["parts_out"] == 4, summary
    assert summary["lost"] == summary["duplicated"] == summary["stranded"] == 0, summary
    if crash:
        assert summary["restarts"] == {crash.split(":")[0]: 1}


WIRED = "sensor: {io: {press: handoff_present, pack: handoff_present}}"
OUT = "sensor: {io: {pack: outfeed_present}}"
FEED = "feed: {part_type: box, every: 3.0, count: 3, prefix: part}}"


@pytest.mark.parametrize("old, new, message", [
    (WIRED, "sensor: {io: {press: handoff_present, pack: nope}}",
     "stations.handoff.sensor.io.pack: expected an input robots.pack.io declares (['handoff_present', "
     "'outfeed_present']), found 'nope'"),
    (WIRED, "sensor: {io: {press: handoff_present}}",
     "stations.handoff.sensor.io: expected an input of robot pack (cell pack takes there and reads the sensor "
     "through its robot), found {'press': 'handoff_present'}"),
    (OUT, "sensor: {io: {pack: outfeed_present}, ros: {presence: /x}}",
     "stations.outfeed.sensor: expected either ros: {presence, part_id} or io: {ROBOT: INPUT} (one of them)"),
    (OUT, "sensor: {io: {robotx: outfeed_present}}",
     "stations.outfeed.sensor.io.robotx: expected one of the robots ['pack', 'press'], found 'robotx'"),
    (FEED, "feed: {part_type: box, every: 3.0, count: 3, prefix: part}, sensor: {io: {press: handoff_present}}}",
     "stations.infeed.sensor: expected a sensor with part ids (a presence-only feed names parts in cell press's "
     "ledger, while robot press on the twin's API reports the twin's ids; reach it through driver.ros), found 'io'"),
    ("press: {model: kuka_iiwa, base: {position: [0.0, 0.0, 0.0]}, io: {handoff_present: false}}",
     "press: {model: kuka_iiwa, base: {position: [0.0, 0.0, 0.0]}, io: {handoff_present: false}, "
     "driver: {ros: {url: 'ws://10.0.0.5:9090', names: ur}}}",
     "robots.press.driver.ros.names.io: expected topics for input 'handoff_present' (station handoff's sensor is "
     "wired to it), found None"),
])
def test_a_wired_sensor_that_cannot_work_is_refused_by_name(tmp_path, old, new, message):
    source = IO_LINE.read_text()
    assert old in source
    path = tmp_path / "bad.yaml"
    path.write_text(source.replace(old, new, 1).replace("mode: lockstep", "mode: realtime"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}: {message}" in "\n".join(err.value.lines), err.value.lines
