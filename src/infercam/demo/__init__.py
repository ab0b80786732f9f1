"""The embedded demo (``infercam demo``): baseline CAM vs InferCam on a held-out synthetic split and real photos."""
