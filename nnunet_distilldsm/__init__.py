"""Distill DSM (Maheshwari et al.) as an nnU-Net v2 plugin."""
__version__ = "0.1.0"
