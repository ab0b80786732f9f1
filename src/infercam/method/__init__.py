"""The method: multi-scale CAM passes, the split into four patches, the erasing rounds, the merge (``InferCam``)."""
