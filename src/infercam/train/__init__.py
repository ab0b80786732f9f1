"""Training: the CAM classifier, AffinityNet and the segmentation network, their shared loop and resuming."""
