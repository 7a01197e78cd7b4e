"""Skills on the real twin over ZeroMQ: physical outcomes, cancel, deadline, preconditions."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cellctl.drivers.types import GripperCommand
from cellctl.drivers.wait import wait
from cellctl.skills.base import SkillParameterError, SkillStatus
from cellctl.skills.context import SkillContext
from cellctl.skills.registry import UnknownSkill, create
from cellctl.skills.runner import run
from cellctl.skills.sequence import SkillSequence

STATIONS = {"infeed": (0.55, -0.35, 0.3), "outfeed": (0.55, 0.35, 0.3)}
MOTION_OPS = ("execute", "move_joints", "move_pose", "gripper")


@pytest.fixture
def ctx(kuka):
    return SkillContext.create(kuka, stations=STATIONS, locate=kuka.locate)


def test_move_joints_reaches_the_goal(ctx, kuka):
    goal = [0.3, 0.6, 0.0, -1.1, 0.0, 1.3, 0.2]
    result = run(create("move_joints", ctx, {"positions": goal}))
    assert result.ok, result.reason
    assert np.allclose(kuka.joint_state().positions, goal, atol=0.01)


def test_move_pose_reaches_the_pose(ctx, kuka):
    target = (0.5, 0.1, 0.5)
    result = run(create("move_pose", ctx, {"poses": [{"position": [0.5, 0.0, 0.6]}, {"position": list(target)}]}))
    assert result.ok, result.reason
    assert np.allclose(kuka.kinematics.fk(kuka.joint_state().positions).position, target, atol=0.005)


def test_pick_then_place_moves_the_part(ctx, kuka):
    pick = run(create("pick", ctx, {"station": "infeed"}))
    assert pick.ok, pick.reason
    held = kuka.gripper_state()
    assert held.part_present and held.part_id == "part-1"
    assert kuka.locate("part-1")[2] > 0.35  # lifted off the infeed
    place = run(create("place", ctx, {"station": "outfeed"}))
    assert place.ok, place.reason
    assert not kuka.gripper_state().part_present
    assert np.allclose(kuka.locate("part-1"), STATIONS["outfeed"], atol=0.01)  # resting on the station


def test_pick_by_part_id(ctx, kuka):
    assert run(create("pick", ctx, {"part": "part-1"})).ok
    assert kuka.gripper_state().part_id == "part-1"


def test_wait_takes_driver_time(ctx, kuka):
    t0 = kuka.now()
    assert run(create("wait", ctx, {"seconds": 1.0})).ok
    assert kuka.now() - t0 >= 1.0


def test_cancel_mid_motion_stops_the_robot(ctx, kuka):
    skill = create("move_joints", ctx, {"positions": [2.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0], "speed": 0.3})
    t0 = kuka.now()
    while kuka.now() - t0 < 0.5:
        assert skill.tick() is None
        time.sleep(0.01)
    log_before = kuka.request("request_log")[-1]["seq"]
    skill.cancel()
    assert skill.result.status is SkillStatus.CANCELLED
    ops = [r["op"] for r in kuka.request("request_log", since=log_before)]
    assert "cancel" in ops and "stop" in ops  # commanded at once, within the period
    t1 = kuka.now()
    while kuka.now() - t1 < 0.5:
        time.sleep(0.01)
    state = kuka.joint_state()
    assert max(abs(v) for v in state.velocities) < 0.05  # at rest
    assert abs(state.positions[0] - 2.0) > 0.3  # short of the goal


def test_deadline_exceeded_names_the_state(ctx):
    result = run(create("move_joints", ctx, {"positions": [2.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0], "speed": 0.1,
                                             "timeout": 0.5}))
    assert result.status is SkillStatus.FAILED
    assert result.reason == "deadline of 0.5s exceeded in state moving"


def test_false_precondition_fails_without_motion(ctx, kuka):
    before = kuka.request("request_log")[-1]["seq"]
    result = run(create("place", ctx, {"station": "outfeed"}))  # holding nothing
    assert result.status is SkillStatus.FAILED
    assert result.reason == "precondition failed: the gripper holds a part"
    ops = [r["op"] for r in kuka.request("request_log", since=before)]
    assert not [op for op in ops if op in MOTION_OPS], ops


def test_bad_parameters_are_refused_before_motion(ctx, kuka):
    with pytest.raises(SkillParameterError, match=r"skill move_joints: parameter speed: Input should be less than"):
        create("move_joints", ctx, {"positions": [0.0] * 7, "speed": 3})
    with pytest.raises(SkillParameterError, match="skill pick: parameter station: Extra inputs|give exactly one"):
        create("pick", ctx, {})
    with pytest.raises(UnknownSkill, match="unknown skill 'fly'; known skills: "):
        create("fly", ctx, {})
    out_of_limits = run(create("move_joints", ctx, {"positions": [3.5, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]}))
    assert out_of_limits.status is SkillStatus.FAILED and "LimitViolation" in out_of_limits.reason
    unreachable = run(create("move_pose", ctx, {"poses": [{"position": [1.4, 0.0, 0.3]}]}))
    assert unreachable.status is SkillStatus.FAILED and "Unreachable" in unreachable.reason
    assert kuka.commands_sent == 0


def test_sequence_policies(ctx, kuka):
    seq = SkillSequence(ctx, [
        {"skill": "place", "params": {"station": "outfeed"}, "on_failure": "skip"},  # nothing held: skipped
        {"skill": "pick", "params": {"station": "infeed"}},
        {"skill": "place", "params": {"station": "nowhere"}, "retry": 1,
         "on_failure": {"recover": {"skill": "place", "params": {"station": "outfeed"}}}},
    ])
    result = run(seq)
    assert result.ok, result.reason
    steps = [(e["index"], e["skill"], e["attempt"], e["recovery"]) for e in ctx.events.events if e["kind"] == "step"]
    assert steps == [(0, "place", 0, False), (1, "pick", 0, False), (2, "place", 0, False),
                     (2, "place", 1, False), (2, "place", 1, True)]
    assert np.allclose(kuka.locate("part-1"), STATIONS["outfeed"], atol=0.01)
    with pytest.raises(SkillParameterError, match=r"step 0 \(pick\): skill pick: parameter hover"):
        SkillSequence(ctx, [{"skill": "pick", "params": {"station": "infeed", "hover": "high"}}])


def test_skill_transitions_reach_the_event_sink(ctx):
    assert run(create("wait", ctx, {"seconds": 0.1})).ok
    rows = [(e["source"], e["dest"], e["trigger"]) for e in ctx.events.events if e["kind"] == "skill"]
    assert rows == [("idle", "waiting", "start"), ("waiting", "succeeded", "done")]
    assert all(e["schema"] == 1 and "sim_time" in e and "wall_time" in e for e in ctx.events.events)


def test_gripper_is_left_in_a_defined_state_by_cancel(ctx, kuka):
    assert run(create("pick", ctx, {"station": "infeed"})).ok
    skill = create("place", ctx, {"station": "outfeed", "speed": 0.3})
    skill.tick()
    skill.tick()
    skill.cancel()
    assert kuka.gripper_state().part_present  # a cancel never drops the part
    wait(kuka.gripper(GripperCommand.OPEN))
