"""The line config: the scene (twin/config.py) plus the cells that work in it."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from cellctl.skills.sequence import step_problems
from cellctl.drivers.curve import is_loopback
from cellctl.drivers.robot_config import Problem, Strict
from cellctl.twin.config import SceneConfig, SecurityConfig


class CellConfig(Strict):
    """One cell: its robot, where it takes parts from, the recipe it runs on each, where it gives
    them to. Take and give name stations (a feed and a sink, or shared handoff stations)."""

    robot: str = Field(description="the robot it drives (a key of robots)")
    take: str = Field(description="station the cell picks each part from")
    give: str = Field(description="station the cell places each finished part on")
    recipe: list[dict] = Field(default_factory=list, description="skill steps between take and give")
    parts: int | None = Field(None, ge=1, description="work order: parts to finish before Complete; None = no limit")
    host: str = Field("127.0.0.1", description="address this cell binds its control socket and handoff inbox "
                                               "to, and its neighbours reach it at; not loopback only with "
                                               "security.keys")
    control_port: int = Field(0, ge=0, le=65535, description="control socket port; 0 = ephemeral")
    status_port: int = Field(0, ge=0, le=65535, description="read-only status socket port (observers' keys "
                                                            "are admitted here, never to control); 0 = ephemeral")
    upstream: str | None = Field(None, description="the cell that hands parts to this one on the take station")
    downstream: str | None = Field(None, description="the cell this one hands parts to on the give station")
    handoff_port: int = Field(0, ge=0, le=65535,
                              description="inbox port for neighbours' handoff messages; needed with neighbours "
                                          "(`cellctl run` assigns free ones)")
    handoff_timeout: float = Field(5.0, gt=0, description="wall s of silence before a neighbour counts as gone")
    check_alive: float = Field(1.0, gt=0, description="wall s between CheckAlive messages to each neighbour; "
                                                      "under each neighbour's handoff_timeout")
    hold_after: float = Field(10.0, gt=0, description="wall s Suspended on a gone neighbour before Held")
    part_types: list[str] = Field(default_factory=list, description="part types this cell works on; [] = any")
    machines: list[str] = Field(default_factory=list, description="machines this cell tends (keys of machines): its "
                                                                  "recipe loads, starts, waits for and unloads them; a "
                                                                  "printer whose station is the take station is the "
                                                                  "cell's source of parts")


class OpcuaConfig(Strict):
    """How the OPC UA server (``--opcua PORT`` on ``cellctl run`` and ``cellctl cell run``, and
    ``cellctl opcua``) serves the cells. Off loopback it needs all of users, cert, key and trust.
    Paths relative to the config file."""

    host: str = Field("127.0.0.1", description="address the OPC UA server binds; not loopback only with users, "
                                               "cert, key and trust")
    users: str | None = Field(None, description="users file (`cellctl users add`): operators call the PackML "
                                                "methods, observers read")
    cert: str | None = Field(None, description="the server's application certificate (`cellctl certs generate "
                                               "--opcua`): then Basic256Sha256 sign and encrypt only")
    key: str | None = Field(None, description="its private key")
    trust: str | None = Field(None, description="directory of the client application certificates accepted")
    anonymous: bool = Field(False, description="let anonymous sessions in to read (never to call a method) "
                                               "where users log in")

    @field_validator("users", "cert", "key", "trust", mode="before")
    @classmethod
    def _relative_to_config(cls, value: object, info: ValidationInfo) -> object:
        return SecurityConfig._relative_to_config(value, info)


SPARKPLUG_ID = r"^[A-Za-z0-9_.-]{1,64}$"  # a Sparkplug group, edge node or device id: no /, + or #


class MqttTlsConfig(Strict):
    """TLS to the broker (a ``mqtts://`` URL uses it too). Paths relative to the config file."""

    ca: str | None = Field(None, description="CA certificate file that signed the broker's (default: the system's)")
    cert: str | None = Field(None, description="client certificate file, for a broker that asks for one")
    key: str | None = Field(None, description="its private key")

    @field_validator("ca", "cert", "key", mode="before")
    @classmethod
    def _relative_to_config(cls, value: object, info: ValidationInfo) -> object:
        return SecurityConfig._relative_to_config(value, info)


class MqttConfig(Strict):
    """How ``--mqtt URL`` (on ``cellctl run`` and ``cellctl cell run``, and ``cellctl mqtt``)
    publishes the line as Sparkplug B: the line is the edge node, each cell a device
    (docs/integration.md). Paths relative to the config file."""

    group: str = Field("cellctl", pattern=SPARKPLUG_ID, description="Sparkplug group id")
    edge: str | None = Field(None, pattern=SPARKPLUG_ID, description="edge node id (default: the config file's "
                                                                     "name, or the cell's for `cell run`)")
    username: str | None = Field(None, description="user name at the broker")
    password_file: str | None = Field(None, description="file whose first line is the broker password")
    tls: MqttTlsConfig | None = Field(None, description="TLS to the broker")
    queue: int = Field(1000, ge=10, le=100_000, description="messages waiting for a slow broker before the oldest "
                                                            "are dropped (counted in Node Info/Dropped)")
    commands: bool = Field(False, description="take DCMD PackML/Command (Hold, Unhold, ...) for the cells; only "
                                              "with users and command_user, and a broker on loopback or with TLS "
                                              "and a user name")
    users: str | None = Field(None, description="users file (`cellctl users add`) holding command_user")
    command_user: str | None = Field(None, description="the operator (in users) that MQTT commands act as")

    @field_validator("password_file", "users", mode="before")
    @classmethod
    def _relative_to_config(cls, value: object, info: ValidationInfo) -> object:
        return SecurityConfig._relative_to_config(value, info)


class LineConfig(SceneConfig):
    cells: dict[str, CellConfig] = Field(default_factory=dict, description="cell name -> cell: a robot that takes, "
                                                                         "works on and gives parts")
    opcua: OpcuaConfig = Field(default_factory=OpcuaConfig, description="the OPC UA server's address and security "
                                                                        "(docs/integration.md)")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Sparkplug B on MQTT: group, edge node, "
                                                                     "credentials, TLS, commands (docs/integration.md)")

    def problems(self) -> list[Problem]:
        found = super().problems()
        for name, cell in self.cells.items():
            if cell.robot not in self.robots:
                found.append(Problem(("cells", name, "robot"), f"one of the robots {sorted(self.robots)}", cell.robot))
            for key in ("take", "give"):
                station = getattr(cell, key)
                if station not in self.stations:
                    found.append(Problem(("cells", name, key), f"one of the stations {sorted(self.stations)}", station))
                    continue
                sensor = self.stations[station].sensor
                if sensor is None or sensor.io is None:
                    continue
                if cell.robot not in sensor.io:
                    found.append(Problem(("stations", station, "sensor", "io"), f"an input of robot {cell.robot} "
                                         f"(cell {name} {key}s there and reads the sensor through its robot)",
                                         sensor.io))
                elif self.stations[station].feed is not None and cell.robot in self.robots \
                        and self.robots[cell.robot].driver.ros is None:
                    found.append(Problem(("stations", station, "sensor"), f"a sensor with part ids (a presence-only "
                                         f"feed names parts in cell {name}'s ledger, while robot {cell.robot} on the "
                                         f"twin's API reports the twin's ids; reach it through driver.ros)", "io"))
            for i, message in step_problems(cell.recipe):
                found.append(Problem(("cells", name, "recipe", i), f"a valid skill step ({message})", cell.recipe[i]))
            found += self._named_in_params(name, cell.recipe)
        found += self._neighbour_problems()
        found += self._tending_problems()
        ros = sorted(r for r, robot in self.robots.items() if robot.driver.ros is not None)
        if ros and self.twin.mode == "lockstep":
            found.append(Problem(("twin", "mode"), f"realtime: robots reached through ROS ({', '.join(ros)}: "
                                                   f"driver.ros) do not take part in lockstep", self.twin.mode))
        found += self._address_problems()
        robots = [c.robot for c in self.cells.values()]
        for name, cell in self.cells.items():
            if robots.count(cell.robot) > 1:
                found.append(Problem(("cells", name, "robot"), "a robot no other cell drives", cell.robot))
        return found

    def _named_in_params(self, cell: str, recipe: list[dict]) -> list[Problem]:
        """A station or robot a skill's params name must exist: a typo (``station: infed``) would
        otherwise pass every schema and fail only when the cell runs the step."""
        found = []
        for i, step in enumerate(recipe):
            if not isinstance(step, dict):
                continue
            recover = step.get("on_failure", {}).get("recover") if isinstance(step.get("on_failure"), dict) else None
            for where, call in ((("params",), step), (("on_failure", "recover", "params"), recover)):
                params = call.get("params") if isinstance(call, dict) else None
                for key, known, what in (("station", self.stations, "stations"), ("robot", self.robots, "robots")):
                    value = params.get(key) if isinstance(params, dict) else None
                    if isinstance(value, str) and value not in known:
                        found.append(Problem(("cells", cell, "recipe", i, *where, key),
                                             f"one of the {what} {sorted(known)}", value))
        return found

    def _tending_problems(self) -> list[Problem]:
        """A machine is tended by one cell, through the twin's API (real machines' drivers are not
        part of a line config yet); a machine's station as the take station is a printer's; the
        tending steps name a machine of the cell."""
        found: list[Problem] = []
        tended: dict[str, str] = {}
        for name, cell in self.cells.items():
            for i, machine in enumerate(cell.machines):
                where = ("cells", name, "machines", i)
                if machine not in self.machines:
                    found.append(Problem(where, f"one of the machines {sorted(self.machines)}", machine))
                    continue
                if machine in tended:
                    found.append(Problem(where, f"a machine no other cell tends (cell {tended[machine]} tends it)",
                                         machine))
                tended.setdefault(machine, name)
                if cell.robot in self.robots and self.robots[cell.robot].driver.ros is not None:
                    found.append(Problem(where, f"a machine cell {name} reaches through the twin's API (its robot "
                                                f"{cell.robot} is on ROS: it opens no connection to the twin)", machine))
            at_take = [m for m, mc in self.machines.items() if mc.station == cell.take]
            for machine in at_take:
                if machine not in cell.machines:
                    found.append(Problem(("cells", name, "machines"), f"to list {machine!r}: the take station "
                                         f"{cell.take} is its {self.machines[machine].kind}'s station", cell.machines))
                elif self.machines[machine].kind != "printer":
                    found.append(Problem(("cells", name, "take"), "a feed, a neighbour's station or a printer's bed "
                                         f"(a CNC's fixture is loaded by the recipe: load_machine)", cell.take))
            if cell.give in {mc.station for mc in self.machines.values()}:
                found.append(Problem(("cells", name, "give"), "a station that is no machine's (a machine is loaded "
                                     "by the recipe: load_machine)", cell.give))
            for i, step in enumerate(cell.recipe):
                params = step.get("params") if isinstance(step, dict) else None
                machine = params.get("machine") if isinstance(params, dict) else None
                if isinstance(machine, str) and machine not in cell.machines:
                    found.append(Problem(("cells", name, "recipe", i, "params", "machine"),
                                         f"one of the machines cell {name} tends (cells.{name}.machines: "
                                         f"{cell.machines})", machine))
        return found

    def _address_problems(self) -> list[Problem]:
        """Non-loopback addresses only with CURVE keys; no two sockets on one host and port."""
        found: list[Problem] = []
        hosts = [(("twin", "host"), self.twin.host)] + [(("cells", n, "host"), c.host) for n, c in self.cells.items()]
        for loc, host in hosts:
            if self.security is None and not is_loopback(host):
                found.append(Problem(loc, "a loopback address, or security: {keys: DIR} for CURVE on every socket",
                                     host))
        m = self.mqtt
        if m.commands:
            for key in ("users", "command_user"):
                if getattr(m, key) is None:
                    found.append(Problem(("mqtt", key), "set: MQTT commands act as an operator of a users file", None))
        o = self.opcua
        if not is_loopback(o.host):
            for key in ("users", "cert", "key", "trust"):
                if getattr(o, key) is None:
                    found.append(Problem(("opcua", key), f"a path: an OPC UA server on {o.host} (not loopback) "
                                                         f"needs users, cert, key and trust", None))
        used: dict[tuple[str, int], tuple] = {}
        ports = [(("twin", "port"), self.twin.host, self.twin.port)]
        for n, c in self.cells.items():
            ports += [(("cells", n, key), c.host, getattr(c, key)) for key in ("handoff_port", "control_port",
                                                                               "status_port")]
        for loc, host, port in ports:
            if port and (host, port) in used:
                found.append(Problem(loc, f"a port no other socket on {host} uses ({'.'.join(used[host, port])})",
                                     port))
            used.setdefault((host, port), loc)
        return found

    def _neighbour_problems(self) -> list[Problem]:
        found: list[Problem] = []
        for name, cell in self.cells.items():
            for key, back, station_key, other_station_key in (("downstream", "upstream", "give", "take"),
                                                               ("upstream", "downstream", "take", "give")):
                peer = getattr(cell, key)
                if peer is None:
                    continue
                if peer == name:
                    found.append(Problem(("cells", name, key), "another cell's name (a cell is not its own neighbour)",
                                         peer))
                    continue
                if peer not in self.cells:
                    found.append(Problem(("cells", name, key), f"one of the cells {sorted(self.cells)}", peer))
                    continue
                other = self.cells[peer]
                if cell.check_alive >= other.handoff_timeout:
                    found.append(Problem(("cells", name, "check_alive"), f"less than {peer}'s handoff_timeout "
                                         f"({other.handoff_timeout} s): {peer} judges this cell gone after that "
                                         f"much silence", cell.check_alive))
                if getattr(other, back) != name:
                    found.append(Problem(("cells", peer, back), f"{name!r} (its {key} names it)", getattr(other, back)))
                if getattr(cell, station_key) != getattr(other, other_station_key):
                    found.append(Problem(("cells", name, station_key),
                                         f"the station {peer} {other_station_key}s from ({getattr(other, other_station_key)!r})",
                                         getattr(cell, station_key)))
                if key == "downstream" and cell.part_types and other.part_types \
                        and not set(cell.part_types) <= set(other.part_types):
                    found.append(Problem(("cells", peer, "part_types"), f"to accept every type {name} gives "
                                         f"{sorted(cell.part_types)}", other.part_types))
            feed = self.stations.get(cell.take).feed if cell.take in self.stations else None
            if feed is not None and cell.part_types and feed.part_type not in cell.part_types:
                found.append(Problem(("cells", name, "part_types"), f"to include {feed.part_type!r}, the type "
                                     f"station {cell.take} feeds", cell.part_types))
        for name in self.cells:
            seen, at = [name], self.cells[name].downstream
            while at in self.cells and at not in seen:
                seen.append(at)
                at = self.cells[at].downstream
            if at == name:
                found.append(Problem(("cells", name, "downstream"), "a line without cycles",
                                     " -> ".join([*seen, name])))
        return found
