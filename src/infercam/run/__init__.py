"""Running over a data set: per-image prefetch, resume and error policy, outputs, manifests, torchrun ranks."""
