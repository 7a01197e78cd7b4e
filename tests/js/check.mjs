// roslibjs against the twin's rosbridge endpoint: subscribe to joint states, complete a
// FollowJointTrajectory goal. Prints one JSON line; exit status 0 only if both worked.
import * as ROSLIB from "roslib";

const [url, robot, joints, goal] = process.argv.slice(2);
const jointNames = joints.split(",");
const target = goal.split(",").map(Number);
const out = { joint_states: 0, feedback: 0, result: null, error: null };
const finish = (code) => { console.log(JSON.stringify(out)); process.exit(code); };
setTimeout(() => { out.error = "timeout"; finish(1); }, 20000);

const ros = new ROSLIB.Ros({ url });
ros.on("error", (e) => { out.error = String(e); finish(1); });
ros.on("connection", () => {
  const states = new ROSLIB.Topic({ ros, name: `/${robot}/joint_states`, messageType: "sensor_msgs/msg/JointState" });
  states.subscribe(() => { out.joint_states += 1; });
  const action = new ROSLIB.Action({
    ros, name: `/${robot}/joint_trajectory_controller/follow_joint_trajectory`,
    actionType: "control_msgs/action/FollowJointTrajectory",
  });
  action.sendGoal(
    { trajectory: { joint_names: jointNames, points: [{ positions: target, time_from_start: { sec: 2, nanosec: 0 } }] } },
    (result) => { out.result = result; finish(out.joint_states > 0 ? 0 : 1); },
    () => { out.feedback += 1; },
    (err) => { out.error = String(err); finish(1); },
  );
});
