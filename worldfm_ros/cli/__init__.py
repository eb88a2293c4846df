"""Console scripts (no running ROS graph needed except for the demo)."""
