"""cai: control as inference."""
__version__ = "0.1.0"
