"""thgs: lifelike talking human avatars from a short monocular video with 3D Gaussian Splatting."""

__version__ = "0.1.0"
