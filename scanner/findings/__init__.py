"""Findings: what the detectors' hits become in an image: the severity policy, suppression,
keyed fingerprints, and the Dockerfile instruction behind each layer."""
