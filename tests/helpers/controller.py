"""A controller process for the lockstep tests: drives one robot, exchanges messages with a peer,
delays its acknowledgements at random (from the OS, not the seed), and logs every period as a
JSON line: (period, time, joint positions, messages received)."""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

from cellctl.handoff import rendezvous
from cellctl.handoff.mailbox import Mailbox
from cellctl.drivers.twin_lockstep import LockstepClock
from cellctl.drivers.twin import TwinDriver


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("--name", required=True)
    ap.add_argument("--robot", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--rendezvous", required=True, help="directory where the peers announce their inboxes")
    ap.add_argument("--periods", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()

    rng = random.Random(args.seed)  # decides the work: the same on every run
    jitter = random.Random(os.urandom(8))  # decides the delays: different on every run
    mailbox = Mailbox(args.name)
    rendezvous.announce(Path(args.rendezvous), args.name, mailbox.endpoint)
    mailbox.connect(args.peer, rendezvous.wait_for(Path(args.rendezvous), args.peer))
    with TwinDriver(args.endpoint, args.robot, timeout=30) as robot, open(args.log, "w") as log:
        clock = LockstepClock(robot, args.name, [args.robot], mailbox)
        robot.use_clock(clock)
        home = list(robot.describe().home)
        motion = None
        for period in range(args.periods):
            if jitter.random() < 0.3:
                time.sleep(jitter.uniform(0, 0.02))
            grant = clock.advance()
            state = robot.joint_state()
            log.write(json.dumps({"period": period, "time": grant.time, "q": state.positions,
                                  "messages": grant.messages}) + "\n")
            if motion is None or motion.status.done:
                goal = [q + rng.uniform(-0.3, 0.3) for q in home]
                motion = robot.move_joints([goal], speed=0.5)
            if period % 7 == 3:
                mailbox.send(args.peer, {"from_period": period, "text": f"hello from {args.name}"})
        print("DONE", flush=True)
    mailbox.close()


if __name__ == "__main__":
    main()
