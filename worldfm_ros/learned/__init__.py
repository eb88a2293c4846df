"""The learned frame model ("implicit memory"): warping, network, training data and loop.

ROS-free (numpy, OpenCV, PyTorch only). The renderer that serves it is
:mod:`worldfm_ros.core.renderers.learned`; the training command is ``worldfm-train``
(:mod:`worldfm_ros.cli.train`).
"""
