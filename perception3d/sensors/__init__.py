"""Native lidar captures as timestamped sweeps: Ouster pcap / OSF / packet bags and Velodyne pcap.

Each sweep is a `Sweep`: points in the sensor frame (metres) with per-point time, beam (ring) and intensity,
stamped with the time of its first point. The decoding is the vendors' libraries' (`ouster-sdk`, extra
`ouster`; `velodyne-decoder`, extra `velodyne`), imported only when a capture of theirs is read.

    from perception3d.sensors import read_sweep
    sweep = read_sweep("OS-1-128_v2.3.0_1024x10_lb_n3.pcap", 1)   # the second sweep, metadata found beside it
    points = sweep.points()                                         # float32 (N, 4) x, y, z, intensity
"""

from perception3d.sensors.sweep import (
    CAPTURE_SUFFIXES, Sweep, capture_info, read_kitti_poses, read_sweep, read_sweeps, relative_pose)

__all__ = ["CAPTURE_SUFFIXES", "Sweep", "capture_info", "read_kitti_poses", "read_sweep", "read_sweeps",
           "relative_pose"]
