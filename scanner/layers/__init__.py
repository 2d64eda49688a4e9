"""Layers: an image's archive members -> resolved images and walked layers (tar walk, files and
archives inside them, whiteouts and overwrites, package records), never extracted to disk."""
