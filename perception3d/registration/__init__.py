"""Point-cloud registration: RoITr matching, pose estimation (LGR, RANSAC), FPFH + RANSAC baseline, metrics,
training pairs and dataset readers."""
